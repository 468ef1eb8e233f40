//! What a [`Session`](crate::Session) hands to its driver: events, outputs, and the envelope.

use std::net::SocketAddr;

use crate::address::{ForwardPath, ReversePath};
use crate::data::DataError;
use crate::params::{MailParams, RcptParams};
use crate::sasl::Credentials;

/// Which greeting the client used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HelloKind {
    /// `HELO`: no ESMTP extensions.
    Helo,
    /// `EHLO`.
    Ehlo,
    /// `LHLO` (LMTP).
    Lhlo,
}

/// Something that happened in the session. Events marked *decision* stop the session until the
/// driver answers with [`Session::accept`](crate::Session::accept),
/// [`Session::reply`](crate::Session::reply) or the event's own method; the others are news.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// *Decision*: a client connected (its real address is in `proxy` when a PROXY header
    /// came first). Accepting sends the 220 greeting; a refusal is sent and the session closes.
    Connect {
        /// The addresses from the PROXY header, if the session expects one.
        proxy: Option<ProxyInfo>,
    },
    /// *Decision*: HELO, EHLO or LHLO. `capabilities` are the EHLO lines the session would
    /// announce; change them with [`Session::set_capabilities`](crate::Session::set_capabilities)
    /// before accepting.
    Hello {
        /// The name the client gave.
        name: String,
        /// Which command it used.
        kind: HelloKind,
        /// The extension lines to announce (empty for HELO).
        capabilities: Vec<String>,
    },
    /// *Decision*: the client authenticated with these credentials. Accept with
    /// [`Session::accept_auth`](crate::Session::accept_auth) (or `accept`, which takes the
    /// user name as the identity); refuse with `reply` (`535 5.7.8` is usual).
    Auth {
        /// What the client presented.
        credentials: Credentials,
    },
    /// *Decision*: MAIL FROM. The sender and its parameters are read from
    /// [`Session::pending_mail`](crate::Session::pending_mail) (kept once, in the session,
    /// until the decision moves them into the envelope).
    Mail,
    /// *Decision*: RCPT TO. The recipient and its parameters are read from
    /// [`Session::pending_rcpt`](crate::Session::pending_rcpt).
    Rcpt,
    /// *Decision*: VRFY (accepting answers `252 2.5.0`, RFC 5321 3.5.3).
    Vrfy {
        /// What to verify.
        arg: String,
    },
    /// The message content starts (after DATA's 354, or with the first BDAT chunk). Its bytes
    /// follow as [`Output::Content`], in order, until [`Event::MessageEnd`] or
    /// [`Event::MessageAborted`].
    MessageStart,
    /// *Decision*: the whole message arrived. Accepting answers `250`; in LMTP, answer per
    /// recipient with [`Session::reply_each`](crate::Session::reply_each).
    MessageEnd {
        /// The message's size in octets.
        size: u64,
    },
    /// The message in progress is dropped: the session answered (too large, bare line endings)
    /// or the connection ended (`error` is `None`). Discard what was received.
    MessageAborted {
        /// Why, when the session itself refused the message.
        error: Option<DataError>,
    },
    /// The transaction was reset (RSET, HELO/EHLO/LHLO, or STARTTLS).
    Reset,
    /// Upgrade the connection to TLS now (the `220` has been transmitted), then call
    /// [`Session::tls_established`](crate::Session::tls_established). Any bytes still buffered
    /// from before the upgrade must be dropped (RFC 3207 6, CVE-2011-0411).
    StartTls,
}

impl Event {
    /// True for the events that wait for an answer.
    pub fn needs_decision(&self) -> bool {
        matches!(
            self,
            Self::Connect { .. }
                | Self::Hello { .. }
                | Self::Auth { .. }
                | Self::Mail
                | Self::Rcpt
                | Self::Vrfy { .. }
                | Self::MessageEnd { .. }
        )
    }
}

/// The addresses a PROXY protocol header gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProxyInfo {
    /// The real client, when the header carried one (not for `UNKNOWN` or `LOCAL`).
    pub source: Option<SocketAddr>,
    /// The address the client connected to.
    pub destination: Option<SocketAddr>,
}

/// Why the session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseReason {
    /// The client sent QUIT.
    Quit,
    /// The client closed the connection.
    Eof,
    /// A deadline passed (421 4.4.2 was sent, except while waiting for the PROXY header).
    Timeout,
    /// The connection was refused at connect time by the driver's decision.
    Refused,
    /// Too many bad commands, failed AUTH attempts, or uses of a limited command (421 sent).
    TooManyErrors,
    /// The per-connection message limit was reached (421 sent).
    TooManyMessages,
    /// The PROXY protocol header was missing or malformed (nothing sent).
    BadProxyHeader,
    /// [`Session::shutdown`](crate::Session::shutdown) (421 4.3.2 sent).
    Shutdown,
    /// A decision was answered with a 421 reply (RFC 5321 3.8): sent, then closed.
    ServiceClosing,
}

/// What [`Session::poll_output`](crate::Session::poll_output) returns: one ordered queue of
/// everything the driver must do.
#[derive(Debug, PartialEq, Eq)]
pub enum Output<'s> {
    /// Write these bytes and flush: the replies of one pipelined group, or a reply that must
    /// reach the client before anything else happens (354, STARTTLS's 220, a final 421).
    Transmit(&'s [u8]),
    /// An event; see [`Event::needs_decision`].
    Event(Event),
    /// Message content, in order, between [`Event::MessageStart`] and the message's end:
    /// unstuffed, split from the session's input buffer without a copy.
    Content(bytes::Bytes),
    /// The session is over: close the connection.
    Closed(CloseReason),
}

/// A decision the session cannot take: none is pending, or it is of another kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecisionError {
    /// No event is waiting for a decision.
    #[error("no decision is pending")]
    NotPending,
    /// The pending event does not take this kind of answer (such as an identity for MAIL, or
    /// one reply per recipient outside the end of a message).
    #[error("the pending {pending} does not take this answer")]
    WrongKind {
        /// The event that waits, such as `"MAIL"`.
        pending: &'static str,
    },
}

/// One accepted recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// The address.
    pub path: ForwardPath<'static>,
    /// Its parameters.
    pub params: RcptParams<'static>,
}

/// The transaction so far: the accepted sender and recipients.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Envelope {
    /// The sender, once MAIL was accepted.
    pub from: Option<ReversePath<'static>>,
    /// MAIL's parameters.
    pub params: MailParams<'static>,
    /// Accepted recipients, in order.
    pub recipients: Vec<Recipient>,
}

impl Envelope {
    /// The sender's address without angle brackets (`""` for the null sender `<>`), once
    /// MAIL was accepted.
    pub fn sender(&self) -> Option<String> {
        self.from.as_ref().map(ReversePath::address)
    }

    /// The recipients' addresses without angle brackets, in order.
    ///
    /// ```
    /// use smtp_proto::{Envelope, ForwardPath, Mailbox, Recipient, ReversePath};
    /// let mut e = Envelope::default();
    /// e.from = Some(ReversePath::Mailbox(Mailbox::parse("ann@example.com").unwrap()));
    /// e.recipients.push(Recipient {
    ///     path: ForwardPath::Mailbox(Mailbox::parse("bob@example.net").unwrap()),
    ///     params: Default::default(),
    /// });
    /// assert_eq!(e.sender().as_deref(), Some("ann@example.com"));
    /// assert_eq!(e.recipient_addresses(), ["bob@example.net"]);
    /// ```
    pub fn recipient_addresses(&self) -> Vec<String> {
        self.recipients.iter().map(|r| r.path.address()).collect()
    }

    /// True when a MAIL command was accepted and no reset happened since.
    pub fn in_transaction(&self) -> bool {
        self.from.is_some()
    }
}
