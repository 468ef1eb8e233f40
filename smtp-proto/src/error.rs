//! Errors of the wire layer. A command syntax error is not a failure of the server: it carries
//! the [`Reply`](crate::Reply) that answers it ([`ParseError::reply`]).

/// Why a command line could not be parsed; [`ParseError::reply`] gives the answer to send.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The verb is not one this crate knows (500 5.5.2).
    #[error("unknown command")]
    UnknownCommand,
    /// The line is not UTF-8 (500 5.5.2).
    #[error("command line is not valid UTF-8")]
    InvalidUtf8,
    /// A known verb with malformed arguments (501 5.5.4 with the usage).
    #[error("syntax error, expected {usage}")]
    Syntax {
        /// The command's syntax, such as `MAIL FROM:<address> [parameters]`.
        usage: &'static str,
    },
    /// The sender address is malformed or too long (553 5.1.7).
    #[error("bad sender address: {0}")]
    BadSender(AddressError),
    /// The recipient address is malformed or too long (553 5.1.3).
    #[error("bad recipient address: {0}")]
    BadRecipient(AddressError),
    /// A non-ASCII address without the SMTPUTF8 parameter (553 5.6.7, RFC 6531 3.5).
    #[error("non-ASCII address without SMTPUTF8")]
    Utf8AddressWithoutSmtputf8,
    /// An ESMTP parameter this crate does not know (555 5.5.4, RFC 5321 4.1.1.11).
    #[error("unknown parameter")]
    UnknownParameter,
    /// The same parameter twice (501 5.5.4).
    #[error("duplicate parameter {0}")]
    DuplicateParameter(&'static str),
    /// A known parameter with a malformed value (501 5.5.4).
    #[error("bad value for parameter {0}")]
    BadParameter(&'static str),
}

/// What is wrong with an address (RFC 5321 4.1.2, 4.5.3.1).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Not a path: missing `<` `>`, bad characters, a malformed domain or literal.
    #[error("syntax error")]
    Syntax,
    /// Local part over 64 octets (RFC 5321 4.5.3.1.1).
    #[error("local part longer than 64 octets")]
    LocalPartTooLong,
    /// Domain over 255 octets (RFC 5321 4.5.3.1.2).
    #[error("domain longer than 255 octets")]
    DomainTooLong,
    /// Path over 256 octets (RFC 5321 4.5.3.1.3).
    #[error("path longer than 256 octets")]
    PathTooLong,
}

/// Why a reply could not be parsed.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// A line does not start with a code of 200 to 599 followed by SP, `-` or the line end.
    #[error("malformed reply line")]
    Syntax,
    /// The lines of one multi-line reply carry different codes (RFC 5321 4.2.1).
    #[error("multi-line reply with different codes")]
    MixedCodes,
    /// The reply is longer than the limit given to the parser.
    #[error("reply too long")]
    TooLong,
}

/// Why a PROXY protocol header was refused (the connection should be closed).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// Neither the v1 `PROXY ` nor the v2 binary signature.
    #[error("not a PROXY protocol header")]
    NotProxy,
    /// A v1 line of more than 107 octets.
    #[error("PROXY v1 line too long")]
    TooLong,
    /// A malformed v1 line (protocol, addresses, ports, separators).
    #[error("malformed PROXY v1 header")]
    V1Syntax,
    /// A v2 version other than 2.
    #[error("unsupported PROXY v2 version")]
    Version,
    /// A v2 command other than LOCAL or PROXY.
    #[error("unsupported PROXY v2 command")]
    Command,
    /// A v2 address family or transport that does not exist.
    #[error("unsupported PROXY v2 address family or protocol")]
    Family,
    /// The v2 length is too short for the addresses of its family.
    #[error("PROXY v2 address block truncated")]
    Truncated,
    /// A v2 TLV runs past the end of the header.
    #[error("malformed PROXY v2 TLV")]
    Tlv,
}

/// Why a SASL client response could not be decoded (RFC 4954 4: answered with 501).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    /// The response is not valid base64.
    #[error("invalid base64")]
    Base64,
    /// PLAIN: not `[authzid] NUL authcid NUL passwd`, or an empty field.
    #[error("malformed PLAIN response")]
    Plain,
    /// A decoded field is not UTF-8.
    #[error("credentials are not UTF-8")]
    Utf8,
}
