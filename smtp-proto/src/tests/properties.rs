//! Property tests: printing and parsing are inverses, the DATA decoder undoes dot-stuffing
//! however the input is split, and the fuzz targets' bodies survive random input (so they run
//! on stable in CI; `fuzz/` runs the same bodies under libFuzzer).

use std::borrow::Cow;

use crate::{
    BareLineEndings, BodyType, Command, DataDecoder, Decoded, EnhancedStatus, ForwardPath,
    MailParams, Mailbox, Notify, Orcpt, RcptParams, Reply, Ret, ReversePath, dot_stuff, fuzzing,
};
use proptest::prelude::*;

fn atom() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]{1,8}"
}

fn local_part() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(atom(), 1..4).prop_map(|a| a.join(".")),
        "[a-zA-Z0-9 .@<>()]{0,10}".prop_map(|s| format!("\"{s}\"")),
        "[a-z\u{e0}-\u{ff}\u{4e00}-\u{4e10}]{1,6}",
    ]
}

fn domain() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec("[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?", 1..4).prop_map(|l| l.join(".")),
        any::<[u8; 4]>().prop_map(|o| format!("[{}.{}.{}.{}]", o[0], o[1], o[2], o[3])),
        any::<[u16; 8]>().prop_map(|s| format!("[IPv6:{}]", std::net::Ipv6Addr::from(s))),
    ]
}

fn mailbox() -> impl Strategy<Value = Mailbox<'static>> {
    (local_part(), domain()).prop_map(|(l, d)| {
        let s: &'static str = Box::leak(format!("{l}@{d}").into_boxed_str());
        Mailbox::parse(s).expect("generated mailbox parses")
    })
}

fn xtext_value() -> impl Strategy<Value = Cow<'static, str>> {
    "[ -~\u{e9}]{1,20}".prop_map(Cow::Owned)
}

fn mail_params() -> impl Strategy<Value = MailParams<'static>> {
    (
        prop::option::of(any::<u64>()),
        prop::option::of(prop_oneof![
            Just(BodyType::SevenBit),
            Just(BodyType::EightBitMime),
            Just(BodyType::BinaryMime)
        ]),
        any::<bool>(),
        prop::option::of(prop_oneof![Just(Ret::Full), Just(Ret::Headers)]),
        prop::option::of("[ -~]{1,30}".prop_map(Cow::Owned)),
        prop::option::of(xtext_value()),
        any::<bool>(),
    )
        .prop_map(|(size, body, smtputf8, ret, envid, auth, requiretls)| {
            let mut p = MailParams::default();
            (p.size, p.body, p.smtputf8, p.ret) = (size, body, smtputf8, ret);
            (p.envid, p.auth, p.requiretls) = (envid, auth, requiretls);
            p
        })
}

fn rcpt_params() -> impl Strategy<Value = RcptParams<'static>> {
    (
        prop::option::of(
            any::<(bool, bool, bool)>().prop_map(|(success, failure, delay)| Notify {
                success,
                failure,
                delay,
            }),
        ),
        prop::option::of(
            ("[a-zA-Z0-9-]{1,8}", xtext_value()).prop_map(|(t, addr)| Orcpt {
                addr_type: Cow::Owned(t),
                addr,
            }),
        ),
    )
        .prop_map(|(notify, orcpt)| {
            let mut p = RcptParams::default();
            (p.notify, p.orcpt) = (notify, orcpt);
            p
        })
}

fn text() -> impl Strategy<Value = Cow<'static, str>> {
    "[!-~][ -~]{0,20}".prop_map(|s| Cow::Owned(s.trim_end().to_string()))
}

fn command() -> impl Strategy<Value = Command<'static>> {
    let name = || "[a-zA-Z0-9.-]{1,20}".prop_map(Cow::Owned);
    prop_oneof![
        name().prop_map(|domain| Command::Helo { domain }),
        name().prop_map(|domain| Command::Ehlo { domain }),
        name().prop_map(|domain| Command::Lhlo { domain }),
        (prop::option::of(mailbox()), mail_params()).prop_map(|(m, mut params)| {
            let from = m.map_or(ReversePath::Null, ReversePath::Mailbox);
            // RFC 6531 3.4: a UTF-8 sender comes with SMTPUTF8.
            params.smtputf8 |= from.mailbox().is_some_and(|m| !m.is_ascii());
            Command::Mail { from, params }
        }),
        (prop::option::of(mailbox()), rcpt_params()).prop_map(|(m, params)| Command::Rcpt {
            to: m.map_or(ForwardPath::Postmaster, ForwardPath::Mailbox),
            params
        }),
        Just(Command::Data),
        (any::<u64>(), any::<bool>()).prop_map(|(size, last)| Command::Bdat { size, last }),
        Just(Command::Rset),
        prop::option::of(text()).prop_map(|arg| Command::Noop { arg }),
        Just(Command::Quit),
        text().prop_map(|arg| Command::Vrfy { arg }),
        text().prop_map(|arg| Command::Expn { arg }),
        prop::option::of(text()).prop_map(|arg| Command::Help { arg }),
        Just(Command::StartTls),
        (
            "[A-Z0-9_-]{1,20}",
            prop::option::of("[A-Za-z0-9+/]{1,40}={0,2}|=")
        )
            .prop_map(|(m, r)| Command::Auth {
                mechanism: Cow::Owned(m),
                initial_response: r.map(Cow::Owned),
            }),
    ]
}

fn reply() -> impl Strategy<Value = Reply> {
    (
        200u16..600,
        any::<bool>(),
        0u16..1000,
        0u16..1000,
        prop::collection::vec("[a-zA-Z ,:;()<>=-]{0,30}", 1..5),
    )
        .prop_map(|(code, with_status, subject, detail, lines)| {
            let class = (code / 100) as u8;
            let status = (with_status && matches!(class, 2 | 4 | 5))
                .then(|| EnhancedStatus::new(class, subject, detail));
            Reply::new(code, status, lines.join("\n"))
        })
}

/// Splits `input` at the given (sorted, deduplicated) points.
fn split_at<'a>(input: &'a [u8], points: &[usize]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = points.iter().map(|p| p % (input.len() + 1)).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut out = Vec::new();
    let mut last = 0;
    for c in cuts.into_iter().chain([input.len()]) {
        out.push(&input[last..c]);
        last = c;
    }
    out
}

/// Decodes the pieces in order; returns the message and where the end was found.
fn decode(policy: BareLineEndings, pieces: &[&[u8]]) -> (Vec<u8>, Option<usize>) {
    let mut dec = DataDecoder::with_policy(u64::MAX, policy);
    let mut out = Vec::new();
    let mut offset = 0;
    for piece in pieces {
        let mut pos = 0;
        loop {
            match dec.decode(&piece[pos..]) {
                Decoded::Data { data, consumed } => {
                    out.extend_from_slice(data);
                    pos += consumed;
                }
                Decoded::End { consumed, result } => {
                    assert!(result.is_ok());
                    return (out, Some(offset + pos + consumed));
                }
                Decoded::NeedMore => break,
            }
        }
        offset += piece.len();
    }
    (out, None)
}

proptest! {
    /// RFC 5321 4.1.1: a command printed by us parses back to the same command.
    #[test]
    fn command_print_parse(cmd in command()) {
        let line = cmd.to_string();
        prop_assert_eq!(Command::parse(line.as_bytes()), Ok(cmd), "{}", line);
    }

    /// RFC 5321 4.2 and RFC 2034: a reply written by us parses back to the same reply.
    #[test]
    fn reply_write_parse(reply in reply(), tail in prop::collection::vec(any::<u8>(), 0..8)) {
        let mut wire = Vec::new();
        reply.write_to(&mut wire);
        let len = wire.len();
        wire.extend_from_slice(&tail);
        let parsed = Reply::parse(&wire, 1 << 16).unwrap().unwrap();
        prop_assert_eq!(parsed, (reply, len));
    }

    /// RFC 5321 4.5.2: decoding undoes dot-stuffing for any bytes, however they are split.
    #[test]
    fn data_decoder_inverts_stuffing(
        body in prop::collection::vec(prop_oneof![Just(b'.'), Just(b'\r'), Just(b'\n'), any::<u8>()], 0..300),
        points in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        let mut wire = Vec::new();
        dot_stuff(&body, &mut wire);
        let mut want = body.clone();
        if !body.is_empty() && !body.ends_with(b"\r\n") {
            want.extend_from_slice(b"\r\n");
        }
        let pieces = split_at(&wire, &points);
        let end = Some(wire.len());
        prop_assert_eq!(decode(BareLineEndings::Keep, &pieces), (want.clone(), end));
        // Without bare CR or LF, the default policy gives the same bytes.
        let bare = want.windows(2).any(|w| (w[0] == b'\r') != (w[1] == b'\n'))
            || want.first() == Some(&b'\n')
            || want.last() == Some(&b'\r');
        if !bare {
            prop_assert_eq!(decode(BareLineEndings::Normalize, &pieces), (want, end));
        }
    }

    /// The normalised message never holds a bare CR or LF.
    #[test]
    fn normalize_leaves_only_crlf(
        body in prop::collection::vec(prop_oneof![Just(b'.'), Just(b'\r'), Just(b'\n'), Just(b'a')], 0..200),
        points in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        let mut wire = body.clone();
        wire.extend_from_slice(b"\r\n.\r\n");
        let (out, _) = decode(BareLineEndings::Normalize, &split_at(&wire, &points));
        for (i, &b) in out.iter().enumerate() {
            if b == b'\r' {
                prop_assert_eq!(out.get(i + 1), Some(&b'\n'));
            }
            if b == b'\n' {
                prop_assert!(i > 0 && out[i - 1] == b'\r');
            }
        }
    }

    #[test]
    fn fuzz_command(data in prop::collection::vec(any::<u8>(), 0..2000)) {
        fuzzing::command(&data);
    }

    #[test]
    fn fuzz_command_alphabet(data in "[ -~\r\n<>@:.]{0,600}") {
        let mut bytes = vec![7];
        bytes.extend_from_slice(data.as_bytes());
        fuzzing::command(&bytes);
    }

    #[test]
    fn fuzz_reply(data in prop::collection::vec(prop_oneof![Just(b'2'), Just(b'5'), Just(b'-'), Just(b' '), Just(b'\r'), Just(b'\n'), any::<u8>()], 0..500)) {
        fuzzing::reply(&data);
    }

    #[test]
    fn fuzz_data(data in prop::collection::vec(prop_oneof![Just(b'.'), Just(b'\r'), Just(b'\n'), any::<u8>()], 0..2000)) {
        fuzzing::data(&data);
    }

    /// Long, mostly well-formed lines with a few bare CRs and LFs and dot lines: the shape that
    /// runs the decoder's block-at-a-time scan (the input above has a CR or LF every few bytes).
    #[test]
    fn fuzz_data_long_lines(
        head in any::<[u8; 3]>(),
        lines in prop::collection::vec(
            (
                "\\.{0,2}[a-z .]{0,150}",
                prop_oneof![
                    8 => Just("\r\n"),
                    1 => Just("\n"),
                    1 => Just("\r"),
                    1 => Just("\r\r\n"),
                    1 => Just(""),
                ],
            ),
            0..40,
        ),
        end in any::<bool>(),
    ) {
        let mut data = head.to_vec();
        for (line, ending) in &lines {
            data.extend_from_slice(line.as_bytes());
            data.extend_from_slice(ending.as_bytes());
        }
        if end {
            data.extend_from_slice(b"\r\n.\r\nQUIT\r\n");
        }
        fuzzing::data(&data);
    }

    #[test]
    fn fuzz_proxy(data in prop::collection::vec(any::<u8>(), 0..300), v2 in any::<bool>()) {
        let mut input = if v2 { crate::V2_SIGNATURE.to_vec() } else { b"PROXY ".to_vec() };
        input.extend_from_slice(&data);
        fuzzing::proxy(&input);
        fuzzing::proxy(&data);
    }

    #[test]
    fn fuzz_session(
        head in prop::collection::vec(any::<u8>(), 4),
        script in prop::sample::select(vec![
            "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n",
            "PROXY TCP4 192.0.2.1 192.0.2.2 1 25\r\nLHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<c@d.example>\r\nBDAT 5\r\n",
            "EHLO c\r\nSTARTTLS\r\nEHLO c\r\nAUTH LOGIN\r\nYQ==\r\n",
            "",
        ]),
        tail in prop::collection::vec(prop_oneof![Just(b'.'), Just(b'\r'), Just(b'\n'), any::<u8>()], 0..1500),
    ) {
        let mut data = head;
        data.extend_from_slice(script.as_bytes());
        data.extend_from_slice(&tail);
        fuzzing::session(&data);
    }
}

/// Inputs the fuzzers found crashing, kept as regression tests (`tests/fuzz_regressions/`,
/// named `TARGET-what`).
#[test]
fn fuzz_regressions() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fuzz_regressions");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        match name.split('-').next().unwrap() {
            "command" => fuzzing::command(&data),
            "reply" => fuzzing::reply(&data),
            "data" => fuzzing::data(&data),
            "proxy" => fuzzing::proxy(&data),
            "session" => fuzzing::session(&data),
            other => panic!("unknown target {other} for {name}"),
        }
    }
}
