//! [`JetStream`]: each accepted message published to a NATS JetStream stream; the client's
//! `250` waits for the stream's acknowledgement (feature `jetstream`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, object_store, stream};
use async_nats::{ConnectOptions, HeaderMap, HeaderValue, Subject};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
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
/// Bytes of messages held (read, not yet acknowledged) at once, by default.
const DEFAULT_BUFFERED: usize = 64 << 20;
/// What each message counts against the budget beyond its bytes (headers, state).
const MESSAGE_COST: usize = 4 << 10;
/// The smallest `max_payload` this works with: the session's headers must fit, with room.
const MIN_MAX_PAYLOAD: usize = 32 << 10;
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
/// - **Bounded.** Messages being received and published hold at most
///   [`JetStreamBuilder::max_buffered`] bytes (64 MiB by default; each message counts 4 KiB
///   more): a content chunk waits for room up to the timeout, then the client gets
///   `451 4.4.5`, and MAIL is refused the same way while the budget is spent. A client that
///   sends slowly holds only what it sent. Nothing is queued in the NATS client while the
///   connection is down, and its command queue is bounded too.
/// - **Deduplicated.** For a message with a `Message-ID` header, `Nats-Msg-Id` is a BLAKE3
///   digest of the envelope and the whole content: a client that retries a message whose
///   `250` it never saw (the stream had it, the acknowledgement was lost) sends the same
///   bytes, and the stream keeps one copy within its duplicate window (2 minutes). Two
///   messages that differ in one byte are two messages. A message without `Message-ID` gets
///   our unique id (never merged, so never deduplicated either).
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
    /// The byte budget, in KiB.
    budget: Semaphore,
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
pub struct JetStreamBuilder {
    servers: String,
    options: Option<ConnectOptions>,
    stream: String,
    subject: String,
    bucket: Option<String>,
    create: bool,
    replicas: usize,
    timeout: Duration,
    max_buffered: usize,
    hostname: String,
}

impl std::fmt::Debug for JetStreamBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JetStreamBuilder")
            .field("servers", &redact_servers(&self.servers))
            .field("stream", &self.stream)
            .field("subject", &self.subject)
            .field("object_store", &self.bucket)
            .field("create", &self.create)
            .finish_non_exhaustive()
    }
}

/// NATS URLs without the passwords or tokens they may carry (`nats://user:pass@host`).
fn redact_servers(servers: &str) -> String {
    servers
        .split(',')
        .map(|url| match url.split_once('@') {
            Some((userinfo, host)) => {
                let scheme = userinfo.split_once("://").map_or("", |(s, _)| s);
                let sep = if scheme.is_empty() { "" } else { "://" };
                format!("{scheme}{sep}***@{host}")
            }
            None => url.to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
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
    /// a 5 s acknowledgement timeout, 64 MiB of messages held at once.
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
            max_buffered: DEFAULT_BUFFERED,
            hostname: crate::server::default_hostname(),
        }
    }

    /// The NATS client options this handler uses unless given others: reconnect every 50 ms
    /// to 1 s without end, a bounded command queue. Add credentials or TLS to them.
    pub fn connect_options() -> ConnectOptions {
        ConnectOptions::new()
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis(50u64.saturating_mul(attempts as u64).min(1000))
            })
            .connection_timeout(DEFAULT_TIMEOUT)
            .client_capacity(1024)
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
    /// `Ok(true)` if the stream already had the message (a duplicate of an earlier publish).
    async fn publish(
        &self,
        first: HeaderMap,
        headers: impl Fn() -> HeaderMap,
        payload: Bytes,
    ) -> Result<bool, Published> {
        let deadline = Instant::now() + self.timeout;
        let mut first = Some(first);
        loop {
            // Nothing is queued in the client while it is disconnected: a publish queued there
            // would go out after the client was answered 451.
            while self.client.connection_state() != async_nats::connection::State::Connected {
                if Instant::now() + Duration::from_millis(50) >= deadline {
                    return Err(Published::NotSent(NO_ACK));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let headers = first.take().unwrap_or_else(&headers);
            let attempt = async {
                self.js
                    .publish_with_headers(self.subject.clone(), headers, payload.clone())
                    .await?
                    .await
            };
            let err = match tokio::time::timeout_at(deadline, attempt).await {
                Ok(Ok(ack)) => return Ok(ack.duplicate),
                Ok(Err(e)) => e,
                Err(_) => return Err(Published::Unknown),
            };
            use jetstream::context::PublishErrorKind as Kind;
            match err.kind() {
                Kind::BrokenPipe | Kind::MaxAckPending => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    if Instant::now() >= deadline {
                        return Err(Published::Unknown);
                    }
                }
                Kind::TimedOut => return Err(Published::Unknown),
                Kind::MaxPayloadExceeded => {
                    // The server we reached takes less than the one we measured: learn its
                    // limit; the client's retry takes the claim-check path.
                    self.max_payload
                        .store(self.client.server_info().max_payload, Ordering::Relaxed);
                    return Err(Published::NotSent(if self.objects.is_some() {
                        NO_ACK
                    } else {
                        TOO_BIG
                    }));
                }
                _ => return Err(Published::Refused(refusal(&err))),
            }
        }
    }

    /// Streams the message (the part read so far, then the rest of `body`) into the Object
    /// Store under `name`; returns its size.
    /// Every chunk of the rest of the body goes through `digest` too.
    async fn put_object(
        &self,
        store: &object_store::ObjectStore,
        name: &str,
        read: Vec<Bytes>,
        body: Option<Body>,
        digest: &std::sync::Mutex<Dedup>,
    ) -> Result<usize, Reply> {
        let rest = futures_util::stream::unfold(body, move |body| async move {
            let mut body = body?;
            let chunk = body.chunk().await?;
            if let Ok(chunk) = &chunk {
                digest
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .update(chunk);
            }
            Some((chunk.map_err(std::io::Error::other), Some(body)))
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
                    _ => NO_ACK,
                };
                tracing::warn!("jetstream: object {name}: {e}");
                Err(reply)
            }
        }
    }

    /// Deletes an object no stream message points to (best effort, bounded).
    async fn delete_object(&self, store: &object_store::ObjectStore, name: &str) {
        if let Ok(Err(e)) = tokio::time::timeout(self.timeout, store.delete(name)).await {
            tracing::warn!("jetstream: could not delete object {name}: {e}");
        }
    }
}

/// How a publish ended, when it did not end in an acknowledgement.
enum Published {
    /// Not sent (NATS unreachable the whole time, or the message too large to send).
    NotSent(Reply),
    /// Sent, and the stream refused it: it is not there.
    Refused(Reply),
    /// Sent, no answer: it may be in the stream.
    Unknown,
}

impl Published {
    fn reply(self) -> Reply {
        match self {
            Self::NotSent(r) | Self::Refused(r) => r,
            Self::Unknown => NO_ACK,
        }
    }
}

/// The reply for a publish the stream refused, by JetStream's error code.
fn refusal(err: &jetstream::context::PublishError) -> Reply {
    use std::error::Error as _;
    let api = err
        .source()
        .and_then(|e| e.downcast_ref::<jetstream::Error>());
    let Some(api) = api else {
        tracing::warn!("jetstream: {err}");
        return STORE_ERROR;
    };
    let reply = refusal_for(api.error_code().0, &api.to_string());
    if reply.code() != 452 {
        tracing::warn!("jetstream: {api}");
    }
    reply
}

/// The reply for JetStream's error `code` (with its description).
fn refusal_for(code: u64, description: &str) -> Reply {
    match code {
        // Account or server out of resources: 10002 account resources exceeded, 10023
        // insufficient resources, 10028 memory, 10047 storage.
        10002 | 10023 | 10028 | 10047 => STORE_FULL,
        // The stream's own limits (max_msgs, max_bytes, per subject, with discard new) are
        // store failures that say "maximum".
        10077 if description.contains("maximum") => STORE_FULL,
        // Larger than the stream's max_msg_size: it will never fit.
        10054 => TOO_BIG,
        _ => STORE_ERROR,
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

    /// Bytes of messages held at once, being received or published (64 MiB); beyond, a
    /// message waits for room up to the publish timeout, then gets `451 4.4.5`.
    pub fn max_buffered(mut self, bytes: usize) -> Self {
        self.max_buffered = bytes.max(1 << 20);
        self
    }

    /// The name in the `Received` header (by default, this machine's host name).
    pub fn hostname(mut self, name: impl Into<String>) -> Self {
        self.hostname = name.into();
        self
    }

    /// NATS client options: credentials (`credentials_file`, `user_and_password`, `token`),
    /// TLS (`require_tls`, `add_root_certificates`, `add_client_certificate`), a name. Start
    /// from [`JetStream::connect_options`] to keep this handler's reconnection settings.
    pub fn connect_options(mut self, options: ConnectOptions) -> Self {
        self.options = Some(options);
        self
    }

    /// Connects, and checks that the stream exists and takes the subject (creating them if
    /// asked).
    pub async fn connect(self) -> Result<JetStream, JetStreamError> {
        let options = self.options.unwrap_or_else(JetStream::connect_options);
        let servers = redact_servers(&self.servers);
        let addrs = self
            .servers
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
        let max_payload = client.server_info().max_payload;
        if max_payload < MIN_MAX_PAYLOAD {
            return Err(JetStreamError::Setup(format!(
                "the NATS server's max_payload ({max_payload} bytes) is below the {} KiB this \
                 needs for the envelope",
                MIN_MAX_PAYLOAD >> 10
            )));
        }
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
            budget: Semaphore::new((self.max_buffered >> 10).min(Semaphore::MAX_PERMITS)),
            timeout: self.timeout,
            hostname: self.hostname,
            max_payload: AtomicUsize::new(max_payload),
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

/// `Nats-Msg-Id` for a message with a `Message-ID` header: BLAKE3 over the envelope and the
/// whole content, each field length-prefixed, so a client's retry (the same bytes to the same
/// recipients) is the same id and any other message is not. (BLAKE3, not SHA-256: the same
/// collision resistance at a third of the cost; SHA-256 was 16 % of the server's time with
/// 100 KB messages.)
struct Dedup(blake3::Hasher);

impl Dedup {
    fn new(env: &Envelope) -> Self {
        let mut h = blake3::Hasher::new();
        let mut field = |bytes: &[u8]| {
            h.update(&(bytes.len() as u64).to_be_bytes());
            h.update(bytes);
        };
        match &env.from {
            Some(from) => field(from.to_string().as_bytes()),
            None => field(b"-"),
        }
        field(&(env.recipients.len() as u64).to_be_bytes());
        for r in &env.recipients {
            field(r.path.to_string().as_bytes());
        }
        Self(h)
    }

    fn update(&mut self, content: &[u8]) {
        self.0.update(content);
    }

    /// The id: the digest in hex, or `unique` when the message has no `Message-ID`.
    fn finish(self, has_message_id: bool, unique: &str) -> String {
        if !has_message_id {
            return unique.to_string();
        }
        let digest = self.0.finalize();
        let mut out = String::with_capacity(64);
        for &b in digest.as_bytes() {
            out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
            out.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
        }
        out
    }
}

/// The dedup id of a claim check: known already, or hashed as the body streams (and whether
/// the message has a `Message-ID`).
enum DedupId {
    Known(String),
    Streaming(Box<Dedup>, bool),
}

/// Up to `n` bytes from the start of `chunks` (to find the `Message-ID` header).
fn first_bytes(chunks: &[Bytes], n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n.min(chunks.iter().map(Bytes::len).sum()));
    for chunk in chunks {
        let take = chunk.len().min(n - out.len());
        out.extend_from_slice(&chunk[..take]);
        if out.len() == n {
            break;
        }
    }
    out
}

/// A refusal while the byte budget is spent.
fn congested() -> Reply {
    CONGESTED
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
        if self.budget.available_permits() < 64 {
            return Err(congested());
        }
        Ok(())
    }

    async fn data(&self, ctx: &mut Context, mut body: Body) -> Result<(), Reply> {
        let deadline = Instant::now() + self.timeout;
        // The budget, in KiB: what this message holds, taken as its chunks arrive.
        let take = |bytes: usize| {
            let kib = u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX);
            tokio::time::timeout_at(deadline.max(Instant::now()), self.budget.acquire_many(kib))
        };
        let Ok(Ok(mut held)) = take(MESSAGE_COST).await else {
            return Err(congested());
        };
        let (info, env) = (ctx.session(), ctx.envelope());
        let id = info
            .queue_id
            .clone()
            .unwrap_or_else(crate::handler::queue_id);
        let trace = received_header(info, env, &self.hostname);
        let limit = self.max_payload().saturating_sub(HEADER_ROOM);
        // The chunks as they come (no copy), then one copy into a buffer of the exact size.
        let mut chunks = Vec::new();
        let mut len = trace.len();
        let mut large = false;
        while let Some(chunk) = body.chunk().await {
            let chunk = chunk?;
            match take(chunk.len()).await {
                Ok(Ok(more)) => held.merge(more),
                _ => return Err(congested()),
            }
            len += chunk.len();
            chunks.push(chunk);
            if len > limit {
                large = true;
                break;
            }
        }
        let has_message_id = message_id(&first_bytes(&chunks, 64 << 10)).is_some();
        let mut facts = Facts {
            id: &id,
            dedup: String::new(),
            size: len,
            object: None,
            received_at: super::trace::rfc3339(std::time::SystemTime::now()),
        };
        let mut dedup = Dedup::new(env);
        if !large {
            let mut message = BytesMut::with_capacity(len);
            message.extend_from_slice(trace.as_bytes());
            for chunk in &chunks {
                dedup.update(chunk);
                message.extend_from_slice(chunk);
            }
            facts.dedup = dedup.finish(has_message_id, &id);
            let first = nats_headers(info, env, &facts);
            // The headers are measured, not guessed: with them the message must fit.
            if message.len() + framed_len(&first) <= self.max_payload() {
                drop(chunks);
                let headers = || nats_headers(info, env, &facts);
                return self
                    .publish(first, headers, message.freeze())
                    .await
                    .map(drop)
                    .map_err(Published::reply);
            }
            // It does not: the claim check, from memory.
            let digest = std::mem::take(&mut facts.dedup);
            let read = vec![message.freeze()];
            return self
                .claim_check(info, env, &mut facts, read, None, DedupId::Known(digest))
                .await;
        }
        let mut read = vec![Bytes::from(trace)];
        for chunk in &chunks {
            dedup.update(chunk);
        }
        read.extend(chunks);
        let digest = DedupId::Streaming(Box::new(dedup), has_message_id);
        let result = self
            .claim_check(info, env, &mut facts, read, Some(body), digest)
            .await;
        drop(held);
        result
    }
}

impl JetStream {
    /// A claim check: the message into the Object Store (named by our unique id), then its
    /// envelope into the stream. `read` is what was read so far, `rest` the body still to
    /// read, and `digest` the dedup id or what makes it.
    async fn claim_check(
        &self,
        info: &SessionInfo,
        env: &Envelope,
        facts: &mut Facts<'_>,
        read: Vec<Bytes>,
        rest: Option<Body>,
        digest: DedupId,
    ) -> Result<(), Reply> {
        let Some((bucket, store)) = &self.objects else {
            return Err(TOO_BIG);
        };
        let (hasher, known, has_message_id) = match digest {
            DedupId::Known(id) => (Dedup::new(env), Some(id), false),
            DedupId::Streaming(hasher, has) => (*hasher, None, has),
        };
        let hasher = std::sync::Mutex::new(hasher);
        facts.size = self
            .put_object(store, facts.id, read, rest, &hasher)
            .await?;
        facts.dedup = match known {
            Some(id) => id,
            None => hasher
                .into_inner()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .finish(has_message_id, facts.id),
        };
        facts.object = Some(format!("{bucket}/{}", facts.id));
        let facts = &*facts;
        let first = nats_headers(info, env, facts);
        let headers = || nats_headers(info, env, facts);
        match self.publish(first, headers, Bytes::new()).await {
            Ok(false) => Ok(()),
            // The stream had this message already, with its own object: ours is not needed.
            Ok(true) => {
                self.delete_object(store, facts.id).await;
                Ok(())
            }
            // Surely not in the stream: nothing points to the object.
            Err(e @ (Published::NotSent(_) | Published::Refused(_))) => {
                self.delete_object(store, facts.id).await;
                Err(e.reply())
            }
            // Perhaps in the stream, pointing to the object: it stays.
            Err(Published::Unknown) => Err(NO_ACK),
        }
    }
}

/// The size of `headers` as NATS frames them (`NATS/1.0\r\n`, `Name: value\r\n` each, `\r\n`).
fn framed_len(headers: &HeaderMap) -> usize {
    let mut n = 12;
    for (name, values) in headers.iter() {
        for v in values {
            n += AsRef::<str>::as_ref(name).len() + v.as_str().len() + 4;
        }
    }
    n
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
    fn dedup_ids_are_the_envelope_and_the_content() {
        use smtp_proto::{ForwardPath, Mailbox, Recipient};
        let mut env = Envelope {
            from: Some(ReversePath::Mailbox(Mailbox::parse("a@x").unwrap())),
            ..Default::default()
        };
        env.recipients.push(Recipient {
            path: ForwardPath::Mailbox(Mailbox::parse("b@y").unwrap()),
            params: Default::default(),
        });
        let id = |env: &Envelope, parts: &[&[u8]], unique: &str| {
            let mut d = Dedup::new(env);
            for p in parts {
                d.update(p);
            }
            d.finish(true, unique)
        };
        let m: &[u8] = b"Message-ID: <1@x>\r\n\r\nhello\r\n";
        let first = id(&env, &[m], "ID1");
        assert_eq!(first.len(), 64);
        // A retry (the same bytes to the same envelope), however the chunks fall.
        assert_eq!(id(&env, &[&m[..5], &m[5..]], "ID2"), first);
        // The same Message-ID with other content is another message.
        assert_ne!(
            id(&env, &[b"Message-ID: <1@x>\r\n\r\nother\r\n"], "ID1"),
            first
        );
        // So is another recipient.
        let mut other = env.clone();
        other.recipients[0].path = ForwardPath::Mailbox(Mailbox::parse("c@y").unwrap());
        assert_ne!(id(&other, &[m], "ID1"), first);
        // Fields are length-prefixed: moving bytes between them changes the id.
        let mut null = env.clone();
        null.from = Some(ReversePath::Null);
        assert_ne!(id(&null, &[m], "ID1"), first);
        // No Message-ID: our unique id.
        assert_eq!(Dedup::new(&env).finish(false, "ID3"), "ID3");
    }

    #[test]
    fn urls_lose_their_secrets() {
        assert_eq!(
            redact_servers("nats://ann:secret@h1:4222,nats://h2:4222,tok@h3"),
            "nats://***@h1:4222,nats://h2:4222,***@h3"
        );
    }

    /// JetStream's error codes (nats-server's errors.json) to RFC 3463 replies.
    #[test]
    fn refusals_by_error_code() {
        let table = [
            (10077, "maximum messages exceeded", 452, "4.3.1"),
            (10077, "maximum bytes exceeded", 452, "4.3.1"),
            (10077, "maximum messages per subject exceeded", 452, "4.3.1"),
            (
                10047,
                "insufficient storage resources available",
                452,
                "4.3.1",
            ),
            (
                10028,
                "insufficient memory resources available",
                452,
                "4.3.1",
            ),
            (10023, "insufficient resources", 452, "4.3.1"),
            (10002, "resource limits exceeded for account", 452, "4.3.1"),
            (10054, "message size exceeds maximum allowed", 552, "5.3.4"),
            (10077, "some other store failure", 451, "4.3.0"),
            (10999, "anything else", 451, "4.3.0"),
        ];
        for (code, text, reply, status) in table {
            let r = refusal_for(code, text);
            assert_eq!(r.code(), reply, "{code} {text}");
            assert_eq!(r.status().unwrap().to_string(), status, "{code} {text}");
        }
    }
}
