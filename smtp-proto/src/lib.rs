//! The SMTP server protocol without I/O: bytes in, replies, events and message bytes out.
//!
//! This crate is the protocol brain of an embeddable ESMTP/LMTP server. **No sockets, no
//! tokio, no clock, no TLS:** the caller reads into the session's bounded buffer, time is
//! passed in, and the TLS upgrade is only signalled. So every behaviour can be tested byte by
//! byte, in virtual time ([`testing::Pair`], feature `testing`), and fuzzed.
//!
//! ```text
//!   bytes from the client                                         bytes to the client
//!          │                                                              ▲
//!          ▼                                                              │
//!   Session::input_buffer() + handle_input(now)                           │
//!          │   PROXY header (optional) ─ ProxyHeader::parse               │
//!          │   command lines ─ LineFramer ─ Command::parse                │
//!          │   AUTH lines ─ decode_sasl_response ─ PLAIN/LOGIN/custom     │
//!          │   DATA ─ DataDecoder       BDAT ─ ChunkReader                │
//!          ▼                                                              │
//!   Session::poll_output(), one ordered queue:                            │
//!                          ──▶ Output::Transmit(replies) ─────────────────┘
//!                          ──▶ Output::Event(Mail, Rcpt, MessageEnd, StartTls, ...)
//!                                  └─ decisions: accept / reply / reply_each / accept_auth,
//!                                     which go on with the input behind them
//!                          ──▶ Output::Content(Bytes split from the input, no copy)
//!                          ──▶ Output::Closed(reason)
//!   Session::poll_timeout() / handle_timeout(now)      (RFC 5321 4.5.3.2 deadlines)
//! ```
//!
//! The layers below [`Session`] are public too: a client, a relay or another server design can
//! use the command and reply parsers, the DATA decoder or the PROXY parser on their own.
//!
//! What it does not do: network I/O, TLS, storing or relaying mail, checking passwords or
//! recipients (those are decisions the driver's handler makes); `smtp-server` is the tokio
//! driver. Every reply the session makes by itself is listed in the [`session`] module docs.
//!
//! # A command loop
//!
//! ```
//! use smtp_proto::{Command, Framed, LineFramer, Reply, DEFAULT_COMMAND_LINE_MAX};
//!
//! let input = b"EHLO client.example\r\nMAIL FROM:<ann@example.com>\r\nFROB\r\n";
//! let mut framer = LineFramer::new(DEFAULT_COMMAND_LINE_MAX);
//! let (mut pos, mut out) = (0, Vec::new());
//! loop {
//!     match framer.next_line(&input[pos..]) {
//!         Framed::Line { line, consumed } => {
//!             pos += consumed;
//!             let reply = match Command::parse(line) {
//!                 Ok(Command::Ehlo { .. }) => Reply::new(250, None, "mx.example\nPIPELINING"),
//!                 Ok(_) => Reply::OK,
//!                 Err(e) => e.reply(),
//!             };
//!             reply.write_to(&mut out);
//!         }
//!         Framed::TooLong { consumed } => {
//!             pos += consumed;
//!             Reply::LINE_TOO_LONG.write_to(&mut out);
//!         }
//!         Framed::Incomplete { consumed } => {
//!             pos += consumed;
//!             break; // read more from the socket
//!         }
//!     }
//! }
//! assert_eq!(
//!     String::from_utf8(out).unwrap(),
//!     "250-mx.example\r\n250 PIPELINING\r\n250 2.0.0 OK\r\n500 5.5.2 Command unrecognized\r\n"
//! );
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod address;
mod command;
mod config;
pub mod data;
mod error;
mod event;
mod line;
mod params;
mod proxy;
mod reply;
mod sasl;
pub mod session;

#[cfg(any(test, fuzzing, feature = "testing"))]
pub mod testing;

#[cfg(test)]
mod tests;

/// The fuzz targets' bodies: not part of the API (the `fuzz/` crate and this crate's own
/// property tests call them).
#[cfg(any(test, fuzzing, feature = "testing"))]
#[doc(hidden)]
pub mod fuzzing;

pub use address::{ForwardPath, Mailbox, ReversePath};
pub use command::{Command, ParseOptions};
pub use config::{AuthPolicy, Config, Extensions, Limits, Protocol, Timeouts, TlsPolicy};
pub use data::{BareLineEndings, ChunkReader, DataDecoder, DataError, Decoded, dot_stuff};
pub use error::{AddressError, ParseError, ProxyError, ReplyError, SaslError};
pub use event::{
    CloseReason, DecisionError, Envelope, Event, HelloKind, Output, ProxyInfo, Recipient,
};
pub use line::{DEFAULT_COMMAND_LINE_MAX, Framed, LineFramer};
pub use params::{
    BodyType, MailParams, Notify, Orcpt, RcptParams, Ret, xtext_decode, xtext_encode,
};
pub use proxy::{
    PP2_TYPE_ALPN, PP2_TYPE_AUTHORITY, PP2_TYPE_CRC32C, PP2_TYPE_NETNS, PP2_TYPE_NOOP,
    PP2_TYPE_SSL, PP2_TYPE_UNIQUE_ID, ProxyAddresses, ProxyCommand, ProxyHeader, Tlv, Transport,
    V1_MAX, V2_SIGNATURE, proxy_v1_header, proxy_v2_header,
};
pub use reply::{EnhancedStatus, Reply};
pub use sasl::{
    Credentials, LOGIN_PASSWORD_CHALLENGE, LOGIN_USERNAME_CHALLENGE, PlainCredentials,
    SaslExchange, SaslMechanism, SaslResponse, SaslStep, decode_login_field, decode_plain,
    decode_sasl_response, encode_sasl_challenge,
};
pub use session::Session;
