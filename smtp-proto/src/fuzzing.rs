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
    let mut message = Vec::new();
    let mut end = None;
    let mut offset = 0;
    'pieces: for piece in data.chunks(usize::from(split).max(1)) {
        let mut pos = 0;
        loop {
            match dec.decode(&piece[pos..]) {
                Decoded::Data { data, consumed } => {
                    assert!(!data.is_empty() && pos + consumed <= piece.len());
                    message.extend_from_slice(data);
                    pos += consumed;
                }
                Decoded::End { consumed, result } => {
                    end = Some((offset + pos + consumed, result));
                    break 'pieces;
                }
                Decoded::NeedMore => break,
            }
        }
        offset += piece.len();
    }
    assert!(message.len() as u64 <= max);
    // The data ends exactly after the first CRLF.CRLF, counting an implied CRLF before it, and
    // what came before it decodes as the rules say, byte by byte.
    match (end, reference_decode(data, policy, max)) {
        (None, None) => {}
        (Some((end, result)), Some((want_end, want_message, want_result))) => {
            assert_eq!(end, want_end);
            assert_eq!(result, want_result);
            assert_eq!(message, want_message);
        }
        (got, want) => panic!("end {got:?}, expected {want:?}"),
    }
    let mut chunk = ChunkReader::new(u64::from(split));
    let got = chunk.read(data);
    assert_eq!(got.len() as u64, u64::from(split).min(data.len() as u64));
}

/// What [`DataDecoder`] must make of `data`, from the rules alone, one byte at a time (RFC 5321
/// 4.1.1.4, 4.5.2, 2.3.8): where the data ends (after the first `CRLF.CRLF`, counting a CRLF
/// before the first byte), the message (a dot starting a line removed; a CR not followed by LF
/// or an LF not preceded by CR replaced by CRLF, kept, or kept and refused, as `policy` says;
/// cut at `max`), and the result. `None` if the end is not in `data`.
#[allow(clippy::type_complexity)]
fn reference_decode(
    data: &[u8],
    policy: crate::BareLineEndings,
    max: u64,
) -> Option<(usize, Vec<u8>, Result<u64, crate::DataError>)> {
    use crate::BareLineEndings::{Keep, Normalize, Reject};
    let whole = [b"\r\n", data].concat();
    let at = memchr::memmem::find(&whole, b"\r\n.\r\n")?;
    // `whole[at..at + 2]` is `data[at - 2..at]`: the message keeps its last CRLF.
    let content = &data[..at];
    let mut message = Vec::new();
    let mut bare_seen = false;
    for (k, &byte) in content.iter().enumerate() {
        let line_start = k == 0 || (k >= 2 && &content[k - 2..k] == b"\r\n");
        if line_start && byte == b'.' {
            continue;
        }
        let bare = match byte {
            b'\r' => content.get(k + 1) != Some(&b'\n'),
            b'\n' => k == 0 || content[k - 1] != b'\r',
            _ => false,
        };
        match (bare, policy) {
            (true, Normalize) => message.extend_from_slice(b"\r\n"),
            (true, Reject) => {
                bare_seen = true;
                message.push(byte);
            }
            (true, Keep) | (false, _) => message.push(byte),
        }
    }
    let size = message.len() as u64;
    let result = if size > max {
        Err(crate::DataError::TooLarge)
    } else if bare_seen {
        Err(crate::DataError::BareLineEnding)
    } else {
        Ok(size)
    };
    message.truncate(usize::try_from(max).unwrap_or(usize::MAX));
    Some((at + 3, message, result))
}

/// Parses a PROXY header from `data`.
pub fn proxy(data: &[u8]) {
    if let Ok(Some((header, used))) = ProxyHeader::parse(data) {
        assert!(used <= data.len());
        assert!(header.tlvs().count() <= data.len());
    }
}

/// Runs a whole [`Session`](crate::Session) on arbitrary bytes: the input chooses the
/// configuration, how the client bytes are split, how much virtual time passes between reads,
/// and how each decision is answered. Checks that the session never panics, never asks the
/// driver to hold more than its limit, and that message content stays within the size limit.
pub fn session(data: &[u8]) {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use crate::testing::drive;
    use crate::{Config, Session};

    let Some((&[flags, split, tick, decide], mut data)) = data.split_first_chunk::<4>() else {
        return;
    };
    let mut config = Config::new("fuzz.example");
    config.limits.message_size = 512;
    config.limits.recipients = 3;
    config.tls.available = flags & 1 != 0;
    config.tls.required = flags & 2 != 0;
    config.proxy_protocol = flags & 4 != 0;
    config.protocol = if flags & 8 != 0 {
        crate::Protocol::Lmtp
    } else {
        crate::Protocol::Smtp
    };
    config.extensions.enhanced_status_codes = flags & 16 != 0;
    config.auth.allow_insecure = flags & 32 != 0;
    config.auth.required = flags & 64 != 0;
    config.auth.mechanisms = vec!["PLAIN".into(), "LOGIN".into()];
    config.bare_line_endings = match flags >> 7 {
        0 => crate::BareLineEndings::Normalize,
        _ => crate::BareLineEndings::Reject,
    };
    let mut now = Instant::now();
    let mut s = Session::new(Arc::new(config), now);
    let mut fuzz = Fuzz {
        decide,
        n: 0,
        body: 0,
        closed: false,
    };
    let mut input = Vec::new();
    let step = usize::from(split).max(1);
    loop {
        drive(&mut s, now, &mut input, &mut fuzz);
        if fuzz.closed {
            break;
        }
        // The driver never holds more than one step beyond what the session takes.
        assert!(
            input.len() <= step,
            "the session left {} bytes",
            input.len()
        );
        if s.is_pending() {
            // A decision left pending would stop the loop: every event was decided.
            unreachable!("decisions are always made");
        }
        if data.is_empty() {
            s.handle_eof(now);
            continue;
        }
        let take = step.min(data.len());
        input.extend_from_slice(&data[..take]);
        data = &data[take..];
        now += Duration::from_secs(u64::from(tick) * 3);
        s.handle_timeout(now);
    }
}

use crate::testing::Decision;

/// The fuzz harness's stand-in handler: decides as the input's fourth byte says.
struct Fuzz {
    decide: u8,
    n: u32,
    body: usize,
    closed: bool,
}

impl crate::testing::Peer for Fuzz {
    fn transmit(&mut self, bytes: &[u8]) {
        assert!(!bytes.is_empty());
    }

    fn content(&mut self, bytes: bytes::Bytes) {
        self.body += bytes.len();
        assert!(self.body <= 512, "content past the size limit");
    }

    fn event(&mut self, event: &crate::Event, _: &crate::Session) -> Decision {
        use crate::Event;
        if matches!(event, Event::MessageStart | Event::MessageAborted { .. }) {
            self.body = 0;
        }
        if matches!(event, Event::StartTls) || !event.needs_decision() {
            return Decision::Accept;
        }
        self.n = self.n.wrapping_add(1);
        match (self.decide >> (self.n % 8)) & 1 {
            0 => Decision::Accept,
            _ => Decision::Reply(Reply::LOCAL_ERROR),
        }
    }

    fn closed(&mut self, _: crate::CloseReason) {
        self.closed = true;
    }
}
