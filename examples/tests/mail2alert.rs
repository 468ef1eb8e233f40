//! The mail2alert example run as a program in front of a second server of ours (a `Memory`
//! store wrapped in testkit faults that refuse `blocked@*`), driven by lettre: alerts go to
//! the rule recipients, other mail is relayed byte for byte, and the upstream's refusals reach
//! the client.

use std::process::Stdio;
use std::time::Duration;

use lettre::address::Envelope;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use smtp_server::{Memory, Server, ServerHandle, Stored};
use smtp_testkit::{FaultHandler, Faults};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const WAIT: Duration = Duration::from_secs(20);

const RULES: &str = "\
# Disk alerts go to two people; critical ones to the on-call phone too.
*disk full*      => ops@example.com, oncall@example.com
\\[critical\\]*    => oncall@example.com, ops@example.com
*upstream test*  => blocked@example.com
";

struct Setup {
    upstream: ServerHandle,
    store: Memory,
    _proxy: Child,
    port: u16,
    dir: std::path::PathBuf,
}

async fn setup(name: &str) -> Setup {
    let store = Memory::new();
    let upstream = Server::builder()
        .hostname("upstream.test")
        .listen("127.0.0.1:0")
        .handler(FaultHandler::new(
            store.clone(),
            Faults::new().reject_recipients("blocked@*"),
        ))
        .bind()
        .await
        .unwrap()
        .spawn();
    let dir = std::env::temp_dir().join(format!("mail2alert-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rules = dir.join("rules.txt");
    std::fs::write(&rules, RULES).unwrap();
    let mut proxy = Command::new(env!("CARGO_BIN_EXE_mail2alert"))
        .args(["--listen", "127.0.0.1:0", "--address", "Alerts@Example.com"])
        .arg("--upstream")
        .arg(upstream.local_addr().unwrap().to_string())
        .arg("--rules")
        .arg(&rules)
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(proxy.stderr.take().unwrap()).lines();
    let port = tokio::time::timeout(WAIT, async {
        loop {
            let line = lines.next_line().await.unwrap().expect("mail2alert ended");
            if let Some(addr) = line.strip_prefix("mail2alert: listening on ") {
                return addr.rsplit(':').next().unwrap().parse::<u16>().unwrap();
            }
        }
    })
    .await
    .expect("mail2alert did not start");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Setup {
        upstream,
        store,
        _proxy: proxy,
        port,
        dir,
    }
}

impl Setup {
    /// Sends `raw` through the proxy: Ok, or the SMTP code of the refusal.
    async fn send(&self, from: &str, to: &[&str], raw: &[u8]) -> Result<(), u16> {
        send_to(self.port, from, to, raw).await
    }

    async fn stored(&self, n: usize) -> Vec<Stored> {
        self.store
            .wait_for(n, WAIT)
            .await
            .expect("upstream did not get the messages")
    }

    async fn finish(self) {
        self.upstream.shutdown().await.unwrap();
        std::fs::remove_dir_all(&self.dir).unwrap();
    }
}

/// Sends `raw` with lettre: Ok, or the SMTP code of the refusal.
async fn send_to(port: u16, from: &str, to: &[&str], raw: &[u8]) -> Result<(), u16> {
    {
        let envelope = Envelope::new(
            Some(from.parse().unwrap()),
            to.iter().map(|t| t.parse().unwrap()).collect(),
        )
        .unwrap();
        let client = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
            .port(port)
            .timeout(Some(WAIT))
            .build();
        match client.send_raw(&envelope, raw).await {
            Ok(_) => Ok(()),
            Err(e) => Err(e.status().map(u16::from).expect("an SMTP refusal")),
        }
    }
}

fn message(subject: &str) -> Vec<u8> {
    format!(
        "From: monitor@example.com\r\nTo: alerts@example.com\r\nSubject: {subject}\r\n\
         Message-ID: <{}@example.com>\r\n\r\nHost db1.\r\n.A line that starts with a dot.\r\n\
         \r\n  trailing spaces  \r\n",
        subject.len()
    )
    .into_bytes()
}

/// The content lettre sends for `raw`: a CRLF of its own before the final dot.
fn as_sent(raw: &[u8]) -> Vec<u8> {
    [raw, b"\r\n"].concat()
}

fn recipients(s: &Stored) -> Vec<String> {
    s.envelope
        .recipients
        .iter()
        .map(|r| r.path.mailbox().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn other_mail_is_relayed_byte_for_byte() {
    let s = setup("relay").await;
    let raw = message("Lunch");
    // What the upstream stores when lettre talks to it directly (lettre puts a CRLF of its own
    // before the final dot, so the content gains a CRLF either way) ...
    send_to(
        s.upstream.local_addr().unwrap().port(),
        "x@example.com",
        &["y@example.net"],
        &raw,
    )
    .await
    .unwrap();
    let direct = s.stored(1).await[0].message.raw().clone();
    assert_eq!(direct.as_ref(), as_sent(&raw));
    // ... is exactly what it stores through the proxy.
    s.send(
        "ann@example.com",
        &["bob@example.net", "carol@example.org"],
        &raw,
    )
    .await
    .unwrap();
    let got = &s.stored(2).await[1..];
    // The proxy is a relay: it adds its Received header (RFC 5321 4.4), then every byte.
    let (trace, rest) = split_received(got[0].message.raw());
    assert!(trace.starts_with("Received: from "), "{trace}");
    assert_eq!(rest, &direct[..]);
    assert_eq!(
        got[0].envelope.from.as_ref().unwrap().to_string(),
        "<ann@example.com>"
    );
    assert_eq!(
        recipients(&got[0]),
        ["bob@example.net", "carol@example.org"]
    );
    s.finish().await;
}

/// The relay's own `Received` header (three lines, folded) and the message after it.
fn split_received(raw: &[u8]) -> (String, &[u8]) {
    let mut end = 0;
    for _ in 0..3 {
        end += raw[end..]
            .iter()
            .position(|&b| b == b'\n')
            .expect("a header line")
            + 1;
    }
    (
        String::from_utf8_lossy(&raw[..end]).into_owned(),
        &raw[end..],
    )
}

#[tokio::test]
async fn alerts_go_to_the_rule_recipients() {
    let s = setup("alerts").await;
    // Two rules match: each recipient once, in rule order; the special address is matched
    // without regard to case and never reaches the upstream.
    let raw = message("[CRITICAL] Disk full on db1");
    s.send("monitor@example.com", &["alerts@example.com"], &raw)
        .await
        .unwrap();
    let got = s.stored(1).await;
    assert_eq!(
        recipients(&got[0]),
        ["ops@example.com", "oncall@example.com"]
    );
    let (_, rest) = split_received(got[0].message.raw());
    assert_eq!(rest, as_sent(&raw));

    // No rule: accepted and dropped. The next message proves nothing else arrived.
    s.send(
        "monitor@example.com",
        &["ALERTS@example.com"],
        &message("All good"),
    )
    .await
    .unwrap();
    // An alert with an ordinary recipient too: one upstream transaction with both.
    let raw = message("disk FULL on db2");
    s.send(
        "monitor@example.com",
        &["alerts@example.com", "dba@example.net"],
        &raw,
    )
    .await
    .unwrap();
    let got = s.stored(2).await;
    assert_eq!(got.len(), 2, "the unmatched alert was dropped");
    assert_eq!(
        recipients(&got[1]),
        ["dba@example.net", "ops@example.com", "oncall@example.com"]
    );
    assert_eq!(split_received(got[1].message.raw()).1, as_sent(&raw));
    s.finish().await;
}

#[tokio::test]
async fn upstream_refusals_reach_the_client() {
    let s = setup("refusals").await;
    // Ordinary mail: the upstream's 550 for a recipient is the client's 550 (at RCPT).
    let refused = s
        .send("ann@example.com", &["blocked@example.net"], &message("Hi"))
        .await;
    assert_eq!(refused, Err(550));
    // An alert whose only rule recipient the upstream refuses: the sender is told.
    let refused = s
        .send(
            "monitor@example.com",
            &["alerts@example.com"],
            &message("upstream test"),
        )
        .await;
    assert_eq!(refused, Err(550));
    // The proxy still relays afterwards.
    s.send("ann@example.com", &["bob@example.net"], &message("After"))
        .await
        .unwrap();
    let got = s.stored(1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(recipients(&got[0]), ["bob@example.net"]);
    s.finish().await;
}

#[tokio::test]
async fn a_bad_rules_file_is_a_one_line_error() {
    let dir = std::env::temp_dir().join(format!("mail2alert-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rules = dir.join("rules.txt");
    std::fs::write(&rules, "*disk* => ops@example.com\n*cpu* ops@example.com\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mail2alert"))
        .args([
            "--upstream",
            "127.0.0.1:1",
            "--address",
            "a@example.com",
            "--rules",
        ])
        .arg(&rules)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("rules.txt:2"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}
