//! [`Sink`] (accept and discard) and [`Debugging`] (print, like aiosmtpd's).

use std::io::Write;
use std::sync::Mutex;

use async_trait::async_trait;
use smtp_proto::Reply;

use crate::body::Body;
use crate::handler::{Context, Handler};

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
