//! The program's settings, from a TOML file and the command line, with per-listener profiles.
//!
//! One grammar serves three places: a key of the TOML file's top level, a key of one of its
//! `[[listener]]` tables, and a `key=value` after the address in `--listen`. The command line
//! wins over the file; a listener's own keys win over the top level.

use std::path::PathBuf;
use std::time::Duration;

use smtp_server::blackhole::{self, Delay, Mode};

/// A handler, as given by `handler = "..."` or `--handler`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum HandlerSpec {
    Debug,
    Sink,
    Blackhole(Mode),
    Maildir(PathBuf),
    Relay(String),
    /// NATS server URL(s), comma-separated.
    JetStream(String),
    /// The capture store, read over HTTP (`--http`).
    Capture,
}

impl HandlerSpec {
    fn parse(spec: &str) -> Result<Self, String> {
        let (kind, arg) = spec.split_once(':').unwrap_or((spec, ""));
        match (kind, arg) {
            ("debug", "") => Ok(Self::Debug),
            ("sink", "") => Ok(Self::Sink),
            ("capture", "") => Ok(Self::Capture),
            ("maildir", dir) if !dir.is_empty() => Ok(Self::Maildir(dir.into())),
            ("relay", upstream) if !upstream.is_empty() => Ok(Self::Relay(upstream.into())),
            ("jetstream", url) if !url.is_empty() => Ok(Self::JetStream(url.into())),
            _ => match spec.parse::<Mode>() {
                Ok(mode) => Ok(Self::Blackhole(mode)),
                Err(_) => Err(format!(
                    "unknown handler {spec:?} (use debug, sink, accept, bounce, tempfail, \
                     random, capture, maildir:DIR, relay:HOST:PORT or jetstream:nats://HOST:PORT)"
                )),
            },
        }
    }
}

/// What one listener does; unset values come from the top level, then the defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(crate) struct Profile {
    pub(crate) name: Option<String>,
    pub(crate) hostname: Option<String>,
    pub(crate) handler: Option<HandlerSpec>,
    pub(crate) delay: Option<Delay>,
    /// Refusal codes, one picked per refused message.
    pub(crate) code: Option<Vec<u16>>,
    pub(crate) seed: Option<u64>,
    pub(crate) switches: Option<bool>,
    pub(crate) implicit_tls: Option<bool>,
    pub(crate) require_tls: Option<bool>,
    pub(crate) auth_required: Option<bool>,
    pub(crate) allow_insecure_auth: Option<bool>,
    pub(crate) lmtp: Option<bool>,
    pub(crate) proxy_protocol: Option<bool>,
    pub(crate) size: Option<u64>,
    pub(crate) max_recipients: Option<usize>,
    pub(crate) timeout: Option<Duration>,
    /// TLS to the relay's upstream: `starttls` or `implicit`.
    pub(crate) relay_tls: Option<RelayTls>,
    /// The certificates (PEM) the relay trusts for its upstream.
    pub(crate) relay_ca: Option<PathBuf>,
    /// Maildir: keep the wire's CRLF line endings instead of LF.
    pub(crate) keep_crlf: Option<bool>,
    /// JetStream: the stream's name.
    pub(crate) stream: Option<String>,
    /// JetStream: the subject published to.
    pub(crate) subject: Option<String>,
    /// JetStream: create the stream (and Object Store) if missing.
    pub(crate) jetstream_create: Option<bool>,
    /// JetStream: the Object Store bucket for messages over NATS's max payload.
    pub(crate) object_store: Option<String>,
    /// JetStream: replicas of a stream it creates.
    pub(crate) replicas: Option<usize>,
    /// JetStream: how long an acknowledgement may take.
    pub(crate) publish_timeout: Option<Duration>,
    /// JetStream: a NATS credentials file.
    pub(crate) nats_creds: Option<PathBuf>,
    /// JetStream: bytes of messages held at once.
    pub(crate) max_buffered: Option<u64>,
}

/// How the relay handler protects its connection to the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum RelayTls {
    StartTls,
    Implicit,
}

fn number<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, String> {
    value
        .trim()
        .parse()
        .map_err(|_| format!("{key}: {value:?} is not a number"))
}

/// A size in bytes: digits with an optional `k`, `M` or `G` suffix (1024-based), at least 1.
fn size(key: &str, value: &str) -> Result<u64, String> {
    let v = value.trim();
    let (digits, unit) = match v.char_indices().last() {
        Some((i, 'k' | 'K')) => (&v[..i], 1u64 << 10),
        Some((i, 'm' | 'M')) => (&v[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&v[..i], 1 << 30),
        _ => (v, 1),
    };
    let n: u64 = digits
        .parse()
        .ok()
        .and_then(|n: u64| n.checked_mul(unit))
        .ok_or_else(|| {
            format!("{key}: {value:?} is not a size (such as 1048576, 512k, 10M, 1G)")
        })?;
    if n == 0 {
        return Err(format!("{key}: must be at least 1 byte"));
    }
    Ok(n)
}

fn boolean(key: &str, value: &str) -> Result<bool, String> {
    match value.trim() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err(format!("{key}: {value:?} is not true or false")),
    }
}

impl Profile {
    /// Sets one key from its text.
    pub(crate) fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let flag = |v: &str| boolean(key, v).map(Some);
        match key {
            "name" => self.name = Some(value.to_string()),
            "hostname" => self.hostname = Some(value.to_string()),
            "handler" => self.handler = Some(HandlerSpec::parse(value)?),
            "mode" => {
                let mode = value.parse::<Mode>().map_err(|e| e.to_string())?;
                self.handler = Some(HandlerSpec::Blackhole(mode));
            }
            "delay" => {
                self.delay = Some(
                    value
                        .parse()
                        .map_err(|e: blackhole::InvalidSetting| e.to_string())?,
                )
            }
            "code" | "bounce_code" => {
                let codes = value
                    .split(',')
                    .map(|c| number(key, c))
                    .collect::<Result<Vec<u16>, _>>()?;
                for &c in &codes {
                    blackhole::refusal(c).map_err(|e| e.to_string())?;
                }
                self.code = Some(codes);
            }
            "seed" => self.seed = Some(number(key, value)?),
            "switches" => self.switches = flag(value)?,
            "implicit_tls" => self.implicit_tls = flag(value)?,
            "require_tls" => self.require_tls = flag(value)?,
            "auth_required" => self.auth_required = flag(value)?,
            "allow_insecure_auth" => self.allow_insecure_auth = flag(value)?,
            "lmtp" => self.lmtp = flag(value)?,
            "proxy_protocol" => self.proxy_protocol = flag(value)?,
            "size" => self.size = Some(size(key, value)?),
            "max_recipients" => self.max_recipients = Some(number(key, value)?),
            "timeout" => self.timeout = Some(Duration::from_secs(number(key, value)?)),
            "relay_tls" => {
                self.relay_tls = match value.trim() {
                    "starttls" => Some(RelayTls::StartTls),
                    "implicit" => Some(RelayTls::Implicit),
                    "none" => None,
                    _ => {
                        return Err(format!(
                            "relay_tls: {value:?} (use starttls, implicit or none)"
                        ));
                    }
                }
            }
            "relay_ca" => self.relay_ca = Some(value.into()),
            "keep_crlf" => self.keep_crlf = flag(value)?,
            "stream" => self.stream = Some(value.to_string()),
            "subject" => self.subject = Some(value.to_string()),
            "jetstream_create" => self.jetstream_create = flag(value)?,
            "object_store" => self.object_store = Some(value.to_string()),
            "replicas" => self.replicas = Some(number(key, value)?),
            "publish_timeout" => {
                let secs: f64 = number(key, value)?;
                if !(secs > 0.0 && secs <= 3600.0) {
                    return Err(format!(
                        "{key}: {value:?} must be between 0 and 3600 seconds"
                    ));
                }
                self.publish_timeout = Some(Duration::from_secs_f64(secs));
            }
            "nats_creds" => self.nats_creds = Some(value.into()),
            "max_buffered" => self.max_buffered = Some(size(key, value)?),
            _ => return Err(format!("unknown setting {key:?}")),
        }
        Ok(())
    }

    /// This profile, with what it leaves unset taken from `base`.
    pub(crate) fn over(&self, base: &Self) -> Self {
        fn pick<T: Clone>(a: &Option<T>, b: &Option<T>) -> Option<T> {
            a.clone().or_else(|| b.clone())
        }
        Self {
            name: pick(&self.name, &base.name),
            hostname: pick(&self.hostname, &base.hostname),
            handler: pick(&self.handler, &base.handler),
            delay: pick(&self.delay, &base.delay),
            code: pick(&self.code, &base.code),
            seed: pick(&self.seed, &base.seed),
            switches: pick(&self.switches, &base.switches),
            implicit_tls: pick(&self.implicit_tls, &base.implicit_tls),
            require_tls: pick(&self.require_tls, &base.require_tls),
            auth_required: pick(&self.auth_required, &base.auth_required),
            allow_insecure_auth: pick(&self.allow_insecure_auth, &base.allow_insecure_auth),
            lmtp: pick(&self.lmtp, &base.lmtp),
            proxy_protocol: pick(&self.proxy_protocol, &base.proxy_protocol),
            size: pick(&self.size, &base.size),
            max_recipients: pick(&self.max_recipients, &base.max_recipients),
            timeout: pick(&self.timeout, &base.timeout),
            relay_tls: pick(&self.relay_tls, &base.relay_tls),
            relay_ca: pick(&self.relay_ca, &base.relay_ca),
            keep_crlf: pick(&self.keep_crlf, &base.keep_crlf),
            stream: pick(&self.stream, &base.stream),
            subject: pick(&self.subject, &base.subject),
            jetstream_create: pick(&self.jetstream_create, &base.jetstream_create),
            object_store: pick(&self.object_store, &base.object_store),
            replicas: pick(&self.replicas, &base.replicas),
            publish_timeout: pick(&self.publish_timeout, &base.publish_timeout),
            nats_creds: pick(&self.nats_creds, &base.nats_creds),
            max_buffered: pick(&self.max_buffered, &base.max_buffered),
        }
    }
}

/// One listener: its address and its own profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListenerSpec {
    pub(crate) address: String,
    pub(crate) profile: Profile,
}

impl ListenerSpec {
    /// `HOST:PORT[,key=value]...`; a bare key is `key=true`, a number right after
    /// `delay=MIN` is its maximum (`delay=1,3`), as Blackhole writes a range, and numbers
    /// after `code=` are more codes (`code=450,550`).
    pub(crate) fn parse(spec: &str) -> Result<Self, String> {
        let mut parts = spec.split(',').map(str::trim);
        let address = parts.next().unwrap_or_default().to_string();
        if address.is_empty() || address.contains('=') {
            return Err(format!(
                "--listen {spec:?}: expected HOST:PORT[,key=value]..."
            ));
        }
        let mut pairs: Vec<(String, String)> = Vec::new();
        for part in parts {
            match part.split_once('=') {
                Some((k, v)) => pairs.push((k.trim().to_string(), v.trim().to_string())),
                None => match pairs.last_mut() {
                    // A range's maximum, or one more refusal code.
                    Some((k, v)) if (k == "delay" && !v.contains(',')) || k == "code" => {
                        v.push(',');
                        v.push_str(part);
                    }
                    _ => pairs.push((part.to_string(), "true".to_string())),
                },
            }
        }
        let mut profile = Profile::default();
        for (k, v) in &pairs {
            profile
                .set(k, v)
                .map_err(|e| format!("--listen {address}: {e}"))?;
        }
        Ok(Self { address, profile })
    }
}

/// Everything the program was told.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Settings {
    /// The top level: what every listener does unless it says otherwise.
    pub(crate) defaults: Profile,
    pub(crate) listeners: Vec<ListenerSpec>,
    pub(crate) tls_cert: Option<PathBuf>,
    pub(crate) tls_key: Option<PathBuf>,
    /// `USER:PASSWORD` accounts for AUTH.
    pub(crate) auth: Vec<(String, String)>,
    pub(crate) max_connections: Option<usize>,
    pub(crate) user: Option<String>,
    pub(crate) group: Option<String>,
    pub(crate) pidfile: Option<PathBuf>,
    pub(crate) workers: Option<usize>,
    /// Logging: 0 (default), 1 (sessions), 2 (protocol lines): the number of `-v`.
    pub(crate) verbose: u8,
    /// Where the HTTP API, page and metrics are served.
    pub(crate) http: Option<String>,
    /// The capture store's limits: messages, bytes.
    pub(crate) capture_max_messages: Option<usize>,
    pub(crate) capture_max_bytes: Option<u64>,
}

/// A TOML value as the text a flag would give.
fn text(key: &str, value: &toml::Value) -> Result<String, String> {
    use toml::Value;
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Integer(i) => Ok(i.to_string()),
        Value::Float(f) => Ok(f.to_string()),
        Value::Boolean(b) => Ok(b.to_string()),
        Value::Array(items) => Ok(items
            .iter()
            .map(|v| text(key, v))
            .collect::<Result<Vec<_>, _>>()?
            .join(",")),
        _ => Err(format!(
            "{key}: expected a string, a number, a boolean or a list"
        )),
    }
}

fn strings(key: &str, value: &toml::Value) -> Result<Vec<String>, String> {
    match value {
        toml::Value::Array(items) => items.iter().map(|v| text(key, v)).collect(),
        v => Ok(vec![text(key, v)?]),
    }
}

pub(crate) fn account(spec: &str) -> Result<(String, String), String> {
    spec.split_once(':')
        .map(|(u, p)| (u.to_string(), p.to_string()))
        .ok_or_else(|| format!("auth {spec:?}: expected USER:PASSWORD"))
}

impl Settings {
    /// Reads a TOML file (see the README for its keys).
    pub(crate) fn from_file(path: &std::path::Path) -> Result<Self, String> {
        let where_ = path.display();
        let source = std::fs::read_to_string(path).map_err(|e| format!("{where_}: {e}"))?;
        Self::from_toml(&source).map_err(|e| format!("{where_}: {e}"))
    }

    pub(crate) fn from_toml(source: &str) -> Result<Self, String> {
        let table: toml::Table = source
            .parse()
            .map_err(|e: toml::de::Error| e.message().to_string())?;
        let mut s = Self::default();
        for (key, value) in &table {
            match key.as_str() {
                "listen" => {
                    for spec in strings(key, value)? {
                        s.listeners.push(ListenerSpec::parse(&spec)?);
                    }
                }
                "listener" => {
                    let toml::Value::Array(tables) = value else {
                        return Err("listener: expected [[listener]] tables".into());
                    };
                    for t in tables {
                        s.listeners.push(listener_table(t)?);
                    }
                }
                "tls_cert" => s.tls_cert = Some(text(key, value)?.into()),
                "tls_key" => s.tls_key = Some(text(key, value)?.into()),
                "auth" => {
                    for a in strings(key, value)? {
                        s.auth.push(account(&a)?);
                    }
                }
                "max_connections" => s.max_connections = Some(number(key, &text(key, value)?)?),
                "user" => s.user = Some(text(key, value)?),
                "group" => s.group = Some(text(key, value)?),
                "pidfile" => s.pidfile = Some(text(key, value)?.into()),
                "workers" => s.workers = Some(number(key, &text(key, value)?)?),
                "verbose" => s.verbose = number(key, &text(key, value)?)?,
                "http" => s.http = Some(text(key, value)?),
                "capture_max_messages" => {
                    s.capture_max_messages = Some(number(key, &text(key, value)?)?)
                }
                "capture_max_bytes" => s.capture_max_bytes = Some(size(key, &text(key, value)?)?),
                _ => s.defaults.set(key, &text(key, value)?)?,
            }
        }
        Ok(s)
    }
}

fn listener_table(value: &toml::Value) -> Result<ListenerSpec, String> {
    let toml::Value::Table(t) = value else {
        return Err("listener: expected [[listener]] tables".into());
    };
    // Keys first, so that a misspelt `adress` is named as unknown rather than reported as a
    // missing address.
    let mut profile = Profile::default();
    let name = t
        .get("address")
        .map(|a| text("address", a))
        .transpose()?
        .unwrap_or_else(|| "[[listener]]".into());
    for (key, value) in t {
        if key != "address" {
            profile
                .set(key, &text(key, value)?)
                .map_err(|e| format!("listener {name}: {e}"))?;
        }
    }
    let Some(address) = t.get("address") else {
        return Err("[[listener]] without an address".into());
    };
    let address = text("address", address)?;
    Ok(ListenerSpec { address, profile })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_specs() {
        let l = ListenerSpec::parse("127.0.0.1:2526,mode=bounce,delay=2").unwrap();
        assert_eq!(l.address, "127.0.0.1:2526");
        assert_eq!(
            l.profile.handler,
            Some(HandlerSpec::Blackhole(Mode::Bounce))
        );
        assert_eq!(l.profile.delay, Some("2".parse().unwrap()));

        let l =
            ListenerSpec::parse("[::1]:2465, implicit_tls, delay=1,3, code=452 ,name=tls").unwrap();
        assert_eq!(l.address, "[::1]:2465");
        assert_eq!(l.profile.implicit_tls, Some(true));
        assert_eq!(l.profile.delay, Some("1,3".parse().unwrap()));
        assert_eq!(l.profile.code, Some(vec![452]));
        assert_eq!(l.profile.name.as_deref(), Some("tls"));
        let l = ListenerSpec::parse("127.0.0.1:1,mode=bounce,code=450,451,550,delay=1,2").unwrap();
        assert_eq!(l.profile.code, Some(vec![450, 451, 550]));
        assert_eq!(l.profile.delay, Some("1,2".parse().unwrap()));

        let l =
            ListenerSpec::parse("127.0.0.1:2587,handler=maildir:/tmp/m,auth_required=yes").unwrap();
        assert_eq!(
            l.profile.handler,
            Some(HandlerSpec::Maildir("/tmp/m".into()))
        );
        assert_eq!(l.profile.auth_required, Some(true));

        for bad in [
            "",
            "mode=bounce",
            "127.0.0.1:1,mode=later",
            "127.0.0.1:1,delay=x",
            "127.0.0.1:1,delay=3,1",
            "127.0.0.1:1,code=250",
            "127.0.0.1:1,colour=blue",
            "127.0.0.1:1,lmtp=maybe",
            "127.0.0.1:1,handler=smtp",
        ] {
            let e = ListenerSpec::parse(bad).unwrap_err();
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn sizes() {
        for (text, want) in [
            ("1", Some(1)),
            ("1024", Some(1024)),
            ("1k", Some(1024)),
            ("512K", Some(512 << 10)),
            ("10M", Some(10 << 20)),
            ("2g", Some(2 << 30)),
            (" 3m ", Some(3 << 20)),
            ("0", None),
            ("0k", None),
            ("k", None),
            ("1.5M", None),
            ("-1", None),
            ("1T", None),
            ("99999999999G", None),
        ] {
            assert_eq!(size("size", text).ok(), want, "{text:?}");
        }
        let e = Profile::default().set("size", "0").unwrap_err();
        assert_eq!(e, "size: must be at least 1 byte");
    }

    #[test]
    fn toml_file() {
        let s = Settings::from_toml(
            r#"
            hostname = "mx.test"
            handler = "accept"
            delay = [0, 2]
            seed = 7
            switches = false
            tls_cert = "cert.pem"
            tls_key = "key.pem"
            auth = ["ann:secret"]
            workers = 2
            verbose = 1
            pidfile = "/tmp/x.pid"
            listen = ["127.0.0.1:2525"]

            [[listener]]
            address = "127.0.0.1:2526"
            mode = "bounce"
            code = 554

            [[listener]]
            address = "127.0.0.1:2465"
            implicit_tls = true
            "#,
        )
        .unwrap();
        assert_eq!(s.defaults.hostname.as_deref(), Some("mx.test"));
        assert_eq!(s.defaults.delay, Some("0,2".parse().unwrap()));
        assert_eq!(s.defaults.switches, Some(false));
        assert_eq!(s.auth, vec![("ann".into(), "secret".into())]);
        assert_eq!((s.workers, s.defaults.seed), (Some(2), Some(7)));
        assert_eq!(s.verbose, 1);
        let addrs: Vec<_> = s.listeners.iter().map(|l| l.address.as_str()).collect();
        assert_eq!(
            addrs,
            ["127.0.0.1:2525", "127.0.0.1:2526", "127.0.0.1:2465"]
        );
        let bounce = s.listeners[1].profile.over(&s.defaults);
        assert_eq!(bounce.handler, Some(HandlerSpec::Blackhole(Mode::Bounce)));
        assert_eq!((bounce.code, bounce.seed), (Some(vec![554]), Some(7)));
        assert_eq!(s.listeners[2].profile.implicit_tls, Some(true));

        let e = Settings::from_toml("[[listener]]\nadress = '127.0.0.1:1'").unwrap_err();
        assert!(e.contains("unknown setting \"adress\""), "{e}");

        for bad in [
            "hostname = ",
            "colour = 'blue'",
            "[[listener]]\nmode = 'bounce'",
            "[[listener]]\naddress = '127.0.0.1:1'\ndelay = 'soon'",
            "auth = ['nopassword']",
            "workers = 'many'",
        ] {
            let e = Settings::from_toml(bad).unwrap_err();
            assert!(!e.contains('\n'), "{bad:?}: {e}");
        }
    }
}
