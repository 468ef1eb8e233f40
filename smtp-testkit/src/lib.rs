//! Test harnesses for SMTP code: a capture server, a scripted client, fault injection.
//!
//! **Scaffolding only, for now.** The virtual-clock `Pair`, the scripted client and the
//! `TestServer` arrive with the session state machine and the tokio driver. Until then, this
//! crate re-exports [`smtp_proto`] so that a dependency on it already compiles.
#![forbid(unsafe_code)]

pub use smtp_proto;
