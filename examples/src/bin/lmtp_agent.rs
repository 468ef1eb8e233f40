//! An LMTP delivery agent (RFC 2033): a mailbox per recipient, and one answer per recipient
//! after the message, so that the MTA in front knows exactly who got it.
//!
//! ```text
//! cargo run -p examples --bin lmtp_agent -- /tmp/lmtp.sock     # Unix socket, as MTAs use
//! cargo run -p examples --bin lmtp_agent -- 127.0.0.1:2424     # or TCP
//! ```
//! Recipients whose local part starts with `full` are answered `452 4.2.2 Mailbox full`.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::sync::Mutex;

use smtp_server::smtp_proto::{EnhancedStatus, Reply};
use smtp_server::{Body, Context, Handler, Listen, Server, async_trait};

#[derive(Default)]
struct Mailboxes(Mutex<HashMap<String, usize>>);

#[async_trait]
impl Handler for Mailboxes {
    /// `Ok` answers every recipient not refused on its own with `ctx.refuse_recipient`.
    async fn data(&self, ctx: &mut Context, body: Body) -> Result<(), Reply> {
        let msg = body.collect().await?;
        let mut full = Vec::new();
        {
            let mut boxes = self.0.lock().unwrap_or_else(|e| e.into_inner());
            for (i, r) in ctx.envelope().recipients.iter().enumerate() {
                let rcpt = r.path.to_string();
                if r.path
                    .mailbox()
                    .is_some_and(|m| m.local_part().starts_with("full"))
                {
                    full.push(i);
                    continue;
                }
                *boxes.entry(rcpt.clone()).or_default() += 1;
                println!(
                    "delivered {} bytes to {rcpt} ({} so far)",
                    msg.raw().len(),
                    boxes[&rcpt]
                );
            }
        }
        for i in full {
            ctx.refuse_recipient(
                i,
                Reply::new(452, Some(EnhancedStatus::new(4, 2, 2)), "Mailbox full"),
            );
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), smtp_server::Error> {
    let target = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:2424".into());
    let builder = Server::builder()
        .hostname("lmtp.localhost")
        .lmtp(true)
        .handler(Mailboxes::default());
    let builder = if target.starts_with('/') {
        builder.listener(Listen::unix(&target))
    } else {
        builder.listen(target.clone())
    };
    let server = builder.bind().await?;
    eprintln!("LMTP on {target}");
    server
        .serve_with_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}
