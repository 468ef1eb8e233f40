//! lettre, a real client nobody here wrote, against the server over loopback: plain, STARTTLS,
//! implicit TLS, AUTH PLAIN and LOGIN, several recipients, 8-bit and SMTPUTF8 messages, and a
//! 50 MB message streamed to a handler that only counts bytes.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{Capture, WAIT, certificate};
use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message as Email, Tokio1Executor};
use smtp_server::smtp_proto::Reply;
use smtp_server::{Body, Context, Handler, Listen, Server, async_trait};

fn email(to: &[&str], subject: &str, body: &str) -> Email {
    let mut b = Email::builder()
        .from("Ann <ann@example.com>".parse::<Mailbox>().unwrap())
        .subject(subject);
    for t in to {
        b = b.to(t.parse().unwrap());
    }
    b.header(ContentType::TEXT_PLAIN)
        .body(body.to_string())
        .unwrap()
}

fn plain_client(port: u16) -> AsyncSmtpTransport<Tokio1Executor> {
    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(port)
        .timeout(Some(WAIT))
        .build()
}

fn tls_params(cert_pem: &str) -> TlsParameters {
    TlsParameters::builder("localhost".into())
        .add_root_certificate(Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .build_rustls()
        .unwrap()
}

#[tokio::test]
async fn plain_several_recipients() {
    let capture = Capture::default();
    let server = Server::builder()
        .hostname("mx.test")
        .listen("127.0.0.1:0")
        .handler(capture.clone())
        .bind()
        .await
        .unwrap()
        .spawn();
    let client = plain_client(server.local_addr().unwrap().port());
    client
        .send(email(
            &["bob@example.net", "carol@example.org"],
            "Hello",
            "Hi there\n.leading dot\n",
        ))
        .await
        .unwrap();
    let got = capture.wait_for(1).await;
    let m = &got[0];
    assert_eq!(
        m.envelope.from.as_ref().unwrap().to_string(),
        "<ann@example.com>"
    );
    let rcpts: Vec<String> = m
        .envelope
        .recipients
        .iter()
        .map(|r| r.path.to_string())
        .collect();
    assert_eq!(rcpts, ["<bob@example.net>", "<carol@example.org>"]);
    let parsed = m.message.parsed().unwrap();
    assert_eq!(parsed.subject(), Some("Hello"));
    assert!(parsed.body_text(0).unwrap().contains(".leading dot"));
    assert!(m.info.tls.is_none());
    assert!(m.info.helo.is_some());
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn starttls_and_auth_plain_and_login() {
    let (cert, key) = certificate();
    let capture = Capture::default();
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .tls(smtp_server::load_pem(cert.as_bytes(), key.as_bytes()).unwrap())
        .auth_mechanisms(["PLAIN", "LOGIN"])
        .auth_required(true)
        .handler(capture.clone())
        .bind()
        .await
        .unwrap()
        .spawn();
    let port = server.local_addr().unwrap().port();
    for (i, mechanism) in [Mechanism::Plain, Mechanism::Login].into_iter().enumerate() {
        let client = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
            .port(port)
            .tls(Tls::Required(tls_params(&cert)))
            .credentials(Credentials::new("user".into(), "secret".into()))
            .authentication(vec![mechanism])
            .timeout(Some(WAIT))
            .build();
        client
            .send(email(&["bob@example.net"], "Secure", "x"))
            .await
            .unwrap();
        let got = capture.wait_for(i + 1).await;
        let info = &got[i].info;
        assert_eq!(info.auth.as_deref(), Some("user"));
        let tls = info.tls.as_ref().expect("TLS recorded");
        assert!(!tls.implicit);
        assert_eq!(tls.sni.as_deref(), Some("localhost"));
    }
    // Wrong password: refused, nothing delivered.
    let client = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(port)
        .tls(Tls::Required(tls_params(&cert)))
        .credentials(Credentials::new("user".into(), "wrong".into()))
        .authentication(vec![Mechanism::Plain])
        .timeout(Some(WAIT))
        .build();
    assert!(
        client
            .send(email(&["bob@example.net"], "No", "x"))
            .await
            .is_err()
    );
    // Without AUTH, MAIL is refused with 530 (RFC 4954 6).
    let client = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(port)
        .tls(Tls::Required(tls_params(&cert)))
        .timeout(Some(WAIT))
        .build();
    let err = client
        .send(email(&["bob@example.net"], "No", "x"))
        .await
        .unwrap_err();
    assert_eq!(err.status().map(u16::from), Some(530));
    assert_eq!(capture.count(), 2);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn implicit_tls() {
    let (cert, key) = certificate();
    let capture = Capture::default();
    let server = Server::builder()
        .listener(Listen::tcp("127.0.0.1:0").implicit_tls(true))
        .tls(smtp_server::load_pem(cert.as_bytes(), key.as_bytes()).unwrap())
        .handler(capture.clone())
        .bind()
        .await
        .unwrap()
        .spawn();
    let client = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(server.local_addr().unwrap().port())
        .tls(Tls::Wrapper(tls_params(&cert)))
        .timeout(Some(WAIT))
        .build();
    client
        .send(email(&["bob@example.net"], "Wrapped", "x"))
        .await
        .unwrap();
    let got = capture.wait_for(1).await;
    assert!(got[0].info.tls.as_ref().unwrap().implicit);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn eight_bit_and_smtputf8() {
    let capture = Capture::default();
    let server = common::spawn(capture.clone()).await;
    let client = plain_client(server.local_addr().unwrap().port());
    let text = "Grüße, 你好, naïve café\n";
    let msg = Email::builder()
        .from("ann@example.com".parse::<Mailbox>().unwrap())
        .to("bob@example.net".parse().unwrap())
        .subject("8-bit")
        .header(ContentType::TEXT_PLAIN)
        .header(lettre::message::header::ContentTransferEncoding::EightBit)
        .body(text.to_string())
        .unwrap();
    client.send(msg).await.unwrap();
    let msg = Email::builder()
        .from("ann@example.com".parse::<Mailbox>().unwrap())
        .to("用户@例子.广告".parse().unwrap())
        .subject("UTF-8 address")
        .body(String::from("x"))
        .unwrap();
    client.send(msg).await.unwrap();
    let got = capture.wait_for(2).await;
    assert!(
        got[0]
            .message
            .parsed()
            .unwrap()
            .body_text(0)
            .unwrap()
            .contains("你好")
    );
    assert!(got[1].envelope.params.smtputf8, "lettre sent SMTPUTF8");
    assert_eq!(
        got[1].envelope.recipients[0].path.to_string(),
        "<用户@例子.广告>"
    );
    server.shutdown().await.unwrap();
}

/// Counts bytes without keeping them: a 50 MB message must stream through.
#[derive(Clone, Default)]
struct Counter(Arc<AtomicU64>);

#[async_trait]
impl Handler for Counter {
    async fn data(&self, _: &mut Context, mut body: Body) -> Result<(), Reply> {
        while let Some(chunk) = body.chunk().await {
            let chunk = chunk.map_err(|_| Reply::LOCAL_ERROR)?;
            self.0.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        Ok(())
    }
}

#[tokio::test]
async fn fifty_megabytes_streamed() {
    let counter = Counter::default();
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .configure(|c| c.limits.message_size = 64 << 20)
        .handler(counter.clone())
        .bind()
        .await
        .unwrap()
        .spawn();
    let line = "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n";
    let body = line.repeat(50 * 1024 * 1024 / line.len());
    let raw = format!("From: a@example.com\r\nTo: b@example.net\r\nSubject: big\r\n\r\n{body}");
    let envelope = lettre::address::Envelope::new(
        Some("a@example.com".parse().unwrap()),
        vec!["b@example.net".parse().unwrap()],
    )
    .unwrap();
    let client = plain_client(server.local_addr().unwrap().port());
    tokio::time::timeout(WAIT * 3, client.send_raw(&envelope, raw.as_bytes()))
        .await
        .unwrap()
        .unwrap();
    // lettre always ends DATA with CRLF.CRLF, so a message already ending in CRLF gets an
    // empty last line: two more octets.
    assert_eq!(counter.0.load(Ordering::Relaxed), raw.len() as u64 + 2);
    server.shutdown().await.unwrap();
}

/// Holds the message after its first megabyte until released.
#[derive(Clone)]
struct Gate {
    got: Arc<AtomicU64>,
    open: Arc<tokio::sync::Notify>,
}

#[async_trait]
impl Handler for Gate {
    async fn data(&self, _: &mut Context, mut body: Body) -> Result<(), Reply> {
        let mut held = false;
        while let Some(chunk) = body.chunk().await {
            let chunk = chunk.map_err(|_| Reply::LOCAL_ERROR)?;
            let total =
                self.got.fetch_add(chunk.len() as u64, Ordering::SeqCst) + chunk.len() as u64;
            if !held && total >= 1 << 20 {
                held = true;
                self.open.notified().await;
            }
        }
        Ok(())
    }
}

/// Streaming, proved: content reaches the handler before the client has finished sending, and
/// while the handler holds back, the server stops reading (backpressure): the client cannot
/// get its 50 MB out. A server that buffered the message would take all of it.
#[tokio::test]
async fn content_streams_to_the_handler_with_backpressure() {
    use tokio::io::AsyncWriteExt;
    let gate = Gate {
        got: Arc::default(),
        open: Arc::default(),
    };
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .configure(|c| c.limits.message_size = 64 << 20)
        .handler(gate.clone())
        .bind()
        .await
        .unwrap()
        .spawn();
    let addr = server.local_addr().unwrap();
    let mut c = common::Raw::connect(addr).await;
    assert_eq!(c.code().await, 220);
    assert_eq!(c.cmd("EHLO c").await, 250);
    assert_eq!(c.cmd("MAIL FROM:<a@example.com>").await, 250);
    assert_eq!(c.cmd("RCPT TO:<b@example.net>").await, 250);
    assert_eq!(c.cmd("DATA").await, 354);
    let sent = Arc::new(AtomicU64::new(0));
    let common::Raw { reader, mut writer } = c;
    let writing = tokio::spawn({
        let sent = Arc::clone(&sent);
        async move {
            let block = "x".repeat(998) + "\r\n";
            let chunk = block.repeat(64);
            for _ in 0..(50 << 20) / chunk.len() {
                writer.write_all(chunk.as_bytes()).await.unwrap();
                sent.fetch_add(chunk.len() as u64, Ordering::SeqCst);
            }
            writer.write_all(b".\r\n").await.unwrap();
            writer
        }
    });
    // The handler has its first megabyte while the client is still far from done...
    let start = std::time::Instant::now();
    while gate.got.load(Ordering::SeqCst) < 1 << 20 {
        assert!(start.elapsed() < WAIT, "no content reached the handler");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // ...and while it holds, the server reads no more than its buffers allow.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = sent.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = sent.load(Ordering::SeqCst);
    assert_eq!(
        before, after,
        "the client kept sending while the handler held back"
    );
    assert!(
        after < 30 << 20,
        "{after} bytes taken while the handler held the first 1 MB"
    );
    assert!(!writing.is_finished());
    gate.open.notify_one();
    let writer = tokio::time::timeout(WAIT, writing).await.unwrap().unwrap();
    let mut c = common::Raw { reader, writer };
    assert_eq!(c.code().await, 250);
    assert!(gate.got.load(Ordering::SeqCst) >= 50 << 19);
    server.shutdown().await.unwrap();
}
