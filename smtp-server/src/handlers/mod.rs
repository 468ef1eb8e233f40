//! The bundled handlers, one file each: [`Sink`], [`Debugging`], [`Memory`], [`Maildir`],
//! [`Relay`], [`Blackhole`](blackhole::Blackhole), and [`Accounts`] for AUTH.

mod accounts;
pub mod blackhole;
pub mod capture;
pub mod faults;
#[cfg(feature = "jetstream")]
pub mod jetstream;
mod maildir;
mod memory;
mod relay;
mod sink;
pub(crate) mod trace;

pub use accounts::Accounts;
pub use maildir::Maildir;
pub use memory::{Memory, Stored};
pub use relay::Relay;
pub use sink::{Debugging, Sink};
pub use trace::{received_header, rfc5322_date, with_protocol};
