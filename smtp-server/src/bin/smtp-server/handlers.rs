//! The handler a listener's profile asks for, and its session configuration.

use std::path::PathBuf;
use std::sync::Arc;

use smtp_server::blackhole::{self, Blackhole};
use smtp_server::faults::FaultHandler;
use smtp_server::smtp_proto::Config;
use smtp_server::{Capture, Debugging, Handler, JetStream, Maildir, Relay, Sink};

use crate::settings::{HandlerSpec, Profile, RelayTls};

/// The handler a profile asks for, and the Maildir directory it writes to (if it is one).
pub(crate) async fn build_handler(
    p: &Profile,
    hostname: &str,
    capture: &Arc<FaultHandler<Capture>>,
) -> Result<(Arc<dyn Handler>, Option<PathBuf>), String> {
    let spec = p.handler.clone().unwrap_or(HandlerSpec::Debug);
    let blackhole_only =
        p.delay.is_some() || p.code.is_some() || p.seed.is_some() || p.switches.is_some();
    if blackhole_only && !matches!(spec, HandlerSpec::Blackhole(_)) {
        return Err(
            "delay, code, seed and switches apply to the accept, bounce, tempfail and random \
             handlers only"
                .into(),
        );
    }
    if let (HandlerSpec::Blackhole(blackhole::Mode::TempFail), Some(codes)) = (&spec, &p.code)
        && !codes.iter().any(|c| (400..500).contains(c))
    {
        return Err(format!(
            "tempfail answers 4xx codes, and code {codes:?} has none (use bounce for 5xx)"
        ));
    }
    if p.keep_crlf.is_some() && !matches!(spec, HandlerSpec::Maildir(_)) {
        return Err("keep_crlf applies to the maildir handler only".into());
    }
    let jetstream_keys = p.stream.is_some()
        || p.subject.is_some()
        || p.jetstream_create.is_some()
        || p.object_store.is_some()
        || p.replicas.is_some()
        || p.publish_timeout.is_some()
        || p.nats_creds.is_some()
        || p.max_buffered.is_some();
    if jetstream_keys && !matches!(spec, HandlerSpec::JetStream(_)) {
        return Err(
            "stream, subject, jetstream_create, object_store, replicas, publish_timeout, \
             nats_creds and max_buffered apply to the jetstream handler only"
                .into(),
        );
    }
    if (p.relay_tls.is_some() || p.relay_ca.is_some()) && !matches!(spec, HandlerSpec::Relay(_)) {
        return Err("relay_tls and relay_ca apply to the relay handler only".into());
    }
    Ok(match spec {
        HandlerSpec::Debug => (Arc::new(Debugging::stdout()), None),
        HandlerSpec::Sink => (Arc::new(Sink), None),
        HandlerSpec::Capture => (Arc::clone(capture) as Arc<dyn Handler>, None),
        HandlerSpec::Blackhole(mode) => {
            let mut b = Blackhole::new(mode).switches(p.switches.unwrap_or(true));
            if let Some(d) = p.delay {
                b = b.delay(d);
            }
            if let Some(codes) = &p.code {
                b = b.codes(codes).map_err(|e| e.to_string())?;
            }
            if let Some(seed) = p.seed {
                b = b.seed(seed);
            }
            (Arc::new(b), None)
        }
        HandlerSpec::Maildir(dir) => {
            let m = Maildir::new(&dir).map_err(|e| format!("maildir {}: {e}", dir.display()))?;
            let m = m.hostname(hostname).keep_crlf(p.keep_crlf.unwrap_or(false));
            (Arc::new(m), Some(dir))
        }
        HandlerSpec::Relay(upstream) => {
            check_upstream(&upstream)?;
            (Arc::new(relay(&upstream, p, hostname)?), None)
        }
        HandlerSpec::JetStream(servers) => {
            (Arc::new(jetstream(&servers, p, hostname).await?), None)
        }
    })
}

/// The JetStream handler: connects, and checks (or creates) the stream.
async fn jetstream(servers: &str, p: &Profile, hostname: &str) -> Result<JetStream, String> {
    let mut b = JetStream::builder(servers)
        .hostname(hostname)
        .create(p.jetstream_create.unwrap_or(false));
    if let Some(stream) = &p.stream {
        b = b.stream(stream);
    }
    if let Some(subject) = &p.subject {
        b = b.subject(subject);
    }
    if let Some(bucket) = &p.object_store {
        b = b.object_store(bucket);
    }
    if let Some(n) = p.replicas {
        b = b.replicas(n);
    }
    if let Some(t) = p.publish_timeout {
        b = b.publish_timeout(t);
    }
    if let Some(n) = p.max_buffered {
        b = b.max_buffered(usize::try_from(n).unwrap_or(usize::MAX));
    }
    if let Some(creds) = &p.nats_creds {
        // The handler's own reconnection settings, with the credentials.
        let options = JetStream::connect_options()
            .credentials_file(creds)
            .await
            .map_err(|e| format!("nats_creds {}: {e}", creds.display()))?;
        b = b.connect_options(options);
    }
    b.connect().await.map_err(|e| e.to_string())
}

/// A relay's upstream must be HOST:PORT (a port is required: there is no default worth
/// guessing between 25, 587 and a test port).
fn check_upstream(upstream: &str) -> Result<(), String> {
    let bad =
        || format!("relay {upstream:?}: expected HOST:PORT, such as 127.0.0.1:25 or [::1]:2525");
    let (host, port) = upstream.rsplit_once(':').ok_or_else(bad)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() || host.contains(':') && !upstream.starts_with('[') {
        return Err(bad());
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(bad()),
    }
}

/// The relay handler, with TLS to its upstream if the profile asks for it: the upstream's
/// certificate must verify against `relay_ca` for the host part of its address.
fn relay(upstream: &str, p: &Profile, hostname: &str) -> Result<Relay, String> {
    use smtp_server::rustls;
    use smtp_server::rustls::pki_types::CertificateDer;
    use smtp_server::rustls::pki_types::pem::PemObject;
    let relay = Relay::new(upstream).hostname(hostname);
    let Some(mode) = p.relay_tls else {
        return Ok(relay);
    };
    let Some(ca) = &p.relay_ca else {
        return Err("relay_tls needs relay_ca (a PEM file of the certificates to trust)".into());
    };
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("relay_ca {}: {e}", ca.display()))?;
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!("relay_ca {}: no certificate", ca.display()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let host = upstream.rsplit_once(':').map_or(upstream, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let relay = match mode {
        RelayTls::StartTls => relay.starttls(Arc::new(config), host),
        RelayTls::Implicit => relay.implicit_tls(Arc::new(config), host),
    };
    relay.map_err(|e| e.to_string())
}

/// The session configuration a profile asks for, applied after the builder's.
pub(crate) fn configure(
    p: &Profile,
    hostname: &str,
) -> impl Fn(&mut Config) + Send + Sync + 'static {
    let p = p.clone();
    let hostname = hostname.to_string();
    move |c: &mut Config| {
        c.hostname = hostname.clone();
        if p.lmtp == Some(true) {
            c.protocol = smtp_proto::Protocol::Lmtp;
        }
        c.proxy_protocol = p.proxy_protocol.unwrap_or(false);
        c.tls.required = p.require_tls.unwrap_or(false);
        c.auth.required = p.auth_required.unwrap_or(false);
        c.auth.allow_insecure = p.allow_insecure_auth.unwrap_or(false);
        if let Some(size) = p.size {
            c.limits.message_size = size;
        }
        if let Some(n) = p.max_recipients {
            c.limits.recipients = n;
        }
        if let Some(t) = p.timeout {
            c.timeouts.command = t;
            c.timeouts.data = t;
        }
    }
}
