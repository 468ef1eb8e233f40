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
//!   socket ──read into Session::input_buffer──▶ handle_input
//!   one loop over Session::poll_output:
//!     Output::Transmit ──write (deadline)──▶ socket
//!     Output::Event ──▶ Handler::{connect, hello, auth, mail, rcpt, ...}(&mut Context) ──▶ decision
//!     Output::Content ──▶ Body (Bytes, backpressure) ──▶ Handler::data (its own task)
//! ```
//!
//! What it does not do: deliver, store or relay mail (that is the handler's job), or choose a
//! TLS certificate for you.
//!
//! ```no_run
//! use smtp_server::{async_trait, Body, Context, Handler, Server};
//! use smtp_server::smtp_proto::Reply;
//!
//! struct Print;
//!
//! #[async_trait]
//! impl Handler for Print {
//!     async fn data(&self, ctx: &mut Context, body: Body) -> Result<(), Reply> {
//!         let msg = body.collect().await?;
//!         println!("from {:?}: {:?}", ctx.envelope().sender(), msg.subject());
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

mod body;
mod driver;
mod error;
mod handler;
mod handlers;
#[cfg(feature = "http")]
pub mod http;
mod metrics;
mod pipe;
mod server;
mod tls;

/// The NATS client behind [`JetStream`], for its connection options.
#[cfg(feature = "jetstream")]
pub use async_nats;
pub use async_trait::async_trait;
pub use blackhole::Blackhole;
pub use body::{Body, Message};
pub use error::{BodyError, Error};
#[doc(hidden)]
pub use handler::AsDynHandler;
pub use handler::{Context, Extensions, Handler, SessionInfo, TlsInfo, VRFY_CANNOT};
pub use handlers::Relay;
pub use handlers::blackhole;
pub use handlers::capture::{self, Capture};
pub use handlers::faults;
#[cfg(feature = "jetstream")]
pub use handlers::jetstream::{self, JetStream, JetStreamBuilder, JetStreamError};
pub use handlers::{
    Accounts, Debugging, Maildir, Memory, Sink, Stored, received_header, rfc5322_date,
    with_protocol,
};
/// The MIME parser behind [`Message::parsed`], for its types.
pub use mail_parser;
#[cfg(feature = "metrics")]
pub use metrics::Metrics;
pub use server::{Listen, Server, ServerBuilder, ServerHandle, default_hostname, serve_stream};
pub use smtp_proto;
pub use tls::{load_pem, load_pem_files};
/// The TLS library, for building a `ServerConfig` ([`ServerBuilder::tls`]) or a `ClientConfig`
/// ([`Relay::starttls`]) by hand.
pub use tokio_rustls::rustls;
