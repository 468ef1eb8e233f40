//! What a [`Session`](crate::Session) allows and announces. One `Config` is shared (in an
//! `Arc`) by every session of a listener.

use std::sync::Arc;
use std::time::Duration;

use crate::command::ParseOptions;
use crate::data::BareLineEndings;
use crate::sasl::SaslMechanism;

/// SMTP (RFC 5321) or LMTP (RFC 2033).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// SMTP: HELO/EHLO, one reply per message.
    #[default]
    Smtp,
    /// LMTP: LHLO, one reply per accepted recipient after the message (RFC 2033 4.2).
    Lmtp,
}

/// Which ESMTP extensions the session announces and honours.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Extensions {
    /// PIPELINING (RFC 2920).
    pub pipelining: bool,
    /// SIZE (RFC 1870), announcing [`Limits::message_size`].
    pub size: bool,
    /// 8BITMIME (RFC 6152).
    pub eight_bit_mime: bool,
    /// BINARYMIME (RFC 3030 3); only announced with CHUNKING.
    pub binary_mime: bool,
    /// CHUNKING: the BDAT command (RFC 3030).
    pub chunking: bool,
    /// SMTPUTF8 (RFC 6531).
    pub smtputf8: bool,
    /// DSN: RET, ENVID, NOTIFY, ORCPT (RFC 3461).
    pub dsn: bool,
    /// ENHANCEDSTATUSCODES (RFC 2034): without it, replies carry no enhanced status.
    pub enhanced_status_codes: bool,
    /// REQUIRETLS (RFC 8689), announced over TLS only.
    pub requiretls: bool,
    /// HELP.
    pub help: bool,
}

impl Default for Extensions {
    fn default() -> Self {
        Self {
            pipelining: true,
            size: true,
            eight_bit_mime: true,
            binary_mime: true,
            chunking: true,
            smtputf8: true,
            dsn: true,
            enhanced_status_codes: true,
            requiretls: false,
            help: true,
        }
    }
}

/// Hard limits. Every one is enforced, whatever the client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Longest command line, CRLF included (RFC 5321 4.5.3.1.4: 512).
    pub command_line: usize,
    /// Longest line during an AUTH exchange (RFC 4954 4: at least 12288).
    pub auth_line: usize,
    /// Largest message, in octets after unstuffing (RFC 1870).
    pub message_size: u64,
    /// Most recipients per transaction (RFC 5321 4.5.3.1.8: at least 100).
    pub recipients: usize,
    /// Bad commands in a row (syntax errors, unknown commands, bad sequence, lines too long)
    /// before the session answers 421 and closes.
    pub errors: u32,
    /// Failed AUTH attempts before 421 and close.
    pub auth_failures: u32,
    /// Messages accepted per connection before 421 and close (`None`: no limit).
    pub transactions: Option<u32>,
    /// Per-verb limits on how often a command may be used per connection (for example
    /// `("NOOP", 20)`, `("VRFY", 5)`); over it, 421 and close.
    pub commands: Vec<(&'static str, u32)>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            command_line: crate::line::DEFAULT_COMMAND_LINE_MAX,
            auth_line: 12_288,
            message_size: 32 * 1024 * 1024,
            recipients: 100,
            errors: 10,
            auth_failures: 3,
            transactions: None,
            commands: Vec::new(),
        }
    }
}

/// Deadlines (RFC 5321 4.5.3.2). On expiry the session answers `421 4.4.2` and closes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Timeouts {
    /// For the PROXY protocol header, from the connection's start.
    pub proxy_header: Duration,
    /// Waiting for a command, and for each line of an AUTH exchange, and for the TLS
    /// handshake (RFC 5321 4.5.3.2.7: at least 5 minutes).
    pub command: Duration,
    /// Between two reads of message content during DATA or BDAT: the deadline moves as bytes
    /// arrive, so a slow but live upload is not cut off.
    pub data: Duration,
    /// The whole session, whatever it does (`None`: no cap).
    pub session: Option<Duration>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            proxy_header: Duration::from_secs(10),
            command: Duration::from_secs(300),
            data: Duration::from_secs(300),
            session: None,
        }
    }
}

/// The session's configuration.
///
/// ```
/// use smtp_proto::{Config, Protocol};
/// let mut config = Config::new("mx.example.com");
/// config.protocol = Protocol::Lmtp;
/// config.limits.message_size = 10 << 20;
/// config.auth.mechanisms = vec!["PLAIN".into(), "LOGIN".into()];
/// config.tls.available = true;
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct Config {
    /// The server's name, in the greeting and the EHLO reply.
    pub hostname: String,
    /// Text after the hostname in the 220 greeting; `None` says `ESMTP ready`, or
    /// `LMTP ready` in LMTP mode.
    pub greeting: Option<String>,
    /// SMTP or LMTP.
    pub protocol: Protocol,
    /// Announced extensions.
    pub extensions: Extensions,
    /// Limits.
    pub limits: Limits,
    /// Deadlines.
    pub timeouts: Timeouts,
    /// STARTTLS policy.
    pub tls: TlsPolicy,
    /// AUTH policy.
    pub auth: AuthPolicy,
    /// Expect a PROXY protocol v1 or v2 header before anything else.
    pub proxy_protocol: bool,
    /// What to do with bare CR and LF inside DATA.
    pub bare_line_endings: BareLineEndings,
    /// How lenient command parsing is.
    pub parse: ParseOptions,
}

impl Config {
    /// A configuration with safe defaults for the given hostname.
    pub fn new(hostname: impl Into<String>) -> Self {
        Self {
            hostname: hostname.into(),
            greeting: None,
            protocol: Protocol::Smtp,
            extensions: Extensions::default(),
            limits: Limits::default(),
            timeouts: Timeouts::default(),
            tls: TlsPolicy::default(),
            auth: AuthPolicy::default(),
            proxy_protocol: false,
            bare_line_endings: BareLineEndings::default(),
            parse: ParseOptions::default(),
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("hostname", &self.hostname)
            .field("protocol", &self.protocol)
            .field("extensions", &self.extensions)
            .field("limits", &self.limits)
            .field("timeouts", &self.timeouts)
            .field("tls", &self.tls)
            .field("auth", &self.auth.mechanisms)
            .field("proxy_protocol", &self.proxy_protocol)
            .finish_non_exhaustive()
    }
}

/// STARTTLS (RFC 3207).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsPolicy {
    /// The driver can upgrade: announce STARTTLS.
    pub available: bool,
    /// Refuse everything but EHLO, HELO, LHLO, NOOP, RSET, QUIT and STARTTLS with
    /// `530 5.7.0` until TLS is active.
    pub required: bool,
}

/// AUTH (RFC 4954).
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct AuthPolicy {
    /// Mechanisms to offer, by name. `PLAIN` and `LOGIN` are built in; other names must have an
    /// entry in [`AuthPolicy::custom`].
    pub mechanisms: Vec<String>,
    /// Refuse MAIL, RCPT, DATA and BDAT with `530 5.7.0` until authenticated.
    pub required: bool,
    /// Offer AUTH without TLS (otherwise it is announced over TLS only and answered `538`).
    pub allow_insecure: bool,
    /// Mechanisms plugged in from outside (XOAUTH2, CRAM-MD5, ...).
    pub custom: Vec<Arc<dyn SaslMechanism>>,
}

impl std::fmt::Debug for AuthPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthPolicy")
            .field("mechanisms", &self.mechanisms)
            .field("required", &self.required)
            .field("allow_insecure", &self.allow_insecure)
            .field(
                "custom",
                &self.custom.iter().map(|m| m.name()).collect::<Vec<_>>(),
            )
            .finish()
    }
}
