//! Commands: what each SMTP/LMTP command does to the session (RFC 5321 4.1, RFC 3030,
//! RFC 3207, RFC 2033), and the EHLO capabilities.

use super::transcript::{redacted, unparsed};
use super::*;

impl Session {
    pub(super) fn capabilities(&self) -> Vec<String> {
        let c = &self.config;
        let x = &c.extensions;
        let size = format!("SIZE {}", c.limits.message_size);
        let auth = format!("AUTH {}", c.auth.mechanisms.join(" "));
        let offered = !c.auth.mechanisms.is_empty() && (self.tls || c.auth.allow_insecure);
        let caps = [
            (x.pipelining, "PIPELINING"),
            (x.size, size.as_str()),
            (x.eight_bit_mime, "8BITMIME"),
            (x.binary_mime && x.chunking, "BINARYMIME"),
            (x.chunking, "CHUNKING"),
            (x.smtputf8, "SMTPUTF8"),
            (x.dsn, "DSN"),
            (x.enhanced_status_codes, "ENHANCEDSTATUSCODES"),
            (c.tls.available && !self.tls, "STARTTLS"),
            (x.requiretls && self.tls, "REQUIRETLS"),
            (offered, auth.as_str()),
            (x.help, "HELP"),
        ];
        caps.into_iter()
            .filter(|(on, _)| *on)
            .map(|(_, cap)| cap.to_string())
            .collect()
    }

    pub(super) fn command(&mut self, line: &[u8]) {
        let cmd = match Command::parse_with(line, self.config.parse) {
            Ok(cmd) => {
                self.note(|| redacted(line));
                cmd
            }
            Err(e) => {
                // Not a command: perhaps content sent after a refused DATA, or an AUTH
                // response after a refused AUTH. Never shown, only its verb and size.
                self.note(|| unparsed(line));
                return self.error(e.reply());
            }
        };
        if let Some(i) = VERBS.iter().position(|v| *v == cmd.verb()) {
            self.command_counts[i] += 1;
            let count = self.command_counts[i];
            let over = self
                .config
                .limits
                .commands
                .iter()
                .any(|(verb, max)| verb.eq_ignore_ascii_case(VERBS[i]) && count > *max);
            if over {
                self.send(Reply::TOO_MANY_ERRORS);
                return self.close(CloseReason::TooManyErrors);
            }
        }
        // RFC 3207 4: with TLS required, only these are allowed before it.
        if self.config.tls.required
            && !self.tls
            && !matches!(
                cmd,
                Command::Ehlo { .. }
                    | Command::Helo { .. }
                    | Command::Lhlo { .. }
                    | Command::Noop { .. }
                    | Command::Rset
                    | Command::Quit
                    | Command::StartTls
            )
        {
            return self.error(Reply::STARTTLS_FIRST);
        }
        // RFC 4954 6: with AUTH required, no transaction before it. When AUTH is offered over
        // TLS only and TLS is not active yet, the client's next step is STARTTLS: say so (as
        // Postfix and aiosmtpd do), rather than ask for an AUTH it cannot send yet.
        if self.config.auth.required
            && self.authenticated.is_none()
            && matches!(
                cmd,
                Command::Mail { .. } | Command::Rcpt { .. } | Command::Data | Command::Bdat { .. }
            )
        {
            let needs_tls =
                !self.tls && !self.config.auth.allow_insecure && self.config.tls.available;
            return self.error(if needs_tls {
                Reply::STARTTLS_FIRST
            } else {
                Reply::AUTH_REQUIRED
            });
        }
        match cmd {
            Command::Helo { domain } => self.hello(HelloKind::Helo, &domain),
            Command::Ehlo { domain } => self.hello(HelloKind::Ehlo, &domain),
            Command::Lhlo { domain } => self.hello(HelloKind::Lhlo, &domain),
            Command::Mail { from, params } => self.mail(from, params),
            Command::Rcpt { to, params } => self.rcpt(to, params),
            Command::Data => self.data(),
            Command::Bdat { size, last } => self.bdat(size, last),
            Command::Rset => {
                self.abort_message();
                self.reset_transaction();
                self.event(Event::Reset);
                self.ok(Reply::OK);
                // A shutdown that waited for the BDAT message in flight can happen now.
                self.after_decision();
            }
            Command::Noop { .. } => self.ok(Reply::OK),
            Command::Quit => {
                self.abort_message();
                self.send(Reply::BYE);
                self.close(CloseReason::Quit);
            }
            Command::Vrfy { arg } => {
                self.errors = 0;
                self.decide(
                    Pending::Vrfy,
                    Event::Vrfy {
                        arg: arg.into_owned(),
                    },
                );
            }
            Command::Expn { .. } => self.error(Reply::NOT_IMPLEMENTED),
            Command::Help { .. } if self.config.extensions.help => self.ok(Reply::HELP),
            Command::Help { .. } => self.error(Reply::NOT_IMPLEMENTED),
            Command::StartTls => self.starttls(),
            Command::Auth {
                mechanism,
                initial_response,
            } => self.auth(&mechanism, initial_response.as_deref()),
        }
    }

    /// A reply to a command that went well: the error streak ends.
    pub(super) fn ok(&mut self, reply: Reply) {
        self.errors = 0;
        self.send(reply);
    }

    pub(super) fn hello(&mut self, kind: HelloKind, name: &str) {
        let lmtp = self.config.protocol == Protocol::Lmtp;
        match kind {
            HelloKind::Lhlo if !lmtp => return self.error(Reply::USE_EHLO),
            HelloKind::Helo | HelloKind::Ehlo if lmtp => return self.error(Reply::USE_LHLO),
            _ => {}
        }
        if self.envelope.in_transaction() || self.bdat_size.is_some() {
            self.abort_message();
            self.event(Event::Reset);
        }
        self.reset_transaction();
        let capabilities = match kind {
            HelloKind::Helo => Vec::new(),
            HelloKind::Ehlo | HelloKind::Lhlo => self.capabilities(),
        };
        let event = Event::Hello {
            name: name.to_string(),
            kind,
            capabilities: capabilities.clone(),
        };
        let pending = Pending::Hello {
            name: name.to_string(),
            kind,
            capabilities,
        };
        self.decide(pending, event);
    }

    pub(super) fn mail(&mut self, from: ReversePath<'_>, params: MailParams<'_>) {
        if self.hello.is_none() || self.envelope.in_transaction() {
            return self.error(Reply::BAD_SEQUENCE);
        }
        if let Some(max) = self.config.limits.transactions
            && self.messages >= max
        {
            self.send(Reply::TOO_MANY_MESSAGES);
            return self.close(CloseReason::TooManyMessages);
        }
        let config = Arc::clone(&self.config);
        let x = &config.extensions;
        let ehlo = !matches!(self.hello, Some((HelloKind::Helo, _)));
        // RFC 5321 4.1.1.11: parameters only for extensions announced after EHLO.
        let allowed = (params == MailParams::default() || ehlo)
            && (params.size.is_none() || x.size)
            && match params.body {
                None | Some(BodyType::SevenBit) => true,
                Some(BodyType::EightBitMime) => x.eight_bit_mime,
                Some(BodyType::BinaryMime) => x.binary_mime && x.chunking,
            }
            && (!params.smtputf8 || x.smtputf8)
            && (params.ret.is_none() && params.envid.is_none() || x.dsn)
            && (params.auth.is_none() || !config.auth.mechanisms.is_empty())
            && (!params.requiretls || x.requiretls && self.tls);
        if !allowed {
            return self.error(Reply::PARAMETER_NOT_ALLOWED);
        }
        // RFC 1870 6: a declared size over the limit is refused before any data.
        if params.size.is_some_and(|n| n > config.limits.message_size) {
            return self.error(Reply::MESSAGE_TOO_BIG);
        }
        self.errors = 0;
        // Kept once: the event names it, the decision moves it into the envelope.
        let from = from.into_owned();
        let params = params.into_owned();
        self.decide(Pending::Mail { from, params }, Event::Mail);
    }

    pub(super) fn rcpt(&mut self, to: ForwardPath<'_>, params: RcptParams<'_>) {
        if !self.envelope.in_transaction() || self.bdat_size.is_some() {
            return self.error(Reply::BAD_SEQUENCE);
        }
        let ehlo = !matches!(self.hello, Some((HelloKind::Helo, _)));
        if params != RcptParams::default() && (!ehlo || !self.config.extensions.dsn) {
            return self.error(Reply::PARAMETER_NOT_ALLOWED);
        }
        // RFC 6531 3.5: a non-ASCII recipient needs an SMTPUTF8 transaction.
        if to.mailbox().is_some_and(|m| !m.is_ascii()) && !self.envelope.params.smtputf8 {
            return self.error(Reply::NON_ASCII_RECIPIENT);
        }
        if self.envelope.recipients.len() >= self.config.limits.recipients {
            self.errors = 0;
            return self.send(Reply::TOO_MANY_RECIPIENTS);
        }
        self.errors = 0;
        let to = to.into_owned();
        let params = params.into_owned();
        self.decide(Pending::Rcpt { to, params }, Event::Rcpt);
    }

    pub(super) fn data(&mut self) {
        if !self.envelope.in_transaction() || self.bdat_size.is_some() {
            return self.error(Reply::BAD_SEQUENCE);
        }
        if self.envelope.recipients.is_empty() {
            return self.error(if self.rcpt_refused {
                Reply::NO_VALID_RECIPIENTS
            } else {
                Reply::BAD_SEQUENCE
            });
        }
        if self.envelope.params.body == Some(BodyType::BinaryMime) {
            return self.error(Reply::BINARYMIME_NEEDS_BDAT);
        }
        self.errors = 0;
        self.send(Reply::START_DATA);
        self.flush();
        self.event(Event::MessageStart);
        let limit = self.config.limits.message_size;
        self.phase = Phase::Data(DataDecoder::with_policy(
            limit,
            self.config.bare_line_endings,
        ));
    }

    pub(super) fn bdat(&mut self, size: u64, last: bool) {
        let chunking = self.config.extensions.chunking;
        let ready = self.envelope.in_transaction() && !self.envelope.recipients.is_empty();
        let discard = |s: &mut Self| {
            s.phase = Phase::Bdat {
                chunk: ChunkReader::new(size),
                last,
                discard: true,
            };
        };
        if !chunking {
            discard(self);
            return self.error(Reply::NOT_IMPLEMENTED);
        }
        if !ready {
            // RFC 3030 2: the chunk is still read, then refused.
            discard(self);
            let reply = if self.envelope.in_transaction() && self.rcpt_refused {
                Reply::NO_VALID_RECIPIENTS
            } else {
                Reply::BAD_SEQUENCE
            };
            return self.error(reply);
        }
        let total = self.bdat_size.unwrap_or(0).saturating_add(size);
        if total > self.config.limits.message_size {
            discard(self);
            let started = self.bdat_size.is_some();
            let error = Some(crate::DataError::TooLarge);
            return self.message_refused(Reply::MESSAGE_TOO_BIG, error, started);
        }
        self.errors = 0;
        if self.bdat_size.is_none() {
            self.event(Event::MessageStart);
        }
        self.bdat_size = Some(total);
        self.phase = Phase::Bdat {
            chunk: ChunkReader::new(size),
            last,
            discard: false,
        };
    }

    pub(super) fn chunk_end(&mut self, last: bool) {
        let size = self.bdat_size.unwrap_or(0);
        if last {
            self.message_end(size);
        } else {
            let reply = Reply::new(
                250,
                Some(crate::EnhancedStatus::new(2, 0, 0)),
                format!("{size} octets received"),
            );
            self.send(reply);
        }
    }

    pub(super) fn message_end(&mut self, size: u64) {
        self.decide(Pending::MessageEnd, Event::MessageEnd { size });
    }

    /// The session refuses the message in progress by itself; `started` when the driver was
    /// told the message started.
    pub(super) fn message_refused(
        &mut self,
        reply: Reply,
        error: Option<crate::DataError>,
        started: bool,
    ) {
        if started {
            self.event(Event::MessageAborted { error });
        }
        self.send(reply);
        self.reset_transaction();
        self.after_decision();
    }

    pub(super) fn message_answered(&mut self, accepted: bool) {
        if accepted {
            self.messages += 1;
        }
        self.reset_transaction();
    }

    pub(super) fn starttls(&mut self) {
        if !self.config.tls.available {
            return self.error(Reply::NOT_IMPLEMENTED);
        }
        if self.tls {
            return self.error(Reply::ALREADY_TLS);
        }
        self.errors = 0;
        self.send(Reply::READY_TO_START_TLS);
        self.flush();
        if self.envelope.in_transaction() {
            self.abort_message();
            self.event(Event::Reset);
        }
        self.reset_transaction();
        self.phase = Phase::Tls;
        self.event(Event::StartTls);
    }
}
