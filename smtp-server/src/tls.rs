//! TLS: loading a certificate and key, and describing a connection's TLS state.

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};

use crate::error::Error;
use crate::handler::TlsInfo;

/// Builds a server configuration from a PEM certificate chain and a PEM private key, with the
/// `ring` crypto provider and the safe default protocol versions.
///
/// ```no_run
/// let tls = smtp_server::load_pem_files("cert.pem", "key.pem")?;
/// # Ok::<(), smtp_server::Error>(())
/// ```
pub fn load_pem_files(
    cert: impl AsRef<Path>,
    key: impl AsRef<Path>,
) -> Result<Arc<ServerConfig>, Error> {
    let (cert, key) = (cert.as_ref(), key.as_ref());
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| Error::Tls(format!("{}: {e}", cert.display())))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| Error::Tls(format!("{}: {e}", key.display())))?;
    server_config(chain, key)
}

/// Builds a server configuration from PEM text (a certificate chain and a private key).
pub fn load_pem(cert: &[u8], key: &[u8]) -> Result<Arc<ServerConfig>, Error> {
    let chain = CertificateDer::pem_slice_iter(cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Tls(format!("certificate: {e}")))?;
    let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| Error::Tls(format!("key: {e}")))?;
    server_config(chain, key)
}

fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, Error> {
    if chain.is_empty() {
        return Err(Error::Tls("no certificate found".into()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| Error::Tls(e.to_string()))?;
    Ok(Arc::new(config))
}

pub(crate) fn info(conn: &rustls::ServerConnection, implicit: bool) -> TlsInfo {
    TlsInfo {
        protocol: conn
            .protocol_version()
            .map(|v| format!("{v:?}"))
            .unwrap_or_default(),
        cipher: conn
            .negotiated_cipher_suite()
            .map(|c| format!("{:?}", c.suite()))
            .unwrap_or_default(),
        sni: conn.server_name().map(str::to_string),
        implicit,
    }
}
