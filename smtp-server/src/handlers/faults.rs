//! Deterministic fault injection, as a handler that wraps another: [`Faults`] and
//! [`FaultHandler`]. The testkit re-exports them; the capture server's HTTP API sets them at
//! run time.

use std::sync::{Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use smtp_proto::{EnhancedStatus, ForwardPath, MailParams, RcptParams, Reply, ReversePath};

use crate::body::Body;
use crate::handler::{Context, Handler};

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
/// use smtp_server::faults::{DropPoint, Faults, Step};
/// let faults = Faults::new()
///     .reject_recipients("*@invalid.example")
///     .fail_first(Step::Data, 2)
///     .delay(Step::Rcpt, Duration::from_millis(50))
///     .rate_limit(100);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    pub(crate) reject: Vec<String>,
    pub(crate) temp_fail: Vec<(Step, u16)>,
    pub(crate) fail_first: Vec<(Step, u32)>,
    pub(crate) delays: Vec<(Step, Duration)>,
    pub(crate) drop_at: Option<DropPoint>,
    pub(crate) rate_limit: Option<u32>,
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

/// What can read and replace a handler's faults at run time (the HTTP API's
/// `/api/v1/faults`): every [`FaultHandler`].
pub trait FaultControl: Send + Sync {
    /// The faults in force.
    fn faults(&self) -> Faults;
    /// Replaces them (counters start again).
    fn set_faults(&self, faults: Faults);
}

impl<H: Handler> FaultControl for FaultHandler<H> {
    fn faults(&self) -> Faults {
        Self::faults(self)
    }

    fn set_faults(&self, faults: Faults) {
        Self::set_faults(self, faults);
    }
}

/// A handler that applies [`Faults`], then asks the inner handler. The faults can be replaced
/// while the server runs ([`FaultHandler::set_faults`]).
#[derive(Debug)]
pub struct FaultHandler<H> {
    inner: H,
    faults: RwLock<Faults>,
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
            faults: RwLock::new(faults),
            counters: Mutex::new(Counters::default()),
        }
    }

    /// The wrapped handler.
    pub fn wrapped(&self) -> &H {
        &self.inner
    }

    /// The faults in force.
    pub fn faults(&self) -> Faults {
        self.read().clone()
    }

    /// Replaces the faults, from the next command on; the counters (`fail_first`,
    /// `rate_limit`) start again from zero.
    pub fn set_faults(&self, faults: Faults) {
        *self.faults.write().unwrap_or_else(|e| e.into_inner()) = faults;
        *self.counters.lock().unwrap_or_else(|e| e.into_inner()) = Counters::default();
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Faults> {
        self.faults.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Delay, temporary failures and fail-first for one step.
    async fn step(&self, step: Step) -> Result<(), Reply> {
        let (delay, temp_fail, fail_first) = {
            let f = self.read();
            let delay: Duration = f
                .delays
                .iter()
                .filter(|(s, _)| *s == step)
                .map(|d| d.1)
                .sum();
            let temp_fail = f.temp_fail.iter().find(|(s, _)| *s == step).map(|t| t.1);
            let fail_first = f.fail_first.iter().find(|(s, _)| *s == step).map(|t| t.1);
            (delay, temp_fail, fail_first)
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if let Some(code) = temp_fail {
            return Err(temp(code));
        }
        let attempt = {
            let mut c = self.counters.lock().unwrap_or_else(|e| e.into_inner());
            c.attempts[step as usize] += 1;
            c.attempts[step as usize]
        };
        if let Some(n) = fail_first
            && attempt <= n
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
        let (rate_limit, drop_at) = {
            let f = self.read();
            (f.rate_limit, f.drop_at)
        };
        if let Some(limit) = rate_limit {
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
        if drop_at == Some(DropPoint::AfterMail) {
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
        let (rejected, drop_at) = {
            let f = self.read();
            (f.reject.iter().any(|p| glob(p, &address)), f.drop_at)
        };
        if rejected {
            return Err(Reply::new(
                550,
                Some(EnhancedStatus::new(5, 1, 1)),
                "No such user (injected)",
            ));
        }
        if drop_at == Some(DropPoint::AfterRcpt) {
            ctx.drop_connection();
            return Ok(());
        }
        self.step(Step::Rcpt).await?;
        self.inner.rcpt(ctx, to, params).await
    }

    /// In LMTP too (there is one `data` for both): the result is every recipient's.
    async fn data(&self, ctx: &mut Context, mut body: Body) -> Result<(), Reply> {
        let drop_at = self.read().drop_at;
        if drop_at == Some(DropPoint::MidData) {
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
        if drop_at == Some(DropPoint::AfterData) {
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
