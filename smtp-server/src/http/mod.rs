//! The capture server's HTTP side (feature `http`): an API compatible with Mailpit's API v1
//! where they overlap, so that Mailpit's clients work unchanged; a wait endpoint, a live
//! event stream and run-time faults of our own; a web page; Prometheus metrics.
//!
//! | route | what |
//! | --- | --- |
//! | `GET /api/v1/messages?start=0&limit=50` | list, newest first (Mailpit's `MessagesSummary`) |
//! | `DELETE /api/v1/messages` | delete `{"IDs": [...]}`, or all without a body |
//! | `PUT /api/v1/messages` | set `{"Read": bool}` for `IDs`, a `Search`, or all |
//! | `GET /api/v1/message/{ID}` | one message (`ID` or `latest`), marked read |
//! | `GET /api/v1/message/{ID}/headers`, `/raw`, `/part/{PartID}` | its headers, source, a part |
//! | `GET /api/v1/search?query=...`, `DELETE /api/v1/search?query=...` | search, delete matches |
//! | `GET /api/v1/info`, `GET /api/v1/webui`, `GET/PUT /api/v1/chaos` | as Mailpit |
//! | `GET /livez`, `GET /readyz` | health |
//! | `GET /api/v1/wait?query=...&count=N&timeout=SECS` | blocks until N messages match; `408` with what did arrive |
//! | `GET /api/v1/events` | Server-Sent Events: `new` (a message summary), `delete`, `truncate` |
//! | `GET/PUT/DELETE /api/v1/faults` | the deterministic faults of [`Faults`] |
//! | `GET /` | the web page; `GET /view/{ID}.html` the message's HTML, sandboxed |
//! | `GET /metrics` | Prometheus text |
//!
//! A captured message is hostile input: its HTML is served only with `Content-Security-Policy:
//! sandbox` (no scripts, no same-origin) and shown by the page only in a sandboxed iframe;
//! raw sources and parts are served so that a browser never renders them as pages.

mod api;

use std::future::Future;
use std::sync::Arc;

use axum::Router;

pub use crate::Metrics;
use crate::faults::{FaultControl, FaultHandler};
use crate::handlers::capture::Capture;

/// What the HTTP server serves: a capture store (the API and the page), its faults (the
/// faults endpoints), metrics (`/metrics`). Any may be absent: without a capture store the
/// API answers `404`, with only metrics the server is a metrics endpoint.
#[derive(Clone, Default)]
pub struct HttpServer {
    capture: Option<Capture>,
    faults: Option<Arc<dyn FaultControl>>,
    metrics: Option<Metrics>,
}

impl std::fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpServer")
            .field("capture", &self.capture.is_some())
            .field("faults", &self.faults.is_some())
            .field("metrics", &self.metrics.is_some())
            .finish()
    }
}

impl HttpServer {
    /// Serves nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves this store (the API, the page, the wait and event endpoints).
    pub fn capture(mut self, capture: Capture) -> Self {
        self.capture = Some(capture);
        self
    }

    /// Serves this store with its faults: the store is the one `handler` wraps, and
    /// `/api/v1/faults` changes `handler`'s faults.
    pub fn capture_with_faults(mut self, handler: Arc<FaultHandler<Capture>>) -> Self {
        self.capture = Some(handler.wrapped().clone());
        self.faults = Some(handler);
        self
    }

    /// `/api/v1/faults` reads and replaces these faults (any [`FaultHandler`]).
    pub fn faults(mut self, faults: Arc<dyn FaultControl>) -> Self {
        self.faults = Some(faults);
        self
    }

    /// Serves these metrics at `/metrics`.
    pub fn metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The routes, to serve with your own server or to merge into your own router.
    pub fn router(self) -> Router {
        api::router(self)
    }

    /// Serves on `listener` until `shutdown` completes (open event streams end then too).
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let token = tokio_util::sync::CancellationToken::new();
        let router = api::router_with_shutdown(self, token.clone());
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                shutdown.await;
                token.cancel();
            })
            .await
    }

    /// Binds `addr` and serves in a task until the handle is dropped or shut down.
    pub async fn spawn(self, addr: &str) -> std::io::Result<HttpHandle> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let token = tokio_util::sync::CancellationToken::new();
        let stop = token.clone();
        let task = tokio::spawn(async move {
            let _ = self
                .serve(listener, async move { stop.cancelled().await })
                .await;
        });
        Ok(HttpHandle {
            local,
            token,
            task: Some(task),
        })
    }
}

/// A running HTTP server ([`HttpServer::spawn`]); stopped when dropped.
#[derive(Debug)]
pub struct HttpHandle {
    local: std::net::SocketAddr,
    token: tokio_util::sync::CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl HttpHandle {
    /// The address it listens on.
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.local
    }

    /// Its base URL, such as `http://127.0.0.1:8025`.
    pub fn url(&self) -> String {
        format!("http://{}", self.local)
    }

    /// Stops it and waits for open requests to end.
    pub async fn shutdown(mut self) {
        self.token.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for HttpHandle {
    fn drop(&mut self) {
        self.token.cancel();
    }
}
