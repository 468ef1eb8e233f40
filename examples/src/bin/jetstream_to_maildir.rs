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
    // Mail is private: the directories this makes are 0700.
    for sub in ["tmp", "new", "cur"] {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir.join(sub))?;
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
        // A missed heartbeat or a reconnection: the stream goes on.
        let message = match message {
            Ok(m) => m,
            Err(e) => {
                eprintln!("jetstream_to_maildir: {e}");
                continue;
            }
        };
        let delivered = tokio::time::timeout(DELIVERY_DEADLINE, deliver(&js, dir, &message)).await;
        match delivered {
            // Durable (or already there): now, and only now, acknowledge. A lost ack means a
            // redelivery, which finds the file.
            Ok(Ok(())) => {
                if let Err(e) = message.double_ack().await {
                    eprintln!("jetstream_to_maildir: ack: {e}");
                }
            }
            // A message that can never be delivered is given up after a few tries.
            Ok(Err(e)) if poison(&message) => {
                eprintln!("jetstream_to_maildir: giving up on a message: {e}");
                let _ = message.ack_with(jetstream::AckKind::Term).await;
            }
            // Not acknowledged: JetStream delivers it again after ack_wait.
            Ok(Err(e)) => eprintln!("jetstream_to_maildir: not delivered, will retry: {e}"),
            Err(_) => eprintln!("jetstream_to_maildir: delivery timed out, will retry"),
        }
    }
}

/// How long one delivery may take (a large message read from the Object Store included).
const DELIVERY_DEADLINE: Duration = Duration::from_secs(120);

/// A message delivered this many times without success is given up (terminated).
const MAX_TRIES: i64 = 5;

fn poison(m: &jetstream::Message) -> bool {
    m.info().is_ok_and(|i| i.delivered >= MAX_TRIES)
}

/// Syncs `dir` (a file's name in it is durable once its directory is).
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Writes the message into `dir` once (nothing if it is there already), durably.
async fn deliver(js: &jetstream::Context, dir: &Path, m: &jetstream::Message) -> Result<(), Error> {
    let h = m.headers.as_ref().ok_or("a message without headers")?;
    let id = h
        .get(headers::MSG_ID)
        .or_else(|| h.get(headers::ID))
        .ok_or("a message without Nats-Msg-Id")?;
    let name = file_name(id.as_str());
    if delivered(dir, &name)? {
        // Delivered before; perhaps not yet durable if that delivery crashed after the link.
        sync_dir(&dir.join("new"))?;
        return Ok(());
    }
    // A name no other consumer (another process, another host on a shared Maildir) uses.
    let tmp = dir
        .join("tmp")
        .join(format!("{name}.{}.{:016x}", std::process::id(), random()));
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
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
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e.into()),
    }
    sync_dir(&dir.join("new"))?;
    Ok(())
}

/// 64 random bits (from the standard library's randomly keyed hasher).
fn random() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::UNIX_EPOCH
            .elapsed()
            .map_or(0, |d| d.as_nanos() as u64),
    );
    h.finish()
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
/// Dovecot may add `,S=SIZE` first. The scan of `cur/` costs a directory read per message
/// not in `new/`; a consumer of a very large Maildir would keep an index instead.
fn delivered(dir: &Path, name: &str) -> std::io::Result<bool> {
    if dir.join("new").join(name).exists() {
        return Ok(true);
    }
    for entry in std::fs::read_dir(dir.join("cur"))? {
        let entry: PathBuf = entry?.file_name().into();
        let entry = entry.to_string_lossy();
        if let Some(rest) = entry.strip_prefix(name)
            && (rest.starts_with(':') || rest.starts_with(','))
        {
            return Ok(true);
        }
    }
    Ok(false)
}
