//! SMTP replies (RFC 5321 4.2) with RFC 3463 enhanced status codes: writing and parsing.

use std::borrow::Cow;
use std::fmt;

use crate::error::{ParseError, ReplyError, SaslError};

/// An RFC 3463 enhanced status code, `class.subject.detail` (for example `5.1.1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EnhancedStatus {
    /// 2 (success), 4 (persistent transient failure) or 5 (permanent failure).
    pub class: u8,
    /// The subject, 0 to 999.
    pub subject: u16,
    /// The detail, 0 to 999.
    pub detail: u16,
}

impl EnhancedStatus {
    /// Builds `class.subject.detail`.
    pub const fn new(class: u8, subject: u16, detail: u16) -> Self {
        Self {
            class,
            subject,
            detail,
        }
    }

    /// Parses `d.ddd.ddd` (RFC 3463 2: one class digit, subject and detail of 1 to 3 digits).
    /// The class must be 2, 4 or 5.
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.split('.');
        let class = digits(parts.next()?, 1)?;
        let subject = digits(parts.next()?, 3)?;
        let detail = digits(parts.next()?, 3)?;
        if parts.next().is_some() || !matches!(class, 2 | 4 | 5) {
            return None;
        }
        Some(Self::new(class as u8, subject, detail))
    }
}

fn digits(s: &str, max: usize) -> Option<u16> {
    if s.is_empty() || s.len() > max || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl fmt::Display for EnhancedStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// A server reply: a three-digit code, an optional enhanced status and one or more text lines.
///
/// The text holds the lines separated by `\n`; [`Reply::write_to`] turns them into a
/// multi-line reply (`250-first`, ..., `250 last`), prefixing every line with the enhanced status
/// as RFC 2034 asks. Constant replies cost no allocation (`Cow::Borrowed`).
///
/// ```
/// use smtp_proto::{EnhancedStatus, Reply};
/// let r = Reply::new(250, Some(EnhancedStatus::new(2, 1, 0)), "Sender OK");
/// assert_eq!(r.to_string(), "250 2.1.0 Sender OK\r\n");
/// let ehlo = Reply::new(250, None, "mx.example\nPIPELINING\nSIZE 1000");
/// assert_eq!(ehlo.to_string(), "250-mx.example\r\n250-PIPELINING\r\n250 SIZE 1000\r\n");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    code: u16,
    status: Option<EnhancedStatus>,
    text: Cow<'static, str>,
}

impl Reply {
    /// A reply with the given code (200 to 599), enhanced status and text (lines separated by
    /// `\n`; a `\r` in the text is never written).
    pub fn new(
        code: u16,
        status: Option<EnhancedStatus>,
        text: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            code,
            status,
            text: text.into(),
        }
    }

    /// A reply from its code, the text of its enhanced status and its text:
    /// `Reply::with_status(550, "5.1.1", "No such user")`.
    ///
    /// # Panics
    /// If `status` is not an enhanced status code (`d.ddd.ddd`, RFC 3463); a constant one
    /// written in the source is the intended use. Parse text from elsewhere with
    /// [`str::parse`] (`"550 5.1.1 No such user".parse::<Reply>()`).
    ///
    /// ```
    /// use smtp_proto::Reply;
    /// let r = Reply::with_status(550, "5.1.1", "No such user");
    /// assert_eq!(r.to_string(), "550 5.1.1 No such user\r\n");
    /// let parsed: Reply = "550 5.1.1 No such user".parse().unwrap();
    /// assert_eq!(parsed, r);
    /// assert_eq!("451 Try later".parse::<Reply>().unwrap().status(), None);
    /// ```
    #[track_caller]
    pub fn with_status(code: u16, status: &str, text: impl Into<Cow<'static, str>>) -> Self {
        let status = EnhancedStatus::parse(status)
            .unwrap_or_else(|| panic!("{status:?} is not an enhanced status code"));
        Self::new(code, Some(status), text)
    }

    /// The same as [`Reply::new`] for `'static` text, usable in constants.
    pub const fn const_new(code: u16, status: Option<EnhancedStatus>, text: &'static str) -> Self {
        Self {
            code,
            status,
            text: Cow::Borrowed(text),
        }
    }

    /// The three-digit reply code.
    pub fn code(&self) -> u16 {
        self.code
    }

    /// The enhanced status code, if any.
    pub fn status(&self) -> Option<EnhancedStatus> {
        self.status
    }

    /// The text, lines separated by `\n`.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The text lines.
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.text.split('\n')
    }

    /// 2xx: the command succeeded.
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// 3xx: the server waits for more (354 for DATA, 334 for AUTH).
    pub fn is_intermediate(&self) -> bool {
        (300..400).contains(&self.code)
    }

    /// 4xx: a transient failure.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// 5xx: a permanent failure.
    pub fn is_permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }

    /// This reply with the enhanced status removed (for a session that does not announce
    /// ENHANCEDSTATUSCODES).
    pub fn without_status(mut self) -> Self {
        self.status = None;
        self
    }

    /// Appends the reply in wire format, every line ending in CRLF.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let code = [
            b'0' + (self.code / 100 % 10) as u8,
            b'0' + (self.code / 10 % 10) as u8,
            b'0' + (self.code % 10) as u8,
        ];
        let mut lines = self.text.split('\n').peekable();
        while let Some(line) = lines.next() {
            out.extend_from_slice(&code);
            out.push(if lines.peek().is_some() { b'-' } else { b' ' });
            if let Some(status) = self.status {
                push_decimal(out, status.class.into());
                out.push(b'.');
                push_decimal(out, status.subject);
                out.push(b'.');
                push_decimal(out, status.detail);
                if !line.is_empty() {
                    out.push(b' ');
                }
            }
            if memchr::memchr(b'\r', line.as_bytes()).is_some() {
                out.extend(line.bytes().filter(|&b| b != b'\r'));
            } else {
                out.extend_from_slice(line.as_bytes());
            }
            out.extend_from_slice(b"\r\n");
        }
    }

    /// Parses one complete reply (all its lines) from the start of `buf`.
    ///
    /// Returns `Ok(None)` while the final line has not arrived, and `Ok(Some((reply, consumed)))`
    /// once it has. An enhanced status is recognised when the first line's text starts with one
    /// whose class matches the code's first digit; it is then removed from every line that
    /// repeats it. `max_len` bounds the whole reply: a longer one is an error, never buffered
    /// without bound. Lines may end in CRLF or a bare LF.
    ///
    /// ```
    /// use smtp_proto::Reply;
    /// let (r, used) = Reply::parse(b"250-2.0.0 mx\r\n250 2.0.0 SIZE 10\r\nNEXT", 4096).unwrap().unwrap();
    /// assert_eq!((r.code(), r.text(), used), (250, "mx\nSIZE 10", 33));
    /// assert_eq!(r.status().unwrap().to_string(), "2.0.0");
    /// assert!(Reply::parse(b"250-mx\r\n250 SI", 4096).unwrap().is_none());
    /// ```
    pub fn parse(buf: &[u8], max_len: usize) -> Result<Option<(Self, usize)>, ReplyError> {
        let mut pos = 0;
        let mut code = None;
        let mut status = None;
        let mut text = String::new();
        loop {
            let Some(nl) = memchr::memchr(b'\n', &buf[pos..]) else {
                return if buf.len() > max_len {
                    Err(ReplyError::TooLong)
                } else {
                    Ok(None)
                };
            };
            let end = pos + nl + 1;
            if end > max_len {
                return Err(ReplyError::TooLong);
            }
            let line = &buf[pos..pos + nl];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.len() < 3 || !line[..3].iter().all(u8::is_ascii_digit) {
                return Err(ReplyError::Syntax);
            }
            let this_code = u16::from(line[0] - b'0') * 100
                + u16::from(line[1] - b'0') * 10
                + u16::from(line[2] - b'0');
            if !(200..600).contains(&this_code) {
                return Err(ReplyError::Syntax);
            }
            if *code.get_or_insert(this_code) != this_code {
                return Err(ReplyError::MixedCodes);
            }
            let (last, rest) = match line.get(3) {
                None => (true, &b""[..]),
                Some(b' ') => (true, &line[4..]),
                Some(b'-') => (false, &line[4..]),
                Some(_) => return Err(ReplyError::Syntax),
            };
            let rest = String::from_utf8_lossy(rest);
            let mut rest: &str = &rest;
            if pos == 0 {
                let (word, after) = rest.split_once(' ').unwrap_or((rest, ""));
                status =
                    EnhancedStatus::parse(word).filter(|s| u16::from(s.class) == this_code / 100);
                if status.is_some() {
                    rest = after;
                }
            } else if let Some(s) = status {
                let (word, after) = rest.split_once(' ').unwrap_or((rest, ""));
                if EnhancedStatus::parse(word) == Some(s) {
                    rest = after;
                }
            }
            if pos != 0 {
                text.push('\n');
            }
            text.push_str(rest);
            pos = end;
            if last {
                let reply = Self::new(this_code, status, text);
                return Ok(Some((reply, pos)));
            }
        }
    }
}

/// Appends `n` in decimal, without the formatting machinery (this is on every reply's path).
fn push_decimal(out: &mut Vec<u8>, n: u16) {
    let mut digits = [0u8; 5];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

impl fmt::Display for Reply {
    /// The wire format, CRLF line endings included.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Vec::with_capacity(self.text.len() + 16);
        self.write_to(&mut out);
        f.write_str(&String::from_utf8_lossy(&out))
    }
}

impl ParseError {
    /// The reply a server sends for this error.
    pub fn reply(&self) -> Reply {
        let st = |s: u16, d: u16| Some(EnhancedStatus::new(5, s, d));
        match *self {
            Self::UnknownCommand => Reply::UNKNOWN_COMMAND,
            Self::InvalidUtf8 => Reply::INVALID_UTF8,
            Self::Syntax { usage } => Reply::new(501, st(5, 4), format!("Syntax: {usage}")),
            Self::BadSender(e) => Reply::new(553, st(1, 7), format!("Bad sender address: {e}")),
            Self::BadRecipient(e) => {
                Reply::new(553, st(1, 3), format!("Bad recipient address: {e}"))
            }
            Self::Utf8AddressWithoutSmtputf8 => Reply::UTF8_ADDRESS_WITHOUT_SMTPUTF8,
            Self::UnknownParameter => Reply::PARAMETER_NOT_ALLOWED,
            Self::DuplicateParameter(p) => {
                Reply::new(501, st(5, 4), format!("Duplicate parameter {p}"))
            }
            Self::BadParameter(p) => Reply::new(501, st(5, 4), format!("Bad {p} parameter")),
        }
    }
}

impl SaslError {
    /// The reply for this error: `501 5.5.2` (RFC 4954 4, "cannot decode base64").
    pub fn reply(&self) -> Reply {
        match self {
            Self::Base64 => Reply::SASL_UNDECODABLE,
            Self::Plain | Self::Utf8 => Reply::SASL_MALFORMED,
        }
    }
}

impl std::str::FromStr for Reply {
    type Err = ReplyError;

    /// `"550 5.1.1 No such user"` (the enhanced status is optional; lines are separated by
    /// `\n`, each given without its code). The code must be 200 to 599.
    fn from_str(s: &str) -> Result<Self, ReplyError> {
        let (code, rest) = s.split_at_checked(3).ok_or(ReplyError::Syntax)?;
        let code: u16 = code
            .parse()
            .ok()
            .filter(|c| (200..600).contains(c))
            .ok_or(ReplyError::Syntax)?;
        let rest = match rest.strip_prefix(' ') {
            Some(rest) => rest,
            None if rest.is_empty() => rest,
            None => return Err(ReplyError::Syntax),
        };
        let (status, text) = match rest.split_once(' ') {
            Some((first, text)) => match EnhancedStatus::parse(first) {
                Some(st) => (Some(st), text),
                None => (None, rest),
            },
            None => match EnhancedStatus::parse(rest) {
                Some(st) => (Some(st), ""),
                None => (None, rest),
            },
        };
        Ok(Self::new(code, status, text.to_string()))
    }
}

macro_rules! replies {
    ($($(#[$doc:meta])* $name:ident = $code:literal $(($c:literal, $s:literal, $d:literal))? $text:literal;)*) => {
        impl Reply {
            $(
                $(#[$doc])*
                pub const $name: Self = Self::const_new(
                    $code,
                    replies!(@status $(($c, $s, $d))?),
                    $text,
                );
            )*
        }
    };
    (@status) => { None };
    (@status ($c:literal, $s:literal, $d:literal)) => { Some(EnhancedStatus::new($c, $s, $d)) };
}

replies! {
    /// `214 2.0.0 See RFC 5321`: the answer to HELP.
    HELP = 214 (2, 0, 0) "See RFC 5321";
    /// `252 2.5.0`: the answer to VRFY that promises nothing (RFC 5321 3.5.3).
    VRFY_CANNOT = 252 (2, 5, 0) "Cannot VRFY user, but will accept message and attempt delivery";
    /// `421 4.7.0`: too many bad commands in a row, or a command over its limit; then close.
    TOO_MANY_ERRORS = 421 (4, 7, 0) "Too many errors, closing transmission channel";
    /// `421 4.7.0`: the connection's message limit is reached; then close.
    TOO_MANY_MESSAGES = 421 (4, 7, 0) "Too many messages, closing transmission channel";
    /// `500 5.5.2`: a command line that is not UTF-8.
    INVALID_UTF8 = 500 (5, 5, 2) "Invalid UTF-8 in command";
    /// `500 5.5.1`: HELO or EHLO in LMTP (RFC 2033 4.1).
    USE_LHLO = 500 (5, 5, 1) "Use LHLO in LMTP";
    /// `500 5.5.1`: LHLO in SMTP.
    USE_EHLO = 500 (5, 5, 1) "LHLO is for LMTP";
    /// `501 5.5.2`: an AUTH response that is not base64 (RFC 4954 4).
    SASL_UNDECODABLE = 501 (5, 5, 2) "Cannot decode response";
    /// `501 5.5.2`: an AUTH response that decodes to nonsense (PLAIN without its NULs).
    SASL_MALFORMED = 501 (5, 5, 2) "Malformed authentication response";
    /// `501 5.0.0`: the client cancelled AUTH with `*` (RFC 4954 4).
    AUTH_CANCELLED = 501 (5, 0, 0) "Authentication cancelled";
    /// `503 5.5.1`: STARTTLS when TLS is already active.
    ALREADY_TLS = 503 (5, 5, 1) "TLS already active";
    /// `503 5.5.1`: DATA for a `BODY=BINARYMIME` transaction (RFC 3030 3).
    BINARYMIME_NEEDS_BDAT = 503 (5, 5, 1) "BINARYMIME requires BDAT";
    /// `553 5.6.7`: a non-ASCII recipient without SMTPUTF8 (RFC 6531 3.5).
    NON_ASCII_RECIPIENT = 553 (5, 6, 7) "Non-ASCII recipient requires the SMTPUTF8 parameter";
    /// `553 5.6.7`: a non-ASCII address without SMTPUTF8 (RFC 6531 3.4).
    UTF8_ADDRESS_WITHOUT_SMTPUTF8 = 553 (5, 6, 7) "Non-ASCII address requires the SMTPUTF8 parameter";
    /// `554 5.5.1`: DATA when every RCPT was refused.
    NO_VALID_RECIPIENTS = 554 (5, 5, 1) "No valid recipients";
    /// `555 5.5.4`: a parameter of an extension not announced, or not known (RFC 5321 4.1.1.11).
    PARAMETER_NOT_ALLOWED = 555 (5, 5, 4) "MAIL FROM/RCPT TO parameters not recognized or not implemented";
    /// `550 5.1.1 No such user`: the recipient does not exist (RFC 3463 3.2).
    NO_SUCH_USER = 550 (5, 1, 1) "No such user";
    /// `550 5.2.1 Mailbox unavailable`: it exists but takes no mail.
    MAILBOX_UNAVAILABLE = 550 (5, 2, 1) "Mailbox unavailable";
    /// `552 5.2.2 Mailbox full`.
    MAILBOX_FULL = 552 (5, 2, 2) "Mailbox full";
    /// `452 4.2.2 Mailbox full, try again later`: over quota for now.
    MAILBOX_FULL_TEMPORARY = 452 (4, 2, 2) "Mailbox full, try again later";
    /// `554 5.7.1 Relay access denied`: not a domain this server takes mail for.
    RELAY_DENIED = 554 (5, 7, 1) "Relay access denied";
    /// `550 5.7.1 Delivery not authorized, message refused`: a policy refusal.
    POLICY_REFUSED = 550 (5, 7, 1) "Delivery not authorized, message refused";
    /// `553 5.1.8 Sender address rejected`: a sender this server does not take mail from.
    SENDER_REJECTED = 553 (5, 1, 8) "Sender address rejected";
    /// `451 4.7.1 Try again later`: a temporary refusal (greylisting, rate limits).
    TRY_AGAIN_LATER = 451 (4, 7, 1) "Try again later";
    /// `452 4.3.1 Insufficient system storage`.
    INSUFFICIENT_STORAGE = 452 (4, 3, 1) "Insufficient system storage";
    /// `250 2.0.0 OK`: the generic success.
    OK = 250 (2, 0, 0) "OK";
    /// `250 2.1.0 Sender OK` (RFC 3463 X.1.0 other address status).
    SENDER_OK = 250 (2, 1, 0) "Sender OK";
    /// `250 2.1.5 Recipient OK` (X.1.5 destination address valid).
    RECIPIENT_OK = 250 (2, 1, 5) "Recipient OK";
    /// `250 2.6.0 Message accepted`.
    MESSAGE_ACCEPTED = 250 (2, 6, 0) "Message accepted";
    /// `221 2.0.0 Bye`.
    BYE = 221 (2, 0, 0) "Bye";
    /// `354 End data with <CR><LF>.<CR><LF>` (RFC 5321 4.2: no enhanced status on 3xx).
    START_DATA = 354 "End data with <CR><LF>.<CR><LF>";
    /// `220 2.0.0 Ready to start TLS` (RFC 3207 4).
    READY_TO_START_TLS = 220 (2, 0, 0) "Ready to start TLS";
    /// `235 2.7.0 Authentication successful` (RFC 4954 6).
    AUTH_SUCCESSFUL = 235 (2, 7, 0) "Authentication successful";
    /// `421 4.3.2 Service shutting down`.
    SHUTTING_DOWN = 421 (4, 3, 2) "Service shutting down, closing transmission channel";
    /// `421 4.4.2 Timeout`: a deadline of RFC 5321 4.5.3.2 expired.
    TIMEOUT = 421 (4, 4, 2) "Timeout, closing transmission channel";
    /// `421 4.7.0 Too many connections`.
    TOO_MANY_CONNECTIONS = 421 (4, 7, 0) "Too many connections, try again later";
    /// `451 4.3.0 Local error in processing`: what a failing handler costs.
    LOCAL_ERROR = 451 (4, 3, 0) "Local error in processing";
    /// `452 4.5.3 Too many recipients` (RFC 5321 4.5.3.1.10).
    TOO_MANY_RECIPIENTS = 452 (4, 5, 3) "Too many recipients";
    /// `500 5.5.2 Command unrecognized`.
    UNKNOWN_COMMAND = 500 (5, 5, 2) "Command unrecognized";
    /// `500 5.5.2 Line too long` (RFC 5321 4.5.3.1.4).
    LINE_TOO_LONG = 500 (5, 5, 2) "Line too long";
    /// `500 5.5.6 Authentication exchange line is too long` (RFC 4954 4).
    AUTH_LINE_TOO_LONG = 500 (5, 5, 6) "Authentication exchange line is too long";
    /// `502 5.5.1 Command not implemented`.
    NOT_IMPLEMENTED = 502 (5, 5, 1) "Command not implemented";
    /// `503 5.5.1 Bad sequence of commands`.
    BAD_SEQUENCE = 503 (5, 5, 1) "Bad sequence of commands";
    /// `504 5.5.4 Unrecognized authentication type` (RFC 4954 6).
    UNKNOWN_AUTH_MECHANISM = 504 (5, 5, 4) "Unrecognized authentication type";
    /// `530 5.7.0 Must issue a STARTTLS command first` (RFC 3207 4).
    STARTTLS_FIRST = 530 (5, 7, 0) "Must issue a STARTTLS command first";
    /// `530 5.7.0 Authentication required` (RFC 4954 6).
    AUTH_REQUIRED = 530 (5, 7, 0) "Authentication required";
    /// `535 5.7.8 Authentication credentials invalid` (RFC 4954 6).
    AUTH_INVALID = 535 (5, 7, 8) "Authentication credentials invalid";
    /// `538 5.7.11 Encryption required for requested authentication mechanism` (RFC 4954 6).
    AUTH_NEEDS_ENCRYPTION = 538 (5, 7, 11) "Encryption required for requested authentication mechanism";
    /// `552 5.3.4 Message size exceeds fixed maximum message size` (RFC 1870 6).
    MESSAGE_TOO_BIG = 552 (5, 3, 4) "Message size exceeds fixed maximum message size";
    /// `554 5.6.0 Message contains bare CR or LF` (RFC 5321 2.3.8).
    BARE_LINE_ENDING = 554 (5, 6, 0) "Message contains bare CR or LF, which SMTP forbids";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_single_and_multi_line() {
        let cases: &[(Reply, &str)] = &[
            (Reply::OK, "250 2.0.0 OK\r\n"),
            (Reply::START_DATA, "354 End data with <CR><LF>.<CR><LF>\r\n"),
            (Reply::new(250, None, ""), "250 \r\n"),
            (
                Reply::new(250, Some(EnhancedStatus::new(2, 0, 0)), ""),
                "250 2.0.0\r\n",
            ),
            (
                Reply::new(550, Some(EnhancedStatus::new(5, 1, 1)), "No\nsuch user"),
                "550-5.1.1 No\r\n550 5.1.1 such user\r\n",
            ),
            (Reply::new(250, None, "a\r\nb"), "250-a\r\n250 b\r\n"),
        ];
        for (reply, wire) in cases {
            assert_eq!(reply.to_string(), *wire);
        }
    }

    type Parsed = Result<Option<(u16, Option<&'static str>, &'static str, usize)>, ReplyError>;

    /// RFC 5321 4.2 replies, each fed whole and one byte at a time.
    #[test]
    fn parses_replies_whole_and_bytewise() {
        let cases: &[(&[u8], Parsed)] = &[
            (b"250 OK\r\n", Ok(Some((250, None, "OK", 8)))),
            (
                b"250 2.1.0 OK\r\n",
                Ok(Some((250, Some("2.1.0"), "OK", 14))),
            ),
            (b"250\r\n", Ok(Some((250, None, "", 5)))),
            (b"250 OK\n", Ok(Some((250, None, "OK", 7)))),
            // Class 4 status on a 2xx code is text, not a status.
            (b"250 4.1.0 x\r\n", Ok(Some((250, None, "4.1.0 x", 13)))),
            (
                b"250-mx.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n",
                Ok(Some((250, None, "mx.example\nPIPELINING\n8BITMIME", 46))),
            ),
            (
                b"550-5.1.1 No\r\n550 5.1.1 such\r\n",
                Ok(Some((550, Some("5.1.1"), "No\nsuch", 30))),
            ),
            (b"250-a\r\n251 b\r\n", Err(ReplyError::MixedCodes)),
            (b"25 OK\r\n", Err(ReplyError::Syntax)),
            (b"2500 OK\r\n", Err(ReplyError::Syntax)),
            (b"abc OK\r\n", Err(ReplyError::Syntax)),
            (b"150 OK\r\n", Err(ReplyError::Syntax)),
            (b"250-partial\r\n", Ok(None)),
        ];
        for (wire, want) in cases {
            let check = |got: Result<Option<(Reply, usize)>, ReplyError>| {
                let got = got.map(|o| {
                    o.map(|(r, n)| (r.code(), r.status().map(|s| s.to_string()), r.text, n))
                });
                let want =
                    (*want).map(|o| o.map(|(c, s, t, n)| (c, s.map(String::from), t.into(), n)));
                assert_eq!(got, want, "{:?}", String::from_utf8_lossy(wire));
            };
            check(Reply::parse(wire, 4096));
            // One byte at a time: every strict prefix is incomplete or already an error.
            let mut result = Ok(None);
            for n in 1..=wire.len() {
                result = Reply::parse(&wire[..n], 4096);
                if !matches!(result, Ok(None)) {
                    break;
                }
            }
            check(result);
        }
    }

    #[test]
    fn parse_is_bounded() {
        let long = vec![b'2'; 10_000];
        assert_eq!(Reply::parse(&long, 512), Err(ReplyError::TooLong));
        assert_eq!(
            Reply::parse(b"250 abcdefgh\r\n", 8),
            Err(ReplyError::TooLong)
        );
    }

    #[test]
    fn enhanced_status_parse() {
        assert_eq!(
            EnhancedStatus::parse("5.1.1"),
            Some(EnhancedStatus::new(5, 1, 1))
        );
        assert_eq!(
            EnhancedStatus::parse("4.123.999"),
            Some(EnhancedStatus::new(4, 123, 999))
        );
        for bad in [
            "3.1.1", "5.1", "5.1.1.1", "5..1", "5.1234.1", "a.b.c", "55.1.1",
        ] {
            assert_eq!(EnhancedStatus::parse(bad), None, "{bad}");
        }
    }
}

#[cfg(test)]
mod from_str_tests {
    use super::*;

    /// Code, enhanced status, text.
    type Parsed<'a> = (u16, Option<&'a str>, &'a str);

    #[test]
    fn parse_reply_text() {
        let cases: &[(&str, Option<Parsed<'_>>)] = &[
            (
                "550 5.1.1 No such user",
                Some((550, Some("5.1.1"), "No such user")),
            ),
            ("451 Try later", Some((451, None, "Try later"))),
            ("250", Some((250, None, ""))),
            ("421 4.3.2", Some((421, Some("4.3.2"), ""))),
            ("550 5.1.1", Some((550, Some("5.1.1"), ""))),
            (
                "550 1.1.1 not a status",
                Some((550, None, "1.1.1 not a status")),
            ),
            ("199 too small", None),
            ("600 too big", None),
            ("55 short", None),
            ("550-dash", None),
            ("", None),
            ("abc def", None),
        ];
        for (text, want) in cases {
            let got = text.parse::<Reply>().ok().map(|r| {
                let status = r.status().map(|s| s.to_string());
                (r.code(), status, r.text().to_string())
            });
            let want = want.map(|(c, s, t)| (c, s.map(str::to_string), t.to_string()));
            assert_eq!(got, want, "{text:?}");
        }
    }
}
