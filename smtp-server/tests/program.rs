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
                    // A Unix socket listener counts, with no port.
                    ports.push(addr.rsplit(':').next().unwrap().parse().unwrap_or(0));
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
    let wanted_workers = std::thread::available_parallelism().map_or(1, |n| n.get()) + 3;
    let workers = wanted_workers;
    let dir = temp_dir("toml");
    let pidfile = dir.join("smtp.pid");
    let config = dir.join("smtp.toml");
    std::fs::write(
        &config,
        format!(
            r#"
hostname = "mx.test"
handler = "accept"
workers = {workers}
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
    // The runtime workers asked for: more than the machine's default (one per CPU), so the
    // setting cannot pass by being ignored.
    let workers = std::fs::read_dir(format!("/proc/{}/task", p.pid()))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.unwrap().path().join("comm")).ok())
        .filter(|name| name.starts_with("tokio-r"))
        .count();
    assert!(
        workers >= wanted_workers,
        "{workers} runtime threads, {wanted_workers} workers asked"
    );
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
    let misspelt_toml = dir.join("misspelt.toml");
    std::fs::write(&misspelt_toml, "[[listener]]\nadress = '127.0.0.1:0'\n").unwrap();
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
                "--listen".into(),
                "127.0.0.1:0".into(),
                "--handler".into(),
                "capture".into(),
            ],
            "--http",
        ),
        (
            vec![
                "--handler".into(),
                "capture".into(),
                "--http".into(),
                "127.0.0.1:8025".into(),
            ],
            "an SMTP listener uses this address",
        ),
        (
            vec![
                "--listen".into(),
                "127.0.0.1:0".into(),
                "--handler".into(),
                "sink".into(),
                "--stream".into(),
                "X".into(),
            ],
            "jetstream handler only",
        ),
        (
            vec!["--capture-max-bytes".into(), "0".into()],
            "--capture-max-bytes",
        ),
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
        (vec!["--relay-tls".into(), "always".into()], "--relay-tls"),
        // Issue 13: settings that used to start and then fail every message.
        (
            vec!["--handler".into(), "relay:127.0.0.1".into()],
            "expected HOST:PORT",
        ),
        (
            vec!["--handler".into(), "relay:127.0.0.1:0".into()],
            "expected HOST:PORT",
        ),
        (
            vec!["--auth".into(), "ann:secret".into()],
            "allow_insecure_auth",
        ),
        (
            vec![
                "--auth".into(),
                "ann:secret".into(),
                "--auth-required".into(),
            ],
            "certificate",
        ),
        (
            vec![
                "--handler".into(),
                "tempfail".into(),
                "--code".into(),
                "550".into(),
            ],
            "tempfail answers 4xx",
        ),
        (
            vec!["--size".into(), "0".into()],
            "--size: must be at least 1 byte",
        ),
        (
            vec!["--size".into(), "1x".into()],
            "--size: \"1x\" is not a size",
        ),
        (
            vec!["--config".into(), misspelt_toml.display().to_string()],
            "unknown setting \"adress\"",
        ),
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
        common::skip("it needs root to bind as root and switch to nobody");
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
    let stored = store.wait_for(1, WAIT).await.unwrap();
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

/// Runs the program to its end around `client`, and returns everything it wrote to stderr.
async fn stderr_of<F: Future<Output = ()>>(args: &[&str], client: impl FnOnce(u16) -> F) -> String {
    let mut child = Command::new(PROGRAM)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut all = String::new();
    let port: u16 = tokio::time::timeout(WAIT, async {
        loop {
            let line = lines.next_line().await.unwrap().expect("program ended");
            all.push_str(&line);
            all.push('\n');
            if let Some(addr) = line.strip_prefix("smtp-server: listening on ") {
                return addr.rsplit(':').next().unwrap().parse().unwrap();
            }
        }
    })
    .await
    .expect("program did not start listening");
    let rest = tokio::spawn(async move {
        let mut rest = String::new();
        while let Ok(Some(line)) = lines.next_line().await {
            rest.push_str(&line);
            rest.push('\n');
        }
        rest
    });
    client(port).await;
    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    assert!(killed.unwrap().success());
    tokio::time::timeout(WAIT, child.wait())
        .await
        .unwrap()
        .unwrap();
    all + &tokio::time::timeout(WAIT, rest).await.unwrap().unwrap()
}

/// One session with secrets and content a log must not show: AUTH PLAIN with an initial
/// response, AUTH LOGIN's two lines, and a message with a marker in its body.
async fn secret_session(port: u16) {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut c = common::Raw::connect(addr).await;
    assert_eq!(c.code().await, 220);
    assert_eq!(c.cmd("EHLO client.example").await, 250);
    assert_eq!(
        c.cmd(&format!("AUTH PLAIN {}", b64("\0ann\0TopSecret1")))
            .await,
        235
    );
    assert_eq!(c.cmd("MAIL FROM:<ann@example.com>").await, 250);
    assert_eq!(c.cmd("RCPT TO:<bob@example.net>").await, 250);
    assert_eq!(c.cmd("DATA").await, 354);
    assert_eq!(c.cmd("Subject: x\r\n\r\nBodyMarker42\r\n.").await, 250);
    assert_eq!(c.cmd("QUIT").await, 221);
    let mut c = common::Raw::connect(addr).await;
    assert_eq!(c.code().await, 220);
    assert_eq!(c.cmd("EHLO client.example").await, 250);
    assert_eq!(c.cmd("AUTH LOGIN").await, 334);
    assert_eq!(c.cmd(&b64("ann")).await, 334);
    assert_eq!(c.cmd(&b64("TopSecret1")).await, 235);
    assert_eq!(c.cmd("QUIT").await, 221);
}

/// Issue 13, 1 and 10: `-v` logs sessions, `-vv` protocol lines too; neither shows a password
/// (plain or base64), an AUTH continuation line, or message content; no colour codes when
/// stderr is not a terminal.
#[tokio::test]
async fn logs_carry_no_secret_and_no_content() {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let secrets = [
        "TopSecret1".to_string(),
        b64("\0ann\0TopSecret1"),
        b64("TopSecret1"),
        b64("ann"), // AUTH LOGIN's user line is part of the exchange: redacted too
        "BodyMarker42".to_string(),
    ];
    let base = [
        "--handler",
        "sink",
        "--auth",
        "ann:TopSecret1",
        "--allow-insecure-auth",
        "--listen",
        "127.0.0.1:0",
    ];
    for verbosity in ["-v", "-vv"] {
        let mut args = base.to_vec();
        args.push(verbosity);
        let log = stderr_of(&args, secret_session).await;
        for secret in &secrets {
            assert!(
                !log.contains(secret.as_str()),
                "{verbosity}: {secret:?} in\n{log}"
            );
        }
        assert!(
            !log.contains('\x1b'),
            "{verbosity}: colour codes in a pipe\n{log}"
        );
        // Sessions at -v: connect, hello, the AUTH user, the envelope and result, close.
        for needle in [
            "connected",
            "hello",
            "user=ann",
            "authenticated",
            "from=<ann@example.com>",
            "reply=[250]",
            "closed",
        ] {
            assert!(log.contains(needle), "{verbosity}: no {needle:?} in\n{log}");
        }
        let protocol = [
            "C: AUTH PLAIN ***",
            "C: AUTH LOGIN",
            "C: ***",
            "C: DATA: ",
            "S: 235 2.7.0",
        ];
        for needle in protocol {
            assert_eq!(
                log.contains(needle),
                verbosity == "-vv",
                "{verbosity}: {needle:?}\n{log}"
            );
        }
    }
}

/// Issue 13, 2 and 17 (and 15): a Maildir made by the program is private whatever the umask
/// (directories 0700, files 0600), stores LF line endings, and its Received header carries
/// the id the 250 reply gave.
#[tokio::test]
async fn maildir_is_private_with_lf_and_the_replied_id() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("private");
    let maildir = dir.join("deep").join("Maildir");
    let handler = format!("maildir:{}", maildir.display());
    let script = format!("umask 000; exec {PROGRAM} --handler {handler} --listen 127.0.0.1:0");
    let mut child = Command::new("sh")
        .args(["-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let port: u16 = tokio::time::timeout(WAIT, async {
        loop {
            let line = lines.next_line().await.unwrap().expect("program ended");
            if let Some(addr) = line.strip_prefix("smtp-server: listening on ") {
                return addr.rsplit(':').next().unwrap().parse().unwrap();
            }
        }
    })
    .await
    .unwrap();
    let mut c = common::Raw::connect(std::net::SocketAddr::from(([127, 0, 0, 1], port))).await;
    assert_eq!(c.code().await, 220);
    assert_eq!(c.cmd("EHLO client.example").await, 250);
    assert_eq!(c.cmd("MAIL FROM:<ann@example.com>").await, 250);
    assert_eq!(c.cmd("RCPT TO:<bob@example.net>").await, 250);
    assert_eq!(c.cmd("DATA").await, 354);
    let (code, reply) = c
        .reply_to("Subject: x\r\n\r\nline one\r\nline two\r\n.")
        .await;
    assert_eq!(code, 250, "{reply}");
    let id = reply.trim_end().rsplit(' ').next().unwrap().to_string();
    assert!(reply.contains("queued as "), "{reply}");
    assert_eq!(c.cmd("QUIT").await, 221);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    for d in [
        maildir.clone(),
        maildir.join("tmp"),
        maildir.join("new"),
        maildir.join("cur"),
    ] {
        assert_eq!(mode(&d), 0o700, "{}", d.display());
    }
    assert_eq!(mode(&dir.join("deep")), 0o700);
    let files: Vec<_> = std::fs::read_dir(maildir.join("new")).unwrap().collect();
    assert_eq!(files.len(), 1);
    let file = files[0].as_ref().unwrap().path();
    assert_eq!(mode(&file), 0o600);
    let stored = std::fs::read_to_string(&file).unwrap();
    assert!(!stored.contains('\r'), "{stored:?}");
    assert!(stored.ends_with("\nline one\nline two\n"), "{stored:?}");
    assert!(
        stored.contains(&format!(" with ESMTP id {id};\n")),
        "{id}: {stored}"
    );
    // A second message gets another id.
    drop(child);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Issue 13, 12 and 16: `--listen unix:PATH` serves LMTP on a Unix socket, whose greeting
/// says LMTP, and the stored message's trace header says `with LMTP` (RFC 3848).
#[tokio::test]
async fn lmtp_on_a_unix_socket() {
    use tokio::io::AsyncWriteExt;
    let dir = temp_dir("unix");
    let socket = dir.join("lmtp.sock");
    let maildir = dir.join("Maildir");
    let listen = format!("unix:{},lmtp", socket.display());
    let handler = format!("maildir:{}", maildir.display());
    let p = Running::start(&["--handler", &handler, "--listen", &listen], 1).await;
    let stream = tokio::net::UnixStream::connect(&socket).await.unwrap();
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut line = String::new();
    let mut next = async |w: &mut tokio::net::unix::OwnedWriteHalf, send: &str| {
        if !send.is_empty() {
            w.write_all(send.as_bytes()).await.unwrap();
        }
        let mut text = String::new();
        loop {
            line.clear();
            tokio::time::timeout(WAIT, r.read_line(&mut line))
                .await
                .unwrap()
                .unwrap();
            text.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return text;
            }
        }
    };
    let greeting = next(&mut w, "").await;
    assert!(
        greeting.starts_with("220 ") && greeting.contains(" LMTP ready"),
        "{greeting}"
    );
    assert!(next(&mut w, "LHLO client\r\n").await.starts_with("250"));
    assert!(
        next(&mut w, "MAIL FROM:<a@example.com>\r\n")
            .await
            .starts_with("250")
    );
    assert!(
        next(&mut w, "RCPT TO:<b@example.net>\r\n")
            .await
            .starts_with("250")
    );
    assert!(next(&mut w, "DATA\r\n").await.starts_with("354"));
    let done = next(&mut w, "Subject: x\r\n\r\nhi\r\n.\r\n").await;
    assert!(done.starts_with("250 "), "{done}");
    let files: Vec<_> = std::fs::read_dir(maildir.join("new")).unwrap().collect();
    let stored = std::fs::read_to_string(files[0].as_ref().unwrap().path()).unwrap();
    assert!(stored.contains(" with LMTP id "), "{stored}");
    assert_eq!(p.terminate().await, 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Issue 13, 11: `--help` shows the defaults and says where output goes.
#[tokio::test]
async fn help_shows_defaults_and_outputs() {
    let out = Command::new(PROGRAM).arg("--help").output().await.unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "[default: 127.0.0.1:8025]",
        "[default: debug]",
        "[default: 32M]",
        "[default: this machine's host",
        "standard output",
        "standard error",
    ] {
        assert!(help.contains(needle), "{needle:?} not in\n{help}");
    }
}
