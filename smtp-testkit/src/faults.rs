//! Deterministic fault injection, as a handler that wraps another.

use std::sync::Mutex;
use std::time::Duration;

use smtp_proto::{EnhancedStatus, ForwardPath, MailParams, RcptParams, Reply, ReversePath};
use smtp_server::{Body, Context, Handler, async_trait};

/// A point of the transaction where a fault applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// MAIL FROM.
    Mail,
    /// RCPT TO.
    Rcpt,
    /// The end of DATA (or the last BDAT chunk).
    Data,
}

/// Where to drop the connection, without a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropPoint {
    /// Instead of answering MAIL FROM.
    AfterMail,
    /// Instead of answering the first RCPT TO.
    AfterRcpt,
    /// While the message content is arriving (after its first chunk).
    MidData,
    /// After the message was accepted (and captured), instead of the 250: the client cannot
    /// know its message arrived.
    AfterData,
}

/// A set of faults. Every fault is deterministic: no randomness, counters shared by all
/// connections of the server, in the order the commands arrive.
///
/// ```
/// use std::time::Duration;
/// use smtp_testkit::{DropPoint, Faults, Step};
/// let faults = Faults::new()
///     .reject_recipients("*@invalid.example")
///     .fail_first(Step::Data, 2)
///     .delay(Step::Rcpt, Duration::from_millis(50))
///     .rate_limit(100);
/// ```
#[derive(Debug, Clone, Default)]
pub struct Faults {
    reject: Vec<String>,
    temp_fail: Vec<(Step, u16)>,
    fail_first: Vec<(Step, u32)>,
    delays: Vec<(Step, Duration)>,
    drop_at: Option<DropPoint>,
    rate_limit: Option<u32>,
}

impl Faults {
    /// No faults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Refuses recipients matching a pattern (`*` matches any text, `?` one character; case
    /// does not matter) with `550 5.1.1`.
    pub fn reject_recipients(mut self, pattern: impl Into<String>) -> Self {
        self.reject.push(pattern.into());
        self
    }

    /// Answers every attempt at `step` with a temporary failure: `451 4.3.0` for `code` 451,
    /// `452 4.3.1` for 452.
    pub fn temp_fail(mut self, step: Step, code: u16) -> Self {
        self.temp_fail.push((step, code));
        self
    }

    /// Answers the first `n` attempts at `step` with `451 4.3.0`, then behaves: for testing a
    /// client's retries.
    pub fn fail_first(mut self, step: Step, n: u32) -> Self {
        self.fail_first.push((step, n));
        self
    }

    /// Waits before answering `step`.
    pub fn delay(mut self, step: Step, by: Duration) -> Self {
        self.delays.push((step, by));
        self
    }

    /// Drops the connection at this point, without a reply.
    pub fn drop_connection(mut self, at: DropPoint) -> Self {
        self.drop_at = Some(at);
        self
    }

    /// After `n` accepted messages, answers MAIL with `421 4.7.0` and closes.
    pub fn rate_limit(mut self, n: u32) -> Self {
        self.rate_limit = Some(n);
        self
    }
}

/// Case-insensitive match with `*` (any text) and `?` (one character).
pub(crate) fn glob(pattern: &str, text: &str) -> bool {
    wildmatch::WildMatch::new_case_insensitive(pattern).matches(text)
}

#[derive(Debug, Default)]
struct Counters {
    attempts: [u32; 3],
    accepted: u32,
}

/// A handler that applies [`Faults`], then asks the inner handler.
#[derive(Debug)]
pub struct FaultHandler<H> {
    inner: H,
    faults: Faults,
    counters: Mutex<Counters>,
}

fn temp(code: u16) -> Reply {
    match code {
        452 => Reply::new(
            452,
            Some(EnhancedStatus::new(4, 3, 1)),
            "Insufficient system storage (injected)",
        ),
        _ => Reply::new(
            451,
            Some(EnhancedStatus::new(4, 3, 0)),
            "Temporary failure (injected)",
        ),
    }
}

impl<H: Handler> FaultHandler<H> {
    /// Wraps `inner` with `faults`.
    pub fn new(inner: H, faults: Faults) -> Self {
        Self {
            inner,
            faults,
            counters: Mutex::new(Counters::default()),
        }
    }

    /// The wrapped handler.
    pub fn wrapped(&self) -> &H {
        &self.inner
    }

    /// Delay, temporary failures and fail-first for one step.
    async fn step(&self, step: Step) -> Result<(), Reply> {
        for (s, by) in &self.faults.delays {
            if *s == step {
                tokio::time::sleep(*by).await;
            }
        }
        if let Some((_, code)) = self.faults.temp_fail.iter().find(|(s, _)| *s == step) {
            return Err(temp(*code));
        }
        let attempt = {
            let mut c = self.counters.lock().unwrap_or_else(|e| e.into_inner());
            c.attempts[step as usize] += 1;
            c.attempts[step as usize]
        };
        if let Some((_, n)) = self.faults.fail_first.iter().find(|(s, _)| *s == step)
            && attempt <= *n
        {
            return Err(temp(451));
        }
        Ok(())
    }
}

#[async_trait]
impl<H: Handler> Handler for FaultHandler<H> {
    fn inner(&self) -> Option<&dyn Handler> {
        Some(&self.inner)
    }

    async fn mail(
        &self,
        ctx: &mut Context,
        from: &ReversePath<'_>,
        params: &MailParams<'_>,
    ) -> Result<(), Reply> {
        if let Some(limit) = self.faults.rate_limit {
            let accepted = self
                .counters
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .accepted;
            if accepted >= limit {
                return Err(Reply::new(
                    421,
                    Some(EnhancedStatus::new(4, 7, 0)),
                    "Rate limit exceeded (injected)",
                ));
            }
        }
        if self.faults.drop_at == Some(DropPoint::AfterMail) {
            ctx.drop_connection();
            return Ok(());
        }
        self.step(Step::Mail).await?;
        self.inner.mail(ctx, from, params).await
    }

    async fn rcpt(
        &self,
        ctx: &mut Context,
        to: &ForwardPath<'_>,
        params: &RcptParams<'_>,
    ) -> Result<(), Reply> {
        let address = to
            .mailbox()
            .map_or_else(|| "postmaster".to_string(), ToString::to_string);
        if self.faults.reject.iter().any(|p| glob(p, &address)) {
            return Err(Reply::new(
                550,
                Some(EnhancedStatus::new(5, 1, 1)),
                "No such user (injected)",
            ));
        }
        if self.faults.drop_at == Some(DropPoint::AfterRcpt) {
            ctx.drop_connection();
            return Ok(());
        }
        self.step(Step::Rcpt).await?;
        self.inner.rcpt(ctx, to, params).await
    }

    /// In LMTP too (there is one `data` for both): the result is every recipient's.
    async fn data(&self, ctx: &mut Context, mut body: Body) -> Result<(), Reply> {
        if self.faults.drop_at == Some(DropPoint::MidData) {
            let _ = body.chunk().await;
            ctx.drop_connection();
            return Err(Reply::LOCAL_ERROR);
        }
        self.step(Step::Data).await?;
        self.inner.data(ctx, body).await?;
        self.counters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .accepted += 1;
        if self.faults.drop_at == Some(DropPoint::AfterData) {
            ctx.drop_connection();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn globs() {
        for (p, t, want) in [
            ("*@bad.example", "x@bad.example", true),
            ("*@bad.example", "x@good.example", false),
            ("ann@x", "ANN@X", true),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("*", "anything", true),
            ("bounce-*", "bounce-42@x", true),
            ("user?@x", "user7@x", true),
            ("user?@x", "user77@x", false),
        ] {
            assert_eq!(glob(p, t), want, "{p} {t}");
        }
    }
}
