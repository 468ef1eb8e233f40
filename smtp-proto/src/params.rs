//! ESMTP parameters of MAIL and RCPT (RFC 5321 4.1.2 `esmtp-param`): SIZE (RFC 1870), BODY
//! (RFC 6152, RFC 3030), SMTPUTF8 (RFC 6531), RET, ENVID, NOTIFY, ORCPT (RFC 3461), AUTH
//! (RFC 4954 5) and REQUIRETLS (RFC 8689), with xtext (RFC 3461 4).
//!
//! The parser knows every parameter above; whether the server announced the extension a
//! parameter belongs to is the session's decision, not the parser's.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use crate::error::ParseError;

/// `BODY=` (RFC 6152 2, RFC 3030 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BodyType {
    /// `7BIT`.
    SevenBit,
    /// `8BITMIME`.
    EightBitMime,
    /// `BINARYMIME`: only with BDAT (RFC 3030 3).
    BinaryMime,
}

impl BodyType {
    fn as_str(self) -> &'static str {
        match self {
            Self::SevenBit => "7BIT",
            Self::EightBitMime => "8BITMIME",
            Self::BinaryMime => "BINARYMIME",
        }
    }
}

/// `RET=` (RFC 3461 4.3): what a delivery status notification should carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ret {
    /// `FULL`: the whole message.
    Full,
    /// `HDRS`: the headers only.
    Headers,
}

/// `NOTIFY=` (RFC 3461 4.1). All three false means `NEVER`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Notify {
    /// `SUCCESS`.
    pub success: bool,
    /// `FAILURE`.
    pub failure: bool,
    /// `DELAY`.
    pub delay: bool,
}

impl Notify {
    /// True for `NOTIFY=NEVER`.
    pub fn is_never(&self) -> bool {
        !(self.success || self.failure || self.delay)
    }
}

/// `ORCPT=addr-type;xtext` (RFC 3461 4.2), the address decoded from xtext.
///
/// For `utf-8` address types (RFC 6533) the address is only xtext-decoded; its `\x{...}`
/// escapes are left as they are.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Orcpt<'a> {
    /// The address type, such as `rfc822`.
    pub addr_type: Cow<'a, str>,
    /// The original recipient.
    pub addr: Cow<'a, str>,
}

/// Parameters of `MAIL FROM:`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct MailParams<'a> {
    /// `SIZE=`: the size the client announces, in octets (RFC 1870 4).
    pub size: Option<u64>,
    /// `BODY=`.
    pub body: Option<BodyType>,
    /// `SMTPUTF8` (RFC 6531 3.4).
    pub smtputf8: bool,
    /// `RET=`.
    pub ret: Option<Ret>,
    /// `ENVID=`, decoded from xtext (RFC 3461 4.4).
    pub envid: Option<Cow<'a, str>>,
    /// `AUTH=`, decoded from xtext: a mailbox or `<>` (RFC 4954 5).
    pub auth: Option<Cow<'a, str>>,
    /// `REQUIRETLS` (RFC 8689 3).
    pub requiretls: bool,
}

/// Parameters of `RCPT TO:`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct RcptParams<'a> {
    /// `NOTIFY=`.
    pub notify: Option<Notify>,
    /// `ORCPT=`.
    pub orcpt: Option<Orcpt<'a>>,
}

/// Splits `KEYWORD[=value]` parameters separated by spaces and checks each, in one pass over
/// the bytes. RFC 5321 4.1.2: `esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")`,
/// `esmtp-value = 1*(%d33-60 / %d62-126)` (and UTF-8 under RFC 6531).
///
/// The parameters are read as bytes, not text: every value a parameter accepts is ASCII
/// (xtext included), and the few kept as text are checked to be UTF-8 where they are taken
/// ([`xtext_value`]). A new parameter must keep to that: MAIL and RCPT rely on it to refuse
/// every line that is not UTF-8 (`command.rs`, `NOT_UTF8_ACCEPTED`).
fn each_param<'a>(
    s: &'a [u8],
    mut f: impl FnMut(&'a [u8], Option<&'a [u8]>) -> Result<(), ParseError>,
    usage: &'static str,
) -> Result<(), ParseError> {
    let syntax = ParseError::Syntax { usage };
    let mut i = 0;
    while i < s.len() {
        if s[i] == b' ' {
            i += 1;
            continue;
        }
        let start = i;
        while s.get(i).is_some_and(|&c| KEYWORD[usize::from(c)]) {
            i += 1;
        }
        if i == start || s[start] == b'-' {
            return Err(syntax);
        }
        let keyword = &s[start..i];
        let value = match s.get(i) {
            None | Some(b' ') => None,
            Some(b'=') => {
                let value = i + 1;
                i = value;
                while s.get(i).is_some_and(|&c| VALUE[usize::from(c)]) {
                    i += 1;
                }
                if i == value || s.get(i).is_some_and(|&c| c != b' ') {
                    return Err(syntax);
                }
                Some(&s[value..i])
            }
            Some(_) => return Err(syntax),
        };
        f(keyword, value)?;
    }
    Ok(())
}

/// A keyword or named value of at most 16 bytes, folded to lower case and packed into one
/// number, so that names are told apart by a `match` on numbers. Folding is `| 0x20`: exact
/// for letters and digits, and no other byte allowed in a keyword or value (`-`, visible
/// ASCII, UTF-8) folds onto a letter or a digit. Longer words fold to 0, which no name is.
const fn fold(word: &[u8]) -> u128 {
    if word.len() > 16 {
        return 0;
    }
    // Two 64-bit halves: shifting a `u128` by a variable amount costs a dozen instructions.
    let (mut low, mut high) = (0u64, 0u64);
    let mut i = 0;
    while i < word.len() && i < 8 {
        low |= ((word[i] | 0x20) as u64) << (8 * i);
        i += 1;
    }
    while i < word.len() {
        high |= ((word[i] | 0x20) as u64) << (8 * (i - 8));
        i += 1;
    }
    low as u128 | (high as u128) << 64
}

/// A parameter value taken as text (ENVID, AUTH, ORCPT), then decoded from xtext.
fn xtext_value(value: &[u8]) -> Option<Cow<'_, str>> {
    std::str::from_utf8(value).ok().and_then(xtext_decode)
}

/// `esmtp-keyword` characters: letters, digits, `-`.
const KEYWORD: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = (i as u8).is_ascii_alphanumeric() || i as u8 == b'-';
        i += 1;
    }
    t
};

/// `esmtp-value` characters: visible ASCII but `=`, and UTF-8 (RFC 6531 3.3).
const VALUE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = (b > b' ' && b != b'=' && b != 0x7f) || b >= 0x80;
        i += 1;
    }
    t
};

fn set<T>(slot: &mut Option<T>, value: T, name: &'static str) -> Result<(), ParseError> {
    if slot.replace(value).is_some() {
        return Err(ParseError::DuplicateParameter(name));
    }
    Ok(())
}

fn flag(slot: &mut bool, value: Option<&[u8]>, name: &'static str) -> Result<(), ParseError> {
    if value.is_some() {
        return Err(ParseError::BadParameter(name));
    }
    if std::mem::replace(slot, true) {
        return Err(ParseError::DuplicateParameter(name));
    }
    Ok(())
}

impl<'a> MailParams<'a> {
    #[cfg(test)]
    pub(crate) fn parse(s: &'a [u8]) -> Result<Self, ParseError> {
        let mut p = Self::default();
        p.parse_into(s)?;
        Ok(p)
    }

    /// Reads the parameters into `self` (the defaults), where the command is being built.
    #[inline]
    pub(crate) fn parse_into(&mut self, s: &'a [u8]) -> Result<(), ParseError> {
        const SIZE: u128 = fold(b"SIZE");
        const BODY: u128 = fold(b"BODY");
        const SMTPUTF8: u128 = fold(b"SMTPUTF8");
        const REQUIRETLS: u128 = fold(b"REQUIRETLS");
        const RET: u128 = fold(b"RET");
        const ENVID: u128 = fold(b"ENVID");
        const AUTH: u128 = fold(b"AUTH");
        const SEVEN_BIT: u128 = fold(b"7BIT");
        const EIGHT_BIT_MIME: u128 = fold(b"8BITMIME");
        const BINARY_MIME: u128 = fold(b"BINARYMIME");
        const FULL: u128 = fold(b"FULL");
        const HDRS: u128 = fold(b"HDRS");
        let p = self;
        each_param(
            s,
            |k, v| match fold(k) {
                SIZE => {
                    // RFC 1870 6: size-value = 1*20DIGIT. Twenty digits can exceed 64 bits:
                    // such a size is valid syntax and over any limit, so it saturates (and
                    // is then refused with 552, not 501).
                    let n = v
                        .filter(|v| (1..=20).contains(&v.len()))
                        .and_then(|v| {
                            v.iter().try_fold(0u64, |n, &d| {
                                d.is_ascii_digit().then(|| {
                                    n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
                                })
                            })
                        })
                        .ok_or(ParseError::BadParameter("SIZE"))?;
                    set(&mut p.size, n, "SIZE")
                }
                BODY => {
                    let body = match fold(v.unwrap_or_default()) {
                        SEVEN_BIT => BodyType::SevenBit,
                        EIGHT_BIT_MIME => BodyType::EightBitMime,
                        BINARY_MIME => BodyType::BinaryMime,
                        _ => return Err(ParseError::BadParameter("BODY")),
                    };
                    set(&mut p.body, body, "BODY")
                }
                SMTPUTF8 => flag(&mut p.smtputf8, v, "SMTPUTF8"),
                REQUIRETLS => flag(&mut p.requiretls, v, "REQUIRETLS"),
                RET => {
                    let ret = match fold(v.unwrap_or_default()) {
                        FULL => Ret::Full,
                        HDRS => Ret::Headers,
                        _ => return Err(ParseError::BadParameter("RET")),
                    };
                    set(&mut p.ret, ret, "RET")
                }
                ENVID => {
                    // RFC 3461 4.4: at most 100 characters.
                    let v = v
                        .filter(|v| v.len() <= 100)
                        .and_then(xtext_value)
                        .ok_or(ParseError::BadParameter("ENVID"))?;
                    set(&mut p.envid, v, "ENVID")
                }
                AUTH => {
                    let v = v
                        .and_then(xtext_value)
                        .ok_or(ParseError::BadParameter("AUTH"))?;
                    set(&mut p.auth, v, "AUTH")
                }
                _ => Err(ParseError::UnknownParameter),
            },
            MAIL_USAGE,
        )
    }

    /// A copy that owns its text.
    pub fn into_owned(self) -> MailParams<'static> {
        MailParams {
            envid: self.envid.map(|v| Cow::Owned(v.into_owned())),
            auth: self.auth.map(|v| Cow::Owned(v.into_owned())),
            size: self.size,
            body: self.body,
            smtputf8: self.smtputf8,
            ret: self.ret,
            requiretls: self.requiretls,
        }
    }
}

impl<'a> RcptParams<'a> {
    #[cfg(test)]
    pub(crate) fn parse(s: &'a [u8]) -> Result<Self, ParseError> {
        let mut p = Self::default();
        p.parse_into(s)?;
        Ok(p)
    }

    /// Reads the parameters into `self` (the defaults), where the command is being built.
    #[inline]
    pub(crate) fn parse_into(&mut self, s: &'a [u8]) -> Result<(), ParseError> {
        const NOTIFY: u128 = fold(b"NOTIFY");
        const ORCPT: u128 = fold(b"ORCPT");
        let p = self;
        each_param(
            s,
            |k, v| match fold(k) {
                NOTIFY => {
                    let v = v.ok_or(ParseError::BadParameter("NOTIFY"))?;
                    set(&mut p.notify, parse_notify(v)?, "NOTIFY")
                }
                ORCPT => {
                    let bad = ParseError::BadParameter("ORCPT");
                    let v = v.ok_or(bad)?;
                    let semicolon = v.iter().position(|&c| c == b';').ok_or(bad)?;
                    let (addr_type, addr) = (&v[..semicolon], &v[semicolon + 1..]);
                    let type_ok = !addr_type.is_empty()
                        && addr_type
                            .iter()
                            .all(|&c| c.is_ascii_alphanumeric() || c == b'-');
                    if !type_ok || addr.is_empty() {
                        return Err(bad);
                    }
                    let addr_type = std::str::from_utf8(addr_type).map_err(|_| bad)?;
                    let orcpt = Orcpt {
                        addr_type: Cow::Borrowed(addr_type),
                        addr: xtext_value(addr).ok_or(bad)?,
                    };
                    set(&mut p.orcpt, orcpt, "ORCPT")
                }
                _ => Err(ParseError::UnknownParameter),
            },
            RCPT_USAGE,
        )
    }

    /// A copy that owns its text.
    pub fn into_owned(self) -> RcptParams<'static> {
        RcptParams {
            notify: self.notify,
            orcpt: self.orcpt.map(|o| Orcpt {
                addr_type: Cow::Owned(o.addr_type.into_owned()),
                addr: Cow::Owned(o.addr.into_owned()),
            }),
        }
    }
}

/// RFC 3461 4.1: `"NEVER" / 1#( "SUCCESS" / "FAILURE" / "DELAY" )`.
fn parse_notify(v: &[u8]) -> Result<Notify, ParseError> {
    const NEVER: u128 = fold(b"NEVER");
    const SUCCESS: u128 = fold(b"SUCCESS");
    const FAILURE: u128 = fold(b"FAILURE");
    const DELAY: u128 = fold(b"DELAY");
    let bad = ParseError::BadParameter("NOTIFY");
    let mut n = Notify::default();
    if fold(v) == NEVER {
        return Ok(n);
    }
    for word in v.split(|&c| c == b',') {
        let slot = match fold(word) {
            SUCCESS => &mut n.success,
            FAILURE => &mut n.failure,
            DELAY => &mut n.delay,
            _ => return Err(bad),
        };
        if std::mem::replace(slot, true) {
            return Err(bad);
        }
    }
    Ok(n)
}

pub(crate) const MAIL_USAGE: &str = "MAIL FROM:<address> [parameters]";
pub(crate) const RCPT_USAGE: &str = "RCPT TO:<address> [parameters]";

/// Decodes xtext (RFC 3461 4): `+XX` is the octet with hex value XX; other characters are
/// `!` to `~` except `+` and `=`. Borrows when there is nothing to decode. `None` if malformed
/// or if the octets are not UTF-8.
///
/// ```
/// use smtp_proto::xtext_decode;
/// assert_eq!(xtext_decode("a+2Bb+3Dc").as_deref(), Some("a+b=c"));
/// assert_eq!(xtext_decode("a+2"), None);
/// ```
pub fn xtext_decode(s: &str) -> Option<Cow<'_, str>> {
    let xchar = |b: u8| (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=';
    if !s.contains('+') {
        return s.bytes().all(xchar).then_some(Cow::Borrowed(s));
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b if xchar(b) => {
                out.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    String::from_utf8(out).ok().map(Cow::Owned)
}

/// Encodes xtext (RFC 3461 4): octets outside `!`..`~`, and `+` and `=`, become `+XX`.
///
/// ```
/// assert_eq!(smtp_proto::xtext_encode("a+b=c d"), "a+2Bb+3Dc+20d");
/// ```
pub fn xtext_encode(s: &str) -> Cow<'_, str> {
    let plain = |b: u8| (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=';
    if s.bytes().all(plain) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for b in s.bytes() {
        if plain(b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "+{b:02X}");
        }
    }
    Cow::Owned(out)
}

impl fmt::Display for MailParams<'_> {
    /// The parameters as they are sent, each preceded by a space.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(size) = self.size {
            write!(f, " SIZE={size}")?;
        }
        if let Some(body) = self.body {
            write!(f, " BODY={}", body.as_str())?;
        }
        if self.smtputf8 {
            f.write_str(" SMTPUTF8")?;
        }
        if let Some(ret) = self.ret {
            f.write_str(match ret {
                Ret::Full => " RET=FULL",
                Ret::Headers => " RET=HDRS",
            })?;
        }
        if let Some(envid) = &self.envid {
            write!(f, " ENVID={}", xtext_encode(envid))?;
        }
        if let Some(auth) = &self.auth {
            write!(f, " AUTH={}", xtext_encode(auth))?;
        }
        if self.requiretls {
            f.write_str(" REQUIRETLS")?;
        }
        Ok(())
    }
}

impl fmt::Display for RcptParams<'_> {
    /// The parameters as they are sent, each preceded by a space.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(n) = self.notify {
            if n.is_never() {
                f.write_str(" NOTIFY=NEVER")?;
            } else {
                let words = [
                    (n.success, "SUCCESS"),
                    (n.failure, "FAILURE"),
                    (n.delay, "DELAY"),
                ];
                let mut sep = " NOTIFY=";
                for (_, w) in words.iter().filter(|(on, _)| *on) {
                    write!(f, "{sep}{w}")?;
                    sep = ",";
                }
            }
        }
        if let Some(o) = &self.orcpt {
            write!(f, " ORCPT={};{}", o.addr_type, xtext_encode(&o.addr))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `fold` tells names apart exactly as a case-insensitive comparison would, for every byte
    /// a keyword or value may hold.
    #[test]
    fn fold_is_a_case_insensitive_comparison() {
        for b in 0..=255u8 {
            if KEYWORD[usize::from(b)] || VALUE[usize::from(b)] {
                let folded = b | 0x20;
                assert!(
                    !folded.is_ascii_alphanumeric() || folded == b.to_ascii_lowercase(),
                    "{b:#x} folds onto {folded:#x}"
                );
            }
        }
        assert_eq!(fold(b"SIZE"), fold(b"size"));
        assert_eq!(fold(b"BinaryMime"), fold(b"BINARYMIME"));
        assert_eq!(fold(b"REQUIRETLS"), fold(b"requiretls"));
        assert_ne!(fold(b"SIZE"), fold(b"SIZ"));
        assert_ne!(fold(b"SIZE"), fold(b"SIZE0"));
        assert_ne!(fold(b"8BITMIME"), fold(b"8BITMIMF"));
        assert_eq!(fold(b"0123456789abcdefg"), 0, "longer than 16");
        assert_eq!(fold(b"0123456789abcdef"), fold(b"0123456789ABCDEF"));
        assert_ne!(fold(b"0123456789abcdef"), fold(b"0123456789abcdeg"));
    }

    #[test]
    fn mail_params() {
        let p = MailParams::parse(
            b"SIZE=1000 body=8bitmime SMTPUTF8 RET=HDRS ENVID=QQ+2B1 AUTH=<> REQUIRETLS",
        )
        .unwrap();
        assert_eq!(p.size, Some(1000));
        assert_eq!(p.body, Some(BodyType::EightBitMime));
        assert!(p.smtputf8 && p.requiretls);
        assert_eq!(p.ret, Some(Ret::Headers));
        assert_eq!(p.envid.as_deref(), Some("QQ+1"));
        assert_eq!(p.auth.as_deref(), Some("<>"));
        assert_eq!(
            p.to_string(),
            " SIZE=1000 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=QQ+2B1 AUTH=<> REQUIRETLS"
        );
        // RFC 1870 6: size-value = 1*20DIGIT; twenty digits past 2^64 are still a size
        // (over any limit), not a syntax error.
        for (text, size) in [
            ("SIZE=0", 0),
            ("SIZE=18446744073709551615", u64::MAX),
            ("SIZE=18446744073709551616", u64::MAX),
            ("SIZE=99999999999999999999", u64::MAX),
            ("SIZE=00000000000000000042", 42),
        ] {
            assert_eq!(
                MailParams::parse(text.as_bytes()).unwrap().size,
                Some(size),
                "{text}"
            );
        }
        let errors: &[(&str, ParseError)] = &[
            ("SIZE=", ParseError::Syntax { usage: MAIL_USAGE }),
            ("SIZE", ParseError::BadParameter("SIZE")),
            ("SIZE=12a", ParseError::BadParameter("SIZE")),
            (
                "SIZE=123456789012345678901",
                ParseError::BadParameter("SIZE"),
            ),
            ("SIZE=-1", ParseError::BadParameter("SIZE")),
            ("SIZE=1 SIZE=2", ParseError::DuplicateParameter("SIZE")),
            ("BODY=9BIT", ParseError::BadParameter("BODY")),
            ("SMTPUTF8=yes", ParseError::BadParameter("SMTPUTF8")),
            (
                "SMTPUTF8 smtputf8",
                ParseError::DuplicateParameter("SMTPUTF8"),
            ),
            ("RET=ALL", ParseError::BadParameter("RET")),
            ("ENVID=a+zz", ParseError::BadParameter("ENVID")),
            ("XFOO=1", ParseError::UnknownParameter),
            ("NOTIFY=NEVER", ParseError::UnknownParameter),
            ("-X=1", ParseError::Syntax { usage: MAIL_USAGE }),
            ("A=b=c", ParseError::Syntax { usage: MAIL_USAGE }),
        ];
        for (input, err) in errors {
            assert_eq!(MailParams::parse(input.as_bytes()), Err(*err), "{input}");
        }
        let long_envid = format!("ENVID={}", "a".repeat(101));
        assert_eq!(
            MailParams::parse(long_envid.as_bytes()),
            Err(ParseError::BadParameter("ENVID"))
        );
    }

    #[test]
    fn rcpt_params() {
        let p = RcptParams::parse(b"NOTIFY=SUCCESS,DELAY ORCPT=rfc822;a+2Bb@c").unwrap();
        assert_eq!(
            p.notify,
            Some(Notify {
                success: true,
                failure: false,
                delay: true
            })
        );
        let o = p.orcpt.as_ref().unwrap();
        assert_eq!((&*o.addr_type, &*o.addr), ("rfc822", "a+b@c"));
        assert_eq!(p.to_string(), " NOTIFY=SUCCESS,DELAY ORCPT=rfc822;a+2Bb@c");
        assert!(
            RcptParams::parse(b"NOTIFY=never")
                .unwrap()
                .notify
                .unwrap()
                .is_never()
        );
        for bad in [
            "NOTIFY=NEVER,SUCCESS",
            "NOTIFY=SUCCESS,SUCCESS",
            "NOTIFY=",
            "ORCPT=rfc822",
            "ORCPT=;a@b",
            "ORCPT=rfc822;",
            "ORCPT=rfc822;a+ZZ",
        ] {
            assert!(RcptParams::parse(bad.as_bytes()).is_err(), "{bad}");
        }
        assert_eq!(
            RcptParams::parse(b"SIZE=1"),
            Err(ParseError::UnknownParameter)
        );
    }

    #[test]
    fn xtext() {
        assert_eq!(xtext_decode("abc"), Some(Cow::Borrowed("abc")));
        assert_eq!(xtext_decode("+41+42"), Some(Cow::Owned("AB".into())));
        assert_eq!(xtext_decode("a=b"), None);
        assert_eq!(xtext_decode("a b"), None);
        assert_eq!(xtext_decode("+FF"), None, "not UTF-8");
        assert_eq!(xtext_decode("+C3+A9"), Some(Cow::Owned("é".into())));
        for s in ["", "plain", "a+b", "x=y", "sp ace", "é", "+++"] {
            assert_eq!(xtext_decode(&xtext_encode(s)).as_deref(), Some(s));
        }
    }
}
