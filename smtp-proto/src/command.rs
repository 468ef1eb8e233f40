//! SMTP and LMTP commands (RFC 5321 4.1.1, RFC 2033, RFC 3030, RFC 3207, RFC 4954), parsed from
//! one line without copying.

use std::borrow::Cow;
use std::fmt;

use nom::Parser;
use nom::bytes::complete::{tag_no_case, take_while_m_n, take_while1};
use nom::character::complete::char;
use nom::combinator::{all_consuming, opt};
use nom::sequence::preceded;

use crate::address::{ForwardPath, PathError, RawPath, ReversePath, plain_path, split_path};
use crate::error::{AddressError, ParseError};
use crate::params::{MAIL_USAGE, MailParams, RCPT_USAGE, RcptParams};

/// Choices a server makes about how lenient to be. The default is strict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ParseOptions {
    /// Accept `MAIL FROM:user@example.com` without angle brackets (see the
    /// [`address`](crate::address) module for why this is off by default).
    pub allow_missing_brackets: bool,
}

impl ParseOptions {
    /// The strict default.
    pub const fn new() -> Self {
        Self {
            allow_missing_brackets: false,
        }
    }

    /// Sets [`ParseOptions::allow_missing_brackets`].
    pub const fn allow_missing_brackets(mut self, allow: bool) -> Self {
        self.allow_missing_brackets = allow;
        self
    }
}

/// One command line, borrowing from the input where it can.
///
/// ```
/// use smtp_proto::{Command, ReversePath};
/// match Command::parse(b"MAIL FROM:<ann@example.com> SIZE=1024").unwrap() {
///     Command::Mail { from: ReversePath::Mailbox(m), params } => {
///         assert_eq!(m.to_string(), "ann@example.com");
///         assert_eq!(params.size, Some(1024));
///     }
///     other => panic!("{other:?}"),
/// }
/// let err = Command::parse(b"RCPT TO:<bad@@example.com>").unwrap_err();
/// assert_eq!(err.reply().code(), 553);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<'a> {
    /// `HELO domain` (RFC 5321 4.1.1.1).
    Helo {
        /// The client's name, as given.
        domain: Cow<'a, str>,
    },
    /// `EHLO domain` (RFC 5321 4.1.1.1).
    Ehlo {
        /// The client's name or address literal, as given.
        domain: Cow<'a, str>,
    },
    /// `LHLO domain` (RFC 2033 4.1).
    Lhlo {
        /// The client's name, as given.
        domain: Cow<'a, str>,
    },
    /// `MAIL FROM:<reverse-path> [parameters]` (RFC 5321 4.1.1.2).
    Mail {
        /// The sender.
        from: ReversePath<'a>,
        /// The ESMTP parameters.
        params: MailParams<'a>,
    },
    /// `RCPT TO:<forward-path> [parameters]` (RFC 5321 4.1.1.3).
    Rcpt {
        /// The recipient.
        to: ForwardPath<'a>,
        /// The ESMTP parameters.
        params: RcptParams<'a>,
    },
    /// `DATA` (RFC 5321 4.1.1.4).
    Data,
    /// `BDAT size [LAST]` (RFC 3030 2).
    Bdat {
        /// The chunk's size in octets.
        size: u64,
        /// True for the last chunk.
        last: bool,
    },
    /// `RSET` (RFC 5321 4.1.1.5).
    Rset,
    /// `NOOP [string]` (RFC 5321 4.1.1.9).
    Noop {
        /// The ignored argument.
        arg: Option<Cow<'a, str>>,
    },
    /// `QUIT` (RFC 5321 4.1.1.10).
    Quit,
    /// `VRFY string` (RFC 5321 4.1.1.6).
    Vrfy {
        /// The user or mailbox to verify.
        arg: Cow<'a, str>,
    },
    /// `EXPN string` (RFC 5321 4.1.1.7).
    Expn {
        /// The list to expand.
        arg: Cow<'a, str>,
    },
    /// `HELP [string]` (RFC 5321 4.1.1.8).
    Help {
        /// The topic.
        arg: Option<Cow<'a, str>>,
    },
    /// `STARTTLS` (RFC 3207 4).
    StartTls,
    /// `AUTH mechanism [initial-response]` (RFC 4954 4).
    Auth {
        /// The SASL mechanism name, as given (compare it case-insensitively).
        mechanism: Cow<'a, str>,
        /// The initial response, still base64 (`=` stands for an empty one).
        initial_response: Option<Cow<'a, str>>,
    },
}

impl<'a> Command<'a> {
    /// Parses one command line (without its line ending) with the strict default options.
    pub fn parse(line: &'a [u8]) -> Result<Self, ParseError> {
        Self::parse_with(line, ParseOptions::new())
    }

    /// Parses one command line (without its line ending).
    ///
    /// Verbs and the `FROM:`/`TO:` keywords are case-insensitive; trailing spaces are ignored,
    /// and so are spaces after `FROM:`/`TO:` (a common client habit that is not ambiguous).
    pub fn parse_with(line: &'a [u8], options: ParseOptions) -> Result<Self, ParseError> {
        // Trailing ASCII whitespace is never part of a UTF-8 sequence: trimmed as bytes.
        let line = line.trim_ascii_end();
        // Most lines are `MAIL FROM:` or `RCPT TO:` with one space: recognised by one
        // comparison of their first eight bytes.
        if let Some(head) = line.first_chunk::<8>() {
            let head = u64::from_le_bytes(*head);
            if head & RCPT_TO.1 == RCPT_TO.0 {
                return Self::parse_rcpt_path(skip_spaces(&line[8..]), line, options);
            }
            if head & MAIL_FRO.1 == MAIL_FRO.0
                && line
                    .get(8..10)
                    .is_some_and(|m| m[0] & 0xdf == b'M' && m[1] == b':')
            {
                return Self::parse_mail_path(skip_spaces(&line[10..]), line, options);
            }
        }
        let (verb, args) = match line.iter().position(|&b| b == b' ') {
            Some(sp) => {
                let args = &line[sp + 1..];
                let spaces = args.iter().take_while(|&&b| b == b' ').count();
                (&line[..sp], Some(&args[spaces..]))
            }
            None => (line, None),
        };
        // Verbs are matched as ASCII; four-letter ones as one upper-cased word.
        let verb4 = <[u8; 4]>::try_from(verb).map(verb_word);
        // MAIL and RCPT read their arguments as bytes and check as UTF-8 only what they keep
        // as text (every parameter value they accept is ASCII); the other commands take their
        // arguments as text. Either way a line that is not UTF-8 is refused as such.
        match verb4 {
            Ok(MAIL) => return Self::parse_mail(args.unwrap_or_default(), options),
            Ok(RCPT) => return Self::parse_rcpt(args.unwrap_or_default(), options),
            _ => {}
        }
        let args = args
            .map(std::str::from_utf8)
            .transpose()
            .map_err(|_| ParseError::InvalidUtf8)?;
        let text = |usage| {
            args.filter(|a| !a.is_empty() && a.chars().all(|c| !c.is_control()))
                .map(Cow::Borrowed)
                .ok_or(ParseError::Syntax { usage })
        };
        let none = |usage, cmd| match args {
            None => Ok(cmd),
            Some(_) => Err(ParseError::Syntax { usage }),
        };
        let optional = |usage| match args {
            None => Ok(None),
            Some(_) => text(usage).map(Some),
        };
        if verb.eq_ignore_ascii_case(b"STARTTLS") {
            return none("STARTTLS", Self::StartTls);
        }
        // A line that is not UTF-8 is refused as such, whatever else is wrong with it.
        let unknown = || match std::str::from_utf8(line) {
            Ok(_) => ParseError::UnknownCommand,
            Err(_) => ParseError::InvalidUtf8,
        };
        let Ok(verb) = verb4 else {
            return Err(unknown());
        };
        match verb {
            DATA => none("DATA", Self::Data),
            BDAT => Self::parse_bdat(args.unwrap_or("")),
            EHLO => Ok(Self::Ehlo {
                domain: hello_arg(args, "EHLO domain")?,
            }),
            HELO => Ok(Self::Helo {
                domain: hello_arg(args, "HELO domain")?,
            }),
            LHLO => Ok(Self::Lhlo {
                domain: hello_arg(args, "LHLO domain")?,
            }),
            RSET => none("RSET", Self::Rset),
            NOOP => Ok(Self::Noop {
                arg: optional("NOOP [string]")?,
            }),
            QUIT => none("QUIT", Self::Quit),
            VRFY => Ok(Self::Vrfy {
                arg: text("VRFY string")?,
            }),
            EXPN => Ok(Self::Expn {
                arg: text("EXPN string")?,
            }),
            HELP => Ok(Self::Help {
                arg: optional("HELP [string]")?,
            }),
            AUTH => Self::parse_auth(args.unwrap_or("")),
            _ => Err(unknown()),
        }
    }

    fn parse_mail(args: &'a [u8], options: ParseOptions) -> Result<Self, ParseError> {
        let usage = ParseError::Syntax { usage: MAIL_USAGE };
        let path = strip_keyword(args, b"FROM:").ok_or_else(|| utf8_first(args, usage))?;
        Self::parse_mail_path(path, args, options)
    }

    /// MAIL from its path on; `text` holds all of the line that may not be UTF-8.
    fn parse_mail_path(
        path: &'a [u8],
        text: &[u8],
        options: ParseOptions,
    ) -> Result<Self, ParseError> {
        let fail = |e| utf8_first(text, e);
        let usage = ParseError::Syntax { usage: MAIL_USAGE };
        let (from, rest) = match plain_path(path) {
            Some((mailbox, rest)) => (ReversePath::Mailbox(mailbox), rest),
            None => {
                let (path, rest) = path_by_grammar(path, options).map_err(|e| {
                    fail(match e {
                        PathError::NoBrackets => usage,
                        PathError::Address(e) => ParseError::BadSender(e),
                    })
                })?;
                let from = match path {
                    RawPath::Null => ReversePath::Null,
                    RawPath::Mailbox(m) => ReversePath::Mailbox(m),
                    RawPath::Postmaster => {
                        return Err(fail(ParseError::BadSender(AddressError::Syntax)));
                    }
                };
                (from, rest)
            }
        };
        // The parameters are read into the command where it is returned from, not built
        // apart and moved in: at this size the copy showed in the command benchmark.
        let mut command = Self::Mail {
            from,
            params: MailParams::default(),
        };
        let Self::Mail { from, params } = &mut command else {
            unreachable!("built above")
        };
        params.parse_into(rest).map_err(fail)?;
        // RFC 6531 3.5: a non-ASCII sender needs SMTPUTF8 on the same command.
        if from.mailbox().is_some_and(|m| !m.is_ascii()) && !params.smtputf8 {
            return Err(fail(ParseError::Utf8AddressWithoutSmtputf8));
        }
        debug_assert!(std::str::from_utf8(text).is_ok(), "{}", NOT_UTF8_ACCEPTED);
        Ok(command)
    }

    fn parse_rcpt(args: &'a [u8], options: ParseOptions) -> Result<Self, ParseError> {
        let usage = ParseError::Syntax { usage: RCPT_USAGE };
        let path = strip_keyword(args, b"TO:").ok_or_else(|| utf8_first(args, usage))?;
        Self::parse_rcpt_path(path, args, options)
    }

    /// RCPT from its path on; `text` holds all of the line that may not be UTF-8.
    fn parse_rcpt_path(
        path: &'a [u8],
        text: &[u8],
        options: ParseOptions,
    ) -> Result<Self, ParseError> {
        let fail = |e| utf8_first(text, e);
        let usage = ParseError::Syntax { usage: RCPT_USAGE };
        let (to, rest) = match plain_path(path) {
            Some((mailbox, rest)) => (ForwardPath::Mailbox(mailbox), rest),
            None => {
                let (path, rest) = path_by_grammar(path, options).map_err(|e| {
                    fail(match e {
                        PathError::NoBrackets => usage,
                        PathError::Address(e) => ParseError::BadRecipient(e),
                    })
                })?;
                let to = match path {
                    RawPath::Postmaster => ForwardPath::Postmaster,
                    RawPath::Mailbox(m) => ForwardPath::Mailbox(m),
                    RawPath::Null => {
                        return Err(fail(ParseError::BadRecipient(AddressError::Syntax)));
                    }
                };
                (to, rest)
            }
        };
        let mut command = Self::Rcpt {
            to,
            params: RcptParams::default(),
        };
        let Self::Rcpt { params, .. } = &mut command else {
            unreachable!("built above")
        };
        params.parse_into(rest).map_err(fail)?;
        debug_assert!(std::str::from_utf8(text).is_ok(), "{}", NOT_UTF8_ACCEPTED);
        Ok(command)
    }

    /// RFC 3030 2: `bdat-cmd = "BDAT" SP chunk-size [ SP end-marker ] CRLF`.
    fn parse_bdat(args: &'a str) -> Result<Self, ParseError> {
        let usage = ParseError::Syntax {
            usage: "BDAT size [LAST]",
        };
        // chunk-size = 1*DIGIT: any number of digits (a size past 64 bits saturates below).
        let size = take_while1(|c: char| c.is_ascii_digit());
        let last = opt(preceded(take_while1(|c| c == ' '), tag_no_case("LAST")));
        let (_, (size, last)) = all_consuming((size, last))
            .parse(args)
            .map_err(|_: nom::Err<nom::error::Error<&str>>| usage)?;
        // Twenty digits past 2^64: a chunk larger than any limit, refused with 552 and
        // drained, rather than a syntax error after which its bytes would be read as commands.
        let size = size.parse().unwrap_or(u64::MAX);
        Ok(Self::Bdat {
            size,
            last: last.is_some(),
        })
    }

    /// RFC 4954 4: `"AUTH" SP sasl-mech [SP initial-response]`, mechanism names per RFC 4422
    /// 3.1 (1 to 20 of upper-case letters, digits, `-`, `_`; we accept lower case too).
    fn parse_auth(args: &'a str) -> Result<Self, ParseError> {
        let usage = ParseError::Syntax {
            usage: "AUTH mechanism [initial-response]",
        };
        let mechanism = take_while_m_n(1, 20, |c: char| {
            c.is_ascii_alphanumeric() || c == '-' || c == '_'
        });
        let response = take_while1(|c: char| c.is_ascii_alphanumeric() || "+/=".contains(c));
        let (_, (mechanism, initial)) =
            all_consuming((mechanism, opt(preceded(char(' '), response))))
                .parse(args)
                .map_err(|_: nom::Err<nom::error::Error<&str>>| usage)?;
        Ok(Self::Auth {
            mechanism: Cow::Borrowed(mechanism),
            initial_response: initial.map(Cow::Borrowed),
        })
    }

    /// The verb, upper case.
    pub fn verb(&self) -> &'static str {
        match self {
            Self::Helo { .. } => "HELO",
            Self::Ehlo { .. } => "EHLO",
            Self::Lhlo { .. } => "LHLO",
            Self::Mail { .. } => "MAIL",
            Self::Rcpt { .. } => "RCPT",
            Self::Data => "DATA",
            Self::Bdat { .. } => "BDAT",
            Self::Rset => "RSET",
            Self::Noop { .. } => "NOOP",
            Self::Quit => "QUIT",
            Self::Vrfy { .. } => "VRFY",
            Self::Expn { .. } => "EXPN",
            Self::Help { .. } => "HELP",
            Self::StartTls => "STARTTLS",
            Self::Auth { .. } => "AUTH",
        }
    }

    /// A copy that owns its text.
    pub fn into_owned(self) -> Command<'static> {
        let own = |c: Cow<'a, str>| Cow::Owned(c.into_owned());
        match self {
            Self::Helo { domain } => Command::Helo {
                domain: own(domain),
            },
            Self::Ehlo { domain } => Command::Ehlo {
                domain: own(domain),
            },
            Self::Lhlo { domain } => Command::Lhlo {
                domain: own(domain),
            },
            Self::Mail { from, params } => Command::Mail {
                from: from.into_owned(),
                params: params.into_owned(),
            },
            Self::Rcpt { to, params } => Command::Rcpt {
                to: to.into_owned(),
                params: params.into_owned(),
            },
            Self::Data => Command::Data,
            Self::Bdat { size, last } => Command::Bdat { size, last },
            Self::Rset => Command::Rset,
            Self::Noop { arg } => Command::Noop { arg: arg.map(own) },
            Self::Quit => Command::Quit,
            Self::Vrfy { arg } => Command::Vrfy { arg: own(arg) },
            Self::Expn { arg } => Command::Expn { arg: own(arg) },
            Self::Help { arg } => Command::Help { arg: arg.map(own) },
            Self::StartTls => Command::StartTls,
            Self::Auth {
                mechanism,
                initial_response,
            } => Command::Auth {
                mechanism: own(mechanism),
                initial_response: initial_response.map(own),
            },
        }
    }
}

/// The argument of HELO, EHLO and LHLO: required, otherwise taken as given.
///
/// We do not check that it is a domain or address literal: clients send all sorts of names
/// there, refusing them loses mail and protects nothing, and the handler sees the value and
/// may refuse it itself.
fn hello_arg<'a>(args: Option<&'a str>, usage: &'static str) -> Result<Cow<'a, str>, ParseError> {
    args.filter(|a| !a.is_empty() && a.chars().all(|c| !c.is_control()))
        .map(Cow::Borrowed)
        .ok_or(ParseError::Syntax { usage })
}

/// A four-letter verb as one number, upper-cased: clearing bit 5 upper-cases a letter, and no
/// other byte becomes a letter that way.
const fn verb_word(verb: [u8; 4]) -> u32 {
    u32::from_le_bytes(verb) & 0xdfdf_dfdf
}

const MAIL: u32 = verb_word(*b"MAIL");
const RCPT: u32 = verb_word(*b"RCPT");
const DATA: u32 = verb_word(*b"DATA");
const BDAT: u32 = verb_word(*b"BDAT");
const EHLO: u32 = verb_word(*b"EHLO");
const HELO: u32 = verb_word(*b"HELO");
const LHLO: u32 = verb_word(*b"LHLO");
const RSET: u32 = verb_word(*b"RSET");
const NOOP: u32 = verb_word(*b"NOOP");
const QUIT: u32 = verb_word(*b"QUIT");
const VRFY: u32 = verb_word(*b"VRFY");
const EXPN: u32 = verb_word(*b"EXPN");
const HELP: u32 = verb_word(*b"HELP");
const AUTH: u32 = verb_word(*b"AUTH");

/// A line's first eight bytes, and the mask that upper-cases their letters (clearing bit 5)
/// and keeps every other byte whole.
const RCPT_TO: (u64, u64) = (
    u64::from_le_bytes(*b"RCPT TO:"),
    u64::from_le_bytes([0xdf, 0xdf, 0xdf, 0xdf, 0xff, 0xdf, 0xdf, 0xff]),
);
const MAIL_FRO: (u64, u64) = (
    u64::from_le_bytes(*b"MAIL FRO"),
    u64::from_le_bytes([0xdf, 0xdf, 0xdf, 0xdf, 0xff, 0xdf, 0xdf, 0xdf]),
);

fn skip_spaces(s: &[u8]) -> &[u8] {
    &s[s.iter().take_while(|&&b| b == b' ').count()..]
}

/// MAIL and RCPT check as UTF-8 only the text they keep (the mailbox, and parameter values
/// taken through `params::xtext_value`); every other byte they accept is ASCII. A parameter
/// added later that kept its value as raw bytes would break that: the tests and fuzzers, built
/// with debug assertions, would then stop here.
const NOT_UTF8_ACCEPTED: &str = "a MAIL or RCPT line that is not UTF-8 was accepted";

/// `error`, unless `args` is not UTF-8: then that is the error (arguments that are not text
/// are refused as such, whatever else is wrong with them).
fn utf8_first(args: &[u8], error: ParseError) -> ParseError {
    match std::str::from_utf8(args) {
        Ok(_) => error,
        Err(_) => ParseError::InvalidUtf8,
    }
}

/// Strips a case-insensitive `FROM:` or `TO:` and any spaces after it.
fn strip_keyword<'a>(args: &'a [u8], keyword: &[u8]) -> Option<&'a [u8]> {
    let head = args.get(..keyword.len())?;
    head.eq_ignore_ascii_case(keyword)
        .then(|| skip_spaces(&args[keyword.len()..]))
}

/// A path that [`plain_path`] does not take, and the bytes after it: read as text by the full
/// grammar. Bytes that are not UTF-8 are a syntax error here, which the caller reports as
/// invalid UTF-8 ([`utf8_first`]).
fn path_by_grammar(s: &[u8], options: ParseOptions) -> Result<(RawPath<'_>, &[u8]), PathError> {
    let s = std::str::from_utf8(s).map_err(|_| PathError::Address(AddressError::Syntax))?;
    let (path, rest) = split_path(s, options.allow_missing_brackets)?;
    Ok((path, rest.as_bytes()))
}

impl fmt::Display for Command<'_> {
    /// The command line as a client sends it, without the CRLF.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = self.verb();
        match self {
            Self::Helo { domain } | Self::Ehlo { domain } | Self::Lhlo { domain } => {
                write!(f, "{verb} {domain}")
            }
            Self::Mail { from, params } => write!(f, "MAIL FROM:{from}{params}"),
            Self::Rcpt { to, params } => write!(f, "RCPT TO:{to}{params}"),
            Self::Bdat { size, last } => {
                write!(f, "BDAT {size}{}", if *last { " LAST" } else { "" })
            }
            Self::Vrfy { arg } | Self::Expn { arg } => write!(f, "{verb} {arg}"),
            Self::Noop { arg: Some(arg) } | Self::Help { arg: Some(arg) } => {
                write!(f, "{verb} {arg}")
            }
            Self::Auth {
                mechanism,
                initial_response,
            } => {
                write!(f, "AUTH {mechanism}")?;
                match initial_response {
                    Some(r) => write!(f, " {r}"),
                    None => Ok(()),
                }
            }
            Self::Data
            | Self::Rset
            | Self::Quit
            | Self::StartTls
            | Self::Noop { arg: None }
            | Self::Help { arg: None } => f.write_str(verb),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Framed, LineFramer, Mailbox, Reply};

    /// Frames `input` (one line) and parses it, fed whole and one byte at a time; both must
    /// agree. Returns the command printed back, or the reply code and enhanced status.
    /// The command printed back, or the reply code and enhanced status.
    type Outcome = Result<String, (u16, String)>;

    fn parse_both(input: &str, options: ParseOptions) -> Outcome {
        let show = |r: Result<Command<'_>, ParseError>| match r {
            Ok(c) => Ok(c.to_string()),
            Err(e) => {
                let reply: Reply = e.reply();
                Err((
                    reply.code(),
                    reply.status().map(|s| s.to_string()).unwrap_or_default(),
                ))
            }
        };
        let wire = format!("{input}\r\n");
        let mut framer = LineFramer::new(1024);
        let whole = match framer.next_line(wire.as_bytes()) {
            Framed::Line { line, .. } => show(Command::parse_with(line, options)),
            other => panic!("{other:?}"),
        };
        let mut buf = Vec::new();
        let mut bytewise = None;
        for b in wire.bytes() {
            buf.push(b);
            match framer.next_line(&buf) {
                Framed::Line { line, .. } => {
                    bytewise = Some(show(Command::parse_with(line, options)));
                }
                Framed::Incomplete { consumed: 0 } => {}
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(Some(&whole), bytewise.as_ref(), "bytewise {input:?}");
        whole
    }

    fn ok(s: &str) -> Outcome {
        Ok(s.to_string())
    }

    fn err(code: u16, status: &str) -> Outcome {
        Err((code, status.to_string()))
    }

    /// (input, canonical form or reply). RFC 5321 4.1.1 unless noted.
    #[test]
    fn command_vectors() {
        let long_local = format!("MAIL FROM:<{}@x.example>", "a".repeat(65));
        let long_path = format!("RCPT TO:<{}@{}.example>", "a".repeat(64), "d".repeat(200));
        let cases: Vec<(&str, Outcome)> = vec![
            // Hello.
            ("EHLO client.example", ok("EHLO client.example")),
            ("ehlo [192.0.2.1]", ok("EHLO [192.0.2.1]")),
            ("HELO x", ok("HELO x")),
            ("LHLO lmtp.example", ok("LHLO lmtp.example")),
            ("EHLO", err(501, "5.5.4")),
            ("EHLO ", err(501, "5.5.4")),
            // MAIL (4.1.1.2), null path, parameters, case, spaces after the colon.
            ("MAIL FROM:<a@b.example>", ok("MAIL FROM:<a@b.example>")),
            ("mail from:<a@b.example>", ok("MAIL FROM:<a@b.example>")),
            ("MAIL FROM: <a@b.example>", ok("MAIL FROM:<a@b.example>")),
            ("MAIL FROM:<>", ok("MAIL FROM:<>")),
            ("MAIL FROM:<> SIZE=0", ok("MAIL FROM:<> SIZE=0")),
            (
                "MAIL FROM:<a@b.example> size=10 body=BINARYMIME",
                ok("MAIL FROM:<a@b.example> SIZE=10 BODY=BINARYMIME"),
            ),
            (
                "MAIL FROM:<@r1.example,@r2.example:a@b.example>",
                ok("MAIL FROM:<a@b.example>"),
            ),
            (
                "MAIL FROM:<\"x y\"@b.example>",
                ok("MAIL FROM:<\"x y\"@b.example>"),
            ),
            ("MAIL FROM:<a@[IPv6:::1]>", ok("MAIL FROM:<a@[IPv6:::1]>")),
            ("MAIL FROM:<a@b.example>   ", ok("MAIL FROM:<a@b.example>")),
            ("MAIL FROM:a@b.example", err(501, "5.5.4")),
            ("MAIL FROM:", err(501, "5.5.4")),
            ("MAIL", err(501, "5.5.4")),
            ("MAIL TO:<a@b.example>", err(501, "5.5.4")),
            ("MAIL FROM:<a@b.example", err(553, "5.1.7")),
            ("MAIL FROM:<a@@b.example>", err(553, "5.1.7")),
            ("MAIL FROM:<Postmaster>", err(553, "5.1.7")),
            ("MAIL FROM:<a@b.example>x", err(553, "5.1.7")),
            (long_local.as_str(), err(553, "5.1.7")),
            ("MAIL FROM:<a@b.example> FOO=1", err(555, "5.5.4")),
            ("MAIL FROM:<a@b.example> SIZE=1 SIZE=1", err(501, "5.5.4")),
            ("MAIL FROM:<a@b.example> SIZE=x", err(501, "5.5.4")),
            // RFC 6531 3.4/3.5: UTF-8 needs SMTPUTF8 on MAIL.
            (
                "MAIL FROM:<jos\u{e9}@b.example> SMTPUTF8",
                ok("MAIL FROM:<jos\u{e9}@b.example> SMTPUTF8"),
            ),
            ("MAIL FROM:<jos\u{e9}@b.example>", err(553, "5.6.7")),
            (
                "MAIL FROM:<a@b.example> SMTPUTF8 RET=FULL ENVID=x+2By",
                ok("MAIL FROM:<a@b.example> SMTPUTF8 RET=FULL ENVID=x+2By"),
            ),
            // RCPT (4.1.1.3); Postmaster in any case (4.5.1).
            ("RCPT TO:<b@c.example>", ok("RCPT TO:<b@c.example>")),
            ("RCPT TO:<postMaster>", ok("RCPT TO:<Postmaster>")),
            (
                "RCPT TO:<postmaster@c.example>",
                ok("RCPT TO:<postmaster@c.example>"),
            ),
            (
                "rcpt to: <b@c.example> NOTIFY=FAILURE,DELAY ORCPT=rfc822;b+40c",
                ok("RCPT TO:<b@c.example> NOTIFY=FAILURE,DELAY ORCPT=rfc822;b@c"),
            ),
            (
                "RCPT TO:<\u{7528}\u{6237}@\u{4f8b}\u{5b50}.\u{5e7f}\u{544a}>",
                ok("RCPT TO:<\u{7528}\u{6237}@\u{4f8b}\u{5b50}.\u{5e7f}\u{544a}>"),
            ),
            ("RCPT TO:<>", err(553, "5.1.3")),
            ("RCPT TO:<b>", err(553, "5.1.3")),
            ("RCPT TO:b@c.example", err(501, "5.5.4")),
            ("RCPT FROM:<b@c.example>", err(501, "5.5.4")),
            ("RCPT TO:<b@c.example> SIZE=1", err(555, "5.5.4")),
            (long_path.as_str(), err(553, "5.1.3")),
            // DATA, BDAT (RFC 3030 2).
            ("DATA", ok("DATA")),
            ("data", ok("DATA")),
            ("DATA x", err(501, "5.5.4")),
            ("BDAT 0 LAST", ok("BDAT 0 LAST")),
            ("BDAT 1000", ok("BDAT 1000")),
            ("bdat 5 last", ok("BDAT 5 LAST")),
            ("BDAT 9223372036854775808", ok("BDAT 9223372036854775808")),
            // Over 64 bits: larger than any limit (552 and drained by the session), not 501.
            ("BDAT 18446744073709551616", ok("BDAT 18446744073709551615")),
            (
                "BDAT 123456789012345678901",
                ok("BDAT 18446744073709551615"),
            ),
            ("BDAT 00000000000000000000005 LAST", ok("BDAT 5 LAST")),
            ("BDAT", err(501, "5.5.4")),
            ("BDAT x", err(501, "5.5.4")),
            ("BDAT -1", err(501, "5.5.4")),
            ("BDAT 1 FIRST", err(501, "5.5.4")),
            // The rest.
            ("RSET", ok("RSET")),
            ("RSET now", err(501, "5.5.4")),
            ("NOOP", ok("NOOP")),
            ("NOOP anything at all", ok("NOOP anything at all")),
            ("QUIT", ok("QUIT")),
            ("VRFY ann", ok("VRFY ann")),
            ("VRFY", err(501, "5.5.4")),
            ("EXPN list", ok("EXPN list")),
            ("HELP", ok("HELP")),
            ("HELP MAIL", ok("HELP MAIL")),
            ("STARTTLS", ok("STARTTLS")),
            ("STARTTLS now", err(501, "5.5.4")),
            // RFC 4954 4.
            ("AUTH PLAIN", ok("AUTH PLAIN")),
            (
                "AUTH PLAIN AGFubgBzZWNyZXQ=",
                ok("AUTH PLAIN AGFubgBzZWNyZXQ="),
            ),
            ("AUTH PLAIN =", ok("AUTH PLAIN =")),
            ("AUTH X-OAUTH_2 abc", ok("AUTH X-OAUTH_2 abc")),
            ("AUTH", err(501, "5.5.4")),
            ("AUTH PLAIN a b", err(501, "5.5.4")),
            ("AUTH PLAIN ***", err(501, "5.5.4")),
            ("AUTH ABCDEFGHIJKLMNOPQRSTU", err(501, "5.5.4")),
            // Unknown and malformed.
            ("FROB", err(500, "5.5.2")),
            ("", err(500, "5.5.2")),
            ("MAILFROM:<a@b>", err(500, "5.5.2")),
            ("NOOP\rRSET", err(500, "5.5.2")),
        ];
        for (input, want) in &cases {
            assert_eq!(&parse_both(input, ParseOptions::new()), want, "{input:?}");
        }
        // Invalid UTF-8 never reaches the parser as text.
        assert_eq!(
            Command::parse(b"MAIL FROM:<\xff@b>"),
            Err(ParseError::InvalidUtf8)
        );
    }

    /// A line that is not UTF-8 is refused as such (`InvalidUtf8`), whatever
    /// else is wrong with it and wherever the bad byte is; MAIL and RCPT check only what they
    /// keep as text, so this pins that nothing slips through.
    #[test]
    fn invalid_utf8_anywhere_is_refused_as_such() {
        for line in [
            &b"MAIL FROM:<\xff@b.example>"[..],
            b"MAIL FROM:<a@b.example\xff>",
            b"MAIL FROM:<a@b.example> SIZE=1\xff",
            b"MAIL FROM:<a@b.example> \xff",
            b"MAIL FROM:<a@b.example> X\xff=1",
            b"MAIL FROM:<a@b.example> ENVID=\xff",
            b"MAIL FROM:\xff",
            b"MAIL \xff",
            b"RCPT TO:<a@b.example> NOTIFY=\xff",
            b"RCPT TO:<a@b.example> ORCPT=rfc822;\xff",
            b"RCPT TO:<@x,@y:\xff@b>",
            b"RCPT TO:<\"\xff\"@b>",
            b"EHLO \xff",
            b"NOOP \xff",
            b"XXXX \xff",
            b"\xff",
            b"MA\xffL FROM:<a@b.example>",
        ] {
            assert_eq!(
                Command::parse(line),
                Err(ParseError::InvalidUtf8),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
        // UTF-8 that is valid goes through, where RFC 6531 allows it.
        assert!(Command::parse("MAIL FROM:<é@b.example> SMTPUTF8".as_bytes()).is_ok());
        assert!(Command::parse("RCPT TO:<é@bé.example>".as_bytes()).is_ok());
        assert_eq!(
            Command::parse("MAIL FROM:<é@b.example>".as_bytes()),
            Err(ParseError::Utf8AddressWithoutSmtputf8)
        );
    }

    /// `MAIL FROM:` and `RCPT TO:` are recognised by their first eight bytes at once: the
    /// same answers as word by word, in any case, and nothing else taken for them.
    #[test]
    fn mail_and_rcpt_heads() {
        let same = [
            ("mail from:<a@b.example>", "MAIL FROM:<a@b.example>"),
            (
                "MaIl FrOm:<a@b.example> size=5",
                "MAIL FROM:<a@b.example> SIZE=5",
            ),
            ("MAIL  FROM:<a@b.example>", "MAIL FROM:<a@b.example>"),
            ("MAIL FROM:  <a@b.example>", "MAIL FROM:<a@b.example>"),
            ("rcpt to:<a@b.example>", "RCPT TO:<a@b.example>"),
            ("RCPT TO: <postmaster>", "RCPT TO:<Postmaster>"),
            ("RCPT   TO:<a@b.example>", "RCPT TO:<a@b.example>"),
        ];
        for (line, printed) in same {
            let command = Command::parse(line.as_bytes()).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(command.to_string(), printed, "{line}");
        }
        for line in [
            &b"RCPT TO\x1a<a@b.example>"[..],
            b"RCPT T\x0f:<a@b.example>",
            b"MAIL FROMX<a@b.example>",
            b"MAIL FRO:<a@b.example>",
            b"MAIL\x00FROM:<a@b.example>",
            b"RCPT TO:",
            b"MAIL FROM:",
        ] {
            assert!(
                Command::parse(line).is_err(),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn missing_brackets_when_allowed() {
        let lenient = ParseOptions::new().allow_missing_brackets(true);
        assert_eq!(
            parse_both("MAIL FROM:a@b.example SIZE=5", lenient),
            ok("MAIL FROM:<a@b.example> SIZE=5")
        );
        assert_eq!(
            parse_both("RCPT TO:b@c.example", lenient),
            ok("RCPT TO:<b@c.example>")
        );
        assert_eq!(parse_both("RCPT TO:b", lenient), err(553, "5.1.3"));
        assert_eq!(parse_both("MAIL FROM:", lenient), err(501, "5.5.4"));
        assert_eq!(parse_both("MAIL FROM:<>", lenient), ok("MAIL FROM:<>"));
    }

    #[test]
    fn borrows_and_owns() {
        let line = b"MAIL FROM:<a@b.example> ENVID=xyz".to_vec();
        let cmd = Command::parse(&line).unwrap();
        let Command::Mail { from, params } = &cmd else {
            panic!()
        };
        let m: &Mailbox<'_> = from.mailbox().unwrap();
        let within = |s: &str| line.as_ptr_range().contains(&s.as_ptr());
        assert!(
            within(m.local_part()) && within(m.domain()),
            "borrowed from the line"
        );
        assert!(matches!(params.envid, Some(Cow::Borrowed("xyz"))));
        let owned: Command<'static> = cmd.clone().into_owned();
        drop(line);
        assert_eq!(owned.to_string(), "MAIL FROM:<a@b.example> ENVID=xyz");
    }
}
