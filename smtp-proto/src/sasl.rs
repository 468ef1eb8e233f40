//! SASL helpers for AUTH (RFC 4954): decoding client responses, and the PLAIN (RFC 4616) and
//! LOGIN mechanisms, as pure functions the session calls.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::error::SaslError;

/// The LOGIN mechanism's first challenge, `Username:` in base64.
pub const LOGIN_USERNAME_CHALLENGE: &str = "VXNlcm5hbWU6";
/// The LOGIN mechanism's second challenge, `Password:` in base64.
pub const LOGIN_PASSWORD_CHALLENGE: &str = "UGFzc3dvcmQ6";

/// A client's answer to a `334` challenge, or its initial response (RFC 4954 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslResponse {
    /// `*`: the client cancels the exchange (answer `501`).
    Cancel,
    /// The decoded octets (`=` decodes to an empty response).
    Data(Vec<u8>),
}

/// Decodes one response line: `*` cancels, `=` is empty, anything else must be base64.
///
/// ```
/// use smtp_proto::{SaslResponse, decode_sasl_response};
/// assert_eq!(decode_sasl_response(b"*"), Ok(SaslResponse::Cancel));
/// assert_eq!(decode_sasl_response(b"="), Ok(SaslResponse::Data(vec![])));
/// assert_eq!(decode_sasl_response(b"aGk="), Ok(SaslResponse::Data(b"hi".to_vec())));
/// assert!(decode_sasl_response(b"not base64!").is_err());
/// ```
pub fn decode_sasl_response(line: &[u8]) -> Result<SaslResponse, SaslError> {
    match line {
        b"*" => Ok(SaslResponse::Cancel),
        b"=" => Ok(SaslResponse::Data(Vec::new())),
        _ => STANDARD
            .decode(line)
            .map(SaslResponse::Data)
            .map_err(|_| SaslError::Base64),
    }
}

/// Encodes a server challenge for a `334` reply (an empty one is sent as nothing).
pub fn encode_sasl_challenge(challenge: &[u8]) -> String {
    STANDARD.encode(challenge)
}

/// PLAIN credentials (RFC 4616 2): `[authzid] NUL authcid NUL passwd`.
#[derive(Clone, PartialEq, Eq)]
pub struct PlainCredentials {
    /// The identity to act as, if different from the authentication identity.
    pub authzid: Option<String>,
    /// The authentication identity (the user name).
    pub authcid: String,
    /// The password.
    pub password: String,
}

impl std::fmt::Debug for PlainCredentials {
    /// Leaves the password out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlainCredentials")
            .field("authzid", &self.authzid)
            .field("authcid", &self.authcid)
            .finish_non_exhaustive()
    }
}

/// Decodes a PLAIN message (already base64-decoded). The authentication identity and the
/// password must be non-empty UTF-8 without NUL; an empty authzid means none.
///
/// ```
/// let c = smtp_proto::decode_plain(b"\0ann\0secret").unwrap();
/// assert_eq!((c.authzid, c.authcid.as_str(), c.password.as_str()), (None, "ann", "secret"));
/// assert!(smtp_proto::decode_plain(b"ann\0secret").is_err());
/// ```
pub fn decode_plain(message: &[u8]) -> Result<PlainCredentials, SaslError> {
    let mut fields = message.split(|&b| b == 0);
    let (Some(authzid), Some(authcid), Some(password), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(SaslError::Plain);
    };
    if authcid.is_empty() || password.is_empty() {
        return Err(SaslError::Plain);
    }
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| SaslError::Utf8);
    Ok(PlainCredentials {
        authzid: if authzid.is_empty() {
            None
        } else {
            Some(text(authzid)?)
        },
        authcid: text(authcid)?,
        password: text(password)?,
    })
}

/// Decodes a LOGIN user name or password (already base64-decoded): any UTF-8.
pub fn decode_login_field(data: Vec<u8>) -> Result<String, SaslError> {
    String::from_utf8(data).map_err(|_| SaslError::Utf8)
}

/// Credentials a client presented, for the handler to check.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Credentials {
    /// AUTH PLAIN (RFC 4616).
    Plain(PlainCredentials),
    /// AUTH LOGIN.
    Login {
        /// The user name.
        username: String,
        /// The password.
        password: String,
    },
    /// A mechanism plugged in through [`SaslMechanism`].
    Custom {
        /// The mechanism's name.
        mechanism: String,
        /// Who the client claims to be.
        identity: String,
        /// Whatever the mechanism needs checked (a token, a digest and its challenge, ...).
        data: Vec<u8>,
    },
}

impl Credentials {
    /// The mechanism's name.
    pub fn mechanism(&self) -> &str {
        match self {
            Self::Plain(_) => "PLAIN",
            Self::Login { .. } => "LOGIN",
            Self::Custom { mechanism, .. } => mechanism,
        }
    }

    /// The authentication identity (user name).
    pub fn username(&self) -> &str {
        match self {
            Self::Plain(p) => &p.authcid,
            Self::Login { username, .. } => username,
            Self::Custom { identity, .. } => identity,
        }
    }

    /// The identity the client asks to act as (PLAIN's authorization identity, RFC 4616 2),
    /// when it differs from the user name. A server grants it only by policy: the
    /// `smtp-server` driver refuses it unless the handler's answer is that identity.
    pub fn authzid(&self) -> Option<&str> {
        match self {
            Self::Plain(p) => p.authzid.as_deref().filter(|z| *z != p.authcid),
            _ => None,
        }
    }
}

impl std::fmt::Debug for Credentials {
    /// Leaves secrets out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("mechanism", &self.mechanism())
            .field("username", &self.username())
            .finish_non_exhaustive()
    }
}

/// One step of a SASL exchange.
#[derive(Debug)]
pub enum SaslStep {
    /// Send this challenge (`334` + base64) and wait for the client's response.
    Challenge(Vec<u8>),
    /// The exchange is complete: let the handler check these credentials.
    Done(Credentials),
    /// The exchange failed: answer this reply.
    Failed(crate::Reply),
}

/// A SASL mechanism the session can offer (RFC 4954). PLAIN and LOGIN are built in; others
/// (XOAUTH2, CRAM-MD5, ...) are plugged in through
/// [`AuthPolicy::custom`](crate::AuthPolicy::custom).
pub trait SaslMechanism: Send + Sync {
    /// The mechanism's name, upper case, as announced in EHLO.
    fn name(&self) -> &str;
    /// Starts one exchange.
    fn start(&self) -> Box<dyn SaslExchange>;
}

/// One running exchange of a [`SaslMechanism`].
pub trait SaslExchange: Send {
    /// Called first with the initial response, if the client gave one (`None` otherwise), then
    /// with each decoded response to a challenge.
    fn step(&mut self, response: Option<Vec<u8>>) -> SaslStep;
}

/// The built-in PLAIN exchange (RFC 4616): one empty challenge if no initial response.
#[derive(Debug, Default)]
pub(crate) struct PlainExchange;

impl SaslExchange for PlainExchange {
    fn step(&mut self, response: Option<Vec<u8>>) -> SaslStep {
        match response {
            None => SaslStep::Challenge(Vec::new()),
            Some(data) => match decode_plain(&data) {
                Ok(c) => SaslStep::Done(Credentials::Plain(c)),
                Err(e) => SaslStep::Failed(e.reply()),
            },
        }
    }
}

/// The built-in LOGIN exchange: `Username:`, then `Password:`.
#[derive(Debug, Default)]
pub(crate) struct LoginExchange {
    username: Option<String>,
}

impl SaslExchange for LoginExchange {
    fn step(&mut self, response: Option<Vec<u8>>) -> SaslStep {
        let Some(data) = response else {
            return SaslStep::Challenge(b"Username:".to_vec());
        };
        let text = match decode_login_field(data) {
            Ok(t) => t,
            Err(e) => return SaslStep::Failed(e.reply()),
        };
        match self.username.take() {
            None => {
                self.username = Some(text);
                SaslStep::Challenge(b"Password:".to_vec())
            }
            Some(username) => SaslStep::Done(Credentials::Login {
                username,
                password: text,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_vectors() {
        let ok: &[(&[u8], Option<&str>, &str, &str)] = &[
            (b"\0tim\0tanstaaftanstaaf", None, "tim", "tanstaaftanstaaf"),
            (
                b"Ursel\0Kurt\0xipj3plmq",
                Some("Ursel"),
                "Kurt",
                "xipj3plmq",
            ),
            (
                "\0jos\u{e9}\0p\u{e4}ss".as_bytes(),
                None,
                "jos\u{e9}",
                "p\u{e4}ss",
            ),
        ];
        for (msg, authz, authc, pass) in ok {
            let c = decode_plain(msg).unwrap();
            assert_eq!(
                (
                    c.authzid.as_deref(),
                    c.authcid.as_str(),
                    c.password.as_str()
                ),
                (*authz, *authc, *pass)
            );
        }
        let bad: &[(&[u8], SaslError)] = &[
            (b"", SaslError::Plain),
            (b"\0\0pass", SaslError::Plain),
            (b"\0user\0", SaslError::Plain),
            (b"\0a\0b\0c", SaslError::Plain),
            (b"user\0pass", SaslError::Plain),
            (b"\0\xff\0pass", SaslError::Utf8),
        ];
        for (msg, err) in bad {
            assert_eq!(decode_plain(msg), Err(*err), "{msg:?}");
        }
        assert!(!format!("{:?}", decode_plain(b"\0u\0hunter2").unwrap()).contains("hunter2"));
    }

    #[test]
    fn built_in_exchanges() {
        let mut plain = PlainExchange;
        assert!(matches!(plain.step(None), SaslStep::Challenge(c) if c.is_empty()));
        let SaslStep::Done(c) = plain.step(Some(b"\0ann\0pw".to_vec())) else {
            panic!()
        };
        assert_eq!((c.mechanism(), c.username()), ("PLAIN", "ann"));
        assert!(matches!(plain.step(Some(b"x".to_vec())), SaslStep::Failed(r) if r.code() == 501));
        let mut login = LoginExchange::default();
        assert!(matches!(login.step(None), SaslStep::Challenge(c) if c == b"Username:"));
        assert!(
            matches!(login.step(Some(b"ann".to_vec())), SaslStep::Challenge(c) if c == b"Password:")
        );
        let SaslStep::Done(c) = login.step(Some(b"pw".to_vec())) else {
            panic!()
        };
        assert_eq!(
            c,
            Credentials::Login {
                username: "ann".into(),
                password: "pw".into()
            }
        );
        assert!(!format!("{c:?}").contains("pw"));
    }

    #[test]
    fn responses_and_login() {
        let SaslResponse::Data(user) = decode_sasl_response(b"dXNlcg==").unwrap() else {
            panic!()
        };
        assert_eq!(decode_login_field(user).unwrap(), "user");
        assert_eq!(decode_sasl_response(b"dXNlcg"), Err(SaslError::Base64));
        assert_eq!(decode_sasl_response(b""), Ok(SaslResponse::Data(vec![])));
        assert_eq!(decode_login_field(vec![0xff]), Err(SaslError::Utf8));
        assert_eq!(
            STANDARD.decode(LOGIN_USERNAME_CHALLENGE).unwrap(),
            b"Username:"
        );
        assert_eq!(
            STANDARD.decode(LOGIN_PASSWORD_CHALLENGE).unwrap(),
            b"Password:"
        );
        assert_eq!(
            encode_sasl_challenge(b"Password:"),
            LOGIN_PASSWORD_CHALLENGE
        );
    }
}
