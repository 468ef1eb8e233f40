//! `Relay`: forwards each transaction to an upstream SMTP server, command by command, so that
//! the upstream's answers (per recipient) reach the client instead of a blanket 250.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use smtp_proto::{EnhancedStatus, ForwardPath, MailParams, RcptParams, Reply, ReversePath};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::rustls::pki_types::ServerName;

use crate::body::Body;
use crate::handler::{Context, Handler};

const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(60);

/// What the upstream connection runs on: TCP, or TLS over it.
trait Io: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Io for T {}

/// How the relay protects its connection to the upstream.
#[derive(Clone)]
enum UpstreamTls {
    /// STARTTLS after the first EHLO; an upstream that does not offer it gets no mail.
    StartTls(TlsConnector, ServerName<'static>),
    /// TLS from the first byte.
    Implicit(TlsConnector, ServerName<'static>),
}

/// One connection to the upstream server, for one client session.
struct Upstream {
    stream: Box<dyn Io>,
    buf: Vec<u8>,
}

fn timed_out() -> io::Error {
    io::Error::from(io::ErrorKind::TimedOut)
}

/// The next reply on `stream`, from what is already in `buf` first.
async fn read_reply<S: AsyncRead + Unpin + ?Sized>(
    stream: &mut S,
    buf: &mut Vec<u8>,
) -> io::Result<Reply> {
    loop {
        match Reply::parse(buf, 64 * 1024) {
            Ok(Some((reply, used))) => {
                buf.drain(..used);
                return Ok(reply);
            }
            Ok(None) => {}
            Err(e) => return Err(io::Error::other(e)),
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(UPSTREAM_TIMEOUT, stream.read(&mut chunk))
            .await
            .map_err(|_| timed_out())??;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Sends one command line and reads its reply.
async fn command<S: AsyncRead + AsyncWrite + Unpin + ?Sized>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    line: &str,
) -> io::Result<Reply> {
    stream.write_all(format!("{line}\r\n").as_bytes()).await?;
    read_reply(stream, buf).await
}

/// The greeting, then EHLO.
async fn hello<S: AsyncRead + AsyncWrite + Unpin + ?Sized>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    hostname: &str,
    greeting: bool,
) -> io::Result<Reply> {
    if greeting {
        let r = read_reply(stream, buf).await?;
        if r.code() != 220 {
            return Err(io::Error::other(format!("upstream greeting {}", r.code())));
        }
    }
    let ehlo = command(stream, buf, &format!("EHLO {hostname}")).await?;
    if !ehlo.is_positive() {
        return Err(io::Error::other(format!("upstream EHLO {}", ehlo.code())));
    }
    Ok(ehlo)
}

impl Upstream {
    async fn connect(addr: &str, hostname: &str, tls: Option<&UpstreamTls>) -> io::Result<Self> {
        let tcp = tokio::time::timeout(UPSTREAM_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| timed_out())??;
        let _ = tcp.set_nodelay(true);
        let mut buf = Vec::new();
        let handshake = |connector: &TlsConnector, name: &ServerName<'static>, tcp| {
            let connect = connector.connect(name.clone(), tcp);
            async move {
                tokio::time::timeout(UPSTREAM_TIMEOUT, connect)
                    .await
                    .map_err(|_| timed_out())?
            }
        };
        let stream: Box<dyn Io> = match tls {
            None => {
                let mut tcp = tcp;
                hello(&mut tcp, &mut buf, hostname, true).await?;
                Box::new(tcp)
            }
            Some(UpstreamTls::Implicit(connector, name)) => {
                let mut tls = handshake(connector, name, tcp).await?;
                hello(&mut tls, &mut buf, hostname, true).await?;
                Box::new(tls)
            }
            Some(UpstreamTls::StartTls(connector, name)) => {
                let mut tcp = tcp;
                let ehlo = hello(&mut tcp, &mut buf, hostname, true).await?;
                let offered = ehlo.lines().skip(1).any(|l| {
                    l.split_whitespace()
                        .next()
                        .is_some_and(|k| k.eq_ignore_ascii_case("STARTTLS"))
                });
                if !offered {
                    return Err(io::Error::other("upstream does not offer STARTTLS"));
                }
                let r = command(&mut tcp, &mut buf, "STARTTLS").await?;
                if r.code() != 220 {
                    return Err(io::Error::other(format!("upstream STARTTLS {}", r.code())));
                }
                // Anything the upstream sent after its 220 came before TLS: not to be trusted
                // (RFC 3207 4.2 asks the same of servers).
                buf.clear();
                let mut tls = handshake(connector, name, tcp).await?;
                hello(&mut tls, &mut buf, hostname, false).await?;
                Box::new(tls)
            }
        };
        Ok(Self { stream, buf })
    }

    async fn command(&mut self, line: &str) -> io::Result<Reply> {
        command(&mut self.stream, &mut self.buf, line).await
    }

    /// DATA, the dot-stuffed content as it arrives, the end; the upstream's final reply.
    async fn data(
        &mut self,
        trace: Option<&str>,
        body: &mut Body,
    ) -> io::Result<Result<Reply, Reply>> {
        let r = self.command("DATA").await?;
        if r.code() != 354 {
            return Ok(Err(r));
        }
        let mut stuffer = Stuffer::default();
        let mut out = Vec::with_capacity(64 * 1024);
        if let Some(trace) = trace {
            stuffer.push(trace.as_bytes(), &mut out);
            self.stream.write_all(&out).await?;
        }
        while let Some(chunk) = body.chunk().await {
            let Ok(chunk) = chunk else {
                // The client's message failed: never let upstream take a partial message.
                return Err(io::Error::other("client message incomplete"));
            };
            out.clear();
            stuffer.push(&chunk, &mut out);
            self.stream.write_all(&out).await?;
        }
        out.clear();
        stuffer.finish(&mut out);
        self.stream.write_all(&out).await?;
        Ok(Ok(read_reply(&mut self.stream, &mut self.buf).await?))
    }
}

/// Streaming dot-stuffing (RFC 5321 4.5.2): doubles a `.` at the start of each line, however
/// the content is split.
#[derive(Default)]
struct Stuffer {
    /// The last two bytes written (to see a CRLF across chunks).
    last: [u8; 2],
    started: bool,
}

impl Stuffer {
    fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        let mut start = 0;
        for (i, &b) in chunk.iter().enumerate() {
            if b != b'.' {
                continue;
            }
            let before = |k: usize| -> u8 {
                if i >= k {
                    chunk[i - k]
                } else {
                    self.last[2 - (k - i)]
                }
            };
            let line_start = if i == 0 && !self.started {
                true
            } else {
                before(2) == b'\r' && before(1) == b'\n'
            };
            if line_start {
                out.extend_from_slice(&chunk[start..=i]);
                out.push(b'.');
                start = i + 1;
            }
        }
        out.extend_from_slice(&chunk[start..]);
        if !chunk.is_empty() {
            self.started = true;
            if chunk.len() >= 2 {
                self.last = [chunk[chunk.len() - 2], chunk[chunk.len() - 1]];
            } else {
                self.last = [self.last[1], chunk[0]];
            }
        }
    }

    fn finish(&self, out: &mut Vec<u8>) {
        if self.started && self.last != *b"\r\n" {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
    }
}

/// Forwards mail to an upstream SMTP server: MAIL, each RCPT and the message are passed on as
/// they arrive, and the upstream's replies are the client's replies, so a recipient the
/// upstream refuses is refused here too, and a message is answered 250 only when the upstream
/// said 250. The message is relayed byte for byte (streamed, never held whole in memory),
/// after the relay's own `Received` header (RFC 5321 4.4; [`Relay::received`] turns it off).
///
/// Each client connection has its own upstream connection, opened at its first MAIL, kept in
/// the connection's [`Context`] for its next transactions. The methods of [`Handler`] are the
/// steps, and can be called by a handler that wraps the relay (returning it from
/// [`Handler::inner`]) to change what is relayed:
///
/// - change the recipients: keep a recipient from the upstream by answering its `rcpt`
///   yourself, add one by calling [`Handler::rcpt`] on the relay (before `data`);
/// - look at the message: collect the [`Body`], then give it on with `Body::from(message)`;
/// - drop a message or answer it yourself: do not call `data`, and call [`Handler::rset`] on
///   the relay so that the upstream forgets the transaction.
///
/// ```
/// use smtp_server::{async_trait, Body, Context, Handler, Relay};
/// use smtp_server::smtp_proto::{ForwardPath, Mailbox, RcptParams, Reply};
///
/// /// Sends mail for `archive@example.com` to the archive instead, and drops mail whose subject
/// /// says "spam"; everything else is the relay's.
/// struct Rewrite(Relay);
///
/// #[async_trait]
/// impl Handler for Rewrite {
///     fn inner(&self) -> Option<&dyn Handler> {
///         Some(&self.0)
///     }
///     async fn rcpt(&self, ctx: &mut Context, to: &ForwardPath<'_>, p: &RcptParams<'_>)
///         -> Result<(), Reply> {
///         if to.address().eq_ignore_ascii_case("archive@example.com") {
///             let archive = ForwardPath::Mailbox(Mailbox::parse("archive@archive.example").unwrap());
///             return self.0.rcpt(ctx, &archive, p).await;
///         }
///         self.0.rcpt(ctx, to, p).await
///     }
///     async fn data(&self, ctx: &mut Context, body: Body) -> Result<(), Reply> {
///         let message = body.collect().await?;
///         if message.subject().is_some_and(|s| s.contains("spam")) {
///             self.0.rset(ctx).await;
///             return Ok(()); // accepted, and dropped
///         }
///         self.0.data(ctx, Body::from(message)).await
///     }
/// }
/// let handler = Rewrite(Relay::new("127.0.0.1:25").hostname("relay.example.com"));
/// ```
///
/// `examples/src/bin/mail2alert.rs` is a complete program built this way. The connection to
/// the upstream is plain TCP unless [`Relay::starttls`] or [`Relay::implicit_tls`] is set.
pub struct Relay {
    upstream: String,
    hostname: String,
    tls: Option<UpstreamTls>,
    received: bool,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("upstream", &self.upstream)
            .finish()
    }
}

fn unavailable(e: &io::Error) -> Reply {
    tracing::warn!("relay: upstream: {e}");
    Reply::new(
        451,
        Some(EnhancedStatus::new(4, 4, 1)),
        "Upstream server unavailable, try again later",
    )
}

impl Relay {
    /// Relays to `upstream` (`"HOST:PORT"`).
    pub fn new(upstream: impl Into<String>) -> Self {
        Self {
            upstream: upstream.into(),
            hostname: crate::server::default_hostname(),
            tls: None,
            received: true,
        }
    }

    /// The name this relay gives in its EHLO to the upstream and in its `Received` header
    /// (by default, this machine's host name).
    pub fn hostname(mut self, name: impl Into<String>) -> Self {
        self.hostname = name.into();
        self
    }

    /// Whether to add a `Received` header before the message (on by default). RFC 5321 4.4:
    /// an SMTP server that relays a message MUST add one; turn it off only for a transparent
    /// proxy that must pass the message byte for byte (the upstream then sees no hop here).
    pub fn received(mut self, on: bool) -> Self {
        self.received = on;
        self
    }

    /// Uses STARTTLS to the upstream, checking its certificate against `config` for
    /// `server_name`. An upstream that does not offer STARTTLS, or whose certificate does not
    /// verify, gets no mail: the client is answered `451 4.4.1` and may retry.
    pub fn starttls(
        self,
        config: Arc<ClientConfig>,
        server_name: &str,
    ) -> Result<Self, crate::Error> {
        self.with_tls(config, server_name, UpstreamTls::StartTls)
    }

    /// TLS from the first byte to the upstream (its port 465), as [`Relay::starttls`].
    pub fn implicit_tls(
        self,
        config: Arc<ClientConfig>,
        server_name: &str,
    ) -> Result<Self, crate::Error> {
        self.with_tls(config, server_name, UpstreamTls::Implicit)
    }

    fn with_tls(
        mut self,
        config: Arc<ClientConfig>,
        server_name: &str,
        mode: fn(TlsConnector, ServerName<'static>) -> UpstreamTls,
    ) -> Result<Self, crate::Error> {
        let name = ServerName::try_from(server_name.to_string())
            .map_err(|e| crate::Error::Tls(format!("upstream name {server_name:?}: {e}")))?;
        self.tls = Some(mode(TlsConnector::from(config), name));
        Ok(self)
    }

    /// This connection's upstream connection, kept in its context between calls.
    fn take(ctx: &mut Context) -> Option<Upstream> {
        ctx.extensions_mut().remove::<Upstream>()
    }

    fn put(ctx: &mut Context, up: Upstream) {
        ctx.extensions_mut().insert(up);
    }

    /// Runs one step on this session's upstream connection; a broken connection is dropped
    /// and the client gets 451.
    async fn with_upstream<F>(&self, ctx: &mut Context, step: F) -> Result<(), Reply>
    where
        F: for<'a> FnOnce(
                &'a mut Upstream,
            )
                -> std::pin::Pin<Box<dyn Future<Output = io::Result<Reply>> + Send + 'a>>
            + Send,
    {
        let mut up = match Self::take(ctx) {
            Some(up) => up,
            None => Upstream::connect(&self.upstream, &self.hostname, self.tls.as_ref())
                .await
                .map_err(|e| unavailable(&e))?,
        };
        match step(&mut up).await {
            Ok(reply) => {
                Self::put(ctx, up);
                if reply.is_positive() {
                    Ok(())
                } else {
                    Err(reply)
                }
            }
            Err(e) => Err(unavailable(&e)),
        }
    }
}

#[async_trait]
impl Handler for Relay {
    async fn mail(
        &self,
        ctx: &mut Context,
        from: &ReversePath<'_>,
        params: &MailParams<'_>,
    ) -> Result<(), Reply> {
        let line = format!("MAIL FROM:{from}{params}");
        self.with_upstream(ctx, move |up| {
            Box::pin(async move { up.command(&line).await })
        })
        .await
    }

    async fn rcpt(
        &self,
        ctx: &mut Context,
        to: &ForwardPath<'_>,
        params: &RcptParams<'_>,
    ) -> Result<(), Reply> {
        let line = format!("RCPT TO:{to}{params}");
        self.with_upstream(ctx, move |up| {
            Box::pin(async move { up.command(&line).await })
        })
        .await
    }

    async fn data(&self, ctx: &mut Context, mut body: Body) -> Result<(), Reply> {
        let Some(mut up) = Self::take(ctx) else {
            return Err(unavailable(&io::Error::other("no upstream transaction")));
        };
        let trace = self.received.then(|| {
            crate::handlers::received_header(ctx.session(), ctx.envelope(), &self.hostname)
        });
        match up.data(trace.as_deref(), &mut body).await {
            Ok(result) => {
                Self::put(ctx, up);
                match result {
                    Ok(r) if r.is_positive() => Ok(()),
                    Ok(r) | Err(r) => Err(r),
                }
            }
            Err(e) => Err(unavailable(&e)),
        }
    }

    async fn rset(&self, ctx: &mut Context) {
        if let Some(mut up) = Self::take(ctx)
            && up.command("RSET").await.is_ok()
        {
            Self::put(ctx, up);
        }
    }

    async fn disconnect(&self, ctx: &mut Context) {
        if let Some(mut up) = Self::take(ctx) {
            let _ = tokio::time::timeout(Duration::from_secs(5), up.command("QUIT")).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Stuffer;

    #[test]
    fn streaming_stuffing_matches_whole() {
        let bodies: [&[u8]; 5] = [
            b".a\r\n.b\r\nc.\r\n..\r\n",
            b"x",
            b"",
            b"a\r\n.",
            b"\r\n.\r\n",
        ];
        for body in bodies {
            let mut whole = Vec::new();
            smtp_proto::dot_stuff(body, &mut whole);
            for split in 0..=body.len() {
                let mut s = Stuffer::default();
                let mut out = Vec::new();
                let (a, b) = body.split_at(split);
                for piece in [a, b] {
                    for byte in piece.chunks(1) {
                        s.push(byte, &mut out);
                    }
                }
                s.finish(&mut out);
                assert_eq!(out, whole, "{body:?} split at {split}");
            }
        }
    }
}
