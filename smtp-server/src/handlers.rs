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
use crate::handler::{Handler, SessionInfo};

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
/// ```
#[derive(Debug, Clone, Default)]
pub struct Accounts(std::collections::HashMap<String, String>);

impl Accounts {
    /// Accounts from (user, password) pairs.
    pub fn new<U: Into<String>, P: Into<String>>(pairs: impl IntoIterator<Item = (U, P)>) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(u, p)| (u.into(), p.into()))
                .collect(),
        )
    }

    /// Adds an account.
    pub fn insert(&mut self, user: impl Into<String>, password: impl Into<String>) {
        self.0.insert(user.into(), password.into());
    }

    /// True when there is no account.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The identity for PLAIN or LOGIN credentials that match an account, else
    /// `535 5.7.8` (other mechanisms are refused too).
    pub fn verify(&self, credentials: &smtp_proto::Credentials) -> Result<String, Reply> {
        use smtp_proto::Credentials;
        let (user, password) = match credentials {
            Credentials::Plain(p) => (p.authcid.as_str(), p.password.as_str()),
            Credentials::Login { username, password } => (username.as_str(), password.as_str()),
            _ => return Err(Reply::AUTH_INVALID),
        };
        match self.0.get(user) {
            Some(p) if p == password => Ok(user.to_string()),
            _ => Err(Reply::AUTH_INVALID),
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
    async fn data(&self, info: &SessionInfo, env: &Envelope, body: Body) -> Result<(), Reply> {
        let msg = body.collect().await.map_err(|_| Reply::LOCAL_ERROR)?;
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

    /// Waits until at least `n` messages are stored.
    pub async fn wait_for(&self, n: usize) -> Vec<Stored> {
        loop {
            let notified = self.arrived.notified();
            let all = self.messages();
            if all.len() >= n {
                return all;
            }
            notified.await;
        }
    }
}

#[async_trait]
impl Handler for Memory {
    async fn data(&self, info: &SessionInfo, env: &Envelope, body: Body) -> Result<(), Reply> {
        let message = body.collect().await.map_err(|_| Reply::LOCAL_ERROR)?;
        self.push(Stored {
            session: info.clone(),
            envelope: env.clone(),
            message,
        });
        Ok(())
    }
}

/// Writes each message into a Maildir: the bytes exactly as received, after a `Return-Path`
/// and a `Received` trace header. The file is written in `tmp/`, synced to disk, then renamed
/// into `new/`, and only then is the client answered 250: a crash leaves nothing partial in
/// `new/` and loses nothing that was acknowledged. A full disk or a permission error answers
/// `451 4.3.0`.
#[derive(Debug)]
pub struct Maildir {
    root: PathBuf,
    hostname: String,
}

impl Maildir {
    /// A Maildir at `root`; `tmp/`, `new/` and `cur/` are created if missing.
    pub fn new(root: impl Into<PathBuf>) -> std::io::Result<Self> {
        let root = root.into();
        for sub in ["tmp", "new", "cur"] {
            std::fs::create_dir_all(root.join(sub))?;
        }
        Ok(Self {
            root,
            hostname: "localhost".into(),
        })
    }

    /// The name in the `Received` header.
    pub fn hostname(mut self, name: impl Into<String>) -> Self {
        self.hostname = name.into();
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

fn storage_error(e: &std::io::Error) -> Reply {
    tracing::warn!("maildir: {e}");
    Reply::new(
        451,
        Some(EnhancedStatus::new(4, 3, 0)),
        "Requested action aborted: local error in processing",
    )
}

/// A `Received` trace header (RFC 5321 4.4).
pub fn received_header(info: &SessionInfo, by: &str) -> String {
    let protocol = match (info.tls.is_some(), info.auth.is_some()) {
        (false, false) => "ESMTP",
        (true, false) => "ESMTPS",
        (false, true) => "ESMTPA",
        (true, true) => "ESMTPSA",
    };
    let from = info.helo.as_deref().unwrap_or("unknown");
    let addr = info
        .client_addr()
        .map_or_else(|| "local".to_string(), |a| format!("[{}]", a.ip()));
    format!(
        "Received: from {from} ({addr})\r\n\tby {by} with {protocol} id {:x};\r\n\t{}\r\n",
        info.id,
        rfc5322_date(SystemTime::now())
    )
}

/// An RFC 5322 date in UTC, such as `Sun, 22 Nov 2026 08:04:17 +0000`.
pub fn rfc5322_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} +0000",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

#[async_trait]
impl Handler for Maildir {
    async fn data(&self, info: &SessionInfo, env: &Envelope, mut body: Body) -> Result<(), Reply> {
        let name = self.unique_name();
        let tmp = self.root.join("tmp").join(&name);
        let from = env
            .from
            .as_ref()
            .map_or_else(|| "<>".to_string(), ToString::to_string);
        let trace = format!(
            "Return-Path: {from}\r\n{}",
            received_header(info, &self.hostname)
        );
        let result = async {
            let mut file = tokio::fs::File::create(&tmp).await?;
            file.write_all(trace.as_bytes()).await?;
            let mut incomplete = None;
            while let Some(chunk) = body.chunk().await {
                match chunk {
                    Ok(chunk) => file.write_all(&chunk).await?,
                    Err(e) => {
                        incomplete = Some(e);
                        break;
                    }
                }
            }
            if let Some(e) = incomplete {
                return Ok(Err(e));
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
    fn dates() {
        assert_eq!(rfc5322_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 +0000");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_334_657);
        assert_eq!(rfc5322_date(t), "Sun, 22 Nov 2026 08:04:17 +0000");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc5322_date(leap), "Tue, 29 Feb 2000 00:00:00 +0000");
    }
}
