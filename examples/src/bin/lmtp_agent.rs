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

use smtp_server::smtp_proto::{EnhancedStatus, Envelope, Reply};
use smtp_server::{Body, Handler, Server, SessionInfo, async_trait};

#[derive(Default)]
struct Mailboxes(Mutex<HashMap<String, usize>>);

#[async_trait]
impl Handler for Mailboxes {
    async fn data_lmtp(
        &self,
        _: &SessionInfo,
        env: &Envelope,
        body: Body,
    ) -> Vec<Result<(), Reply>> {
        let Ok(msg) = body.collect().await else {
            return vec![Err(Reply::LOCAL_ERROR); env.recipients.len()];
        };
        let mut boxes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        env.recipients
            .iter()
            .map(|r| {
                let rcpt = r.path.to_string();
                if r.path
                    .mailbox()
                    .is_some_and(|m| m.local_part().starts_with("full"))
                {
                    return Err(Reply::new(
                        452,
                        Some(EnhancedStatus::new(4, 2, 2)),
                        "Mailbox full",
                    ));
                }
                *boxes.entry(rcpt.clone()).or_default() += 1;
                println!(
                    "delivered {} bytes to {rcpt} ({} so far)",
                    msg.raw().len(),
                    boxes[&rcpt]
                );
                Ok(())
            })
            .collect()
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
        builder.listen_unix(&target)
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
