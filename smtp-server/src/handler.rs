//! The `Handler` trait: the decisions a server makes, with aiosmtpd's defaults.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use std::any::{Any, TypeId};
use std::collections::HashMap;

use async_trait::async_trait;
use smtp_proto::{
    Credentials, Envelope, ForwardPath, MailParams, ProxyInfo, RcptParams, Reply, ReversePath,
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

/// This process's id, asked once (`std::process::id` is a system call each time, and the
/// ids of every message and Maildir file need it).
pub(crate) fn process_id() -> u32 {
    static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *PID.get_or_init(std::process::id)
}

/// 32 bits that tell this process from others: its id mixed with random bits (in containers
/// every receiver is process 1, and two hosts' ids must still differ).
fn process_salt() -> u32 {
    static SALT: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *SALT.get_or_init(|| (process_id() & 0xFFFF) << 16 ^ fastrand::u32(..))
}

/// What the `250` of an accepted message says before its id.
pub(crate) const QUEUED_AS: &str = "Message accepted, queued as ";

/// A new message id: the time in microseconds, this process (its id and random bits), a
/// sequence number (upper-case hex). Written by hand: it is made once per message, and
/// `format!` cost more than the rest of the id. Its buffer has room for [`QUEUED_AS`] in
/// front: the `250` that ends the message is written in it, without an allocation of its own.
pub(crate) fn queue_id() -> String {
    use std::sync::atomic::AtomicU64;
    use std::time::{SystemTime, UNIX_EPOCH};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    fn hex(out: &mut String, value: u64, width: u32) {
        const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
        let digits = (64 - value.leading_zeros()).div_ceil(4).max(width);
        for i in (0..digits).rev() {
            out.push(char::from(DIGITS[((value >> (i * 4)) & 0xF) as usize]));
        }
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let mut id = String::with_capacity(QUEUED_AS.len() + 32);
    hex(&mut id, now.as_secs(), 1);
    hex(&mut id, u64::from(now.subsec_micros()), 5);
    hex(&mut id, u64::from(process_salt()), 8);
    hex(&mut id, SEQ.fetch_add(1, Ordering::Relaxed), 1);
    id
}

#[cfg(test)]
mod tests {
    #[test]
    fn queue_ids_are_unique_hex() {
        let ids: Vec<String> = (0..1000).map(|_| super::queue_id()).collect();
        let unique: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
        for id in &ids {
            assert!(id.len() >= 17, "{id}");
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)),
                "{id}"
            );
        }
    }
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
    pub fn drop_connection(&self) {
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

/// `252 2.5.0`: the answer to VRFY that promises nothing (RFC 5321 3.5.3);
/// [`Reply::VRFY_CANNOT`].
pub const VRFY_CANNOT: Reply = Reply::VRFY_CANNOT;

/// Typed per-connection state, one value per type (as `http::Extensions`): what a handler
/// keeps between the calls of one connection (an upstream connection, a counter), without a
/// map keyed by session id.
#[derive(Default)]
pub struct Extensions {
    map: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
}

impl Extensions {
    /// Stores `value`, returning the previous value of its type.
    pub fn insert<T: Send + Sync + 'static>(&mut self, value: T) -> Option<T> {
        self.map
            .insert(TypeId::of::<T>(), Box::new(value))
            .and_then(|old| old.downcast().ok().map(|b| *b))
    }

    /// The value of type `T`, if any.
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.map.get(&TypeId::of::<T>())?.downcast_ref()
    }

    /// The value of type `T`, to change it.
    pub fn get_mut<T: Send + Sync + 'static>(&mut self) -> Option<&mut T> {
        self.map.get_mut(&TypeId::of::<T>())?.downcast_mut()
    }

    /// The value of type `T`, made by `make` first if there is none.
    pub fn get_or_insert_with<T: Send + Sync + 'static>(
        &mut self,
        make: impl FnOnce() -> T,
    ) -> &mut T {
        self.map
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Box::new(make()))
            .downcast_mut()
            .expect("the value stored under a type's id has that type")
    }

    /// Takes the value of type `T` out.
    pub fn remove<T: Send + Sync + 'static>(&mut self) -> Option<T> {
        self.map
            .remove(&TypeId::of::<T>())
            .and_then(|b| b.downcast().ok().map(|b| *b))
    }
}

impl std::fmt::Debug for Extensions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Extensions({} values)", self.map.len())
    }
}

/// What every hook of a [`Handler`] sees: the connection, the transaction so far, and the
/// connection's own state. One per connection, passed to each call as `&mut Context`; new
/// facts are added as accessors, never as new hook arguments.
#[derive(Debug, Default)]
pub struct Context {
    session: SessionInfo,
    envelope: Envelope,
    extensions: Extensions,
    recipient_replies: Vec<Option<Reply>>,
}

impl Context {
    /// A context for a connection (the driver makes these; tests of a handler can too).
    pub fn new(session: SessionInfo) -> Self {
        Self {
            session,
            ..Self::default()
        }
    }

    /// The connection: peer, listener, HELO name, TLS, authenticated user, message id.
    pub fn session(&self) -> &SessionInfo {
        &self.session
    }

    /// The transaction so far: the accepted sender and recipients (complete in `data`).
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// This connection's own state, kept between calls for the whole connection (through
    /// RSET, a new EHLO and STARTTLS: clear it in [`Handler::rset`] if it must not outlive a
    /// transaction).
    pub fn extensions(&self) -> &Extensions {
        &self.extensions
    }

    /// This connection's own state, to change it.
    pub fn extensions_mut(&mut self) -> &mut Extensions {
        &mut self.extensions
    }

    /// Drops the connection without a reply, as soon as the current call returns (for fault
    /// injection; a polite refusal answers `421` instead). Not to be confused with
    /// [`Handler::disconnect`], which tells the handler the connection is gone.
    pub fn drop_connection(&self) {
        self.session.drop_connection();
    }

    /// In LMTP, answers the recipient at `index` (in [`Context::envelope`]'s order) with this
    /// reply instead of `data`'s result (RFC 2033 4.2: one reply per recipient). Ignored in
    /// SMTP, where one reply covers the message.
    pub fn refuse_recipient(&mut self, index: usize, reply: Reply) {
        if index < self.envelope.recipients.len() {
            if self.recipient_replies.len() <= index {
                self.recipient_replies.resize(index + 1, None);
            }
            self.recipient_replies[index] = Some(reply);
        }
    }

    pub(crate) fn session_mut(&mut self) -> &mut SessionInfo {
        &mut self.session
    }

    pub(crate) fn envelope_mut(&mut self) -> &mut Envelope {
        &mut self.envelope
    }

    pub(crate) fn take_recipient_replies(&mut self) -> Vec<Option<Reply>> {
        std::mem::take(&mut self.recipient_replies)
    }
}

/// The decisions of a mail server. Every method has a default, the one aiosmtpd's default
/// handler has: accept every sender and recipient, accept and discard every message, refuse
/// every AUTH (implement [`Handler::auth`] to offer it).
///
/// Each hook gets the connection's [`Context`] and returns `Result<_, Reply>`: an `Err` is
/// sent to the client as it is, so any code and enhanced status can be answered (`?` works on
/// a [`BodyError`](crate::BodyError), which becomes the fitting reply). A handler that
/// panics costs the client a `451 4.3.0` for that command, never the connection or the server.
///
/// ```
/// use smtp_server::{async_trait, Body, Context, Handler};
/// use smtp_server::smtp_proto::Reply;
///
/// /// Counts messages per connection, in the connection's own state.
/// struct Count;
///
/// #[async_trait]
/// impl Handler for Count {
///     async fn data(&self, ctx: &mut Context, body: Body) -> Result<(), Reply> {
///         let msg = body.collect().await?;
///         let n = ctx.extensions_mut().get_or_insert_with(|| 0u32);
///         *n += 1;
///         println!("message {n} of this connection: {} bytes", msg.raw().len());
///         Ok(())
///     }
/// }
/// ```
///
/// **Wrapping a handler.** Return the wrapped handler from [`Handler::inner`] and override only
/// what you decide: every method you do not override goes to the inner handler (that is what
/// the defaults do when `inner` is set). Nothing can drift: there is one trait.
///
/// ```
/// use smtp_server::{async_trait, Accounts, Context, Handler, Memory};
/// use smtp_server::smtp_proto::{Credentials, Reply};
///
/// /// A Memory store that also checks AUTH.
/// struct WithAccounts {
///     store: Memory,
///     accounts: Accounts,
/// }
///
/// #[async_trait]
/// impl Handler for WithAccounts {
///     fn inner(&self) -> Option<&dyn Handler> {
///         Some(&self.store)
///     }
///     async fn auth(&self, _: &mut Context, credentials: &Credentials) -> Result<String, Reply> {
///         self.accounts.verify(credentials)
///     }
/// }
/// ```
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// The handler this one wraps, if any: every method not overridden goes to it.
    fn inner(&self) -> Option<&dyn Handler> {
        None
    }

    /// A client connected. `Err` refuses it (the reply is sent, then the connection closed).
    async fn connect(&self, ctx: &mut Context) -> Result<(), Reply> {
        match self.inner() {
            Some(h) => h.connect(ctx).await,
            None => Ok(()),
        }
    }

    /// HELO, EHLO or LHLO. `capabilities` are the EHLO extension lines; edit them to change
    /// what is announced (what the session enforces does not change).
    async fn hello(
        &self,
        ctx: &mut Context,
        name: &str,
        capabilities: &mut Vec<String>,
    ) -> Result<(), Reply> {
        match self.inner() {
            Some(h) => h.hello(ctx, name, capabilities).await,
            None => Ok(()),
        }
    }

    /// AUTH: check the credentials; `Ok` gives the authenticated identity. A PLAIN request to
    /// act as another identity ([`Credentials::authzid`]) is granted only if `Ok` is exactly
    /// that identity.
    async fn auth(&self, ctx: &mut Context, credentials: &Credentials) -> Result<String, Reply> {
        match self.inner() {
            Some(h) => h.auth(ctx, credentials).await,
            None => Err(Reply::AUTH_INVALID),
        }
    }

    /// MAIL FROM.
    async fn mail(
        &self,
        ctx: &mut Context,
        from: &ReversePath<'_>,
        params: &MailParams<'_>,
    ) -> Result<(), Reply> {
        match self.inner() {
            Some(h) => h.mail(ctx, from, params).await,
            None => Ok(()),
        }
    }

    /// RCPT TO; [`Context::envelope`] holds the sender and the recipients accepted so far.
    async fn rcpt(
        &self,
        ctx: &mut Context,
        to: &ForwardPath<'_>,
        params: &RcptParams<'_>,
    ) -> Result<(), Reply> {
        match self.inner() {
            Some(h) => h.rcpt(ctx, to, params).await,
            None => Ok(()),
        }
    }

    /// The message. The client gets `250` only after this returns `Ok`, and only once the
    /// whole message has arrived. Returning early (even `Err`) is fine: the rest of the
    /// content is drained. In LMTP the result answers every recipient, except those given
    /// their own reply with [`Context::refuse_recipient`].
    async fn data(&self, ctx: &mut Context, body: Body) -> Result<(), Reply> {
        match self.inner() {
            Some(h) => h.data(ctx, body).await,
            None => {
                body.discard().await?;
                Ok(())
            }
        }
    }

    /// VRFY: `Ok` is the answer (by default [`VRFY_CANNOT`], RFC 5321 3.5.3), `Err` a refusal.
    async fn vrfy(&self, ctx: &mut Context, arg: &str) -> Result<Reply, Reply> {
        match self.inner() {
            Some(h) => h.vrfy(ctx, arg).await,
            None => Ok(VRFY_CANNOT),
        }
    }

    /// The transaction was reset (RSET, a new hello, STARTTLS).
    async fn rset(&self, ctx: &mut Context) {
        if let Some(h) = self.inner() {
            h.rset(ctx).await;
        }
    }

    /// The connection is gone.
    async fn disconnect(&self, ctx: &mut Context) {
        if let Some(h) = self.inner() {
            h.disconnect(ctx).await;
        }
    }
}

/// A shared handler is a handler: `Arc<MyHandler>` and `Arc<dyn Handler>` can be given
/// wherever a handler is taken.
#[async_trait]
impl<H: Handler + AsDynHandler + ?Sized> Handler for Arc<H> {
    fn inner(&self) -> Option<&dyn Handler> {
        Some(self.as_ref().as_dyn())
    }
}

/// `&H` as `&dyn Handler`, for sized and unsized handlers alike.
#[doc(hidden)]
pub trait AsDynHandler {
    /// This handler as a trait object.
    fn as_dyn(&self) -> &dyn Handler;
}

impl<H: Handler> AsDynHandler for H {
    fn as_dyn(&self) -> &dyn Handler {
        self
    }
}

impl AsDynHandler for dyn Handler {
    fn as_dyn(&self) -> &dyn Handler {
        self
    }
}
