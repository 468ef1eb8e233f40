//! Server metrics (feature `metrics`, on with `http`): counters and histograms the driver
//! updates, rendered as Prometheus/OpenMetrics text by `prometheus-client`.

#[cfg(feature = "metrics")]
pub use real::Metrics;

/// Without the feature: nothing to record, nothing made.
#[cfg(not(feature = "metrics"))]
#[derive(Debug, Clone)]
pub(crate) struct Metrics;

#[cfg(not(feature = "metrics"))]
impl Metrics {
    pub(crate) fn connection_opened(&self) {}
    pub(crate) fn connection_closed(&self, _: &str) {}
    pub(crate) fn tls_failed(&self) {}
    pub(crate) fn auth_failed(&self) {}
    pub(crate) fn message(&self, _: &[u16], _: u64) {}
    pub(crate) fn hook(&self, _: &'static str, _: std::time::Duration) {}
}

#[cfg(feature = "metrics")]
mod real {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use prometheus_client::encoding::EncodeLabelSet;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;
    use prometheus_client::metrics::histogram::Histogram;
    use prometheus_client::registry::Registry;

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct Reason {
        reason: String,
    }

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct Outcome {
        outcome: &'static str,
    }

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct Hook {
        hook: &'static str,
    }

    fn latency_histogram() -> Histogram {
        // 50 us to about 26 s.
        Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
            0.000_05, 2.0, 20,
        ))
    }

    /// The server's metrics: give a clone to [`ServerBuilder::metrics`](crate::ServerBuilder)
    /// and another to whatever serves them ([`HttpServer::metrics`](crate::http::HttpServer),
    /// or [`Metrics::render`] in your own endpoint). Cheap to clone; clones share the values.
    ///
    /// | metric | type | labels |
    /// | --- | --- | --- |
    /// | `smtp_connections_open` | gauge | |
    /// | `smtp_connections` | counter | |
    /// | `smtp_sessions` | counter | `reason`: how the session ended: `quit`, `eof`, `timeout`, `shutdown`, `refused` (a 421, bad PROXY header, too many errors), `error` (I/O), `tls_failed`, `dropped` (by the handler or the server) |
    /// | `smtp_messages` | counter | `outcome`: `accepted`, `refused_temporary` (4xx), `refused_permanent` (5xx) |
    /// | `smtp_received_bytes` | counter | |
    /// | `smtp_handler_seconds` | histogram | `hook`: `connect`, `hello`, `auth`, `mail`, `rcpt`, `data`, `vrfy`, `rset` |
    /// | `smtp_tls_handshake_failures` | counter | |
    /// | `smtp_auth_failures` | counter | |
    /// | `smtp_capture_dropped_messages` | counter | (the capture store's limits) |
    #[derive(Clone)]
    pub struct Metrics {
        inner: Arc<Inner>,
    }

    struct Inner {
        registry: Registry,
        open: Gauge,
        connections: Counter,
        sessions: Family<Reason, Counter>,
        messages: Family<Outcome, Counter>,
        bytes: Counter,
        hooks: Family<Hook, Histogram>,
        tls_failures: Counter,
        auth_failures: Counter,
        #[cfg_attr(not(feature = "http"), allow(dead_code))]
        capture_dropped: Counter,
        /// The capture store's drop count last seen (it counts by itself).
        #[cfg_attr(not(feature = "http"), allow(dead_code))]
        capture_seen: Mutex<u64>,
    }

    impl std::fmt::Debug for Metrics {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Metrics")
                .field("connections_open", &self.inner.open.get())
                .finish_non_exhaustive()
        }
    }

    impl Default for Metrics {
        fn default() -> Self {
            Self::new()
        }
    }

    impl Metrics {
        /// New metrics, all zero.
        pub fn new() -> Self {
            let mut registry = Registry::with_prefix("smtp");
            let open = Gauge::default();
            let connections = Counter::default();
            let sessions = Family::<Reason, Counter>::default();
            let messages = Family::<Outcome, Counter>::default();
            let bytes = Counter::default();
            let hooks = Family::<Hook, Histogram>::new_with_constructor(
                latency_histogram as fn() -> Histogram,
            );
            let tls_failures = Counter::default();
            let auth_failures = Counter::default();
            let capture_dropped = Counter::default();
            registry.register("connections_open", "Connections open now", open.clone());
            registry.register("connections", "Connections accepted", connections.clone());
            registry.register(
                "sessions",
                "Sessions ended, by how they ended",
                sessions.clone(),
            );
            registry.register(
                "messages",
                "Messages answered, by outcome (accepted, refused 4xx or 5xx)",
                messages.clone(),
            );
            registry.register("received_bytes", "Message bytes received", bytes.clone());
            registry.register(
                "handler_seconds",
                "Time the handler took to decide, per hook (data: from the end of the message)",
                hooks.clone(),
            );
            registry.register(
                "tls_handshake_failures",
                "TLS handshakes that failed or timed out",
                tls_failures.clone(),
            );
            registry.register(
                "auth_failures",
                "AUTH attempts refused",
                auth_failures.clone(),
            );
            registry.register(
                "capture_dropped_messages",
                "Captured messages dropped to stay within the store's limits",
                capture_dropped.clone(),
            );
            Self {
                inner: Arc::new(Inner {
                    registry,
                    open,
                    connections,
                    sessions,
                    messages,
                    bytes,
                    hooks,
                    tls_failures,
                    auth_failures,
                    capture_dropped,
                    capture_seen: Mutex::new(0),
                }),
            }
        }

        /// The metrics as OpenMetrics text (which Prometheus reads), ending in `# EOF`.
        pub fn render(&self) -> String {
            let mut out = String::new();
            let _ = prometheus_client::encoding::text::encode(&mut out, &self.inner.registry);
            out
        }

        /// The metrics in Prometheus's text format 0.0.4 (what `promtool check metrics` and
        /// scrapers that do not ask for OpenMetrics read): counters' HELP and TYPE name the
        /// `_total` series, no `# EOF`.
        pub fn render_prometheus(&self) -> String {
            let open = self.render();
            let mut counters = std::collections::HashSet::new();
            for line in open.lines() {
                if let Some(rest) = line.strip_prefix("# TYPE ")
                    && let Some(name) = rest.strip_suffix(" counter")
                {
                    counters.insert(name.to_string());
                }
            }
            let mut out = String::with_capacity(open.len());
            for line in open.lines() {
                if line == "# EOF" || line.starts_with("# UNIT ") {
                    continue;
                }
                let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
                    let rest = line.strip_prefix(prefix)?;
                    let (name, tail) = rest.split_once(' ')?;
                    counters
                        .contains(name)
                        .then(|| format!("{prefix}{name}_total {tail}"))
                });
                out.push_str(renamed.as_deref().unwrap_or(line));
                out.push('\n');
            }
            out
        }

        /// Brings the capture-drop counter up to `total` (the store's own count).
        #[cfg_attr(not(feature = "http"), allow(dead_code))]
        pub(crate) fn capture_dropped_total(&self, total: u64) {
            let mut seen = self
                .inner
                .capture_seen
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if total > *seen {
                self.inner.capture_dropped.inc_by(total - *seen);
                *seen = total;
            }
        }

        pub(crate) fn connection_opened(&self) {
            self.inner.open.inc();
            self.inner.connections.inc();
        }

        pub(crate) fn connection_closed(&self, reason: &str) {
            self.inner.open.dec();
            self.inner
                .sessions
                .get_or_create(&Reason {
                    reason: reason.to_string(),
                })
                .inc();
        }

        pub(crate) fn tls_failed(&self) {
            self.inner.tls_failures.inc();
        }

        pub(crate) fn auth_failed(&self) {
            self.inner.auth_failures.inc();
        }

        pub(crate) fn message(&self, codes: &[u16], size: u64) {
            for &code in codes {
                let outcome = match code {
                    200..=299 => "accepted",
                    400..=499 => "refused_temporary",
                    _ => "refused_permanent",
                };
                self.inner
                    .messages
                    .get_or_create(&Outcome { outcome })
                    .inc();
            }
            self.inner.bytes.inc_by(size);
        }

        pub(crate) fn hook(&self, hook: &'static str, took: Duration) {
            self.inner
                .hooks
                .get_or_create(&Hook { hook })
                .observe(took.as_secs_f64());
        }
    }
}
