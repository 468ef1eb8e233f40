//! Paths and mailboxes of RFC 5321 4.1.2, with RFC 6531's UTF-8 extension.
//!
//! Strict by default: a path must be in angle brackets (`MAIL FROM:<a@b.example>`). A client
//! that sends `MAIL FROM:a@b.example` gets `501` unless the server opts into
//! [`ParseOptions::allow_missing_brackets`](crate::ParseOptions::allow_missing_brackets). We are
//! strict because the bracketless form is ambiguous with parameters and quoted local parts, and
//! because a lenient parser hides client bugs from the people who could fix them; the option
//! exists because some old clients and scripts send it and their operators must still get mail.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use nom::branch::alt;
use nom::bytes::complete::{tag, tag_no_case, take_while_m_n, take_while1};
use nom::character::complete::char;
use nom::combinator::{all_consuming, opt, recognize, verify};
use nom::multi::many0_count;
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
#[derive(Clone)]
pub struct Mailbox<'a> {
    /// `local-part@domain`, whole: one piece of text, so that an owned mailbox is one
    /// allocation, and a copy of it none (the session, the envelope and the handler's view
    /// share it).
    text: Text<'a>,
    /// Where the `@` between the local part and the domain is.
    at: usize,
}

/// A mailbox's text: in the command line it was parsed from, or owned and shared.
#[derive(Clone)]
enum Text<'a> {
    Borrowed(&'a str),
    Shared(Arc<str>),
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
            .parse(s.as_bytes())
            .map_err(|_| AddressError::Syntax)?;
        let (local, domain) = (sub(s, local), sub(s, domain));
        check_lengths(local, domain)?;
        Ok(Self::from_parts(s, local, domain))
    }

    /// The mailbox whose local part and domain are these two pieces of `outer`, written
    /// `local@domain` in it (as every parser here finds them).
    fn from_parts(outer: &'a str, local: &'a str, domain: &'a str) -> Self {
        let start = local.as_ptr() as usize - outer.as_ptr() as usize;
        let end = domain.as_ptr() as usize - outer.as_ptr() as usize + domain.len();
        let text = &outer[start..end];
        debug_assert_eq!(text.len(), local.len() + 1 + domain.len());
        Self {
            text: Text::Borrowed(text),
            at: local.len(),
        }
    }

    /// `local-part@domain`.
    fn text(&self) -> &str {
        match &self.text {
            Text::Borrowed(s) => s,
            Text::Shared(s) => s,
        }
    }

    /// The local part, quotes included if it was quoted.
    pub fn local_part(&self) -> &str {
        &self.text()[..self.at]
    }

    /// The domain, or the address literal with its brackets.
    pub fn domain(&self) -> &str {
        &self.text()[self.at + 1..]
    }

    /// True when the address is all ASCII: a non-ASCII one needs SMTPUTF8 (RFC 6531 3.2).
    pub fn is_ascii(&self) -> bool {
        self.text().is_ascii()
    }

    /// A copy that owns its text (one allocation; copies of it share the text).
    pub fn into_owned(self) -> Mailbox<'static> {
        let text = match self.text {
            Text::Borrowed(s) => Arc::from(s),
            Text::Shared(s) => s,
        };
        Mailbox {
            text: Text::Shared(text),
            at: self.at,
        }
    }
}

impl PartialEq for Mailbox<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at && self.text() == other.text()
    }
}

impl Eq for Mailbox<'_> {}

impl std::hash::Hash for Mailbox<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.local_part().hash(state);
        self.domain().hash(state);
    }
}

impl fmt::Debug for Mailbox<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailbox")
            .field("local_part", &self.local_part())
            .field("domain", &self.domain())
            .finish()
    }
}

impl fmt::Display for Mailbox<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
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
    /// The address without angle brackets: `ann@example.com`, or `""` for the null path.
    pub fn address(&self) -> String {
        self.mailbox().map(ToString::to_string).unwrap_or_default()
    }

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
    /// The address without angle brackets: `ann@example.com`, or `Postmaster`.
    pub fn address(&self) -> String {
        self.mailbox()
            .map_or_else(|| "Postmaster".to_string(), ToString::to_string)
    }

    /// True when the mailbox's domain is `domain`, compared without regard to ASCII case
    /// (domains are case-insensitive, RFC 5321 2.4); false for the bare `<Postmaster>`.
    pub fn has_domain(&self, domain: &str) -> bool {
        self.mailbox()
            .is_some_and(|m| m.domain().eq_ignore_ascii_case(domain))
    }

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
        // Fast path: no quoted string before the first `>`.
        let bytes = s.as_bytes();
        let gt =
            memchr::memchr(b'>', bytes).filter(|&gt| memchr::memchr(b'"', &bytes[..gt]).is_none());
        let (rest, inner) = match gt {
            Some(gt) => (&s[gt + 1..], &s[1..gt]),
            None => bracketed(s).ok_or(PathError::Address(AddressError::Syntax))?,
        };
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
                let (local, domain) =
                    routed_mailbox(p).ok_or(PathError::Address(AddressError::Syntax))?;
                check_lengths(local, domain).map_err(PathError::Address)?;
                RawPath::Mailbox(Mailbox::from_parts(p, local, domain))
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

/// The path nearly every command carries, `<dot-string@domain>` within the length limits and
/// followed by the end or a space, checked in one pass over its bytes; `None` for anything
/// else (source routes, quoted local parts, address literals, the null path, text that is not
/// UTF-8, errors), which the caller then reads as text by the full grammar ([`split_path`]).
/// For every input this accepts, the grammar gives the same mailbox and rest
/// (`plain_path_agrees_with_split_path`).
#[inline]
pub(crate) fn plain_path(b: &[u8]) -> Option<(Mailbox<'_>, &[u8])> {
    if b.first() != Some(&b'<') {
        return None;
    }
    // Each part is one loop that ends at its delimiter; dots and hyphens are checked on the
    // way without branching, so a path costs two hard-to-predict branches, not one per atom
    // and label. (A table-driven automaton was tried: each byte then waits for the previous
    // lookup, and it was slower.)
    //
    // The local part: atoms of atext joined by single dots.
    let mut i = 1;
    let mut bad = false;
    let mut prev = b'.';
    while let Some(&c) = b.get(i) {
        if !LOCAL[usize::from(c)] {
            break;
        }
        bad |= (c == b'.') & (prev == b'.');
        prev = c;
        i += 1;
    }
    if bad || prev == b'.' || b.get(i) != Some(&b'@') {
        return None;
    }
    let at = i;
    // The domain: labels of letters, digits, hyphens and UTF-8 joined by single dots; a label
    // neither starts nor ends with a hyphen.
    i += 1;
    prev = b'.';
    while let Some(&c) = b.get(i) {
        if !DOMAIN[usize::from(c)] {
            break;
        }
        bad |= ((c == b'.') & ((prev == b'.') | (prev == b'-'))) | ((c == b'-') & (prev == b'.'));
        prev = c;
        i += 1;
    }
    if bad || prev == b'.' || prev == b'-' || b.get(i) != Some(&b'>') {
        return None;
    }
    let gt = i;
    let fits = at - 1 <= MAX_LOCAL_PART && gt - at - 1 <= MAX_DOMAIN && gt < MAX_PATH;
    let rest = &b[gt + 1..];
    if !fits || rest.first().is_some_and(|&c| c != b' ') {
        return None;
    }
    let text = std::str::from_utf8(&b[1..gt]).ok()?;
    let mailbox = Mailbox {
        text: Text::Borrowed(text),
        at: at - 1,
    };
    Some((mailbox, rest))
}

/// What a local part in dot-atom form is made of: atext and dots.
const LOCAL: [bool; 256] = {
    let mut t = ATEXT;
    t[b'.' as usize] = true;
    t
};
/// What a domain of labels is made of: letters, digits, hyphens, UTF-8 and dots.
const DOMAIN: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b >= 0x80;
        i += 1;
    }
    t
};
pub(crate) enum PathError {
    NoBrackets,
    Address(AddressError),
}

/// `<` anything up to the matching `>`, honouring quoted strings (a `>` may be quoted).
fn bracketed(s: &str) -> Option<(&str, &str)> {
    let (rest, inner) = delimited(
        char('<'),
        recognize(many0_count(alt((
            recognize(quoted_string),
            take_while1(|b: u8| b != b'>' && b != b'"' && b != b'<'),
        )))),
        char('>'),
    )
    .parse(s.as_bytes())
    .ok()?;
    Some((sub(s, rest), sub(s, inner)))
}

/// The grammar below works on bytes, which is where nom is fast. The input was valid UTF-8
/// and every delimiter is ASCII, so each recognised part is valid UTF-8 too: [`sub`] maps it
/// back to the `&str` it came from. A byte of 0x80 or more is part of a UTF-8 character,
/// allowed wherever RFC 6531 allows UTF8-non-ascii.
type In<'a> = &'a [u8];

/// The part of `s` that `part` (a subslice of `s.as_bytes()`) covers.
fn sub<'a>(s: &'a str, part: &[u8]) -> &'a str {
    let start = part.as_ptr() as usize - s.as_ptr() as usize;
    &s[start..start + part.len()]
}

/// `[A-d-l ":"] Mailbox`, the inside of `<...>`; the source route is dropped.
///
/// Nearly every path is `dot-string@domain`: that shape is checked by two loops over the
/// bytes (what the command benchmark spends most of its time on); source routes, quoted
/// local parts and address literals go through the full grammar. Both give the same answer
/// for every input (`fast_path_agrees_with_the_grammar`).
fn routed_mailbox(s: &str) -> Option<(&str, &str)> {
    let b = s.as_bytes();
    match b.iter().position(|&c| c == b'@') {
        Some(at) if at > 0 && b[0] != b'"' && b.get(at + 1) != Some(&b'[') => {
            let (local, domain) = (&b[..at], &b[at + 1..]);
            (is_dot_string(local) && is_domain(domain)).then(|| (&s[..at], &s[at + 1..]))
        }
        _ => routed_mailbox_grammar(s),
    }
}

/// [`routed_mailbox`] by the grammar alone.
fn routed_mailbox_grammar(s: &str) -> Option<(&str, &str)> {
    let (_, (local, domain)) = all_consuming(preceded(opt(source_route), mailbox))
        .parse(s.as_bytes())
        .ok()?;
    Some((sub(s, local), sub(s, domain)))
}

/// The whole of `b` is `Dot-string` (RFC 5321 4.1.2): atoms of atext joined by single dots.
fn is_dot_string(b: &[u8]) -> bool {
    b.split(|&c| c == b'.')
        .all(|atom| !atom.is_empty() && atom.iter().all(|&c| is_atext(c)))
}

/// The whole of `b` is a `Domain` of sub-domains (no address literal).
fn is_domain(b: &[u8]) -> bool {
    b.split(|&c| c == b'.').all(|label| {
        !label.is_empty()
            && label[0] != b'-'
            && label[label.len() - 1] != b'-'
            && label
                .iter()
                .all(|&c| c.is_ascii_alphanumeric() || c == b'-' || c >= 0x80)
    })
}

/// `A-d-l ":"`: `@one.example,@two.example:`, accepted and dropped (RFC 5321 4.1.2, C).
fn source_route(s: In<'_>) -> IResult<In<'_>, In<'_>> {
    recognize(terminated(
        list1(|| preceded(char('@'), domain), b','),
        char(':'),
    ))
    .parse(s)
}

fn mailbox(s: In<'_>) -> IResult<In<'_>, (In<'_>, In<'_>)> {
    (
        terminated(alt((dot_string, quoted_string)), char('@')),
        alt((address_literal, domain)),
    )
        .parse(s)
}

/// `p *(sep p)`, without collecting (nom's `separated_list1` allocates a Vec).
fn list1<'a, P>(p: impl Fn() -> P, sep: u8) -> impl Parser<In<'a>, Output = (), Error = P::Error>
where
    P: Parser<In<'a>, Error = nom::error::Error<In<'a>>>,
{
    (p(), many0_count(preceded(char(char::from(sep)), p()))).map(|_| ())
}

/// RFC 5322 atext, extended with UTF-8 by RFC 6531 3.3.
fn is_atext(b: u8) -> bool {
    ATEXT[usize::from(b)]
}

const ATEXT: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric() || b >= 0x80;
        i += 1;
    }
    let specials = b"!#$%&'*+-/=?^_`{|}~";
    let mut j = 0;
    while j < specials.len() {
        t[specials[j] as usize] = true;
        j += 1;
    }
    t
};

fn dot_string(s: In<'_>) -> IResult<In<'_>, In<'_>> {
    recognize(list1(|| take_while1(is_atext), b'.')).parse(s)
}

/// `DQUOTE *(qtextSMTP / quoted-pairSMTP) DQUOTE`.
fn quoted_string(s: In<'_>) -> IResult<In<'_>, In<'_>> {
    let qtext =
        take_while1(|b: u8| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\' || b >= 0x80);
    let quoted_pair = recognize(pair(
        char('\\'),
        take_while_m_n(1, 1, |b: u8| (b' '..=b'~').contains(&b)),
    ));
    recognize(delimited(
        char('"'),
        many0_count(alt((qtext, quoted_pair))),
        char('"'),
    ))
    .parse(s)
}

/// `sub-domain *("." sub-domain)`, sub-domain being `Let-dig [Ldh-str]`, or a U-label.
fn domain(s: In<'_>) -> IResult<In<'_>, In<'_>> {
    let sub_domain = || {
        verify(
            take_while1(|b: u8| b.is_ascii_alphanumeric() || b == b'-' || b >= 0x80),
            |label: &[u8]| !label.starts_with(b"-") && !label.ends_with(b"-"),
        )
    };
    recognize(list1(sub_domain, b'.')).parse(s)
}

fn parses_as<T: std::str::FromStr>(a: &[u8]) -> bool {
    std::str::from_utf8(a).is_ok_and(|a| a.parse::<T>().is_ok())
}

/// `[IPv4]`, `[IPv6:...]` or `[tag:content]` (RFC 5321 4.1.3).
fn address_literal(s: In<'_>) -> IResult<In<'_>, In<'_>> {
    let ipv4 = verify(
        take_while1(|b: u8| b.is_ascii_digit() || b == b'.'),
        |a: &[u8]| parses_as::<Ipv4Addr>(a),
    );
    let ipv6 = preceded(
        tag_no_case("IPv6:"),
        verify(
            take_while1(|b: u8| b.is_ascii_hexdigit() || b == b':' || b == b'.'),
            |a: &[u8]| parses_as::<Ipv6Addr>(a),
        ),
    );
    let general = (
        verify(
            take_while_m_n(1, 64, |b: u8| b.is_ascii_alphanumeric() || b == b'-'),
            |t: &[u8]| !t.ends_with(b"-") && !t.eq_ignore_ascii_case(b"IPv6"),
        ),
        tag(":"),
        // RFC 5321 dcontent, less `<` and `>`: inside a path they would make its end
        // ambiguous (found by the command fuzz target: printed back, `[x>]` cut the path).
        take_while1(|b: u8| matches!(b, b'!'..=b'Z' | b'^'..=b'~') && b != b'<' && b != b'>'),
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

    proptest::proptest! {
        /// The two-loop fast path and the grammar agree on every input: strings built from
        /// the characters that matter to both (atext, dots, hyphens, `@`, quotes, brackets,
        /// colons, commas, spaces, UTF-8).
        #[test]
        fn fast_path_agrees_with_the_grammar(s in "[a-c0-9.@\\-_!\"\\[\\]:, é]{0,16}") {
            proptest::prop_assert_eq!(routed_mailbox(&s), routed_mailbox_grammar(&s));
        }
    }

    proptest::proptest! {
        /// Whatever the one-pass path reader accepts, the grammar reads the same way.
        #[test]
        fn plain_path_agrees_with_split_path(
            s in proptest::prop_oneof![
                "<[a-c0-9.@\\-_!\"\\[\\]:,<> é]{0,16}(>[ a-z=]{0,4})?",
                "<[a-c.é\\-]{0,5}@[a-c.é\\-]{0,5}>[ x]{0,2}",
            ],
            long in 0usize..300,
        ) {
            for s in [s.clone(), s.replacen('a', &"a".repeat(long), 1)] {
                if let Some((mailbox, rest)) = plain_path(s.as_bytes()) {
                    let general = split_path_by_grammar(&s).expect("the grammar accepts it");
                    proptest::prop_assert!(matches!(&general.0, RawPath::Mailbox(m) if *m == mailbox));
                    proptest::prop_assert_eq!(general.1.as_bytes(), rest);
                }
            }
        }
    }

    /// [`split_path`] without its one-pass reader.
    fn split_path_by_grammar(s: &str) -> Option<(RawPath<'_>, &str)> {
        let gt = s.find('>')?;
        (!s[..gt].contains('"')).then_some(())?;
        let (inner, rest) = (&s[1..gt], &s[gt + 1..]);
        if gt + 1 > MAX_PATH || !(rest.is_empty() || rest.starts_with(' ')) {
            return None;
        }
        let (local, domain) = routed_mailbox(inner)?;
        check_lengths(local, domain).ok()?;
        Some((
            RawPath::Mailbox(Mailbox::from_parts(inner, local, domain)),
            rest,
        ))
    }

    #[test]
    fn plain_path_on_known_shapes() {
        for (s, plain) in [
            ("<a@b>", true),
            ("<a.b@c.d> SIZE=1", true),
            ("<a@b>x", false),
            ("<a..b@c>", false),
            ("<.a@b>", false),
            ("<a.@b>", false),
            ("<a@b.>", false),
            ("<a@-b>", false),
            ("<a@b->", false),
            ("<a@b-c>", true),
            ("<a@b@c>", false),
            ("<@a,@b:c@d>", false),
            ("<\"a b\"@c>", false),
            ("<a@[1.2.3.4]>", false),
            ("<>", false),
            ("<postmaster>", false),
            ("<é@é.é>", true),
            ("<a@b", false),
        ] {
            assert_eq!(plain_path(s.as_bytes()).is_some(), plain, "{s}");
            if let Some((m, rest)) = plain_path(s.as_bytes()) {
                let (general, general_rest) = split_path_by_grammar(s).unwrap();
                assert!(matches!(general, RawPath::Mailbox(g) if g == m), "{s}");
                assert_eq!(general_rest.as_bytes(), rest);
            }
        }
        let local = "a".repeat(MAX_LOCAL_PART);
        assert!(plain_path(format!("<{local}@b>").as_bytes()).is_some());
        assert!(plain_path(format!("<{local}a@b>").as_bytes()).is_none());
        let label = "b".repeat(63);
        let domain = [label.as_str(); 4].join(".");
        assert!(domain.len() == MAX_DOMAIN);
        assert!(
            plain_path(format!("<a@{domain}>").as_bytes()).is_none(),
            "path over 256"
        );
        assert!(plain_path(b"<\xff@b>").is_none(), "not UTF-8");
    }

    #[test]
    fn fast_path_agrees_on_known_shapes() {
        for s in [
            "a@b",
            "a.b@c.d",
            "a..b@c",
            ".a@b",
            "a.@b",
            "a@b.",
            "a@.b",
            "a@-b",
            "a@b-",
            "a@b-c",
            "a@b@c",
            "@a",
            "a@",
            "@a,@b:c@d",
            "\"a b\"@c",
            "a@[1.2.3.4]",
            "a\"b@c",
            "é@é.é",
            "a_b@c_d",
            "a@b..c",
            "a b@c",
            "a@b c",
            "!#$%&'*+-/=?^_`{|}~@x",
        ] {
            assert_eq!(routed_mailbox(s), routed_mailbox_grammar(s), "{s}");
        }
    }

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
            // Fuzz regression: `>` in a general literal would end the path early.
            ("a@[IPv3:,,,,l::2:1222222le>]", AddressError::Syntax),
            ("a@[tag:x<y]", AddressError::Syntax),
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
