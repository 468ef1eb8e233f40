//! `Server`: listeners, the accept loop, connection limits and graceful shutdown.

use std::net::SocketAddr;
#[cfg(unix)]
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use smtp_proto::{Config, Protocol, Reply};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::driver::{ConnContext, serve};
use crate::error::Error;
use crate::handler::{Handler, SessionInfo};

/// A listener's own changes to the session configuration.
type Configure = Arc<dyn Fn(&mut Config) + Send + Sync>;

enum Address {
    Tcp(String),
    #[cfg(unix)]
    Unix(PathBuf),
}

/// One listener and its own settings (Blackhole's per-listener "flags"): a name the handler
/// sees in [`SessionInfo::listener`], implicit TLS, changes to the session configuration, and
/// a handler of its own. Add it with [`ServerBuilder::listener`].
///
/// ```no_run
/// # async fn run() -> Result<(), smtp_server::Error> {
/// use smtp_server::{Blackhole, Listen, Server};
/// let server = Server::builder()
///     .handler(Blackhole::accept())
///     // 2525 takes everything; 2526 bounces everything, and may be 4 times bigger.
///     .listen("127.0.0.1:2525")
///     .listener(
///         Listen::tcp("127.0.0.1:2526")
///             .name("bounce")
///             .configure(|c| c.limits.message_size *= 4)
///             .handler(Blackhole::bounce()),
///     )
///     .bind()
///     .await?;
/// # Ok(()) }
/// ```
pub struct Listen {
    address: Address,
    name: Option<String>,
    implicit_tls: bool,
    configure: Option<Configure>,
    handler: Option<Arc<dyn Handler>>,
}

impl std::fmt::Debug for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listen")
            .field("address", &self.address_text())
            .field("name", &self.name)
            .field("implicit_tls", &self.implicit_tls)
            .field("own_handler", &self.handler.is_some())
            .finish_non_exhaustive()
    }
}

impl Listen {
    /// A TCP listener (`"127.0.0.1:2525"`, `"[::1]:0"`; port 0 picks a free port).
    pub fn tcp(addr: impl Into<String>) -> Self {
        Self::new(Address::Tcp(addr.into()))
    }

    /// A Unix socket listener (an existing socket file is replaced).
    #[cfg(unix)]
    pub fn unix(path: impl Into<PathBuf>) -> Self {
        Self::new(Address::Unix(path.into()))
    }

    fn address_text(&self) -> String {
        match &self.address {
            Address::Tcp(a) => a.clone(),
            #[cfg(unix)]
            Address::Unix(p) => p.display().to_string(),
        }
    }

    fn new(address: Address) -> Self {
        Self {
            address,
            name: None,
            implicit_tls: false,
            configure: None,
            handler: None,
        }
    }

    /// The name handlers see in [`SessionInfo::listener`] (by default, the bound address).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// TLS from the first byte ("port 465", RFC 8314); needs [`ServerBuilder::tls`].
    pub fn implicit_tls(mut self, on: bool) -> Self {
        self.implicit_tls = on;
        self
    }

    /// Changes this listener's session configuration, after the builder's own settings: for
    /// example `|c| { c.auth.required = true; c.tls.required = true; }` on a submission port.
    /// Called again at each call; the last one wins.
    pub fn configure(mut self, f: impl Fn(&mut Config) + Send + Sync + 'static) -> Self {
        self.configure = Some(Arc::new(f));
        self
    }

    /// A handler for this listener's sessions instead of the builder's (an `Arc` of a
    /// handler is a handler: share one between listeners by cloning the `Arc`).
    pub fn handler(mut self, handler: impl Handler) -> Self {
        self.handler = Some(Arc::new(handler));
        self
    }
}

enum Bound {
    Tcp(TcpListener),
    #[cfg(unix)]
    Unix(tokio::net::UnixListener),
}

struct Listener {
    bound: Bound,
    name: String,
    config: Arc<Config>,
    implicit_tls: bool,
    handler: Arc<dyn Handler>,
}

/// Builds a [`Server`]: hostname, listeners, TLS, AUTH policy, limits, timeouts, handler.
///
/// ```no_run
/// # async fn run() -> Result<(), smtp_server::Error> {
/// use smtp_server::{Server, Sink};
/// let server = Server::builder()
///     .hostname("mx.example.com")
///     .listen("127.0.0.1:2525")
///     .max_connections(1000)
///     .configure(|c| c.limits.message_size = 20 << 20)
///     .handler(Sink)
///     .bind()
///     .await?;
/// server.serve().await
/// # }
/// ```
pub struct ServerBuilder {
    config: Config,
    listeners: Vec<Listen>,
    tls: Option<Arc<ServerConfig>>,
    handler: Option<Arc<dyn Handler>>,
    max_connections: Option<usize>,
    grace: Duration,
    auth_failure_delay: Duration,
    metrics: Option<crate::metrics::Metrics>,
}

impl ServerBuilder {
    fn new() -> Self {
        Self {
            config: Config::new(default_hostname()),
            listeners: Vec::new(),
            tls: None,
            handler: None,
            max_connections: None,
            grace: Duration::from_secs(30),
            auth_failure_delay: Duration::ZERO,
            metrics: None,
        }
    }

    /// The name in the greeting and the EHLO reply (by default, this machine's host name,
    /// as aiosmtpd and Postfix use).
    pub fn hostname(mut self, name: impl Into<String>) -> Self {
        self.config.hostname = name.into();
        self
    }

    /// Adds a TCP listener (`"127.0.0.1:2525"`, `"[::1]:0"`; port 0 picks a free port).
    pub fn listen(self, addr: impl Into<String>) -> Self {
        self.listener(Listen::tcp(addr))
    }

    /// Adds a listener with its own settings and, if it has one, its own handler.
    pub fn listener(mut self, listen: Listen) -> Self {
        self.listeners.push(listen);
        self
    }

    /// TLS: offers STARTTLS on plain listeners and serves implicit-TLS listeners. See
    /// [`load_pem_files`](crate::load_pem_files) for a configuration from PEM files.
    pub fn tls(mut self, config: Arc<ServerConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Refuses everything but EHLO, NOOP, RSET, QUIT and STARTTLS until TLS is active.
    pub fn require_tls(mut self, required: bool) -> Self {
        self.config.tls.required = required;
        self
    }

    /// Offers AUTH with these mechanisms (`PLAIN`, `LOGIN`, or custom ones added with
    /// [`ServerBuilder::configure`]); the handler's [`Handler::auth`] checks credentials.
    pub fn auth_mechanisms<I, M>(mut self, mechanisms: I) -> Self
    where
        I: IntoIterator<Item = M>,
        M: Into<String>,
    {
        self.config.auth.mechanisms = mechanisms.into_iter().map(Into::into).collect();
        self
    }

    /// Requires AUTH before MAIL.
    pub fn auth_required(mut self, required: bool) -> Self {
        self.config.auth.required = required;
        self
    }

    /// Counts connections, sessions, messages, handler latency, TLS and AUTH failures into
    /// `metrics` (feature `metrics`); serve them with [`Metrics::render`](crate::Metrics) or
    /// the `http` feature's `/metrics`.
    #[cfg(feature = "metrics")]
    pub fn metrics(mut self, metrics: crate::Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Waits this long before answering a refused AUTH, to slow down password guessing (the
    /// session still closes after `limits.auth_failures` failures).
    pub fn auth_failure_delay(mut self, delay: Duration) -> Self {
        self.auth_failure_delay = delay;
        self
    }

    /// Offers AUTH over connections without TLS.
    pub fn allow_insecure_auth(mut self, allow: bool) -> Self {
        self.config.auth.allow_insecure = allow;
        self
    }

    /// LMTP instead of SMTP (RFC 2033).
    pub fn lmtp(mut self, on: bool) -> Self {
        self.config.protocol = if on { Protocol::Lmtp } else { Protocol::Smtp };
        self
    }

    /// Expects a PROXY protocol v1 or v2 header on every connection.
    pub fn proxy_protocol(mut self, on: bool) -> Self {
        self.config.proxy_protocol = on;
        self
    }

    /// Changes any other part of the session configuration: limits, timeouts, extensions.
    pub fn configure(mut self, f: impl FnOnce(&mut Config)) -> Self {
        f(&mut self.config);
        self
    }

    /// At most this many connections at once; the next one gets `421 4.7.0` and is closed.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = Some(n);
        self
    }

    /// How long a shutdown waits for messages in flight before closing connections.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// The handler that makes the decisions.
    pub fn handler(mut self, handler: impl Handler) -> Self {
        self.handler = Some(Arc::new(handler));
        self
    }

    /// Serves one connection that is already open (an in-memory `tokio::io::duplex`, a socket
    /// accepted elsewhere) with this builder's settings, TLS and handler, without binding any
    /// listener; listeners added to the builder are ignored. For tests:
    /// `smtp_testkit::Client::in_memory_with(builder)` runs on this.
    pub async fn serve_stream<S>(self, io: S, peer: Option<SocketAddr>) -> Result<(), Error>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let handler = self.handler.ok_or(Error::NoHandler)?;
        let mut config = self.config;
        config.tls.available = self.tls.is_some();
        if config.limits.message_size == 0 {
            return Err(Error::Config(
                "the message size limit must be at least 1 byte".into(),
            ));
        }
        let ctx = ConnContext {
            config: Arc::new(config),
            handler,
            tls: self.tls.map(TlsAcceptor::from),
            implicit_tls: false,
            shutdown: CancellationToken::new(),
            auth_failure_delay: self.auth_failure_delay,
            metrics: self.metrics.clone(),
        };
        let info = SessionInfo {
            listener: "stream".into(),
            peer,
            ..SessionInfo::default()
        };
        serve(io, ctx, info).await;
        Ok(())
    }

    /// Binds every listener.
    pub async fn bind(self) -> Result<Server, Error> {
        if self.listeners.is_empty() {
            return Err(Error::NoListener);
        }
        let mut base = self.config;
        base.tls.available = self.tls.is_some();
        let mut listeners = Vec::new();
        for spec in self.listeners {
            let handler = spec
                .handler
                .clone()
                .or_else(|| self.handler.clone())
                .ok_or(Error::NoHandler)?;
            let mut config = base.clone();
            if let Some(f) = &spec.configure {
                f(&mut config);
            }
            if config.limits.message_size == 0 {
                // RFC 1870 4 reads "SIZE 0" as "no fixed maximum": announcing it while
                // refusing every message would be a lie, and an unlimited size is not offered.
                return Err(Error::Config(format!(
                    "{}: the message size limit must be at least 1 byte",
                    spec.address_text()
                )));
            }
            if self.tls.is_none() && (spec.implicit_tls || config.tls.required) {
                return Err(Error::Tls(format!(
                    "{}: TLS is required but no TLS configuration was given",
                    spec.address_text()
                )));
            }
            let (bound, default_name) = match spec.address {
                Address::Tcp(addr) => {
                    let l = bind_tcp(&addr).await.map_err(|source| Error::Bind {
                        address: addr.clone(),
                        source,
                    })?;
                    let name = l.local_addr().map_or(addr, |a| a.to_string());
                    (Bound::Tcp(l), name)
                }
                #[cfg(unix)]
                Address::Unix(path) => {
                    let _ = std::fs::remove_file(&path);
                    let name = path.display().to_string();
                    let l =
                        tokio::net::UnixListener::bind(&path).map_err(|source| Error::Bind {
                            address: name.clone(),
                            source,
                        })?;
                    (Bound::Unix(l), name)
                }
            };
            if spec.implicit_tls {
                config.tls.available = false;
            }
            listeners.push(Listener {
                name: spec.name.unwrap_or(default_name),
                bound,
                config: Arc::new(config),
                implicit_tls: spec.implicit_tls,
                handler,
            });
        }
        Ok(Server {
            listeners,
            connections: TaskTracker::new(),
            tls: self.tls.map(TlsAcceptor::from),
            max_connections: self.max_connections,
            grace: self.grace,
            auth_failure_delay: self.auth_failure_delay,
            metrics: self.metrics,
        })
    }
}

/// A bound SMTP/LMTP server. Run it with [`Server::serve`], or in the background with
/// [`Server::spawn`].
pub struct Server {
    listeners: Vec<Listener>,
    /// Every connection's task (its length is the number of open connections).
    connections: TaskTracker,
    tls: Option<TlsAcceptor>,
    max_connections: Option<usize>,
    grace: Duration,
    auth_failure_delay: Duration,
    metrics: Option<crate::metrics::Metrics>,
}

impl Server {
    /// Starts building a server.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::new()
    }

    /// The address of the first TCP listener (with the port chosen for port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addrs().into_iter().next()
    }

    /// The addresses of every TCP listener.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| match &l.bound {
                Bound::Tcp(t) => t.local_addr().ok(),
                #[cfg(unix)]
                Bound::Unix(_) => None,
            })
            .collect()
    }

    /// The paths of every Unix socket listener.
    pub fn unix_paths(&self) -> Vec<PathBuf> {
        self.listeners
            .iter()
            .filter_map(|l| match &l.bound {
                Bound::Tcp(_) => None,
                #[cfg(unix)]
                Bound::Unix(u) => u
                    .local_addr()
                    .ok()
                    .and_then(|a| a.as_pathname().map(Path::to_path_buf)),
            })
            .collect()
    }

    /// Serves until the process ends.
    pub async fn serve(self) -> Result<(), Error> {
        self.serve_with_shutdown(std::future::pending()).await
    }

    /// Serves until `signal` completes, then shuts down gracefully: stops accepting, answers
    /// `421 4.3.2` to idle sessions, lets messages in flight finish within the grace period,
    /// then closes what is left. Returns when every connection is gone.
    pub async fn serve_with_shutdown(self, signal: impl Future<Output = ()>) -> Result<(), Error> {
        // `stop`: stop accepting, and ask each session to end politely. `kill`: the grace
        // period is over, drop what is left.
        let stop = CancellationToken::new();
        let kill = CancellationToken::new();
        // If this future is dropped (not shut down), its connections end with it.
        let _kill_on_drop = kill.clone().drop_guard();
        let limit = self.max_connections.map(|n| Arc::new(Semaphore::new(n)));
        let ids = Arc::new(AtomicU64::new(1));
        let mut accepting = JoinSet::new();
        let connections = self.connections;
        for listener in self.listeners {
            let ctx = ConnContext {
                config: Arc::clone(&listener.config),
                handler: Arc::clone(&listener.handler),
                tls: self.tls.clone(),
                implicit_tls: listener.implicit_tls,
                shutdown: stop.clone(),
                auth_failure_delay: self.auth_failure_delay,
                metrics: self.metrics.clone(),
            };
            let accept = AcceptLoop {
                listener,
                ctx,
                limit: limit.clone(),
                ids: Arc::clone(&ids),
                connections: connections.clone(),
                kill: kill.clone(),
            };
            let stop = stop.clone();
            accepting.spawn(async move {
                tokio::select! {
                    () = accept.run() => {}
                    () = stop.cancelled() => {}
                }
            });
        }
        signal.await;
        info!("shutting down");
        stop.cancel();
        accepting.shutdown().await;
        connections.close();
        if tokio::time::timeout(self.grace, connections.wait())
            .await
            .is_err()
        {
            warn!(
                left = connections.len(),
                "grace period over, closing connections"
            );
            kill.cancel();
            connections.wait().await;
        }
        Ok(())
    }

    /// Serves in a background task; the handle gives the addresses and shuts it down.
    ///
    /// Keep the handle: dropping it shuts the server down (`let _ = server.spawn();` stops it
    /// at once).
    #[must_use = "dropping the handle shuts the server down; keep it for as long as the server should run"]
    pub fn spawn(self) -> ServerHandle {
        let addrs = self.local_addrs();
        let connections = self.connections.clone();
        let stop = CancellationToken::new();
        let signal = stop.clone();
        let task = tokio::spawn(self.serve_with_shutdown(async move {
            signal.cancelled().await;
        }));
        ServerHandle {
            addrs,
            connections,
            stop,
            task: Some(task),
        }
    }
}

struct AcceptLoop {
    listener: Listener,
    ctx: ConnContext,
    limit: Option<Arc<Semaphore>>,
    ids: Arc<AtomicU64>,
    connections: TaskTracker,
    /// Cancelled when the grace period is over: every connection task ends at once.
    kill: CancellationToken,
}

impl AcceptLoop {
    async fn run(self) {
        loop {
            match &self.listener.bound {
                Bound::Tcp(l) => match l.accept().await {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        let local = stream.local_addr().ok();
                        self.start(stream, Some(peer), local);
                    }
                    Err(e) => accept_error(e).await,
                },
                #[cfg(unix)]
                Bound::Unix(l) => match l.accept().await {
                    Ok((stream, _)) => self.start(stream, None, None),
                    Err(e) => accept_error(e).await,
                },
            }
        }
    }

    fn start<S>(&self, stream: S, peer: Option<SocketAddr>, local: Option<SocketAddr>)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let kill = self.kill.clone();
        let permit = match &self.limit {
            None => None,
            Some(limit) => match Arc::clone(limit).try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    self.connections.spawn(async move {
                        tokio::select! {
                            () = refuse(stream) => {}
                            () = kill.cancelled() => {}
                        }
                    });
                    return;
                }
            },
        };
        let info = SessionInfo {
            id: self.ids.fetch_add(1, Ordering::Relaxed),
            listener: self.listener.name.clone(),
            peer,
            local,
            ..SessionInfo::default()
        };
        let ctx = self.ctx.clone();
        // The connection's future is large (the whole session and its handler calls): boxed,
        // it is built in place once instead of being copied into the task.
        let conn = Box::pin(serve(stream, ctx, info));
        self.connections.spawn(async move {
            tokio::select! {
                () = conn => {}
                () = kill.cancelled() => {}
            }
            drop(permit);
        });
    }
}

/// Serves one already-connected stream (an in-memory `tokio::io::duplex`, a socket accepted
/// elsewhere) with this configuration and handler, until the session ends. No TLS; `peer` is
/// what the handler sees as the client's address.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// let (client, server) = tokio::io::duplex(4096);
/// let config = smtp_server::smtp_proto::Config::new("mem.example");
/// tokio::spawn(smtp_server::serve_stream(server, config, smtp_server::Sink, None));
/// let (mut r, mut w) = tokio::io::split(client);
/// w.write_all(b"QUIT\r\n").await.unwrap();
/// let mut out = String::new();
/// r.read_to_string(&mut out).await.unwrap();
/// assert_eq!(out, "220 mem.example ESMTP ready\r\n221 2.0.0 Bye\r\n");
/// # }
/// ```
///
/// # Errors
/// [`Error::Config`] for a configuration that cannot work (a message size limit of 0), as
/// [`ServerBuilder::bind`] would.
pub async fn serve_stream<S>(
    io: S,
    config: Config,
    handler: impl Handler,
    peer: Option<SocketAddr>,
) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    serve_stream_shared(io, Arc::new(config), Arc::new(handler), peer).await
}

async fn serve_stream_shared<S>(
    io: S,
    config: Arc<Config>,
    handler: Arc<dyn Handler>,
    peer: Option<SocketAddr>,
) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    if config.limits.message_size == 0 {
        return Err(Error::Config(
            "the message size limit must be at least 1 byte".into(),
        ));
    }
    let shutdown = CancellationToken::new();
    let ctx = ConnContext {
        config,
        handler,
        tls: None,
        implicit_tls: false,
        shutdown,
        auth_failure_delay: Duration::ZERO,
        metrics: None,
    };
    let info = SessionInfo {
        listener: "stream".into(),
        peer,
        ..SessionInfo::default()
    };
    serve(io, ctx, info).await;
    Ok(())
}

/// Binds a TCP listener with a deep accept queue: a burst of thousands of connections must wait
/// in the kernel's queue, not be dropped (tokio's default backlog overflowed at a few hundred
/// simultaneous connects in our tests). The kernel caps it at `net.core.somaxconn`.
async fn bind_tcp(addr: &str) -> std::io::Result<TcpListener> {
    let mut last = None;
    for a in tokio::net::lookup_host(addr).await? {
        let socket = if a.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        match socket.bind(a).and_then(|()| socket.listen(65_535)) {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other(format!("{addr}: no address"))))
}

/// Over the connection limit: `421 4.7.0` and close.
async fn refuse<S: AsyncWrite + Unpin>(mut stream: S) {
    let mut out = Vec::new();
    Reply::TOO_MANY_CONNECTIONS.write_to(&mut out);
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = stream.write_all(&out).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

async fn accept_error(e: std::io::Error) {
    // Out of file descriptors and the like: wait a little rather than spin.
    debug!("accept failed: {e}");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// A server running in the background. Dropping the handle shuts the server down too.
#[must_use = "dropping the handle shuts the server down"]
pub struct ServerHandle {
    addrs: Vec<SocketAddr>,
    connections: TaskTracker,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<Result<(), Error>>>,
}

impl ServerHandle {
    /// The first TCP listener's address (`None` when the server has only Unix listeners).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.addrs.first().copied()
    }

    /// Every TCP listener's address.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Connections accepted and not yet closed, counted by the server itself: TLS handshakes
    /// in progress and connections refused at the limit included.
    pub fn open_connections(&self) -> usize {
        self.connections.len()
    }

    /// Shuts down gracefully and waits until every connection is gone.
    pub async fn shutdown(mut self) -> Result<(), Error> {
        self.stop.cancel();
        match self.task.take() {
            Some(task) => task
                .await
                .map_err(|e| Error::Io(std::io::Error::other(e)))?,
            None => Ok(()),
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// This machine's host name (as `gethostname(2)` gives it), or `localhost` if it has none
/// that can be used in a greeting.
#[must_use]
pub fn default_hostname() -> String {
    let name = gethostname::gethostname();
    match name.to_str() {
        Some(n)
            if !n.is_empty()
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.') =>
        {
            n.to_string()
        }
        _ => "localhost".to_string(),
    }
}
