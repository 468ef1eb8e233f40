//! A minimal mail server: prints every message it receives, like `python -m aiosmtpd -n`.
//!
//! ```text
//! cargo run -p examples --bin minimal_server            # listens on 127.0.0.1:8025
//! cargo run -p examples --bin minimal_server -- 0.0.0.0:2525
//! ```
//! Ctrl-C stops it gracefully.
#![forbid(unsafe_code)]

use smtp_server::smtp_proto::Reply;
use smtp_server::{Body, Context, Handler, Server, async_trait};

struct Print;

#[async_trait]
impl Handler for Print {
    async fn data(&self, ctx: &mut Context, body: Body) -> Result<(), Reply> {
        let message = body.collect().await?;
        let envelope = ctx.envelope();
        let from = envelope
            .from
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        let to: Vec<String> = envelope
            .recipients
            .iter()
            .map(|r| r.path.to_string())
            .collect();
        println!("---------- MESSAGE FOLLOWS ----------");
        println!("X-Peer: {:?}", ctx.session().client_addr());
        println!("X-MailFrom: {from}");
        println!("X-RcptTo: {}", to.join(", "));
        println!("{}", String::from_utf8_lossy(message.raw()).trim_end());
        println!("------------ END MESSAGE ------------");
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), smtp_server::Error> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8025".into());
    let server = Server::builder().listen(addr).handler(Print).bind().await?;
    eprintln!("listening on {:?} (Ctrl-C to stop)", server.local_addrs());
    server
        .serve_with_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}
