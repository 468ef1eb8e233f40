//! A whole client transcript through the public wire-layer API, as a server reads it: framing,
//! commands, DATA, BDAT, with the input split at every possible point.

use smtp_proto::{
    ChunkReader, Command, DataDecoder, Decoded, ForwardPath, Framed, LineFramer, Reply, ReversePath,
};

#[derive(Debug, PartialEq)]
enum Seen {
    Command(String),
    Error(u16),
    Message(Vec<u8>),
}

/// A minimal reader: commands until DATA or BDAT, then the body, then commands again.
fn read_all(pieces: &[&[u8]]) -> Vec<Seen> {
    enum Mode {
        Commands,
        Data(DataDecoder, Vec<u8>),
        Bdat(ChunkReader, bool, Vec<u8>),
    }
    let mut framer = LineFramer::new(512);
    let mut mode = Mode::Commands;
    let mut buf = Vec::new();
    let mut seen = Vec::new();
    let mut bdat_body = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        let mut pos = 0;
        loop {
            let rest = &buf[pos..];
            match &mut mode {
                Mode::Commands => match framer.next_line(rest) {
                    Framed::Line { line, consumed } => {
                        pos += consumed;
                        match Command::parse(line) {
                            Ok(Command::Data) => {
                                mode = Mode::Data(DataDecoder::new(1 << 20), Vec::new())
                            }
                            Ok(Command::Bdat { size, last }) => {
                                mode = Mode::Bdat(ChunkReader::new(size), last, Vec::new())
                            }
                            Ok(cmd) => seen.push(Seen::Command(cmd.to_string())),
                            Err(e) => seen.push(Seen::Error(e.reply().code())),
                        }
                    }
                    Framed::TooLong { consumed } => {
                        pos += consumed;
                        seen.push(Seen::Error(Reply::LINE_TOO_LONG.code()));
                    }
                    Framed::Incomplete { consumed } => {
                        pos += consumed;
                        break;
                    }
                },
                Mode::Data(dec, body) => match dec.decode(rest) {
                    Decoded::Data { data, consumed } => {
                        body.extend_from_slice(data);
                        pos += consumed;
                    }
                    Decoded::End { consumed, result } => {
                        assert!(result.is_ok());
                        pos += consumed;
                        seen.push(Seen::Message(std::mem::take(body)));
                        mode = Mode::Commands;
                    }
                    Decoded::NeedMore => {
                        pos = buf.len();
                        break;
                    }
                },
                Mode::Bdat(chunk, last, body) => {
                    let got = chunk.read(rest);
                    body.extend_from_slice(got);
                    pos += got.len();
                    if !chunk.is_done() {
                        break;
                    }
                    bdat_body.append(body);
                    if *last {
                        seen.push(Seen::Message(std::mem::take(&mut bdat_body)));
                    }
                    mode = Mode::Commands;
                }
            }
        }
        buf.drain(..pos);
    }
    seen
}

const TRANSCRIPT: &[u8] = b"EHLO client.example\r\n\
MAIL FROM:<ann@example.com> BODY=8BITMIME\r\n\
RCPT TO:<bob@example.net> NOTIFY=FAILURE\r\n\
RCPT TO:<postmaster>\r\n\
DATA\r\n\
Subject: test\r\n\r\n..leading dot\r\n.\r\n\
MAIL FROM:<>\r\n\
RCPT TO:<bad address>\r\n\
BDAT 9\r\n.\r\nBDAT\r\nBDAT 3 LAST\r\n..\n\
QUIT\r\n";

fn expected() -> Vec<Seen> {
    vec![
        Seen::Command("EHLO client.example".into()),
        Seen::Command("MAIL FROM:<ann@example.com> BODY=8BITMIME".into()),
        Seen::Command("RCPT TO:<bob@example.net> NOTIFY=FAILURE".into()),
        Seen::Command("RCPT TO:<Postmaster>".into()),
        Seen::Message(b"Subject: test\r\n\r\n.leading dot\r\n".to_vec()),
        Seen::Command("MAIL FROM:<>".into()),
        Seen::Error(553),
        // BDAT content is literal: no unstuffing, no end marker.
        Seen::Message(b".\r\nBDAT\r\n..\n".to_vec()),
        Seen::Command("QUIT".into()),
    ]
}

#[test]
fn transcript_whole_bytewise_and_every_split() {
    assert_eq!(read_all(&[TRANSCRIPT]), expected());
    let bytes: Vec<&[u8]> = TRANSCRIPT.chunks(1).collect();
    assert_eq!(read_all(&bytes), expected());
    for at in 0..TRANSCRIPT.len() {
        let (a, b) = TRANSCRIPT.split_at(at);
        assert_eq!(read_all(&[a, b]), expected(), "split at {at}");
    }
}

#[test]
fn parsed_paths_are_typed() {
    let Ok(Command::Mail { from, .. }) = Command::parse(b"MAIL FROM:<>") else {
        panic!()
    };
    assert_eq!(from, ReversePath::Null);
    let Ok(Command::Rcpt { to, .. }) = Command::parse(b"RCPT TO:<POSTMASTER>") else {
        panic!()
    };
    assert_eq!(to, ForwardPath::Postmaster);
}
