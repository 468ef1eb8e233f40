//! Paths and mailboxes of RFC 5321 4.1.2, with RFC 6531's UTF-8 extension.
//!
//! Strict by default: a path must be in angle brackets (`MAIL FROM:<a@b.example>`). A client
//! that sends `MAIL FROM:a@b.example` gets `501` unless the server opts into
//! [`ParseOptions::allow_missing_brackets`](crate::ParseOptions::allow_missing_brackets). We are
//! strict because the bracketless form is ambiguous with parameters and quoted local parts, and
//! because a lenient parser hides client bugs from the people who could fix them; the option
//! exists because some old clients and scripts send it and their operators must still get mail.

use std::borrow::Cow;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use nom::branch::alt;
use nom::bytes::complete::{tag, tag_no_case, take_while_m_n, take_while1};
use nom::character::complete::char;
use nom::combinator::{all_consuming, opt, recognize, verify};
use nom::multi::{many0, separated_list1};
use nom::sequence::{delimited, pair, preceded, terminated};
use nom::{IResult, Parser};

use crate::error::AddressError;

/// Longest local part, in octets (RFC 5321 4.5.3.1.1).
pub const MAX_LOCAL_PART: usize = 64;
/// Longest domain, in octets (RFC 5321 4.5.3.1.2).
pub const MAX_DOMAIN: usize = 255;
/// Longest path, brackets included, in octets (RFC 5321 4.5.3.1.3).
pub const MAX_PATH: usize = 256;

/// `local-part@domain`, as the client wrote it.
///
/// The local part keeps its quotes if it was a quoted string (`"john smith"`), so that it can be
/// written back unchanged; the domain keeps its brackets if it is an address literal
/// (`[192.0.2.1]`, `[IPv6:2001:db8::1]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Mailbox<'a> {
    local_part: Cow<'a, str>,
    domain: Cow<'a, str>,
}

impl<'a> Mailbox<'a> {
    /// Parses `local-part@domain` (no brackets). UTF-8 is accepted (RFC 6531 3.3); whether it
    /// is allowed in a given transaction is the caller's decision ([`Mailbox::is_ascii`]).
    ///
    /// ```
    /// use smtp_proto::Mailbox;
    /// let m = Mailbox::parse("\"john smith\"@[IPv6:2001:db8::1]").unwrap();
    /// assert_eq!((m.local_part(), m.domain()), ("\"john smith\"", "[IPv6:2001:db8::1]"));
    /// assert!(Mailbox::parse("a..b@example.com").is_err());
    /// ```
    pub fn parse(s: &'a str) -> Result<Self, AddressError> {
        let (_, (local, domain)) = all_consuming(mailbox)
            .parse(s)
            .map_err(|_| AddressError::Syntax)?;
        check_lengths(local, domain)?;
        Ok(Self {
            local_part: Cow::Borrowed(local),
            domain: Cow::Borrowed(domain),
        })
    }

    /// The local part, quotes included if it was quoted.
    pub fn local_part(&self) -> &str {
        &self.local_part
    }

    /// The domain, or the address literal with its brackets.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// True when the address is all ASCII: a non-ASCII one needs SMTPUTF8 (RFC 6531 3.2).
    pub fn is_ascii(&self) -> bool {
        self.local_part.is_ascii() && self.domain.is_ascii()
    }

    /// A copy that owns its text.
    pub fn into_owned(self) -> Mailbox<'static> {
        Mailbox {
            local_part: Cow::Owned(self.local_part.into_owned()),
            domain: Cow::Owned(self.domain.into_owned()),
        }
    }
}

impl fmt::Display for Mailbox<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local_part, self.domain)
    }
}

/// The argument of `MAIL FROM:` (RFC 5321 4.1.1.2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ReversePath<'a> {
    /// `<>`: the null sender of bounces and notifications.
    Null,
    /// A sender mailbox.
    Mailbox(Mailbox<'a>),
}

impl ReversePath<'_> {
    /// The mailbox, unless this is the null path.
    pub fn mailbox(&self) -> Option<&Mailbox<'_>> {
        match self {
            Self::Null => None,
            Self::Mailbox(m) => Some(m),
        }
    }

    /// A copy that owns its text.
    pub fn into_owned(self) -> ReversePath<'static> {
        match self {
            Self::Null => ReversePath::Null,
            Self::Mailbox(m) => ReversePath::Mailbox(m.into_owned()),
        }
    }
}

impl fmt::Display for ReversePath<'_> {
    /// `<>` or `<mailbox>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Null => f.write_str("<>"),
            Self::Mailbox(m) => write!(f, "<{m}>"),
        }
    }
}

/// The argument of `RCPT TO:` (RFC 5321 4.1.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ForwardPath<'a> {
    /// `<Postmaster>` without a domain, in any case: it must be accepted (RFC 5321 4.5.1).
    Postmaster,
    /// A recipient mailbox.
    Mailbox(Mailbox<'a>),
}

impl ForwardPath<'_> {
    /// The mailbox, unless this is the bare `<Postmaster>`.
    pub fn mailbox(&self) -> Option<&Mailbox<'_>> {
        match self {
            Self::Postmaster => None,
            Self::Mailbox(m) => Some(m),
        }
    }

    /// A copy that owns its text.
    pub fn into_owned(self) -> ForwardPath<'static> {
        match self {
            Self::Postmaster => ForwardPath::Postmaster,
            Self::Mailbox(m) => ForwardPath::Mailbox(m.into_owned()),
        }
    }
}

impl fmt::Display for ForwardPath<'_> {
    /// `<Postmaster>` or `<mailbox>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Postmaster => f.write_str("<Postmaster>"),
            Self::Mailbox(m) => write!(f, "<{m}>"),
        }
    }
}

fn check_lengths(local: &str, domain: &str) -> Result<(), AddressError> {
    if local.len() > MAX_LOCAL_PART {
        Err(AddressError::LocalPartTooLong)
    } else if domain.len() > MAX_DOMAIN {
        Err(AddressError::DomainTooLong)
    } else {
        Ok(())
    }
}

/// What a path parsed into, before the caller decides what is allowed where.
pub(crate) enum RawPath<'a> {
    Null,
    Postmaster,
    Mailbox(Mailbox<'a>),
}

/// Splits `<path>` (or a bare mailbox if `bare_ok`) off the front of `s`; returns the path and
/// the rest (parameters).
pub(crate) fn split_path(s: &str, bare_ok: bool) -> Result<(RawPath<'_>, &str), PathError> {
    if s.starts_with('<') {
        let (rest, inner) = bracketed(s).map_err(|_| PathError::Address(AddressError::Syntax))?;
        let total = s.len() - rest.len();
        if total > MAX_PATH {
            return Err(PathError::Address(AddressError::PathTooLong));
        }
        if !rest.is_empty() && !rest.starts_with(' ') {
            return Err(PathError::Address(AddressError::Syntax));
        }
        let path = match inner {
            "" => RawPath::Null,
            p if p.eq_ignore_ascii_case("postmaster") => RawPath::Postmaster,
            p => {
                let (_, (local, domain)) = all_consuming(preceded(opt(source_route), mailbox))
                    .parse(p)
                    .map_err(|_| PathError::Address(AddressError::Syntax))?;
                check_lengths(local, domain).map_err(PathError::Address)?;
                RawPath::Mailbox(Mailbox {
                    local_part: Cow::Borrowed(local),
                    domain: Cow::Borrowed(domain),
                })
            }
        };
        Ok((path, rest))
    } else if bare_ok && !s.is_empty() {
        let end = s.find(' ').unwrap_or(s.len());
        let (addr, rest) = s.split_at(end);
        if addr.len() + 2 > MAX_PATH {
            return Err(PathError::Address(AddressError::PathTooLong));
        }
        let m = Mailbox::parse(addr).map_err(PathError::Address)?;
        Ok((RawPath::Mailbox(m), rest))
    } else {
        Err(PathError::NoBrackets)
    }
}

pub(crate) enum PathError {
    NoBrackets,
    Address(AddressError),
}

/// `<` anything up to the matching `>`, honouring quoted strings (a `>` may be quoted).
fn bracketed(s: &str) -> IResult<&str, &str> {
    delimited(
        char('<'),
        recognize(many0(alt((
            recognize(quoted_string),
            take_while1(|c: char| c != '>' && c != '"' && c != '<'),
        )))),
        char('>'),
    )
    .parse(s)
}

/// `A-d-l ":"`: `@one.example,@two.example:`, accepted and dropped (RFC 5321 4.1.2, C).
fn source_route(s: &str) -> IResult<&str, &str> {
    recognize(terminated(
        separated_list1(char(','), preceded(char('@'), domain)),
        char(':'),
    ))
    .parse(s)
}

fn mailbox(s: &str) -> IResult<&str, (&str, &str)> {
    (
        terminated(alt((dot_string, recognize(quoted_string))), char('@')),
        alt((address_literal, domain)),
    )
        .parse(s)
}

/// RFC 5322 atext, extended with UTF-8 by RFC 6531 3.3.
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii()
}

fn dot_string(s: &str) -> IResult<&str, &str> {
    recognize(separated_list1(char('.'), take_while1(is_atext))).parse(s)
}

/// `DQUOTE *(qtextSMTP / quoted-pairSMTP) DQUOTE`.
fn quoted_string(s: &str) -> IResult<&str, &str> {
    let qtext = take_while1(|c: char| {
        (c.is_ascii() && (' '..='~').contains(&c) && c != '"' && c != '\\') || !c.is_ascii()
    });
    let quoted_pair = recognize(pair(
        char('\\'),
        verify(nom::character::complete::anychar, |c: &char| {
            (' '..='~').contains(c)
        }),
    ));
    recognize(delimited(
        char('"'),
        many0(alt((qtext, quoted_pair))),
        char('"'),
    ))
    .parse(s)
}

/// `sub-domain *("." sub-domain)`, sub-domain being `Let-dig [Ldh-str]`, or a U-label.
fn domain(s: &str) -> IResult<&str, &str> {
    let sub_domain = verify(
        take_while1(|c: char| c.is_ascii_alphanumeric() || c == '-' || !c.is_ascii()),
        |label: &str| !label.starts_with('-') && !label.ends_with('-'),
    );
    recognize(separated_list1(char('.'), sub_domain)).parse(s)
}

/// `[IPv4]`, `[IPv6:...]` or `[tag:content]` (RFC 5321 4.1.3).
fn address_literal(s: &str) -> IResult<&str, &str> {
    let ipv4 = verify(
        take_while1(|c: char| c.is_ascii_digit() || c == '.'),
        |a: &str| a.parse::<Ipv4Addr>().is_ok(),
    );
    let ipv6 = preceded(
        tag_no_case("IPv6:"),
        verify(
            take_while1(|c: char| c.is_ascii_hexdigit() || c == ':' || c == '.'),
            |a: &str| a.parse::<Ipv6Addr>().is_ok(),
        ),
    );
    let general = (
        verify(
            take_while_m_n(1, 64, |c: char| c.is_ascii_alphanumeric() || c == '-'),
            |t: &str| !t.ends_with('-') && !t.eq_ignore_ascii_case("IPv6"),
        ),
        tag(":"),
        take_while1(|c: char| matches!(c, '!'..='Z' | '^'..='~')),
    );
    recognize(delimited(
        char('['),
        alt((recognize(ipv6), recognize(ipv4), recognize(general))),
        char(']'),
    ))
    .parse(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailboxes() {
        let ok: &[(&str, &str, &str)] = &[
            ("a@b", "a", "b"),
            ("first.last@example.com", "first.last", "example.com"),
            ("a+tag@sub-1.example.co", "a+tag", "sub-1.example.co"),
            ("!#$%&'*+-/=?^_`{|}~@x.y", "!#$%&'*+-/=?^_`{|}~", "x.y"),
            ("\"john smith\"@ex.com", "\"john smith\"", "ex.com"),
            ("\"a\\\"b\"@ex.com", "\"a\\\"b\"", "ex.com"),
            ("\"a@b>c\"@ex.com", "\"a@b>c\"", "ex.com"),
            ("x@[192.0.2.1]", "x", "[192.0.2.1]"),
            ("x@[IPv6:2001:db8::1]", "x", "[IPv6:2001:db8::1]"),
            ("x@[ipv6:::ffff:192.0.2.1]", "x", "[ipv6:::ffff:192.0.2.1]"),
            ("x@[tag:some-content]", "x", "[tag:some-content]"),
            // RFC 6531 3.3: UTF-8 local parts and U-labels.
            ("用户@例子.广告", "用户", "例子.广告"),
            ("josé@exämple.com", "josé", "exämple.com"),
        ];
        for (input, local, domain) in ok {
            let m = Mailbox::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!((m.local_part(), m.domain()), (*local, *domain), "{input}");
            assert_eq!(m.to_string(), *input);
        }
        let long_local = format!("{}@x.y", "a".repeat(65));
        let long_domain = format!("a@{}", "d.".repeat(128) + "x");
        let bad: &[(&str, AddressError)] = &[
            ("", AddressError::Syntax),
            ("a", AddressError::Syntax),
            ("@b", AddressError::Syntax),
            ("a@", AddressError::Syntax),
            ("a..b@c", AddressError::Syntax),
            (".a@c", AddressError::Syntax),
            ("a.@c", AddressError::Syntax),
            ("a b@c", AddressError::Syntax),
            ("a@-b.c", AddressError::Syntax),
            ("a@b-.c", AddressError::Syntax),
            ("a@b..c", AddressError::Syntax),
            ("a@b_c", AddressError::Syntax),
            ("a@[300.1.1.1]", AddressError::Syntax),
            ("a@[1.2.3]", AddressError::Syntax),
            ("a@[IPv6:zz::1]", AddressError::Syntax),
            ("a@[IPv6:1.2.3.4]", AddressError::Syntax),
            ("\"unterminated@b", AddressError::Syntax),
            ("\"bad\x01ctl\"@b", AddressError::Syntax),
            ("a\"b@c", AddressError::Syntax),
            (&long_local, AddressError::LocalPartTooLong),
            (&long_domain, AddressError::DomainTooLong),
        ];
        for (input, err) in bad {
            assert_eq!(Mailbox::parse(input), Err(*err), "{input:?}");
        }
        // Exactly at the limits.
        let local64 = format!("{}@x.y", "a".repeat(64));
        assert!(Mailbox::parse(&local64).is_ok());
    }

    #[test]
    fn ascii_check() {
        assert!(Mailbox::parse("a@b.c").unwrap().is_ascii());
        assert!(!Mailbox::parse("ä@b.c").unwrap().is_ascii());
        assert!(!Mailbox::parse("a@bä.c").unwrap().is_ascii());
    }
}
