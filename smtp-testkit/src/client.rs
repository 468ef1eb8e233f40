//! A scripted SMTP client for protocol-level tests, over TCP or an in-memory connection.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use smtp_proto::{Config, Reply};
use smtp_server::Handler;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

/// Every read of a reply is bounded by this.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A reply, with the transcript up to it for failure messages. Derefs to [`Reply`].
#[derive(Debug, Clone)]
pub struct Response {
    reply: Reply,
    transcript: String,
}

impl Response {
    /// Asserts the reply code; on failure, prints the whole conversation.
    #[track_caller]
    pub fn expect(self, code: u16) -> Self {
        assert!(
            self.reply.code() == code,
            "expected {code}, got {}\n--- transcript ---\n{}",
            self.reply.code(),
            self.transcript
        );
        self
    }

    /// Asserts the enhanced status code, such as `"5.1.1"`.
    #[track_caller]
    pub fn expect_enhanced(self, status: &str) -> Self {
        let got = self.reply.status().map(|s| s.to_string());
        assert!(
            got.as_deref() == Some(status),
            "expected enhanced status {status}, got {got:?}\n--- transcript ---\n{}",
            self.transcript
        );
        self
    }

    /// The reply.
    pub fn reply(&self) -> &Reply {
        &self.reply
    }
}

impl Deref for Response {
    type Target = Reply;

    fn deref(&self) -> &Reply {
        &self.reply
    }
}

/// A client that sends exactly what the test says, and reads the replies.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use smtp_testkit::Client;
/// use smtp_testkit::smtp_proto::Config;
///
/// let mut c = Client::in_memory(Config::new("mem.example"), smtp_server::Sink).await;
/// c.ehlo("me").await.expect(250);
/// c.mail("<a@example.com>").await.expect(250);
/// c.rcpt("<bad address>").await.expect(553).expect_enhanced("5.1.3");
/// c.send_line("NOOP").await;
/// c.read_reply().await.expect(250);
/// # }
/// ```
pub struct Client {
    stream: Option<Box<dyn Io>>,
    buf: Vec<u8>,
    transcript: String,
    /// The greeting, read at connect.
    pub greeting: Option<Reply>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.transcript)
    }
}

impl Client {
    /// Connects over TCP and reads the greeting.
    ///
    /// # Panics
    /// If the connection fails.
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = tokio::time::timeout(REPLY_TIMEOUT, tokio::net::TcpStream::connect(addr))
            .await
            .expect("connect in time")
            .expect("connect");
        Self::over(Box::new(stream)).await
    }

    /// Runs the real `smtp-server` driver with `handler` on an in-memory connection (no
    /// socket), and connects to it. (An `Arc` of a handler is a handler, to share one.)
    ///
    /// # Panics
    /// If the configuration cannot work (a message size limit of 0).
    pub async fn in_memory(config: Config, handler: impl Handler) -> Self {
        let (client, server) = tokio::io::duplex(64 * 1024);
        tokio::spawn(async move {
            if let Err(e) = smtp_server::serve_stream(server, config, handler, None).await {
                panic!("in-memory server: {e}");
            }
        });
        Self::over(Box::new(client)).await
    }

    /// Runs the real driver with a [`ServerBuilder`](smtp_server::ServerBuilder)'s settings
    /// and handler (its listeners are ignored) on an in-memory connection, and connects to
    /// it: the same server a test would bind, without a socket.
    ///
    /// # Panics
    /// If the builder has no handler.
    pub async fn in_memory_with(builder: smtp_server::ServerBuilder) -> Self {
        let (client, server) = tokio::io::duplex(64 * 1024);
        tokio::spawn(async move {
            if let Err(e) = builder.serve_stream(server, None).await {
                panic!("in-memory server: {e}");
            }
        });
        Self::over(Box::new(client)).await
    }

    /// Connects over a Unix socket (an LMTP agent's usual transport) and reads the greeting.
    ///
    /// # Panics
    /// If the connection fails.
    #[cfg(unix)]
    pub async fn connect_unix(path: impl AsRef<std::path::Path>) -> Self {
        let stream = tokio::time::timeout(
            REPLY_TIMEOUT,
            tokio::net::UnixStream::connect(path.as_ref()),
        )
        .await
        .expect("connect in time")
        .expect("connect");
        Self::over(Box::new(stream)).await
    }

    async fn over(stream: Box<dyn Io>) -> Self {
        let mut c = Self {
            stream: Some(stream),
            buf: Vec::new(),
            transcript: String::new(),
            greeting: None,
        };
        let greeting = c.read_reply().await;
        c.greeting = Some(greeting.reply);
        c
    }

    /// The conversation so far (`C:` and `S:` lines).
    pub fn transcript(&self) -> &str {
        &self.transcript
    }

    fn stream(&mut self) -> &mut Box<dyn Io> {
        self.stream.as_mut().expect("connection in use")
    }

    /// Sends raw bytes as they are (for edge cases: bare LF, pipelining, garbage).
    pub async fn send_raw(&mut self, bytes: impl AsRef<[u8]>) {
        let bytes = bytes.as_ref();
        for line in String::from_utf8_lossy(bytes).split_inclusive('\n') {
            let _ = writeln!(
                self.transcript,
                "C: {}",
                line.trim_end_matches(['\r', '\n'])
            );
        }
        let stream = self.stream();
        let _ = stream.write_all(bytes).await;
        let _ = stream.flush().await;
    }

    /// Sends one line, adding CRLF.
    pub async fn send_line(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n")).await;
    }

    /// Reads one whole reply. At end of input, returns a reply with code 0.
    pub async fn read_reply(&mut self) -> Response {
        loop {
            match Reply::parse(&self.buf, 1 << 20) {
                Ok(Some((reply, used))) => {
                    let text = String::from_utf8_lossy(&self.buf[..used]).into_owned();
                    for line in text.lines() {
                        let _ = writeln!(self.transcript, "S: {line}");
                    }
                    self.buf.drain(..used);
                    return Response {
                        reply,
                        transcript: self.transcript.clone(),
                    };
                }
                Ok(None) => {}
                Err(e) => panic!("bad reply from server ({e}):\n{}", self.transcript),
            }
            let mut chunk = [0u8; 8192];
            let n = tokio::time::timeout(REPLY_TIMEOUT, self.stream().read(&mut chunk))
                .await
                .unwrap_or_else(|_| {
                    panic!("no reply within {REPLY_TIMEOUT:?}:\n{}", self.transcript)
                })
                .unwrap_or(0);
            if n == 0 {
                let _ = writeln!(self.transcript, "-- connection closed");
                return Response {
                    reply: Reply::new(0, None, "connection closed"),
                    transcript: self.transcript.clone(),
                };
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Sends a command line and reads its reply.
    pub async fn command(&mut self, line: &str) -> Response {
        self.send_line(line).await;
        self.read_reply().await
    }

    /// `EHLO name`.
    pub async fn ehlo(&mut self, name: &str) -> Response {
        self.command(&format!("EHLO {name}")).await
    }

    /// `LHLO name`.
    pub async fn lhlo(&mut self, name: &str) -> Response {
        self.command(&format!("LHLO {name}")).await
    }

    /// `MAIL FROM:` with the path as written (`"<a@b.example> SIZE=10"`).
    pub async fn mail(&mut self, from: &str) -> Response {
        self.command(&format!("MAIL FROM:{from}")).await
    }

    /// `RCPT TO:` with the path as written.
    pub async fn rcpt(&mut self, to: &str) -> Response {
        self.command(&format!("RCPT TO:{to}")).await
    }

    /// `DATA`, then (if the server said 354) the dot-stuffed content; returns the reply to
    /// the content, or the refusal of DATA.
    pub async fn data(&mut self, content: impl AsRef<[u8]>) -> Response {
        let r = self.command("DATA").await;
        if r.code() != 354 {
            return r;
        }
        let mut wire = Vec::new();
        smtp_proto::dot_stuff(content.as_ref(), &mut wire);
        self.send_raw(wire).await;
        self.read_reply().await
    }

    /// `BDAT size [LAST]` with this chunk.
    pub async fn bdat(&mut self, chunk: impl AsRef<[u8]>, last: bool) -> Response {
        let chunk = chunk.as_ref();
        let mut wire = format!(
            "BDAT {}{}\r\n",
            chunk.len(),
            if last { " LAST" } else { "" }
        )
        .into_bytes();
        wire.extend_from_slice(chunk);
        self.send_raw(wire).await;
        self.read_reply().await
    }

    /// `AUTH PLAIN` with an initial response.
    pub async fn auth_plain(&mut self, user: &str, password: &str) -> Response {
        let token =
            base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
        self.command(&format!("AUTH PLAIN {token}")).await
    }

    /// `EHLO`, `MAIL`, each `RCPT`, `DATA` and the content; returns the last reply, or the
    /// first that was not positive.
    pub async fn send_mail(&mut self, from: &str, to: &[&str], content: &str) -> Response {
        let r = self.ehlo("client.test").await;
        if !r.is_positive() {
            return r;
        }
        let r = self.mail(&format!("<{from}>")).await;
        if !r.is_positive() {
            return r;
        }
        for t in to {
            let r = self.rcpt(&format!("<{t}>")).await;
            if !r.is_positive() {
                return r;
            }
        }
        self.data(content).await
    }

    /// `STARTTLS`, then the TLS handshake trusting `root_pem`, for server name `name`
    /// (`"localhost"` for a [`TestServer`](crate::TestServer)). Returns the reply to STARTTLS.
    ///
    /// # Panics
    /// If the handshake fails.
    pub async fn starttls(&mut self, root_pem: &str, name: &str) -> Response {
        let r = self.command("STARTTLS").await;
        if r.code() != 220 {
            return r;
        }
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(root_pem.as_bytes()) {
            roots
                .add(cert.expect("PEM certificate"))
                .expect("root certificate");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let server_name = ServerName::try_from(name.to_string()).expect("server name");
        let plain = self.stream.take().expect("connection in use");
        let tls = tokio::time::timeout(REPLY_TIMEOUT, connector.connect(server_name, plain))
            .await
            .expect("TLS handshake in time")
            .expect("TLS handshake");
        let _ = writeln!(self.transcript, "-- TLS established");
        self.stream = Some(Box::new(tls));
        r
    }

    /// `QUIT`.
    pub async fn quit(&mut self) -> Response {
        self.command("QUIT").await
    }
}
