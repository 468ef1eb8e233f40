//! One task per connection: reads into a reusable buffer, feeds the `Session`, writes what it
//! outputs, asks the `Handler` for each decision, and sleeps until the session's deadline.

use std::io;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures_util::FutureExt as _;
use smtp_proto::{CloseReason, Config, Event, Mode, Output, Reply, Session};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tracing::{Instrument as _, debug, info, info_span, warn};

use crate::body::Body;
use crate::error::BodyError;
use crate::handler::{Handler, SessionInfo};

/// Most bytes asked of the socket per read.
const READ_SIZE: usize = 16 * 1024;
/// Least bytes asked of the socket per read: an idle session keeps a small buffer (C10k).
const MIN_READ: usize = 1024;
/// Body chunks in flight between the connection and the handler.
const BODY_QUEUE: usize = 4;

/// The plain or TLS stream under a connection; STARTTLS swaps one for the other.
enum Stream<S> {
    Plain(S),
    Tls(Box<TlsStream<S>>),
    Upgrading,
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Stream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Self::Upgrading => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Stream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Self::Upgrading => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Self::Upgrading => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Self::Upgrading => Poll::Ready(Ok(())),
        }
    }
}

/// What a connection needs from its server.
#[derive(Clone)]
pub(crate) struct ConnContext {
    pub(crate) config: Arc<Config>,
    pub(crate) handler: Arc<dyn Handler>,
    pub(crate) tls: Option<TlsAcceptor>,
    pub(crate) implicit_tls: bool,
    pub(crate) shutdown: watch::Receiver<bool>,
    /// Waited before answering a refused AUTH (slows brute force down).
    pub(crate) auth_failure_delay: std::time::Duration,
}

/// How the message phase ended.
enum MessageEnd {
    /// The session waits for the decision on the whole message, of this many octets.
    Complete { size: u64 },
    /// The session refused the message itself, or it was dropped.
    Aborted,
    /// The session is over.
    Closed,
}

/// Serves one connection to its end. Never panics because of the peer or the handler.
pub(crate) async fn serve<S>(io: S, ctx: ConnContext, mut info: SessionInfo)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let span = info_span!("smtp", id = info.id, peer = ?info.peer, listener = %info.listener);
    async move {
        info!("connected");
        info.lmtp = ctx.config.mode == Mode::Lmtp;
        let now = Instant::now();
        let stream = if ctx.implicit_tls {
            let Some(acceptor) = ctx.tls.clone() else {
                warn!("implicit TLS listener without a TLS configuration");
                return;
            };
            let deadline = tokio::time::Instant::from_std(now + ctx.config.timeouts.command);
            match tokio::time::timeout_at(deadline, acceptor.accept(io)).await {
                Ok(Ok(tls)) => {
                    let tls_info = crate::tls::info(tls.get_ref().1, true);
                    info!(protocol = %tls_info.protocol, cipher = %tls_info.cipher, "TLS");
                    info.tls = Some(tls_info);
                    Stream::Tls(Box::new(tls))
                }
                Ok(Err(e)) => return info!("TLS handshake failed: {e}"),
                Err(_) => return info!("TLS handshake timed out"),
            }
        } else {
            Stream::Plain(io)
        };
        let mut session = if ctx.implicit_tls {
            Session::new_tls(Arc::clone(&ctx.config), now)
        } else {
            Session::new(Arc::clone(&ctx.config), now)
        };
        // Protocol lines at debug level: AUTH redacted and content left out by the session.
        let transcript = tracing::enabled!(tracing::Level::DEBUG);
        session.record_transcript(transcript);
        let mut conn = Conn {
            stream,
            session,
            buf: Vec::new(),
            read_size: MIN_READ,
            pos: 0,
            info,
            ctx,
            closed: None,
            shutdown_seen: false,
            transcript,
        };
        match conn.run().await {
            Ok(()) => info!(reason = ?conn.closed, "closed"),
            Err(e) => info!("closed: {e}"),
        }
        // TLS writes its close_notify here: bounded like every other write.
        let grace = conn.ctx.config.timeouts.command;
        let _ = tokio::time::timeout(grace, conn.stream.shutdown()).await;
        let handler = Arc::clone(&conn.ctx.handler);
        let _ = AssertUnwindSafe(handler.disconnect(&conn.info))
            .catch_unwind()
            .await;
    }
    .instrument(span)
    .await
}

struct Conn<S> {
    stream: Stream<S>,
    session: Session,
    /// Bytes read and not yet consumed start at `pos`.
    buf: Vec<u8>,
    pos: usize,
    info: SessionInfo,
    ctx: ConnContext,
    closed: Option<CloseReason>,
    shutdown_seen: bool,
    /// How much to ask for next: doubles while reads fill it (message content), halves
    /// while they do not (commands).
    read_size: usize,
    /// Log the session's transcript (debug level was on at connect).
    transcript: bool,
}

/// Writes a reply (or a group of pipelined replies) and flushes it, within the command
/// timeout: a client that stops reading is cut in every phase.
async fn write_out<S: AsyncWrite + Unpin>(
    stream: &mut S,
    bytes: &[u8],
    config: &Config,
) -> io::Result<()> {
    if tracing::enabled!(tracing::Level::DEBUG) {
        for line in String::from_utf8_lossy(bytes).lines() {
            debug!("S: {line}");
        }
    }
    let write = async {
        stream.write_all(bytes).await?;
        stream.flush().await
    };
    let deadline = Instant::now() + config.timeouts.command;
    tokio::time::timeout_at(deadline.into(), write)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the client stopped reading"))?
}

fn aborted() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "the handler dropped the connection",
    )
}

/// Runs a handler call; a panic becomes `None` (and a log line) instead of unwinding.
async fn guarded<T>(what: &str, fut: impl Future<Output = T>) -> Option<T> {
    match AssertUnwindSafe(fut).catch_unwind().await {
        Ok(v) => Some(v),
        Err(_) => {
            warn!("handler panicked in {what}");
            None
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Conn<S> {
    async fn run(&mut self) -> io::Result<()> {
        loop {
            if self.drain().await? {
                return Ok(());
            }
            let used = self
                .session
                .handle_input(Instant::now(), &self.buf[self.pos..]);
            self.pos += used.bytes;
            if self.transcript {
                while let Some(line) = self.session.poll_transcript() {
                    debug!("C: {line}");
                }
            }
            if used.bytes == 0 && used.body.is_none() {
                if self.drain().await? {
                    return Ok(());
                }
                if !self.session.is_pending() {
                    self.read().await?;
                }
            }
        }
    }

    /// Handles the session's outputs until it has none; true once it is closed.
    async fn drain(&mut self) -> io::Result<bool> {
        loop {
            let event = match self.session.poll_output() {
                None => return Ok(self.closed.is_some()),
                Some(Output::Transmit(bytes)) => {
                    write_out(&mut self.stream, bytes, &self.ctx.config).await?;
                    continue;
                }
                Some(Output::Closed(reason)) => {
                    self.closed = Some(reason);
                    continue;
                }
                Some(Output::Event(event)) => event,
            };
            self.event(event).await?;
            if self.info.control.is_set() {
                return Err(aborted());
            }
        }
    }

    /// Answers one event.
    async fn event(&mut self, event: Event) -> io::Result<()> {
        let handler = Arc::clone(&self.ctx.handler);
        let now = Instant::now();
        match event {
            Event::Connect { proxy } => {
                self.info.proxy = proxy;
                let r = guarded("connect", handler.connect(&self.info)).await;
                self.decide(r);
            }
            Event::Hello {
                name,
                mut capabilities,
                ..
            } => {
                let r = guarded("hello", handler.hello(&self.info, &name, &mut capabilities)).await;
                if matches!(r, Some(Ok(()))) {
                    info!(name = %name, "hello");
                    self.session.set_capabilities(capabilities);
                    self.info.helo = Some(name);
                }
                self.decide(r);
            }
            Event::Auth { credentials } => {
                let result = guarded("auth", handler.auth(&self.info, &credentials)).await;
                // RFC 4616 2: a client that asks to act as another identity (PLAIN's authzid)
                // gets it only if the handler grants exactly that identity; a handler that
                // checks the credentials but ignores the request does not grant it.
                let result = match (result, credentials.authzid()) {
                    (Some(Ok(identity)), Some(asked)) if identity != asked => {
                        info!(user = %identity, asked = %asked, "AUTH refused: not allowed to act as that identity");
                        Some(Err(Reply::AUTH_INVALID))
                    }
                    (r, _) => r,
                };
                match result {
                    Some(Ok(identity)) => {
                        info!(user = %identity, "authenticated");
                        self.info.auth = Some(identity.clone());
                        self.session.accept_auth(now, identity);
                    }
                    Some(Err(reply)) => {
                        info!(code = reply.code(), "AUTH refused");
                        let delay = self.ctx.auth_failure_delay;
                        if !delay.is_zero() {
                            tokio::time::sleep(delay).await;
                        }
                        self.session.reply(Instant::now(), reply);
                    }
                    None => self.session.reply(now, Reply::LOCAL_ERROR),
                }
            }
            Event::Mail { from, params } => {
                let r = guarded("mail", handler.mail(&self.info, &from, &params)).await;
                self.decide(r);
            }
            Event::Rcpt { to, params } => {
                let envelope = self.session.envelope();
                let r = guarded("rcpt", handler.rcpt(&self.info, envelope, &to, &params)).await;
                self.decide(r);
            }
            Event::Vrfy { arg } => {
                let reply = guarded("vrfy", handler.vrfy(&self.info, &arg)).await;
                self.session.reply(now, reply.unwrap_or(Reply::LOCAL_ERROR));
            }
            Event::MessageStart => self.message().await?,
            Event::Reset => {
                guarded("rset", handler.rset(&self.info)).await;
            }
            Event::StartTls => self.starttls().await?,
            // Only seen inside the message phase.
            Event::MessageEnd { .. } | Event::MessageAborted { .. } => {}
            _ => {}
        }
        Ok(())
    }

    fn decide(&mut self, result: Option<Result<(), Reply>>) {
        let now = Instant::now();
        match result {
            Some(Ok(())) => self.session.accept(now),
            Some(Err(reply)) => self.session.reply(now, reply),
            None => self.session.reply(now, Reply::LOCAL_ERROR),
        }
    }

    /// The message phase: the handler's `data` runs alongside the loop that reads the content
    /// and hands it over, with backpressure, until the end; then its result is the reply.
    async fn message(&mut self) -> io::Result<()> {
        let (tx, rx) = mpsc::channel(BODY_QUEUE);
        let body = Body::new(rx, self.ctx.config.limits.message_size);
        let envelope = self.session.envelope().clone();
        let queue_id = crate::handler::queue_id();
        self.info.queue_id = Some(queue_id.clone());
        let info = self.info.clone();
        let handler = Arc::clone(&self.ctx.handler);
        let lmtp = self.ctx.config.mode == Mode::Lmtp;
        let span = info_span!("message", from = ?envelope.from.as_ref().map(|f| f.to_string()), rcpts = envelope.recipients.len());
        let data = async move {
            if lmtp {
                guarded("data", handler.data_lmtp(&info, &envelope, body))
                    .await
                    .map(Err)
            } else {
                guarded("data", handler.data(&info, &envelope, body))
                    .await
                    .map(Ok)
            }
        };
        let (result, end) = tokio::join!(data, self.content(tx).instrument(span));
        // The id belongs to this message only: the next transaction's hooks must not see it.
        self.info.queue_id = None;
        let end = end?;
        let MessageEnd::Complete { size } = end else {
            info!(id = %queue_id, "message not received to its end");
            return Ok(());
        };
        let now = Instant::now();
        // The 250 names the message, as Postfix's "queued as" does: the sender's log can be
        // matched to the stored copy (the same id is in our Received header).
        let accepted = Reply::new(
            250,
            Some(smtp_proto::EnhancedStatus::new(2, 6, 0)),
            format!("Message accepted, queued as {queue_id}"),
        );
        let from = self
            .session
            .envelope()
            .from
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        let rcpts = self.session.envelope().recipients.len();
        let codes: Vec<u16> = match result {
            Some(Ok(Ok(()))) => {
                self.session.reply(now, accepted);
                vec![250]
            }
            Some(Ok(Err(reply))) => {
                let code = reply.code();
                self.session.reply(now, reply);
                vec![code]
            }
            Some(Err(each)) => {
                let replies: Vec<Reply> = each
                    .into_iter()
                    .map(|r| r.err().unwrap_or_else(|| accepted.clone()))
                    .collect();
                let mut codes: Vec<u16> = replies.iter().map(Reply::code).collect();
                // The session answers a missing result with 451 (as the log should say).
                codes.resize(rcpts.max(codes.len()), Reply::LOCAL_ERROR.code());
                codes.truncate(rcpts);
                self.session.reply_each(now, replies);
                codes
            }
            None => {
                self.session.reply(now, Reply::LOCAL_ERROR);
                vec![Reply::LOCAL_ERROR.code()]
            }
        };
        info!(id = %queue_id, from = %from, rcpts, size, reply = ?codes, "message");
        Ok(())
    }

    /// Reads the message content and sends it to the handler, until the session reaches the
    /// end of the message (or drops it).
    async fn content(&mut self, tx: mpsc::Sender<crate::body::Piece>) -> io::Result<MessageEnd> {
        let mut tx = Some(tx);
        let mut idle = false;
        loop {
            // Outputs first: BDAT replies, the end, an abort, other commands' events.
            while let Some(out) = self.session.poll_output() {
                let event = match out {
                    Output::Transmit(bytes) => {
                        // The same deadline as every other write: a client that pipelines
                        // BDAT chunks and never reads their replies is cut (RFC 5321 4.5.3.2).
                        write_out(&mut self.stream, bytes, &self.ctx.config).await?;
                        continue;
                    }
                    Output::Closed(reason) => {
                        self.closed = Some(reason);
                        if let Some(tx) = tx.take() {
                            let _ = tx.send(Err(BodyError::Incomplete)).await;
                        }
                        return Ok(MessageEnd::Closed);
                    }
                    Output::Event(e) => e,
                };
                match event {
                    Event::MessageEnd { size } => {
                        // The explicit end: without it the handler sees `Incomplete`.
                        if let Some(tx) = tx.take() {
                            let _ = tx.send(Ok(None)).await;
                        }
                        return Ok(MessageEnd::Complete { size });
                    }
                    Event::MessageAborted { error } => {
                        let error = match error {
                            Some(smtp_proto::DataError::TooLarge) => BodyError::TooLarge,
                            Some(smtp_proto::DataError::BareLineEnding) => {
                                BodyError::BareLineEnding
                            }
                            _ => BodyError::Incomplete,
                        };
                        if let Some(tx) = tx.take() {
                            let _ = tx.send(Err(error)).await;
                        }
                        return Ok(MessageEnd::Aborted);
                    }
                    other => Box::pin(self.event(other)).await?,
                }
            }
            if std::mem::take(&mut idle) {
                self.read().await?;
                continue;
            }
            if self.info.control.is_set() {
                return Err(aborted());
            }
            let used = self
                .session
                .handle_input(Instant::now(), &self.buf[self.pos..]);
            self.pos += used.bytes;
            if self.transcript {
                while let Some(line) = self.session.poll_transcript() {
                    debug!("C: {line}");
                }
            }
            if let Some(chunk) = used.body {
                let chunk = Bytes::copy_from_slice(chunk);
                if let Some(sender) = &tx
                    && sender.send(Ok(Some(chunk))).await.is_err()
                {
                    // The handler returned without reading everything: drain the rest.
                    tx = None;
                }
            } else if used.bytes == 0 {
                // Nothing to do until more input: but first let the replies this call queued
                // (a BDAT chunk's 250) go out, at the top of the loop.
                idle = true;
            }
        }
    }

    /// Reads more input, or handles the deadline, end of input, or shutdown.
    async fn read(&mut self) -> io::Result<()> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.reserve(self.read_size);
        let deadline = self
            .session
            .poll_timeout()
            .map(tokio::time::Instant::from_std);
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        let shutdown_seen = self.shutdown_seen;
        let mut shutdown = self.ctx.shutdown.clone();
        let stop = async move {
            if shutdown_seen || shutdown.wait_for(|s| *s).await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            read = self.stream.read_buf(&mut self.buf) => match read {
                Ok(0) => self.session.handle_eof(Instant::now()),
                Ok(n) => {
                    self.read_size = if n >= self.read_size {
                        (self.read_size * 2).min(READ_SIZE)
                    } else {
                        (self.read_size / 2).max(MIN_READ)
                    };
                }
                Err(e) => {
                    self.session.handle_eof(Instant::now());
                    debug!("read error: {e}");
                }
            },
            () = sleep => self.session.handle_timeout(Instant::now()),
            () = stop => {
                self.shutdown_seen = true;
                self.session.shutdown(Instant::now());
            }
        }
        Ok(())
    }

    /// RFC 3207: the 220 went out; hand the stream to rustls, dropping whatever plaintext the
    /// client had pipelined after STARTTLS.
    async fn starttls(&mut self) -> io::Result<()> {
        self.buf.clear();
        self.pos = 0;
        let Some(acceptor) = self.ctx.tls.clone() else {
            self.session.handle_eof(Instant::now());
            return Ok(());
        };
        let Stream::Plain(io) = std::mem::replace(&mut self.stream, Stream::Upgrading) else {
            self.session.handle_eof(Instant::now());
            return Ok(());
        };
        let deadline = Instant::now() + self.ctx.config.timeouts.command;
        match tokio::time::timeout_at(deadline.into(), acceptor.accept(io)).await {
            Ok(Ok(tls)) => {
                let tls_info = crate::tls::info(tls.get_ref().1, false);
                info!(protocol = %tls_info.protocol, cipher = %tls_info.cipher, "STARTTLS");
                self.info.tls = Some(tls_info);
                self.info.helo = None;
                self.info.auth = None;
                self.stream = Stream::Tls(Box::new(tls));
                self.session.tls_established(Instant::now());
            }
            Ok(Err(e)) => {
                info!("TLS handshake failed: {e}");
                self.session.handle_eof(Instant::now());
            }
            Err(_) => {
                debug!("TLS handshake timed out");
                self.session.handle_eof(Instant::now());
            }
        }
        Ok(())
    }
}
