//! Embeddable async ESMTP/LMTP server on tokio.
//!
//! **Scaffolding only, for now.** This crate will drive [`smtp_proto`]'s sans-IO session over
//! tokio streams and call the user's `Handler`. Until it lands, the protocol building blocks
//! (command parsing, replies, DATA/BDAT decoding, PROXY headers, SASL) are usable directly
//! from [`smtp_proto`].
#![forbid(unsafe_code)]

pub use smtp_proto;
