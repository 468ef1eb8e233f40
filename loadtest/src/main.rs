//! `loadgen`: drives an SMTP server for the benchmark runner and prints one line of results.
//!
//! ```text
//! loadgen throughput ADDR SESSIONS MESSAGES SIZE [--starttls]
//! loadgen c10k ADDR CONNECTIONS PID [PROCESSES]  # hold N sessions idle past EHLO (from that
//!                                          # many client processes), print the server's RSS
//!                                          # (from /proc/PID) then send a message on each
//! loadgen huge ADDR BYTES
//! ```
//! Messages use pipelining (MAIL, RCPT, DATA in one write). Every wait is bounded.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::rustls::{self, ClientConfig};

const WAIT: Duration = Duration::from_secs(120);

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

struct Conn {
    io: BufReader<Box<dyn Io>>,
}

impl Conn {
    async fn connect(addr: &str) -> std::io::Result<Self> {
        let s = tokio::time::timeout(WAIT, TcpStream::connect(addr)).await??;
        s.set_nodelay(true)?;
        let mut c = Self {
            io: BufReader::new(Box::new(s)),
        };
        c.expect(220).await?;
        Ok(c)
    }

    async fn reply(&mut self) -> std::io::Result<u16> {
        let mut line = String::new();
        loop {
            line.clear();
            let n = tokio::time::timeout(WAIT, self.io.read_line(&mut line)).await??;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0));
            }
        }
    }

    async fn expect(&mut self, code: u16) -> std::io::Result<()> {
        let got = self.reply().await?;
        if got == code {
            Ok(())
        } else {
            Err(std::io::Error::other(format!("expected {code}, got {got}")))
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.io.get_mut().write_all(bytes).await?;
        self.io.get_mut().flush().await
    }

    async fn ehlo(&mut self) -> std::io::Result<()> {
        self.send(b"EHLO loadgen.example\r\n").await?;
        self.expect(250).await
    }

    async fn starttls(mut self) -> std::io::Result<Self> {
        self.send(b"STARTTLS\r\n").await?;
        self.expect(220).await?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(std::io::Error::other)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify))
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let name =
            rustls::pki_types::ServerName::try_from("localhost").map_err(std::io::Error::other)?;
        let tls = connector.connect(name, self.io.into_inner()).await?;
        let mut c = Self {
            io: BufReader::new(Box::new(tls)),
        };
        c.ehlo().await?;
        Ok(c)
    }

    /// One message, pipelined: MAIL, RCPT and DATA in one write, then the content.
    async fn message(&mut self, body: &[u8]) -> std::io::Result<()> {
        self.send(b"MAIL FROM:<load@example.com>\r\nRCPT TO:<sink@example.net>\r\nDATA\r\n")
            .await?;
        for code in [250, 250, 354] {
            self.expect(code).await?;
        }
        self.send(body).await?;
        self.expect(250).await
    }
}

/// Benchmarks trust any certificate: the server is our own on loopback.
#[derive(Debug)]
struct NoVerify;

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A message of about `size` octets, with its terminator.
fn body(size: usize) -> Vec<u8> {
    let mut b = b"From: load@example.com\r\nTo: sink@example.net\r\nSubject: load\r\n\r\n".to_vec();
    while b.len() < size {
        b.extend_from_slice(
            b"The quick brown fox jumps over the lazy dog, again and again and again.\r\n",
        );
    }
    b.extend_from_slice(b".\r\n");
    b
}

fn rss_kib(pid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn throughput(addr: String, sessions: usize, messages: usize, size: usize, tls: bool) {
    let body = Arc::new(body(size));
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for s in 0..sessions {
        let n = messages / sessions + usize::from(s < messages % sessions);
        let (addr, body, done) = (addr.clone(), Arc::clone(&body), Arc::clone(&done));
        tasks.push(tokio::spawn(async move {
            let mut c = Conn::connect(&addr).await?;
            c.ehlo().await?;
            if tls {
                c = c.starttls().await?;
            }
            for _ in 0..n {
                c.message(&body).await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            c.send(b"QUIT\r\n").await?;
            Ok::<_, std::io::Error>(())
        }));
    }
    let mut errors = 0;
    for t in tasks {
        if !matches!(t.await, Ok(Ok(()))) {
            errors += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    println!(
        "messages={n} seconds={secs:.3} per_second={:.0} failed_sessions={errors}",
        n as f64 / secs
    );
    // A run with failures is no measurement: the caller must see it (exit 1).
    if errors > 0 || n < messages as u64 {
        eprintln!("loadgen: {errors} session(s) failed, {n} of {messages} messages delivered");
        std::process::exit(1);
    }
}

/// Opens `conns` sessions past EHLO, in waves so the accept queue never overflows.
async fn open_idle(addr: &str, conns: usize) -> (Vec<Conn>, usize) {
    let mut held = Vec::with_capacity(conns);
    let mut refused = 0;
    for wave in (0..conns).collect::<Vec<_>>().chunks(500) {
        let mut opening = Vec::new();
        for _ in wave {
            let addr = addr.to_owned();
            opening.push(tokio::spawn(async move {
                let mut c = Conn::connect(&addr).await?;
                c.ehlo().await?;
                Ok::<_, std::io::Error>(c)
            }));
        }
        for o in opening {
            match o.await {
                Ok(Ok(c)) => held.push(c),
                _ => refused += 1,
            }
        }
    }
    (held, refused)
}

/// One message on each held session; returns how many were delivered (the sessions stay open
/// until the caller drops them).
async fn deliver_each(held: Vec<Conn>) -> (usize, Vec<Conn>) {
    let body = Arc::new(body(1024));
    let mut tasks = Vec::new();
    for mut c in held {
        let body = Arc::clone(&body);
        tasks.push(tokio::spawn(
            async move { c.message(&body).await.map(|()| c) },
        ));
    }
    let mut keep = Vec::new();
    for t in tasks {
        if let Ok(Ok(c)) = t.await {
            keep.push(c);
        }
    }
    (keep.len(), keep)
}

/// The kernel's memory for sockets, in bytes: its slab caches (`Slab` in `/proc/meminfo`:
/// socket, inode, file, epoll entries) and the TCP buffers (`/proc/net/sockstat`, in pages).
/// Machine-wide: meaningful on a quiet machine only.
fn kernel_socket_bytes() -> u64 {
    let field = |file: &str, line_start: &str, key: &str| -> u64 {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        text.lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| {
                let words: Vec<&str> = l.split_whitespace().collect();
                let i = words.iter().position(|w| *w == key)?;
                words.get(i + 1)?.parse::<u64>().ok()
            })
            .unwrap_or(0)
    };
    field("/proc/meminfo", "Slab:", "Slab:") * 1024
        + field("/proc/net/sockstat", "TCP:", "mem") * 4096
}

/// Holds `conns` sessions idle past EHLO, spread over `procs` client processes (a process may
/// hold fewer open files than the server should take), prints the server's RSS per idle
/// session and the kernel's TCP memory per connection, then sends one message on each.
async fn c10k(addr: String, conns: usize, pid: String, procs: usize) {
    use tokio::io::AsyncBufReadExt as _;
    use tokio::io::AsyncWriteExt as _;
    let procs = procs.max(1);
    let base = rss_kib(&pid);
    let kernel_base = kernel_socket_bytes();
    let start = Instant::now();
    // The other client processes: each opens its share, says "held N", waits for "go",
    // delivers, says "delivered N".
    let share = conns / procs;
    let mut helpers = Vec::new();
    for _ in 1..procs {
        let mut child = tokio::process::Command::new(std::env::current_exe().expect("own path"))
            .args(["hold", &addr, &share.to_string()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn a client process");
        let out = BufReader::new(child.stdout.take().expect("stdout"));
        helpers.push((child, out.lines()));
    }
    let (held, mut refused) = open_idle(&addr, conns - share * (procs - 1)).await;
    let mut total = held.len();
    for (_, lines) in &mut helpers {
        let line = tokio::time::timeout(WAIT, lines.next_line()).await;
        match line.ok().and_then(Result::ok).flatten() {
            Some(l) if l.starts_with("held ") => {
                let n: usize = l[5..].trim().parse().unwrap_or(0);
                total += n;
                refused += share - n;
            }
            _ => refused += share,
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = rss_kib(&pid);
    let kernel = kernel_socket_bytes().saturating_sub(kernel_base);
    let per_conn = (idle.saturating_sub(base)) as f64 * 1024.0 / total.max(1) as f64;
    // Both ends of a loopback connection are sockets of this machine: half is the server's.
    let kernel_per_conn = kernel as f64 / total.max(1) as f64 / 2.0;
    let opened = start.elapsed().as_secs_f64();
    let start = Instant::now();
    for (child, _) in &mut helpers {
        if let Some(stdin) = child.stdin.as_mut() {
            let _ = stdin.write_all(b"go\n").await;
        }
    }
    let (mut delivered, keep) = deliver_each(held).await;
    for (_, lines) in &mut helpers {
        let line = tokio::time::timeout(WAIT, lines.next_line()).await;
        if let Some(l) = line.ok().and_then(Result::ok).flatten() {
            delivered += l
                .strip_prefix("delivered ")
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or(0);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    drop(keep);
    println!(
        "connections={conns} processes={procs} held={total} refused={refused} open_seconds={opened:.2} rss_base_kib={base} rss_idle_kib={idle} bytes_per_idle_conn={per_conn:.0} kernel_bytes_per_conn={kernel_per_conn:.0} delivered={delivered} deliver_seconds={secs:.2}"
    );
    if refused > 0 || delivered < conns {
        eprintln!("loadgen: {refused} connection(s) refused, {delivered} of {conns} delivered");
        std::process::exit(1);
    }
}

/// A helper process of `c10k`: holds `conns` sessions, then delivers on "go".
async fn hold(addr: String, conns: usize) {
    use tokio::io::AsyncBufReadExt as _;
    let (held, _) = open_idle(&addr, conns).await;
    println!("held {}", held.len());
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    // Told to go, or the parent went away: deliver (or give up) either way.
    let _ = tokio::time::timeout(Duration::from_secs(600), stdin.next_line()).await;
    let (delivered, keep) = deliver_each(held).await;
    println!("delivered {delivered}");
    drop(keep);
}

async fn huge(addr: String, bytes: usize) {
    let mut c = Conn::connect(&addr).await.expect("connect");
    c.ehlo().await.expect("EHLO");
    c.send(b"MAIL FROM:<load@example.com>\r\nRCPT TO:<sink@example.net>\r\nDATA\r\n")
        .await
        .unwrap();
    for code in [250, 250, 354] {
        c.expect(code).await.expect("reply");
    }
    let line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ab\r\n";
    let block: Vec<u8> = line
        .iter()
        .copied()
        .cycle()
        .take(line.len() * 14_000)
        .collect();
    let start = Instant::now();
    let mut sent = 0;
    while sent < bytes {
        let n = block.len().min(bytes - sent);
        c.send(&block[..n]).await.expect("send");
        sent += n;
    }
    c.send(b"\r\n.\r\n").await.unwrap();
    let code = c.reply().await.unwrap_or(0);
    let secs = start.elapsed().as_secs_f64();
    println!(
        "bytes={sent} seconds={secs:.3} mb_per_second={:.0} reply={code}",
        sent as f64 / secs / 1e6
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    let num = |i: usize| arg(i).parse::<usize>().expect("a number");
    match arg(0).as_str() {
        "throughput" => throughput(arg(1), num(2), num(3), num(4), arg(5) == "--starttls").await,
        "c10k" => c10k(arg(1), num(2), arg(3), arg(4).parse().unwrap_or(1)).await,
        "hold" => hold(arg(1), num(2)).await,
        "huge" => huge(arg(1), num(2)).await,
        _ => {
            eprintln!(
                "usage: loadgen throughput ADDR SESSIONS MESSAGES SIZE [--starttls] | c10k ADDR N PID [PROCESSES] | huge ADDR BYTES"
            );
            std::process::exit(2);
        }
    }
}
