//! One task per connection: reads into a reusable buffer, feeds the `Session`, writes what it
//! outputs, asks the `Handler` for each decision, and sleeps until the session's deadline.

use std::io;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures_util::FutureExt as _;
use smtp_proto::{CloseReason, Config, Event, Output, Protocol, Reply, Session};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tracing::{Instrument as _, debug, info, info_span, warn};

use crate::body::{Body, Piece};
use crate::error::BodyError;
use crate::handler::{Context, Control, Handler, SessionInfo};
use crate::pipe::{Pipe, Sender};

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
        cx: &mut TaskContext<'_>,
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
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Self::Upgrading => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Self::Upgrading => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
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
    /// Cancelled when the server shuts down: each session then ends politely.
    pub(crate) shutdown: tokio_util::sync::CancellationToken,
    /// Waited before answering a refused AUTH (slows brute force down).
    pub(crate) auth_failure_delay: std::time::Duration,
    /// Where the connection's facts are counted, if anywhere.
    pub(crate) metrics: Option<crate::metrics::Metrics>,
}

impl ConnContext {
    /// Counts into the metrics, if there are any.
    fn observe(&self, f: impl FnOnce(&crate::metrics::Metrics)) {
        if let Some(m) = &self.metrics {
            f(m);
        }
    }
}

/// Serves one connection to its end. Never panics because of the peer or the handler.
///
/// The connection's state is built here, before the future: the future then holds it once
/// (an `async fn` would also keep the stream, context and session info it was given, moved
/// out or not), which keeps an idle connection small.
pub(crate) fn serve<S>(
    io: S,
    ctx: ConnContext,
    mut info: SessionInfo,
) -> impl Future<Output = ()> + Send + 'static
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let span = info_span!("smtp", id = info.id, peer = ?info.peer, listener = %info.listener);
    info.lmtp = ctx.config.protocol == Protocol::Lmtp;
    let now = Instant::now();
    let mut session = if ctx.implicit_tls {
        Session::new_tls(Arc::clone(&ctx.config), now)
    } else {
        Session::new(Arc::clone(&ctx.config), now)
    };
    // Protocol lines at debug level: AUTH redacted and content left out by the session.
    let transcript = tracing::enabled!(tracing::Level::DEBUG);
    session.record_transcript(transcript);
    let control = info.control.clone();
    let mut conn = Conn {
        stream: Stream::Plain(io),
        session,
        read_size: MIN_READ,
        hctx: Box::new(Context::new(info)),
        spare: None,
        control,
        ctx,
        message: None,
        data_slot: None,
        make_data: call_data,
        closed: None,
        shutdown_seen: false,
        transcript,
        timer: Box::pin(tokio::time::sleep_until(tokio::time::Instant::now())),
        armed: None,
        pipe: None,
    };
    async move {
        // With sessions not logged (the default level), no span is entered on every poll.
        if span.is_disabled() {
            conn.serve().await;
        } else {
            conn.serve().instrument(span).await;
        }
    }
}

/// The message being received: the channel its content goes to, and the handler's `data`,
/// a future the one loop below polls beside its own work (on this task: no spawn, no
/// cross-thread wake-up per message), so that reading, writing and timing go on while the
/// handler works. A panic in it is caught.
struct InFlight<D> {
    tx: Option<Sender>,
    /// The handler's `data` ([`call_data`]), in a box the connection keeps from message to
    /// message (set again in place: no allocation per message).
    data: DataSlot<D>,
    /// The handler's answer, once its future finished.
    done: Option<DataResult>,
}

/// Where a connection keeps the future of its messages' `data` calls.
type DataSlot<D> = Pin<Box<Option<D>>>;

/// Makes the future of a message's `data` call (the type of [`call_data`]'s future).
type MakeData<D> = fn(Arc<dyn Handler>, Box<Context>, Body, Option<tracing::Span>) -> D;

/// The handler's `data`, owning what it uses: the context goes in and comes back out.
async fn call_data(
    handler: Arc<dyn Handler>,
    mut hctx: Box<Context>,
    body: Body,
    span: Option<tracing::Span>,
) -> DataResult {
    let call = AssertUnwindSafe((*handler).data(&mut hctx, body)).catch_unwind();
    // A span per message only when it will be seen: entering one on every poll costs.
    let result = match span {
        Some(span) => call.instrument(span).await,
        None => call.await,
    };
    (hctx, result.ok())
}

impl<D: Future<Output = DataResult>> InFlight<D> {
    /// Polls the handler's future (not after it finished).
    fn poll_data(&mut self, cx: &mut TaskContext<'_>) -> Poll<DataResult> {
        match self.data.as_mut().as_pin_mut() {
            Some(data) => data.poll(cx),
            None => Poll::Pending,
        }
    }

    /// Polls the handler's future to its end (once): the context and the answer.
    async fn finish(&mut self) -> DataResult {
        match self.done.take() {
            Some(done) => done,
            None => std::future::poll_fn(|cx| self.poll_data(cx)).await,
        }
    }

    /// Hands `piece` to the handler, polling its future meanwhile (the channel is bounded:
    /// the handler must run to make room). A handler that returned gets nothing more.
    async fn send(&mut self, piece: Piece) {
        if self.tx.is_none() {
            return;
        }
        if self.done.is_some() {
            // The handler returned: whatever it kept of the body, it reads no more.
            self.tx = None;
            return;
        }
        // Queue the piece, polling the handler meanwhile (written by hand rather than with
        // `select!`: this future is part of every connection's state, and stays small).
        let mut piece = Some(piece);
        let finished = std::future::poll_fn(|cx| {
            if let Some(tx) = &self.tx
                && tx.poll_send(cx, &mut piece).is_ready()
            {
                return Poll::Ready(None);
            }
            self.poll_data(cx).map(Some)
        })
        .await;
        match finished {
            // The handler finished before taking this piece: the rest is not wanted.
            Some(out) => {
                self.done = Some(out);
                self.tx = None;
            }
            // Queued, or given back (the handler dropped its body).
            None if piece.is_some() => self.tx = None,
            None => {}
        }
    }
}

/// What the message's future hands back: the connection's context (it went with the handler
/// into the future) and the handler's answer, `None` if the handler panicked. The panic is
/// caught around the handler's call only, so the context always comes back.
type DataResult = (Box<Context>, Option<Result<(), Reply>>);

struct Conn<S, D> {
    stream: Stream<S>,
    session: Session,
    /// What the handler sees; it travels into the data task and back.
    /// (Boxed: it moves into the message's future and back, once per message.)
    hctx: Box<Context>,
    /// An empty context that stands in while `hctx` is with the message's handler.
    spare: Option<Box<Context>>,
    /// The handler's "drop this connection", readable while `hctx` is away.
    control: Control,
    ctx: ConnContext,
    message: Option<InFlight<D>>,
    /// The box of the last message's `data` future, for the next one.
    data_slot: Option<DataSlot<D>>,
    make_data: MakeData<D>,
    closed: Option<CloseReason>,
    shutdown_seen: bool,
    /// How much to ask for next: doubles while reads fill it (message content), halves
    /// while they do not (commands).
    read_size: usize,
    /// Log the session's transcript (debug level was on at connect).
    transcript: bool,
    /// The session's deadline timer, kept between reads, and when it is set to fire.
    timer: Pin<Box<tokio::time::Sleep>>,
    armed: Option<tokio::time::Instant>,
    /// The queue of message content to the handler, kept from message to message.
    pipe: Option<Arc<Pipe>>,
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

/// Counts a session's end in the metrics when dropped, with the reason set last.
struct CloseCount {
    metrics: Option<crate::metrics::Metrics>,
    reason: std::cell::Cell<&'static str>,
}

impl CloseCount {
    fn new(metrics: Option<crate::metrics::Metrics>) -> Self {
        Self {
            metrics,
            reason: std::cell::Cell::new("dropped"),
        }
    }

    fn set(&self, reason: &'static str) {
        self.reason.set(reason);
    }
}

impl Drop for CloseCount {
    fn drop(&mut self) {
        if let Some(m) = &self.metrics {
            m.connection_closed(self.reason.get());
        }
    }
}

/// A metrics label for how a session ended.
fn close_reason(reason: Option<&CloseReason>) -> &'static str {
    use CloseReason as R;
    match reason {
        Some(R::Quit) => "quit",
        Some(R::Eof) => "eof",
        Some(R::Timeout) => "timeout",
        Some(R::Shutdown) => "shutdown",
        Some(_) => "refused",
        None => "closed",
    }
}

/// Calls a handler hook: a panic is caught (and is `None`), the time it took counted.
async fn guarded<T>(
    ctx: &ConnContext,
    what: &'static str,
    fut: impl Future<Output = T>,
) -> Option<T> {
    let started = Instant::now();
    let result = guarded_untimed(what, fut).await;
    ctx.observe(|m| m.hook(what, started.elapsed()));
    result
}

/// Runs a handler call; a panic becomes `None` (and a log line) instead of unwinding.
async fn guarded_untimed<T>(what: &str, fut: impl Future<Output = T>) -> Option<T> {
    match AssertUnwindSafe(fut).catch_unwind().await {
        Ok(v) => Some(v),
        Err(_) => {
            warn!("handler panicked in {what}");
            None
        }
    }
}

impl<S, D> Conn<S, D>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    D: Future<Output = DataResult> + Send,
{
    /// The connection's life: the TLS handshake of an implicit-TLS listener, the session,
    /// then the end of a message in flight, the stream's shutdown and the handler's
    /// `disconnect`.
    async fn serve(&mut self) {
        info!("connected");
        self.ctx.observe(|m| m.connection_opened());
        // Counted closed however the session ends (this future may also be dropped).
        let closed = CloseCount::new(self.ctx.metrics.clone());
        if self.ctx.implicit_tls && Box::pin(self.implicit_tls()).await.is_err() {
            self.ctx.observe(|m| m.tls_failed());
            return closed.set("tls_failed");
        }
        match self.run().await {
            Ok(()) => {
                closed.set(close_reason(self.closed.as_ref()));
                info!(reason = ?self.closed, "closed");
            }
            Err(e) => {
                closed.set("error");
                info!("closed: {e}");
            }
        }
        // A message in flight ends as incomplete; its handler finishes before `disconnect`.
        if let Some(mut message) = self.message.take() {
            message.tx = None;
            self.hctx = message.finish().await.0;
            self.data_slot = Some(message.data);
        }
        // TLS writes its close_notify here: bounded like every other write.
        let grace = self.ctx.config.timeouts.command;
        let _ = tokio::time::timeout(grace, self.stream.shutdown()).await;
        let handler = Arc::clone(&self.ctx.handler);
        let _ = AssertUnwindSafe((*handler).disconnect(&mut self.hctx))
            .catch_unwind()
            .await;
    }

    /// The handshake of an implicit-TLS listener (RFC 8314), before the greeting. (Boxed by
    /// the caller: most connections never run it, and its state would make each larger.)
    async fn implicit_tls(&mut self) -> Result<(), ()> {
        let Some(acceptor) = self.ctx.tls.clone() else {
            warn!("implicit TLS listener without a TLS configuration");
            return Err(());
        };
        let Stream::Plain(io) = std::mem::replace(&mut self.stream, Stream::Upgrading) else {
            return Err(());
        };
        let deadline = Instant::now() + self.ctx.config.timeouts.command;
        match tokio::time::timeout_at(deadline.into(), acceptor.accept(io)).await {
            Ok(Ok(tls)) => {
                let tls_info = crate::tls::info(tls.get_ref().1, true);
                info!(protocol = %tls_info.protocol, cipher = %tls_info.cipher, "TLS");
                self.hctx.session_mut().tls = Some(tls_info);
                self.stream = Stream::Tls(Box::new(tls));
                Ok(())
            }
            Ok(Err(e)) => {
                info!("TLS handshake failed: {e}");
                Err(())
            }
            Err(_) => {
                info!("TLS handshake timed out");
                Err(())
            }
        }
    }

    /// The one drive loop: after every input and every decision, everything the session
    /// queued is handled in order (replies written under a deadline, events answered by the
    /// handler, content passed to the message's handler); then wait for input, the deadline
    /// or shutdown.
    async fn run(&mut self) -> io::Result<()> {
        loop {
            while let Some(out) = self.session.poll_output() {
                match out {
                    Output::Transmit(bytes) => {
                        write_out(&mut self.stream, bytes, &self.ctx.config).await?;
                    }
                    Output::Content(bytes) => self.content(bytes).await,
                    Output::Closed(reason) => self.closed = Some(reason),
                    Output::Event(event) => self.event(event).await?,
                }
                if self.control.is_set() {
                    return Err(aborted());
                }
            }
            if self.transcript {
                while let Some(line) = self.session.poll_transcript() {
                    debug!("C: {line}");
                }
            }
            if self.closed.is_some() {
                return Ok(());
            }
            self.read().await?;
            // The message's handler may have run (and asked to drop the connection) while
            // the loop waited.
            if self.control.is_set() {
                return Err(aborted());
            }
        }
    }

    /// Passes message content to the handler, with backpressure (the loop waits while the
    /// channel is full). A handler that stopped reading gets nothing more.
    async fn content(&mut self, bytes: Bytes) {
        if let Some(message) = &mut self.message {
            message.send(Ok(Some(bytes))).await;
        }
    }

    /// Answers one event. The events of each transaction are answered inline; the others
    /// (once per connection, or rare) in a boxed future of their own, so that their state
    /// does not make every connection's future larger.
    async fn event(&mut self, event: Event) -> io::Result<()> {
        match event {
            Event::Mail
            | Event::Rcpt
            | Event::MessageStart
            | Event::MessageEnd { .. }
            | Event::MessageAborted { .. }
            | Event::Reset => self.transaction_event(event).await,
            other => Box::pin(self.session_event(other)).await,
        }
    }

    /// MAIL, RCPT, the message, RSET.
    async fn transaction_event(&mut self, event: Event) -> io::Result<()> {
        // Called through `dyn Handler`: `Arc<dyn Handler>` is a handler too (forwarding to
        // `inner`), and calling through it would box every hook's future twice.
        let shared = Arc::clone(&self.ctx.handler);
        let handler: &dyn Handler = &*shared;
        match event {
            Event::Mail => {
                sync_envelope(&mut self.hctx, &self.session);
                let r = match self.session.pending_mail() {
                    Some((from, params)) => {
                        guarded(
                            &self.ctx,
                            "mail",
                            handler.mail(&mut self.hctx, from, params),
                        )
                        .await
                    }
                    None => None,
                };
                self.decide(r);
            }
            Event::Rcpt => {
                sync_envelope(&mut self.hctx, &self.session);
                let r = match self.session.pending_rcpt() {
                    Some((to, params)) => {
                        guarded(&self.ctx, "rcpt", handler.rcpt(&mut self.hctx, to, params)).await
                    }
                    None => None,
                };
                self.decide(r);
            }
            Event::MessageStart => self.start_message(),
            Event::MessageEnd { size } => self.end_message(size).await,
            Event::MessageAborted { error } => {
                let error = match error {
                    Some(smtp_proto::DataError::TooLarge) => BodyError::TooLarge,
                    Some(smtp_proto::DataError::BareLineEnding) => BodyError::BareLineEnding,
                    _ => BodyError::Incomplete,
                };
                if let Some(mut message) = self.message.take() {
                    message.send(Err(error)).await;
                    message.tx = None;
                    // The handler's answer does not count: the session answered already.
                    let (ctx, _) = message.finish().await;
                    self.data_slot = Some(message.data);
                    self.spare = Some(std::mem::replace(&mut self.hctx, ctx));
                    let queue_id = self.hctx.session_mut().queue_id.take();
                    info!(id = ?queue_id, "message not received to its end");
                }
            }
            Event::Reset => {
                sync_envelope(&mut self.hctx, &self.session);
                guarded(&self.ctx, "rset", handler.rset(&mut self.hctx)).await;
            }
            _ => {}
        }
        Ok(())
    }

    /// The greeting, HELO/EHLO, AUTH, VRFY, STARTTLS.
    async fn session_event(&mut self, event: Event) -> io::Result<()> {
        // Called through `dyn Handler`: `Arc<dyn Handler>` is a handler too (forwarding to
        // `inner`), and calling through it would box every hook's future twice.
        let shared = Arc::clone(&self.ctx.handler);
        let handler: &dyn Handler = &*shared;
        let now = Instant::now();
        match event {
            Event::Connect { proxy } => {
                self.hctx.session_mut().proxy = proxy;
                let r = guarded(&self.ctx, "connect", handler.connect(&mut self.hctx)).await;
                self.decide(r);
            }
            Event::Hello {
                name,
                mut capabilities,
                ..
            } => {
                sync_envelope(&mut self.hctx, &self.session);
                let r = guarded(
                    &self.ctx,
                    "hello",
                    handler.hello(&mut self.hctx, &name, &mut capabilities),
                )
                .await;
                if matches!(r, Some(Ok(()))) {
                    info!(name = %name, "hello");
                    let _ = self.session.set_capabilities(capabilities);
                    self.hctx.session_mut().helo = Some(name);
                }
                self.decide(r);
            }
            Event::Auth { credentials } => {
                let result = guarded(
                    &self.ctx,
                    "auth",
                    handler.auth(&mut self.hctx, &credentials),
                )
                .await;
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
                let decided = match result {
                    Some(Ok(identity)) => {
                        info!(user = %identity, "authenticated");
                        self.hctx.session_mut().auth = Some(identity.clone());
                        self.session.accept_auth(now, identity)
                    }
                    Some(Err(reply)) => {
                        self.ctx.observe(|m| m.auth_failed());
                        info!(code = reply.code(), "AUTH refused");
                        let delay = self.ctx.auth_failure_delay;
                        if !delay.is_zero() {
                            tokio::time::sleep(delay).await;
                        }
                        self.session.reply(Instant::now(), reply)
                    }
                    None => self.session.reply(now, Reply::LOCAL_ERROR),
                };
                debug_assert!(decided.is_ok(), "{decided:?}");
            }
            Event::Vrfy { arg } => {
                let reply = guarded(&self.ctx, "vrfy", handler.vrfy(&mut self.hctx, &arg)).await;
                let reply = match reply {
                    Some(Ok(r) | Err(r)) => r,
                    None => Reply::LOCAL_ERROR,
                };
                let _ = self.session.reply(now, reply);
            }
            Event::StartTls => self.starttls().await?,
            _ => {}
        }
        Ok(())
    }

    fn decide(&mut self, result: Option<Result<(), Reply>>) {
        let now = Instant::now();
        let decided = match result {
            Some(Ok(())) => self.session.accept(now),
            Some(Err(reply)) => self.session.reply(now, reply),
            None => self.session.reply(now, Reply::LOCAL_ERROR),
        };
        debug_assert!(decided.is_ok(), "{decided:?}");
    }

    /// The message phase starts: the handler's `data` runs in its own task and reads the
    /// content as the loop hands it over.
    fn start_message(&mut self) {
        let pipe = self.pipe.get_or_insert_with(|| Pipe::new(BODY_QUEUE));
        let (tx, rx) = Pipe::open(pipe);
        let body = Body::new(rx, self.ctx.config.limits.message_size);
        sync_envelope(&mut self.hctx, &self.session);
        let queue_id = crate::handler::queue_id();
        let span =
            tracing::enabled!(tracing::Level::INFO).then(|| info_span!("message", id = %queue_id));
        // The id travels with the context (the handler reads it there) and comes back with
        // it at the end, where the 250 is written in its buffer.
        self.hctx.session_mut().queue_id = Some(queue_id);
        // Per-recipient LMTP answers belong to one message.
        let _ = self.hctx.take_recipient_replies();
        let spare = self.spare.take().unwrap_or_default();
        let hctx = std::mem::replace(&mut self.hctx, spare);
        let call = (self.make_data)(Arc::clone(&self.ctx.handler), hctx, body, span);
        // The box of the last message's future is set again in place.
        let data = match self.data_slot.take() {
            Some(mut slot) => {
                slot.set(Some(call));
                slot
            }
            None => Box::pin(Some(call)),
        };
        self.message = Some(InFlight {
            tx: Some(tx),
            data,
            done: None,
        });
    }

    /// The whole message arrived: the end goes to the handler, and its answer to the client.
    async fn end_message(&mut self, size: u64) {
        let now = Instant::now();
        let Some(mut message) = self.message.take() else {
            let _ = self.session.reply(now, Reply::LOCAL_ERROR);
            return;
        };
        // The explicit end: without it the handler sees `Incomplete`.
        message.send(Ok(None)).await;
        message.tx = None;
        let ended = Instant::now();
        let (ctx, result) = message.finish().await;
        self.data_slot = Some(message.data);
        self.ctx.observe(|m| m.hook("data", ended.elapsed()));
        if result.is_none() {
            warn!("handler panicked in data");
        }
        self.spare = Some(std::mem::replace(&mut self.hctx, ctx));
        // The id belongs to this message only: the next transaction's hooks must not see it.
        let queue_id = self.hctx.session_mut().queue_id.take().unwrap_or_default();
        let per_recipient = self.hctx.take_recipient_replies();
        let now = Instant::now();
        let rcpts = self.session.envelope().recipients.len();
        let log = tracing::enabled!(tracing::Level::INFO);
        // What the log line names, taken before the reply ends the transaction.
        let logged = log.then(|| {
            let from = self.session.envelope().from.as_ref();
            (
                queue_id.clone(),
                from.map(ToString::to_string).unwrap_or_default(),
            )
        });
        let overall = match result {
            Some(Ok(())) => {
                // The 250 names the message, as Postfix's "queued as" does: the sender's log
                // can be matched to the stored copy (the same id is in our Received header).
                // Written in the id's own buffer, which has room for it.
                let mut text = queue_id;
                text.insert_str(0, crate::handler::QUEUED_AS);
                Reply::new(250, Some(smtp_proto::EnhancedStatus::new(2, 6, 0)), text)
            }
            Some(Err(reply)) => reply,
            None => Reply::LOCAL_ERROR,
        };
        let code = overall.code();
        let lmtp_codes: Vec<u16>;
        let codes: &[u16] = if self.ctx.config.protocol == Protocol::Lmtp {
            // RFC 2033 4.2: one reply per recipient: its own, or the message's.
            let replies: Vec<Reply> = (0..rcpts)
                .map(|i| {
                    per_recipient
                        .get(i)
                        .cloned()
                        .flatten()
                        .unwrap_or_else(|| overall.clone())
                })
                .collect();
            lmtp_codes = replies.iter().map(Reply::code).collect();
            let _ = self.session.reply_each(now, replies);
            &lmtp_codes
        } else {
            let _ = self.session.reply(now, overall);
            std::slice::from_ref(&code)
        };
        self.ctx.observe(|m| m.message(codes, size));
        if let Some((id, from)) = logged {
            info!(id = %id, from = %from, rcpts, size, reply = ?codes, "message");
        }
    }

    /// Reads more input into the session's buffer, or handles the deadline, end of input,
    /// or shutdown.
    async fn read(&mut self) -> io::Result<()> {
        let deadline = self
            .session
            .poll_timeout()
            .map(tokio::time::Instant::from_std);
        // The timer is set again only when the deadline comes earlier than it, or it has
        // fired: each command moves the deadline later, and a timer that fires early finds
        // the session's deadline not reached (handle_timeout does nothing) and is set again
        // then. So a busy session sets it about once per timeout, not once per read.
        if let Some(d) = deadline {
            let now = tokio::time::Instant::now();
            if self.armed.is_none_or(|a| d < a || a <= now) {
                self.timer.as_mut().reset(d);
                self.armed = Some(d);
            }
        }
        let timer = &mut self.timer;
        let sleep = async {
            match deadline {
                Some(_) => timer.await,
                None => std::future::pending().await,
            }
        };
        let shutdown_seen = self.shutdown_seen;
        let shutdown = &self.ctx.shutdown;
        let stop = async move {
            if shutdown_seen {
                std::future::pending::<()>().await;
            }
            shutdown.cancelled().await;
        };
        let read_size = self.read_size;
        // A plain TCP connection with nothing buffered waits for the socket to be readable
        // before it takes a read buffer (from a pool), and gives it back when nothing came:
        // an idle session holds no read buffer (C10k).
        let pooled = self.message.is_none() && self.session.buffered_input() == 0;
        let read = async {
            let room = self.session.input_capacity().min(read_size);
            if room == 0 {
                // The session takes nothing now (it cannot happen with decisions made in
                // turn, but a full buffer must never be read into): wait for the deadline.
                std::future::pending::<()>().await;
            }
            match tcp_of(&self.stream) {
                Some(tcp) if pooled => loop {
                    let buf = self.session.input_buffer();
                    if buf.capacity() != 0 {
                        buffers::give(std::mem::take(buf));
                    }
                    tcp.readable().await?;
                    let buf = self.session.input_buffer();
                    *buf = buffers::take();
                    buf.reserve(room);
                    match tcp.try_read_buf(&mut bytes::BufMut::limit(&mut *buf, room)) {
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        read => break read,
                    }
                },
                _ => {
                    let buf = self.session.input_buffer();
                    buf.reserve(room);
                    let mut limited = bytes::BufMut::limit(buf, room);
                    self.stream.read_buf(&mut limited).await
                }
            }
        };
        // While waiting, the message's handler runs (writing to disk, relaying, ...).
        let running = self.message.as_ref().is_some_and(|m| m.done.is_none());
        let data = async {
            if let Some(m) = &mut self.message {
                let out = std::future::poll_fn(|cx| m.poll_data(cx)).await;
                m.done = Some(out);
            }
        };
        tokio::select! {
            () = data, if running => {}
            read = read => match read {
                Ok(0) => self.session.handle_eof(Instant::now()),
                Ok(n) => {
                    self.read_size = if n >= self.read_size {
                        (self.read_size * 2).min(READ_SIZE)
                    } else {
                        (self.read_size / 2).max(MIN_READ)
                    };
                    self.session.handle_input(Instant::now());
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

    /// RFC 3207: the 220 went out; hand the stream to rustls. Plaintext the client pipelined
    /// after STARTTLS was already dropped by the session.
    async fn starttls(&mut self) -> io::Result<()> {
        let Some(acceptor) = self.ctx.tls.clone() else {
            self.session.handle_eof(Instant::now());
            return Ok(());
        };
        let Stream::Plain(io) = std::mem::replace(&mut self.stream, Stream::Upgrading) else {
            self.session.handle_eof(Instant::now());
            return Ok(());
        };
        let deadline = Instant::now() + self.ctx.config.timeouts.command;
        match tokio::time::timeout_at(deadline.into(), Box::pin(acceptor.accept(io))).await {
            Ok(Ok(tls)) => {
                let tls_info = crate::tls::info(tls.get_ref().1, false);
                info!(protocol = %tls_info.protocol, cipher = %tls_info.cipher, "STARTTLS");
                let session = self.hctx.session_mut();
                session.tls = Some(tls_info);
                session.helo = None;
                session.auth = None;
                self.stream = Stream::Tls(Box::new(tls));
                self.session.tls_established(Instant::now());
            }
            Ok(Err(e)) => {
                self.ctx.observe(|m| m.tls_failed());
                info!("TLS handshake failed: {e}");
                self.session.handle_eof(Instant::now());
            }
            Err(_) => {
                self.ctx.observe(|m| m.tls_failed());
                debug!("TLS handshake timed out");
                self.session.handle_eof(Instant::now());
            }
        }
        Ok(())
    }
}

/// Read buffers not in use, per thread: an idle connection holds none, a busy one takes one
/// and gives it back when a read finds nothing, without a trip to the allocator.
mod buffers {
    use std::cell::RefCell;

    use bytes::BytesMut;

    /// Buffers kept per thread; more are freed.
    const KEEP: usize = 16;

    thread_local! {
        static FREE: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
    }

    /// A buffer from the pool, or an empty one (it allocates when reserved).
    pub(super) fn take() -> BytesMut {
        FREE.with(|f| f.borrow_mut().pop()).unwrap_or_default()
    }

    /// Gives an empty buffer back. (One whose front went to a handler as message content
    /// still shares that allocation, and keeps it alive while pooled, which `KEEP` bounds.
    /// Its own bytes are past what was handed out: nothing a handler holds is overwritten.)
    pub(super) fn give(mut buf: BytesMut) {
        buf.clear();
        if !(super::MIN_READ..=super::READ_SIZE).contains(&buf.capacity()) {
            return;
        }
        FREE.with(|f| {
            let mut free = f.borrow_mut();
            if free.len() < KEEP {
                free.push(buf);
            }
        });
    }
}

/// The TCP socket under a plain stream, if it is one: its readiness can be awaited without a
/// buffer. (TLS keeps its own buffers and may hold input already read from the socket.)
fn tcp_of<S: 'static>(stream: &Stream<S>) -> Option<&tokio::net::TcpStream> {
    match stream {
        Stream::Plain(s) => (s as &dyn std::any::Any).downcast_ref(),
        _ => None,
    }
}

/// Brings the handler's view of the transaction up to the session's: the session's envelope
/// changes only by decisions, so only the new sender and recipients are copied.
fn sync_envelope(ctx: &mut Context, session: &Session) {
    let have = ctx.envelope_mut();
    let now = session.envelope();
    if !now.in_transaction() {
        if have.in_transaction() || !have.recipients.is_empty() {
            // Cleared, not replaced: the recipients' vector keeps its room for the next one.
            have.from = None;
            have.params = smtp_proto::MailParams::default();
            have.recipients.clear();
        }
        return;
    }
    if have.from != now.from {
        have.from.clone_from(&now.from);
        have.params = now.params.clone();
        have.recipients.clear();
    }
    if have.recipients.len() > now.recipients.len() {
        have.recipients.clear();
    }
    let known = have.recipients.len();
    have.recipients
        .extend(now.recipients[known..].iter().cloned());
}
