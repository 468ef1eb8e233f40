//! PROXY protocol headers, versions 1 (text) and 2 (binary, with TLVs), as HAProxy's
//! specification "The PROXY protocol" defines them. A server behind HAProxy or a cloud load
//! balancer reads this header before anything else, to learn the real client address.
//!
//! Every malformed form is refused: a wrong signature, version, command or family, truncated
//! addresses or TLVs, a v1 line over 107 octets, a port out of range or with leading zeros.
//! The CRC32C TLV is exposed but not verified.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::error::ProxyError;

/// The 12-octet signature that starts a v2 header.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v1 header, CRLF included.
pub const V1_MAX: usize = 107;

/// A v2 TLV type: Application-Layer Protocol Negotiation.
pub const PP2_TYPE_ALPN: u8 = 0x01;
/// A v2 TLV type: the host name the client asked for (SNI).
pub const PP2_TYPE_AUTHORITY: u8 = 0x02;
/// A v2 TLV type: CRC32C checksum of the header.
pub const PP2_TYPE_CRC32C: u8 = 0x03;
/// A v2 TLV type: padding.
pub const PP2_TYPE_NOOP: u8 = 0x04;
/// A v2 TLV type: an opaque connection identifier.
pub const PP2_TYPE_UNIQUE_ID: u8 = 0x05;
/// A v2 TLV type: TLS information about the client connection.
pub const PP2_TYPE_SSL: u8 = 0x20;
/// A v2 TLV type: the network namespace.
pub const PP2_TYPE_NETNS: u8 = 0x30;

/// LOCAL (a health check by the proxy itself: use the real endpoints) or PROXY.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProxyCommand {
    /// The proxy's own connection; the addresses are to be ignored.
    Local,
    /// A relayed connection.
    Proxy,
}

/// The transport the proxied connection used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Not given (v1 `UNKNOWN`, v2 `UNSPEC`, or LOCAL).
    Unspecified,
    /// TCP or a Unix stream socket.
    Stream,
    /// UDP or a Unix datagram socket.
    Datagram,
}

/// The addresses a header carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProxyAddresses<'a> {
    /// None given: v1 `UNKNOWN`, v2 `AF_UNSPEC` or a LOCAL command.
    Unknown,
    /// IPv4 or IPv6 endpoints.
    Inet {
        /// The client, as the proxy saw it.
        source: SocketAddr,
        /// The address the client connected to.
        destination: SocketAddr,
    },
    /// Unix socket paths (up to 108 octets, trailing NULs removed).
    Unix {
        /// The client's socket path.
        source: &'a [u8],
        /// The socket path the client connected to.
        destination: &'a [u8],
    },
}

/// One v2 Type-Length-Value field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tlv<'a> {
    /// The type, such as [`PP2_TYPE_AUTHORITY`].
    pub kind: u8,
    /// The value.
    pub value: &'a [u8],
}

/// A parsed PROXY header, borrowing from the input.
///
/// ```
/// use smtp_proto::{ProxyAddresses, ProxyHeader};
/// let (h, used) = ProxyHeader::parse(b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\r\nEHLO x\r\n")
///     .unwrap()
///     .unwrap();
/// assert_eq!(used, 44);
/// assert_eq!(h.source(), Some("192.0.2.1:56324".parse().unwrap()));
/// // Not enough bytes yet: ask for more.
/// assert_eq!(ProxyHeader::parse(b"PROXY TCP4 192.0"), Ok(None));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProxyHeader<'a> {
    /// 1 or 2.
    pub version: u8,
    /// LOCAL or PROXY (always PROXY in v1).
    pub command: ProxyCommand,
    /// The proxied transport.
    pub transport: Transport,
    /// The endpoints.
    pub addresses: ProxyAddresses<'a>,
    tlvs: &'a [u8],
}

impl<'a> ProxyHeader<'a> {
    /// Parses a v1 or v2 header at the start of `buf`. `Ok(None)` means the bytes so far are a
    /// valid beginning: read more (at most [`V1_MAX`] octets for v1, 16 plus the announced
    /// length for v2). On success, also returns how many octets the header took.
    pub fn parse(buf: &'a [u8]) -> Result<Option<(Self, usize)>, ProxyError> {
        if buf.starts_with(b"PROXY ") {
            return parse_v1(buf);
        }
        if buf.starts_with(&V2_SIGNATURE) {
            return parse_v2(buf);
        }
        let n = buf.len();
        if b"PROXY ".starts_with(buf) || V2_SIGNATURE.starts_with(buf) {
            debug_assert!(n < 12);
            return Ok(None);
        }
        Err(ProxyError::NotProxy)
    }

    /// The client's address, when the header carries one.
    pub fn source(&self) -> Option<SocketAddr> {
        match self.addresses {
            ProxyAddresses::Inet { source, .. } => Some(source),
            _ => None,
        }
    }

    /// The address the client connected to, when the header carries one.
    pub fn destination(&self) -> Option<SocketAddr> {
        match self.addresses {
            ProxyAddresses::Inet { destination, .. } => Some(destination),
            _ => None,
        }
    }

    /// The v2 TLVs (none for v1). They were checked when the header was parsed.
    pub fn tlvs(&self) -> impl Iterator<Item = Tlv<'a>> + 'a {
        let mut rest = self.tlvs;
        std::iter::from_fn(move || {
            let (tlv, after) = next_tlv(rest).ok()??;
            rest = after;
            Some(tlv)
        })
    }

    /// The value of the first TLV of the given type.
    pub fn tlv(&self, kind: u8) -> Option<&'a [u8]> {
        self.tlvs().find(|t| t.kind == kind).map(|t| t.value)
    }
}

fn next_tlv(buf: &[u8]) -> Result<Option<(Tlv<'_>, &[u8])>, ProxyError> {
    if buf.is_empty() {
        return Ok(None);
    }
    if buf.len() < 3 {
        return Err(ProxyError::Tlv);
    }
    let len = usize::from(u16::from_be_bytes([buf[1], buf[2]]));
    let value = buf.get(3..3 + len).ok_or(ProxyError::Tlv)?;
    Ok(Some((
        Tlv {
            kind: buf[0],
            value,
        },
        &buf[3 + len..],
    )))
}

fn parse_v1(buf: &[u8]) -> Result<Option<(ProxyHeader<'_>, usize)>, ProxyError> {
    let window = &buf[..buf.len().min(V1_MAX)];
    let Some(lf) = memchr::memchr(b'\n', window) else {
        return if buf.len() >= V1_MAX {
            Err(ProxyError::TooLong)
        } else {
            Ok(None)
        };
    };
    let line = window[..lf]
        .strip_suffix(b"\r")
        .ok_or(ProxyError::V1Syntax)?;
    let line = std::str::from_utf8(line).map_err(|_| ProxyError::V1Syntax)?;
    let mut words = line.split(' ');
    words.next(); // "PROXY"
    let proto = words.next().ok_or(ProxyError::V1Syntax)?;
    let header = |transport, addresses| ProxyHeader {
        version: 1,
        command: ProxyCommand::Proxy,
        transport,
        addresses,
        tlvs: &[],
    };
    if proto == "UNKNOWN" {
        // The rest of the line is to be ignored.
        return Ok(Some((
            header(Transport::Unspecified, ProxyAddresses::Unknown),
            lf + 1,
        )));
    }
    let v6 = match proto {
        "TCP4" => false,
        "TCP6" => true,
        _ => return Err(ProxyError::V1Syntax),
    };
    let mut next = || words.next().ok_or(ProxyError::V1Syntax);
    let (src, dst, sport, dport) = (next()?, next()?, next()?, next()?);
    if words.next().is_some() {
        return Err(ProxyError::V1Syntax);
    }
    let ip = |s: &str| -> Result<IpAddr, ProxyError> {
        if v6 {
            s.parse::<Ipv6Addr>().map(IpAddr::V6)
        } else {
            s.parse::<Ipv4Addr>().map(IpAddr::V4)
        }
        .map_err(|_| ProxyError::V1Syntax)
    };
    let port = |s: &str| -> Result<u16, ProxyError> {
        let canonical = !s.is_empty()
            && s.bytes().all(|b| b.is_ascii_digit())
            && (s == "0" || !s.starts_with('0'));
        canonical
            .then(|| s.parse().ok())
            .flatten()
            .ok_or(ProxyError::V1Syntax)
    };
    let addresses = ProxyAddresses::Inet {
        source: SocketAddr::new(ip(src)?, port(sport)?),
        destination: SocketAddr::new(ip(dst)?, port(dport)?),
    };
    Ok(Some((header(Transport::Stream, addresses), lf + 1)))
}

/// A Unix socket path without its trailing NULs.
fn unix_path(p: &[u8]) -> &[u8] {
    &p[..memchr::memchr(0, p).unwrap_or(p.len())]
}

fn parse_v2(buf: &[u8]) -> Result<Option<(ProxyHeader<'_>, usize)>, ProxyError> {
    if buf.len() < 16 {
        return Ok(None);
    }
    let (ver_cmd, family) = (buf[12], buf[13]);
    if ver_cmd >> 4 != 2 {
        return Err(ProxyError::Version);
    }
    let command = match ver_cmd & 0x0f {
        0 => ProxyCommand::Local,
        1 => ProxyCommand::Proxy,
        _ => return Err(ProxyError::Command),
    };
    let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    let Some(block) = buf.get(16..16 + len) else {
        return Ok(None);
    };
    let total = 16 + len;
    if command == ProxyCommand::Local {
        // The spec: the receiver uses the real endpoints and discards the block, family included.
        let header = ProxyHeader {
            version: 2,
            command,
            transport: Transport::Unspecified,
            addresses: ProxyAddresses::Unknown,
            tlvs: &[],
        };
        return Ok(Some((header, total)));
    }
    let transport = match family & 0x0f {
        0 => Transport::Unspecified,
        1 => Transport::Stream,
        2 => Transport::Datagram,
        _ => return Err(ProxyError::Family),
    };
    let (addresses, used) = match family >> 4 {
        0 if transport == Transport::Unspecified => (ProxyAddresses::Unknown, 0),
        1 if transport != Transport::Unspecified => {
            let a = block.get(..12).ok_or(ProxyError::Truncated)?;
            let ip = |o: usize| IpAddr::V4(Ipv4Addr::new(a[o], a[o + 1], a[o + 2], a[o + 3]));
            let port = |o: usize| u16::from_be_bytes([a[o], a[o + 1]]);
            let addresses = ProxyAddresses::Inet {
                source: SocketAddr::new(ip(0), port(8)),
                destination: SocketAddr::new(ip(4), port(10)),
            };
            (addresses, 12)
        }
        2 if transport != Transport::Unspecified => {
            let a = block.get(..36).ok_or(ProxyError::Truncated)?;
            let ip = |o: usize| {
                let octets: [u8; 16] = a[o..o + 16].try_into().expect("16 octets");
                IpAddr::V6(Ipv6Addr::from(octets))
            };
            let port = |o: usize| u16::from_be_bytes([a[o], a[o + 1]]);
            let addresses = ProxyAddresses::Inet {
                source: SocketAddr::new(ip(0), port(32)),
                destination: SocketAddr::new(ip(16), port(34)),
            };
            (addresses, 36)
        }
        3 if transport != Transport::Unspecified => {
            let a = block.get(..216).ok_or(ProxyError::Truncated)?;
            let addresses = ProxyAddresses::Unix {
                source: unix_path(&a[..108]),
                destination: unix_path(&a[108..216]),
            };
            (addresses, 216)
        }
        _ => return Err(ProxyError::Family),
    };
    let tlvs = &block[used..];
    let mut rest = tlvs;
    while let Some((_, after)) = next_tlv(rest)? {
        rest = after;
    }
    let header = ProxyHeader {
        version: 2,
        command,
        transport,
        addresses,
        tlvs,
    };
    Ok(Some((header, total)))
}

/// Writes a v1 header for a TCP connection from `source` to `destination` (both of the same
/// family), as a proxy or a test client sends it.
///
/// ```
/// let h = smtp_proto::proxy_v1_header("192.0.2.1:4000".parse().unwrap(), "192.0.2.2:25".parse().unwrap());
/// assert_eq!(h, "PROXY TCP4 192.0.2.1 192.0.2.2 4000 25\r\n");
/// ```
pub fn proxy_v1_header(source: SocketAddr, destination: SocketAddr) -> String {
    let proto = if source.is_ipv4() { "TCP4" } else { "TCP6" };
    format!(
        "PROXY {proto} {} {} {} {}\r\n",
        source.ip(),
        destination.ip(),
        source.port(),
        destination.port()
    )
}

/// Writes a v2 PROXY header for a TCP connection from `source` to `destination` (both of the
/// same family), with the given TLVs.
pub fn proxy_v2_header(source: SocketAddr, destination: SocketAddr, tlvs: &[Tlv<'_>]) -> Vec<u8> {
    let mut block = Vec::new();
    let family = match (source, destination) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            block.extend_from_slice(&s.ip().octets());
            block.extend_from_slice(&d.ip().octets());
            0x11
        }
        (s, d) => {
            let v6 = |a: SocketAddr| match a.ip() {
                IpAddr::V4(ip) => ip.to_ipv6_mapped(),
                IpAddr::V6(ip) => ip,
            };
            block.extend_from_slice(&v6(s).octets());
            block.extend_from_slice(&v6(d).octets());
            0x21
        }
    };
    block.extend_from_slice(&source.port().to_be_bytes());
    block.extend_from_slice(&destination.port().to_be_bytes());
    for tlv in tlvs {
        block.push(tlv.kind);
        block.extend_from_slice(&(tlv.value.len() as u16).to_be_bytes());
        block.extend_from_slice(tlv.value);
    }
    let mut out = V2_SIGNATURE.to_vec();
    out.extend_from_slice(&[0x21, family]);
    out.extend_from_slice(&(block.len() as u16).to_be_bytes());
    out.extend_from_slice(&block);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(ver_cmd: u8, family: u8, block: &[u8]) -> Vec<u8> {
        let mut out = V2_SIGNATURE.to_vec();
        out.extend_from_slice(&[ver_cmd, family]);
        out.extend_from_slice(&(block.len() as u16).to_be_bytes());
        out.extend_from_slice(block);
        out
    }

    /// Parses whole, then as a driver reading one byte at a time would: every strict prefix
    /// must be incomplete (or already the same error).
    fn parse_both(input: &[u8]) -> Result<Option<(String, usize)>, ProxyError> {
        let show = |r: Result<Option<(ProxyHeader<'_>, usize)>, ProxyError>| {
            r.map(|o| o.map(|(h, n)| (format!("{h:?} {:?}", h.tlvs().collect::<Vec<_>>()), n)))
        };
        let whole = show(ProxyHeader::parse(input));
        let mut bytewise = Ok(None);
        for n in 1..=input.len() {
            bytewise = show(ProxyHeader::parse(&input[..n]));
            if !matches!(bytewise, Ok(None)) {
                break;
            }
        }
        assert_eq!(whole, bytewise, "{input:?}");
        whole
    }

    #[test]
    fn v1_vectors() {
        let sock = |s: &str| s.parse::<SocketAddr>().unwrap();
        type Case = (&'static [u8], Option<(SocketAddr, SocketAddr)>, usize);
        let ok: &[Case] = &[
            (
                b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\r\nEHLO",
                Some((sock("192.0.2.1:56324"), sock("198.51.100.2:25"))),
                44,
            ),
            (
                b"PROXY TCP6 2001:db8::1 2001:db8::2 0 65535\r\n",
                Some((sock("[2001:db8::1]:0"), sock("[2001:db8::2]:65535"))),
                44,
            ),
            (b"PROXY UNKNOWN\r\n", None, 15),
            (b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", None, 35),
        ];
        for (input, addrs, used) in ok {
            parse_both(input).unwrap();
            let (h, n) = ProxyHeader::parse(input).unwrap().unwrap();
            assert_eq!((h.version, h.command), (1, ProxyCommand::Proxy));
            assert_eq!(n, *used);
            assert_eq!(h.source().zip(h.destination()), *addrs);
        }
        let long = format!("PROXY UNKNOWN {}\r\n", "x".repeat(100));
        let bad: &[(&[u8], ProxyError)] = &[
            (b"GET / HTTP/1.0\r\n", ProxyError::NotProxy),
            (b"EHLO x\r\n", ProxyError::NotProxy),
            (
                b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\n",
                ProxyError::V1Syntax,
            ),
            (
                b"PROXY TCP5 192.0.2.1 192.0.2.2 1 2\r\n",
                ProxyError::V1Syntax,
            ),
            (
                b"PROXY TCP4 2001:db8::1 192.0.2.2 1 2\r\n",
                ProxyError::V1Syntax,
            ),
            (
                b"PROXY TCP6 192.0.2.1 192.0.2.2 1 2\r\n",
                ProxyError::V1Syntax,
            ),
            (
                b"PROXY TCP4 192.0.2.1 192.0.2.2 1\r\n",
                ProxyError::V1Syntax,
            ),
            (
                b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2 3\r\n",
                ProxyError::V1Syntax,
            ),
            (
                b"PROXY TCP4 192.0.2.1 192.0.2.2 65536 2\r\n",
                ProxyError::V1Syntax,
            ),
            (
                b"PROXY TCP4 192.0.2.1 192.0.2.2 01 2\r\n",
                ProxyError::V1Syntax,
            ),
            (
                b"PROXY TCP4 192.0.2.1 192.0.2.2 -1 2\r\n",
                ProxyError::V1Syntax,
            ),
            (
                b"PROXY TCP4 192.0.2.1  192.0.2.2 1 2\r\n",
                ProxyError::V1Syntax,
            ),
            (
                b"PROXY TCP4 192.0.2.256 192.0.2.2 1 2\r\n",
                ProxyError::V1Syntax,
            ),
            (long.as_bytes(), ProxyError::TooLong),
            (&[b'P'; 200], ProxyError::NotProxy),
        ];
        for (input, err) in bad {
            assert_eq!(
                parse_both(input),
                Err(*err),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        // A v1 line of exactly 107 octets is allowed.
        let max = format!("PROXY UNKNOWN {}\r\n", "x".repeat(V1_MAX - 16));
        assert_eq!(max.len(), V1_MAX);
        assert!(parse_both(max.as_bytes()).unwrap().is_some());
    }

    #[test]
    fn v2_vectors() {
        let mut inet4 = vec![192, 0, 2, 1, 198, 51, 100, 2, 0xdc, 0x04, 0, 25];
        let h = v2(0x21, 0x11, &inet4);
        let (p, n) = ProxyHeader::parse(&h).unwrap().unwrap();
        assert_eq!(n, 28);
        assert_eq!(p.source(), Some("192.0.2.1:56324".parse().unwrap()));
        assert_eq!(p.destination(), Some("198.51.100.2:25".parse().unwrap()));
        assert_eq!(p.transport, Transport::Stream);
        parse_both(&h).unwrap();

        // With TLVs: authority and a NOOP.
        inet4.extend_from_slice(&[PP2_TYPE_AUTHORITY, 0, 11]);
        inet4.extend_from_slice(b"mx.example.");
        inet4.extend_from_slice(&[PP2_TYPE_NOOP, 0, 0]);
        let h = v2(0x21, 0x11, &inet4);
        let (p, _) = ProxyHeader::parse(&h).unwrap().unwrap();
        assert_eq!(p.tlv(PP2_TYPE_AUTHORITY), Some(&b"mx.example."[..]));
        assert_eq!(p.tlvs().count(), 2);
        parse_both(&h).unwrap();

        let mut inet6 = vec![0u8; 36];
        inet6[15] = 1;
        inet6[31] = 2;
        inet6[32..34].copy_from_slice(&1234u16.to_be_bytes());
        inet6[34..36].copy_from_slice(&25u16.to_be_bytes());
        let h6 = v2(0x21, 0x21, &inet6);
        let (p, _) = ProxyHeader::parse(&h6).unwrap().unwrap();
        assert_eq!(p.source(), Some("[::1]:1234".parse().unwrap()));

        let mut unix = vec![0u8; 216];
        unix[..5].copy_from_slice(b"/a/b\0");
        unix[108..112].copy_from_slice(b"/srv");
        let hu = v2(0x21, 0x31, &unix);
        let (p, _) = ProxyHeader::parse(&hu).unwrap().unwrap();
        assert_eq!(
            p.addresses,
            ProxyAddresses::Unix {
                source: b"/a/b",
                destination: b"/srv"
            }
        );

        // LOCAL: addresses ignored, whatever the family says.
        let hl = v2(0x20, 0xff, b"junk");
        let (p, n) = ProxyHeader::parse(&hl).unwrap().unwrap();
        assert_eq!(
            (p.command, p.addresses, n),
            (ProxyCommand::Local, ProxyAddresses::Unknown, 20)
        );
        let hn = v2(0x21, 0x00, b"");
        let (p, _) = ProxyHeader::parse(&hn).unwrap().unwrap();
        assert_eq!(p.addresses, ProxyAddresses::Unknown);

        let bad: Vec<(Vec<u8>, ProxyError)> = vec![
            (v2(0x11, 0x11, &[0; 12]), ProxyError::Version),
            (v2(0x31, 0x11, &[0; 12]), ProxyError::Version),
            (v2(0x22, 0x11, &[0; 12]), ProxyError::Command),
            (v2(0x21, 0x41, &[0; 12]), ProxyError::Family),
            (v2(0x21, 0x13, &[0; 12]), ProxyError::Family),
            (v2(0x21, 0x10, &[0; 12]), ProxyError::Family),
            (v2(0x21, 0x01, &[0; 12]), ProxyError::Family),
            (v2(0x21, 0x11, &[0; 11]), ProxyError::Truncated),
            (v2(0x21, 0x21, &[0; 35]), ProxyError::Truncated),
            (v2(0x21, 0x31, &[0; 200]), ProxyError::Truncated),
            (v2(0x21, 0x11, &[0; 14]), ProxyError::Tlv),
            (
                v2(0x21, 0x11, &[&[0u8; 12][..], &[1, 0, 5, 1]].concat()),
                ProxyError::Tlv,
            ),
        ];
        for (input, err) in &bad {
            assert_eq!(parse_both(input), Err(*err), "{input:?}");
        }
        // Announced length not there yet: incomplete, not an error.
        let mut short = v2(0x21, 0x11, &[0; 12]);
        short.truncate(20);
        assert_eq!(ProxyHeader::parse(&short), Ok(None));
        assert_eq!(ProxyHeader::parse(b"\r\n\r\n\0"), Ok(None));
        assert_eq!(ProxyHeader::parse(b"\r\n\r\nX"), Err(ProxyError::NotProxy));
    }

    #[test]
    fn encoders_round_trip() {
        let pairs = [
            ("192.0.2.1:4000", "192.0.2.2:25"),
            ("[2001:db8::1]:65535", "[::1]:0"),
        ];
        for (s, d) in pairs {
            let (s, d) = (s.parse().unwrap(), d.parse().unwrap());
            let v1 = proxy_v1_header(s, d);
            let (h, n) = ProxyHeader::parse(v1.as_bytes()).unwrap().unwrap();
            assert_eq!(
                (h.source(), h.destination(), n),
                (Some(s), Some(d), v1.len())
            );
            let tlv = Tlv {
                kind: PP2_TYPE_UNIQUE_ID,
                value: b"id-1",
            };
            let v2 = proxy_v2_header(s, d, &[tlv]);
            let (h, n) = ProxyHeader::parse(&v2).unwrap().unwrap();
            assert_eq!(
                (h.source(), h.destination(), n),
                (Some(s), Some(d), v2.len())
            );
            assert_eq!(h.tlvs().collect::<Vec<_>>(), [tlv]);
        }
    }
}
