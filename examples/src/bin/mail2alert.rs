//! mail2alert's job: an SMTP proxy in front of the real mail server. Mail sent to one special
//! address is intercepted and sent on to the people the rules name; all other mail is relayed
//! byte for byte, and the upstream's answers (a refused recipient, a refused message) are the
//! client's answers.
//!
//! ```text
//! cargo run -p examples --bin mail2alert -- --listen 127.0.0.1:2525 \
//!     --upstream 127.0.0.1:25 --address alerts@example.com --rules rules.txt
//! ```
//!
//! The rules file has one rule per line, `SUBJECT-PATTERN => RECIPIENT, RECIPIENT...`, where
//! the pattern is matched against the whole subject, ignoring case, with `*` for any text and
//! `?` for one character; `#` starts a comment. An alert goes to the recipients of every rule
//! that matches; an alert that no rule matches is accepted and dropped (that is how a rule set
//! mutes an alert).
//!
//! ```text
//! # pattern            => recipients
//! *disk full*          => ops@example.com, oncall@example.com
//! \[critical\]*        => oncall@example.com
//! ```
//!
//! It is a [`Handler`] that wraps [`Relay`] (its [`Handler::inner`]): it answers RCPT for the
//! special address itself instead of passing it on, and, for a message that was sent to that
//! address, reads it, adds the rule recipients to the upstream transaction and relays the
//! message it read. Everything else is the relay's.
#![forbid(unsafe_code)]

use std::path::PathBuf;

use smtp_server::smtp_proto::{ForwardPath, Mailbox, RcptParams, Reply};
use smtp_server::{Body, Context, Handler, Relay, Server, async_trait};
use wildmatch::WildMatch;

/// One line of the rules file.
#[derive(Debug)]
struct Rule {
    subject: WildMatch,
    recipients: Vec<ForwardPath<'static>>,
}

/// Reads the rules file; an error names the line.
fn load_rules(path: &PathBuf) -> Result<Vec<Rule>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut rules = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split_once('#').map_or(line, |(l, _)| l).trim();
        if line.is_empty() {
            continue;
        }
        let at = || format!("{}:{}", path.display(), n + 1);
        let Some((pattern, to)) = line.split_once("=>") else {
            return Err(format!("{}: expected PATTERN => RECIPIENT, ...", at()));
        };
        let mut recipients = Vec::new();
        for r in to.split(',').map(str::trim).filter(|r| !r.is_empty()) {
            let mailbox = Mailbox::parse(r).map_err(|e| format!("{}: {r:?}: {e}", at()))?;
            recipients.push(ForwardPath::Mailbox(mailbox.into_owned()));
        }
        if recipients.is_empty() {
            return Err(format!("{}: no recipient", at()));
        }
        // `\[` in the file stands for a literal bracket; the matcher has no classes anyway.
        let pattern = pattern.trim().replace("\\[", "[").replace("\\]", "]");
        rules.push(Rule {
            subject: WildMatch::new_case_insensitive(&pattern),
            recipients,
        });
    }
    Ok(rules)
}

struct Mail2Alert {
    relay: Relay,
    /// The special address, lowercase.
    address: String,
    rules: Vec<Rule>,
}

impl Mail2Alert {
    fn is_alert(&self, to: &ForwardPath<'_>) -> bool {
        to.mailbox()
            .is_some_and(|m| m.to_string().eq_ignore_ascii_case(&self.address))
    }

    /// Every rule recipient for this subject, each once, in rule order.
    fn recipients(&self, subject: &str) -> Vec<ForwardPath<'static>> {
        let mut out: Vec<ForwardPath<'static>> = Vec::new();
        for rule in self.rules.iter().filter(|r| r.subject.matches(subject)) {
            for r in &rule.recipients {
                if !out.contains(r) {
                    out.push(r.clone());
                }
            }
        }
        out
    }

    async fn alert(&self, ctx: &mut Context, body: Body) -> Result<(), Reply> {
        let message = body.collect().await?;
        let subject = message.subject().unwrap_or_default().to_string();
        // Recipients other than the special address were passed on at RCPT already.
        let mut upstream = ctx
            .envelope()
            .recipients
            .iter()
            .filter(|r| !self.is_alert(&r.path))
            .count();
        let mut refused = None;
        for to in self.recipients(&subject) {
            match self.relay.rcpt(ctx, &to, &RcptParams::default()).await {
                Ok(()) => upstream += 1,
                Err(reply) => {
                    eprintln!("mail2alert: upstream refused {to}: {reply}");
                    refused = Some(reply);
                }
            }
        }
        if upstream == 0 {
            self.relay.rset(ctx).await;
            return match refused {
                // Every rule recipient was refused: the sender must know.
                Some(reply) => Err(reply),
                None => {
                    eprintln!("mail2alert: no rule for {subject:?}: dropped");
                    Ok(())
                }
            };
        }
        self.relay.data(ctx, Body::from(message)).await
    }
}

/// MAIL, RSET and the end of the session go to the relay as they are (the methods not
/// overridden go to [`Handler::inner`]); RCPT and the message are looked at first.
#[async_trait]
impl Handler for Mail2Alert {
    fn inner(&self) -> Option<&dyn Handler> {
        Some(&self.relay)
    }

    async fn rcpt(
        &self,
        ctx: &mut Context,
        to: &ForwardPath<'_>,
        params: &RcptParams<'_>,
    ) -> Result<(), Reply> {
        if self.is_alert(to) {
            return Ok(());
        }
        self.relay.rcpt(ctx, to, params).await
    }

    async fn data(&self, ctx: &mut Context, body: Body) -> Result<(), Reply> {
        let alert = ctx
            .envelope()
            .recipients
            .iter()
            .any(|r| self.is_alert(&r.path));
        if alert {
            self.alert(ctx, body).await
        } else {
            // Not an alert: streamed to the upstream as it arrives.
            self.relay.data(ctx, body).await
        }
    }
}

/// Prints a one-line error and exits with code 2.
fn fail(message: impl std::fmt::Display) -> ! {
    eprintln!("mail2alert: {message}");
    std::process::exit(2);
}

#[tokio::main]
async fn main() {
    let mut listen = "127.0.0.1:2525".to_string();
    let (mut upstream, mut address, mut rules, mut hostname) = (None, None, None, None);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| fail(format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--listen" => listen = value(),
            "--upstream" => upstream = Some(value()),
            "--address" => address = Some(value().to_ascii_lowercase()),
            "--rules" => rules = Some(PathBuf::from(value())),
            "--hostname" => hostname = Some(value()),
            _ => fail(format!(
                "unknown argument {flag:?} (use --listen, --upstream, --address, --rules, --hostname)"
            )),
        }
    }
    let upstream = upstream.unwrap_or_else(|| fail("--upstream HOST:PORT is required"));
    let address = address.unwrap_or_else(|| fail("--address ADDRESS is required"));
    let rules = rules.unwrap_or_else(|| fail("--rules FILE is required"));
    let rules = load_rules(&rules).unwrap_or_else(|e| fail(e));
    let hostname = hostname.unwrap_or_else(|| "localhost".into());
    let handler = Mail2Alert {
        relay: Relay::new(upstream).hostname(hostname.clone()),
        address,
        rules,
    };
    let server = Server::builder()
        .hostname(hostname)
        .listen(listen)
        .handler(handler)
        .bind()
        .await
        .unwrap_or_else(|e| fail(e));
    for addr in server.local_addrs() {
        eprintln!("mail2alert: listening on {addr}");
    }
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    if let Err(e) = server.serve_with_shutdown(shutdown).await {
        fail(e);
    }
}
