//! Hostile clients over loopback, bounded in count and time: the server keeps serving honest
//! clients, its memory stays bounded, nothing leaks. (SECURITY.md maps threats to these tests.)

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use common::{Capture, Raw, WAIT, certificate};
use smtp_server::smtp_proto::{Credentials, Reply};
use smtp_server::{Context, Handler, Listen, Server, async_trait};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Counts live connections (connect minus disconnect), around a Capture.
#[derive(Clone, Default)]
struct Live {
    capture: Capture,
    open: Arc<AtomicI64>,
}

#[async_trait]
impl Handler for Live {
    async fn connect(&self, _: &mut Context) -> Result<(), Reply> {
        self.open.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    async fn disconnect(&self, _: &mut Context) {
        self.open.fetch_sub(1, Ordering::SeqCst);
    }
    async fn auth(&self, ctx: &mut Context, c: &Credentials) -> Result<String, Reply> {
        self.capture.auth(ctx, c).await
    }
    async fn data(&self, ctx: &mut Context, b: smtp_server::Body) -> Result<(), Reply> {
        self.capture.data(ctx, b).await
    }
}

async fn honest(addr: std::net::SocketAddr) -> Duration {
    let start = Instant::now();
    let mut c = Raw::connect(addr).await;
    assert_eq!(c.code().await, 220);
    assert_eq!(c.cmd("EHLO honest").await, 250);
    assert_eq!(c.cmd("QUIT").await, 221);
    start.elapsed()
}

async fn settle(open: &AtomicI64) {
    for _ in 0..200 {
        if open.load(Ordering::SeqCst) == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{} connections never ended", open.load(Ordering::SeqCst));
}

/// Slowloris: 1,000 connections trickling a byte at a time are cut at their deadline, and an
/// honest client is served promptly meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris() {
    let live = Live::default();
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .configure(|c| c.timeouts.command = Duration::from_secs(2))
        .handler(live.clone())
        .bind()
        .await
        .unwrap()
        .spawn();
    let addr = server.local_addr().unwrap();
    let mut slow = Vec::new();
    for _ in 0..1000 {
        slow.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let start = Instant::now();
            let mut buf = [0u8; 256];
            let _ = s.read(&mut buf).await; // greeting
            for b in b"EHLO slowly-slowly-slowly-slowly\r\n" {
                if s.write_all(&[*b]).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                if start.elapsed() > Duration::from_secs(8) {
                    break;
                }
            }
            start.elapsed()
        }));
    }
    // Time the honest client only once every attacker is connected (the handler saw each).
    let start = Instant::now();
    while live.open.load(Ordering::SeqCst) < 1000 {
        assert!(start.elapsed() < WAIT, "attackers never all connected");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = honest(addr).await;
    assert!(
        took < Duration::from_secs(2),
        "honest client waited {took:?}"
    );
    for s in slow {
        let lasted = tokio::time::timeout(WAIT, s).await.unwrap().unwrap();
        assert!(
            lasted < Duration::from_secs(5),
            "a trickling connection lasted {lasted:?}"
        );
    }
    settle(&live.open).await;
    server.shutdown().await.unwrap();
}

/// A client that pipelines a million NOOPs and never reads: the server stops reading when its
/// replies cannot be written (so its memory for the connection stays bounded), cuts it at the
/// write deadline, and serves others meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_that_never_reads() {
    let live = Live::default();
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .configure(|c| c.timeouts.command = Duration::from_secs(2))
        .handler(live.clone())
        .bind()
        .await
        .unwrap()
        .spawn();
    let addr = server.local_addr().unwrap();
    let flood = tokio::spawn(async move {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let chunk = b"NOOP\r\n".repeat(100_000);
        let mut sent = 0usize;
        for _ in 0..100 {
            match tokio::time::timeout(Duration::from_secs(5), s.write_all(&chunk)).await {
                Ok(Ok(())) => sent += chunk.len(),
                _ => break,
            }
        }
        sent
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(honest(addr).await < Duration::from_secs(2));
    let sent = tokio::time::timeout(WAIT, flood).await.unwrap().unwrap();
    // At most 60 MB could be sent; loopback buffers hold a few MB.
    assert!(
        sent < 20_000_000,
        "the server kept reading ({sent} bytes) though nobody read its replies"
    );
    settle(&live.open).await;
    server.shutdown().await.unwrap();
}

/// Every write has a deadline, in the message phase too (RFC 5321 4.5.3.2; issue 13, 3): a
/// client that pipelines BDAT chunks and never reads their replies stops being read once the
/// replies back up, and is cut at the deadline while it still holds its socket open. Checked
/// on the server's side: the handler sees the disconnect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bdat_client_that_never_reads_is_cut() {
    let live = Live::default();
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .configure(|c| {
            c.timeouts.command = Duration::from_secs(2);
            c.timeouts.data = Duration::from_secs(2);
        })
        .handler(live.clone())
        .bind()
        .await
        .unwrap()
        .spawn();
    let addr = server.local_addr().unwrap();
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"EHLO c\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\n")
        .await
        .unwrap();
    // Nine bytes in, a 30-byte reply out, per chunk: the replies back up first.
    let chunk = b"BDAT 1\r\nx".repeat(10_000);
    let mut sent = 0usize;
    while sent < 100 << 20 {
        match tokio::time::timeout(Duration::from_secs(1), s.write_all(&chunk)).await {
            Ok(Ok(())) => sent += chunk.len(),
            // The server stopped reading (timeout), or already closed (error).
            _ => break,
        }
    }
    assert!(
        sent < 100 << 20,
        "the server kept reading ({sent} bytes) though nobody read its replies"
    );
    // The socket stays open and unread: only the server's write deadline can end this.
    let stalled = Instant::now();
    while live.open.load(Ordering::SeqCst) != 0 {
        assert!(
            stalled.elapsed() < Duration::from_secs(10),
            "the connection is still served {:?} after the client stopped reading",
            stalled.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The message was cut short (no BDAT LAST): the handler must have seen an error, never
    // an end, so nothing was stored.
    assert!(
        live.capture.messages.lock().unwrap().is_empty(),
        "a message cut short by the deadline was handed over as complete"
    );
    drop(s);
    server.shutdown().await.unwrap();
}

/// Huge input: a 100 MB line, a 100 MB header line inside DATA, 100,000 recipients, a BDAT of
/// 2^63 octets. Each gets its reply per the limits, and the server still serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_inputs() {
    let live = Live::default();
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .configure(|c| c.limits.message_size = 10 << 20)
        .handler(live.clone())
        .bind()
        .await
        .unwrap()
        .spawn();
    let addr = server.local_addr().unwrap();
    let mut c = Raw::connect(addr).await;
    assert_eq!(c.code().await, 220);
    // 100 MB without a newline, then one: answered 500, the next command works.
    let block = vec![b'x'; 1 << 20];
    for _ in 0..100 {
        c.writer.write_all(&block).await.unwrap();
    }
    c.send("\r\nNOOP\r\n").await;
    assert_eq!(c.code().await, 500);
    assert_eq!(c.code().await, 250);
    // A 100 MB header line inside DATA: drained, 552, the connection still usable.
    assert_eq!(c.cmd("EHLO c").await, 250);
    assert_eq!(c.cmd("MAIL FROM:<a@example.com>").await, 250);
    assert_eq!(c.cmd("RCPT TO:<b@example.net>").await, 250);
    assert_eq!(c.cmd("DATA").await, 354);
    c.send("Subject: ").await;
    for _ in 0..100 {
        c.writer.write_all(&block).await.unwrap();
    }
    c.send("\r\n\r\nbody\r\n.\r\n").await;
    assert_eq!(c.code().await, 552);
    // 100,000 recipients: 100 accepted, the rest 452 4.5.3, pipelined.
    assert_eq!(c.cmd("MAIL FROM:<a@example.com>").await, 250);
    let writer = tokio::spawn({
        let mut w = c.writer;
        async move {
            let mut batch = String::new();
            for i in 0..100_000 {
                batch.push_str(&format!("RCPT TO:<r{i}@example.net>\r\n"));
                if batch.len() > 64 * 1024 {
                    w.write_all(batch.as_bytes()).await.unwrap();
                    batch.clear();
                }
            }
            w.write_all(batch.as_bytes()).await.unwrap();
            w
        }
    });
    let mut codes = [0u32; 2];
    for _ in 0..100_000 {
        let line = {
            let mut line = String::new();
            tokio::io::AsyncBufReadExt::read_line(&mut c.reader, &mut line)
                .await
                .unwrap();
            line
        };
        match &line[..3] {
            "250" => codes[0] += 1,
            "452" => codes[1] += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(codes, [100, 99_900]);
    c.writer = writer.await.unwrap();
    assert_eq!(c.cmd("RSET").await, 250);
    // BDAT claiming 2^63 octets: refused at once (552); the rest is drained, never stored.
    assert_eq!(c.cmd("MAIL FROM:<a@example.com>").await, 250);
    assert_eq!(c.cmd("RCPT TO:<b@example.net>").await, 250);
    c.send("BDAT 9223372036854775808 LAST\r\nsome bytes").await;
    assert_eq!(c.code().await, 552);
    drop(c);
    assert!(
        honest(addr).await < Duration::from_secs(2),
        "the server still serves"
    );
    settle(&live.open).await;
    assert_eq!(live.capture.count(), 0);
    server.shutdown().await.unwrap();
}

/// Brute force: failed AUTH attempts hit the limit, then 421 and close; each failure is
/// answered only after the configured delay.
#[tokio::test]
async fn auth_brute_force_is_cut() {
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .auth_failure_delay(Duration::from_millis(200))
        .auth_mechanisms(["PLAIN"])
        .allow_insecure_auth(true)
        .handler(Capture::default())
        .bind()
        .await
        .unwrap()
        .spawn();
    let mut c = Raw::connect(server.local_addr().unwrap()).await;
    assert_eq!(c.code().await, 220);
    assert_eq!(c.cmd("EHLO c").await, 250);
    let start = Instant::now();
    for _ in 0..2 {
        assert_eq!(c.cmd("AUTH PLAIN AHVzZXIAd3Jvbmc=").await, 535);
    }
    assert!(
        start.elapsed() >= Duration::from_millis(400),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(c.cmd("AUTH PLAIN AHVzZXIAd3Jvbmc=").await, 535);
    let (code, text) = c.reply().await;
    assert_eq!((code, text.contains("4.7.0")), (421, true));
    assert_eq!(c.code().await, 0, "closed");
    server.shutdown().await.unwrap();
}

/// Connection churn: connect-and-drop, and TLS handshakes abandoned midway, leak no task and
/// no file descriptor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_churn_leaks_nothing() {
    let (cert, key) = certificate();
    let live = Live::default();
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .listener(Listen::tcp("127.0.0.1:0").implicit_tls(true))
        .tls(smtp_server::load_pem(cert.as_bytes(), key.as_bytes()).unwrap())
        .configure(|c| c.timeouts.command = Duration::from_secs(2))
        .handler(live.clone())
        .bind()
        .await
        .unwrap()
        .spawn();
    let (plain, tls) = (server.local_addrs()[0], server.local_addrs()[1]);
    assert!(honest(plain).await < Duration::from_secs(2));
    let drop_after_connect = |addr| async move {
        let s = TcpStream::connect(addr).await?;
        // Linger 0: the close is an immediate RST (so dropping cannot block), and 50,000
        // connections leave no TIME_WAIT pile-up on the client side.
        #[allow(deprecated)]
        s.set_linger(Some(Duration::ZERO))?;
        Ok::<_, std::io::Error>(s)
    };
    for wave in 0..100 {
        let tasks: Vec<_> = (0..500)
            .map(|_| tokio::spawn(drop_after_connect(plain)))
            .collect();
        for t in tasks {
            let _ = t.await;
        }
        let _ = wave;
    }
    // TLS: half a ClientHello, then gone; and garbage instead of a ClientHello.
    let hello_start: &[u8] = &[
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ];
    for wave in 0..20 {
        let tasks: Vec<_> = (0..500)
            .map(|i| {
                tokio::spawn(async move {
                    let mut s = drop_after_connect(tls).await?;
                    let bytes: &[u8] = if i % 2 == 0 {
                        hello_start
                    } else {
                        b"EHLO not tls\r\n"
                    };
                    s.write_all(bytes).await?;
                    Ok::<_, std::io::Error>(())
                })
            })
            .collect();
        for t in tasks {
            let _ = t.await;
        }
        let _ = wave;
    }
    // A handshake that stalls is cut at the deadline.
    let mut stalled = TcpStream::connect(tls).await.unwrap();
    stalled.write_all(hello_start).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(6), stalled.read(&mut buf)).await;
    assert!(
        matches!(n, Ok(Ok(0)) | Ok(Err(_))),
        "stalled handshake closed by the server: {n:?}"
    );
    drop(stalled);
    // Every connection the server accepted is closed again, by its own count (which sees
    // abandoned TLS handshakes, unlike the handler's connect/disconnect).
    for _ in 0..200 {
        if server.open_connections() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        server.open_connections(),
        0,
        "connections still open after the churn"
    );
    settle(&live.open).await;
    assert!(honest(plain).await < Duration::from_secs(2));
    server.shutdown().await.unwrap();
}

/// SMTP smuggling and STARTTLS command injection, through the real driver and real TLS.
#[tokio::test]
async fn smuggling_and_starttls_injection_end_to_end() {
    let (cert, key) = certificate();
    let capture = Capture::default();
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .tls(smtp_server::load_pem(cert.as_bytes(), key.as_bytes()).unwrap())
        .handler(capture.clone())
        .bind()
        .await
        .unwrap()
        .spawn();
    let mut c = Raw::connect(server.local_addr().unwrap()).await;
    assert_eq!(c.code().await, 220);
    c.send("EHLO c\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n")
        .await;
    for want in [250, 250, 250, 354] {
        assert_eq!(c.code().await, want);
    }
    // Each of these would end DATA on a lenient server and start a forged second message.
    c.send("Subject: one\r\n\r\nx\n.\nMAIL FROM:<ceo@example.com>\r\nRCPT TO:<victim@example.net>\r\nDATA\r\nforged\r\n\r.\r\nMAIL FROM:<x@y>\r\n\r\n.\nz\r\n.\r\n").await;
    assert_eq!(c.code().await, 250);
    assert_eq!(c.cmd("NOOP").await, 250, "nothing smuggled is answered");
    let got = capture.wait_for(1).await;
    assert_eq!(got.len(), 1);
    let raw = String::from_utf8_lossy(got[0].message.raw()).into_owned();
    assert!(
        raw.contains("ceo@example.com") && raw.contains("forged"),
        "smuggled text stays inside: {raw:?}"
    );

    // STARTTLS with commands pipelined after it in plaintext.
    let mut s = TcpStream::connect(server.local_addr().unwrap())
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let _ = s.read(&mut buf).await.unwrap();
    s.write_all(b"EHLO c\r\n").await.unwrap();
    let _ = s.read(&mut buf).await.unwrap();
    s.write_all(b"STARTTLS\r\nMAIL FROM:<evil@example.com>\r\nRCPT TO:<victim@example.net>\r\n")
        .await
        .unwrap();
    let n = s.read(&mut buf).await.unwrap();
    assert!(
        buf[..n].starts_with(b"220 "),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    for der in tokio_rustls::rustls::pki_types::CertificateDer::pem_slice_iter(cert.as_bytes()) {
        roots.add(der.unwrap()).unwrap();
    }
    let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, s).await.unwrap();
    tls.write_all(b"RCPT TO:<b@example.net>\r\n").await.unwrap();
    let n = tokio::time::timeout(WAIT, tls.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(
        buf[..n].starts_with(b"503 "),
        "the injected MAIL was dropped: {:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    server.shutdown().await.unwrap();
}
