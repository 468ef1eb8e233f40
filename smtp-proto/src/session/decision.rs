//! Decisions: applying the driver's answer to the pending event, and the sequencing they share
//! (replies queued, transaction reset, close).

use super::*;

impl Session {
    /// The sender and parameters of the MAIL command that waits for a decision.
    pub fn pending_mail(&self) -> Option<(&ReversePath<'static>, &MailParams<'static>)> {
        match &self.pending {
            Some(Pending::Mail { from, params }) => Some((from, params)),
            _ => None,
        }
    }

    /// The recipient and parameters of the RCPT command that waits for a decision.
    pub fn pending_rcpt(&self) -> Option<(&ForwardPath<'static>, &RcptParams<'static>)> {
        match &self.pending {
            Some(Pending::Rcpt { to, params }) => Some((to, params)),
            _ => None,
        }
    }

    /// Accepts the pending decision with its default reply (for AUTH, the user name is the
    /// identity), then goes on with the input that waited behind it.
    pub fn accept(&mut self, now: Instant) -> Result<(), DecisionError> {
        let reply = match &self.pending {
            None => return Err(DecisionError::NotPending),
            Some(Pending::Connect) => {
                let greeting = match (&self.config.greeting, self.config.protocol) {
                    (Some(text), _) => text.as_str(),
                    (None, Protocol::Smtp) => "ESMTP ready",
                    (None, Protocol::Lmtp) => "LMTP ready",
                };
                let text = format!("{} {greeting}", self.config.hostname);
                Reply::new(220, None, text)
            }
            Some(Pending::Hello { .. }) => Reply::new(250, None, ""),
            Some(Pending::Auth { username }) => {
                let username = username.clone();
                return self.accept_auth(now, username);
            }
            Some(Pending::Mail { .. }) => Reply::SENDER_OK,
            Some(Pending::Rcpt { .. }) => Reply::RECIPIENT_OK,
            Some(Pending::Vrfy) => Reply::VRFY_CANNOT,
            Some(Pending::MessageEnd) => Reply::MESSAGE_ACCEPTED,
        };
        self.reply(now, reply)
    }

    /// Answers the pending decision with `reply`: a 2xx reply accepts, anything else refuses;
    /// then goes on with the input that waited behind it. In LMTP, a reply to
    /// [`Event::MessageEnd`] is sent once per recipient.
    pub fn reply(&mut self, now: Instant, reply: Reply) -> Result<(), DecisionError> {
        self.answer(now, reply)?;
        self.handle_input(now);
        Ok(())
    }

    /// Accepts an [`Event::Auth`] with the given identity (`235 2.7.0`).
    pub fn accept_auth(&mut self, now: Instant, identity: String) -> Result<(), DecisionError> {
        match &mut self.pending {
            Some(Pending::Auth { username }) => *username = identity,
            other => return Err(wrong(other.as_ref())),
        }
        self.reply(now, Reply::AUTH_SUCCESSFUL)
    }

    /// Answers an [`Event::MessageEnd`] in LMTP with one reply per accepted recipient, in
    /// order (RFC 2033 4.2). Missing replies are `451 4.3.0`; in SMTP, the first reply is used.
    pub fn reply_each(&mut self, now: Instant, replies: Vec<Reply>) -> Result<(), DecisionError> {
        if !matches!(self.pending, Some(Pending::MessageEnd)) {
            return Err(wrong(self.pending.as_ref()));
        }
        if self.config.protocol == Protocol::Smtp {
            let first = replies.into_iter().next().unwrap_or(Reply::LOCAL_ERROR);
            return self.reply(now, first);
        }
        self.pending = None;
        self.activity = now;
        let mut any = false;
        let count = self.envelope.recipients.len();
        let mut replies = replies.into_iter();
        let mut closing = false;
        for _ in 0..count {
            let r = replies.next().unwrap_or(Reply::LOCAL_ERROR);
            any |= r.is_positive();
            // RFC 5321 3.8: a 421 means the server closes the channel.
            closing |= r.code() == 421;
            self.send(r);
        }
        if closing {
            self.reset_transaction();
            self.close(CloseReason::ServiceClosing);
            return Ok(());
        }
        self.message_answered(any);
        self.after_decision();
        self.handle_input(now);
        Ok(())
    }

    /// Replaces the capabilities an [`Event::Hello`] will announce (before deciding it).
    pub fn set_capabilities(&mut self, capabilities: Vec<String>) -> Result<(), DecisionError> {
        match &mut self.pending {
            Some(Pending::Hello {
                capabilities: caps, ..
            }) => {
                *caps = capabilities;
                Ok(())
            }
            other => Err(wrong(other.as_ref())),
        }
    }

    /// Applies a reply to the pending decision, without going on with the input.
    pub(super) fn answer(&mut self, now: Instant, reply: Reply) -> Result<(), DecisionError> {
        let Some(pending) = self.pending.take() else {
            return Err(DecisionError::NotPending);
        };
        self.activity = now;
        // RFC 5321 3.8, 4.2.2: 421 means the server closes the channel, whoever decided it.
        if reply.code() == 421 {
            self.abort_message();
            self.send(reply);
            self.close(CloseReason::ServiceClosing);
            return Ok(());
        }
        let ok = reply.is_positive();
        match pending {
            Pending::Connect if ok => self.send(reply),
            Pending::Connect => {
                self.send(reply);
                self.close(CloseReason::Refused);
            }
            Pending::Hello {
                name,
                kind,
                capabilities,
            } if ok => {
                self.reset_transaction();
                let mut lines = self.config.hostname.clone();
                if kind != HelloKind::Helo {
                    for cap in &capabilities {
                        lines.push('\n');
                        lines.push_str(cap);
                    }
                }
                self.send(Reply::new(250, None, lines));
                self.hello = Some((kind, name));
                self.errors = 0;
            }
            Pending::Auth { username } if ok => {
                self.authenticated = Some(username);
                self.send(reply);
            }
            Pending::Auth { .. } => {
                self.send(reply);
                self.auth_failures += 1;
                if self.auth_failures >= self.config.limits.auth_failures {
                    self.send(Reply::TOO_MANY_ERRORS);
                    self.close(CloseReason::TooManyErrors);
                }
            }
            Pending::Mail { from, params } if ok => {
                self.envelope.from = Some(from);
                self.envelope.params = params;
                self.send(reply);
            }
            Pending::Rcpt { to, params } if ok => {
                self.envelope
                    .recipients
                    .push(Recipient { path: to, params });
                self.send(reply);
            }
            Pending::Rcpt { .. } => {
                self.rcpt_refused = true;
                self.send(reply);
            }
            Pending::MessageEnd => {
                match self.config.protocol {
                    Protocol::Smtp => self.send(reply),
                    Protocol::Lmtp => {
                        for _ in 0..self.envelope.recipients.len() {
                            self.send(reply.clone());
                        }
                    }
                }
                self.message_answered(ok);
            }
            Pending::Hello { .. } | Pending::Mail { .. } | Pending::Vrfy => self.send(reply),
        }
        self.after_decision();
        Ok(())
    }

    pub(super) fn decide(&mut self, pending: Pending, event: Event) {
        self.pending = Some(pending);
        self.queue.push_back(Queued::Event(event));
    }

    pub(super) fn event(&mut self, event: Event) {
        self.queue.push_back(Queued::Event(event));
    }

    pub(super) fn send(&mut self, reply: Reply) {
        if self.config.extensions.enhanced_status_codes {
            reply.write_to(&mut self.out);
        } else {
            reply.without_status().write_to(&mut self.out);
        }
    }

    pub(super) fn flush(&mut self) {
        if !self.out.is_empty() && !matches!(self.queue.back(), Some(Queued::Transmit)) {
            self.queue.push_back(Queued::Transmit);
        }
    }

    pub(super) fn close(&mut self, reason: CloseReason) {
        self.pending = None;
        self.phase = Phase::Closed;
        self.flush();
        self.queue.push_back(Queued::Closed(reason));
    }

    /// After a decision: a shutdown that waited for the message in flight can happen now.
    pub(super) fn after_decision(&mut self) {
        if self.shutting_down && !self.is_closed() && self.bdat_size.is_none() {
            self.send(Reply::SHUTTING_DOWN);
            self.close(CloseReason::Shutdown);
        }
    }

    /// An error reply that counts toward the limit of errors in a row.
    pub(super) fn error(&mut self, reply: Reply) {
        self.send(reply);
        self.errors += 1;
        if self.errors >= self.config.limits.errors {
            self.send(Reply::TOO_MANY_ERRORS);
            self.close(CloseReason::TooManyErrors);
        }
    }

    pub(super) fn reset_transaction(&mut self) {
        self.envelope.from = None;
        self.envelope.params = MailParams::default();
        self.envelope.recipients.clear();
        self.rcpt_refused = false;
        self.bdat_size = None;
    }

    /// Tells the driver that a message in progress will not complete.
    pub(super) fn abort_message(&mut self) {
        let in_progress = matches!(self.phase, Phase::Data(_))
            || matches!(self.phase, Phase::Bdat { discard: false, .. })
            || self.bdat_size.is_some();
        if in_progress {
            self.event(Event::MessageAborted { error: None });
        }
    }
}

/// The error for a decision of the wrong kind (or none pending).
fn wrong(pending: Option<&Pending>) -> DecisionError {
    let pending = match pending {
        None => return DecisionError::NotPending,
        Some(Pending::Connect) => "connection",
        Some(Pending::Hello { .. }) => "HELO/EHLO/LHLO",
        Some(Pending::Auth { .. }) => "AUTH",
        Some(Pending::Mail { .. }) => "MAIL",
        Some(Pending::Rcpt { .. }) => "RCPT",
        Some(Pending::Vrfy) => "VRFY",
        Some(Pending::MessageEnd) => "end of message",
    };
    DecisionError::WrongKind { pending }
}
