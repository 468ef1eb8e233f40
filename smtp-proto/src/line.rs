//! Line framing for the command phase, with a hard length limit.
//!
//! The framer never buffers: it looks at the caller's buffer and says how many bytes make a
//! line, or that an overlong line was skipped. An overlong line is consumed as it arrives (so the
//! caller's buffer never has to grow past the limit, whatever the client sends, 100 MB without a
//! newline included) and reported once its LF arrives, so the error reply goes out in order.

/// RFC 5321 4.5.3.1.4: a command line is at most 512 octets, CRLF included.
pub const DEFAULT_COMMAND_LINE_MAX: usize = 512;

/// What [`LineFramer::next_line`] found at the start of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framed<'a> {
    /// A whole line, without its LF and without a CR before the LF.
    Line {
        /// The line's content.
        line: &'a [u8],
        /// Bytes to drop from the buffer: the line and its ending.
        consumed: usize,
    },
    /// An overlong line ended here; it was discarded and should be answered with an error
    /// such as [`Reply::LINE_TOO_LONG`](crate::Reply::LINE_TOO_LONG).
    TooLong {
        /// Bytes to drop from the buffer (the rest of the overlong line).
        consumed: usize,
    },
    /// No complete line yet. `consumed` is 0, unless an overlong line is being skipped.
    Incomplete {
        /// Bytes to drop from the buffer.
        consumed: usize,
    },
}

/// Splits input into lines of at most `max` octets (line ending included).
///
/// A line ends at LF; a CR just before the LF is removed. (Bare LF is accepted as a command line
/// ending, as Postfix does; it is never accepted as the end of DATA, see [`DataDecoder`].)
///
/// [`DataDecoder`]: crate::DataDecoder
///
/// ```
/// use smtp_proto::{Framed, LineFramer};
/// let mut f = LineFramer::new(512);
/// assert_eq!(f.next_line(b"NOOP\r\nQU"), Framed::Line { line: b"NOOP", consumed: 6 });
/// assert_eq!(f.next_line(b"QU"), Framed::Incomplete { consumed: 0 });
/// ```
#[derive(Debug, Clone)]
pub struct LineFramer {
    max: usize,
    discarding: bool,
}

impl LineFramer {
    /// A framer for lines of at most `max` octets, line ending included (at least 3).
    pub fn new(max: usize) -> Self {
        Self {
            max: max.max(3),
            discarding: false,
        }
    }

    /// The current limit.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Changes the limit, for example to allow long AUTH responses (RFC 4954 4 lets them be
    /// longer than 512 octets).
    pub fn set_max(&mut self, max: usize) {
        self.max = max.max(3);
    }

    /// True while the rest of an overlong line is being skipped.
    pub fn is_discarding(&self) -> bool {
        self.discarding
    }

    /// Looks for one line at the start of `buf`.
    pub fn next_line<'a>(&mut self, buf: &'a [u8]) -> Framed<'a> {
        if !self.discarding {
            // A line's LF cannot lie beyond max: look no further for one.
            let window = &buf[..buf.len().min(self.max)];
            if let Some(i) = memchr::memchr(b'\n', window) {
                let line = &buf[..i];
                return Framed::Line {
                    line: line.strip_suffix(b"\r").unwrap_or(line),
                    consumed: i + 1,
                };
            }
            if buf.len() < self.max {
                return Framed::Incomplete { consumed: 0 };
            }
            self.discarding = true;
        }
        // Skipping an overlong line: up to its LF if it is here, else all of it.
        match memchr::memchr(b'\n', buf) {
            Some(i) => {
                self.discarding = false;
                Framed::TooLong { consumed: i + 1 }
            }
            None => Framed::Incomplete {
                consumed: buf.len(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What framing a whole input yields: lines, or `None` for a line too long.
    fn frame(f: &mut LineFramer, input: &[u8]) -> (Vec<Option<Vec<u8>>>, usize) {
        let mut out = Vec::new();
        let mut pos = 0;
        loop {
            match f.next_line(&input[pos..]) {
                Framed::Line { line, consumed } => {
                    out.push(Some(line.to_vec()));
                    pos += consumed;
                }
                Framed::TooLong { consumed } => {
                    out.push(None);
                    pos += consumed;
                }
                Framed::Incomplete { consumed } => {
                    pos += consumed;
                    if consumed == 0 || pos == input.len() {
                        return (out, input.len() - pos);
                    }
                }
            }
        }
    }

    /// Feeds one byte at a time, as a driver would with a buffer it appends to.
    fn frame_bytewise(max: usize, input: &[u8]) -> (Vec<Option<Vec<u8>>>, usize) {
        let mut f = LineFramer::new(max);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        for &b in input {
            buf.push(b);
            let (lines, left) = frame(&mut f, &buf);
            out.extend(lines);
            buf.drain(..buf.len() - left);
            assert!(buf.len() < max.max(3), "buffer grew past the limit");
        }
        (out, buf.len())
    }

    #[test]
    fn frames_whole_and_bytewise() {
        let l = |s: &str| Some(s.as_bytes().to_vec());
        let long = format!("{}\r\n", "x".repeat(600));
        let exact = format!("{}\r\n", "y".repeat(510));
        // (input, lines or None for too long, bytes left over)
        type Case = (Vec<u8>, Vec<Option<Vec<u8>>>, usize);
        let cases: Vec<Case> = vec![
            (b"NOOP\r\n".to_vec(), vec![l("NOOP")], 0),
            (b"NOOP\nRSET\r\nQU".to_vec(), vec![l("NOOP"), l("RSET")], 2),
            (b"\r\n\n".to_vec(), vec![l(""), l("")], 0),
            (b"A\rB\r\n".to_vec(), vec![l("A\rB")], 0),
            (
                format!("{long}NOOP\r\n").into_bytes(),
                vec![None, l("NOOP")],
                0,
            ),
            (
                exact.clone().into_bytes(),
                vec![Some(exact.trim_end().into())],
                0,
            ),
            (
                format!("{}\r\n", "z".repeat(511)).into_bytes(),
                vec![None],
                0,
            ),
        ];
        for (input, lines, left) in &cases {
            let mut f = LineFramer::new(512);
            assert_eq!(frame(&mut f, input), (lines.clone(), *left), "{input:?}");
            let (got, got_left) = frame_bytewise(512, input);
            assert_eq!(&got, lines, "bytewise {input:?}");
            // Bytewise, a partial overlong line is consumed as it comes.
            assert!(got_left <= *left);
        }
    }

    #[test]
    fn hundred_megabytes_without_newline_stay_bounded() {
        let mut f = LineFramer::new(512);
        let chunk = vec![b'a'; 64 * 1024];
        let mut pending = 0usize;
        for _ in 0..1600 {
            // A driver keeps what was not consumed; it must never exceed the limit.
            let mut buf = vec![b'a'; pending];
            buf.extend_from_slice(&chunk);
            match f.next_line(&buf) {
                Framed::Incomplete { consumed } => pending = buf.len() - consumed,
                other => panic!("{other:?}"),
            }
            assert!(pending < 512);
        }
        assert!(f.is_discarding());
        assert_eq!(pending, 0, "a skipped line is consumed as it arrives");
        let buf = b"a\r\nNOOP\r\n";
        assert_eq!(f.next_line(buf), Framed::TooLong { consumed: 3 });
        assert!(!f.is_discarding());
        assert_eq!(
            f.next_line(&buf[3..]),
            Framed::Line {
                line: b"NOOP",
                consumed: 6
            }
        );
    }

    #[test]
    fn raising_the_limit_admits_long_lines() {
        let mut f = LineFramer::new(512);
        f.set_max(12_288);
        let line = format!("{}\r\n", "A".repeat(10_000));
        assert!(matches!(
            f.next_line(line.as_bytes()),
            Framed::Line {
                consumed: 10_002,
                ..
            }
        ));
    }
}
