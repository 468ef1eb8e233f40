//! `TestServer`: a throwaway capture server on 127.0.0.1:0.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mail_parser::MimeHeaders as _;
use smtp_proto::{Config, Credentials, Envelope, Reply};
use smtp_server::{
    Accounts, Body, Context, Handler, Message, Server, ServerHandle, SessionInfo, async_trait,
};
use tokio::sync::{Notify, broadcast};

use smtp_server::faults::{FaultHandler, Faults};

/// One captured message: its envelope, the session it came in, its bytes and parsed view.
#[derive(Clone)]
pub struct Mail {
    envelope: MailEnvelope,
    session: SessionInfo,
    message: Message,
}

/// The envelope of a captured message, as plain strings (addresses without brackets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailEnvelope {
    sender: String,
    recipients: Vec<String>,
    raw: Envelope,
}

impl MailEnvelope {
    fn new(raw: Envelope) -> Self {
        let sender = raw
            .from
            .as_ref()
            .and_then(|f| f.mailbox().map(ToString::to_string))
            .unwrap_or_default();
        let recipients = raw
            .recipients
            .iter()
            .map(|r| {
                r.path
                    .mailbox()
                    .map_or_else(|| "Postmaster".into(), ToString::to_string)
            })
            .collect();
        Self {
            sender,
            recipients,
            raw,
        }
    }

    /// The sender (`""` for the null sender `<>`).
    pub fn sender(&self) -> &str {
        &self.sender
    }

    /// The recipients, in order.
    pub fn recipients(&self) -> &[String] {
        &self.recipients
    }

    /// Everything, with the MAIL and RCPT parameters (SIZE, BODY, SMTPUTF8, DSN...).
    pub fn raw(&self) -> &Envelope {
        &self.raw
    }
}

impl Mail {
    /// The envelope.
    pub fn envelope(&self) -> &MailEnvelope {
        &self.envelope
    }

    /// The session: HELO name, TLS, authenticated identity, peer.
    pub fn session(&self) -> &SessionInfo {
        &self.session
    }

    /// The bytes as received.
    pub fn raw(&self) -> &[u8] {
        self.message.raw()
    }

    /// The parsed message (mail-parser): `subject()`, `from()`, `to()`, `body_text(0)`,
    /// `body_html(0)`, `attachments()`...; `None` when mail-parser finds no message at all (an
    /// empty message, which SMTP allows). The same shape as the server's
    /// [`Message::parsed`](smtp_server::Message::parsed).
    pub fn parsed(&self) -> Option<&mail_parser::Message<'static>> {
        self.message.parsed()
    }

    /// The subject, if any ([`Message::subject`](smtp_server::Message::subject)).
    pub fn subject(&self) -> Option<&str> {
        self.message.subject()
    }

    /// The first text body, if any.
    pub fn text(&self) -> Option<String> {
        self.message.text()
    }

    /// The first HTML body, if any.
    pub fn html(&self) -> Option<String> {
        self.message.html()
    }

    /// The attachments' file names (an unnamed attachment gives `""`).
    pub fn attachment_names(&self) -> Vec<String> {
        self.parsed()
            .map(|m| {
                m.attachments()
                    .map(|a| a.attachment_name().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Asserts the subject, with a readable failure.
    #[track_caller]
    pub fn assert_subject(&self, subject: &str) -> &Self {
        assert!(
            self.subject() == Some(subject),
            "expected subject {subject:?}, got {:?} in:\n{self:?}",
            self.subject()
        );
        self
    }

    /// Asserts the envelope recipients, with a readable failure.
    #[track_caller]
    pub fn assert_recipients(&self, recipients: &[&str]) -> &Self {
        assert!(
            self.envelope.recipients() == recipients,
            "expected recipients {recipients:?}, got {:?} in:\n{self:?}",
            self.envelope.recipients()
        );
        self
    }

    /// Asserts that the text (or else HTML) body contains `needle`.
    #[track_caller]
    pub fn assert_body_contains(&self, needle: &str) -> &Self {
        let body = self.text().or_else(|| self.html()).unwrap_or_default();
        assert!(
            body.contains(needle),
            "body does not contain {needle:?}:\n{self:?}"
        );
        self
    }

    /// Asserts a header's value (the first header of that name, raw text, trimmed).
    #[track_caller]
    pub fn assert_header(&self, name: &str, value: &str) -> &Self {
        let got = self.header(name);
        assert!(
            got.as_deref() == Some(value),
            "expected header {name}: {value:?}, got {got:?} in:\n{self:?}"
        );
        self
    }

    /// A header's raw value, trimmed (the first header of that name, case-insensitive).
    pub fn header(&self, name: &str) -> Option<String> {
        self.message.header(name)
    }

    fn preview(&self) -> String {
        let raw = String::from_utf8_lossy(self.raw());
        let mut preview: String = raw.chars().take(600).collect();
        if raw.len() > preview.len() {
            preview.push_str("\n[...]");
        }
        preview
    }
}

impl fmt::Debug for Mail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "MAIL FROM:<{}> RCPT TO:{:?} ({} bytes, helo {:?}, tls {}, auth {:?})",
            self.envelope.sender,
            self.envelope.recipients,
            self.raw().len(),
            self.session.helo,
            self.session.tls.is_some(),
            self.session.auth
        )?;
        f.write_str(&self.preview())
    }
}

/// `wait_for` ran out of time; shows what did arrive.
#[derive(Debug)]
pub struct WaitError {
    /// How many messages were wanted.
    pub wanted: usize,
    /// How long was waited.
    pub waited: Duration,
    /// What arrived.
    pub arrived: Vec<Mail>,
}

impl fmt::Display for WaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "wanted {} message(s) within {:?}, {} arrived",
            self.wanted,
            self.waited,
            self.arrived.len()
        )?;
        for (i, m) in self.arrived.iter().enumerate() {
            writeln!(f, "--- message {i}:\n{m:?}")?;
        }
        Ok(())
    }
}

impl std::error::Error for WaitError {}

struct Store {
    mails: Mutex<Vec<Mail>>,
    arrived: Notify,
    feed: broadcast::Sender<Mail>,
}

/// The capturing handler behind a [`TestServer`]: stores messages, checks AUTH credentials.
#[derive(Clone)]
pub struct Recorder {
    store: Arc<Store>,
    accounts: Arc<Accounts>,
    /// The HTTP API's store, when the server serves one.
    #[cfg(feature = "http")]
    capture: Option<smtp_server::Capture>,
}

#[async_trait]
impl Handler for Recorder {
    async fn auth(&self, _: &mut Context, credentials: &Credentials) -> Result<String, Reply> {
        self.accounts.verify(credentials)
    }

    async fn data(&self, ctx: &mut Context, body: Body) -> Result<(), Reply> {
        let message = body.collect().await?;
        #[cfg(feature = "http")]
        if let Some(capture) = &self.capture {
            let id = ctx.session().queue_id.clone().unwrap_or_default();
            capture.insert(
                id,
                ctx.envelope().clone(),
                ctx.session().clone(),
                message.raw().clone(),
            );
        }
        let mail = Mail {
            envelope: MailEnvelope::new(ctx.envelope().clone()),
            session: ctx.session().clone(),
            message,
        };
        self.store
            .mails
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(mail.clone());
        let _ = self.store.feed.send(mail);
        self.store.arrived.notify_waiters();
        Ok(())
    }
}

/// Messages as they arrive, from [`TestServer::subscribe`].
#[derive(Debug)]
pub struct Subscription {
    rx: broadcast::Receiver<Mail>,
}

impl Subscription {
    /// The next message to arrive; `None` once the server is gone.
    pub async fn next(&mut self) -> Option<Mail> {
        loop {
            match self.rx.recv().await {
                Ok(m) => return Some(m),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

/// TLS material of a [`TestServer`]: a self-signed certificate made at start.
#[derive(Debug, Clone)]
pub struct TestTls {
    /// The certificate, PEM: trust it as the client's root.
    pub certificate_pem: String,
    /// Its private key, PEM.
    pub key_pem: String,
}

/// A change to the session configuration, applied at start.
type Configure = Box<dyn FnOnce(&mut Config) + Send>;

/// Builds a [`TestServer`].
#[must_use]
pub struct TestServerBuilder {
    starttls: bool,
    implicit_tls: bool,
    accounts: HashMap<String, String>,
    auth_required: bool,
    faults: Faults,
    configure: Vec<Configure>,
    lmtp: bool,
    #[cfg(feature = "http")]
    http: bool,
}

impl TestServerBuilder {
    /// Offers STARTTLS with a generated self-signed certificate for `localhost` and
    /// `127.0.0.1` (see [`TestServer::tls`]).
    pub fn starttls(mut self) -> Self {
        self.starttls = true;
        self
    }

    /// TLS from the first byte ("port 465"), with a generated certificate.
    pub fn implicit_tls(mut self) -> Self {
        self.implicit_tls = true;
        self
    }

    /// Offers AUTH PLAIN and LOGIN, accepting this account (call again for more). AUTH is
    /// offered without TLS too, so that plain test clients can use it.
    pub fn auth(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.accounts.insert(user.into(), password.into());
        self
    }

    /// Requires AUTH before MAIL.
    pub fn auth_required(mut self) -> Self {
        self.auth_required = true;
        self
    }

    /// Announces SMTPUTF8 or not (on by default).
    pub fn smtputf8(self, on: bool) -> Self {
        self.configure(move |c| c.extensions.smtputf8 = on)
    }

    /// The message size limit (SIZE).
    pub fn max_message_size(self, bytes: u64) -> Self {
        self.configure(move |c| c.limits.message_size = bytes)
    }

    /// Speaks LMTP instead of SMTP.
    pub fn lmtp(mut self) -> Self {
        self.lmtp = true;
        self
    }

    /// Injects these faults.
    pub fn faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    /// Any other change to the session configuration.
    pub fn configure(mut self, f: impl FnOnce(&mut Config) + Send + 'static) -> Self {
        self.configure.push(Box::new(f));
        self
    }

    /// Also serves the capture server's HTTP API (Mailpit-compatible), its web page and
    /// metrics on 127.0.0.1:0 ([`TestServer::http_url`]): hand the URL to a browser test or a
    /// test in another language. Faults set over HTTP apply to this server. Feature `http`.
    #[cfg(feature = "http")]
    pub fn http(mut self) -> Self {
        self.http = true;
        self
    }

    /// Starts the server on 127.0.0.1:0; it accepts connections as soon as this returns.
    ///
    /// # Panics
    /// If it cannot bind a loopback port.
    pub async fn start(self) -> TestServer {
        let (tx, _) = broadcast::channel(1024);
        let store = Arc::new(Store {
            mails: Mutex::new(Vec::new()),
            arrived: Notify::new(),
            feed: tx,
        });
        #[cfg(feature = "http")]
        let capture = self.http.then(smtp_server::Capture::new);
        let recorder = Recorder {
            store: Arc::clone(&store),
            accounts: Arc::new(Accounts::new(self.accounts.clone())),
            #[cfg(feature = "http")]
            capture: capture.clone(),
        };
        let mut builder = Server::builder()
            .hostname("testserver.localhost")
            .lmtp(self.lmtp)
            .shutdown_grace(Duration::from_secs(5));
        if !self.accounts.is_empty() {
            builder = builder
                .auth_mechanisms(["PLAIN", "LOGIN"])
                .allow_insecure_auth(true)
                .auth_required(self.auth_required);
        }
        for f in self.configure {
            builder = builder.configure(f);
        }
        let tls = if self.starttls || self.implicit_tls {
            let cert = rcgen::generate_simple_self_signed(vec![
                "localhost".to_string(),
                "127.0.0.1".to_string(),
            ])
            .expect("generate a certificate");
            let tls = TestTls {
                certificate_pem: cert.cert.pem(),
                key_pem: cert.signing_key.serialize_pem(),
            };
            let config =
                smtp_server::load_pem(tls.certificate_pem.as_bytes(), tls.key_pem.as_bytes())
                    .expect("TLS configuration");
            builder = builder.tls(config);
            Some(tls)
        } else {
            None
        };
        builder = if self.implicit_tls {
            builder.listener(smtp_server::Listen::tcp("127.0.0.1:0").implicit_tls(true))
        } else {
            builder.listen("127.0.0.1:0")
        };
        let handler = Arc::new(FaultHandler::new(recorder, self.faults));
        #[cfg(feature = "http")]
        let metrics = smtp_server::Metrics::new();
        #[cfg(feature = "http")]
        if capture.is_some() {
            builder = builder.metrics(metrics.clone());
        }
        let server = builder
            .handler(Arc::clone(&handler))
            .bind()
            .await
            .expect("bind a loopback port");
        let handle = server.spawn();
        #[cfg(feature = "http")]
        let http = match capture {
            Some(capture) => Some(
                smtp_server::http::HttpServer::new()
                    .capture(capture)
                    .faults(handler)
                    .metrics(metrics)
                    .spawn("127.0.0.1:0")
                    .await
                    .expect("bind a loopback port for HTTP"),
            ),
            None => None,
        };
        TestServer {
            addr: handle.local_addr().expect("a TCP listener"),
            handle: Some(handle),
            store,
            tls,
            #[cfg(feature = "http")]
            http,
        }
    }
}

/// A throwaway SMTP server that captures every message, for tests of code that sends mail.
///
/// Ready when [`TestServer::start`] returns (the port is bound before that, so no client can
/// be early); stops when dropped.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::Duration;
/// use smtp_testkit::{Client, TestServer};
///
/// let server = TestServer::start().await;
/// // The code under test would send mail to server.addr(); here the scripted client does.
/// let mut c = Client::connect(server.addr()).await;
/// c.send_mail("ann@example.com", &["bob@example.net"], "Subject: Welcome\r\n\r\nHi\r\n")
///     .await
///     .expect(250);
/// let msg = server.wait_for(1, Duration::from_secs(5)).await.unwrap().remove(0);
/// assert_eq!(msg.envelope().recipients(), ["bob@example.net"]);
/// assert_eq!(msg.subject(), Some("Welcome"));
/// # }
/// ```
pub struct TestServer {
    addr: SocketAddr,
    handle: Option<ServerHandle>,
    store: Arc<Store>,
    tls: Option<TestTls>,
    #[cfg(feature = "http")]
    http: Option<smtp_server::http::HttpHandle>,
}

impl TestServer {
    /// A plain SMTP capture server with defaults.
    pub async fn start() -> Self {
        Self::builder().start().await
    }

    /// Options: TLS, AUTH, limits, LMTP, faults.
    pub fn builder() -> TestServerBuilder {
        TestServerBuilder {
            starttls: false,
            implicit_tls: false,
            accounts: HashMap::new(),
            auth_required: false,
            faults: Faults::new(),
            configure: Vec::new(),
            lmtp: false,
            #[cfg(feature = "http")]
            http: false,
        }
    }

    /// Where to send mail.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The HTTP API's base URL (`http://127.0.0.1:PORT`), with [`TestServerBuilder::http`].
    #[cfg(feature = "http")]
    pub fn http_url(&self) -> Option<String> {
        self.http.as_ref().map(smtp_server::http::HttpHandle::url)
    }

    /// The TLS certificate, when TLS is on.
    pub fn tls(&self) -> Option<&TestTls> {
        self.tls.as_ref()
    }

    /// Every message captured so far.
    pub fn messages(&self) -> Vec<Mail> {
        self.store
            .mails
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Forgets the captured messages.
    pub fn clear(&self) {
        self.store
            .mails
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Messages as they arrive from now on.
    pub fn subscribe(&self) -> Subscription {
        Subscription {
            rx: self.store.feed.subscribe(),
        }
    }

    /// Waits until at least `n` messages were captured, at most `timeout`; returns them all.
    /// The error shows what did arrive.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Result<Vec<Mail>, WaitError> {
        let wait = async {
            loop {
                let notified = self.store.arrived.notified();
                let mails = self.messages();
                if mails.len() >= n {
                    return mails;
                }
                notified.await;
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| WaitError {
                wanted: n,
                waited: timeout,
                arrived: self.messages(),
            })
    }

    /// Stops accepting and waits for the connections to end (dropping does the first part).
    pub async fn stop(mut self) {
        if let Some(handle) = self.handle.take() {
            let _ = handle.shutdown().await;
        }
    }
}

impl fmt::Debug for TestServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestServer")
            .field("addr", &self.addr)
            .field("messages", &self.messages().len())
            .finish()
    }
}
