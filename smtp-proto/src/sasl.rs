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
