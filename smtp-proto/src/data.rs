//! Message bodies: the DATA decoder (RFC 5321 4.1.1.4, 4.5.2) and the BDAT chunk reader
//! (RFC 3030 2).
//!
//! # The end of DATA, and SMTP smuggling
//!
//! DATA ends at `CRLF . CRLF` and nothing else. Servers that also accepted `LF . LF` or
//! `CR . CR` let an attacker hide a second message inside the first, which a stricter hop then
//! delivers with a forged sender (SMTP smuggling, CVE-2023-51764/51765/51766). The decoder
//! starts as if a CRLF had just been seen, so a first line of `.` ends an empty message and a
//! first line of `..x` is unstuffed to `.x`.
//!
//! # Bare CR and bare LF
//!
//! A CR not followed by LF, or an LF not preceded by CR, is forbidden in SMTP (RFC 5321 2.3.8),
//! but real senders produce them. [`BareLineEndings`] chooses what to do:
//!
//! - [`Normalize`](BareLineEndings::Normalize) (the default) turns each into CRLF, as Postfix
//!   3.9 does by default. The message we hand on then has one unambiguous line structure:
//!   whatever parses it next, however lenient, sees the lines we saw, and a relay that
//!   dot-stuffs it can no longer produce a premature end of data at a lenient next hop. A
//!   message with a stray bare LF still gets delivered.
//! - [`Reject`](BareLineEndings::Reject) answers the message with `554 5.6.0` once its end
//!   arrives (the connection stays usable), for servers that would rather refuse than repair.
//! - [`Keep`](BareLineEndings::Keep) passes them through as they came. Only for servers that
//!   store and never forward: a message kept this way can smuggle through a lenient next hop.

use crate::reply::Reply;

/// A searcher for CRLF followed by a dot, built once.
static CRLF_DOT: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\r\n."));

/// What to do with a CR not followed by LF, or an LF not preceded by CR, inside DATA.
/// See the [module docs](crate::data) for why [`Normalize`](Self::Normalize) is the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum BareLineEndings {
    /// Replace each with CRLF.
    #[default]
    Normalize,
    /// Refuse the message with 554 5.6.0 at its end.
    Reject,
    /// Pass them through unchanged.
    Keep,
}

/// Why a message is refused although its end arrived.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    /// Larger than the limit (552 5.3.4, RFC 1870 6).
    #[error("message exceeds the size limit")]
    TooLarge,
    /// Contained a bare CR or LF under [`BareLineEndings::Reject`] (554 5.6.0).
    #[error("message contains bare CR or LF")]
    BareLineEnding,
}

impl DataError {
    /// The reply for this error.
    pub fn reply(&self) -> Reply {
        match self {
            Self::TooLarge => Reply::MESSAGE_TOO_BIG,
            Self::BareLineEnding => Reply::BARE_LINE_ENDING,
        }
    }
}

/// One step of [`DataDecoder::decode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// Message bytes (never empty), made from the first `consumed` bytes of the input.
    Data {
        /// Unstuffed message bytes: a slice of the input or a short constant.
        data: &'a [u8],
        /// Input bytes used.
        consumed: usize,
    },
    /// The terminating `CRLF.CRLF` ended at `consumed`; later bytes are the next command.
    End {
        /// Input bytes used, the final LF included.
        consumed: usize,
        /// The message's size, or why it must be refused.
        result: Result<u64, DataError>,
    },
    /// Everything was consumed; call again with more input.
    NeedMore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Just after CRLF (or at the start).
    LineStart,
    /// A `.` at the start of a line was consumed.
    Dot,
    /// `.` CR at the start of a line were consumed.
    DotCr,
    /// Inside a line.
    Mid,
    /// Inside a line, a CR ended the previous input: held until the next byte shows whether
    /// it is bare.
    Cr,
    /// The end was found.
    Done,
}

/// Streaming DATA decoder: dot-unstuffing, end detection, size counting, bare CR/LF policy.
///
/// It holds a few bytes of state and never copies: each [`Decoded::Data`] borrows from the
/// input (or is a two-byte constant). Lines are found with `memchr`.
///
/// ```
/// use smtp_proto::{DataDecoder, Decoded};
/// let mut dec = DataDecoder::new(1024);
/// let input = b"Subject: hi\r\n\r\n..dot\r\n.\r\nQUIT\r\n";
/// let (mut pos, mut message) = (0, Vec::new());
/// loop {
///     match dec.decode(&input[pos..]) {
///         Decoded::Data { data, consumed } => { message.extend_from_slice(data); pos += consumed; }
///         Decoded::End { consumed, result } => { pos += consumed; assert_eq!(result, Ok(21)); break; }
///         Decoded::NeedMore => unreachable!("the end is in the input"),
///     }
/// }
/// assert_eq!(message, b"Subject: hi\r\n\r\n.dot\r\n");
/// assert_eq!(&input[pos..], b"QUIT\r\n");
/// ```
#[derive(Debug, Clone)]
pub struct DataDecoder {
    state: State,
    policy: BareLineEndings,
    max_size: u64,
    size: u64,
    too_large: bool,
    bare_seen: bool,
}

impl DataDecoder {
    /// A decoder for a message of at most `max_size` octets, with the default bare line ending
    /// policy.
    pub fn new(max_size: u64) -> Self {
        Self::with_policy(max_size, BareLineEndings::default())
    }

    /// A decoder with the given bare line ending policy.
    pub fn with_policy(max_size: u64, policy: BareLineEndings) -> Self {
        Self {
            state: State::LineStart,
            policy,
            max_size,
            size: 0,
            too_large: false,
            bare_seen: false,
        }
    }

    /// Message octets counted so far (after unstuffing and normalisation).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// True once the end was found.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes from the start of `input`, returning at the first message bytes, the end, or
    /// when everything was consumed. Past the size limit, the octets up to the limit are
    /// returned and then no more, but the input is still scanned for the end.
    pub fn decode<'a>(&mut self, input: &'a [u8]) -> Decoded<'a> {
        let mut offset = 0;
        loop {
            match self.step(&input[offset..]) {
                Decoded::Data { data, consumed } => {
                    offset += consumed;
                    let room = self.max_size.saturating_sub(self.size);
                    self.size += data.len() as u64;
                    if self.too_large {
                        continue;
                    }
                    // Past the limit, hand out exactly the octets that fit, then nothing.
                    let fit = &data[..data.len().min(usize::try_from(room).unwrap_or(usize::MAX))];
                    self.too_large = fit.len() < data.len();
                    if !fit.is_empty() {
                        return Decoded::Data {
                            data: fit,
                            consumed: offset,
                        };
                    }
                }
                Decoded::End { consumed, .. } => {
                    let result = if self.too_large {
                        Err(DataError::TooLarge)
                    } else if self.bare_seen {
                        Err(DataError::BareLineEnding)
                    } else {
                        Ok(self.size)
                    };
                    return Decoded::End {
                        consumed: offset + consumed,
                        result,
                    };
                }
                Decoded::NeedMore => return Decoded::NeedMore,
            }
        }
    }

    /// A bare CR or LF was found: what replaces it.
    fn bare(&mut self, literal: &'static [u8]) -> &'static [u8] {
        match self.policy {
            BareLineEndings::Normalize => b"\r\n",
            BareLineEndings::Reject => {
                self.bare_seen = true;
                literal
            }
            BareLineEndings::Keep => literal,
        }
    }

    fn step<'a>(&mut self, input: &'a [u8]) -> Decoded<'a> {
        let run = |start: usize, end: usize, consumed: usize| {
            if end > start {
                Decoded::Data {
                    data: &input[start..end],
                    consumed,
                }
            } else {
                Decoded::NeedMore
            }
        };
        let mut i = 0;
        let mut start = 0;
        loop {
            if i == input.len() {
                return run(start, i, i);
            }
            match self.state {
                State::Done => return Decoded::NeedMore,
                State::LineStart if input[i] == b'.' => {
                    // Not part of the message: either stuffing or the start of the end.
                    self.state = State::Dot;
                    if i > start {
                        return run(start, i, i + 1);
                    }
                    i += 1;
                    start = i;
                }
                State::LineStart => self.state = State::Mid,
                State::Dot if input[i] == b'\r' => {
                    self.state = State::DotCr;
                    i += 1;
                    start = i;
                }
                // The dot was stuffing; the line goes on from here.
                State::Dot => self.state = State::Mid,
                State::DotCr if input[i] == b'\n' => {
                    self.state = State::Done;
                    return Decoded::End {
                        consumed: i + 1,
                        result: Ok(self.size),
                    };
                }
                State::DotCr => {
                    // A stuffed dot followed by a bare CR.
                    self.state = State::Mid;
                    return Decoded::Data {
                        data: self.bare(b"\r"),
                        consumed: i,
                    };
                }
                State::Cr if input[i] == b'\n' => {
                    self.state = State::LineStart;
                    return Decoded::Data {
                        data: b"\r\n",
                        consumed: i + 1,
                    };
                }
                State::Cr => {
                    self.state = State::Mid;
                    return Decoded::Data {
                        data: self.bare(b"\r"),
                        consumed: i,
                    };
                }
                State::Mid if self.policy == BareLineEndings::Keep => {
                    // Only CRLF followed by a dot matters: skip whole lines at once.
                    let tail = &input[i..];
                    if let Some(off) = CRLF_DOT.find(tail) {
                        i += off + 2;
                        self.state = State::LineStart;
                        continue;
                    }
                    // The input may end inside a CRLF.
                    let end = input.len();
                    if tail.ends_with(b"\r\n") {
                        self.state = State::LineStart;
                    } else if tail.ends_with(b"\r") {
                        self.state = State::Cr;
                        return run(start, end - 1, end);
                    }
                    return run(start, end, end);
                }
                State::Mid => {
                    // Skip what needs no attention in one pass; the byte-by-byte cases below
                    // take over where it stops.
                    let clean = clean_prefix(&input[i..]);
                    i += clean;
                    if clean > 0 && input[i - 1] == b'\n' {
                        self.state = State::LineStart;
                        continue;
                    }
                    let Some(off) = memchr::memchr2(b'\r', b'\n', &input[i..]) else {
                        return run(start, input.len(), input.len());
                    };
                    let j = i + off;
                    match (input[j], input.get(j + 1)) {
                        (b'\r', Some(b'\n')) => {
                            i = j + 2;
                            self.state = State::LineStart;
                        }
                        (b'\r', None) => {
                            self.state = State::Cr;
                            return run(start, j, j + 1);
                        }
                        (byte, _) => {
                            let literal: &'static [u8] = if byte == b'\r' { b"\r" } else { b"\n" };
                            if self.policy == BareLineEndings::Normalize {
                                // Emit what came before; the next call replaces the byte.
                                if j > start {
                                    return run(start, j, j);
                                }
                                return Decoded::Data {
                                    data: self.bare(literal),
                                    consumed: j + 1,
                                };
                            }
                            self.bare(literal);
                            i = j + 1;
                        }
                    }
                }
            }
        }
    }
}

/// How many bytes at the start of `s` need no attention from [`DataDecoder`]: `s` is read
/// inside a line or just after a bare CR (its first byte is never the LF of a CRLF), and the
/// prefix returned has no bare CR, no bare LF and no CRLF followed by a dot. It ends either just after a CRLF (the next line's
/// first byte is a dot) or just before a byte that the decoder must look at one by one: a bare
/// CR or LF, or a CR whose LF has not arrived yet.
///
/// Each pair of neighbouring bytes is checked the same way, 64 pairs at a time without
/// branches, which the compiler turns into vector instructions; in the block that holds a
/// stop, eight pairs at a time on 64-bit words, which give its exact place. One pass over the
/// input, with no search started again from an earlier place, whatever the input (bare line
/// endings included) looks like.
fn clean_prefix(s: &[u8]) -> usize {
    /// A pair that ends the clean prefix: a CR not followed by LF, an LF not preceded by CR,
    /// or an LF followed by a dot.
    fn stops(a: u8, b: u8) -> bool {
        ((a == b'\r') != (b == b'\n')) | ((a == b'\n') & (b == b'.'))
    }
    /// Pairs checked at once: the compiler turns each check into vector instructions.
    const BLOCK: usize = 64;
    /// The stops among the eight pairs from `q` on, as the high bit of each byte: [`stops`]
    /// on 64-bit words.
    fn stop_bits(s: &[u8], q: usize) -> u64 {
        let a = u64::from_le_bytes(s[q..q + 8].try_into().expect("8 bytes"));
        let b = u64::from_le_bytes(s[q + 1..q + 9].try_into().expect("8 bytes"));
        (bytes_equal(a, b'\r') ^ bytes_equal(b, b'\n'))
            | (bytes_equal(a, b'\n') & bytes_equal(b, b'.'))
    }
    fn any_stop<const N: usize>(s: &[u8], q: usize) -> bool {
        let a: &[u8; N] = s[q..q + N].try_into().expect("N bytes");
        let b: &[u8; N] = s[q + 1..q + 1 + N].try_into().expect("N bytes");
        (0..N).fold(false, |any, k| any | stops(a[k], b[k]))
    }
    if s.first() == Some(&b'\n') {
        return 0;
    }
    // Where the prefix ends, given the stop's pair: a bare CR is its first byte; otherwise
    // its second byte is a bare LF, or the LF before a dot line ends the prefix.
    let stop_at = |k: usize| if s[k] == b'\r' { k } else { k + 1 };
    let pairs = s.len().saturating_sub(1);
    let mut q = 0;
    // The first two pairs alone first: where bare line endings come thick (hostile input),
    // the stop is usually there, and a whole block need not be checked for it.
    while q < pairs.min(2) {
        if stops(s[q], s[q + 1]) {
            return stop_at(q);
        }
        q += 1;
    }
    while q + BLOCK <= pairs && !any_stop::<BLOCK>(s, q) {
        q += BLOCK;
    }
    // The block (or the tail) holds a stop: eight pairs at a time, then the exact place.
    while q + 8 <= pairs {
        let bits = stop_bits(s, q);
        if bits != 0 {
            return stop_at(q + bits.trailing_zeros() as usize / 8);
        }
        q += 8;
    }
    while q < pairs {
        if stops(s[q], s[q + 1]) {
            return stop_at(q);
        }
        q += 1;
    }
    // A CR at the very end waits for the next input to show whether it is bare.
    if s.last() == Some(&b'\r') {
        s.len() - 1
    } else {
        s.len()
    }
}

/// 0x80 in each byte of `x` that is `byte`, 0 in the others. Exact: adding 0x7f to the low
/// seven bits of a byte never carries into the next one.
fn bytes_equal(x: u64, byte: u8) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let y = x ^ (u64::from(byte) * 0x0101_0101_0101_0101);
    !(((y & LOW7) + LOW7) | y | LOW7)
}

/// Dot-stuffs `body` for DATA (RFC 5321 4.5.2) and appends the terminator: a `.` is doubled
/// at the start of every line (after CRLF, and at the very start), a CRLF is added if the body
/// does not end with one (an empty body gets none), then `.` CRLF.
///
/// With [`BareLineEndings::Keep`], [`DataDecoder`] gives back exactly `body` (plus that added
/// CRLF).
///
/// ```
/// let mut out = Vec::new();
/// smtp_proto::dot_stuff(b".hidden\r\nend", &mut out);
/// assert_eq!(out, b"..hidden\r\nend\r\n.\r\n");
/// ```
pub fn dot_stuff(body: &[u8], out: &mut Vec<u8>) {
    out.reserve(body.len() + 8);
    let mut rest = body;
    if rest.first() == Some(&b'.') {
        out.push(b'.');
    }
    while let Some(at) = memchr::memmem::find(rest, b"\r\n.") {
        out.extend_from_slice(&rest[..at + 3]);
        out.push(b'.');
        rest = &rest[at + 3..];
    }
    out.extend_from_slice(rest);
    if !body.is_empty() && !body.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
}

/// Reads one BDAT chunk (RFC 3030 2): exactly `size` octets, taken literally (no unstuffing, no
/// end marker). Used the same way when the chunk must be drained and thrown away.
///
/// ```
/// let mut chunk = smtp_proto::ChunkReader::new(5);
/// assert_eq!(chunk.read(b"abc"), b"abc");
/// assert_eq!(chunk.read(b"de\r\nQUIT\r\n"), b"de\r\n".split_at(2).0);
/// assert!(chunk.is_done());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkReader {
    remaining: u64,
}

impl ChunkReader {
    /// A reader for a chunk of `size` octets.
    pub fn new(size: u64) -> Self {
        Self { remaining: size }
    }

    /// Octets of the chunk not yet read.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// True when the whole chunk was read.
    pub fn is_done(&self) -> bool {
        self.remaining == 0
    }

    /// Takes the chunk's next bytes from the start of `input`; the caller consumes the
    /// returned slice's length.
    pub fn read<'a>(&mut self, input: &'a [u8]) -> &'a [u8] {
        let n = input
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        self.remaining -= n as u64;
        &input[..n]
    }

    /// Skips the chunk's next bytes; returns how many to consume.
    pub fn discard(&mut self, input: &[u8]) -> usize {
        self.read(input).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `pieces` fed in order; returns the message, the result, and unconsumed bytes.
    fn run(
        policy: BareLineEndings,
        max: u64,
        pieces: &[&[u8]],
    ) -> (Vec<u8>, Option<Result<u64, DataError>>, Vec<u8>) {
        let mut dec = DataDecoder::with_policy(max, policy);
        let mut out = Vec::new();
        let mut end = None;
        let mut rest = Vec::new();
        for piece in pieces {
            if end.is_some() {
                rest.extend_from_slice(piece);
                continue;
            }
            let mut pos = 0;
            loop {
                match dec.decode(&piece[pos..]) {
                    Decoded::Data { data, consumed } => {
                        assert!(!data.is_empty());
                        assert!(consumed > 0 || data.len() <= 2);
                        out.extend_from_slice(data);
                        pos += consumed;
                    }
                    Decoded::End { consumed, result } => {
                        end = Some(result);
                        rest.extend_from_slice(&piece[pos + consumed..]);
                        break;
                    }
                    Decoded::NeedMore => break,
                }
            }
        }
        (out, end, rest)
    }

    fn whole_and_bytewise(
        policy: BareLineEndings,
        max: u64,
        input: &[u8],
    ) -> (Vec<u8>, Option<Result<u64, DataError>>, Vec<u8>) {
        let whole = run(policy, max, &[input]);
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(run(policy, max, &bytes), whole, "bytewise {input:?}");
        for split in 0..=input.len() {
            let (a, b) = input.split_at(split);
            assert_eq!(
                run(policy, max, &[a, b]),
                whole,
                "split at {split} {input:?}"
            );
        }
        whole
    }

    use BareLineEndings::{Keep, Normalize, Reject};

    type Vector = (
        BareLineEndings,
        &'static [u8],
        &'static [u8],
        Option<Result<u64, DataError>>,
        &'static [u8],
    );

    /// RFC 5321 4.1.1.4 and 4.5.2, and the SMTP smuggling vectors: (policy, input, message,
    /// result, bytes after the end).
    const VECTORS: &[Vector] = &[
        (Normalize, b".\r\n", b"", Some(Ok(0)), b""),
        (Normalize, b".\r\nQUIT\r\n", b"", Some(Ok(0)), b"QUIT\r\n"),
        (Normalize, b"a\r\n.\r\n", b"a\r\n", Some(Ok(3)), b""),
        (Normalize, b"..x\r\n.\r\n", b".x\r\n", Some(Ok(4)), b""),
        (
            Normalize,
            b"a\r\n..\r\n.\r\n",
            b"a\r\n.\r\n",
            Some(Ok(6)),
            b"",
        ),
        (
            Normalize,
            b"a\r\n...\r\n.\r\n",
            b"a\r\n..\r\n",
            Some(Ok(7)),
            b"",
        ),
        // RFC 5321 4.5.2: a single leading dot that is not stuffing is deleted too.
        (Normalize, b".x\r\n.\r\n", b"x\r\n", Some(Ok(3)), b""),
        (
            Normalize,
            b"a\r\n.\r\n.\r\n",
            b"a\r\n",
            Some(Ok(3)),
            b".\r\n",
        ),
        (Normalize, b"no end\r\n", b"no end\r\n", None, b""),
        (Normalize, b"a\r\n.", b"a\r\n", None, b""),
        (Normalize, b"a.\r\n.\r\n", b"a.\r\n", Some(Ok(4)), b""),
        // Smuggling: none of these end DATA, under any policy.
        (Keep, b"a\n.\nb\r\n.\r\n", b"a\n.\nb\r\n", Some(Ok(7)), b""),
        (
            Keep,
            b"a\n.\r\nb\r\n.\r\n",
            b"a\n.\r\nb\r\n",
            Some(Ok(8)),
            b"",
        ),
        (
            Keep,
            b"a\r.\r\nb\r\n.\r\n",
            b"a\r.\r\nb\r\n",
            Some(Ok(8)),
            b"",
        ),
        (
            Keep,
            b"a\r\n.\nb\r\n.\r\n",
            b"a\r\n\nb\r\n",
            Some(Ok(7)),
            b"",
        ),
        (
            Keep,
            b"a\r\n.\rb\r\n.\r\n",
            b"a\r\n\rb\r\n",
            Some(Ok(7)),
            b"",
        ),
        (Keep, b"a\n.\rb\r\n.\r\n", b"a\n.\rb\r\n", Some(Ok(7)), b""),
        (Keep, b"a\r\r\n.\r\n", b"a\r\r\n", Some(Ok(4)), b""),
        (
            Normalize,
            b"a\n.\nb\r\n.\r\n",
            b"a\r\n.\r\nb\r\n",
            Some(Ok(9)),
            b"",
        ),
        (
            Normalize,
            b"a\n.\r\nb\r\n.\r\n",
            b"a\r\n.\r\nb\r\n",
            Some(Ok(9)),
            b"",
        ),
        (
            Normalize,
            b"a\r.\r\nb\r\n.\r\n",
            b"a\r\n.\r\nb\r\n",
            Some(Ok(9)),
            b"",
        ),
        (
            Normalize,
            b"a\r\n.\nb\r\n.\r\n",
            b"a\r\n\r\nb\r\n",
            Some(Ok(8)),
            b"",
        ),
        (
            Normalize,
            b"a\r\n.\rb\r\n.\r\n",
            b"a\r\n\r\nb\r\n",
            Some(Ok(8)),
            b"",
        ),
        (
            Normalize,
            b"a\n.\rb\r\n.\r\n",
            b"a\r\n.\r\nb\r\n",
            Some(Ok(9)),
            b"",
        ),
        (
            Normalize,
            b"\n\r\r\n.\r\n",
            b"\r\n\r\n\r\n",
            Some(Ok(6)),
            b"",
        ),
        (
            Reject,
            b"a\n.\nb\r\n.\r\n",
            b"a\n.\nb\r\n",
            Some(Err(DataError::BareLineEnding)),
            b"",
        ),
        (
            Reject,
            b"a\r\n.\rb\r\n.\r\n",
            b"a\r\n\rb\r\n",
            Some(Err(DataError::BareLineEnding)),
            b"",
        ),
        (Reject, b"a\r\nb\r\n.\r\n", b"a\r\nb\r\n", Some(Ok(6)), b""),
        // Never ends, whatever the policy: only CRLF.CRLF does.
        (Reject, b"\n.\n", b"\n.\n", None, b""),
        (Keep, b"\r\n.\r", b"\r\n", None, b""),
        (Keep, b"\n.\r", b"\n.", None, b""),
    ];

    #[test]
    fn vectors_whole_split_and_bytewise() {
        for (policy, input, message, result, rest) in VECTORS {
            let (got, end, left) = whole_and_bytewise(*policy, 1 << 20, input);
            assert_eq!(
                (got.as_slice(), end, left.as_slice()),
                (*message, *result, *rest),
                "{policy:?} {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    /// The word-at-a-time comparison `clean_prefix` locates a stop with: exact in every byte,
    /// whatever its neighbours hold (a borrow or carry between bytes would show here).
    #[test]
    fn bytes_equal_is_exact() {
        let mut x = 0x0123_4567_89ab_cdefu64;
        for round in 0..200_000u32 {
            // Pseudo-random words, with the bytes that matter planted often.
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let mut word = x.to_le_bytes();
            word[(round % 8) as usize] =
                [b'\r', b'\n', b'.', 0, 0x80, 0xff, 0x0d ^ 0x80, 0x8a][(round / 8 % 8) as usize];
            for target in [b'\r', b'\n', b'.'] {
                let got = bytes_equal(u64::from_le_bytes(word), target).to_le_bytes();
                for (k, byte) in word.iter().enumerate() {
                    assert_eq!(got[k], if *byte == target { 0x80 } else { 0 }, "{word:?}");
                }
            }
        }
    }

    #[test]
    fn size_limit_counts_and_drains() {
        let input = b"0123456789\r\n.\r\nNOOP\r\n";
        let (msg, end, rest) = whole_and_bytewise(Normalize, 12, input);
        assert_eq!(
            (msg.len(), end, &rest[..]),
            (12, Some(Ok(12)), &b"NOOP\r\n"[..])
        );
        let (msg, end, rest) = whole_and_bytewise(Normalize, 11, input);
        assert_eq!(msg, b"0123456789\r");
        assert_eq!(
            (end, &rest[..]),
            (Some(Err(DataError::TooLarge)), &b"NOOP\r\n"[..])
        );
        let (msg, end, _) = whole_and_bytewise(Normalize, 0, input);
        assert_eq!((msg.len(), end), (0, Some(Err(DataError::TooLarge))));
    }

    #[test]
    fn dot_stuffing() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"", b".\r\n"),
            (b"a", b"a\r\n.\r\n"),
            (b".", b"..\r\n.\r\n"),
            (b"a\r\n.b\r\n", b"a\r\n..b\r\n.\r\n"),
            (b"a\n.b", b"a\n.b\r\n.\r\n"),
            (b"\r\n.\r\n.", b"\r\n..\r\n..\r\n.\r\n"),
        ];
        for (body, stuffed) in cases {
            let mut out = Vec::new();
            dot_stuff(body, &mut out);
            assert_eq!(out, *stuffed);
            let (decoded, end, _) = whole_and_bytewise(Keep, u64::MAX, &out);
            assert!(matches!(end, Some(Ok(_))));
            let mut want = body.to_vec();
            if !body.is_empty() && !body.ends_with(b"\r\n") {
                want.extend_from_slice(b"\r\n");
            }
            assert_eq!(decoded, want);
        }
    }

    /// RFC 3030 2: a chunk is exactly `size` octets, dots and CRLFs included.
    #[test]
    fn bdat_chunks() {
        let input = b".\r\n..\r\nBDAT";
        for size in [0u64, 1, 3, 7] {
            let mut whole = ChunkReader::new(size);
            let got = whole.read(input);
            assert_eq!(got, &input[..size as usize]);
            assert!(whole.is_done());
            let mut bytewise = ChunkReader::new(size);
            let mut got = Vec::new();
            for b in input.chunks(1) {
                got.extend_from_slice(bytewise.read(b));
            }
            assert_eq!(got, &input[..size as usize]);
        }
        let mut huge = ChunkReader::new(1 << 63);
        assert_eq!(huge.discard(input), input.len());
        assert_eq!(huge.remaining(), (1 << 63) - input.len() as u64);
    }
}
