//! Reads SMTP command lines from standard input and prints how `smtp-proto` parses them, or the
//! reply a server would answer a malformed line with.
//!
//! ```text
//! printf 'MAIL FROM:<a@b.example> SIZE=100\r\nRCPT TO:<bad\r\n' | cargo run -p examples --bin parse_commands
//! ```
#![forbid(unsafe_code)]

use std::io::Read;

use smtp_proto::{Command, Framed, LineFramer};

fn main() {
    let mut input = Vec::new();
    std::io::stdin()
        .read_to_end(&mut input)
        .expect("read stdin");
    let mut framer = LineFramer::new(smtp_proto::DEFAULT_COMMAND_LINE_MAX);
    let mut rest = &input[..];
    loop {
        match framer.next_line(rest) {
            Framed::Line { line, consumed } => {
                match Command::parse(line) {
                    Ok(cmd) => println!("{cmd:?}"),
                    Err(e) => print!("{}", e.reply()),
                }
                rest = &rest[consumed..];
            }
            Framed::TooLong { consumed } => {
                println!("line too long");
                rest = &rest[consumed..];
            }
            Framed::Incomplete { .. } => break,
        }
    }
}
