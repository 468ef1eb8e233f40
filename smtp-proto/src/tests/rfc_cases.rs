//! Edge cases of `crate::Session` derived from the RFC text (RFC 5321, 1870, 3030, 3461,
//! 4954, 6152, 6531, and haproxy's proxy-protocol.txt), not from what the code does today.
//! Every case runs twice: each step sent whole, and each step sent one byte at a time. A case
//! where the code disagrees with the RFC sits in its own `#[ignore = "bug: ..."]` test.

use std::sync::{Arc, Mutex};

use crate::testing::{Decision, Pair};
use crate::{
    CloseReason, Config, Credentials, DecisionError, Event, ForwardPath, SaslExchange,
    SaslMechanism, SaslStep,
};

/// A step: what the client sends, and the reply codes it must get back.
type Step<'a> = (&'a str, &'a [u16]);

/// Not client bytes: this step asks the session to shut down.
const SHUTDOWN: &str = "\0shutdown\0";

const EHLO: &str = "EHLO client.example\r\n";
const MAIL: &str = "MAIL FROM:<a@b.example>\r\n";
const RCPT: &str = "RCPT TO:<c@d.example>\r\n";
const PLAIN_ANN: &str = "AUTH PLAIN AGFubgBzZWNyZXQ=\r\n";

/// Where a case starts, after the greeting; the steps that lead there are checked too.
#[derive(Clone, Copy)]
enum At {
    Greeted,
    Hello,
    Mail,
    Rcpt,
    /// After `MAIL FROM:<a@b.example> SMTPUTF8`.
    Utf8,
}
use At::{Greeted, Hello, Mail, Rcpt, Utf8};

impl At {
    fn steps(self) -> Vec<Step<'static>> {
        let (hello, mail, rcpt): (Step<'_>, Step<'_>, Step<'_>) =
            ((EHLO, &[250]), (MAIL, &[250]), (RCPT, &[250]));
        match self {
            Greeted => vec![],
            Hello => vec![hello],
            Mail => vec![hello, mail],
            Rcpt => vec![hello, mail, rcpt],
            Utf8 => vec![hello, ("MAIL FROM:<a@b.example> SMTPUTF8\r\n", &[250])],
        }
    }
}

/// A scripted case.
struct Case {
    name: &'static str,
    config: fn(&mut Config),
    at: At,
    steps: &'static [Step<'static>],
    closed: Option<CloseReason>,
}

const fn case(
    name: &'static str,
    config: fn(&mut Config),
    at: At,
    steps: &'static [Step<'static>],
) -> Case {
    let closed = None;
    Case {
        name,
        config,
        at,
        steps,
        closed,
    }
}

impl Case {
    const fn closed(mut self, reason: CloseReason) -> Self {
        self.closed = Some(reason);
        self
    }
}

/// Runs one case with these steps; the first step whose replies differ is the error.
fn run(case: &Case, steps: &[Step<'_>], bytewise: bool) -> Result<(), String> {
    let mut config = Config::new("mx.example");
    (case.config)(&mut config);
    let proxy = config.proxy_protocol;
    let mut pair = Pair::new(config);
    let greeting = pair.codes();
    let (name, how) = (case.name, if bytewise { "bytewise" } else { "whole" });
    if !proxy && greeting != [220] {
        return Err(format!("{name} ({how}): greeting {greeting:?}"));
    }
    for (input, codes) in case.at.steps().iter().chain(steps) {
        if *input == SHUTDOWN {
            pair.shutdown();
        } else if bytewise {
            pair.send_bytewise(input);
        } else {
            pair.send(input);
        }
        let (got, t) = (pair.codes(), pair.transcript());
        if got != *codes {
            return Err(format!(
                "{name} ({how}): after {input:?} got {got:?}, want {codes:?}\n{t}"
            ));
        }
    }
    let (got, want, t) = (pair.closed(), case.closed, pair.transcript());
    if got != want {
        return Err(format!(
            "{name} ({how}): closed {got:?}, want {want:?}\n{t}"
        ));
    }
    Ok(())
}

/// Runs cases whole and byte by byte, and reports every failing one.
fn check<'a>(runs: impl IntoIterator<Item = (&'a Case, Vec<Step<'a>>)>) {
    let failures: Vec<String> = runs
        .into_iter()
        .flat_map(|(case, steps)| [run(case, &steps, false), run(case, &steps, true)])
        .filter_map(Result::err)
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn run_cases(cases: &[Case]) {
    check(cases.iter().map(|c| (c, c.steps.to_vec())));
}

/// A one-command case: (RFC section, where it starts, the command without CRLF, its reply).
type Line = (&'static str, At, &'static str, u16);

fn run_lines(lines: &[Line]) {
    let cases: Vec<(Case, String, [u16; 1])> = lines
        .iter()
        .map(|&(name, at, line, code)| (case(name, plain, at, &[]), format!("{line}\r\n"), [code]))
        .collect();
    check(
        cases
            .iter()
            .map(|(case, line, code)| (case, vec![(line.as_str(), &code[..])])),
    );
}

/// Header-only cases: (proxy-protocol.txt section, the header). Good headers are greeted,
/// bad ones are closed without a word.
fn run_proxy(headers: &[(&'static str, &'static str)], good: bool) {
    let cases: Vec<Case> = headers
        .iter()
        .map(|&(name, _)| match good {
            true => case(name, proxy, Greeted, &[]),
            false => case(name, proxy, Greeted, &[]).closed(CloseReason::BadProxyHeader),
        })
        .collect();
    check(cases.iter().zip(headers).map(|(case, &(_, header))| {
        let steps: Vec<Step<'_>> = match good {
            true => vec![(header, &[220]), (EHLO, &[250])],
            false => vec![(header, &[])],
        };
        (case, steps)
    }));
}

fn plain(_: &mut Config) {}

fn small(c: &mut Config) {
    c.limits.message_size = 10;
}

fn auth(c: &mut Config) {
    c.auth.mechanisms = vec!["PLAIN".into(), "LOGIN".into()];
    c.auth.allow_insecure = true;
}

fn auth_required(c: &mut Config) {
    auth(c);
    c.auth.required = true;
}

fn no_extensions(c: &mut Config) {
    c.extensions.chunking = false;
    c.extensions.dsn = false;
    c.extensions.size = false;
    c.extensions.smtputf8 = false;
}

fn proxy(c: &mut Config) {
    c.proxy_protocol = true;
}

/// The PROXY v2 signature (proxy-protocol.txt 2.2) and what follows; every byte is ASCII.
macro_rules! v2 {
    ($rest:expr) => {
        concat!("\r\n\r\n\0\r\nQUIT\n", $rest)
    };
}

/// v2 TCP4 address block: 10.0.0.1:4096 to 10.0.0.2:25.
macro_rules! tcp4 {
    () => {
        "\x0a\0\0\x01\x0a\0\0\x02\x10\0\0\x19"
    };
}

/// 91 octets: with `PROXY UNKNOWN ` and CRLF, a v1 line of exactly 107.
macro_rules! x91 {
    () => {
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    };
}

#[rustfmt::skip]
const SCRIPTS: &[Case] = &[
    // RFC 3030 2: chunk-size = 1*DIGIT: a zero-size chunk need not be the last.
    case("3030 2 zero-size chunk before the last", plain, Rcpt, &[
        ("BDAT 0\r\n", &[250]),
        ("BDAT 00002 LAST\r\nab", &[250]),
    ]),
    // RFC 3030 2: "Any BDAT command sent after the BDAT LAST is illegal and MUST be replied
    // to with a 503"; its chunk is still data, never commands.
    case("3030 2 BDAT after BDAT LAST", plain, Rcpt, &[
        ("BDAT 1 LAST\r\nx", &[250]),
        ("BDAT 6\r\nNOOP\r\n", &[503]),
        ("RSET\r\n", &[250]),
    ]),
    // RFC 3030 2: "no prohibition on using DATA and BDAT in the same session".
    case("3030 2 DATA, BDAT and DATA transactions in one session", plain, Rcpt, &[
        ("DATA\r\nhi\r\n.\r\n", &[354, 250]),
        ("MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n", &[250, 250]),
        ("BDAT 2 LAST\r\nhi", &[250]),
        ("MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n", &[250, 250]),
        ("DATA\r\n", &[354]),
    ]),
    // RFC 5321 3.3: no RCPT: 503 (or 554); RFC 3030 2: the chunk is consumed anyway.
    case("3030 2, 5321 3.3 BDAT after MAIL without RCPT", plain, Mail, &[
        ("BDAT 6 LAST\r\nRSET\r\n", &[503]),
        ("NOOP\r\n", &[250]),
    ]),
    // RFC 5234 2.3: ABNF strings ("BDAT", "LAST") are case-insensitive.
    case("3030 2 end-marker in lower case", plain, Rcpt, &[
        ("bdat 2 last\r\nab", &[250]),
        (RCPT, &[503]),
    ]),
    // RFC 3030 2: bdat-cmd = "BDAT" SP chunk-size [ SP end-marker ] CR LF.
    case("3030 2 bdat-cmd syntax", plain, Rcpt, &[
        ("BDAT\r\nBDAT x\r\nBDAT -1\r\n", &[501, 501, 501]),
        ("BDAT 2 FIRST\r\nBDAT 2 LAST now\r\n", &[501, 501]),
        ("BDAT 2 LAST\r\nok", &[250]),
    ]),
    // RFC 3030 2: after a failed BDAT the server "MUST be prepared to accept and discard
    // additional BDAT chunks already in the pipeline".
    case("3030 2 pipelined chunks after a failed chunk are discarded", small, Rcpt, &[
        ("BDAT 11\r\n01234567890BDAT 4 LAST\r\nNOOPNOOP\r\n", &[552, 503, 250]),
    ]),
    // RFC 4954 4: a cancel may come at any challenge; a new AUTH may follow.
    case("4954 4 cancel at the second LOGIN challenge, then AUTH", auth_required, Hello, &[
        ("AUTH LOGIN\r\nYW5u\r\n*\r\n", &[334, 334, 501]),
        (MAIL, &[530]),
        (PLAIN_ANN, &[235]),
        (MAIL, &[250]),
    ]),
    // RFC 4954 4: "AUTH" SP sasl-mech [SP initial-response]; "*" cancels only a challenge:
    // as an initial response it is not base64 (501). RFC 5321 2.4: verbs in any case.
    case("4954 4 AUTH syntax", auth, Hello, &[
        ("AUTH\r\nAUTH PLAIN *\r\n", &[501, 501]),
        ("AUTH PLAIN AGFubgBz ZWNyZXQ=\r\n", &[501]),
        ("auth PLAIN AGFubgBzZWNyZXQ=\r\n", &[235]),
    ]),
    // RFC 4954 4: every line of the exchange is a response, even one that reads as a command.
    case("4954 4 a command-like line during the exchange", auth, Hello, &[
        ("AUTH LOGIN\r\nQUIT\r\n", &[334, 334]),
    ]),
    // RFC 5321 4.1.4: EHLO resets the transaction, not the authentication; RFC 4954 4: no
    // AUTH after a successful one.
    case("4954 4 authentication survives EHLO and RSET", auth_required, Hello, &[
        (PLAIN_ANN, &[235]),
        ("EHLO again\r\nRSET\r\n", &[250, 250]),
        (MAIL, &[250]),
        ("RSET\r\nAUTH LOGIN\r\n", &[250, 503]),
    ]),
    // RFC 4954 5: AUTH=<> and AUTH=xtext on MAIL when AUTH is offered.
    case("4954 5 MAIL AUTH= parameter", auth, Hello, &[
        ("MAIL FROM:<a@b.example> AUTH=<>\r\nRSET\r\n", &[250, 250]),
        ("MAIL FROM:<a@b.example> AUTH=ann+40b.example\r\n", &[250]),
    ]),
    // RFC 5321 4.1.1.11: a parameter of an extension not offered is 555; 4.2.4: 502 for a
    // command not implemented.
    case("4954 5, 5321 4.2.4 AUTH not offered", plain, Hello, &[
        ("MAIL FROM:<a@b.example> AUTH=<>\r\n", &[555]),
        (PLAIN_ANN, &[502]),
    ]),
    // RFC 5321 4.1.1.11, RFC 3030 3: no BINARYMIME without CHUNKING.
    case("5321 4.1.1.11 parameters of extensions not offered", no_extensions, Hello, &[
        ("MAIL FROM:<a@b.example> SIZE=10\r\nMAIL FROM:<a@b.example> RET=FULL\r\n", &[555, 555]),
        ("MAIL FROM:<a@b.example> SMTPUTF8\r\n", &[555]),
        ("MAIL FROM:<a@b.example> BODY=BINARYMIME\r\n", &[555]),
        (MAIL, &[250]),
        ("RCPT TO:<c@d.example> NOTIFY=NEVER\r\n", &[555]),
    ]),
    // RFC 5321 3.8: a server shutting down SHOULD send 421; after RCPT or during an AUTH
    // exchange no message is in flight.
    case("5321 3.8 shutdown after RCPT", plain, Rcpt, &[(SHUTDOWN, &[421])])
        .closed(CloseReason::Shutdown),
    case("5321 3.8 shutdown during an AUTH exchange", auth, Hello, &[
        ("AUTH LOGIN\r\n", &[334]),
        (SHUTDOWN, &[421]),
    ]).closed(CloseReason::Shutdown),
    // After 354 the message is in flight: answered, then 421; pipelined commands are not.
    case("5321 3.8 shutdown between 354 and the content", plain, Rcpt, &[
        ("DATA\r\n", &[354]),
        (SHUTDOWN, &[]),
        ("x\r\n.\r\nMAIL FROM:<a@b.example>\r\n", &[250, 421]),
    ]).closed(CloseReason::Shutdown),
    case("5321 3.8 shutdown twice", plain, Greeted, &[
        (SHUTDOWN, &[421]),
        (SHUTDOWN, &[]),
        ("NOOP\r\n", &[]),
    ]).closed(CloseReason::Shutdown),
    // RFC 5321 4.1.1.1: ehlo = "EHLO" SP ( Domain / address-literal ) CRLF.
    case("5321 4.1.1.1 EHLO and HELO arguments", plain, Greeted, &[
        ("EHLO\r\nHELO\r\n", &[501, 501]),
        (MAIL, &[503]),
        ("EHLO [192.0.2.1]\r\nEHLO [IPv6:2001:db8::1]\r\n", &[250, 250]),
    ]),
    // RFC 5321 4.1.1.4, 4.1.1.5, 4.1.1.10: DATA, RSET and QUIT take no argument; 4.1.1.6,
    // 4.1.1.8, 4.1.1.9: VRFY needs one, HELP and NOOP may have one.
    case("5321 4.1.1 arguments of DATA, RSET, QUIT, VRFY, HELP, NOOP", plain, Rcpt, &[
        ("DATA now\r\nRSET all\r\nQUIT now\r\nVRFY\r\n", &[501, 501, 501, 501]),
        ("HELP MAIL\r\nNOOP hello\r\n", &[214, 250]),
        ("DATA\r\n.\r\n", &[354, 250]),
    ]),
];

#[rustfmt::skip]
const LINES: &[Line] = &[
    // RFC 5321 3.3: "spaces are not permitted on either side of the colon", but no server
    // MUST refuse them; the crate accepts spaces after it on purpose (command.rs).
    ("5321 3.3", Hello, "MAIL FROM: <a@b.example>", 250),
    // RFC 5321 4.1.2: Reverse-path = Path / "<>", Forward-path = Path (4.3.2: 553 or 501).
    ("5321 4.3.2", Hello, "MAIL FROM:<a@b.example>junk", 553),
    ("5321 4.1.2", Hello, "MAIL FROM:<postmaster>", 553),
    ("5321 4.1.1.3", Mail, "RCPT TO:<>", 553),
    ("5321 4.5.1", Mail, "RCPT TO:<POSTMASTER>", 250),
    // RFC 5321 4.1.2 A-d-l, C: source routes MUST be accepted and SHOULD be ignored.
    ("5321 4.1.2", Hello, "MAIL FROM:<@r.example:a@b.example>", 250),
    ("5321 4.1.2", Mail, "RCPT TO:<@r1.example,@r2.example:c@d.example>", 250),
    ("5321 4.1.2", Mail, "RCPT TO:<@:c@d.example>", 553),
    // RFC 5321 4.1.2: Quoted-string (qtextSMTP, quoted-pairSMTP) and Dot-string (atext).
    ("5321 4.1.2", Hello, "MAIL FROM:<\"a b\"@b.example>", 250),
    ("5321 4.1.2", Mail, "RCPT TO:<\"a\\\"b@c\"@d.example>", 250),
    ("5321 4.1.2", Mail, "RCPT TO:<\"unterminated@d.example>", 553),
    ("5321 4.1.2", Mail, "RCPT TO:<!#$%&'*+-/=?^_`{|}~@d.example>", 250),
    ("5321 4.1.2", Mail, "RCPT TO:<c..e@d.example>", 553),
    // RFC 5321 4.1.2: Domain = sub-domain *("." sub-domain); sub-domain = Let-dig [Ldh-str].
    ("5321 4.1.2", Mail, "RCPT TO:<c@localhost>", 250),
    ("5321 4.1.2", Mail, "RCPT TO:<c@d-.example>", 553),
    ("5321 4.1.2", Mail, "RCPT TO:<c@d.example.>", 553),
    // RFC 5321 4.1.3: address literals.
    ("5321 4.1.3", Mail, "RCPT TO:<c@[IPv6:2001:db8::1]>", 250),
    ("5321 4.1.3", Mail, "RCPT TO:<c@[IPv6:::ffff:192.0.2.1]>", 250),
    ("5321 4.1.3", Mail, "RCPT TO:<c@[256.1.1.1]>", 553),
    ("5321 4.1.3", Mail, "RCPT TO:<c@[IPv6:1::2::3]>", 553),
    // RFC 5321 4.1.2: esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-"); esmtp-value =
    // 1*(%d33-60 / %d62-126); keywords match in any case; unknown ones are 555 (4.1.1.11).
    ("5321 4.1.2", Hello, "MAIL FROM:<a@b.example> size=10 body=8bitmime ret=hdrs", 250),
    ("5321 4.1.2", Hello, "MAIL FROM:<a@b.example> -X", 501),
    ("5321 4.1.2", Hello, "MAIL FROM:<a@b.example> ENVID=a=b", 501),
    ("5321 4.1.1.11", Mail, "RCPT TO:<c@d.example> X-UNKNOWN=1", 555),
    // RFC 1870 6: size-value = 1*20DIGIT.
    ("1870 6", Hello, "MAIL FROM:<a@b.example> SIZE=+5", 501),
    ("1870 6", Hello, "MAIL FROM:<a@b.example> SIZE=10 SIZE=10", 501),
    ("1870 6", Hello, "MAIL FROM:<a@b.example> SIZE=00010", 250),
    // RFC 6152 2: body-value = "7BIT" / "8BITMIME" (RFC 3030 3: / "BINARYMIME").
    ("6152 2", Hello, "MAIL FROM:<a@b.example> BODY=BINARY", 501),
    // RFC 3461 4.1: "NEVER" MUST appear by itself; the list is case-insensitive.
    ("3461 4.1", Mail, "RCPT TO:<c@d.example> NOTIFY=NEVER,SUCCESS", 501),
    ("3461 4.1", Mail, "RCPT TO:<c@d.example> notify=success,Failure,DELAY", 250),
    ("3461 4.1", Mail, "RCPT TO:<c@d.example> NOTIFY=DELAY NOTIFY=FAILURE", 501),
    // RFC 3461 4.2: ORCPT=addr-type ";" xtext, on RCPT only; 4: xtext is ASCII, hexchar is
    // "+" and two upper-case hex digits.
    ("3461 4.2", Mail, "RCPT TO:<c@d.example> ORCPT=c@d.example", 501),
    ("3461 4", Mail, "RCPT TO:<c@d.example> ORCPT=rfc822;c+2x@d.example", 501),
    ("3461 4", Utf8, "RCPT TO:<c@d.example> ORCPT=rfc822;j\u{f6}rg@d.example", 501),
    ("3461 4.2", Mail, "RCPT TO:<c@d.example> ORCPT=rfc822;c+2Bx@d.example", 250),
    ("3461 4", Hello, "MAIL FROM:<a@b.example> ORCPT=rfc822;a@b.example", 555),
    // RFC 3461 4.3, 4.4: RET and ENVID at most once.
    ("3461 4.3", Hello, "MAIL FROM:<a@b.example> RET=FULL RET=HDRS", 501),
    ("3461 4.4", Hello, "MAIL FROM:<a@b.example> ENVID=x ENVID=y", 501),
    // RFC 6531 3.4: SMTPUTF8 is a MAIL parameter without a value; 3.5: a non-ASCII address
    // without it is 553 5.6.7; 3.3: UTF-8 local parts and U-labels with it.
    ("6531 3.4", Hello, "MAIL FROM:<a@b.example> SMTPUTF8=YES", 501),
    ("6531 3.4", Utf8, "RCPT TO:<c@d.example> SMTPUTF8", 555),
    ("6531 3.5", Hello, "MAIL FROM:<a@b\u{fc}cher.example>", 553),
    ("6531 3.5", Mail, "RCPT TO:<c@b\u{fc}cher.example>", 553),
    ("6531 3.3", Hello, "MAIL FROM:<j\u{f6}rg@b\u{fc}cher.example> SMTPUTF8", 250),
    ("6531 3.3", Utf8, "RCPT TO:<\u{7528}\u{6237}@\u{4f8b}\u{5b50}.\u{5e7f}\u{544a}>", 250),
    ("6531 3.3", Utf8, "RCPT TO:<\"j\u{f6} rg\"@d.example>", 250),
];

/// proxy-protocol.txt 2.1: v1 UNKNOWN ("the receiver must ignore anything presented before
/// the CRLF"), up to 107 octets, TCP6; 2.2: v2 LOCAL ("must use the real connection
/// endpoints"), AF_UNSPEC ("should ignore address information"), a NOOP TLV.
#[rustfmt::skip]
const PROXY_GOOD: &[(&str, &str)] = &[
    ("proxy 2.1 v1 UNKNOWN", "PROXY UNKNOWN\r\n"),
    ("proxy 2.1 v1 UNKNOWN, addresses", "PROXY UNKNOWN ffff::1 ffff::2 65535 65535\r\n"),
    ("proxy 2.1 v1 107 octets", concat!("PROXY UNKNOWN ", x91!(), "\r\n")),
    ("proxy 2.1 v1 TCP6", "PROXY TCP6 2001:db8::1 2001:db8::2 40000 25\r\n"),
    ("proxy 2.2 v2 TCP4", v2!(concat!("\x21\x11\x00\x0c", tcp4!()))),
    ("proxy 2.2 v2 LOCAL", v2!("\x20\x00\x00\x00")),
    ("proxy 2.2 v2 LOCAL with addresses", v2!(concat!("\x20\x11\x00\x0c", tcp4!()))),
    ("proxy 2.2 v2 AF_UNSPEC", v2!("\x21\x00\x00\x00")),
    ("proxy 2.2.7 v2 NOOP TLV", v2!(concat!("\x21\x11\x00\x0f", tcp4!(), "\x04\0\0"))),
];

/// proxy-protocol.txt 2.1: "PROXY" in upper case, matching families, ports up to 65535,
/// CRLF, at most 107 octets; 2.2: the signature, version 2, LOCAL or PROXY, an address block
/// as long as its family needs.
#[rustfmt::skip]
const PROXY_BAD: &[(&str, &str)] = &[
    ("proxy 2.1 v1 lower case", "proxy TCP4 192.0.2.1 192.0.2.2 4000 25\r\n"),
    ("proxy 2.1 v1 family", "PROXY TCP4 2001:db8::1 2001:db8::2 4000 25\r\n"),
    ("proxy 2.1 v1 port", "PROXY TCP4 192.0.2.1 192.0.2.2 65536 25\r\n"),
    ("proxy 2.1 v1 bare LF", "PROXY TCP4 192.0.2.1 192.0.2.2 4000 25\nEHLO c\r\n"),
    ("proxy 2.1 v1 108 octets", concat!("PROXY UNKNOWN x", x91!(), "\r\n")),
    ("proxy 2.2 v2 signature", concat!("\r\n\r\n\0\r\nQUIT\r\x21\x11\x00\x0c", tcp4!())),
    ("proxy 2.2 v2 version 1", v2!("\x11\x11\x00\x00")),
    ("proxy 2.2 v2 command 0xF", v2!("\x2f\x11\x00\x00")),
    ("proxy 2.2 v2 short address block", v2!("\x21\x11\x00\x04\x0a\0\0\x01")),
];

#[test]
fn scripted_cases() {
    run_cases(SCRIPTS);
}

#[test]
fn one_command_cases() {
    run_lines(LINES);
}

#[test]
fn proxy_headers() {
    run_proxy(PROXY_GOOD, true);
    run_proxy(PROXY_BAD, false);
}

/// RFC 3030 2: "The last BDAT command MAY have a byte-count of zero", also when it is the
/// only one.
#[test]
fn bdat_zero_last_as_the_only_chunk() {
    let steps: &[Step<'_>] = &[("BDAT 0 LAST\r\n", &[250]), (RCPT, &[503])];
    run_cases(&[case("3030 2 BDAT 0 LAST alone", plain, Rcpt, steps)]);
}

/// RFC 3461 4: hexchar = ASCII "+" immediately followed by two upper-case hex digits. We
/// accept lower case too, deliberately (as Postfix's xtext decoding does): refusing a whole
/// transaction over the case of a DSN parameter's hex digit helps nobody. Upper case is what
/// we send (`xtext_encode`).
#[test]
fn xtext_hex_in_either_case() {
    run_lines(&[(
        "3461 4",
        Mail,
        "RCPT TO:<c@d.example> ORCPT=rfc822;c+2bx@d.example",
        250,
    )]);
}

/// RFC 3461 4.4: the ENVID is at most 100 characters.
#[test]
fn envid_length() {
    let lines: Vec<(Case, String, [u16; 1])> = [(100, 250), (101, 501)]
        .into_iter()
        .map(|(n, code)| {
            let line = format!("MAIL FROM:<a@b.example> ENVID={}\r\n", "x".repeat(n));
            (
                case("3461 4.4 ENVID length", plain, Hello, &[]),
                line,
                [code],
            )
        })
        .collect();
    check(
        lines
            .iter()
            .map(|(c, line, code)| (c, vec![(line.as_str(), &code[..])])),
    );
}

/// RFC 4954 4: "=" is an empty initial response, handed to the mechanism as such, not a
/// request for a challenge; an empty line answers a challenge with an empty response.
#[test]
fn auth_empty_initial_response() {
    type Seen = Arc<Mutex<Vec<Option<Vec<u8>>>>>;
    struct Rec(Seen);
    impl SaslMechanism for Rec {
        fn name(&self) -> &str {
            "X-REC"
        }
        fn start(&self) -> Box<dyn SaslExchange> {
            Box::new(Self(self.0.clone()))
        }
    }
    impl SaslExchange for Rec {
        fn step(&mut self, response: Option<Vec<u8>>) -> SaslStep {
            let mut seen = self.0.lock().unwrap();
            seen.push(response);
            if seen.len() < 2 {
                return SaslStep::Challenge(b"more".to_vec());
            }
            let (mechanism, identity) = ("X-REC".into(), "ann".into());
            SaslStep::Done(Credentials::Custom {
                mechanism,
                identity,
                data: Vec::new(),
            })
        }
    }
    let seen = Seen::default();
    let mut config = Config::new("mx.example");
    config.auth.mechanisms = vec!["X-REC".into()];
    config.auth.custom = vec![Arc::new(Rec(seen.clone()))];
    config.auth.allow_insecure = true;
    let mut pair = Pair::new(config);
    pair.send(EHLO).send_bytewise("AUTH X-REC =\r\n\r\n");
    assert_eq!(pair.codes(), [220, 250, 334, 235], "{}", pair.transcript());
    assert_eq!(*seen.lock().unwrap(), [Some(vec![]), Some(vec![])]);
}

/// RFC 5321 4.1.2 and RFC 3461 4.2, 4.4: what reaches the envelope. Source routes are
/// dropped, xtext is decoded, NOTIFY flags are kept.
#[test]
fn envelope_after_source_routes_and_dsn() {
    let mut pair = Pair::new(Config::new("mx.example"));
    pair.send(EHLO)
        .send("MAIL FROM:<@r.example:a@b.example> ENVID=id+2B1 RET=FULL\r\n")
        .send("RCPT TO:<@r1.example,@r2.example:c@d.example> NOTIFY=FAILURE,DELAY ORCPT=rfc822;c+2Bx@d.example\r\n")
        .send("RCPT TO:<PostMaster>\r\nBDAT 2 LAST\r\nhi");
    assert_eq!(pair.codes(), [220, 250, 250, 250, 250, 250]);
    let env = &pair.messages()[0].envelope;
    assert_eq!(env.from.as_ref().unwrap().to_string(), "<a@b.example>");
    assert_eq!(env.params.envid.as_deref(), Some("id+1"));
    let r = &env.recipients[0];
    assert_eq!(r.path.to_string(), "<c@d.example>");
    let notify = r.params.notify.unwrap();
    assert!(!notify.success && notify.failure && notify.delay);
    let orcpt = r.params.orcpt.as_ref().unwrap();
    assert_eq!(
        (&*orcpt.addr_type, &*orcpt.addr),
        ("rfc822", "c+x@d.example")
    );
    assert_eq!(env.recipients[1].path, ForwardPath::Postmaster);
}

/// RFC 3030 2, 3: chunk sizes are octets; binary content (NUL, bare CR, 0xFF, a lone dot)
/// comes out unchanged.
#[test]
fn bdat_binary_body_is_exact() {
    let mut pair = Pair::new(Config::new("mx.example"));
    pair.send(EHLO)
        .send("MAIL FROM:<a@b.example> BODY=BINARYMIME\r\n")
        .send(RCPT)
        .send_bytewise(b"BDAT 3\r\n\0\r\xffBDAT 2 LAST\r\n.\n");
    assert_eq!(pair.codes(), [220, 250, 250, 250, 250, 250]);
    assert_eq!(pair.messages()[0].body, b"\0\r\xff.\n");
}

/// proxy-protocol.txt 2.1, 2.2: UNKNOWN and LOCAL carry no client address.
#[test]
fn proxy_unknown_and_local_have_no_source() {
    for header in [
        "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n",
        v2!(concat!("\x20\x11\x00\x0c", tcp4!())),
    ] {
        let mut config = Config::new("mx.example");
        config.proxy_protocol = true;
        let mut pair = Pair::new(config);
        pair.send(header);
        assert_eq!(pair.codes(), [220]);
        assert_eq!(pair.session().proxy().map(|p| p.source), Some(None));
    }
}

/// RFC 5321 3.8: a decision pending at shutdown is not a message in flight: 421 at once, and
/// a late decision adds nothing.
#[test]
fn shutdown_with_a_pending_decision() {
    let mut pair = Pair::with_decider(Config::new("mx.example"), |event, _| match event {
        Event::Mail => Decision::Defer,
        _ => Decision::Accept,
    });
    pair.send(EHLO).send(MAIL).shutdown();
    assert_eq!(pair.codes(), [220, 250, 421]);
    assert_eq!(pair.closed(), Some(CloseReason::Shutdown));
    // The decision that came too late is refused, typed, and changes nothing.
    let mut session_after = Pair::with_decider(Config::new("mx.example"), |event, _| match event {
        Event::Mail => Decision::Defer,
        _ => Decision::Accept,
    });
    session_after.send(EHLO).send(MAIL).shutdown();
    assert_eq!(session_after.codes(), [220, 250, 421]);
    let now = session_after.now();
    let late = Decision::Accept.apply(session_after.session_mut(), now);
    assert_eq!(late, Err(DecisionError::NotPending));
    assert_eq!(session_after.codes(), [] as [u16; 0]);
}

/// Decisions are typed and checked: an answer of the wrong kind is an error, and the
/// session waits on, unchanged.
#[test]
fn decisions_of_the_wrong_kind_are_errors() {
    let mut pair = Pair::with_decider(Config::new("mx.example"), |_, _| Decision::Defer);
    let now = pair.now();
    assert_eq!(
        pair.session_mut().accept_auth(now, "ann".into()),
        Err(DecisionError::WrongKind {
            pending: "connection"
        })
    );
    assert_eq!(
        pair.session_mut().reply_each(now, vec![]),
        Err(DecisionError::WrongKind {
            pending: "connection"
        })
    );
    assert_eq!(
        pair.session_mut().set_capabilities(vec![]),
        Err(DecisionError::WrongKind {
            pending: "connection"
        })
    );
    assert!(pair.session().is_pending());
    pair.decide(Decision::Accept);
    assert_eq!(pair.codes(), [220]);
    assert_eq!(
        pair.session_mut().accept(now),
        Err(DecisionError::NotPending)
    );
}
