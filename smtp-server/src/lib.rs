//! An embeddable async ESMTP/LMTP server on tokio.
//!
//! Implement [`Handler`] (every method has a sensible default), build a [`Server`], and serve.
//! The protocol itself is [`smtp_proto::Session`], a sans-IO state machine; this crate drives
//! it over tokio streams: one task per connection, a reusable read buffer, one write per
//! pipelined group, deadlines from the session, STARTTLS and implicit TLS with tokio-rustls,
//! a connection limit, and graceful shutdown.
//!
//! ```text
//!   TcpListener / UnixListener ── accept ──▶ task per connection
//!        (max connections: 421)               │ TLS (implicit, or after STARTTLS)
//!                                             ▼
//!   socket ──read──▶ Session::handle_input ──▶ events ──▶ Handler::{connect, hello, auth,
//!          ◀─write── Output::Transmit                        mail, rcpt, data, ...}
//!                                  message content ──▶ Body (Bytes, backpressure)
//! ```
//!
//! What it does not do: deliver, store or relay mail (that is the handler's job), or choose a
//! TLS certificate for you.
//!
//! ```no_run
//! use smtp_server::{async_trait, Body, Handler, Server, SessionInfo};
//! use smtp_server::smtp_proto::{Envelope, Reply};
//!
//! struct Print;
//!
//! #[async_trait]
//! impl Handler for Print {
//!     async fn data(&self, _: &SessionInfo, env: &Envelope, body: Body) -> Result<(), Reply> {
//!         let msg = body.collect().await.map_err(|_| Reply::LOCAL_ERROR)?;
//!         let subject = msg.parsed().and_then(|m| m.subject().map(str::to_string));
//!         println!("from {:?}: {subject:?}", env.from);
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), smtp_server::Error> {
//! let server = Server::builder().listen("127.0.0.1:2525").handler(Print).bind().await?;
//! server.serve().await
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod blackhole;
mod body;
mod driver;
mod error;
mod handler;
mod handlers;
mod relay;
mod server;
mod tls;

pub use async_trait::async_trait;
pub use blackhole::Blackhole;
pub use body::{Body, Message};
pub use error::{BodyError, Error};
pub use handler::{Delegate, Handler, SessionInfo, TlsInfo, VRFY_CANNOT};
pub use handlers::{
    Accounts, Debugging, Maildir, Memory, Sink, Stored, received_header, rfc5322_date,
    with_protocol,
};
pub use relay::Relay;
pub use server::{
    Listen, Server, ServerBuilder, ServerHandle, default_hostname, serve_stream, serve_stream_arc,
};
pub use smtp_proto;
pub use tls::{load_pem, load_pem_files};
/// The TLS library, for building a `ServerConfig` ([`ServerBuilder::tls`]) or a `ClientConfig`
/// ([`Relay::starttls`]) by hand.
pub use tokio_rustls::rustls;
