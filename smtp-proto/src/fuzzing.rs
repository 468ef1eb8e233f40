//! The bodies of the fuzz targets in `fuzz/`, shared with a stable-toolchain test that feeds
//! them random input, so they run in CI without nightly. Not a public API.
//!
//! Each function takes arbitrary bytes, must never panic, and checks the invariants that hold
//! whatever the input.

use crate::{
    ChunkReader, Command, DataDecoder, Decoded, Framed, LineFramer, ParseOptions, ProxyHeader,
    Reply,
};

/// Frames `data` into lines (splitting it where its first byte says) and parses each line.
pub fn command(data: &[u8]) {
    let Some((&split, data)) = data.split_first() else {
        return;
    };
    let mut framer = LineFramer::new(64 + usize::from(split));
    let mut buf = Vec::new();
    for piece in data.chunks(usize::from(split).max(1)) {
        buf.extend_from_slice(piece);
        let mut pos = 0;
        loop {
            match framer.next_line(&buf[pos..]) {
                Framed::Line { line, consumed } => {
                    assert!(consumed <= framer.max());
                    let options = ParseOptions::new().allow_missing_brackets(split & 1 == 1);
                    match Command::parse_with(line, options) {
                        // A parsed command prints as a line that parses to the same command.
                        Ok(cmd) => {
                            let text = cmd.to_string();
                            let again = Command::parse_with(text.as_bytes(), options);
                            assert_eq!(again.as_ref(), Ok(&cmd), "{text:?}");
                        }
                        Err(e) => assert!(e.reply().is_permanent()),
                    }
                    pos += consumed;
                }
                Framed::TooLong { consumed } | Framed::Incomplete { consumed } => {
                    pos += consumed;
                    if consumed == 0 {
                        break;
                    }
                }
            }
        }
        buf.drain(..pos);
        assert!(buf.len() < framer.max(), "framing buffered past its limit");
    }
}

/// Parses replies from the start of `data`, one after another.
pub fn reply(data: &[u8]) {
    let mut rest = data;
    while let Ok(Some((reply, used))) = Reply::parse(rest, 4096) {
        assert!(used > 0 && used <= rest.len());
        let mut wire = Vec::new();
        reply.write_to(&mut wire);
        let (again, n) = Reply::parse(&wire, usize::MAX)
            .expect("our own reply parses")
            .expect("complete");
        assert_eq!((again.code(), n), (reply.code(), wire.len()));
        rest = &rest[used..];
    }
}

/// Decodes `data` as DATA content under each policy and size limit the first bytes choose,
/// split into pieces of varying size, and checks the invariants; then reads it as BDAT chunks.
pub fn data(data: &[u8]) {
    let Some((&[policy, split, max], data)) = data.split_first_chunk::<3>() else {
        return;
    };
    let policy = match policy % 3 {
        0 => crate::BareLineEndings::Normalize,
        1 => crate::BareLineEndings::Reject,
        _ => crate::BareLineEndings::Keep,
    };
    let max = u64::from(max) * 16;
    let mut dec = DataDecoder::with_policy(max, policy);
    let mut total = 0u64;
    let mut end = None;
    let mut offset = 0;
    'pieces: for piece in data.chunks(usize::from(split).max(1)) {
        let mut pos = 0;
        loop {
            match dec.decode(&piece[pos..]) {
                Decoded::Data { data, consumed } => {
                    assert!(!data.is_empty() && pos + consumed <= piece.len());
                    total += data.len() as u64;
                    pos += consumed;
                }
                Decoded::End { consumed, .. } => {
                    end = Some(offset + pos + consumed);
                    break 'pieces;
                }
                Decoded::NeedMore => break,
            }
        }
        offset += piece.len();
    }
    assert!(total <= max);
    // The data ends exactly after the first CRLF.CRLF, counting an implied CRLF before it.
    let whole = [b"\r\n", data].concat();
    let first = memchr::memmem::find(&whole, b"\r\n.\r\n").map(|at| at + 5 - 2);
    assert_eq!(end, first);
    let mut chunk = ChunkReader::new(u64::from(split));
    let got = chunk.read(data);
    assert_eq!(got.len() as u64, u64::from(split).min(data.len() as u64));
}

/// Parses a PROXY header from `data`.
pub fn proxy(data: &[u8]) {
    if let Ok(Some((header, used))) = ProxyHeader::parse(data) {
        assert!(used <= data.len());
        assert!(header.tlvs().count() <= data.len());
    }
}
