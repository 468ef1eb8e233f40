//! [`Blackhole`]: accepts or refuses every message and never delivers it, for testing
//! senders (after Kura's Blackhole MTA): response modes, delays, and per-message switches.

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use smtp_proto::{EnhancedStatus, Reply};

use crate::body::Body;
use crate::handler::{Context, Handler};

/// The header that chooses the mode of one message (Blackhole's name).
pub const MODE_HEADER: &str = "X-Blackhole-Mode";
/// The header that chooses the delay of one message (Blackhole's name).
pub const DELAY_HEADER: &str = "X-Blackhole-Delay";

/// How much of a message is searched for the switch headers; the rest is not kept.
const HEADER_LIMIT: usize = 64 * 1024;

/// How a [`Blackhole`] answers the end of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// `250`: accepted (and thrown away).
    Accept,
    /// A refusal: `550 5.7.1`, or one of the chosen codes ([`Blackhole::codes`]; 4xx and 5xx
    /// may be mixed, as Blackhole's own bounce mode does).
    Bounce,
    /// A temporary refusal: `451 4.3.0`, or one of the chosen 4xx codes. The sender must retry.
    TempFail,
    /// Accept or bounce, one chance in two each (seed it with [`Blackhole::seed`] to repeat
    /// a run).
    Random,
}

impl Mode {
    /// The name used in flags, config files and the switch header.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accept => "accept",
            Self::Bounce => "bounce",
            Self::TempFail => "tempfail",
            Self::Random => "random",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Not a mode, a delay or a refusal code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidSetting(String);

impl FromStr for Mode {
    type Err = InvalidSetting;

    /// `accept`, `bounce`, `tempfail` or `random`, in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "accept" => Ok(Self::Accept),
            "bounce" => Ok(Self::Bounce),
            "tempfail" => Ok(Self::TempFail),
            "random" => Ok(Self::Random),
            _ => Err(InvalidSetting(format!(
                "unknown mode {s:?} (use accept, bounce, tempfail or random)"
            ))),
        }
    }
}

/// A wait before answering the end of a message: a fixed time, or a random time in a range.
///
/// Parsed from seconds, as Blackhole writes them: `"2"`, `"0.25"`, or a range `"1,3"`.
///
/// ```
/// use std::time::Duration;
/// use smtp_server::blackhole::Delay;
/// assert_eq!("2".parse::<Delay>().unwrap(), Delay::fixed(Duration::from_secs(2)));
/// let range: Delay = "0.5, 1".parse().unwrap();
/// assert_eq!(range.min(), Duration::from_millis(500));
/// assert_eq!(range.max(), Duration::from_secs(1));
/// assert!("3,1".parse::<Delay>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Delay {
    min: Duration,
    max: Duration,
}

impl Delay {
    /// Always `d`.
    pub const fn fixed(d: Duration) -> Self {
        Self { min: d, max: d }
    }

    /// A time between `min` and `max`, both included (swapped if given the wrong way).
    pub fn range(min: Duration, max: Duration) -> Self {
        Self {
            min: min.min(max),
            max: max.max(min),
        }
    }

    /// The shortest wait.
    pub fn min(&self) -> Duration {
        self.min
    }

    /// The longest wait.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// This delay with both ends at most `cap`.
    fn capped(self, cap: Duration) -> Self {
        Self {
            min: self.min.min(cap),
            max: self.max.min(cap),
        }
    }

    fn pick(&self, rng: &mut fastrand::Rng) -> Duration {
        if self.min == self.max {
            return self.min;
        }
        let span = u64::try_from((self.max - self.min).as_micros()).unwrap_or(u64::MAX);
        self.min + Duration::from_micros(rng.u64(0..=span))
    }
}

impl FromStr for Delay {
    type Err = InvalidSetting;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let seconds = |part: &str| -> Result<Duration, InvalidSetting> {
            part.trim()
                .parse::<f64>()
                .ok()
                .and_then(|v| Duration::try_from_secs_f64(v).ok())
                .ok_or_else(|| {
                    InvalidSetting(format!(
                        "bad delay {s:?} (use SECONDS or MIN,MAX, such as 2 or 0.5,3)"
                    ))
                })
        };
        match s.split_once(',') {
            None => Ok(Self::fixed(seconds(s)?)),
            Some((min, max)) => {
                let (min, max) = (seconds(min)?, seconds(max)?);
                if min > max {
                    return Err(InvalidSetting(format!(
                        "bad delay {s:?}: the minimum is larger than the maximum"
                    )));
                }
                Ok(Self { min, max })
            }
        }
    }
}

impl fmt::Display for Delay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.min == self.max {
            write!(f, "{}", self.min.as_secs_f64())
        } else {
            write!(f, "{},{}", self.min.as_secs_f64(), self.max.as_secs_f64())
        }
    }
}

/// The refusal for an SMTP code from 400 to 599, with a fitting enhanced status and text
/// (RFC 5321 4.2.2, RFC 3463).
///
/// ```
/// let r = smtp_server::blackhole::refusal(452).unwrap();
/// assert_eq!(r.to_string(), "452 4.3.1 Insufficient system storage\r\n");
/// assert!(smtp_server::blackhole::refusal(250).is_err());
/// ```
pub fn refusal(code: u16) -> Result<Reply, InvalidSetting> {
    let valid = (400..600).contains(&code) && (code / 10) % 10 <= 5;
    if !valid {
        return Err(InvalidSetting(format!(
            "bad refusal code {code} (use a 4xx or 5xx SMTP code, such as 451 or 550)"
        )));
    }
    let class = (code / 100) as u8;
    let (status, text) = match code {
        421 => (
            (4, 3, 2),
            "Service not available, closing transmission channel",
        ),
        450 => ((4, 2, 0), "Mailbox unavailable"),
        451 => ((4, 3, 0), "Local error in processing"),
        452 => ((4, 3, 1), "Insufficient system storage"),
        521 => ((5, 3, 2), "Host does not accept mail"),
        550 => ((5, 7, 1), "Message refused"),
        551 => ((5, 1, 6), "User not local"),
        552 => ((5, 3, 4), "Message too big for system"),
        553 => ((5, 1, 3), "Mailbox name not allowed"),
        554 => ((5, 6, 0), "Transaction failed"),
        _ if class == 4 => ((4, 0, 0), "Requested action not taken, try again later"),
        _ => ((5, 0, 0), "Requested action not taken"),
    };
    Ok(Reply::new(
        code,
        Some(EnhancedStatus::new(status.0, status.1, status.2)),
        text,
    ))
}

/// What a [`Blackhole`] decided for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Decision {
    mode: Mode,
    delay: Duration,
    /// The refusal, unless the mode is accept.
    refusal: Option<Reply>,
}

/// Accepts or refuses every message and never delivers it: a server to test senders against
/// (huge send rates, bounces, slow servers), after Kura's Blackhole MTA.
///
/// - a [`Mode`]: accept, bounce (5xx), tempfail (4xx) or random (accept or bounce);
/// - a [`Delay`] before answering the end of the message, fixed or a range;
/// - switches: a message with `X-Blackhole-Mode: bounce` or `X-Blackhole-Delay: 1,3` in its
///   header is answered that way, whatever the configuration (turn off with
///   [`Blackhole::switches`]; a delay asked by a header is capped at 60 s, see
///   [`Blackhole::max_switch_delay`]);
/// - a seed, so that random modes and delay ranges repeat from run to run (given the same
///   order of messages).
///
/// Only the message's header (its first 64 KiB) is looked at; the rest is read and dropped,
/// so any size costs the same memory. Senders and recipients are all accepted.
///
/// ```
/// use std::time::Duration;
/// use smtp_server::blackhole::{Blackhole, Delay, Mode};
/// let handler = Blackhole::new(Mode::Random)
///     .seed(7)
///     .delay(Delay::range(Duration::from_millis(100), Duration::from_millis(300)))
///     .code(452)
///     .unwrap();
/// ```
#[derive(Debug)]
pub struct Blackhole {
    mode: Mode,
    refusals: Vec<Reply>,
    delay: Option<Delay>,
    switches: bool,
    max_switch_delay: Duration,
    rng: Mutex<fastrand::Rng>,
}

impl Default for Blackhole {
    fn default() -> Self {
        Self::new(Mode::Accept)
    }
}

impl Blackhole {
    /// Answers every message as `mode` says, without delay, with switches on.
    pub fn new(mode: Mode) -> Self {
        Self {
            mode,
            refusals: Vec::new(),
            delay: None,
            switches: true,
            max_switch_delay: Duration::from_secs(60),
            rng: Mutex::new(fastrand::Rng::new()),
        }
    }

    /// Accepts every message.
    pub fn accept() -> Self {
        Self::new(Mode::Accept)
    }

    /// Bounces every message (`550 5.7.1`).
    pub fn bounce() -> Self {
        Self::new(Mode::Bounce)
    }

    /// Refuses every message for now (`451 4.3.0`).
    pub fn tempfail() -> Self {
        Self::new(Mode::TempFail)
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The refusals to choose from, one at random per refused message, instead of
    /// `550 5.7.1`: bounce (and random, when it refuses) uses any of them, tempfail only the
    /// 4xx ones (`451 4.3.0` if there is none).
    pub fn refusals(mut self, replies: impl IntoIterator<Item = Reply>) -> Self {
        self.refusals = replies.into_iter().collect();
        self
    }

    /// [`Blackhole::refusals`] from SMTP codes (see [`refusal`](fn@refusal)); Blackhole's own
    /// bounce mode is `codes(&[450, 451, 452, 458, 521, 550, 551, 552, 553])`.
    pub fn codes(self, codes: &[u16]) -> Result<Self, InvalidSetting> {
        let replies = codes
            .iter()
            .map(|&c| refusal(c))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(self.refusals(replies))
    }

    /// One refusal code: [`Blackhole::codes`] with one code.
    pub fn code(self, code: u16) -> Result<Self, InvalidSetting> {
        self.codes(&[code])
    }

    /// Waits this long after the end of each message before answering it.
    pub fn delay(mut self, delay: Delay) -> Self {
        self.delay = Some(delay);
        self
    }

    /// Whether `X-Blackhole-Mode` and `X-Blackhole-Delay` headers are obeyed (on by default).
    pub fn switches(mut self, on: bool) -> Self {
        self.switches = on;
        self
    }

    /// The longest delay a header may ask for (60 s by default, as in Blackhole): a message
    /// must not hold a connection as long as it likes.
    pub fn max_switch_delay(mut self, max: Duration) -> Self {
        self.max_switch_delay = max;
        self
    }

    /// Seeds the random choices (the random mode, delay ranges), so that a test run repeats.
    pub fn seed(self, seed: u64) -> Self {
        *self.rng.lock().unwrap_or_else(|e| e.into_inner()) = fastrand::Rng::with_seed(seed);
        self
    }

    /// The mode and delay for one message, from the configuration and its header.
    fn decide(&self, header: &[u8]) -> Decision {
        let (mut mode, mut delay) = (self.mode, self.delay);
        if self.switches {
            let (m, d) = switches(header);
            if let Some(m) = m {
                mode = m;
            }
            if let Some(d) = d {
                delay = Some(d.capped(self.max_switch_delay));
            }
        }
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        if mode == Mode::Random {
            mode = if rng.bool() {
                Mode::Accept
            } else {
                Mode::Bounce
            };
        }
        let delay = delay.map_or(Duration::ZERO, |d| d.pick(&mut rng));
        let refusal = self.refusal_for(mode, &mut rng);
        Decision {
            mode,
            delay,
            refusal,
        }
    }

    /// The refusal for a message answered in `mode` (none for accept).
    fn refusal_for(&self, mode: Mode, rng: &mut fastrand::Rng) -> Option<Reply> {
        let (candidates, default): (Vec<&Reply>, u16) = match mode {
            Mode::Accept => return None,
            Mode::TempFail => (
                self.refusals.iter().filter(|r| r.code() < 500).collect(),
                451,
            ),
            Mode::Bounce | Mode::Random => (self.refusals.iter().collect(), 550),
        };
        Some(match rng.choice(candidates) {
            Some(r) => r.clone(),
            None => refusal(default).unwrap_or(Reply::LOCAL_ERROR),
        })
    }
}

/// The mode and delay the header asks for; values that do not parse are ignored (as in
/// Blackhole).
fn switches(header: &[u8]) -> (Option<Mode>, Option<Delay>) {
    let Some(parsed) = mail_parser::MessageParser::new().parse_headers(header) else {
        return (None, None);
    };
    let mode = parsed
        .header_raw(MODE_HEADER)
        .and_then(|v| v.trim().parse().ok());
    let delay = parsed
        .header_raw(DELAY_HEADER)
        .and_then(|v| v.trim().parse().ok());
    (mode, delay)
}

/// Reads the message: keeps its header (up to [`HEADER_LIMIT`]) and drops the rest.
async fn read_header(mut body: Body) -> Result<Vec<u8>, Reply> {
    let mut header = Vec::new();
    let mut complete = false;
    while let Some(chunk) = body.chunk().await {
        let chunk = chunk.map_err(|_| Reply::LOCAL_ERROR)?;
        if complete {
            continue;
        }
        let room = HEADER_LIMIT - header.len();
        let from = header.len().saturating_sub(3);
        header.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if let Some(end) = memchr::memmem::find(&header[from..], b"\r\n\r\n") {
            header.truncate(from + end + 4);
            complete = true;
        } else if header.len() == HEADER_LIMIT {
            complete = true;
        }
    }
    Ok(header)
}

#[async_trait]
impl Handler for Blackhole {
    async fn data(&self, ctx: &mut Context, body: Body) -> Result<(), Reply> {
        let header = read_header(body).await?;
        let decision = self.decide(&header);
        tracing::debug!(
            session = ctx.session().id,
            mode = %decision.mode,
            delay = ?decision.delay,
            "blackhole"
        );
        if !decision.delay.is_zero() {
            tokio::time::sleep(decision.delay).await;
        }
        decision.refusal.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switches_are_read_from_the_header_only() {
        let cases: &[(&str, Option<Mode>, Option<&str>)] = &[
            ("Subject: x\r\n\r\n", None, None),
            ("X-Blackhole-Mode: bounce\r\n\r\n", Some(Mode::Bounce), None),
            (
                "x-blackhole-mode:  RANDOM \r\n\r\n",
                Some(Mode::Random),
                None,
            ),
            ("X-Blackhole-Mode: help\r\n\r\n", None, None),
            ("X-Blackhole-Delay: 5\r\n\r\n", None, Some("5")),
            ("X-Blackhole-Delay: 5, 10\r\n\r\n", None, Some("5,10")),
            ("X-Blackhole-Delay: 5,\r\n 10\r\n\r\n", None, Some("5,10")),
            ("X-Blackhole-Delay: 10, 5\r\n\r\n", None, None),
            ("X-Blackhole-Delay: -1\r\n\r\n", None, None),
            ("X-Blackhole-Delay: abc\r\n\r\n", None, None),
            ("Subject: x\r\n\r\nX-Blackhole-Mode: bounce\r\n", None, None),
        ];
        for (header, mode, delay) in cases {
            let (m, d) = switches(header.as_bytes());
            assert_eq!(m, *mode, "{header:?}");
            assert_eq!(d, delay.map(|d| d.parse().unwrap()), "{header:?}");
        }
    }

    #[test]
    fn header_delay_is_capped() {
        let b = Blackhole::accept().max_switch_delay(Duration::from_secs(3));
        let d = b.decide(b"X-Blackhole-Delay: 1000\r\n\r\n");
        assert_eq!(d.delay, Duration::from_secs(3));
        let off = Blackhole::accept().switches(false);
        let d = off.decide(b"X-Blackhole-Mode: bounce\r\nX-Blackhole-Delay: 5\r\n\r\n");
        assert_eq!(
            d,
            Decision {
                mode: Mode::Accept,
                delay: Duration::ZERO,
                refusal: None,
            }
        );
    }

    #[test]
    fn seeded_random_repeats() {
        let run = || {
            let b = Blackhole::new(Mode::Random)
                .seed(42)
                .delay(Delay::range(Duration::ZERO, Duration::from_secs(1)));
            (0..64).map(|_| b.decide(b"\r\n")).collect::<Vec<_>>()
        };
        let (a, b) = (run(), run());
        assert_eq!(a, b);
        let accepted = a.iter().filter(|d| d.mode == Mode::Accept).count();
        assert!((16..48).contains(&accepted), "{accepted} of 64 accepted");
        assert!(a.iter().all(|d| d.delay <= Duration::from_secs(1)));
    }

    proptest::proptest! {
        /// Whatever a sender puts in its header, the decision is made without a panic and a
        /// delay it asks for never exceeds the cap (RFC 5322 headers are the sender's input).
        #[test]
        fn any_header_is_decided_within_the_cap(
            header in proptest::collection::vec(proptest::num::u8::ANY, 0..512),
            value in "[ -~]{0,24}",
        ) {
            let cap = Duration::from_secs(2);
            let b = Blackhole::accept().max_switch_delay(cap);
            proptest::prop_assert!(b.decide(&header).delay <= cap);
            let text = format!("X-Blackhole-Delay: {value}\r\nX-Blackhole-Mode: {value}\r\n\r\n");
            proptest::prop_assert!(b.decide(text.as_bytes()).delay <= cap);
        }
    }

    #[test]
    fn refusal_codes() {
        let code =
            |b: &Blackhole, header: &str| b.decide(header.as_bytes()).refusal.map(|r| r.code());
        let tempfail = "X-Blackhole-Mode: tempfail\r\n\r\n";
        let b = Blackhole::bounce();
        assert_eq!(code(&b, ""), Some(550));
        assert_eq!(code(&b, tempfail), Some(451));
        assert_eq!(code(&Blackhole::accept(), ""), None);
        let b = Blackhole::bounce().code(554).unwrap();
        assert_eq!(code(&b, ""), Some(554));
        assert_eq!(code(&b, tempfail), Some(451), "no 4xx chosen: the default");
        let b = Blackhole::bounce().code(421).unwrap();
        assert_eq!(
            code(&b, ""),
            Some(421),
            "a bounce may be temporary if asked"
        );
        let b = Blackhole::tempfail().code(452).unwrap();
        assert_eq!(code(&b, ""), Some(452));
        // Several codes: each refusal picks one (seeded); tempfail only the 4xx ones.
        let b = Blackhole::bounce().codes(&[450, 554, 521]).unwrap().seed(9);
        let seen: std::collections::BTreeSet<_> = (0..60).filter_map(|_| code(&b, "")).collect();
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), [450, 521, 554]);
        assert!((0..20).all(|_| code(&b, tempfail) == Some(450)));
        for bad in [0, 250, 354, 399, 460, 571, 600] {
            assert!(refusal(bad).is_err(), "{bad}");
        }
    }
}
