//! The `Handler` trait: the decisions a server makes, with aiosmtpd's defaults.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use smtp_proto::{
    Credentials, EnhancedStatus, Envelope, ForwardPath, MailParams, ProxyInfo, RcptParams, Reply,
    ReversePath,
};

use crate::body::Body;

/// What a handler knows about the connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionInfo {
    /// A number unique to this connection within the process.
    pub id: u64,
    /// The listener's name (its address, or the name given to the builder).
    pub listener: String,
    /// The peer's address (`None` on a Unix socket).
    pub peer: Option<SocketAddr>,
    /// Our address (`None` on a Unix socket).
    pub local: Option<SocketAddr>,
    /// The addresses a PROXY protocol header gave, when the listener expects one.
    pub proxy: Option<ProxyInfo>,
    /// The name from HELO/EHLO/LHLO, once accepted.
    pub helo: Option<String>,
    /// TLS, once active.
    pub tls: Option<TlsInfo>,
    /// The authenticated identity, after AUTH.
    pub auth: Option<String>,
    /// The connection speaks LMTP (RFC 2033), not SMTP.
    pub lmtp: bool,
    /// The id of the message being received (from the start of its content), unique per
    /// message across processes and restarts. It is in the `250` reply (`queued as ID`) and in
    /// the `Received` header of the bundled handlers, so that a sender's log can be matched to
    /// the stored message.
    pub queue_id: Option<String>,
    pub(crate) control: Control,
}

/// A new message id: the time in microseconds, this process, a sequence number (hex).
pub(crate) fn queue_id() -> String {
    use std::sync::atomic::AtomicU64;
    use std::time::{SystemTime, UNIX_EPOCH};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "{:X}{:05X}{:04X}{:X}",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id() & 0xFFFF,
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// Lets a handler drop its connection; shared by every clone of a [`SessionInfo`].
#[derive(Debug, Clone, Default)]
pub(crate) struct Control(Arc<AtomicBool>);

impl Control {
    pub(crate) fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

impl PartialEq for Control {
    /// Every control compares equal: it is not part of what a session is.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Control {}

impl SessionInfo {
    /// Drops the connection at once, without a reply, as soon as the current handler call
    /// returns (or, during `data`, while the content is still arriving). For fault injection:
    /// a server that must refuse politely answers a `421` instead.
    pub fn disconnect(&self) {
        self.control.0.store(true, Ordering::Relaxed);
    }

    /// The client's real address: the PROXY source if there is one, else the peer.
    pub fn client_addr(&self) -> Option<SocketAddr> {
        self.proxy.and_then(|p| p.source).or(self.peer)
    }
}

/// The TLS state of a connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsInfo {
    /// The protocol version, such as `TLSv1_3`.
    pub protocol: String,
    /// The cipher suite.
    pub cipher: String,
    /// The server name the client asked for (SNI).
    pub sni: Option<String>,
    /// True for implicit TLS (from the first byte), false after STARTTLS.
    pub implicit: bool,
}

/// `252 2.5.0`: the answer to VRFY that promises nothing (RFC 5321 3.5.3).
pub const VRFY_CANNOT: Reply = Reply::const_new(
    252,
    Some(EnhancedStatus::new(2, 5, 0)),
    "Cannot VRFY user, but will accept message and attempt delivery",
);

/// The decisions of a mail server. Every method has a default, the one aiosmtpd's default
/// handler has: accept every sender and recipient, accept and discard every message, refuse
/// every AUTH (implement [`Handler::auth`] to offer it).
///
/// Each decision returns `Result<_, Reply>`: an `Err` is sent to the client as it is, so any
/// code and enhanced status can be answered. A handler that panics costs the client a
/// `451 4.3.0` for that command, never the connection or the server.
///
/// ```
/// use smtp_server::{async_trait, Body, Handler, SessionInfo};
/// use smtp_server::smtp_proto::{Envelope, Reply};
///
/// struct Print;
///
/// #[async_trait]
/// impl Handler for Print {
///     async fn data(&self, _: &SessionInfo, envelope: &Envelope, body: Body) -> Result<(), Reply> {
///         let msg = body.collect().await.map_err(|_| Reply::LOCAL_ERROR)?;
///         println!("{} recipients, {} bytes", envelope.recipients.len(), msg.raw().len());
///         Ok(())
///     }
/// }
/// ```
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// A client connected. `Err` refuses it (the reply is sent, then the connection closed).
    async fn connect(&self, _session: &SessionInfo) -> Result<(), Reply> {
        Ok(())
    }

    /// HELO, EHLO or LHLO. `capabilities` are the EHLO extension lines; edit them to change
    /// what is announced (what the session enforces does not change).
    async fn hello(
        &self,
        _session: &SessionInfo,
        _name: &str,
        _capabilities: &mut Vec<String>,
    ) -> Result<(), Reply> {
        Ok(())
    }

    /// AUTH: check the credentials; `Ok` gives the authenticated identity.
    async fn auth(
        &self,
        _session: &SessionInfo,
        _credentials: &Credentials,
    ) -> Result<String, Reply> {
        Err(Reply::AUTH_INVALID)
    }

    /// MAIL FROM.
    async fn mail(
        &self,
        _session: &SessionInfo,
        _from: &ReversePath<'static>,
        _params: &MailParams<'static>,
    ) -> Result<(), Reply> {
        Ok(())
    }

    /// RCPT TO; `envelope` holds the sender and the recipients accepted so far.
    async fn rcpt(
        &self,
        _session: &SessionInfo,
        _envelope: &Envelope,
        _to: &ForwardPath<'static>,
        _params: &RcptParams<'static>,
    ) -> Result<(), Reply> {
        Ok(())
    }

    /// The message. The client gets `250` only after this returns `Ok`, and only once the
    /// whole message has arrived. Returning early (even `Err`) is fine: the rest of the
    /// content is drained.
    async fn data(
        &self,
        _session: &SessionInfo,
        _envelope: &Envelope,
        body: Body,
    ) -> Result<(), Reply> {
        body.discard()
            .await
            .map(|_| ())
            .map_err(|_| Reply::LOCAL_ERROR)
    }

    /// The message, in LMTP: one result per accepted recipient, in order (RFC 2033 4.2). The
    /// default calls [`Handler::data`] and gives its result to every recipient.
    async fn data_lmtp(
        &self,
        session: &SessionInfo,
        envelope: &Envelope,
        body: Body,
    ) -> Vec<Result<(), Reply>> {
        let result = self.data(session, envelope, body).await;
        vec![result; envelope.recipients.len()]
    }

    /// VRFY; the reply is sent as it is.
    async fn vrfy(&self, _session: &SessionInfo, _arg: &str) -> Reply {
        VRFY_CANNOT
    }

    /// The transaction was reset (RSET, a new hello, STARTTLS).
    async fn rset(&self, _session: &SessionInfo) {}

    /// The connection is gone.
    async fn disconnect(&self, _session: &SessionInfo) {}
}

/// A handler that wraps another: it makes some decisions itself and passes every other call
/// to [`Delegate::inner`]. Implement `Delegate` (not [`Handler`]) and override only the
/// methods you need; every type that implements `Delegate` is a [`Handler`].
///
/// This is how the bundled handlers are composed: a [`Relay`](crate::Relay) that rewrites
/// recipients, a fault injector around any handler, an AUTH check added to a store.
///
/// ```
/// use smtp_server::{async_trait, Accounts, Delegate, Handler, Memory, SessionInfo};
/// use smtp_server::smtp_proto::{Credentials, Reply};
///
/// /// A Memory store that also checks AUTH.
/// struct WithAccounts {
///     store: Memory,
///     accounts: Accounts,
/// }
///
/// #[async_trait]
/// impl Delegate for WithAccounts {
///     fn inner(&self) -> &dyn Handler {
///         &self.store
///     }
///     async fn auth(&self, _: &SessionInfo, credentials: &Credentials) -> Result<String, Reply> {
///         self.accounts.verify(credentials)
///     }
/// }
/// ```
#[async_trait]
pub trait Delegate: Send + Sync + 'static {
    /// The handler that gets every call this one does not make itself.
    fn inner(&self) -> &dyn Handler;

    /// See [`Handler::connect`].
    async fn connect(&self, session: &SessionInfo) -> Result<(), Reply> {
        self.inner().connect(session).await
    }

    /// See [`Handler::hello`].
    async fn hello(
        &self,
        session: &SessionInfo,
        name: &str,
        capabilities: &mut Vec<String>,
    ) -> Result<(), Reply> {
        self.inner().hello(session, name, capabilities).await
    }

    /// See [`Handler::auth`].
    async fn auth(
        &self,
        session: &SessionInfo,
        credentials: &Credentials,
    ) -> Result<String, Reply> {
        self.inner().auth(session, credentials).await
    }

    /// See [`Handler::mail`].
    async fn mail(
        &self,
        session: &SessionInfo,
        from: &ReversePath<'static>,
        params: &MailParams<'static>,
    ) -> Result<(), Reply> {
        self.inner().mail(session, from, params).await
    }

    /// See [`Handler::rcpt`].
    async fn rcpt(
        &self,
        session: &SessionInfo,
        envelope: &Envelope,
        to: &ForwardPath<'static>,
        params: &RcptParams<'static>,
    ) -> Result<(), Reply> {
        self.inner().rcpt(session, envelope, to, params).await
    }

    /// See [`Handler::data`].
    async fn data(
        &self,
        session: &SessionInfo,
        envelope: &Envelope,
        body: Body,
    ) -> Result<(), Reply> {
        self.inner().data(session, envelope, body).await
    }

    /// See [`Handler::data_lmtp`].
    async fn data_lmtp(
        &self,
        session: &SessionInfo,
        envelope: &Envelope,
        body: Body,
    ) -> Vec<Result<(), Reply>> {
        self.inner().data_lmtp(session, envelope, body).await
    }

    /// See [`Handler::vrfy`].
    async fn vrfy(&self, session: &SessionInfo, arg: &str) -> Reply {
        self.inner().vrfy(session, arg).await
    }

    /// See [`Handler::rset`].
    async fn rset(&self, session: &SessionInfo) {
        self.inner().rset(session).await;
    }

    /// See [`Handler::disconnect`].
    async fn disconnect(&self, session: &SessionInfo) {
        self.inner().disconnect(session).await;
    }
}

#[async_trait]
impl<D: Delegate> Handler for D {
    async fn connect(&self, s: &SessionInfo) -> Result<(), Reply> {
        Delegate::connect(self, s).await
    }
    async fn hello(&self, s: &SessionInfo, n: &str, c: &mut Vec<String>) -> Result<(), Reply> {
        Delegate::hello(self, s, n, c).await
    }
    async fn auth(&self, s: &SessionInfo, c: &Credentials) -> Result<String, Reply> {
        Delegate::auth(self, s, c).await
    }
    async fn mail(
        &self,
        s: &SessionInfo,
        f: &ReversePath<'static>,
        p: &MailParams<'static>,
    ) -> Result<(), Reply> {
        Delegate::mail(self, s, f, p).await
    }
    async fn rcpt(
        &self,
        s: &SessionInfo,
        e: &Envelope,
        t: &ForwardPath<'static>,
        p: &RcptParams<'static>,
    ) -> Result<(), Reply> {
        Delegate::rcpt(self, s, e, t, p).await
    }
    async fn data(&self, s: &SessionInfo, e: &Envelope, b: Body) -> Result<(), Reply> {
        Delegate::data(self, s, e, b).await
    }
    async fn data_lmtp(&self, s: &SessionInfo, e: &Envelope, b: Body) -> Vec<Result<(), Reply>> {
        Delegate::data_lmtp(self, s, e, b).await
    }
    async fn vrfy(&self, s: &SessionInfo, a: &str) -> Reply {
        Delegate::vrfy(self, s, a).await
    }
    async fn rset(&self, s: &SessionInfo) {
        Delegate::rset(self, s).await;
    }
    async fn disconnect(&self, s: &SessionInfo) {
        Delegate::disconnect(self, s).await;
    }
}
