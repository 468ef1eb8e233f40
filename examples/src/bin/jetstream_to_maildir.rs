//! The other half of the scale-out picture: a durable JetStream pull consumer that delivers
//! each message the receivers published (`smtp-server --handler jetstream:...`) into a
//! Maildir, and acknowledges it only once the file is on disk.
//!
//! ```text
//! smtp-server --listen 127.0.0.1:2525 --handler jetstream:nats://127.0.0.1:4222 --jetstream-create
//! cargo run -p examples --bin jetstream_to_maildir -- nats://127.0.0.1:4222 ./Maildir
//! ```
//!
//! Arguments: `NATS_URL MAILDIR [STREAM [CONSUMER]]` (defaults `MAIL`, `maildir`). Runs until
//! SIGINT or SIGTERM.
//!
//! **Exactly one file per message**, also across crashes and redeliveries: the file's name is
//! the message's `Nats-Msg-Id`. It is written in `tmp/`, synced, then hard-linked into `new/`
//! (which fails if the name exists: a redelivery of a message already delivered), the
//! directory synced, and only then is the message acknowledged (a double ack: the server
//! confirms it). A crash anywhere before the ack means a redelivery, which finds the file and
//! only acknowledges. Claim checks (`SMTP-Object`) are read from the Object Store in chunks.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use smtp_server::async_nats::{self, jetstream};
use smtp_server::jetstream::headers;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, dir, rest @ ..] = args.as_slice() else {
        eprintln!("usage: jetstream_to_maildir NATS_URL MAILDIR [STREAM [CONSUMER]]");
        std::process::exit(2);
    };
    let stream = rest.first().map_or("MAIL", String::as_str);
    let consumer = rest.get(1).map_or("maildir", String::as_str);
    if let Err(e) = run(url, Path::new(dir), stream, consumer).await {
        eprintln!("jetstream_to_maildir: {e}");
        std::process::exit(1);
    }
}

async fn run(url: &str, dir: &Path, stream: &str, name: &str) -> Result<(), Error> {
    for sub in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    let client = async_nats::connect(url).await?;
    let js = jetstream::new(client);
    let consumer = js
        .get_stream(stream)
        .await?
        .get_or_create_consumer(
            name,
            jetstream::consumer::pull::Config {
                durable_name: Some(name.to_string()),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                // Unacknowledged messages come again after this long.
                ack_wait: Duration::from_secs(10),
                ..Default::default()
            },
        )
        .await?;
    eprintln!(
        "jetstream_to_maildir: delivering {stream} to {}",
        dir.display()
    );
    let mut messages = consumer.messages().await?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        let message = tokio::select! {
            m = messages.next() => m,
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = term.recv() => return Ok(()),
        };
        let Some(message) = message else {
            return Ok(());
        };
        let message = message?;
        match deliver(&js, dir, &message).await {
            // Durable (or already there): now, and only now, acknowledge.
            Ok(_) => message.double_ack().await?,
            // Not acknowledged: JetStream delivers it again after ack_wait.
            Err(e) => eprintln!("jetstream_to_maildir: not delivered, will retry: {e}"),
        }
    }
}

/// Writes the message into `dir` once; `Ok(false)` if it was there already.
async fn deliver(
    js: &jetstream::Context,
    dir: &Path,
    m: &jetstream::Message,
) -> Result<bool, Error> {
    let h = m.headers.as_ref().ok_or("a message without headers")?;
    let id = h
        .get(headers::MSG_ID)
        .or_else(|| h.get(headers::ID))
        .ok_or("a message without Nats-Msg-Id")?;
    let name = file_name(id.as_str());
    if delivered(dir, &name)? {
        return Ok(false);
    }
    let tmp = dir
        .join("tmp")
        .join(format!("{name}.{}", std::process::id()));
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .await?;
    match h.get(headers::OBJECT) {
        None => file.write_all(&m.payload).await?,
        Some(object) => {
            // A claim check: the message is in the Object Store, read in chunks.
            let (bucket, object) = object.as_str().split_once('/').ok_or("bad SMTP-Object")?;
            let mut reader = js.get_object_store(bucket).await?.get(object).await?;
            let mut buf = vec![0; 64 << 10];
            loop {
                let n = reader.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                file.write_all(&buf[..n]).await?;
            }
        }
    }
    file.sync_all().await?;
    drop(file);
    let linked = std::fs::hard_link(&tmp, dir.join("new").join(&name));
    std::fs::remove_file(&tmp)?;
    match linked {
        Ok(()) => {}
        // Delivered meanwhile (two consumers, or a redelivery racing this one).
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    std::fs::File::open(dir.join("new"))?.sync_all()?;
    Ok(true)
}

/// A Maildir file name from a `Nats-Msg-Id` (hex or our id: kept; anything else made safe).
fn file_name(id: &str) -> String {
    let safe: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{safe}.jetstream")
}

/// Whether a file of this name is in `new/`, or in `cur/` (where a reader moved it, adding
/// `:2,FLAGS`).
fn delivered(dir: &Path, name: &str) -> std::io::Result<bool> {
    if dir.join("new").join(name).exists() {
        return Ok(true);
    }
    let prefix = format!("{name}:");
    for entry in std::fs::read_dir(dir.join("cur"))? {
        let entry: PathBuf = entry?.file_name().into();
        if entry.to_string_lossy().starts_with(&prefix) {
            return Ok(true);
        }
    }
    Ok(false)
}
