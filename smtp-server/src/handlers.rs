//! Bundled handlers: [`Sink`], [`Debugging`], [`Memory`], [`Maildir`].

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use smtp_proto::{EnhancedStatus, Envelope, Reply};
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;

use crate::body::{Body, Message};
use crate::handler::{Context, Handler, SessionInfo};

/// User names and passwords for AUTH PLAIN and LOGIN: [`Accounts::verify`] is what a
/// [`Handler::auth`] needs to return.
///
/// ```
/// use smtp_server::Accounts;
/// use smtp_server::smtp_proto::{Credentials, decode_plain};
/// let accounts = Accounts::new([("ann", "secret")]);
/// let ok = Credentials::Plain(decode_plain(b"\0ann\0secret").unwrap());
/// assert_eq!(accounts.verify(&ok), Ok("ann".to_string()));
/// let bad = Credentials::Plain(decode_plain(b"\0ann\0guess").unwrap());
/// assert_eq!(accounts.verify(&bad).unwrap_err().code(), 535);
/// // PLAIN's authorization identity (RFC 4616 2): acting as another user is refused...
/// let other = Credentials::Plain(decode_plain(b"admin\0ann\0secret").unwrap());
/// assert_eq!(accounts.verify(&other).unwrap_err().code(), 535);
/// // ...unless allowed.
/// let accounts = accounts.allow_acting_as("ann", "admin");
/// assert_eq!(accounts.verify(&other), Ok("admin".to_string()));
/// ```
#[derive(Clone, Default)]
pub struct Accounts {
    passwords: std::collections::HashMap<String, String>,
    /// (user, identity) pairs: `user` may act as `identity`.
    acting_as: Vec<(String, String)>,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the passwords.
        f.debug_struct("Accounts")
            .field("users", &self.passwords.keys().collect::<Vec<_>>())
            .field("acting_as", &self.acting_as)
            .finish()
    }
}

impl Accounts {
    /// Accounts from (user, password) pairs.
    pub fn new<U: Into<String>, P: Into<String>>(pairs: impl IntoIterator<Item = (U, P)>) -> Self {
        Self {
            passwords: pairs
                .into_iter()
                .map(|(u, p)| (u.into(), p.into()))
                .collect(),
            acting_as: Vec::new(),
        }
    }

    /// Adds an account.
    pub fn insert(&mut self, user: impl Into<String>, password: impl Into<String>) {
        self.passwords.insert(user.into(), password.into());
    }

    /// Lets `user` act as `identity` when PLAIN asks for it (RFC 4616 2's authorization
    /// identity); without this, such a request is refused.
    pub fn allow_acting_as(mut self, user: impl Into<String>, identity: impl Into<String>) -> Self {
        self.acting_as.push((user.into(), identity.into()));
        self
    }

    /// True when there is no account.
    pub fn is_empty(&self) -> bool {
        self.passwords.is_empty()
    }

    /// The identity for PLAIN or LOGIN credentials that match an account, else
    /// `535 5.7.8` (other mechanisms are refused too). The password is compared in constant
    /// time. A PLAIN request to act as another identity is granted (that identity is returned)
    /// only if [`Accounts::allow_acting_as`] allows it.
    pub fn verify(&self, credentials: &smtp_proto::Credentials) -> Result<String, Reply> {
        use sha2::{Digest as _, Sha256};
        use smtp_proto::Credentials;
        use subtle::ConstantTimeEq as _;
        let (user, password) = match credentials {
            Credentials::Plain(p) => (p.authcid.as_str(), p.password.as_str()),
            Credentials::Login { username, password } => (username.as_str(), password.as_str()),
            _ => return Err(Reply::AUTH_INVALID),
        };
        // Digests of equal length, compared in constant time, and a comparison even for an
        // unknown user: the time taken tells neither the password's length nor whether the
        // user exists.
        let known = self.passwords.get(user);
        let expected = Sha256::digest(known.map_or(&[0xff][..], |p| p.as_bytes()));
        let given = Sha256::digest(password.as_bytes());
        let matches = bool::from(expected.ct_eq(&given));
        if known.is_none() || !matches {
            return Err(Reply::AUTH_INVALID);
        }
        match credentials.authzid() {
            None => Ok(user.to_string()),
            Some(asked)
                if self
                    .acting_as
                    .iter()
                    .any(|(u, identity)| u == user && identity == asked) =>
            {
                Ok(asked.to_string())
            }
            Some(_) => Err(Reply::AUTH_INVALID),
        }
    }
}

/// Accepts every message and throws it away.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sink;

#[async_trait]
impl Handler for Sink {}

/// Prints each message, envelope first, like aiosmtpd's `Debugging` handler.
pub struct Debugging {
    out: Mutex<Box<dyn Write + Send>>,
}

impl Debugging {
    /// Prints to standard output.
    pub fn stdout() -> Self {
        Self::new(std::io::stdout())
    }

    /// Prints to this writer.
    pub fn new(out: impl Write + Send + 'static) -> Self {
        Self {
            out: Mutex::new(Box::new(out)),
        }
    }
}

impl std::fmt::Debug for Debugging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Debugging")
    }
}

#[async_trait]
impl Handler for Debugging {
    async fn data(&self, ctx: &mut Context, body: Body) -> Result<(), Reply> {
        let (info, env) = (ctx.session(), ctx.envelope());
        let msg = body.collect().await?;
        let mut text = String::from("---------- MESSAGE FOLLOWS ----------\n");
        let params = env.params.to_string();
        if !params.is_empty() {
            text.push_str(&format!("mail options:{params}\n"));
        }
        if let Some(peer) = info.client_addr() {
            text.push_str(&format!("X-Peer: {peer}\n"));
        }
        let from = env
            .from
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        let to: Vec<String> = env.recipients.iter().map(|r| r.path.to_string()).collect();
        text.push_str(&format!(
            "X-MailFrom: {from}\nX-RcptTo: {}\n",
            to.join(", ")
        ));
        text.push_str(&String::from_utf8_lossy(msg.raw()).replace("\r\n", "\n"));
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str("------------ END MESSAGE ------------\n");
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        out.write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|_| Reply::LOCAL_ERROR)
    }
}

/// A message kept by [`Memory`].
#[derive(Debug, Clone)]
pub struct Stored {
    /// The session it came in.
    pub session: SessionInfo,
    /// Its envelope.
    pub envelope: Envelope,
    /// The message.
    pub message: Message,
}

/// Keeps every message in memory; clone it to share the store with the code that started
/// the server.
#[derive(Debug, Clone, Default)]
pub struct Memory {
    stored: Arc<Mutex<Vec<Stored>>>,
    arrived: Arc<Notify>,
}

impl Memory {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every message so far.
    pub fn messages(&self) -> Vec<Stored> {
        self.stored
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Adds a message, as if it had arrived (for handlers that wrap a `Memory`).
    pub fn push(&self, stored: Stored) {
        self.stored
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(stored);
        self.arrived.notify_waiters();
    }

    /// Waits until at least `n` messages are stored, at most `timeout`: `Ok` with every
    /// message, or `Err` with what did arrive.
    pub async fn wait_for(
        &self,
        n: usize,
        timeout: std::time::Duration,
    ) -> Result<Vec<Stored>, Vec<Stored>> {
        let wait = async {
            loop {
                let notified = self.arrived.notified();
                let all = self.messages();
                if all.len() >= n {
                    return all;
                }
                notified.await;
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| self.messages())
    }
}

#[async_trait]
impl Handler for Memory {
    async fn data(&self, ctx: &mut Context, body: Body) -> Result<(), Reply> {
        let message = body.collect().await?;
        self.push(Stored {
            session: ctx.session().clone(),
            envelope: ctx.envelope().clone(),
            message,
        });
        Ok(())
    }
}

/// Writes each message into a Maildir: a `Return-Path` and a `Received` trace header, then
/// the message. The file is written in `tmp/`, synced to disk, then renamed into `new/`, and
/// only then is the client answered 250: a crash leaves nothing partial in `new/` and loses
/// nothing that was acknowledged. A full disk or a permission error answers `451 4.3.0`.
///
/// Lines end in LF, as Maildir readers expect (Postfix's local delivery, Dovecot's default,
/// Python's `mailbox`); [`Maildir::keep_crlf`] keeps the bytes exactly as received instead.
/// Mail is private: files are created `0600` and the directories this creates `0700`,
/// whatever the process's umask.
#[derive(Debug)]
pub struct Maildir {
    root: PathBuf,
    hostname: String,
    keep_crlf: bool,
}

/// Creates `dir` and its missing parents with mode 0700 (the umask can only take bits away,
/// so the mode is set again on each directory made here).
fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent()
        && !parent.as_os_str().is_empty()
    {
        private_dir(parent)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

impl Maildir {
    /// A Maildir at `root`; `tmp/`, `new/` and `cur/` (and `root` itself) are created, mode
    /// 0700, if missing.
    pub fn new(root: impl Into<PathBuf>) -> std::io::Result<Self> {
        let root = root.into();
        for sub in ["tmp", "new", "cur"] {
            private_dir(&root.join(sub))?;
        }
        Ok(Self {
            root,
            hostname: crate::server::default_hostname(),
            keep_crlf: false,
        })
    }

    /// The name in the `Received` header (by default, this machine's host name).
    pub fn hostname(mut self, name: impl Into<String>) -> Self {
        self.hostname = name.into();
        self
    }

    /// Keeps the wire's CRLF line endings instead of storing LF (off by default).
    pub fn keep_crlf(mut self, on: bool) -> Self {
        self.keep_crlf = on;
        self
    }

    /// The Maildir's root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn unique_name(&self) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        format!(
            "{}.M{}P{}Q{}.{}",
            now.as_secs(),
            now.subsec_micros(),
            std::process::id(),
            // One sequence for the process: two Maildir values on one directory never make
            // the same name.
            MAILDIR_SEQ.fetch_add(1, Ordering::Relaxed),
            self.hostname.replace(['/', ':'], "_")
        )
    }
}

static MAILDIR_SEQ: AtomicU64 = AtomicU64::new(0);

/// Turns CRLF into LF in a stream of chunks (a CR at the end of one chunk waits for the next);
/// a CR not followed by LF is kept.
#[derive(Debug, Default)]
pub(crate) struct CrlfToLf {
    pending_cr: bool,
}

impl CrlfToLf {
    pub(crate) fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        if chunk.is_empty() {
            return;
        }
        let mut rest = chunk;
        if std::mem::take(&mut self.pending_cr) && rest.first() != Some(&b'\n') {
            out.push(b'\r');
        }
        while let Some(i) = memchr::memchr(b'\r', rest) {
            out.extend_from_slice(&rest[..i]);
            match rest.get(i + 1) {
                Some(b'\n') => {}
                Some(_) => out.push(b'\r'),
                None => self.pending_cr = true,
            }
            rest = &rest[i + 1..];
        }
        out.extend_from_slice(rest);
    }

    pub(crate) fn finish(&mut self, out: &mut Vec<u8>) {
        if std::mem::take(&mut self.pending_cr) {
            out.push(b'\r');
        }
    }
}

fn storage_error(e: &std::io::Error) -> Reply {
    tracing::warn!("maildir: {e}");
    Reply::new(
        451,
        Some(EnhancedStatus::new(4, 3, 0)),
        "Requested action aborted: local error in processing",
    )
}

/// The `with` keyword of a `Received` header (RFC 3848; RFC 6531 3.7.3 for SMTPUTF8):
/// `ESMTP`, `LMTP` or `UTF8SMTP`/`UTF8LMTP`, then `S` for TLS, `A` for AUTH.
pub fn with_protocol(info: &SessionInfo, smtputf8: bool) -> String {
    let mut p = String::from(match (smtputf8, info.lmtp) {
        (false, false) => "ESMTP",
        (false, true) => "LMTP",
        (true, false) => "UTF8SMTP",
        (true, true) => "UTF8LMTP",
    });
    if info.tls.is_some() {
        p.push('S');
    }
    if info.auth.is_some() {
        p.push('A');
    }
    p
}

/// A `Received` trace header (RFC 5321 4.4), ending in CRLF: the client's HELO name and
/// address, our name, the protocol (RFC 3848), the message's id (the one in the `250` reply),
/// and the time.
pub fn received_header(info: &SessionInfo, envelope: &Envelope, by: &str) -> String {
    let protocol = with_protocol(info, envelope.params.smtputf8);
    let from = info.helo.as_deref().unwrap_or("unknown");
    let addr = info
        .client_addr()
        .map_or_else(|| "local".to_string(), |a| format!("[{}]", a.ip()));
    let id = info
        .queue_id
        .clone()
        .unwrap_or_else(|| format!("{:X}", info.id));
    format!(
        "Received: from {from} ({addr})\r\n\tby {by} with {protocol} id {id};\r\n\t{}\r\n",
        rfc5322_date(SystemTime::now())
    )
}

/// An RFC 5322 date in UTC, such as `Sun, 22 Nov 2026 08:04:17 +0000` (mail-parser's
/// `DateTime` writes it).
pub fn rfc5322_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    mail_parser::DateTime::from_timestamp(i64::try_from(secs).unwrap_or(i64::MAX)).to_rfc822()
}

#[async_trait]
impl Handler for Maildir {
    async fn data(&self, ctx: &mut Context, mut body: Body) -> Result<(), Reply> {
        let (info, env) = (ctx.session(), ctx.envelope());
        let name = self.unique_name();
        let tmp = self.root.join("tmp").join(&name);
        let from = env
            .from
            .as_ref()
            .map_or_else(|| "<>".to_string(), ToString::to_string);
        let trace = format!(
            "Return-Path: {from}\r\n{}",
            received_header(info, env, &self.hostname)
        );
        let result = async {
            let mut file = tokio::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .await?;
            // BINARYMIME content is binary (RFC 3030 3): a CRLF in it is data, kept as is.
            let binary = env.params.body == Some(smtp_proto::BodyType::BinaryMime);
            let mut lf = (!self.keep_crlf && !binary).then(CrlfToLf::default);
            let mut out = Vec::new();
            let mut write = async |bytes: &[u8], lf: &mut Option<CrlfToLf>| match lf {
                Some(lf) => {
                    out.clear();
                    lf.push(bytes, &mut out);
                    file.write_all(&out).await
                }
                None => file.write_all(bytes).await,
            };
            write(trace.as_bytes(), &mut lf).await?;
            let mut incomplete = None;
            while let Some(chunk) = body.chunk().await {
                match chunk {
                    Ok(chunk) => write(&chunk, &mut lf).await?,
                    Err(e) => {
                        incomplete = Some(e);
                        break;
                    }
                }
            }
            if let Some(e) = incomplete {
                return Ok(Err(e));
            }
            if let Some(lf) = &mut lf {
                let mut tail = Vec::new();
                lf.finish(&mut tail);
                file.write_all(&tail).await?;
            }
            file.sync_all().await?;
            drop(file);
            tokio::fs::rename(&tmp, self.root.join("new").join(&name)).await?;
            Ok::<_, std::io::Error>(Ok(()))
        }
        .await;
        match result {
            Ok(Ok(())) => {
                // The rename is durable once the directory is synced.
                if let Ok(dir) = tokio::fs::File::open(self.root.join("new")).await {
                    let _ = dir.sync_all().await;
                }
                Ok(())
            }
            Ok(Err(_)) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                Err(Reply::LOCAL_ERROR)
            }
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                Err(storage_error(&e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn crlf_to_lf_however_split() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"a\r\nb\r\n", b"a\nb\n"),
            (b"bare\rcr\r\n", b"bare\rcr\n"),
            (b"bare\nlf\r\n", b"bare\nlf\n"),
            (b"\r\r\n\r", b"\r\n\r"),
            (b"", b""),
            (b"\r", b"\r"),
        ];
        for (input, want) in cases {
            for split in 0..=input.len() {
                let mut c = CrlfToLf::default();
                let mut out = Vec::new();
                c.push(&input[..split], &mut out);
                c.push(&input[split..], &mut out);
                c.finish(&mut out);
                assert_eq!(out, *want, "{input:?} split at {split}");
            }
            let mut c = CrlfToLf::default();
            let mut out = Vec::new();
            for b in input.iter() {
                c.push(std::slice::from_ref(b), &mut out);
            }
            c.finish(&mut out);
            assert_eq!(out, *want, "{input:?} byte by byte");
            // Empty chunks anywhere change nothing.
            let mut c = CrlfToLf::default();
            let mut out = Vec::new();
            for b in input.iter() {
                c.push(b"", &mut out);
                c.push(std::slice::from_ref(b), &mut out);
                c.push(b"", &mut out);
            }
            c.finish(&mut out);
            assert_eq!(out, *want, "{input:?} with empty chunks");
        }
    }

    #[test]
    fn with_keywords() {
        let mut info = SessionInfo::default();
        let table = [
            (false, false, false, false, "ESMTP"),
            (false, true, false, false, "ESMTPS"),
            (false, true, true, false, "ESMTPSA"),
            (false, false, true, false, "ESMTPA"),
            (true, false, false, false, "LMTP"),
            (true, true, true, false, "LMTPSA"),
            (false, false, false, true, "UTF8SMTP"),
            (false, true, true, true, "UTF8SMTPSA"),
            (true, false, true, true, "UTF8LMTPA"),
        ];
        for (lmtp, tls, auth, utf8, want) in table {
            info.lmtp = lmtp;
            info.tls = tls.then(crate::TlsInfo::default);
            info.auth = auth.then(|| "ann".to_string());
            assert_eq!(with_protocol(&info, utf8), want);
        }
    }

    #[test]
    fn dates() {
        assert_eq!(rfc5322_date(UNIX_EPOCH), "Thu, 1 Jan 1970 00:00:00 +0000");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_334_657);
        assert_eq!(rfc5322_date(t), "Sun, 22 Nov 2026 08:04:17 +0000");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc5322_date(leap), "Tue, 29 Feb 2000 00:00:00 +0000");
    }
}
