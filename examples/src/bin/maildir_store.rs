//! Stores every message in a Maildir: written to `tmp/`, synced, then renamed into `new/`,
//! and only then answered 250, so that a crash never leaves half a message in `new/` nor
//! loses one that was acknowledged.
//!
//! ```text
//! cargo run -p examples --bin maildir_store -- ./Maildir [127.0.0.1:2525]
//! ```
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use smtp_server::smtp_proto::{EnhancedStatus, Reply};
use smtp_server::{Body, Context, Handler, Server, async_trait};
use tokio::io::AsyncWriteExt;

struct Maildir {
    root: PathBuf,
    seq: AtomicU64,
}

fn temporary(e: std::io::Error) -> Reply {
    Reply::new(
        451,
        Some(EnhancedStatus::new(4, 3, 0)),
        format!("Cannot store message: {e}"),
    )
}

#[async_trait]
impl Handler for Maildir {
    async fn data(&self, ctx: &mut Context, mut body: Body) -> Result<(), Reply> {
        let (info, env) = (ctx.session(), ctx.envelope());
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let name = format!(
            "{}.M{}P{}Q{}.smtp",
            now.as_secs(),
            now.subsec_micros(),
            std::process::id(),
            self.seq.fetch_add(1, Ordering::Relaxed)
        );
        let tmp = self.root.join("tmp").join(&name);
        let mut file = tokio::fs::File::create(&tmp).await.map_err(temporary)?;
        let from = env
            .from
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        let trace = format!(
            "Return-Path: {from}\r\nReceived: from {} ({:?}) by maildir_store\r\n",
            info.helo.as_deref().unwrap_or("unknown"),
            info.client_addr()
        );
        let write = async {
            file.write_all(trace.as_bytes()).await?;
            while let Some(chunk) = body.chunk().await {
                let chunk = chunk.map_err(std::io::Error::other)?;
                file.write_all(&chunk).await?;
            }
            file.sync_all().await?;
            tokio::fs::rename(&tmp, self.root.join("new").join(&name)).await
        };
        if let Err(e) = write.await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(temporary(e));
        }
        println!("stored {name}");
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), smtp_server::Error> {
    let mut args = std::env::args().skip(1);
    let root = PathBuf::from(args.next().unwrap_or_else(|| "./Maildir".into()));
    for sub in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(root.join(sub))?;
    }
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:2525".into());
    let server = Server::builder()
        .listen(addr)
        .handler(Maildir {
            root,
            seq: AtomicU64::new(0),
        })
        .bind()
        .await?;
    eprintln!("storing mail from {:?}", server.local_addrs());
    server
        .serve_with_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}
