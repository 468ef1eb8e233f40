//! AUTH (RFC 4954): starting an exchange, its lines, its end.

use super::*;

impl Session {
    pub(super) fn auth(&mut self, mechanism: &str, initial: Option<&str>) {
        let config = Arc::clone(&self.config);
        let policy = &config.auth;
        if policy.mechanisms.is_empty() {
            return self.error(Reply::NOT_IMPLEMENTED);
        }
        if self.hello.is_none() || self.authenticated.is_some() || self.envelope.in_transaction() {
            return self.error(Reply::BAD_SEQUENCE);
        }
        let Some(name) = policy
            .mechanisms
            .iter()
            .find(|m| m.eq_ignore_ascii_case(mechanism))
        else {
            return self.error(Reply::UNKNOWN_AUTH_MECHANISM);
        };
        if !self.tls && !policy.allow_insecure {
            return self.error(Reply::AUTH_NEEDS_ENCRYPTION);
        }
        let exchange: Box<dyn SaslExchange> = if name.eq_ignore_ascii_case("PLAIN") {
            Box::new(PlainExchange)
        } else if name.eq_ignore_ascii_case("LOGIN") {
            Box::<LoginExchange>::default()
        } else if let Some(m) = policy
            .custom
            .iter()
            .find(|m| m.name().eq_ignore_ascii_case(name))
        {
            m.start()
        } else {
            return self.error(Reply::UNKNOWN_AUTH_MECHANISM);
        };
        let response = match initial.map(|r| decode_sasl_response(r.as_bytes())) {
            None => None,
            Some(Ok(SaslResponse::Data(d))) => Some(d),
            Some(Ok(SaslResponse::Cancel)) => return self.error(Reply::AUTH_CANCELLED),
            Some(Err(e)) => return self.error(e.reply()),
        };
        self.errors = 0;
        self.framer.set_max(config.limits.auth_line);
        self.phase = Phase::Auth(exchange);
        self.auth_step(response);
    }

    pub(super) fn auth_line(&mut self, line: &[u8]) {
        match decode_sasl_response(line) {
            Ok(SaslResponse::Data(d)) => self.auth_step(Some(d)),
            Ok(SaslResponse::Cancel) => {
                self.end_auth();
                self.error(Reply::AUTH_CANCELLED);
            }
            Err(e) => {
                self.end_auth();
                self.error(e.reply());
            }
        }
    }

    pub(super) fn auth_step(&mut self, response: Option<Vec<u8>>) {
        let Phase::Auth(exchange) = &mut self.phase else {
            return;
        };
        match exchange.step(response) {
            SaslStep::Challenge(c) => {
                let text = crate::sasl::encode_sasl_challenge(&c);
                self.out.extend_from_slice(b"334 ");
                self.out.extend_from_slice(text.as_bytes());
                self.out.extend_from_slice(b"\r\n");
            }
            SaslStep::Done(credentials) => {
                self.end_auth();
                let username = credentials.username().to_string();
                self.decide(Pending::Auth { username }, Event::Auth { credentials });
            }
            SaslStep::Failed(reply) => {
                self.end_auth();
                self.error(reply);
            }
        }
    }

    pub(super) fn end_auth(&mut self) {
        self.phase = Phase::Command;
        self.framer.set_max(self.config.limits.command_line);
    }
}
