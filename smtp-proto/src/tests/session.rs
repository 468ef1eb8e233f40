//! Protocol tests of `crate::Session`, driven by `Pair` on a virtual clock. Each scripted
//! case runs twice: every step sent whole, and every step sent one byte at a time.

use std::time::Duration;

use crate::testing::{Decision, Pair};
use crate::{
    BareLineEndings, CloseReason, Config, Credentials, DataError, EnhancedStatus, Event,
    ForwardPath, Protocol, Reply, proxy_v1_header, proxy_v2_header,
};

/// A step: what the client sends, and the reply codes it must get back.
type Step = (&'static str, &'static [u16]);

struct Case {
    name: &'static str,
    config: fn(&mut Config),
    steps: &'static [Step],
    closed: Option<CloseReason>,
}

fn plain(_: &mut Config) {}

fn run_case(case: &Case, bytewise: bool) -> Pair {
    let mut config = Config::new("mx.example");
    (case.config)(&mut config);
    let mut pair = Pair::new(config);
    let mut greeting = pair.codes();
    if !case.config_expects_proxy() {
        assert_eq!(greeting.remove(0), 220, "{}", case.name);
    }
    for (input, codes) in case.steps {
        if bytewise {
            pair.send_bytewise(input);
        } else {
            pair.send(input);
        }
        let got = pair.codes();
        assert_eq!(
            &got,
            codes,
            "{} ({}), after {input:?}\n{}",
            case.name,
            if bytewise { "bytewise" } else { "whole" },
            pair.transcript()
        );
    }
    assert_eq!(
        pair.closed(),
        case.closed,
        "{}\n{}",
        case.name,
        pair.transcript()
    );
    pair
}

impl Case {
    fn config_expects_proxy(&self) -> bool {
        let mut c = Config::new("x");
        (self.config)(&mut c);
        c.proxy_protocol
    }
}

const EHLO: &str = "EHLO client.example\r\n";

fn small_limits(c: &mut Config) {
    c.limits.message_size = 10;
    c.limits.recipients = 2;
}

fn lmtp(c: &mut Config) {
    c.protocol = Protocol::Lmtp;
}

fn tls(c: &mut Config) {
    c.tls.available = true;
}

fn tls_required(c: &mut Config) {
    c.tls.available = true;
    c.tls.required = true;
}

fn auth(c: &mut Config) {
    c.auth.mechanisms = vec!["PLAIN".into(), "LOGIN".into()];
    c.auth.allow_insecure = true;
}

fn auth_tls_only(c: &mut Config) {
    c.auth.mechanisms = vec!["PLAIN".into()];
    c.tls.available = true;
}

fn auth_required(c: &mut Config) {
    auth(c);
    c.auth.required = true;
}

fn no_chunking(c: &mut Config) {
    c.extensions.chunking = false;
}

fn noop_limit(c: &mut Config) {
    c.limits.commands = vec![("NOOP", 2)];
}

fn one_message(c: &mut Config) {
    c.limits.transactions = Some(1);
}

fn three_errors(c: &mut Config) {
    c.limits.errors = 3;
}

fn reject_bare(c: &mut Config) {
    c.bare_line_endings = BareLineEndings::Reject;
}

fn proxy(c: &mut Config) {
    c.proxy_protocol = true;
}

const CASES: &[Case] = &[
    // RFC 5321 4.1.1.1, 4.3.2: hello, then a transaction.
    Case {
        name: "4.3.2 full transaction",
        config: plain,
        steps: &[
            (EHLO, &[250]),
            ("MAIL FROM:<a@b.example>\r\n", &[250]),
            ("RCPT TO:<c@d.example>\r\n", &[250]),
            ("DATA\r\n", &[354]),
            ("Subject: x\r\n\r\nhi\r\n.\r\n", &[250]),
            ("QUIT\r\n", &[221]),
        ],
        closed: Some(CloseReason::Quit),
    },
    // RFC 2920 3.1: a whole pipelined group, replies in order.
    Case {
        name: "2920 pipelined group",
        config: plain,
        steps: &[(
            "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nRCPT TO:<e@f.example>\r\nDATA\r\nhi\r\n.\r\nMAIL FROM:<>\r\nRSET\r\nNOOP\r\nQUIT\r\n",
            &[250, 250, 250, 250, 354, 250, 250, 250, 250, 221],
        )],
        closed: Some(CloseReason::Quit),
    },
    // RFC 5321 4.1.4: sequencing.
    Case {
        name: "4.1.4 MAIL before hello",
        config: plain,
        steps: &[("MAIL FROM:<a@b.example>\r\n", &[503])],
        closed: None,
    },
    Case {
        name: "4.1.4 RCPT before MAIL, DATA before RCPT, nested MAIL",
        config: plain,
        steps: &[
            (EHLO, &[250]),
            ("RCPT TO:<c@d.example>\r\n", &[503]),
            ("DATA\r\n", &[503]),
            ("MAIL FROM:<a@b.example>\r\n", &[250]),
            ("DATA\r\n", &[503]),
            ("MAIL FROM:<a@b.example>\r\n", &[503]),
        ],
        closed: None,
    },
    Case {
        name: "4.1.1.5 RSET and EHLO reset the transaction",
        config: plain,
        steps: &[
            (EHLO, &[250]),
            (
                "MAIL FROM:<a@b.example>\r\nRSET\r\nRCPT TO:<c@d.example>\r\n",
                &[250, 250, 503],
            ),
            (
                "MAIL FROM:<a@b.example>\r\nEHLO again\r\nRCPT TO:<c@d.example>\r\n",
                &[250, 250, 503],
            ),
            ("MAIL FROM:<a@b.example>\r\n", &[250]),
        ],
        closed: None,
    },
    // RFC 5321 4.1.1.4, 4.5.2: dot-stuffing and the end of data.
    Case {
        name: "4.5.2 transparency and smuggling",
        config: plain,
        steps: &[
            (
                "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n",
                &[250, 250, 250, 354],
            ),
            ("..x\r\n\n.\nMAIL FROM:<evil@x.example>\r\n\r.\r\n", &[]),
            (".\r\n", &[250]),
        ],
        closed: None,
    },
    // RFC 5321 4.1.4: parameters only after EHLO.
    Case {
        name: "4.1.4 HELO takes no parameters",
        config: plain,
        steps: &[
            ("HELO c\r\n", &[250]),
            ("MAIL FROM:<a@b.example> SIZE=10\r\n", &[555]),
            ("MAIL FROM:<a@b.example>\r\n", &[250]),
            ("RCPT TO:<c@d.example> NOTIFY=NEVER\r\n", &[555]),
        ],
        closed: None,
    },
    // RFC 1870 6: SIZE over the limit at MAIL, message over the limit after the data.
    Case {
        name: "1870 size limits",
        config: small_limits,
        steps: &[
            (EHLO, &[250]),
            ("MAIL FROM:<a@b.example> SIZE=11\r\n", &[552]),
            ("MAIL FROM:<a@b.example> SIZE=10\r\n", &[250]),
            ("RCPT TO:<c@d.example>\r\nDATA\r\n", &[250, 354]),
            ("0123456789\r\n.\r\n", &[552]),
            (
                "MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n",
                &[250, 250, 354],
            ),
            ("01234567\r\n.\r\n", &[250]),
            // size-value = 1*20DIGIT: twenty digits past 2^64 are a size over the limit.
            (
                "MAIL FROM:<a@b.example> SIZE=99999999999999999999\r\n",
                &[552],
            ),
            (
                "MAIL FROM:<a@b.example> SIZE=123456789012345678901\r\n",
                &[501],
            ),
        ],
        closed: None,
    },
    // RFC 5321 4.5.3.1.10: too many recipients is 452, and the transaction goes on.
    Case {
        name: "4.5.3.1.10 too many recipients",
        config: small_limits,
        steps: &[
            (EHLO, &[250]),
            ("MAIL FROM:<a@b.example>\r\n", &[250]),
            (
                "RCPT TO:<1@d.example>\r\nRCPT TO:<2@d.example>\r\nRCPT TO:<3@d.example>\r\n",
                &[250, 250, 452],
            ),
            ("DATA\r\nx\r\n.\r\n", &[354, 250]),
        ],
        closed: None,
    },
    // RFC 5321 4.2.4, 4.5.3.1.4: unknown commands and overlong lines.
    Case {
        name: "4.2.4 errors, then 421 after too many in a row",
        config: three_errors,
        steps: &[
            ("FROB\r\n", &[500]),
            ("NOOP\r\n", &[250]),
            ("FROB\r\nMAIL FROM:bare@x.example\r\n", &[500, 501]),
            ("RCPT TO:<x@y.example>\r\n", &[503, 421]),
            ("NOOP\r\n", &[]),
        ],
        closed: Some(CloseReason::TooManyErrors),
    },
    Case {
        name: "4.5.3.1.4 line too long",
        config: plain,
        steps: &[(
            "NOOP xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\nNOOP\r\n",
            &[500, 250],
        )],
        closed: None,
    },
    // RFC 3030 2: BDAT chunks, taken literally.
    Case {
        name: "3030 BDAT chunks",
        config: plain,
        steps: &[
            (
                "EHLO c\r\nMAIL FROM:<a@b.example> BODY=BINARYMIME\r\nRCPT TO:<c@d.example>\r\n",
                &[250, 250, 250],
            ),
            ("BDAT 5\r\n.\r\n..", &[250]),
            ("BDAT 0 LAST\r\n", &[250]),
            (
                "MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nBDAT 3 LAST\r\nabc",
                &[250, 250, 250],
            ),
        ],
        closed: None,
    },
    Case {
        name: "3030 BDAT without recipients is drained and refused; DATA after BDAT refused",
        config: plain,
        steps: &[
            (EHLO, &[250]),
            ("BDAT 6\r\nNOOP\r\n", &[503]),
            (
                "MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nBDAT 2\r\nab",
                &[250, 250, 250],
            ),
            ("DATA\r\n", &[503]),
            ("BDAT 1 LAST\r\nc", &[250]),
        ],
        closed: None,
    },
    Case {
        name: "3030 BDAT over the size limit",
        config: small_limits,
        steps: &[
            (
                "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n",
                &[250, 250, 250],
            ),
            ("BDAT 8\r\n12345678", &[250]),
            ("BDAT 8 LAST\r\n12345678", &[552]),
            ("RCPT TO:<c@d.example>\r\n", &[503]),
        ],
        closed: None,
    },
    Case {
        name: "3030 BDAT not offered",
        config: no_chunking,
        steps: &[(EHLO, &[250]), ("BDAT 4\r\nNOOPNOOP\r\n", &[502, 250])],
        closed: None,
    },
    Case {
        name: "3030 3 BINARYMIME requires BDAT",
        config: plain,
        steps: &[
            (
                "EHLO c\r\nMAIL FROM:<a@b.example> BODY=BINARYMIME\r\nRCPT TO:<c@d.example>\r\n",
                &[250, 250, 250],
            ),
            ("DATA\r\n", &[503]),
        ],
        closed: None,
    },
    // RFC 3207 4: STARTTLS.
    Case {
        name: "3207 STARTTLS resets to the state after the greeting",
        config: tls,
        steps: &[
            ("EHLO c\r\nMAIL FROM:<a@b.example>\r\n", &[250, 250]),
            ("STARTTLS\r\n", &[220]),
            ("MAIL FROM:<a@b.example>\r\n", &[503]),
            (EHLO, &[250]),
            ("STARTTLS\r\n", &[503]),
        ],
        closed: None,
    },
    Case {
        name: "3207 STARTTLS with an argument, or not offered",
        config: plain,
        steps: &[("STARTTLS now\r\n", &[501]), ("STARTTLS\r\n", &[502])],
        closed: None,
    },
    Case {
        name: "3207 4 TLS required",
        config: tls_required,
        steps: &[
            ("EHLO c\r\nNOOP\r\nRSET\r\n", &[250, 250, 250]),
            (
                "MAIL FROM:<a@b.example>\r\nVRFY x\r\nHELP\r\n",
                &[530, 530, 530],
            ),
            ("STARTTLS\r\n", &[220]),
            ("EHLO c\r\nMAIL FROM:<a@b.example>\r\n", &[250, 250]),
        ],
        closed: None,
    },
    // RFC 4954: AUTH.
    Case {
        name: "4954 4 AUTH PLAIN with initial response, second AUTH refused",
        config: auth,
        steps: &[
            ("AUTH PLAIN AGFubgBzZWNyZXQ=\r\n", &[503]),
            (EHLO, &[250]),
            ("AUTH PLAIN AGFubgBzZWNyZXQ=\r\n", &[235]),
            ("AUTH PLAIN AGFubgBzZWNyZXQ=\r\n", &[503]),
        ],
        closed: None,
    },
    Case {
        name: "4954 4 AUTH PLAIN challenge, LOGIN exchange",
        config: auth,
        steps: &[
            (EHLO, &[250]),
            ("AUTH PLAIN\r\n", &[334]),
            ("AGFubgBzZWNyZXQ=\r\n", &[235]),
        ],
        closed: None,
    },
    Case {
        name: "4954 AUTH LOGIN",
        config: auth,
        steps: &[
            (EHLO, &[250]),
            ("AUTH LOGIN\r\n", &[334]),
            ("YW5u\r\n", &[334]),
            ("c2VjcmV0\r\n", &[235]),
        ],
        closed: None,
    },
    Case {
        name: "4954 4 cancel, bad base64, unknown mechanism, during a transaction",
        config: auth,
        steps: &[
            (EHLO, &[250]),
            ("AUTH LOGIN\r\n*\r\n", &[334, 501]),
            ("AUTH PLAIN\r\n!!!\r\n", &[334, 501]),
            ("AUTH PLAIN !!!\r\n", &[501]),
            ("AUTH CRAM-MD5\r\n", &[504]),
            ("MAIL FROM:<a@b.example>\r\nAUTH PLAIN\r\n", &[250, 503]),
        ],
        closed: None,
    },
    Case {
        name: "4954 4 AUTH over plaintext refused when not allowed",
        config: auth_tls_only,
        steps: &[
            (EHLO, &[250]),
            ("AUTH PLAIN AGFubgBzZWNyZXQ=\r\n", &[538]),
            ("STARTTLS\r\n", &[220]),
            (EHLO, &[250]),
            ("AUTH PLAIN AGFubgBzZWNyZXQ=\r\n", &[235]),
        ],
        closed: None,
    },
    Case {
        name: "4954 6 AUTH required",
        config: auth_required,
        steps: &[
            (EHLO, &[250]),
            ("MAIL FROM:<a@b.example>\r\n", &[530]),
            ("AUTH PLAIN AGFubgBzZWNyZXQ=\r\n", &[235]),
            ("MAIL FROM:<a@b.example>\r\n", &[250]),
        ],
        closed: None,
    },
    // RFC 5321 4.1.1.6-4.1.1.10.
    Case {
        name: "4.1.1 VRFY, EXPN, HELP, NOOP, QUIT",
        config: plain,
        steps: &[(
            "VRFY ann\r\nEXPN list\r\nHELP\r\nNOOP\r\nQUIT\r\nNOOP\r\n",
            &[252, 502, 214, 250, 221],
        )],
        closed: Some(CloseReason::Quit),
    },
    // RFC 6531 3.5.
    Case {
        name: "6531 3.5 UTF-8 recipients need SMTPUTF8",
        config: plain,
        steps: &[
            (EHLO, &[250]),
            ("MAIL FROM:<a@b.example>\r\n", &[250]),
            ("RCPT TO:<j\u{f6}rg@d.example>\r\n", &[553]),
            ("RSET\r\nMAIL FROM:<a@b.example> SMTPUTF8\r\n", &[250, 250]),
            ("RCPT TO:<j\u{f6}rg@d.example>\r\n", &[250]),
        ],
        closed: None,
    },
    // Limits.
    Case {
        name: "per-command limit",
        config: noop_limit,
        steps: &[("NOOP\r\nNOOP\r\nNOOP\r\n", &[250, 250, 421])],
        closed: Some(CloseReason::TooManyErrors),
    },
    Case {
        name: "messages per connection",
        config: one_message,
        steps: &[
            (
                "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n.\r\n",
                &[250, 250, 250, 354, 250],
            ),
            ("MAIL FROM:<a@b.example>\r\n", &[421]),
        ],
        closed: Some(CloseReason::TooManyMessages),
    },
    Case {
        name: "bare LF rejected under the Reject policy",
        config: reject_bare,
        steps: &[
            (
                "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n",
                &[250, 250, 250, 354],
            ),
            ("a\nb\r\n.\r\n", &[554]),
            ("MAIL FROM:<a@b.example>\r\n", &[250]),
        ],
        closed: None,
    },
    // RFC 2033 4.1, 4.2: LMTP.
    Case {
        name: "2033 LHLO and one reply per recipient",
        config: lmtp,
        steps: &[
            ("EHLO c\r\nHELO c\r\n", &[500, 500]),
            ("LHLO c\r\nMAIL FROM:<a@b.example>\r\n", &[250, 250]),
            (
                "RCPT TO:<1@d.example>\r\nRCPT TO:<2@d.example>\r\nRCPT TO:<3@d.example>\r\nDATA\r\n",
                &[250, 250, 250, 354],
            ),
            ("hi\r\n.\r\n", &[250, 250, 250]),
            (
                "MAIL FROM:<a@b.example>\r\nRCPT TO:<1@d.example>\r\nBDAT 2 LAST\r\nhi",
                &[250, 250, 250],
            ),
        ],
        closed: None,
    },
    Case {
        name: "2033 SMTP refuses LHLO",
        config: plain,
        steps: &[("LHLO c\r\n", &[500])],
        closed: None,
    },
    // PROXY protocol: the header first, then the greeting.
    Case {
        name: "PROXY v1 header then greeting",
        config: proxy,
        steps: &[
            ("PROXY TCP4 192.0.2.1 192.0.2.2 4000 25\r\n", &[220]),
            (EHLO, &[250]),
        ],
        closed: None,
    },
    Case {
        name: "PROXY header missing: closed without a reply",
        config: proxy,
        steps: &[("EHLO client.example\r\n", &[])],
        closed: Some(CloseReason::BadProxyHeader),
    },
];

#[test]
fn scripted_cases_whole_and_bytewise() {
    for case in CASES {
        run_case(case, false);
        run_case(case, true);
    }
}

fn transaction(pair: &mut Pair) {
    pair.send("EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n");
    assert_eq!(pair.codes(), [250, 250, 250, 354], "{}", pair.transcript());
}

/// RFC 5321 4.1.1.1, RFC 1869 4.3: the EHLO reply lists what the configuration enables.
#[test]
fn ehlo_capabilities_follow_the_config() {
    let mut config = Config::new("mx.example");
    config.tls.available = true;
    config.auth.mechanisms = vec!["PLAIN".into(), "LOGIN".into()];
    config.limits.message_size = 1000;
    let mut pair = Pair::new(config);
    pair.codes();
    pair.send(EHLO);
    let reply = pair.replies().remove(0);
    let lines: Vec<&str> = reply.lines().collect();
    assert_eq!(
        lines,
        [
            "mx.example",
            "PIPELINING",
            "SIZE 1000",
            "8BITMIME",
            "BINARYMIME",
            "CHUNKING",
            "SMTPUTF8",
            "DSN",
            "ENHANCEDSTATUSCODES",
            "STARTTLS",
            "HELP"
        ],
        "AUTH is not offered before TLS"
    );
    pair.send("STARTTLS\r\n").send(EHLO);
    let reply = pair.replies().pop().unwrap();
    assert!(reply.lines().any(|l| l == "AUTH PLAIN LOGIN"));
    assert!(!reply.lines().any(|l| l == "STARTTLS"));
}

#[test]
fn handler_edits_capabilities() {
    let mut pair = Pair::with_decider(Config::new("mx.example"), |event, _| match event {
        Event::Hello { capabilities, .. } => {
            let mut caps = capabilities.clone();
            caps.retain(|c| c != "PIPELINING");
            caps.push("X-CUSTOM".into());
            Decision::Capabilities(caps)
        }
        _ => Decision::Accept,
    });
    pair.codes();
    pair.send(EHLO);
    let reply = pair.replies().remove(0);
    assert!(!reply.text().contains("PIPELINING"));
    assert!(reply.text().ends_with("X-CUSTOM"));
}

/// RFC 2034 / RFC 3463: enhanced codes on every reply when announced, none otherwise.
#[test]
fn enhanced_status_codes_follow_the_extension() {
    let mut pair = Pair::new(Config::new("mx.example"));
    pair.codes();
    pair.send("EHLO c\r\nMAIL FROM:<a@b.example>\r\nFROB\r\n");
    let replies = pair.replies();
    assert_eq!(replies[0].status(), None, "no status on the EHLO reply");
    assert_eq!(replies[1].status(), Some(EnhancedStatus::new(2, 1, 0)));
    assert_eq!(replies[2].status(), Some(EnhancedStatus::new(5, 5, 2)));
    let mut config = Config::new("mx.example");
    config.extensions.enhanced_status_codes = false;
    let mut pair = Pair::new(config);
    pair.send("EHLO c\r\nMAIL FROM:<a@b.example>\r\nFROB\r\n");
    assert!(pair.replies().iter().all(|r| r.status().is_none()));
    assert!(!String::from_utf8_lossy(pair.wire()).contains("2.1.0"));
}

/// RFC 3207 6 (CVE-2011-0411): commands pipelined after STARTTLS in plaintext are dropped.
#[test]
fn starttls_injection_is_discarded() {
    let mut config = Config::new("mx.example");
    config.tls.available = true;
    let mut pair = Pair::new(config);
    pair.codes();
    pair.send("EHLO c\r\n");
    pair.codes();
    pair.send("STARTTLS\r\nMAIL FROM:<evil@x.example>\r\nRCPT TO:<victim@y.example>\r\n");
    assert_eq!(pair.codes(), [220], "{}", pair.transcript());
    assert!(pair.session().is_tls());
    assert!(!pair.events().iter().any(|e| matches!(e, Event::Mail)));
    pair.send("MAIL FROM:<a@b.example>\r\n");
    assert_eq!(pair.codes(), [503], "no hello after TLS yet");
    // Without the harness's automatic upgrade, bytes fed before the handshake are eaten too.
    let mut config = Config::new("mx.example");
    config.tls.available = true;
    let mut pair = Pair::new(config);
    pair.auto_tls(false);
    pair.send("EHLO c\r\nSTARTTLS\r\n");
    pair.send("RSET\r\n");
    assert_eq!(pair.unconsumed(), 0);
    pair.tls_established().send("RSET\r\n");
    assert_eq!(pair.codes(), [220, 250, 220, 250], "{}", pair.transcript());
}

/// Decisions: the handler's reply is sent; while a decision is pending nothing is consumed.
#[test]
fn decisions_and_backpressure() {
    let mut pair = Pair::with_decider(Config::new("mx.example"), |event, session| match event {
        Event::Rcpt
            if session
                .pending_rcpt()
                .is_some_and(|(to, _)| to.to_string().contains("nobody")) =>
        {
            Decision::Reply(Reply::new(
                550,
                Some(EnhancedStatus::new(5, 1, 1)),
                "No such user",
            ))
        }
        Event::Mail => Decision::Defer,
        _ => Decision::Accept,
    });
    pair.codes();
    pair.send("EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<nobody@d.example>\r\nDATA\r\n");
    assert_eq!(
        pair.codes(),
        [] as [u16; 0],
        "MAIL pending: nothing flushed yet"
    );
    assert_eq!(
        pair.unconsumed(),
        b"RCPT TO:<nobody@d.example>\r\nDATA\r\n".len(),
        "pipelined commands wait in the session's buffer"
    );
    // One decision, and the session goes on with what waited behind it: no call to flush.
    pair.decide(Decision::Accept);
    assert_eq!(pair.codes(), [250, 250, 550, 554], "{}", pair.transcript());
    assert_eq!(pair.unconsumed(), 0);
}

#[test]
fn rejected_message_and_rejected_connection() {
    let mut pair = Pair::with_decider(Config::new("mx.example"), |event, _| match event {
        Event::MessageEnd { .. } => Decision::Reply(Reply::new(
            451,
            Some(EnhancedStatus::new(4, 3, 0)),
            "Try later",
        )),
        _ => Decision::Accept,
    });
    pair.codes();
    transaction(&mut pair);
    pair.send("hi\r\n.\r\nRCPT TO:<c@d.example>\r\n");
    assert_eq!(
        pair.codes(),
        [451, 503],
        "the transaction is over either way"
    );

    let mut pair = Pair::with_decider(Config::new("mx.example"), |_, _| {
        Decision::Reply(Reply::new(554, None, "Go away"))
    });
    assert_eq!(pair.codes(), [554]);
    assert_eq!(pair.closed(), Some(CloseReason::Refused));
}

/// The body comes out as the decoder produced it, and the envelope is complete at the end.
#[test]
fn message_content_and_envelope() {
    let mut pair = Pair::new(Config::new("mx.example"));
    pair.codes();
    pair.send("EHLO c\r\nMAIL FROM:<a@b.example> SIZE=100 RET=HDRS\r\nRCPT TO:<c@d.example> NOTIFY=SUCCESS\r\nRCPT TO:<postmaster>\r\nDATA\r\n");
    pair.send_bytewise("..one\r\ntwo\n\r\n.\r\n");
    assert_eq!(pair.codes(), [250, 250, 250, 250, 354, 250]);
    let m = &pair.messages()[0];
    assert_eq!(m.body, b".one\r\ntwo\r\n\r\n");
    assert_eq!(
        m.envelope.from.as_ref().unwrap().to_string(),
        "<a@b.example>"
    );
    assert_eq!(m.envelope.params.size, Some(100));
    assert_eq!(m.envelope.recipients.len(), 2);
    assert_eq!(m.envelope.recipients[1].path, ForwardPath::Postmaster);
    assert!(m.envelope.recipients[0].params.notify.unwrap().success);
    assert!(
        pair.session().envelope().from.is_none(),
        "reset after the message"
    );
}

#[test]
fn oversized_message_is_aborted_for_the_driver() {
    let mut config = Config::new("mx.example");
    config.limits.message_size = 5;
    let mut pair = Pair::new(config);
    pair.codes();
    transaction(&mut pair);
    pair.send("0123456789\r\n.\r\n");
    assert_eq!(pair.codes(), [552]);
    assert!(pair.events().contains(&Event::MessageAborted {
        error: Some(DataError::TooLarge)
    }));
    assert!(pair.messages().is_empty());
}

/// RFC 4954 6 with RFC 3207: when AUTH is required but offered over TLS only, a transaction
/// before STARTTLS is told to start TLS (the step the client can take), after it to AUTH.
#[test]
fn auth_required_before_tls_asks_for_starttls() {
    let mut config = Config::new("mx.example");
    auth_tls_only(&mut config);
    config.auth.required = true;
    let mut pair = Pair::new(config);
    pair.codes();
    pair.send(EHLO).send("MAIL FROM:<a@b.example>\r\n");
    let replies = pair.replies();
    assert_eq!(replies[1], Reply::STARTTLS_FIRST, "{}", pair.transcript());
    pair.send("STARTTLS\r\n").send(EHLO);
    pair.send("MAIL FROM:<a@b.example>\r\n");
    let replies = pair.replies();
    assert_eq!(
        replies.last(),
        Some(&Reply::AUTH_REQUIRED),
        "{}",
        pair.transcript()
    );

    // AUTH allowed in plain text: no TLS needed, so AUTH is what is missing.
    let mut config = Config::new("mx.example");
    auth_required(&mut config);
    config.tls.available = true;
    let mut pair = Pair::new(config);
    pair.codes();
    pair.send(EHLO).send("MAIL FROM:<a@b.example>\r\n");
    assert_eq!(pair.replies()[1], Reply::AUTH_REQUIRED);
}

/// RFC 2033 4.1 names the protocol in the greeting: an LMTP server does not say ESMTP.
#[test]
fn greeting_names_the_protocol() {
    for (mode, want) in [
        (Protocol::Smtp, "mx.example ESMTP ready"),
        (Protocol::Lmtp, "mx.example LMTP ready"),
    ] {
        let mut config = Config::new("mx.example");
        config.protocol = mode;
        let mut pair = Pair::new(config);
        let greeting = pair.replies().remove(0);
        assert_eq!(greeting.code(), 220);
        assert_eq!(greeting.text(), want);
    }
}

/// RFC 4954: credentials reach the decision; failures are limited.
#[test]
fn auth_credentials_and_failure_limit() {
    let mut config = Config::new("mx.example");
    config.auth.mechanisms = vec!["PLAIN".into()];
    config.auth.allow_insecure = true;
    config.limits.auth_failures = 2;
    let mut pair = Pair::with_decider(config, |event, _| match event {
        Event::Auth {
            credentials: Credentials::Plain(p),
        } if p.password == "secret" => Decision::Identity(format!("user:{}", p.authcid)),
        Event::Auth { .. } => Decision::Reply(Reply::AUTH_INVALID),
        _ => Decision::Accept,
    });
    pair.codes();
    pair.send(EHLO);
    pair.send("AUTH PLAIN AGFubgB3cm9uZw==\r\n"); // \0ann\0wrong
    pair.send("AUTH PLAIN AGFubgB3cm9uZw==\r\n");
    assert_eq!(pair.codes(), [250, 535, 535, 421]);
    assert_eq!(pair.closed(), Some(CloseReason::TooManyErrors));

    let mut config = Config::new("mx.example");
    config.auth.mechanisms = vec!["PLAIN".into()];
    config.auth.allow_insecure = true;
    let mut pair = Pair::with_decider(config, |event, _| match event {
        Event::Auth { .. } => Decision::Identity("ann@example".into()),
        _ => Decision::Accept,
    });
    pair.send(EHLO).send("AUTH PLAIN AGFubgBzZWNyZXQ=\r\n");
    assert_eq!(pair.session().authenticated(), Some("ann@example"));
}

/// A long AUTH response line is allowed up to the AUTH limit (RFC 4954 4), not the command one.
#[test]
fn auth_lines_have_their_own_limit() {
    let mut config = Config::new("mx.example");
    config.auth.mechanisms = vec!["PLAIN".into()];
    config.auth.allow_insecure = true;
    let mut pair = Pair::new(config);
    pair.send(EHLO).send("AUTH PLAIN\r\n");
    let token = format!("{}\r\n", "QUFB".repeat(1000));
    pair.send(&token);
    assert_eq!(
        pair.codes(),
        [220, 250, 334, 501],
        "4000 octets: decoded, then PLAIN fails"
    );
    pair.send("AUTH PLAIN\r\n")
        .send(format!("{}\r\n", "QUFB".repeat(5000)));
    assert_eq!(pair.codes(), [334, 500], "over the AUTH limit: 500 5.5.6");
}

/// RFC 5321 4.5.3.2: deadlines.
#[test]
fn idle_timeout() {
    let mut pair = Pair::new(Config::new("mx.example"));
    pair.codes();
    pair.advance(Duration::from_secs(299));
    assert!(!pair.is_closed());
    pair.send("NOOP\r\n").advance(Duration::from_secs(299));
    assert!(!pair.is_closed(), "a command restarts the clock");
    pair.advance(Duration::from_secs(2));
    assert_eq!(pair.codes(), [250, 421]);
    assert_eq!(pair.replies().len(), 0);
    assert_eq!(pair.closed(), Some(CloseReason::Timeout));
    assert!(
        String::from_utf8_lossy(pair.wire())
            .ends_with("421 4.4.2 Timeout, closing transmission channel\r\n")
    );
}

#[test]
fn trickled_command_line_does_not_extend_the_deadline() {
    let mut pair = Pair::new(Config::new("mx.example"));
    pair.codes();
    for _ in 0..400 {
        pair.send("N").advance(Duration::from_secs(1));
    }
    assert_eq!(
        pair.closed(),
        Some(CloseReason::Timeout),
        "slowloris on the command line is cut"
    );
}

#[test]
fn data_timeouts_stalled_and_slow() {
    let mut config = Config::new("mx.example");
    config.timeouts.data = Duration::from_secs(10);
    let mut pair = Pair::new(config.clone());
    pair.codes();
    transaction(&mut pair);
    // Slow but live: a byte every 5 s for much longer than the deadline.
    for _ in 0..50 {
        pair.send("x").advance(Duration::from_secs(5));
    }
    assert!(!pair.is_closed(), "{}", pair.transcript());
    pair.send("\r\n.\r\n");
    assert_eq!(pair.codes(), [250]);
    // Stalled.
    let mut pair = Pair::new(config);
    pair.codes();
    transaction(&mut pair);
    pair.send("part").advance(Duration::from_secs(11));
    assert_eq!(pair.codes(), [421]);
    assert!(
        pair.events()
            .contains(&Event::MessageAborted { error: None })
    );
}

#[test]
fn session_cap() {
    let mut config = Config::new("mx.example");
    config.timeouts.session = Some(Duration::from_secs(60));
    let mut pair = Pair::new(config);
    pair.codes();
    for _ in 0..5 {
        pair.send("NOOP\r\n").advance(Duration::from_secs(10));
    }
    assert!(!pair.is_closed());
    pair.advance(Duration::from_secs(11));
    assert_eq!(pair.closed(), Some(CloseReason::Timeout));
}

#[test]
fn no_timeout_while_a_decision_is_pending() {
    let mut pair = Pair::with_decider(Config::new("mx.example"), |event, _| match event {
        Event::Mail => Decision::Defer,
        _ => Decision::Accept,
    });
    pair.send("EHLO c\r\nMAIL FROM:<a@b.example>\r\n");
    assert_eq!(pair.session().poll_timeout(), None);
    pair.advance(Duration::from_secs(3600));
    assert!(!pair.is_closed());
    pair.decide(Decision::Accept);
    assert_eq!(pair.codes(), [220, 250, 250]);
}

/// PROXY protocol: the real client address, v2 too, and its own deadline.
#[test]
fn proxy_header_gives_the_client_address() {
    let mut config = Config::new("mx.example");
    config.proxy_protocol = true;
    let src = "198.51.100.7:40000".parse().unwrap();
    let dst = "192.0.2.1:25".parse().unwrap();
    for header in [
        proxy_v1_header(src, dst).into_bytes(),
        proxy_v2_header(src, dst, &[]),
    ] {
        let mut pair = Pair::new(config.clone());
        assert_eq!(
            pair.codes(),
            [] as [u16; 0],
            "no greeting before the header"
        );
        let mut bytes = header.clone();
        bytes.extend_from_slice(b"EHLO c\r\n");
        pair.send_bytewise(&bytes);
        assert_eq!(pair.codes(), [220, 250]);
        assert_eq!(pair.session().proxy().unwrap().source, Some(src));
        assert!(matches!(
            pair.events()[0],
            Event::Connect { proxy: Some(p) } if p.source == Some(src)
        ));
    }
    let mut pair = Pair::new(config);
    pair.send("PROXY TCP4 198.51")
        .advance(Duration::from_secs(11));
    assert_eq!(pair.closed(), Some(CloseReason::Timeout));
    assert!(
        pair.wire().is_empty(),
        "nothing is said to an unidentified peer"
    );
}

/// Graceful shutdown: idle sessions get 421 4.3.2 at once, a message in flight finishes first.
#[test]
fn shutdown_idle_and_in_flight() {
    let mut pair = Pair::new(Config::new("mx.example"));
    pair.codes();
    pair.send(EHLO).shutdown();
    assert_eq!(pair.codes(), [250, 421]);
    assert_eq!(pair.closed(), Some(CloseReason::Shutdown));

    let mut pair = Pair::new(Config::new("mx.example"));
    pair.codes();
    transaction(&mut pair);
    pair.send("half a mess").shutdown();
    assert!(!pair.is_closed());
    pair.send("age\r\n.\r\n");
    assert_eq!(pair.codes(), [250, 421]);
    assert_eq!(pair.messages().len(), 1);
    assert_eq!(pair.closed(), Some(CloseReason::Shutdown));

    // Between BDAT chunks the message is in flight too.
    let mut pair = Pair::new(Config::new("mx.example"));
    pair.send("EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nBDAT 1\r\nx");
    pair.shutdown();
    assert!(!pair.is_closed());
    pair.send("BDAT 1 LAST\r\ny");
    assert_eq!(pair.codes(), [220, 250, 250, 250, 250, 250, 421]);
}

#[test]
fn lmtp_per_recipient_replies() {
    let mut config = Config::new("lmtp.example");
    config.protocol = Protocol::Lmtp;
    let mut pair = Pair::with_decider(config, |event, session| match event {
        Event::MessageEnd { .. } => Decision::ReplyEach(
            session
                .envelope()
                .recipients
                .iter()
                .map(|r| {
                    if r.path.to_string().contains("full") {
                        Reply::new(452, Some(EnhancedStatus::new(4, 2, 2)), "Mailbox full")
                    } else {
                        Reply::MESSAGE_ACCEPTED
                    }
                })
                .collect(),
        ),
        _ => Decision::Accept,
    });
    pair.codes();
    pair.send("LHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<ok@d.example>\r\nRCPT TO:<full@d.example>\r\nDATA\r\nhi\r\n.\r\n");
    assert_eq!(pair.codes(), [250, 250, 250, 250, 354, 250, 452]);
}

#[test]
fn eof_mid_message_aborts_it() {
    let mut pair = Pair::new(Config::new("mx.example"));
    pair.codes();
    transaction(&mut pair);
    pair.send("partial").eof();
    assert_eq!(pair.closed(), Some(CloseReason::Eof));
    assert!(
        pair.events()
            .contains(&Event::MessageAborted { error: None })
    );
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    const SESSION: &str = "EHLO c\r\nMAIL FROM:<a@b.example> SIZE=20\r\nRCPT TO:<c@d.example>\r\nDATA\r\n..x\r\n.\r\nMAIL FROM:<>\r\nRCPT TO:<e@f.example>\r\nBDAT 3 LAST\r\nabcRSET\r\nVRFY x\r\nQUIT\r\n";

    proptest! {
        /// However a valid session is split, the replies and messages are the same.
        #[test]
        fn splits_do_not_change_the_outcome(points in prop::collection::vec(0..SESSION.len(), 0..12)) {
            let mut whole = Pair::new(Config::new("mx.example"));
            whole.send(SESSION);
            let mut cuts = points.clone();
            cuts.sort_unstable();
            let mut split = Pair::new(Config::new("mx.example"));
            let mut last = 0;
            for c in cuts.into_iter().chain([SESSION.len()]) {
                split.send(&SESSION.as_bytes()[last..c]);
                last = c;
            }
            prop_assert_eq!(whole.wire(), split.wire());
            prop_assert_eq!(whole.messages(), split.messages());
            prop_assert_eq!(whole.closed(), Some(CloseReason::Quit));
        }

        /// Random bytes never panic, never make the session hold more than its limits, and
        /// the session always ends up waiting for input or closed.
        #[test]
        fn random_input_stays_in_bounds(
            chunks in prop::collection::vec(
                prop::collection::vec(prop_oneof![
                    Just(b'\r'), Just(b'\n'), Just(b'.'), Just(b' '), Just(b':'), Just(b'<'), Just(b'>'),
                    any::<u8>(),
                ], 0..200),
                0..20),
            prefix in prop::sample::select(vec![
                "", "EHLO c\r\n", "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n",
                "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nBDAT 100\r\n",
                "EHLO c\r\nAUTH LOGIN\r\n",
            ]),
            tick in 0u64..400,
        ) {
            let mut config = Config::new("mx.example");
            config.limits.message_size = 1000;
            config.auth.mechanisms = vec!["PLAIN".into(), "LOGIN".into()];
            config.auth.allow_insecure = true;
            config.tls.available = true;
            let mut pair = Pair::new(config);
            pair.send(prefix);
            for chunk in &chunks {
                pair.send(chunk);
                prop_assert!(pair.session().buffered_input() <= 16 * 1024 + 65_551);
                pair.advance(Duration::from_secs(tick));
                if pair.is_closed() {
                    break;
                }
            }
            for m in pair.messages() {
                prop_assert!(m.body.len() <= 1000);
                prop_assert!(m.envelope.recipients.len() <= 100);
            }
        }
    }
}

/// RFC 4954: a mechanism plugged in from outside gets each client response.
#[test]
fn custom_sasl_mechanism() {
    use crate::{SaslExchange, SaslMechanism, SaslStep};
    use std::sync::Arc;

    struct XTest;
    struct XTestExchange;
    impl SaslMechanism for XTest {
        fn name(&self) -> &str {
            "X-TEST"
        }
        fn start(&self) -> Box<dyn SaslExchange> {
            Box::new(XTestExchange)
        }
    }
    impl SaslExchange for XTestExchange {
        fn step(&mut self, response: Option<Vec<u8>>) -> SaslStep {
            match response {
                None => SaslStep::Challenge(b"token?".to_vec()),
                Some(token) => SaslStep::Done(Credentials::Custom {
                    mechanism: "X-TEST".into(),
                    identity: "carol".into(),
                    data: token,
                }),
            }
        }
    }
    let mut config = Config::new("mx.example");
    config.auth.mechanisms = vec!["X-TEST".into()];
    config.auth.custom = vec![Arc::new(XTest)];
    config.auth.allow_insecure = true;
    let mut pair = Pair::with_decider(config, |event, _| match event {
        Event::Auth {
            credentials: Credentials::Custom { data, .. },
        } if data == b"s3cret" => Decision::Accept,
        Event::Auth { .. } => Decision::Reply(Reply::AUTH_INVALID),
        _ => Decision::Accept,
    });
    pair.send(EHLO).send("AUTH X-TEST\r\n");
    assert!(String::from_utf8_lossy(pair.wire()).ends_with("334 dG9rZW4/\r\n"));
    pair.send("czNjcmV0\r\n");
    assert_eq!(pair.codes(), [220, 250, 334, 235]);
    assert_eq!(pair.session().authenticated(), Some("carol"));
}

/// RFC 3030 2: a BDAT message in progress is dropped by RSET, EHLO or QUIT, and the driver hears.
#[test]
fn bdat_message_dropped_between_chunks() {
    for cmd in ["RSET\r\n", "EHLO again\r\n", "QUIT\r\n"] {
        let mut pair = Pair::new(Config::new("mx.example"));
        pair.send("EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nBDAT 1\r\nx");
        pair.send(cmd);
        let aborted = pair
            .events()
            .iter()
            .filter(|e| **e == Event::MessageAborted { error: None });
        assert_eq!(aborted.count(), 1, "{cmd:?}\n{}", pair.transcript());
        assert!(pair.messages().is_empty());
    }
}

/// RFC 5321 3.8: a 421 from the handler closes the session (here at MAIL, a rate limit).
#[test]
fn decision_421_closes() {
    let mut pair = Pair::with_decider(Config::new("mx.example"), |event, _| match event {
        Event::Mail => Decision::Reply(Reply::new(
            421,
            Some(EnhancedStatus::new(4, 7, 0)),
            "Rate limit",
        )),
        _ => Decision::Accept,
    });
    pair.send("EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n");
    assert_eq!(pair.codes(), [220, 250, 421]);
    assert_eq!(pair.closed(), Some(CloseReason::ServiceClosing));
}

/// Under `BareLineEndings::Keep`, a CR that ends one read and is followed by another byte is
/// content as it came: the session hands out the decoder's kept CR, never a CRLF in its place.
#[test]
fn kept_bare_cr_across_reads_stays_a_cr() {
    let mut config = Config::new("mx.example");
    config.bare_line_endings = BareLineEndings::Keep;
    for split in [false, true] {
        let mut pair = Pair::new(config.clone());
        pair.send("EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n");
        if split {
            pair.send("a\r").send("b\r\n.\r\n");
        } else {
            pair.send("a\rb\r\n.\r\n");
        }
        assert_eq!(pair.messages()[0].body, b"a\rb\r\n", "split: {split}");
    }
}

/// RFC 5321 3.8 in LMTP too: a 421 among the per-recipient replies closes the channel.
#[test]
fn lmtp_421_among_recipient_replies_closes() {
    let mut config = Config::new("mx.example");
    config.protocol = Protocol::Lmtp;
    let mut pair = Pair::with_decider(config, |event, _| match event {
        Event::MessageEnd { .. } => {
            Decision::ReplyEach(vec![Reply::MESSAGE_ACCEPTED, Reply::SHUTTING_DOWN])
        }
        _ => Decision::Accept,
    });
    pair.send("LHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nRCPT TO:<e@f.example>\r\nDATA\r\nx\r\n.\r\nNOOP\r\n");
    assert_eq!(pair.codes(), [220, 250, 250, 250, 250, 354, 250, 421]);
    assert_eq!(pair.closed(), Some(CloseReason::ServiceClosing));
}

/// A shutdown asked during a BDAT message waits for it; if the client drops the message with
/// RSET instead of finishing it, the 421 comes right after the RSET's 250.
#[test]
fn shutdown_waiting_for_bdat_closes_after_rset() {
    let mut pair = Pair::new(Config::new("mx.example"));
    pair.send("EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nBDAT 3\r\nabc");
    assert_eq!(pair.codes(), [220, 250, 250, 250, 250]);
    pair.shutdown();
    assert_eq!(
        pair.codes(),
        [] as [u16; 0],
        "the message in flight is waited for"
    );
    pair.send("RSET\r\n");
    assert_eq!(pair.codes(), [250, 421]);
    assert_eq!(pair.closed(), Some(CloseReason::Shutdown));
}
