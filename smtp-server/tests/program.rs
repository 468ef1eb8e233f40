//! The `smtp-server` program as an operator runs it: per-listener profiles on the command
//! line and in a TOML file, Blackhole modes and switches, a pidfile, worker threads, dropping
//! privileges after binding, and a one-line error (exit 2) for each kind of bad setting.
//!
//! Every listener binds port 0; the program prints `smtp-server: listening on ADDR` per
//! listener, in order, which is how these tests learn the ports.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::{WAIT, send_mail, within};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const PROGRAM: &str = env!("CARGO_BIN_EXE_smtp-server");

/// A running program, killed when dropped.
struct Running {
    child: Child,
    ports: Vec<u16>,
}

impl Running {
    async fn start(args: &[&str], listeners: usize) -> Self {
        let mut child = Command::new(PROGRAM)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut ports = Vec::new();
        tokio::time::timeout(WAIT, async {
            while ports.len() < listeners {
                let line = lines.next_line().await.unwrap().expect("program ended");
                if let Some(addr) = line.strip_prefix("smtp-server: listening on ") {
                    ports.push(addr.rsplit(':').next().unwrap().parse().unwrap());
                }
            }
        })
        .await
        .expect("program did not start listening");
        // Keep reading stderr so the program never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self { child, ports }
    }

    fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }

    /// SIGTERM, and the exit code.
    async fn terminate(mut self) -> i32 {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let status = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("program did not stop on SIGTERM")
            .unwrap();
        status.code().unwrap_or(-1)
    }
}

/// The issue's example: 2525-style accepts, 2526-style bounces after 2 s (shortened here).
#[tokio::test]
async fn listeners_with_their_own_settings_on_the_command_line() {
    let p = Running::start(
        &[
            "--handler",
            "accept",
            "--listen",
            "127.0.0.1:0",
            "--listen",
            "127.0.0.1:0,mode=bounce,delay=0.3",
            "--listen",
            "127.0.0.1:0,mode=tempfail,code=452",
        ],
        3,
    )
    .await;
    assert_eq!(send_mail(p.ports[0], "").await.0, 250);
    let (code, took) = send_mail(p.ports[1], "").await;
    assert_eq!(code, 550);
    within(took, Duration::from_millis(300));
    assert_eq!(send_mail(p.ports[2], "").await.0, 452);
    // Switches work through the program, and the listener's delay still applies.
    let (code, took) = send_mail(p.ports[1], "X-Blackhole-Mode: accept\r\n").await;
    assert_eq!(code, 250);
    within(took, Duration::from_millis(300));
    assert_eq!(p.terminate().await, 0);
}

#[tokio::test]
async fn switches_off_and_seeded_random() {
    let p = Running::start(
        &[
            "--handler",
            "bounce",
            "--no-switches",
            "--listen",
            "127.0.0.1:0",
        ],
        1,
    )
    .await;
    assert_eq!(
        send_mail(p.ports[0], "X-Blackhole-Mode: accept\r\n")
            .await
            .0,
        550
    );
    drop(p);

    let mut runs = Vec::new();
    for _ in 0..2 {
        let p = Running::start(
            &[
                "--handler",
                "random",
                "--seed",
                "99",
                "--listen",
                "127.0.0.1:0",
            ],
            1,
        )
        .await;
        let mut codes = Vec::new();
        for _ in 0..12 {
            codes.push(send_mail(p.ports[0], "").await.0);
        }
        runs.push(codes);
    }
    assert_eq!(runs[0], runs[1]);
    assert!(
        runs[0].contains(&250) && runs[0].contains(&550),
        "{:?}",
        runs[0]
    );
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("smtp-program-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The TOML file does what the flags do; the pidfile holds the pid while running and is
/// removed at a clean exit.
#[tokio::test]
async fn toml_config_with_pidfile_and_workers() {
    let dir = temp_dir("toml");
    let pidfile = dir.join("smtp.pid");
    let config = dir.join("smtp.toml");
    std::fs::write(
        &config,
        format!(
            r#"
hostname = "mx.test"
handler = "accept"
workers = 5
pidfile = "{}"

[[listener]]
address = "127.0.0.1:0"
name = "accept"

[[listener]]
address = "127.0.0.1:0"
mode = "bounce"
code = [554, 552]
delay = [0.2, 0.4]
seed = 5

[[listener]]
address = "127.0.0.1:0"
lmtp = true
"#,
            pidfile.display()
        ),
    )
    .unwrap();
    let p = Running::start(&["--config", config.to_str().unwrap()], 3).await;
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    assert_eq!(pid.trim(), p.pid().to_string());
    assert_eq!(send_mail(p.ports[0], "").await.0, 250);
    let (code, took) = send_mail(p.ports[1], "").await;
    assert!(code == 554 || code == 552, "{code}");
    assert!(took >= Duration::from_millis(200), "{took:?}");
    // The third listener speaks LMTP (RFC 2033 4.1: LHLO, not EHLO).
    let mut lmtp = common::Raw::connect(([127, 0, 0, 1], p.ports[2]).into()).await;
    assert_eq!(lmtp.code().await, 220);
    assert_eq!(lmtp.cmd("EHLO client.test").await, 500);
    assert_eq!(lmtp.cmd("LHLO client.test").await, 250);
    // Five runtime workers (the machine's default would be one per CPU).
    let workers = std::fs::read_dir(format!("/proc/{}/task", p.pid()))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.unwrap().path().join("comm")).ok())
        .filter(|name| name.starts_with("tokio-r"))
        .count();
    assert!(workers >= 5, "{workers} runtime threads, 5 workers asked");
    assert_eq!(p.terminate().await, 0);
    assert!(!pidfile.exists(), "pidfile left behind");
    // Flags win over the file.
    let p = Running::start(
        &[
            "--config",
            config.to_str().unwrap(),
            "--handler",
            "tempfail",
            "--listen",
            "127.0.0.1:0",
        ],
        1,
    )
    .await;
    assert_eq!(send_mail(p.ports[0], "").await.0, 451);
    drop(p);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Every bad setting: exit code 2 and one line on stderr naming what is wrong.
#[tokio::test]
async fn bad_settings_are_one_line_errors() {
    let dir = temp_dir("bad");
    let bad_toml = dir.join("bad.toml");
    std::fs::write(&bad_toml, "handler = 'accept'\ncolour = 'blue'\n").unwrap();
    let broken_toml = dir.join("broken.toml");
    std::fs::write(&broken_toml, "handler = \n").unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--handler".into(), "nope".into()], "unknown handler"),
        (
            vec!["--listen".into(), "127.0.0.1:0,colour=red".into()],
            "colour",
        ),
        (
            vec!["--listen".into(), "127.0.0.1:0,delay=3,1".into()],
            "delay",
        ),
        (
            vec![
                "--handler".into(),
                "bounce".into(),
                "--code".into(),
                "250".into(),
            ],
            "250",
        ),
        (vec!["--delay".into(), "1".into()], "delay"),
        (
            vec![
                "--auth-required".into(),
                "--listen".into(),
                "127.0.0.1:0".into(),
            ],
            "auth",
        ),
        (
            vec!["--listen".into(), "127.0.0.1:0,implicit_tls".into()],
            "TLS",
        ),
        (
            vec!["--config".into(), bad_toml.display().to_string()],
            "colour",
        ),
        (
            vec!["--config".into(), broken_toml.display().to_string()],
            "broken.toml",
        ),
        (
            vec![
                "--config".into(),
                dir.join("missing.toml").display().to_string(),
            ],
            "missing",
        ),
        (vec!["--workers".into(), "0".into()], "workers"),
        (
            vec![
                "--handler".into(),
                "relay:127.0.0.1:25".into(),
                "--relay-tls".into(),
                "starttls".into(),
            ],
            "relay_ca",
        ),
        (
            vec![
                "--handler".into(),
                "sink".into(),
                "--relay-tls".into(),
                "implicit".into(),
            ],
            "relay",
        ),
        (vec!["--relay-tls".into(), "always".into()], "relay_tls"),
        (
            vec![
                "--user".into(),
                "no-such-user-here".into(),
                "--listen".into(),
                "127.0.0.1:0".into(),
            ],
            "no such user",
        ),
    ];
    for (args, needle) in cases {
        let out = tokio::time::timeout(WAIT, Command::new(PROGRAM).args(&args).output())
            .await
            .expect("program did not exit")
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.contains("listening on"))
            .collect();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(lines.len(), 1, "{args:?}: {stderr}");
        assert!(lines[0].starts_with("smtp-server: "), "{args:?}: {stderr}");
        assert!(lines[0].contains(needle), "{args:?}: {stderr}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

fn uid_of(pid: u32) -> Option<u32> {
    uid_of_task(pid, pid)
}

fn uid_of_task(pid: u32, tid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok() // effective uid
}

/// Binds as root, then runs as `nobody`; the Maildir made while root is handed over, so
/// delivery still works. Needs root (CI runs as root); says so and passes otherwise.
#[tokio::test]
async fn drops_privileges_after_binding() {
    if uid_of(std::process::id()) != Some(0) {
        eprintln!("skipped: not running as root");
        return;
    }
    let dir = temp_dir("user");
    let maildir = dir.join("Maildir");
    let handler = format!("maildir:{}", maildir.display());
    // Let `nobody` reach the directory.
    let _ = std::process::Command::new("chmod")
        .args(["755", dir.to_str().unwrap()])
        .status();
    let p = Running::start(
        &[
            "--handler",
            &handler,
            "--user",
            "nobody",
            "--listen",
            "127.0.0.1:0",
        ],
        1,
    )
    .await;
    // Every thread, not only the main one (the runtime's workers were running already).
    let tasks = std::fs::read_dir(format!("/proc/{}/task", p.pid())).unwrap();
    for task in tasks {
        let tid: u32 = task.unwrap().file_name().to_str().unwrap().parse().unwrap();
        let uid = uid_of_task(p.pid(), tid).unwrap();
        assert_ne!(uid, 0, "thread {tid} still root");
    }
    assert_eq!(send_mail(p.ports[0], "").await.0, 250);
    let delivered = std::fs::read_dir(maildir.join("new")).unwrap().count();
    assert_eq!(delivered, 1);
    assert_eq!(p.terminate().await, 0);
    assert!(Path::new(&maildir).exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Sends a small message with this client: Ok, or the SMTP code of the refusal.
async fn send_with(client: AsyncSmtpTransport<Tokio1Executor>) -> Result<(), u16> {
    let envelope = lettre::address::Envelope::new(
        Some("ann@example.com".parse().unwrap()),
        vec!["bob@example.net".parse().unwrap()],
    )
    .unwrap();
    let raw = b"Subject: hi\r\n\r\nHello.\r\n";
    match client.send_raw(&envelope, raw).await {
        Ok(_) => Ok(()),
        Err(e) => Err(e.status().map(u16::from).unwrap_or(0)),
    }
}

/// The issue's set-up: one port accepts plain mail, one is implicit TLS, one is submission
/// (STARTTLS and AUTH required), in one process started from flags.
#[tokio::test]
async fn plain_implicit_tls_and_submission_listeners() {
    let dir = temp_dir("tls");
    let (cert, key) = common::certificate();
    std::fs::write(dir.join("cert.pem"), &cert).unwrap();
    std::fs::write(dir.join("key.pem"), &key).unwrap();
    let (cert_file, key_file) = (dir.join("cert.pem"), dir.join("key.pem"));
    let p = Running::start(
        &[
            "--handler",
            "accept",
            "--tls-cert",
            cert_file.to_str().unwrap(),
            "--tls-key",
            key_file.to_str().unwrap(),
            "--auth",
            "user:secret",
            "--listen",
            "127.0.0.1:0",
            "--listen",
            "127.0.0.1:0,implicit_tls",
            "--listen",
            "127.0.0.1:0,name=submission,require_tls,auth_required",
        ],
        3,
    )
    .await;
    let params = || {
        TlsParameters::builder("localhost".into())
            .add_root_certificate(Certificate::from_pem(cert.as_bytes()).unwrap())
            .build_rustls()
            .unwrap()
    };
    let client = |port: u16| {
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
            .port(port)
            .timeout(Some(WAIT))
    };
    assert_eq!(send_with(client(p.ports[0]).build()).await, Ok(()));
    let wrapped = client(p.ports[1]).tls(Tls::Wrapper(params())).build();
    assert_eq!(send_with(wrapped).await, Ok(()));
    // Submission: plain text is refused until STARTTLS (RFC 3207 4), then AUTH (RFC 4954 6).
    assert_eq!(send_with(client(p.ports[2]).build()).await, Err(530));
    let tls_only = client(p.ports[2]).tls(Tls::Required(params())).build();
    assert_eq!(send_with(tls_only).await, Err(530));
    let submission = client(p.ports[2])
        .tls(Tls::Required(params()))
        .credentials(Credentials::new("user".into(), "secret".into()))
        .authentication(vec![Mechanism::Plain])
        .build();
    assert_eq!(send_with(submission).await, Ok(()));
    assert_eq!(p.terminate().await, 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `relay:HOST:PORT` with `relay_tls=starttls`: the upstream is reached over TLS, its
/// certificate checked against `relay_ca`; without a trusted certificate nothing is relayed.
#[tokio::test]
async fn relay_handler_with_starttls_to_the_upstream() {
    let dir = temp_dir("relay");
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let (cert_pem, key_pem) = (cert.cert.pem(), cert.signing_key.serialize_pem());
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &cert_pem).unwrap();
    let store = smtp_server::Memory::new();
    let upstream = smtp_server::Server::builder()
        .listen("127.0.0.1:0")
        .tls(smtp_server::load_pem(cert_pem.as_bytes(), key_pem.as_bytes()).unwrap())
        .handler(store.clone())
        .bind()
        .await
        .unwrap()
        .spawn();
    let handler = format!("relay:{}", upstream.local_addr().unwrap());
    let args = [
        "--handler",
        &handler,
        "--relay-tls",
        "starttls",
        "--relay-ca",
        ca.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ];
    let p = Running::start(&args, 1).await;
    assert_eq!(send_mail(p.ports[0], "").await.0, 250);
    let stored = tokio::time::timeout(WAIT, store.wait_for(1)).await.unwrap();
    assert!(stored[0].session.tls.is_some(), "relayed over TLS");
    drop(p);
    // Trusting another certificate: the client is told to retry later, nothing leaks.
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    std::fs::write(&ca, other.cert.pem()).unwrap();
    let p = Running::start(&args, 1).await;
    assert_eq!(send_mail(p.ports[0], "").await.0, 451);
    assert_eq!(store.messages().len(), 1);
    drop(p);
    upstream.shutdown().await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
