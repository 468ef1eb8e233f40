//! [`Maildir`]: each message in a file, durable before the 250.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use smtp_proto::{EnhancedStatus, Reply};
use tokio::io::AsyncWriteExt;

use super::trace::received_header;
use crate::body::Body;
use crate::handler::{Context, Handler};

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
            crate::handler::process_id(),
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
}
