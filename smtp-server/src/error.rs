//! Errors of the server (not of a session: those are SMTP replies).

use std::io;

/// Why the server could not start or run.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Binding, accepting or another I/O failure.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// A listener could not be bound (address in use, no permission, no such address).
    #[error("{address}: {source}")]
    Bind {
        /// The address (or socket path) as given.
        address: String,
        /// Why.
        source: io::Error,
    },
    /// A certificate or key could not be loaded, or the TLS configuration is incomplete.
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// A setting cannot work (such as a message size limit of 0).
    #[error("configuration: {0}")]
    Config(String),
    /// The builder has no listener.
    #[error("no listener configured")]
    NoListener,
    /// The builder has no handler.
    #[error("no handler configured")]
    NoHandler,
}

/// Why a message body could not be read to its end. The session has already answered the
/// client (552, 554, or the connection is gone); the handler's result is not used.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// The message is larger than the limit (the client got 552 5.3.4).
    #[error("message exceeds the size limit")]
    TooLarge,
    /// Bare CR or LF under the Reject policy (the client got 554 5.6.0).
    #[error("message contains bare CR or LF")]
    BareLineEnding,
    /// The connection ended, timed out, or the transaction was reset before the end.
    #[error("connection lost before the end of the message")]
    Incomplete,
}

impl From<BodyError> for smtp_proto::Reply {
    /// The reply for a message that could not be read: `552 5.3.4` (too large), `554 5.6.0`
    /// (bare line endings), `451 4.3.0` (cut short). The session has usually answered already
    /// (then this reply is not sent); it lets a handler write `body.collect().await?`.
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::TooLarge => Self::MESSAGE_TOO_BIG,
            BodyError::BareLineEnding => Self::BARE_LINE_ENDING,
            BodyError::Incomplete => Self::LOCAL_ERROR,
        }
    }
}
