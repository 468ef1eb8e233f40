//! The bundled handlers over loopback: Debugging, Memory, Maildir (including a storage error),
//! and Relay passing the upstream's answers back per recipient.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::Raw;
use smtp_server::smtp_proto::{Credentials, EnhancedStatus, ForwardPath, RcptParams, Reply};
use smtp_server::{
    Context, Debugging, Handler, Listen, Maildir, Memory, Relay, Server, async_trait,
};

async fn transaction(addr: std::net::SocketAddr, rcpts: &[&str], content: &str) -> Vec<u16> {
    let mut c = Raw::connect(addr).await;
    let mut codes = vec![c.code().await, c.cmd("EHLO client.test").await];
    codes.push(c.cmd("MAIL FROM:<a@example.com>").await);
    for r in rcpts {
        codes.push(c.cmd(&format!("RCPT TO:<{r}>")).await);
    }
    let data = c.cmd("DATA").await;
    codes.push(data);
    if data == 354 {
        c.send(&format!("{content}.\r\n")).await;
        codes.push(c.code().await);
    }
    codes.push(c.cmd("QUIT").await);
    codes
}

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn debugging_prints_envelope_then_content() {
    let out = Shared::default();
    let server = common::spawn(Debugging::new(out.clone())).await;
    let codes = transaction(
        server.local_addr().unwrap(),
        &["b@example.net"],
        "Subject: dbg\r\n\r\nhello\r\n",
    )
    .await;
    assert_eq!(codes, [220, 250, 250, 250, 354, 250, 221]);
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.starts_with("---------- MESSAGE FOLLOWS ----------\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "X-MailFrom: <a@example.com>\nX-RcptTo: <b@example.net>\nSubject: dbg\n\nhello\n"
        ),
        "{text}"
    );
    assert!(text.ends_with("------------ END MESSAGE ------------\n"));
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn maildir_stores_atomically_with_trace_headers() {
    let dir = std::env::temp_dir().join(format!("maildir-test-{}", std::process::id()));
    let server = common::spawn(Maildir::new(&dir).unwrap().hostname("mx.test")).await;
    let content = "Subject: kept\r\n\r\nexact bytes\r\n..dot\r\n";
    let codes = transaction(server.local_addr().unwrap(), &["b@example.net"], content).await;
    assert_eq!(codes, [220, 250, 250, 250, 354, 250, 221]);
    let files: Vec<_> = std::fs::read_dir(dir.join("new"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    assert_eq!(std::fs::read_dir(dir.join("tmp")).unwrap().count(), 0);
    let stored = std::fs::read_to_string(&files[0]).unwrap();
    // LF line endings by default (what Maildir readers expect).
    assert!(stored.starts_with("Return-Path: <a@example.com>\nReceived: from client.test ([127.0.0.1])\n\tby mx.test with ESMTP id "), "{stored}");
    assert!(
        stored.ends_with("Subject: kept\n\nexact bytes\n.dot\n"),
        "the message, unstuffed, with LF: {stored:?}"
    );
    server.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);

    // keep_crlf: the bytes exactly as received.
    let server = common::spawn(
        Maildir::new(&dir)
            .unwrap()
            .hostname("mx.test")
            .keep_crlf(true),
    )
    .await;
    let codes = transaction(server.local_addr().unwrap(), &["b@example.net"], content).await;
    assert_eq!(codes, [220, 250, 250, 250, 354, 250, 221]);
    let file = std::fs::read_dir(dir.join("new"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let stored = std::fs::read_to_string(file).unwrap();
    assert!(stored.starts_with("Return-Path: <a@example.com>\r\nReceived: from client.test ([127.0.0.1])\r\n\tby mx.test with ESMTP id "), "{stored}");
    assert!(
        stored.ends_with("Subject: kept\r\n\r\nexact bytes\r\n.dot\r\n"),
        "{stored:?}"
    );
    server.shutdown().await.unwrap();

    // A storage error is a 451 4.3.0, and nothing half-written is left in new/.
    let broken = std::env::temp_dir().join(format!("maildir-broken-{}", std::process::id()));
    let maildir = Maildir::new(&broken).unwrap();
    std::fs::remove_dir_all(broken.join("tmp")).unwrap();
    let server = common::spawn(maildir).await;
    let codes = transaction(server.local_addr().unwrap(), &["b@example.net"], "x\r\n").await;
    assert_eq!(codes, [220, 250, 250, 250, 354, 451, 221]);
    assert_eq!(std::fs::read_dir(broken.join("new")).unwrap().count(), 0);
    server.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&broken);
}

#[tokio::test]
async fn relay_passes_upstream_answers_back() {
    let upstream = Memory::new();
    let up = common::spawn(Upstream(upstream.clone())).await;
    let relay = common::spawn(Relay::new(up.local_addr().unwrap().to_string())).await;
    let content = "Subject: relayed\r\n\r\n.leading dot\r\nbody\r\n";
    // Dot-stuffed on the wire to the relay; the relay must stuff it again for the upstream.
    let wire = content.replace("\r\n.", "\r\n..");
    let codes = transaction(
        relay.local_addr().unwrap(),
        &["ok@example.net", "unknown@example.net"],
        &wire,
    )
    .await;
    assert_eq!(
        codes,
        [220, 250, 250, 250, 550, 354, 250, 221],
        "the upstream's 550 for one recipient"
    );
    let stored = upstream.wait_for(1, common::WAIT).await.unwrap();
    // RFC 5321 4.4: the relay adds its Received header, then every byte of the message.
    let raw = String::from_utf8(stored[0].message.raw().to_vec()).unwrap();
    let (trace, rest) = raw.split_at(raw.find("Subject:").unwrap());
    assert!(
        trace.starts_with("Received: from client.test ([127.0.0.1])\r\n\tby ")
            && trace.contains(" with ESMTP id "),
        "{trace}"
    );
    assert_eq!(
        rest, content,
        "relayed byte for byte after the trace header"
    );
    assert_eq!(stored[0].envelope.recipients.len(), 1);
    let codes = transaction(
        relay.local_addr().unwrap(),
        &["ok@example.net"],
        "Subject: spam\r\n\r\nx\r\n",
    )
    .await;
    assert_eq!(
        codes,
        [220, 250, 250, 250, 354, 554, 221],
        "the upstream's refusal, not a 250"
    );
    relay.shutdown().await.unwrap();
    up.shutdown().await.unwrap();
    // Turned off (a transparent proxy): byte for byte, no trace header.
    let upstream = Memory::new();
    let up = common::spawn(Upstream(upstream.clone())).await;
    let relay =
        common::spawn(Relay::new(up.local_addr().unwrap().to_string()).received(false)).await;
    let codes = transaction(relay.local_addr().unwrap(), &["ok@example.net"], &wire).await;
    assert_eq!(codes, [220, 250, 250, 250, 354, 250, 221]);
    assert_eq!(
        upstream.wait_for(1, common::WAIT).await.unwrap()[0]
            .message
            .raw()
            .as_ref(),
        content.as_bytes()
    );
    relay.shutdown().await.unwrap();
    up.shutdown().await.unwrap();
    // Upstream down: 451, never 250.
    let relay = common::spawn(Relay::new("127.0.0.1:1")).await;
    let codes = transaction(relay.local_addr().unwrap(), &["ok@example.net"], "x\r\n").await;
    assert_eq!(codes, [220, 250, 451, 503, 503, 221]);
    relay.shutdown().await.unwrap();
}

/// The upstream for the relay test: refuses `unknown@` and `Subject: spam`, stores the rest.
#[derive(Clone)]
struct Upstream(Memory);

#[async_trait]
impl Handler for Upstream {
    async fn rcpt(
        &self,
        _: &mut Context,
        to: &ForwardPath<'_>,
        _: &RcptParams<'_>,
    ) -> Result<(), Reply> {
        if to.to_string().contains("unknown") {
            return Err(Reply::new(
                550,
                Some(EnhancedStatus::new(5, 1, 1)),
                "Upstream: no such user",
            ));
        }
        Ok(())
    }

    async fn data(&self, ctx: &mut Context, body: smtp_server::Body) -> Result<(), Reply> {
        // Peek at the subject through a Memory of our own, then decide.
        let probe = Memory::new();
        probe.data(ctx, body).await?;
        let msg = probe.messages().remove(0);
        if msg.message.subject() == Some("spam") {
            return Err(Reply::new(
                554,
                Some(EnhancedStatus::new(5, 7, 1)),
                "Upstream: rejected",
            ));
        }
        self.0.push(msg);
        Ok(())
    }
}

/// A client configuration that trusts only `cert_pem`.
fn trusting(cert_pem: &str) -> Arc<smtp_server::rustls::ClientConfig> {
    use smtp_server::rustls;
    use smtp_server::rustls::pki_types::CertificateDer;
    use smtp_server::rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// Relay to an upstream over STARTTLS and over implicit TLS; an upstream without STARTTLS, or
/// with a certificate the relay does not trust, gets nothing and the client gets 451 (RFC 3207
/// 4.1: a client that requires TLS must not fall back to plain text).
#[tokio::test]
async fn relay_uses_tls_to_the_upstream() {
    let (cert, key) = common::certificate();
    let store = Memory::new();
    let up = Server::builder()
        .listen("127.0.0.1:0")
        .listener(Listen::tcp("127.0.0.1:0").implicit_tls(true))
        .tls(smtp_server::load_pem(cert.as_bytes(), key.as_bytes()).unwrap())
        .handler(store.clone())
        .bind()
        .await
        .unwrap()
        .spawn();
    let (plain, implicit) = (up.local_addrs()[0], up.local_addrs()[1]);
    let relays = [
        Relay::new(plain.to_string())
            .starttls(trusting(&cert), "localhost")
            .unwrap(),
        Relay::new(implicit.to_string())
            .implicit_tls(trusting(&cert), "localhost")
            .unwrap(),
    ];
    for (i, relay) in relays.into_iter().enumerate() {
        let r = common::spawn(relay).await;
        let codes = transaction(
            r.local_addr().unwrap(),
            &["ok@example.net"],
            "Subject: tls\r\n\r\nx\r\n",
        )
        .await;
        assert_eq!(codes, [220, 250, 250, 250, 354, 250, 221]);
        let stored = store.wait_for(i + 1, common::WAIT).await.unwrap();
        let tls = stored[i].session.tls.as_ref().expect("relayed over TLS");
        assert_eq!(tls.implicit, i == 1);
        r.shutdown().await.unwrap();
    }
    // An upstream that does not offer STARTTLS, and one whose certificate is not trusted.
    let bare = common::spawn(store.clone()).await;
    let (other, _) = common::certificate();
    let relays = [
        Relay::new(bare.local_addr().unwrap().to_string())
            .starttls(trusting(&cert), "localhost")
            .unwrap(),
        Relay::new(plain.to_string())
            .starttls(trusting(&other), "localhost")
            .unwrap(),
    ];
    for relay in relays {
        let r = common::spawn(relay).await;
        let codes = transaction(r.local_addr().unwrap(), &["ok@example.net"], "x\r\n").await;
        assert_eq!(codes, [220, 250, 451, 503, 503, 221]);
        r.shutdown().await.unwrap();
    }
    assert_eq!(store.messages().len(), 2, "nothing went out in plain text");
    bare.shutdown().await.unwrap();
    up.shutdown().await.unwrap();
}

/// Refuses `nobody@`; everything else is the inner Memory's.
struct RefuseNobody(Memory);

#[async_trait]
impl Handler for RefuseNobody {
    fn inner(&self) -> Option<&dyn Handler> {
        Some(&self.0)
    }
    async fn rcpt(
        &self,
        ctx: &mut Context,
        to: &ForwardPath<'_>,
        p: &RcptParams<'_>,
    ) -> Result<(), Reply> {
        if to.to_string().starts_with("<nobody@") {
            return Err(Reply::new(550, Some(EnhancedStatus::new(5, 1, 1)), "No"));
        }
        self.0.rcpt(ctx, to, p).await
    }
}

#[tokio::test]
async fn delegate_overrides_only_what_it_names() {
    let store = Memory::new();
    let server = common::spawn(RefuseNobody(store.clone())).await;
    let codes = transaction(
        server.local_addr().unwrap(),
        &["nobody@example.net", "somebody@example.net"],
        "Subject: d\r\n\r\nx\r\n",
    )
    .await;
    assert_eq!(codes, [220, 250, 250, 550, 250, 354, 250, 221]);
    // The message went to the inner handler, with the one accepted recipient.
    let stored = store.wait_for(1, common::WAIT).await.unwrap();
    assert_eq!(stored[0].envelope.recipients.len(), 1);
    server.shutdown().await.unwrap();
}

/// A wrapper that overrides only `data` (tags the message), around a Memory store.
struct TagOnly(Memory);

#[async_trait]
impl Handler for TagOnly {
    fn inner(&self) -> Option<&dyn Handler> {
        Some(&self.0)
    }
    async fn data(&self, ctx: &mut Context, body: smtp_server::Body) -> Result<(), Reply> {
        let message = body.collect().await?;
        if message.subject() == Some("refuse the second") {
            ctx.refuse_recipient(1, Reply::MAILBOX_FULL);
        }
        let tagged = [b"X-Tag: seen\r\n".as_slice(), message.raw()].concat();
        self.0
            .data(ctx, smtp_server::Body::from(bytes::Bytes::from(tagged)))
            .await
    }
}

/// The trap the old `Delegate` had: a wrapper that overrides only `data` was skipped under
/// LMTP (which called `data_lmtp`). With one `data` for both protocols, the wrapper is
/// honoured in LMTP (RFC 2033), and `refuse_recipient` gives one recipient its own reply.
#[tokio::test]
async fn wrapper_overriding_only_data_is_honoured_in_lmtp() {
    let store = Memory::new();
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .lmtp(true)
        .handler(TagOnly(store.clone()))
        .bind()
        .await
        .unwrap()
        .spawn();
    let mut c = Raw::connect(server.local_addr().unwrap()).await;
    assert_eq!(c.code().await, 220);
    assert_eq!(c.cmd("LHLO client.test").await, 250);
    for subject in ["plain", "refuse the second"] {
        assert_eq!(c.cmd("MAIL FROM:<a@example.com>").await, 250);
        assert_eq!(c.cmd("RCPT TO:<b@example.net>").await, 250);
        assert_eq!(c.cmd("RCPT TO:<c@example.net>").await, 250);
        assert_eq!(c.cmd("DATA").await, 354);
        c.send(&format!("Subject: {subject}\r\n\r\nx\r\n.\r\n"))
            .await;
        // RFC 2033 4.2: one reply per recipient, in order.
        let first = c.reply().await;
        let second = c.reply().await;
        assert_eq!(first.0, 250, "{}", first.1);
        let want = if subject == "plain" { 250 } else { 552 };
        assert_eq!(second.0, want, "{}", second.1);
    }
    let stored = store.wait_for(2, common::WAIT).await.unwrap();
    for m in &stored {
        assert!(
            m.message.raw().starts_with(b"X-Tag: seen\r\n"),
            "the wrapper's data ran"
        );
    }
    server.shutdown().await.unwrap();
}

/// Checks the password and answers with the user name, ignoring any authorization identity,
/// as a naive handler would.
struct NaiveAuth;

#[async_trait]
impl Handler for NaiveAuth {
    async fn auth(&self, _: &mut Context, c: &Credentials) -> Result<String, Reply> {
        match c {
            Credentials::Plain(p) if p.password == "secret" => Ok(p.authcid.clone()),
            _ => Err(Reply::AUTH_INVALID),
        }
    }
}

/// RFC 4616 2: `admin\0ann\0secret` asks to act as `admin`. A handler that only checks the
/// password did not grant that, so the driver refuses (535 5.7.8); `Accounts` grants it only
/// when `allow_acting_as` says so; asking for oneself is plain AUTH.
#[tokio::test]
async fn plain_authorization_identity_needs_a_policy() {
    use base64::Engine as _;
    let plain = |s: &str| {
        format!(
            "AUTH PLAIN {}",
            base64::engine::general_purpose::STANDARD.encode(s)
        )
    };
    let accounts = smtp_server::Accounts::new([("ann", "secret")]);
    let cases: Vec<(Box<dyn Handler>, &str, u16)> = vec![
        (Box::new(NaiveAuth), "admin\0ann\0secret", 535),
        (Box::new(NaiveAuth), "ann\0ann\0secret", 235),
        (Box::new(NaiveAuth), "\0ann\0secret", 235),
        (
            Box::new(AccountsAuth(accounts.clone())),
            "admin\0ann\0secret",
            535,
        ),
        (
            Box::new(AccountsAuth(
                accounts.clone().allow_acting_as("ann", "admin"),
            )),
            "admin\0ann\0secret",
            235,
        ),
    ];
    for (handler, credentials, want) in cases {
        let server = Server::builder()
            .listen("127.0.0.1:0")
            .auth_mechanisms(["PLAIN"])
            .allow_insecure_auth(true)
            .handler(Arc::<dyn Handler>::from(handler))
            .bind()
            .await
            .unwrap()
            .spawn();
        let mut c = Raw::connect(server.local_addr().unwrap()).await;
        assert_eq!(c.code().await, 220);
        assert_eq!(c.cmd("EHLO client.test").await, 250);
        let (code, text) = c.reply_to(&plain(credentials)).await;
        assert_eq!(code, want, "{credentials:?}: {text}");
        if want == 535 {
            assert!(text.contains("5.7.8"), "{text}");
        }
        server.shutdown().await.unwrap();
    }
}

struct AccountsAuth(smtp_server::Accounts);

#[async_trait]
impl Handler for AccountsAuth {
    async fn auth(&self, _: &mut Context, c: &Credentials) -> Result<String, Reply> {
        self.0.verify(c)
    }
}

/// RFC 3030 3: BINARYMIME content is binary, so the Maildir keeps its CRLFs (turning them into
/// LF would change the data), while a text message is stored with LF.
#[tokio::test]
async fn maildir_keeps_binarymime_bytes() {
    let dir = std::env::temp_dir().join(format!("maildir-binary-{}", std::process::id()));
    let server = common::spawn(Maildir::new(&dir).unwrap().hostname("mx.test")).await;
    let mut c = Raw::connect(server.local_addr().unwrap()).await;
    assert_eq!(c.code().await, 220);
    assert_eq!(c.cmd("EHLO client.test").await, 250);
    assert_eq!(
        c.cmd("MAIL FROM:<a@example.com> BODY=BINARYMIME").await,
        250
    );
    assert_eq!(c.cmd("RCPT TO:<b@example.net>").await, 250);
    let content = "Subject: bin\r\n\r\n\x00\r\n\r\x01\n";
    c.send(&format!("BDAT {} LAST\r\n{content}", content.len()))
        .await;
    assert_eq!(c.code().await, 250);
    assert_eq!(c.cmd("QUIT").await, 221);
    let file = std::fs::read_dir(dir.join("new"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let stored = std::fs::read(file).unwrap();
    assert!(stored.ends_with(content.as_bytes()), "{stored:?}");
    server.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
