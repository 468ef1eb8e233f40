//! Test harnesses for code that sends or receives mail.
//!
//! - [`TestServer`]: a throwaway capture server on `127.0.0.1:0`, ready when `start` returns,
//!   with `wait_for(n, timeout)`, the parsed messages, optional STARTTLS / implicit TLS with a
//!   generated certificate, AUTH, LMTP, size limits, and [`Faults`] to inject.
//! - [`FaultHandler`]: the same faults around any [`smtp_server::Handler`]: refused
//!   recipients, temporary failures, fail-N-times-then-accept, delays, dropped connections,
//!   a rate limit. Deterministic.
//! - [`Client`]: a scripted client over TCP or over an in-memory connection running the real
//!   driver, with `expect(code)` that prints the transcript on failure.
//! - [`Pair`]: an [`smtp_proto::Session`] on a virtual clock, without a runtime: for protocol
//!   tests and for people writing their own drivers.
//!
//! No Docker, no HTTP, no sleeps: every wait is on an event, bounded by a timeout.
//!
//! The virtual-clock pair:
//!
//! ```
//! use smtp_testkit::Pair;
//! use smtp_proto::Config;
//!
//! let mut pair = Pair::new(Config::new("mx.example"));
//! assert_eq!(pair.codes(), [220]);
//! pair.send("EHLO client\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n");
//! assert_eq!(pair.codes(), [250, 250, 250, 354]);
//! pair.send("Subject: hi\r\n\r\nbody\r\n.\r\nQUIT\r\n");
//! assert_eq!(pair.codes(), [250, 221]);
//! assert_eq!(pair.messages()[0].body, b"Subject: hi\r\n\r\nbody\r\n");
//! assert!(pair.is_closed());
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod client;
mod server;

pub use client::{Client, Response};
pub use server::{
    Mail, MailEnvelope, Recorder, Subscription, TestServer, TestServerBuilder, TestTls, WaitError,
};
pub use smtp_proto;
pub use smtp_server::faults::{DropPoint, FaultHandler, Faults, Step};
// The virtual-clock pair lives beside the session (`smtp_proto::testing`), so that the
// protocol tests run on smtp-proto alone; it is re-exported here, where tests look for it.
pub use smtp_proto::testing::{Decision, Pair, Peer, Received, drive};
pub use smtp_server;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
