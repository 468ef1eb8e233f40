//! [`Accounts`]: user names and passwords for AUTH PLAIN and LOGIN.

use smtp_proto::Reply;

/// User names and passwords for AUTH PLAIN and LOGIN: [`Accounts::verify`] is what a
/// [`Handler::auth`](crate::Handler::auth) needs to return.
///
/// ```
/// use smtp_server::Accounts;
/// use smtp_server::smtp_proto::{Credentials, decode_plain};
/// let accounts = Accounts::new([("ann", "secret")]);
/// let ok = Credentials::Plain(decode_plain(b"\0ann\0secret").unwrap());
/// assert_eq!(accounts.verify(&ok), Ok("ann".to_string()));
/// let bad = Credentials::Plain(decode_plain(b"\0ann\0guess").unwrap());
/// assert_eq!(accounts.verify(&bad).unwrap_err().code(), 535);
/// // PLAIN's authorization identity (RFC 4616 2): acting as another user is refused...
/// let other = Credentials::Plain(decode_plain(b"admin\0ann\0secret").unwrap());
/// assert_eq!(accounts.verify(&other).unwrap_err().code(), 535);
/// // ...unless allowed.
/// let accounts = accounts.allow_acting_as("ann", "admin");
/// assert_eq!(accounts.verify(&other), Ok("admin".to_string()));
/// ```
#[derive(Clone, Default)]
pub struct Accounts {
    passwords: std::collections::HashMap<String, String>,
    /// (user, identity) pairs: `user` may act as `identity`.
    acting_as: Vec<(String, String)>,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the passwords.
        f.debug_struct("Accounts")
            .field("users", &self.passwords.keys().collect::<Vec<_>>())
            .field("acting_as", &self.acting_as)
            .finish()
    }
}

impl Accounts {
    /// Accounts from (user, password) pairs.
    pub fn new<U: Into<String>, P: Into<String>>(pairs: impl IntoIterator<Item = (U, P)>) -> Self {
        Self {
            passwords: pairs
                .into_iter()
                .map(|(u, p)| (u.into(), p.into()))
                .collect(),
            acting_as: Vec::new(),
        }
    }

    /// Adds an account.
    pub fn insert(&mut self, user: impl Into<String>, password: impl Into<String>) {
        self.passwords.insert(user.into(), password.into());
    }

    /// Lets `user` act as `identity` when PLAIN asks for it (RFC 4616 2's authorization
    /// identity); without this, such a request is refused.
    pub fn allow_acting_as(mut self, user: impl Into<String>, identity: impl Into<String>) -> Self {
        self.acting_as.push((user.into(), identity.into()));
        self
    }

    /// True when there is no account.
    pub fn is_empty(&self) -> bool {
        self.passwords.is_empty()
    }

    /// The identity for PLAIN or LOGIN credentials that match an account, else
    /// `535 5.7.8` (other mechanisms are refused too). The password is compared in constant
    /// time. A PLAIN request to act as another identity is granted (that identity is returned)
    /// only if [`Accounts::allow_acting_as`] allows it.
    pub fn verify(&self, credentials: &smtp_proto::Credentials) -> Result<String, Reply> {
        use sha2::{Digest as _, Sha256};
        use smtp_proto::Credentials;
        use subtle::ConstantTimeEq as _;
        let (user, password) = match credentials {
            Credentials::Plain(p) => (p.authcid.as_str(), p.password.as_str()),
            Credentials::Login { username, password } => (username.as_str(), password.as_str()),
            _ => return Err(Reply::AUTH_INVALID),
        };
        // Digests of equal length, compared in constant time, and a comparison even for an
        // unknown user: the time taken tells neither the password's length nor whether the
        // user exists.
        let known = self.passwords.get(user);
        let expected = Sha256::digest(known.map_or(&[0xff][..], |p| p.as_bytes()));
        let given = Sha256::digest(password.as_bytes());
        let matches = bool::from(expected.ct_eq(&given));
        if known.is_none() || !matches {
            return Err(Reply::AUTH_INVALID);
        }
        match credentials.authzid() {
            None => Ok(user.to_string()),
            Some(asked)
                if self
                    .acting_as
                    .iter()
                    .any(|(u, identity)| u == user && identity == asked) =>
            {
                Ok(asked.to_string())
            }
            Some(_) => Err(Reply::AUTH_INVALID),
        }
    }
}
