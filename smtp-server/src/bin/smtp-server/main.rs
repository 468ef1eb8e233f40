//! The `smtp-server` program: listens, and prints, discards, stores, relays, accepts or
//! bounces what arrives.
//!
//! ```text
//! cargo run -p smtp-server --features cli -- --listen 127.0.0.1:2525 --handler maildir:/tmp/Maildir
//! cargo run -p smtp-server --features cli -- --listen 127.0.0.1:2525 \
//!     --listen 127.0.0.1:2526,mode=bounce,delay=2 --handler accept
//! ```
#![forbid(unsafe_code)]

mod handlers;
mod privileges;
mod settings;

use handlers::{build_handler, configure};
use privileges::drop_privileges;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{ArgAction, Parser};
use settings::{ListenerSpec, Profile, Settings};
use smtp_server::faults::{FaultHandler, Faults};
use smtp_server::http::HttpServer;
use smtp_server::smtp_proto::{Credentials, Reply};
use smtp_server::{
    Accounts, Capture, Context, Handler, Listen, Metrics, Server, async_trait, default_hostname,
    load_pem_files,
};

/// An embeddable ESMTP/LMTP server, as a program. Settings come from --config FILE (TOML),
/// then from these flags; each --listen may add its own (HOST:PORT,key=value,...).
///
/// Output: the debug handler prints each message to standard output; everything else (the
/// "listening on" lines, logs, errors) goes to standard error.
#[derive(Debug, Parser)]
#[command(name = "smtp-server", version)]
struct Args {
    /// A TOML file with the same settings as the flags (flags win).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on (HOST:PORT, or unix:PATH for a Unix socket), with this listener's
    /// own settings after commas, such as 127.0.0.1:2526,mode=bounce,delay=2 (repeatable;
    /// replaces the file's listeners) [default: 127.0.0.1:8025]
    #[arg(long = "listen", value_name = "HOST:PORT[,KEY=VALUE]...")]
    listen: Vec<String>,
    /// What to do with messages: debug (print to stdout), sink (discard), accept, bounce,
    /// tempfail, random (answer and discard, as Blackhole), capture (keep them in memory for
    /// the HTTP API and page: needs --http), maildir:DIR, relay:HOST:PORT,
    /// jetstream:nats://HOST:PORT (publish to a NATS JetStream stream; 250 once it has the
    /// message) [default: debug]
    #[arg(long, value_name = "HANDLER")]
    handler: Option<String>,
    /// Wait before answering the end of a message: SECS or MIN,MAX (accept, bounce,
    /// tempfail, random).
    #[arg(long, value_name = "SECS|MIN,MAX")]
    delay: Option<String>,
    /// Refusal codes of bounce, tempfail and random, one picked per message (such as 554, or
    /// 450,451,550; tempfail uses the 4xx ones) [default: bounce 550, tempfail 451]
    #[arg(long, value_name = "CODE[,CODE]...")]
    code: Option<String>,
    /// Seed for random and delay ranges, to repeat a run.
    #[arg(long, value_name = "N")]
    seed: Option<String>,
    /// TLS from the relay handler to its upstream: starttls, implicit or none.
    #[arg(long, value_name = "MODE")]
    relay_tls: Option<String>,
    /// The certificates (PEM) the relay trusts for its upstream (needed with --relay-tls).
    #[arg(long, value_name = "PEM")]
    relay_ca: Option<String>,
    /// Serve the HTTP API (Mailpit-compatible), the web page and /metrics here, such as
    /// 127.0.0.1:8025 (with any handler, /metrics; with capture, everything).
    #[arg(long, value_name = "HOST:PORT")]
    http: Option<String>,
    /// The capture store's limit in messages, the oldest dropped [default: 10000]
    #[arg(long, value_name = "N")]
    capture_max_messages: Option<usize>,
    /// The capture store's limit in bytes (k, M, G suffixes) [default: 256M]
    #[arg(long, value_name = "BYTES")]
    capture_max_bytes: Option<String>,
    /// JetStream: the stream [default: MAIL]
    #[arg(long, value_name = "NAME")]
    stream: Option<String>,
    /// JetStream: the subject to publish to [default: mail.in]
    #[arg(long, value_name = "SUBJECT")]
    subject: Option<String>,
    /// JetStream: create the stream (and the Object Store) if it does not exist.
    #[arg(long)]
    jetstream_create: bool,
    /// JetStream: an Object Store bucket for messages larger than NATS's max payload (a claim
    /// check) [default: none, such messages are refused 552]
    #[arg(long, value_name = "BUCKET")]
    object_store: Option<String>,
    /// JetStream: replicas of a stream this creates [default: 1]
    #[arg(long, value_name = "N")]
    replicas: Option<String>,
    /// JetStream: seconds an acknowledgement may take before the client gets 451
    /// [default: 5]
    #[arg(long, value_name = "SECS")]
    publish_timeout: Option<String>,
    /// JetStream: a NATS credentials file (.creds).
    #[arg(long, value_name = "FILE")]
    nats_creds: Option<String>,
    /// JetStream: bytes of messages held at once, being received or published; beyond,
    /// 451 4.4.5 [default: 64M]
    #[arg(long, value_name = "BYTES")]
    max_buffered: Option<String>,
    /// Ignore X-Blackhole-Mode and X-Blackhole-Delay headers in messages.
    #[arg(long)]
    no_switches: bool,
    /// Name in the greeting, the EHLO reply and trace headers [default: this machine's host
    /// name]
    #[arg(long)]
    hostname: Option<String>,
    /// Largest message, in bytes, with an optional k, M or G suffix (1024-based), at least 1
    /// [default: 32M]
    #[arg(long, value_name = "BYTES")]
    size: Option<String>,
    /// Most recipients per message [default: 100]
    #[arg(long, value_name = "N")]
    max_recipients: Option<String>,
    /// Idle and DATA timeout, in seconds [default: 300]
    #[arg(long, value_name = "SECS")]
    timeout: Option<String>,
    /// Most connections at once [default: no limit]
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// TLS certificate chain (PEM): offers STARTTLS, or TLS from the first byte with --implicit-tls.
    #[arg(long, value_name = "PEM")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, value_name = "PEM")]
    tls_key: Option<PathBuf>,
    /// TLS from the first byte ("port 465").
    #[arg(long)]
    implicit_tls: bool,
    /// Refuse mail until STARTTLS.
    #[arg(long)]
    require_tls: bool,
    /// An account for AUTH PLAIN and LOGIN (repeatable).
    #[arg(long = "auth", value_name = "USER:PASSWORD")]
    auth: Vec<String>,
    /// Refuse mail until AUTH.
    #[arg(long)]
    auth_required: bool,
    /// Offer AUTH without TLS.
    #[arg(long)]
    allow_insecure_auth: bool,
    /// Speak LMTP.
    #[arg(long)]
    lmtp: bool,
    /// Expect a PROXY protocol v1 or v2 header on every connection.
    #[arg(long)]
    proxy_protocol: bool,
    /// After binding, run as this user (by name or number).
    #[arg(long, value_name = "USER")]
    user: Option<String>,
    /// After binding, run as this group (by default, the user's).
    #[arg(long, value_name = "GROUP")]
    group: Option<String>,
    /// Write the process id here once listening; removed at a clean exit.
    #[arg(long, value_name = "FILE")]
    pidfile: Option<PathBuf>,
    /// Worker threads (by default, one per CPU).
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// More logging, to stderr: -v for sessions (connect, hello, TLS, AUTH user, each
    /// message's envelope and reply, disconnect), -vv for protocol lines too (AUTH redacted,
    /// message content left out). RUST_LOG overrides.
    #[arg(short, action = ArgAction::Count)]
    v: u8,
}

impl Args {
    /// The file's settings (if any) with these flags over them.
    fn settings(&self) -> Result<Settings, String> {
        let mut s = match &self.config {
            Some(path) => Settings::from_file(path)?,
            None => Settings::default(),
        };
        let d = &mut s.defaults;
        let values = [
            ("handler", self.handler.as_deref()),
            ("delay", self.delay.as_deref()),
            ("code", self.code.as_deref()),
            ("seed", self.seed.as_deref()),
            ("hostname", self.hostname.as_deref()),
            ("size", self.size.as_deref()),
            ("max_recipients", self.max_recipients.as_deref()),
            ("timeout", self.timeout.as_deref()),
            ("relay_tls", self.relay_tls.as_deref()),
            ("relay_ca", self.relay_ca.as_deref()),
            ("stream", self.stream.as_deref()),
            ("subject", self.subject.as_deref()),
            ("object_store", self.object_store.as_deref()),
            ("replicas", self.replicas.as_deref()),
            ("publish_timeout", self.publish_timeout.as_deref()),
            ("nats_creds", self.nats_creds.as_deref()),
            ("max_buffered", self.max_buffered.as_deref()),
        ];
        for (key, value) in values {
            if let Some(v) = value {
                // The error names the setting; the flag's name is clearer on the command line.
                d.set(key, v).map_err(|e| {
                    let flag = format!("--{}", key.replace('_', "-"));
                    match e.strip_prefix(&format!("{key}: ")) {
                        Some(rest) => format!("{flag}: {rest}"),
                        None => format!("{flag}: {e}"),
                    }
                })?;
            }
        }
        let flags = [
            ("switches", self.no_switches, "false"),
            ("implicit_tls", self.implicit_tls, "true"),
            ("require_tls", self.require_tls, "true"),
            ("auth_required", self.auth_required, "true"),
            ("allow_insecure_auth", self.allow_insecure_auth, "true"),
            ("lmtp", self.lmtp, "true"),
            ("proxy_protocol", self.proxy_protocol, "true"),
            ("jetstream_create", self.jetstream_create, "true"),
        ];
        for (key, given, value) in flags {
            if given {
                d.set(key, value)?;
            }
        }
        if !self.listen.is_empty() {
            s.listeners = self
                .listen
                .iter()
                .map(|l| ListenerSpec::parse(l))
                .collect::<Result<_, _>>()?;
        }
        for a in &self.auth {
            s.auth.push(settings::account(a)?);
        }
        s.tls_cert = self.tls_cert.clone().or(s.tls_cert);
        s.tls_key = self.tls_key.clone().or(s.tls_key);
        s.max_connections = self.max_connections.or(s.max_connections);
        s.user = self.user.clone().or(s.user);
        s.group = self.group.clone().or(s.group);
        s.pidfile = self.pidfile.clone().or(s.pidfile);
        s.workers = self.workers.or(s.workers);
        s.http = self.http.clone().or(s.http);
        s.capture_max_messages = self.capture_max_messages.or(s.capture_max_messages);
        if let Some(b) = &self.capture_max_bytes {
            let mut p = Profile::default();
            p.set("size", b)
                .map_err(|e| format!("--capture-max-bytes: {}", e.trim_start_matches("size: ")))?;
            s.capture_max_bytes = p.size;
        }
        Ok(s)
    }
}

/// Checks AUTH against the accounts given on the command line, and otherwise is `inner`.
struct Program {
    inner: Arc<dyn Handler>,
    accounts: Accounts,
}

#[async_trait]
impl Handler for Program {
    fn inner(&self) -> Option<&dyn Handler> {
        Some(&*self.inner)
    }

    async fn auth(&self, _: &mut Context, c: &Credentials) -> Result<String, Reply> {
        self.accounts.verify(c)
    }
}

/// Prints a one-line error and exits with code 2.
fn fail(message: impl std::fmt::Display) -> ! {
    eprintln!("smtp-server: {message}");
    std::process::exit(2);
}

async fn run(s: Settings) -> Result<(), String> {
    let mut accounts = Accounts::default();
    for (user, password) in &s.auth {
        accounts.insert(user, password);
    }
    let mut b = Server::builder();
    let machine = default_hostname();
    match (&s.tls_cert, &s.tls_key) {
        (Some(cert), Some(key)) => b = b.tls(load_pem_files(cert, key).map_err(|e| e.to_string())?),
        (None, None) => {}
        _ => return Err("tls_cert and tls_key go together".into()),
    }
    if !accounts.is_empty() {
        b = b.auth_mechanisms(["PLAIN", "LOGIN"]);
    }
    if let Some(n) = s.max_connections {
        b = b.max_connections(n);
    }
    let listeners = if s.listeners.is_empty() {
        vec![ListenerSpec {
            address: "127.0.0.1:8025".into(),
            profile: Profile::default(),
        }]
    } else {
        s.listeners.clone()
    };
    // Listeners with the same handler settings share one handler (one Maildir, one random
    // sequence).
    let mut handlers: HashMap<Profile, Arc<dyn Handler>> = HashMap::new();
    // One capture store for the program, shared by every listener that captures, read over
    // HTTP; its faults are set over HTTP too.
    let capture = Arc::new(FaultHandler::new(
        Capture::with_limits(
            s.capture_max_messages.unwrap_or(10_000),
            usize::try_from(s.capture_max_bytes.unwrap_or(256 << 20)).unwrap_or(usize::MAX),
        ),
        Faults::new(),
    ));
    let mut capturing = false;
    let listener_addresses: Vec<String> = listeners.iter().map(|l| l.address.clone()).collect();
    let mut maildirs = Vec::new();
    for l in listeners {
        let p = l.profile.over(&s.defaults);
        if p.auth_required == Some(true) && accounts.is_empty() {
            return Err(format!(
                "{}: auth_required needs an account (auth)",
                l.address
            ));
        }
        // AUTH is offered over TLS only unless allowed in plain text: with no certificate it
        // could never be offered, and with auth_required no client could ever send.
        if !accounts.is_empty() && s.tls_cert.is_none() && p.allow_insecure_auth != Some(true) {
            return Err(format!(
                "{}: auth accounts need a certificate (tls_cert, tls_key) for STARTTLS, or \
                 allow_insecure_auth to offer AUTH without TLS",
                l.address
            ));
        }
        let hostname = p.hostname.clone().unwrap_or_else(|| machine.clone());
        // The key: only what build_handler reads (a typed value, hashed).
        let key = Profile {
            handler: p.handler.clone(),
            hostname: Some(hostname.clone()),
            delay: p.delay,
            code: p.code.clone(),
            seed: p.seed,
            switches: p.switches,
            relay_tls: p.relay_tls,
            relay_ca: p.relay_ca.clone(),
            keep_crlf: p.keep_crlf,
            stream: p.stream.clone(),
            subject: p.subject.clone(),
            jetstream_create: p.jetstream_create,
            object_store: p.object_store.clone(),
            replicas: p.replicas,
            publish_timeout: p.publish_timeout,
            nats_creds: p.nats_creds.clone(),
            max_buffered: p.max_buffered,
            ..Profile::default()
        };
        let inner = match handlers.get(&key) {
            Some(h) => Arc::clone(h),
            None => {
                let (h, maildir) = build_handler(&p, &hostname, &capture)
                    .await
                    .map_err(|e| format!("{}: {e}", l.address))?;
                maildirs.extend(maildir);
                handlers.insert(key, Arc::clone(&h));
                h
            }
        };
        capturing |= matches!(p.handler, Some(settings::HandlerSpec::Capture));
        let listen = match l.address.strip_prefix("unix:") {
            Some(path) => Listen::unix(path),
            None => Listen::tcp(&l.address),
        };
        let mut listen = listen
            .implicit_tls(p.implicit_tls.unwrap_or(false))
            .configure(configure(&p, &hostname))
            .handler(Program {
                inner,
                accounts: accounts.clone(),
            });
        if let Some(name) = &p.name {
            listen = listen.name(name);
        }
        b = b.listener(listen);
    }
    // The same fixed address twice (port 0 is a new port each time, so never a clash).
    if let Some(addr) = &s.http
        && !addr.ends_with(":0")
        && listener_addresses.iter().any(|l| l == addr)
    {
        return Err(format!(
            "http {addr}: an SMTP listener uses this address (the default --listen is \
             127.0.0.1:8025): give --listen or --http another port"
        ));
    }
    if capturing && s.http.is_none() {
        return Err(
            "the capture handler is read over HTTP: add --http HOST:PORT (such as 127.0.0.1:8025)"
                .into(),
        );
    }
    let metrics = s.http.as_ref().map(|_| Metrics::new());
    if let Some(m) = &metrics {
        b = b.metrics(m.clone());
    }
    let server = b.bind().await.map_err(|e| e.to_string())?;
    let http = match (&s.http, metrics) {
        (Some(addr), Some(m)) => {
            let mut web = HttpServer::new().metrics(m);
            if capturing {
                web = web.capture_with_faults(Arc::clone(&capture));
            }
            Some(
                web.spawn(addr)
                    .await
                    .map_err(|e| format!("http {addr}: {e}"))?,
            )
        }
        _ => None,
    };
    if let Some(pidfile) = &s.pidfile {
        std::fs::write(pidfile, format!("{}\n", std::process::id()))
            .map_err(|e| format!("pidfile {}: {e}", pidfile.display()))?;
    }
    drop_privileges(s.user.as_deref(), s.group.as_deref(), &maildirs)?;
    // Printed once ready, privileges dropped: scripts and tests wait for these lines.
    for addr in server.local_addrs() {
        eprintln!("smtp-server: listening on {addr}");
    }
    for path in server.unix_paths() {
        eprintln!("smtp-server: listening on unix:{}", path.display());
    }
    if let Some(h) = &http {
        eprintln!("smtp-server: http on {}", h.url());
    }
    let result = server
        .serve_with_shutdown(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .unwrap_or_else(|e| fail(e));
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        })
        .await;
    if let Some(pidfile) = &s.pidfile {
        // After dropping privileges this may be refused; the file then stays.
        let _ = std::fs::remove_file(pidfile);
    }
    result.map_err(|e| e.to_string())
}

fn main() {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) if e.use_stderr() => {
            let text = e.to_string();
            fail(
                text.lines()
                    .next()
                    .unwrap_or("bad arguments")
                    .trim_start_matches("error: "),
            )
        }
        Err(e) => {
            // --help, --version
            print!("{e}");
            return;
        }
    };
    let settings = args.settings().unwrap_or_else(|e| fail(e));
    // -v: sessions (info); -vv: protocol lines (debug), which the driver redacts. Never
    // `debug` for every crate: other crates' debug output is not ours to vet for secrets.
    let filter = match args.v.max(settings.verbose) {
        0 => "warn",
        1 => "warn,smtp_server=info",
        _ => "warn,smtp_server=debug",
    };
    use std::io::IsTerminal as _;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter)),
        )
        .init();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    match settings.workers {
        Some(0) => fail("workers: must be at least 1"),
        Some(n) => {
            runtime.worker_threads(n);
        }
        None => {}
    }
    let runtime = runtime.enable_all().build().unwrap_or_else(|e| fail(e));
    if let Err(e) = runtime.block_on(run(settings)) {
        fail(e);
    }
}
