//! [`JetStream`]: each accepted message published to a NATS JetStream stream; the client's
//! `250` waits for the stream's acknowledgement (feature `jetstream`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, object_store, stream};
use async_nats::{ConnectOptions, HeaderMap, HeaderValue, Subject};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use smtp_proto::{EnhancedStatus, Envelope, MailParams, Reply, ReversePath};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::trace::{received_header, with_protocol};
use crate::body::Body;
use crate::handler::{Context, Handler, SessionInfo};

/// The names of the NATS headers that carry the envelope and the session, one constant each,
/// for consumers to read them by name. Every value is UTF-8 text on one line.
pub mod headers {
    /// The stream's deduplication id (JetStream's own header): a digest of the `Message-ID`
    /// header and the envelope when the message has one, else [`ID`]'s value.
    pub const MSG_ID: &str = "Nats-Msg-Id";
    /// Our id for the message: the one in the `250` reply and the `Received` header.
    pub const ID: &str = "SMTP-Id";
    /// The reverse path as the client gave it, in angle brackets (`<>` for the null sender).
    pub const MAIL_FROM: &str = "SMTP-Mail-From";
    /// MAIL's parameters in their wire form (`BODY=8BITMIME RET=HDRS ENVID=...`), if any.
    pub const MAIL_PARAMS: &str = "SMTP-Mail-Params";
    /// One value per accepted recipient, in order: the path in angle brackets, then RCPT's
    /// parameters in their wire form (`<bob@example.net> NOTIFY=FAILURE ORCPT=rfc822;bob@...`).
    pub const RCPT_TO: &str = "SMTP-Rcpt-To";
    /// The client's address, `IP:PORT` (the PROXY protocol's source when there is one).
    pub const CLIENT: &str = "SMTP-Client";
    /// The name the client gave in HELO, EHLO or LHLO.
    pub const HELO: &str = "SMTP-Helo";
    /// The protocol, as in the `Received` header (`ESMTPSA`, `LMTP`, `UTF8SMTPS`, ...).
    pub const PROTOCOL: &str = "SMTP-Protocol";
    /// The TLS version and cipher suite, when the session was encrypted.
    pub const TLS: &str = "SMTP-Tls";
    /// The authenticated identity, after AUTH.
    pub const AUTH: &str = "SMTP-Auth";
    /// The listener's name.
    pub const LISTENER: &str = "SMTP-Listener";
    /// When the message's content ended, RFC 3339 in UTC with milliseconds.
    pub const RECEIVED_AT: &str = "SMTP-Received-At";
    /// The message's size in octets, trace header included (also for a claim check).
    pub const SIZE: &str = "SMTP-Size";
    /// A claim check: the message is in this Object Store, `BUCKET/NAME`, and the NATS
    /// message's payload is empty.
    pub const OBJECT: &str = "SMTP-Object";
}

/// How long one acknowledgement may take, by default.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Messages being published at once, by default.
const DEFAULT_IN_FLIGHT: usize = 128;
/// Room kept under the server's `max_payload` for the session's headers and their framing.
const HEADER_ROOM: usize = 4096;

/// `451 4.4.1`: the stream did not acknowledge (NATS down, slow, or unreachable).
const NO_ACK: Reply = Reply::const_new(
    451,
    Some(EnhancedStatus::new(4, 4, 1)),
    "Message store did not acknowledge, try again later",
);
/// `451 4.4.1` at MAIL: the NATS connection is down, so nothing can be stored.
const STORE_DOWN: Reply = Reply::const_new(
    451,
    Some(EnhancedStatus::new(4, 4, 1)),
    "Message store unreachable, try again later",
);
/// `451 4.4.5`: as many messages as allowed are being published.
const CONGESTED: Reply = Reply::const_new(
    451,
    Some(EnhancedStatus::new(4, 4, 5)),
    "System congestion, try again later",
);
/// `452 4.3.1`: the stream is full (its `max_msgs`, `max_bytes` or the account's storage).
const STORE_FULL: Reply = Reply::const_new(
    452,
    Some(EnhancedStatus::new(4, 3, 1)),
    "Insufficient system storage",
);
/// `451 4.3.0`: the stream refused the message for another reason.
const STORE_ERROR: Reply = Reply::const_new(
    451,
    Some(EnhancedStatus::new(4, 3, 0)),
    "Requested action aborted: error in message store",
);
/// `552 5.3.4`: larger than NATS takes, and no Object Store to hold it.
const TOO_BIG: Reply = Reply::const_new(
    552,
    Some(EnhancedStatus::new(5, 3, 4)),
    "Message too big for system",
);

/// Publishes each message to a NATS JetStream stream, and answers the client `250` only after
/// the stream acknowledged it: `250` means the message is in the stream (replicated, if the
/// stream is). The payload is the message exactly as the client sent it (after dot-unstuffing)
/// behind our `Received` header; the envelope and the session are in NATS headers (see
/// [`headers`]).
///
/// - **Failures are temporary.** No acknowledgement within the timeout (5 s by default), NATS
///   unreachable: `451 4.4.1`; the stream full: `452 4.3.1`. While the connection to NATS is
///   down, MAIL is answered `451 4.4.1`, so clients do not send content for nothing. The
///   client reconnects by itself.
/// - **Bounded.** At most [`JetStreamBuilder::max_in_flight`] messages are held and published
///   at once (128 by default); beyond, `451 4.4.5`. Memory is at most that many times the
///   server's `max_payload`.
/// - **Deduplicated.** `Nats-Msg-Id` is a digest of the `Message-ID` header and the envelope:
///   a client that retries a message whose `250` it never saw (the stream had it, the
///   acknowledgement was lost) makes no second copy within the stream's duplicate window.
///   A message without `Message-ID` gets our unique id.
/// - **Large messages** (over the server's `max_payload`, 1 MB by default) go to an Object
///   Store (a claim check): the body is streamed there in chunks, never whole in memory, and
///   a NATS message with empty payload and the [`headers::OBJECT`] header is published to the
///   stream. Both are acknowledged before the `250`. Without an Object Store they are refused
///   `552 5.3.4`.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use smtp_server::{JetStream, Server};
///
/// let js = JetStream::builder("nats://127.0.0.1:4222")
///     .stream("MAIL")
///     .subject("mail.in")
///     .create(true)
///     .connect()
///     .await?;
/// Server::builder().listen("127.0.0.1:2525").handler(js).bind().await?.serve().await?;
/// # Ok(()) }
/// ```
pub struct JetStream {
    js: jetstream::Context,
    client: async_nats::Client,
    subject: Subject,
    objects: Option<(String, object_store::ObjectStore)>,
    in_flight: Semaphore,
    timeout: Duration,
    hostname: String,
    /// The server's `max_payload`, read at connect (asking the client copies its whole
    /// `ServerInfo`).
    max_payload: AtomicUsize,
}

impl std::fmt::Debug for JetStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JetStream")
            .field("subject", &self.subject)
            .field("object_store", &self.objects.as_ref().map(|(b, _)| b))
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Settings for [`JetStream`]; [`JetStreamBuilder::connect`] connects and checks them.
#[derive(Debug)]
pub struct JetStreamBuilder {
    servers: String,
    options: Option<ConnectOptions>,
    stream: String,
    subject: String,
    bucket: Option<String>,
    create: bool,
    replicas: usize,
    timeout: Duration,
    max_in_flight: usize,
    hostname: String,
}

/// Why [`JetStreamBuilder::connect`] failed; each reads as one line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JetStreamError {
    /// NATS could not be reached.
    #[error("cannot connect to NATS at {servers}: {reason}")]
    Connect {
        /// The server URLs.
        servers: String,
        /// What the client said.
        reason: String,
    },
    /// The stream does not exist, or does not take the subject.
    #[error(
        "JetStream stream {stream:?} does not exist or does not take subject {subject:?} \
         (create it, or ask for it to be created: --jetstream-create)"
    )]
    NoStream {
        /// The stream's name.
        stream: String,
        /// The subject published to.
        subject: String,
    },
    /// Creating or reading the stream or the Object Store failed.
    #[error("JetStream: {0}")]
    Setup(String),
}

impl JetStream {
    /// Settings for a connection to `servers` (one NATS URL, or several separated by commas).
    /// By default: stream `MAIL`, subject `mail.in`, the stream must exist, no Object Store,
    /// a 5 s acknowledgement timeout, 128 messages in flight.
    pub fn builder(servers: impl Into<String>) -> JetStreamBuilder {
        JetStreamBuilder {
            servers: servers.into(),
            options: None,
            stream: "MAIL".into(),
            subject: "mail.in".into(),
            bucket: None,
            create: false,
            replicas: 1,
            timeout: DEFAULT_TIMEOUT,
            max_in_flight: DEFAULT_IN_FLIGHT,
            hostname: crate::server::default_hostname(),
        }
    }

    /// The largest NATS message the server takes (its `max_payload`).
    fn max_payload(&self) -> usize {
        self.max_payload.load(Ordering::Relaxed)
    }

    /// The NATS client, for a health check or to read the stream.
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// Publishes and waits for the acknowledgement, retrying (with the same `Nats-Msg-Id`,
    /// which the stream deduplicates) while the connection breaks, until `deadline`.
    /// `headers` makes the headers for each attempt (a retry is rare; a copy kept for it on
    /// every message would not be).
    async fn publish(&self, headers: impl Fn() -> HeaderMap, payload: Bytes) -> Result<(), Reply> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let attempt = async {
                self.js
                    .publish_with_headers(self.subject.clone(), headers(), payload.clone())
                    .await?
                    .await
            };
            let err = match tokio::time::timeout_at(deadline, attempt).await {
                Ok(Ok(_ack)) => return Ok(()),
                Ok(Err(e)) => e,
                Err(_) => return Err(NO_ACK),
            };
            use jetstream::context::PublishErrorKind as Kind;
            match err.kind() {
                Kind::BrokenPipe | Kind::MaxAckPending => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    if Instant::now() >= deadline {
                        return Err(NO_ACK);
                    }
                }
                Kind::TimedOut => return Err(NO_ACK),
                Kind::MaxPayloadExceeded => {
                    // The server we reached takes less than the one we measured: learn its
                    // limit; the client's retry takes the claim-check path.
                    self.max_payload
                        .store(self.client.server_info().max_payload, Ordering::Relaxed);
                    return Err(if self.objects.is_some() {
                        NO_ACK
                    } else {
                        TOO_BIG
                    });
                }
                _ => return Err(refusal(&err.to_string())),
            }
        }
    }

    /// Streams the message (the part read so far, then the rest of `body`) into the Object
    /// Store under `name`; returns its size.
    async fn put_object(
        &self,
        store: &object_store::ObjectStore,
        name: &str,
        read: Vec<Bytes>,
        body: Body,
    ) -> Result<usize, Reply> {
        let rest = futures_util::stream::unfold(body, |mut body| async move {
            let chunk = body.chunk().await?;
            Some((chunk.map_err(std::io::Error::other), body))
        });
        let chunks = futures_util::stream::iter(read.into_iter().map(Ok)).chain(rest);
        let mut reader = tokio_util::io::StreamReader::new(Box::pin(chunks));
        // Each chunk's acknowledgement has the timeout (the JetStream context's); the client
        // side has the server's DATA deadline.
        // Chunks fit under the server's max_payload (128 KiB, the Object Store's default, at
        // most).
        let max_payload = self.max_payload();
        let meta = object_store::ObjectMetadata {
            name: name.to_string(),
            chunk_size: Some((128 << 10).min(max_payload.saturating_sub(4096).max(1024))),
            ..Default::default()
        };
        match store.put(meta, &mut reader).await {
            Ok(info) => Ok(info.size),
            Err(e) => {
                // A read error is the client's: the message ended early.
                let reply = match e.kind() {
                    object_store::PutErrorKind::ReadChunks => Reply::LOCAL_ERROR,
                    _ => refusal(&e.to_string()),
                };
                tracing::warn!("jetstream: object {name}: {e}");
                Err(reply)
            }
        }
    }

    /// Deletes an object after its envelope could not be published (best effort, bounded).
    async fn delete_object(&self, store: &object_store::ObjectStore, name: &str) {
        if let Ok(Err(e)) = tokio::time::timeout(self.timeout, store.delete(name)).await {
            tracing::warn!("jetstream: could not delete object {name}: {e}");
        }
    }
}

/// The reply for a publish the stream refused.
fn refusal(error: &str) -> Reply {
    // The server's words for a full stream or account (error codes 10047, 10077, 10028).
    let full = [
        "maximum messages",
        "maximum bytes",
        "insufficient resources",
        "storage",
    ];
    if full.iter().any(|f| error.contains(f)) {
        STORE_FULL
    } else if error.contains("no responders") || error.contains("no stream") {
        tracing::warn!("jetstream: {error}");
        NO_ACK
    } else {
        tracing::warn!("jetstream: {error}");
        STORE_ERROR
    }
}

impl JetStreamBuilder {
    /// The stream's name (default `MAIL`).
    pub fn stream(mut self, name: impl Into<String>) -> Self {
        self.stream = name.into();
        self
    }

    /// The subject messages are published to (default `mail.in`); the stream must take it.
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = subject.into();
        self
    }

    /// An Object Store bucket for messages over the server's `max_payload` (a claim check).
    /// Created with the stream if [`JetStreamBuilder::create`] is on.
    pub fn object_store(mut self, bucket: impl Into<String>) -> Self {
        self.bucket = Some(bucket.into());
        self
    }

    /// Creates the stream (file storage, taking the subject) and the Object Store if they do
    /// not exist. Off by default: the stream must exist, and `connect` says so if it does not.
    pub fn create(mut self, on: bool) -> Self {
        self.create = on;
        self
    }

    /// Replicas of a stream this creates (default 1; 3 on a cluster keeps every acknowledged
    /// message through the loss of one node).
    pub fn replicas(mut self, n: usize) -> Self {
        self.replicas = n.max(1);
        self
    }

    /// How long one acknowledgement may take before the client is answered `451` (5 s).
    pub fn publish_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Messages held and published at once (128); beyond, `451 4.4.5`.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }

    /// The name in the `Received` header (by default, this machine's host name).
    pub fn hostname(mut self, name: impl Into<String>) -> Self {
        self.hostname = name.into();
        self
    }

    /// NATS client options: credentials (`credentials_file`, `user_and_password`, `token`),
    /// TLS (`require_tls`, `add_root_certificates`, `add_client_certificate`), a name. By
    /// default the client retries connections every 50 ms to 1 s, without end.
    pub fn connect_options(mut self, options: ConnectOptions) -> Self {
        self.options = Some(options);
        self
    }

    /// Connects, and checks that the stream exists and takes the subject (creating them if
    /// asked).
    pub async fn connect(self) -> Result<JetStream, JetStreamError> {
        let options = self.options.unwrap_or_else(|| {
            ConnectOptions::new()
                .reconnect_delay_callback(|attempts| {
                    Duration::from_millis(50u64.saturating_mul(attempts as u64).min(1000))
                })
                .connection_timeout(self.timeout)
        });
        let servers = self.servers.clone();
        let addrs = servers
            .split(',')
            .map(|s| s.trim().parse::<async_nats::ServerAddr>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| JetStreamError::Connect {
                servers: servers.clone(),
                reason: e.to_string(),
            })?;
        let client = options
            .connect(addrs)
            .await
            .map_err(|e| JetStreamError::Connect {
                servers: servers.clone(),
                reason: e.to_string(),
            })?;
        let mut js = jetstream::new(client.clone());
        js.set_timeout(self.timeout);
        let setup = |e: &dyn std::fmt::Display| JetStreamError::Setup(e.to_string());
        if self.create {
            let config = stream::Config {
                name: self.stream.clone(),
                subjects: vec![self.subject.clone()],
                storage: stream::StorageType::File,
                num_replicas: self.replicas,
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            };
            js.get_or_create_stream(config)
                .await
                .map_err(|e| setup(&e))?;
        }
        match js.stream_by_subject(self.subject.clone()).await {
            Ok(name) if name == self.stream => {}
            _ => {
                return Err(JetStreamError::NoStream {
                    stream: self.stream,
                    subject: self.subject,
                });
            }
        }
        let objects = match self.bucket {
            None => None,
            Some(bucket) => {
                let store = match js.get_object_store(&bucket).await {
                    Ok(store) => store,
                    Err(_) if self.create => js
                        .create_object_store(object_store::Config {
                            bucket: bucket.clone(),
                            num_replicas: self.replicas,
                            storage: stream::StorageType::File,
                            ..Default::default()
                        })
                        .await
                        .map_err(|e| setup(&e))?,
                    Err(e) => {
                        return Err(JetStreamError::Setup(format!(
                            "Object Store {bucket:?}: {e} (create it, or ask for it to be \
                             created: --jetstream-create)"
                        )));
                    }
                };
                Some((bucket, store))
            }
        };
        Ok(JetStream {
            js,
            client: client.clone(),
            subject: Subject::from(self.subject),
            objects,
            in_flight: Semaphore::new(self.max_in_flight),
            timeout: self.timeout,
            hostname: self.hostname,
            max_payload: AtomicUsize::new(client.server_info().max_payload),
        })
    }
}

/// Adds a header, with any CR or LF (which NATS headers cannot carry) made a space.
fn put(headers: &mut HeaderMap, name: &'static str, value: &str) {
    let value = if value.contains(['\r', '\n']) {
        value.replace(['\r', '\n'], " ")
    } else {
        value.to_string()
    };
    if let Ok(value) = value.parse::<HeaderValue>() {
        headers.append(name, value);
    }
}

/// What a message's NATS headers say beyond the session and the envelope.
struct Facts<'a> {
    /// Our id (`SMTP-Id`; also the object's name in a claim check).
    id: &'a str,
    /// `Nats-Msg-Id`.
    dedup: String,
    /// The message's size, trace header included.
    size: usize,
    /// `BUCKET/NAME` of a claim check.
    object: Option<String>,
    /// When the content ended, RFC 3339.
    received_at: String,
}

/// The NATS headers for a message: the envelope, the session, and `facts`.
fn nats_headers(info: &SessionInfo, env: &Envelope, facts: &Facts<'_>) -> HeaderMap {
    let mut h = HeaderMap::new();
    put(&mut h, headers::MSG_ID, &facts.dedup);
    put(&mut h, headers::ID, facts.id);
    let from = env
        .from
        .as_ref()
        .map_or_else(|| "<>".to_string(), ToString::to_string);
    put(&mut h, headers::MAIL_FROM, &from);
    if env.params != MailParams::default() {
        put(&mut h, headers::MAIL_PARAMS, &env.params.to_string());
    }
    for r in &env.recipients {
        let params = r.params.to_string();
        let value = if params.is_empty() {
            r.path.to_string()
        } else {
            format!("{} {params}", r.path)
        };
        put(&mut h, headers::RCPT_TO, &value);
    }
    if let Some(addr) = info.client_addr() {
        put(&mut h, headers::CLIENT, &addr.to_string());
    }
    if let Some(helo) = &info.helo {
        put(&mut h, headers::HELO, helo);
    }
    put(
        &mut h,
        headers::PROTOCOL,
        &with_protocol(info, env.params.smtputf8),
    );
    if let Some(tls) = &info.tls {
        put(
            &mut h,
            headers::TLS,
            &format!("{} {}", tls.protocol, tls.cipher),
        );
    }
    if let Some(user) = &info.auth {
        put(&mut h, headers::AUTH, user);
    }
    put(&mut h, headers::LISTENER, &info.listener);
    put(&mut h, headers::RECEIVED_AT, &facts.received_at);
    put(&mut h, headers::SIZE, &facts.size.to_string());
    if let Some(object) = &facts.object {
        put(&mut h, headers::OBJECT, object);
    }
    h
}

/// Now, RFC 3339 in UTC with milliseconds (`2026-11-30T05:07:26.123Z`).
fn rfc3339_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    let t = mail_parser::DateTime::from_timestamp(secs);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year,
        t.month,
        t.day,
        t.hour,
        t.minute,
        t.second,
        now.subsec_millis()
    )
}

/// The value of the first `Message-ID` header in `message` (unfolded, trimmed), if its header
/// section holds one.
fn message_id(message: &[u8]) -> Option<Vec<u8>> {
    let end = memchr::memmem::find(message, b"\r\n\r\n").unwrap_or(message.len());
    let head = &message[..end];
    let mut lines = head.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        if !line[..colon]
            .trim_ascii()
            .eq_ignore_ascii_case(b"message-id")
        {
            continue;
        }
        let mut value = line[colon + 1..].trim_ascii().to_vec();
        while let Some(next) = lines.peek() {
            if !next.starts_with(b" ") && !next.starts_with(b"\t") {
                break;
            }
            value.extend_from_slice(next.trim_ascii());
            lines.next();
        }
        return (!value.is_empty()).then_some(value);
    }
    None
}

/// `Nats-Msg-Id`: a digest of the message's `Message-ID` and its envelope, so that a client's
/// retry of the same message is the same id; our unique id if there is no `Message-ID`.
fn dedup_id(message: &[u8], env: &Envelope, id: &str) -> String {
    let Some(message_id) = message_id(message) else {
        return id.to_string();
    };
    let mut h = Sha256::new();
    h.update(&message_id);
    h.update(b"\0");
    if let Some(ReversePath::Mailbox(m)) = &env.from {
        h.update(m.to_string().as_bytes());
    }
    for r in &env.recipients {
        h.update(b"\0");
        h.update(r.path.to_string().as_bytes());
    }
    let digest = h.finalize();
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    out
}

#[async_trait]
impl Handler for JetStream {
    async fn mail(
        &self,
        _: &mut Context,
        _: &ReversePath<'_>,
        _: &MailParams<'_>,
    ) -> Result<(), Reply> {
        if self.client.connection_state() == async_nats::connection::State::Disconnected {
            return Err(STORE_DOWN);
        }
        if self.in_flight.available_permits() == 0 {
            return Err(CONGESTED);
        }
        Ok(())
    }

    async fn data(&self, ctx: &mut Context, mut body: Body) -> Result<(), Reply> {
        let Ok(_permit) = self.in_flight.try_acquire() else {
            return Err(CONGESTED);
        };
        let (info, env) = (ctx.session(), ctx.envelope());
        let id = info
            .queue_id
            .clone()
            .unwrap_or_else(crate::handler::queue_id);
        let trace = received_header(info, env, &self.hostname);
        // Room for the NATS headers: a path and its parameters take at most ~1 KB (RFC 5321
        // 4.5.3.1.3, RFC 3461 4.2), the rest of the session a few.
        let room = HEADER_ROOM + 1100 * (env.recipients.len() + 1);
        let limit = self.max_payload().saturating_sub(room);
        // The chunks as they come (no copy), then one copy into a buffer of the exact size.
        let mut chunks = Vec::new();
        let mut len = trace.len();
        let mut large = false;
        while let Some(chunk) = body.chunk().await {
            let chunk = chunk?;
            len += chunk.len();
            chunks.push(chunk);
            if len > limit {
                large = true;
                break;
            }
        }
        let mut facts = Facts {
            id: &id,
            dedup: String::new(),
            size: len,
            object: None,
            received_at: rfc3339_now(),
        };
        if !large {
            let mut message = BytesMut::with_capacity(len);
            message.extend_from_slice(trace.as_bytes());
            for chunk in &chunks {
                message.extend_from_slice(chunk);
            }
            drop(chunks);
            facts.dedup = dedup_id(&message[trace.len()..], env, &id);
            let headers = || nats_headers(info, env, &facts);
            return self.publish(headers, message.freeze()).await;
        }
        // A claim check: the message in the Object Store, its envelope in the stream.
        let Some((bucket, store)) = &self.objects else {
            return Err(TOO_BIG);
        };
        let head = first_bytes(&chunks, 64 << 10);
        facts.dedup = dedup_id(&head, env, &id);
        let mut read = vec![Bytes::from(trace)];
        read.extend(chunks);
        facts.size = self.put_object(store, &id, read, body).await?;
        facts.object = Some(format!("{bucket}/{id}"));
        let headers = || nats_headers(info, env, &facts);
        let published = self.publish(headers, Bytes::new()).await;
        if published.is_err() {
            self.delete_object(store, &id).await;
        }
        published
    }
}

/// Up to `n` bytes from the start of `chunks` (to find the `Message-ID` header).
fn first_bytes(chunks: &[Bytes], n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n);
    for chunk in chunks {
        let take = chunk.len().min(n - out.len());
        out.extend_from_slice(&chunk[..take]);
        if out.len() == n {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids() {
        let cases: &[(&[u8], Option<&[u8]>)] = &[
            (b"Message-ID: <a@b>\r\n\r\nbody", Some(b"<a@b>")),
            (
                b"Subject: x\r\nmessage-id:   <a@b>  \r\n\r\n",
                Some(b"<a@b>"),
            ),
            (b"Message-Id:\r\n <folded@x>\r\n\r\n", Some(b"<folded@x>")),
            (b"Subject: x\r\n\r\nMessage-ID: <in-body@x>\r\n", None),
            (b"Message-ID: \r\n\r\n", None),
            (b"", None),
        ];
        for (message, want) in cases {
            assert_eq!(message_id(message).as_deref(), *want, "{message:?}");
        }
    }

    #[test]
    fn dedup_ids_follow_message_id_and_envelope() {
        use smtp_proto::{ForwardPath, Mailbox, Recipient};
        let mut env = Envelope {
            from: Some(ReversePath::Mailbox(Mailbox::parse("a@x").unwrap())),
            ..Default::default()
        };
        env.recipients.push(Recipient {
            path: ForwardPath::Mailbox(Mailbox::parse("b@y").unwrap()),
            params: Default::default(),
        });
        let m = b"Message-ID: <1@x>\r\n\r\nhello\r\n";
        let first = dedup_id(m, &env, "ID1");
        assert_eq!(first.len(), 64);
        // A retry of the same message (same Message-ID and envelope) is the same id.
        assert_eq!(dedup_id(m, &env, "ID2"), first);
        // Another recipient is another message.
        env.recipients[0].path = ForwardPath::Mailbox(Mailbox::parse("c@y").unwrap());
        assert_ne!(dedup_id(m, &env, "ID1"), first);
        // No Message-ID: our unique id.
        assert_eq!(dedup_id(b"Subject: x\r\n\r\n", &env, "ID3"), "ID3");
    }

    #[test]
    fn full_stream_is_452() {
        assert_eq!(refusal("maximum messages exceeded").code(), 452);
        assert_eq!(refusal("maximum bytes exceeded").code(), 452);
        assert_eq!(refusal("something else").code(), 451);
    }
}
