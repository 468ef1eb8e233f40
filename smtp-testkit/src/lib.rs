//! Test harnesses for SMTP code.
//!
//! Today: [`Pair`], which drives an [`smtp_proto::Session`] with scripted client input and a
//! virtual clock, deterministically and without a runtime: for protocol tests, and for users
//! writing their own drivers. The `TestServer` capture server, the scripted client over the
//! real tokio driver and fault injection arrive with `smtp-server`'s driver.
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

mod pair;

pub use pair::{Decision, Pair, Received};
pub use smtp_proto;
