//! The `smtp-server` program: listens, and prints, discards, stores or relays what arrives.
//!
//! ```text
//! cargo run -p smtp-server --features cli -- --listen 127.0.0.1:2525 --handler maildir:/tmp/Maildir
//! ```
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

use clap::{ArgAction, Parser};
use smtp_server::smtp_proto::{
    Credentials, Envelope, ForwardPath, MailParams, RcptParams, Reply, ReversePath,
};
use smtp_server::{
    Accounts, Body, Debugging, Handler, Maildir, Server, SessionInfo, Sink, async_trait,
    load_pem_files,
};

/// An embeddable ESMTP/LMTP server, as a program.
#[derive(Debug, Parser)]
#[command(name = "smtp-server", version)]
struct Args {
    /// Address to listen on (repeatable).
    #[arg(long = "listen", value_name = "HOST:PORT")]
    listen: Vec<String>,
    /// What to do with messages: debug (print), sink (discard), maildir:DIR, relay:HOST:PORT.
    #[arg(long, default_value = "debug", value_name = "HANDLER")]
    handler: String,
    /// Name in the greeting and the EHLO reply.
    #[arg(long, default_value = "localhost")]
    hostname: String,
    /// Largest message, in bytes.
    #[arg(long, value_name = "BYTES")]
    size: Option<u64>,
    /// Most recipients per message.
    #[arg(long, value_name = "N")]
    max_recipients: Option<usize>,
    /// Idle and DATA timeout, in seconds.
    #[arg(long, value_name = "SECS")]
    timeout: Option<u64>,
    /// Most connections at once.
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// TLS certificate chain (PEM): offers STARTTLS, or TLS from the first byte with --implicit-tls.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    tls_cert: Option<String>,
    /// TLS private key (PEM).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<String>,
    /// TLS from the first byte ("port 465").
    #[arg(long, requires = "tls_cert")]
    implicit_tls: bool,
    /// Refuse mail until STARTTLS.
    #[arg(long, requires = "tls_cert")]
    require_tls: bool,
    /// An account for AUTH PLAIN and LOGIN (repeatable).
    #[arg(long = "auth", value_name = "USER:PASSWORD")]
    auth: Vec<String>,
    /// Refuse mail until AUTH.
    #[arg(long, requires = "auth")]
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
    /// More logging: -v for sessions, -vv for protocol lines.
    #[arg(short, action = ArgAction::Count)]
    v: u8,
}

/// Checks AUTH against the accounts given on the command line, and otherwise is `inner`.
struct Program {
    inner: Arc<dyn Handler>,
    accounts: Accounts,
}

#[async_trait]
impl Handler for Program {
    async fn connect(&self, s: &SessionInfo) -> Result<(), Reply> {
        self.inner.connect(s).await
    }
    async fn hello(
        &self,
        s: &SessionInfo,
        name: &str,
        caps: &mut Vec<String>,
    ) -> Result<(), Reply> {
        self.inner.hello(s, name, caps).await
    }
    async fn auth(&self, _: &SessionInfo, c: &Credentials) -> Result<String, Reply> {
        self.accounts.verify(c)
    }
    async fn mail(
        &self,
        s: &SessionInfo,
        f: &ReversePath<'static>,
        p: &MailParams<'static>,
    ) -> Result<(), Reply> {
        self.inner.mail(s, f, p).await
    }
    async fn rcpt(
        &self,
        s: &SessionInfo,
        e: &Envelope,
        t: &ForwardPath<'static>,
        p: &RcptParams<'static>,
    ) -> Result<(), Reply> {
        self.inner.rcpt(s, e, t, p).await
    }
    async fn data(&self, s: &SessionInfo, e: &Envelope, b: Body) -> Result<(), Reply> {
        self.inner.data(s, e, b).await
    }
    async fn data_lmtp(&self, s: &SessionInfo, e: &Envelope, b: Body) -> Vec<Result<(), Reply>> {
        self.inner.data_lmtp(s, e, b).await
    }
    async fn rset(&self, s: &SessionInfo) {
        self.inner.rset(s).await;
    }
    async fn disconnect(&self, s: &SessionInfo) {
        self.inner.disconnect(s).await;
    }
}

/// Prints a one-line error and exits with code 2.
fn fail(message: impl std::fmt::Display) -> ! {
    eprintln!("smtp-server: {message}");
    std::process::exit(2);
}

fn handler(spec: &str, hostname: &str) -> Arc<dyn Handler> {
    let (kind, arg) = spec.split_once(':').unwrap_or((spec, ""));
    match (kind, arg) {
        ("debug", "") => Arc::new(Debugging::stdout()),
        ("sink", "") => Arc::new(Sink),
        ("maildir", dir) if !dir.is_empty() => match Maildir::new(dir) {
            Ok(m) => Arc::new(m.hostname(hostname)),
            Err(e) => fail(format!("maildir {dir}: {e}")),
        },
        ("relay", upstream) if !upstream.is_empty() => Arc::new(smtp_server::Relay::new(upstream)),
        _ => fail(format!(
            "unknown handler {spec:?} (use debug, sink, maildir:DIR or relay:HOST:PORT)"
        )),
    }
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
    let filter = match args.v {
        0 => "warn,smtp_server=info",
        1 => "info,smtp_server=debug",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter)),
        )
        .init();
    let mut accounts = Accounts::default();
    for a in &args.auth {
        let Some((user, pass)) = a.split_once(':') else {
            fail(format!("--auth {a:?}: expected USER:PASSWORD"));
        };
        accounts.insert(user, pass);
    }
    let inner = handler(&args.handler, &args.hostname);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(e));
    let result = runtime.block_on(async move {
        let mut b = Server::builder()
            .hostname(args.hostname.clone())
            .lmtp(args.lmtp)
            .proxy_protocol(args.proxy_protocol)
            .require_tls(args.require_tls)
            .handler(Program {
                inner,
                accounts: accounts.clone(),
            });
        if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
            b = b.tls(load_pem_files(cert, key).unwrap_or_else(|e| fail(e)));
        }
        if !accounts.is_empty() {
            b = b
                .auth_mechanisms(["PLAIN", "LOGIN"])
                .auth_required(args.auth_required)
                .allow_insecure_auth(args.allow_insecure_auth);
        }
        if let Some(n) = args.max_connections {
            b = b.max_connections(n);
        }
        let (size, rcpts, timeout) = (args.size, args.max_recipients, args.timeout);
        b = b.configure(move |c| {
            if let Some(size) = size {
                c.limits.message_size = size;
            }
            if let Some(n) = rcpts {
                c.limits.recipients = n;
            }
            if let Some(secs) = timeout {
                c.timeouts.command = Duration::from_secs(secs);
                c.timeouts.data = Duration::from_secs(secs);
            }
        });
        let listen = if args.listen.is_empty() {
            vec!["127.0.0.1:8025".to_string()]
        } else {
            args.listen.clone()
        };
        for l in listen {
            b = if args.implicit_tls {
                b.listen_tls(l)
            } else {
                b.listen(l)
            };
        }
        let server = b.bind().await.unwrap_or_else(|e| fail(e));
        for addr in server.local_addrs() {
            tracing::info!("listening on {addr}");
            eprintln!("smtp-server: listening on {addr}");
        }
        server
            .serve_with_shutdown(async {
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                        .unwrap_or_else(|e| fail(e));
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            })
            .await
    });
    if let Err(e) = result {
        fail(e);
    }
}
