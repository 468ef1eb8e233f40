//! The ESMTP/LMTP server state machine, without I/O.
//!
//! See [`Session`] for the call contract, and the table below for every reply the session makes
//! by itself (the driver's decisions add the others).
//!
//! | situation | reply | then |
//! | --- | --- | --- |
//! | connection accepted | `220 <hostname> <greeting>` | |
//! | HELO / EHLO / LHLO accepted | `250 <hostname>` / `250-<hostname>` + capabilities | transaction reset |
//! | HELO or EHLO in LMTP, LHLO in SMTP | `500 5.5.1` | |
//! | MAIL accepted | `250 2.1.0 Sender OK` | |
//! | RCPT accepted | `250 2.1.5 Recipient OK` | |
//! | DATA accepted | `354` | message content |
//! | message accepted (SMTP) | `250 2.6.0 Message accepted` | transaction reset |
//! | message accepted (LMTP) | one `250 2.6.0` per accepted recipient (RFC 2033 4.2) | transaction reset |
//! | BDAT chunk, not last | `250 2.0.0 <n> octets received` | |
//! | RSET, NOOP | `250 2.0.0 OK` | RSET resets the transaction |
//! | VRFY accepted | `252 2.5.0 Cannot VRFY user, but will accept message` (RFC 5321 3.5.3) | |
//! | EXPN | `502 5.5.1 Command not implemented` | |
//! | HELP | `214 2.0.0` | |
//! | QUIT | `221 2.0.0 Bye` | close |
//! | STARTTLS | `220 2.0.0 Ready to start TLS` | upgrade, back to the state after the greeting |
//! | STARTTLS not offered / already active | `502 5.5.1` / `503 5.5.1` | |
//! | AUTH challenge | `334 <base64>` | |
//! | AUTH accepted | `235 2.7.0 Authentication successful` | |
//! | AUTH refused | `535 5.7.8` (the driver's reply) | after the limit: `421 4.7.0`, close |
//! | AUTH cancelled (`*`) | `501 5.0.0 Authentication cancelled` | |
//! | AUTH response not base64 | `501 5.5.2 Cannot decode response` | |
//! | AUTH mechanism not offered | `504 5.5.4` | |
//! | AUTH over plaintext when not allowed | `538 5.7.11` | |
//! | AUTH twice, or during a transaction | `503 5.5.1` | |
//! | command before STARTTLS when TLS is required | `530 5.7.0 Must issue a STARTTLS command first` | |
//! | MAIL/RCPT/DATA/BDAT before AUTH when required | `530 5.7.0 Authentication required` | |
//! | out of sequence (MAIL before hello or nested, RCPT before MAIL, DATA without recipients, BDAT after DATA...) | `503 5.5.1 Bad sequence of commands` | |
//! | DATA when every RCPT was refused | `554 5.5.1 No valid recipients` | |
//! | DATA with `BODY=BINARYMIME` | `503 5.5.1 BINARYMIME requires BDAT` (RFC 3030 3) | |
//! | parameter of an extension not announced, or after HELO | `555 5.5.4` | |
//! | non-ASCII recipient without SMTPUTF8 | `553 5.6.7` (RFC 6531 3.5) | |
//! | syntax errors | `500 5.5.2`, `501 5.5.4`, `553 5.1.x`, `555 5.5.4` ([`ParseError::reply`](crate::ParseError::reply)) | counts as an error |
//! | line too long | `500 5.5.2 Line too long`, `500 5.5.6` in AUTH | counts as an error |
//! | SIZE over the limit | `552 5.3.4` at MAIL (RFC 1870 6) | |
//! | too many recipients | `452 4.5.3 Too many recipients` (RFC 5321 4.5.3.1.10) | |
//! | message over the limit | `552 5.3.4` after the content is drained | transaction reset |
//! | bare CR/LF under [`BareLineEndings::Reject`](crate::BareLineEndings::Reject) | `554 5.6.0` after the content | transaction reset |
//! | too many errors in a row, or a command over its per-connection limit | `421 4.7.0` | close |
//! | message limit per connection reached | `421 4.7.0 Too many messages` | close |
//! | deadline passed | `421 4.4.2 Timeout` | close |
//! | shutdown | `421 4.3.2` (after the message in flight is answered) | close |
//! | any decision answered with a 421 | that reply | close |
//!
//! Every reply carries its enhanced status code (RFC 3463) when ENHANCEDSTATUSCODES is enabled,
//! except the greeting, the EHLO/HELO/LHLO reply, 354 and 334, which never do (RFC 2034).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf as _, Bytes, BytesMut};

use crate::address::{ForwardPath, ReversePath};
use crate::command::Command;
use crate::config::{Config, Protocol};
use crate::data::{ChunkReader, DataDecoder, Decoded};
use crate::event::{
    CloseReason, DecisionError, Envelope, Event, HelloKind, Output, ProxyInfo, Recipient,
};
use crate::line::{Framed, LineFramer};
use crate::params::{BodyType, MailParams, RcptParams};
use crate::proxy::ProxyHeader;
use crate::reply::{EnhancedStatus, Reply};
use crate::sasl::{
    LoginExchange, PlainExchange, SaslExchange, SaslResponse, SaslStep, decode_sasl_response,
};

const fn st(class: u8, subject: u16, detail: u16) -> Option<EnhancedStatus> {
    Some(EnhancedStatus::new(class, subject, detail))
}

const NO_VALID_RECIPIENTS: Reply = Reply::const_new(554, st(5, 5, 1), "No valid recipients");
const BINARYMIME_NEEDS_BDAT: Reply = Reply::const_new(503, st(5, 5, 1), "BINARYMIME requires BDAT");
const PARAM_NOT_ALLOWED: Reply = Reply::const_new(
    555,
    st(5, 5, 4),
    "MAIL FROM/RCPT TO parameters not recognized or not implemented",
);
const TOO_MANY_ERRORS: Reply = Reply::const_new(
    421,
    st(4, 7, 0),
    "Too many errors, closing transmission channel",
);
const TOO_MANY_MESSAGES: Reply = Reply::const_new(
    421,
    st(4, 7, 0),
    "Too many messages, closing transmission channel",
);
const AUTH_CANCELLED: Reply = Reply::const_new(501, st(5, 0, 0), "Authentication cancelled");
const VRFY_DEFAULT: Reply = Reply::const_new(
    252,
    st(2, 5, 0),
    "Cannot VRFY user, but will accept message and attempt delivery",
);
const HELP: Reply = Reply::const_new(214, st(2, 0, 0), "See RFC 5321");
const ALREADY_TLS: Reply = Reply::const_new(503, st(5, 5, 1), "TLS already active");
const USE_LHLO: Reply = Reply::const_new(500, st(5, 5, 1), "Use LHLO in LMTP");
const USE_EHLO: Reply = Reply::const_new(500, st(5, 5, 1), "LHLO is for LMTP");
const NON_ASCII_RECIPIENT: Reply = Reply::const_new(
    553,
    st(5, 6, 7),
    "Non-ASCII recipient requires the SMTPUTF8 parameter",
);

/// Where the session is in the conversation.
enum Phase {
    /// Waiting for the PROXY protocol header.
    Proxy,
    /// Reading command lines.
    Command,
    /// Reading the lines of an AUTH exchange.
    Auth(Box<dyn SaslExchange>),
    /// Receiving DATA content.
    Data(DataDecoder),
    /// Receiving a BDAT chunk; `discard` when it was refused and is only drained.
    Bdat {
        chunk: ChunkReader,
        last: bool,
        discard: bool,
    },
    /// STARTTLS answered; the driver upgrades. Input is discarded.
    Tls,
    /// Over.
    Closed,
}

/// The decision the session waits for, with what it needs to apply it.
enum Pending {
    Connect,
    Hello {
        name: String,
        kind: HelloKind,
        capabilities: Vec<String>,
    },
    Auth {
        username: String,
    },
    Mail {
        from: ReversePath<'static>,
        params: MailParams<'static>,
    },
    Rcpt {
        to: ForwardPath<'static>,
        params: RcptParams<'static>,
    },
    Vrfy,
    MessageEnd,
}

enum Queued {
    Transmit,
    Event(Event),
    Content(Bytes),
    Closed(CloseReason),
}

/// Input the session holds at most in the command phases, beyond a long line (a pipelined
/// group), and in the message phase (content is handed out as it is decoded).
const INPUT_MAX: usize = 16 * 1024;

/// The two bytes a normalised bare line ending becomes.
const CRLF: Bytes = Bytes::from_static(b"\r\n");

/// The verbs a per-connection limit can name, in the order of the counters.
const VERBS: [&str; 15] = [
    "HELO", "EHLO", "LHLO", "MAIL", "RCPT", "DATA", "BDAT", "RSET", "NOOP", "QUIT", "VRFY", "EXPN",
    "HELP", "STARTTLS", "AUTH",
];

/// One server-side SMTP or LMTP connection, as a state machine.
///
/// **Inputs** are the `handle_*` methods and the decisions ([`accept`](Self::accept),
/// [`reply`](Self::reply), ...); **outputs** come from one ordered queue,
/// [`poll_output`](Self::poll_output): replies to write, events, message content, and the
/// close. Time is passed in, never read.
///
/// The contract, for a driver (as in quinn-proto and str0m): **after every input and every
/// decision, poll until nothing is left.**
///
/// 1. Read what the client sends into [`input_buffer`](Self::input_buffer) (at most
///    [`input_capacity`](Self::input_capacity) bytes), then call
///    [`handle_input`](Self::handle_input). Message content is split from that buffer and
///    comes out as [`Output::Content`] (`Bytes`, no copy), in order with everything else.
/// 2. Poll: write each [`Output::Transmit`] (under a deadline), answer each event that
///    [needs a decision](Event::needs_decision) with a decision method, which goes on at once
///    with the input that waited behind it (pipelined commands), pass content on, stop at
///    [`Output::Closed`]. A decision that does not fit the pending event is an
///    [`Err(DecisionError)`](DecisionError) and changes nothing.
/// 3. When nothing is left, wait for input or until [`poll_timeout`](Self::poll_timeout)
///    (then [`handle_timeout`](Self::handle_timeout)); on end of input call
///    [`handle_eof`](Self::handle_eof).
///
/// Why one queue: with two channels (content returned by `handle_input`, the rest from
/// `poll_output`) and decisions that only took effect on a later call, every driver had to
/// re-derive the same stop condition. Here a driver is one loop, and
/// [`testing::drive`](crate::testing::drive) (feature `testing`) is that loop for drivers
/// without I/O.
///
/// ```
/// use std::{sync::Arc, time::Instant};
/// use smtp_proto::{Config, Event, Output, Session};
///
/// let now = Instant::now();
/// let mut s = Session::new(Arc::new(Config::new("mx.example")), now);
/// let mut wire = Vec::new();
/// let mut poll = |s: &mut Session, wire: &mut Vec<u8>| {
///     while let Some(out) = s.poll_output() {
///         match out {
///             Output::Transmit(bytes) => wire.extend_from_slice(bytes),
///             Output::Event(e) if e.needs_decision() => s.accept(now).unwrap(),
///             Output::Event(_) | Output::Content(_) => {}
///             Output::Closed(_) => break,
///         }
///     }
/// };
/// poll(&mut s, &mut wire); // the greeting: a Connect decision, then 220
/// s.input_buffer().extend_from_slice(b"HELO client\r\nMAIL FROM:<a@b.example>\r\n");
/// s.handle_input(now);
/// poll(&mut s, &mut wire); // HELO decided, then MAIL: each decision goes on by itself
/// assert_eq!(
///     String::from_utf8(wire).unwrap(),
///     "220 mx.example ESMTP ready\r\n250 mx.example\r\n250 2.1.0 Sender OK\r\n"
/// );
/// ```
pub struct Session {
    config: Arc<Config>,
    phase: Phase,
    pending: Option<Pending>,
    framer: LineFramer,
    /// What the client sent and the session has not consumed yet.
    input: BytesMut,
    queue: VecDeque<Queued>,
    /// Replies not yet handed out.
    out: Vec<u8>,
    /// Replies handed out by the last `Output::Transmit`, cleared on the next poll.
    sent: Vec<u8>,
    start: Instant,
    /// When the current deadline's clock started (last command, last content bytes).
    activity: Instant,
    proxy: Option<ProxyInfo>,
    hello: Option<(HelloKind, String)>,
    tls: bool,
    authenticated: Option<String>,
    envelope: Envelope,
    /// A RCPT was refused in this transaction (for "no valid recipients").
    rcpt_refused: bool,
    /// Octets of BDAT chunks received in this transaction, once the first chunk came.
    bdat_size: Option<u64>,
    /// Bad commands in a row.
    errors: u32,
    auth_failures: u32,
    messages: u32,
    command_counts: [u32; VERBS.len()],
    shutting_down: bool,
    /// Protocol lines for a log, when asked for ([`Session::record_transcript`]).
    transcript: Option<VecDeque<String>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("hello", &self.hello)
            .field("tls", &self.tls)
            .field("authenticated", &self.authenticated)
            .field("envelope", &self.envelope)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session for a new connection. Unless a PROXY header is expected first, it emits
    /// [`Event::Connect`] at once; accepting it queues the greeting.
    pub fn new(config: Arc<Config>, now: Instant) -> Self {
        let framer = LineFramer::new(config.limits.command_line);
        let proxy_first = config.proxy_protocol;
        let mut s = Self {
            config,
            phase: Phase::Command,
            pending: None,
            framer,
            input: BytesMut::new(),
            queue: VecDeque::new(),
            out: Vec::with_capacity(256),
            sent: Vec::with_capacity(256),
            start: now,
            activity: now,
            proxy: None,
            hello: None,
            tls: false,
            authenticated: None,
            envelope: Envelope::default(),
            rcpt_refused: false,
            bdat_size: None,
            errors: 0,
            auth_failures: 0,
            messages: 0,
            command_counts: [0; VERBS.len()],
            shutting_down: false,
            transcript: None,
        };
        if proxy_first {
            s.phase = Phase::Proxy;
        } else {
            s.decide(Pending::Connect, Event::Connect { proxy: None });
        }
        s
    }

    /// A session on a connection that is already encrypted (implicit TLS, "port 465" style,
    /// RFC 8314): STARTTLS is not offered and AUTH may be.
    pub fn new_tls(config: Arc<Config>, now: Instant) -> Self {
        let mut s = Self::new(config, now);
        s.tls = true;
        s
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The addresses from the PROXY header, once it was read.
    pub fn proxy(&self) -> Option<ProxyInfo> {
        self.proxy
    }

    /// The name given in HELO/EHLO/LHLO, once accepted.
    pub fn hello_name(&self) -> Option<&str> {
        self.hello.as_ref().map(|(_, name)| name.as_str())
    }

    /// True once TLS is active (after [`tls_established`](Self::tls_established)).
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The authenticated identity, after a successful AUTH.
    pub fn authenticated(&self) -> Option<&str> {
        self.authenticated.as_deref()
    }

    /// The transaction so far.
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// True when the session is over.
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    /// True while a decision is awaited.
    pub fn is_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// How many more bytes the session takes now: append at most this many to
    /// [`input_buffer`](Self::input_buffer) before [`handle_input`](Self::handle_input). The
    /// buffer is bounded by a command line (or PROXY header) plus a pipelined group; it does
    /// not grow while a decision is pending and the buffer is full, which is how a client that
    /// pipelines without end is made to wait.
    pub fn input_capacity(&self) -> usize {
        if self.is_closed() {
            return 0;
        }
        let max = match self.phase {
            Phase::Proxy => 16 + usize::from(u16::MAX),
            _ => self.framer.max().max(INPUT_MAX),
        };
        max.saturating_sub(self.input.len())
    }

    /// The buffer to read the client's bytes into (at most
    /// [`input_capacity`](Self::input_capacity) at a time); then call
    /// [`handle_input`](Self::handle_input). Message content is split from it without a copy.
    pub fn input_buffer(&mut self) -> &mut BytesMut {
        &mut self.input
    }

    /// Bytes received and not consumed yet (pipelined commands waiting behind a decision).
    pub fn buffered_input(&self) -> usize {
        self.input.len()
    }

    // ----- outputs -----

    /// The next output, in order; `None` when there is nothing more until the next input.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output<'_>> {
        self.sent.clear();
        loop {
            match self.queue.pop_front()? {
                Queued::Transmit if self.out.is_empty() => continue,
                Queued::Transmit => {
                    std::mem::swap(&mut self.sent, &mut self.out);
                    return Some(Output::Transmit(&self.sent));
                }
                Queued::Event(e) => return Some(Output::Event(e)),
                Queued::Content(bytes) => return Some(Output::Content(bytes)),
                Queued::Closed(reason) => return Some(Output::Closed(reason)),
            }
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) should be called next, if ever.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let t = &self.config.timeouts;
        let cap = t.session.map(|d| self.start + d);
        let state = match self.phase {
            Phase::Closed => return None,
            _ if self.pending.is_some() => None,
            Phase::Proxy => Some(self.start + t.proxy_header),
            Phase::Command | Phase::Auth(_) | Phase::Tls => Some(self.activity + t.command),
            Phase::Data(_) | Phase::Bdat { .. } => Some(self.activity + t.data),
        };
        match (state, cap) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Starts (or stops) keeping a transcript of the client's protocol lines for a log:
    /// command lines as sent, except that AUTH exchanges are redacted (`AUTH PLAIN ***`, each
    /// continuation line `***`) and message content is left out (`DATA: 1024 bytes`). Off by
    /// default: it costs an allocation per line.
    pub fn record_transcript(&mut self, on: bool) {
        self.transcript = on.then(VecDeque::new);
    }

    /// The next transcript line, in order, once [`record_transcript`](Self::record_transcript)
    /// was turned on. At most 1,024 lines are kept between polls; later ones are dropped.
    #[must_use]
    pub fn poll_transcript(&mut self) -> Option<String> {
        self.transcript.as_mut()?.pop_front()
    }

    fn note(&mut self, line: impl FnOnce() -> String) {
        if let Some(t) = &mut self.transcript {
            // Bounded for a caller that never polls: one pipelined group's worth.
            if t.len() < TRANSCRIPT_MAX {
                t.push_back(line());
            }
        }
    }

    // ----- inputs -----

    /// Copies what the client sent into the session's buffer (as much as it takes now, see
    /// [`input_capacity`](Self::input_capacity)) and handles it; returns how many bytes were
    /// taken. For tests and drivers without their own buffer; a driver that reads from a
    /// socket reads into [`input_buffer`](Self::input_buffer) instead.
    pub fn feed(&mut self, now: Instant, bytes: &[u8]) -> usize {
        let n = bytes.len().min(self.input_capacity());
        self.input.extend_from_slice(&bytes[..n]);
        self.handle_input(now);
        n
    }

    /// Handles the bytes in [`input_buffer`](Self::input_buffer): commands, AUTH lines,
    /// message content. Everything that results is queued for
    /// [`poll_output`](Self::poll_output), in order; bytes behind a pending decision stay in
    /// the buffer and are handled as soon as the decision is made.
    pub fn handle_input(&mut self, now: Instant) {
        let mut input = std::mem::take(&mut self.input);
        self.process(now, &mut input);
        // Consumed bytes are gone from the front; what is left keeps its allocation.
        self.input = input;
    }

    /// The work of [`handle_input`](Self::handle_input), on the buffer taken out of `self`
    /// (so that content can be split from it while the session changes).
    fn process(&mut self, now: Instant, input: &mut BytesMut) {
        loop {
            if self.pending.is_some() {
                return;
            }
            match &mut self.phase {
                Phase::Closed => {
                    input.clear();
                    return;
                }
                Phase::Tls => {
                    // RFC 3207 6: nothing the client sent before the handshake may count.
                    input.clear();
                    return;
                }
                Phase::Proxy => match ProxyHeader::parse(input).map(|parsed| {
                    parsed.map(|(header, used)| {
                        let proxy = ProxyInfo {
                            source: header.source(),
                            destination: header.destination(),
                        };
                        (proxy, used)
                    })
                }) {
                    Ok(Some((proxy, used))) => {
                        input.advance(used);
                        self.proxy = Some(proxy);
                        self.phase = Phase::Command;
                        self.activity = now;
                        self.decide(Pending::Connect, Event::Connect { proxy: Some(proxy) });
                    }
                    Ok(None) => break,
                    Err(_) => {
                        self.close(CloseReason::BadProxyHeader);
                        input.clear();
                        return;
                    }
                },
                Phase::Command | Phase::Auth(_) => match self.framer.next_line(input) {
                    Framed::Line { line, consumed } => {
                        // `input` is out of `self` here: the line borrows it while the
                        // session changes, and is dropped from the front afterwards.
                        self.activity = now;
                        if matches!(self.phase, Phase::Auth(_)) {
                            self.note(|| "***".to_string());
                            self.auth_line(line);
                        } else {
                            self.command(line);
                        }
                        input.advance(consumed);
                    }
                    Framed::TooLong { consumed } => {
                        input.advance(consumed);
                        self.activity = now;
                        self.note(|| "(line too long, discarded)".to_string());
                        if matches!(self.phase, Phase::Auth(_)) {
                            self.end_auth();
                            self.error(Reply::AUTH_LINE_TOO_LONG);
                        } else {
                            self.error(Reply::LINE_TOO_LONG);
                        }
                    }
                    Framed::Incomplete { consumed } => {
                        input.advance(consumed);
                        break;
                    }
                },
                Phase::Data(decoder) => match decoder.decode(input) {
                    Decoded::Data { data, consumed } => {
                        let at = locate(input, data);
                        let piece = content_piece(input, at, consumed);
                        self.activity = now;
                        self.queue.push_back(Queued::Content(piece));
                    }
                    Decoded::End { consumed, result } => {
                        input.advance(consumed);
                        self.activity = now;
                        self.phase = Phase::Command;
                        match result {
                            Ok(size) => {
                                self.note(|| format!("DATA: {size} bytes"));
                                self.message_end(size);
                            }
                            Err(e) => {
                                self.note(|| format!("DATA: refused ({e})"));
                                self.message_refused(e.reply(), Some(e), true)
                            }
                        }
                    }
                    Decoded::NeedMore => {
                        if !input.is_empty() {
                            self.activity = now;
                        }
                        input.clear();
                        break;
                    }
                },
                Phase::Bdat {
                    chunk,
                    last,
                    discard,
                } => {
                    let n = chunk.read(input).len();
                    let (done, last, discard) = (chunk.is_done(), *last, *discard);
                    if n > 0 {
                        self.activity = now;
                        let piece = input.split_to(n);
                        if !discard {
                            self.queue.push_back(Queued::Content(piece.freeze()));
                        }
                    }
                    if done {
                        self.phase = Phase::Command;
                        if !discard {
                            self.chunk_end(last);
                        }
                    } else {
                        break;
                    }
                }
            }
        }
        // All complete input was handled: the pipelined group's replies go out together.
        self.flush();
    }

    /// A deadline may have passed: answers `421 4.4.2` and closes if it did.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.poll_timeout().is_some_and(|deadline| now >= deadline) {
            self.abort_message();
            if !matches!(self.phase, Phase::Proxy) {
                self.send(Reply::TIMEOUT);
            }
            self.close(CloseReason::Timeout);
        }
    }

    /// The client closed its side.
    pub fn handle_eof(&mut self, _now: Instant) {
        if !self.is_closed() {
            self.abort_message();
            self.close(CloseReason::Eof);
        }
    }

    /// The TLS handshake that [`Event::StartTls`] asked for succeeded: the session returns to
    /// its state just after the greeting (RFC 3207 4.2), with TLS active.
    pub fn tls_established(&mut self, now: Instant) {
        if matches!(self.phase, Phase::Tls) {
            self.tls = true;
            self.hello = None;
            self.authenticated = None;
            self.reset_transaction();
            self.framer = LineFramer::new(self.config.limits.command_line);
            self.phase = Phase::Command;
            self.activity = now;
        }
    }

    /// Asks the session to end politely: `421 4.3.2` now if no message is in flight, otherwise
    /// right after the message in flight is answered.
    pub fn shutdown(&mut self, _now: Instant) {
        if self.is_closed() {
            return;
        }
        self.shutting_down = true;
        let in_flight = matches!(self.phase, Phase::Data(_) | Phase::Bdat { .. })
            || self.bdat_size.is_some()
            || matches!(self.pending, Some(Pending::MessageEnd));
        if !in_flight {
            self.pending = None;
            self.send(Reply::SHUTTING_DOWN);
            self.close(CloseReason::Shutdown);
        }
    }

    // ----- decisions -----

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
            Some(Pending::Vrfy) => VRFY_DEFAULT,
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
        for _ in 0..count {
            let r = replies.next().unwrap_or(Reply::LOCAL_ERROR);
            any |= r.is_positive();
            self.send(r);
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
    fn answer(&mut self, now: Instant, reply: Reply) -> Result<(), DecisionError> {
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
                    self.send(TOO_MANY_ERRORS);
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

    // ----- internals -----

    fn decide(&mut self, pending: Pending, event: Event) {
        self.pending = Some(pending);
        self.queue.push_back(Queued::Event(event));
    }

    fn event(&mut self, event: Event) {
        self.queue.push_back(Queued::Event(event));
    }

    fn send(&mut self, reply: Reply) {
        if self.config.extensions.enhanced_status_codes {
            reply.write_to(&mut self.out);
        } else {
            reply.without_status().write_to(&mut self.out);
        }
    }

    fn flush(&mut self) {
        if !self.out.is_empty() && !matches!(self.queue.back(), Some(Queued::Transmit)) {
            self.queue.push_back(Queued::Transmit);
        }
    }

    fn close(&mut self, reason: CloseReason) {
        self.pending = None;
        self.phase = Phase::Closed;
        self.flush();
        self.queue.push_back(Queued::Closed(reason));
    }

    /// After a decision: a shutdown that waited for the message in flight can happen now.
    fn after_decision(&mut self) {
        if self.shutting_down && !self.is_closed() && self.bdat_size.is_none() {
            self.send(Reply::SHUTTING_DOWN);
            self.close(CloseReason::Shutdown);
        }
    }

    /// An error reply that counts toward the limit of errors in a row.
    fn error(&mut self, reply: Reply) {
        self.send(reply);
        self.errors += 1;
        if self.errors >= self.config.limits.errors {
            self.send(TOO_MANY_ERRORS);
            self.close(CloseReason::TooManyErrors);
        }
    }

    fn reset_transaction(&mut self) {
        self.envelope.from = None;
        self.envelope.params = MailParams::default();
        self.envelope.recipients.clear();
        self.rcpt_refused = false;
        self.bdat_size = None;
    }

    /// Tells the driver that a message in progress will not complete.
    fn abort_message(&mut self) {
        let in_progress = matches!(self.phase, Phase::Data(_))
            || matches!(self.phase, Phase::Bdat { discard: false, .. })
            || self.bdat_size.is_some();
        if in_progress {
            self.event(Event::MessageAborted { error: None });
        }
    }

    fn capabilities(&self) -> Vec<String> {
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

    fn command(&mut self, line: &[u8]) {
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
                self.send(TOO_MANY_ERRORS);
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
            Command::Help { .. } if self.config.extensions.help => self.ok(HELP),
            Command::Help { .. } => self.error(Reply::NOT_IMPLEMENTED),
            Command::StartTls => self.starttls(),
            Command::Auth {
                mechanism,
                initial_response,
            } => self.auth(&mechanism, initial_response.as_deref()),
        }
    }

    /// A reply to a command that went well: the error streak ends.
    fn ok(&mut self, reply: Reply) {
        self.errors = 0;
        self.send(reply);
    }

    fn hello(&mut self, kind: HelloKind, name: &str) {
        let lmtp = self.config.protocol == Protocol::Lmtp;
        match kind {
            HelloKind::Lhlo if !lmtp => return self.error(USE_EHLO),
            HelloKind::Helo | HelloKind::Ehlo if lmtp => return self.error(USE_LHLO),
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

    fn mail(&mut self, from: ReversePath<'_>, params: MailParams<'_>) {
        if self.hello.is_none() || self.envelope.in_transaction() {
            return self.error(Reply::BAD_SEQUENCE);
        }
        if let Some(max) = self.config.limits.transactions
            && self.messages >= max
        {
            self.send(TOO_MANY_MESSAGES);
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
            return self.error(PARAM_NOT_ALLOWED);
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

    fn rcpt(&mut self, to: ForwardPath<'_>, params: RcptParams<'_>) {
        if !self.envelope.in_transaction() || self.bdat_size.is_some() {
            return self.error(Reply::BAD_SEQUENCE);
        }
        let ehlo = !matches!(self.hello, Some((HelloKind::Helo, _)));
        if params != RcptParams::default() && (!ehlo || !self.config.extensions.dsn) {
            return self.error(PARAM_NOT_ALLOWED);
        }
        // RFC 6531 3.5: a non-ASCII recipient needs an SMTPUTF8 transaction.
        if to.mailbox().is_some_and(|m| !m.is_ascii()) && !self.envelope.params.smtputf8 {
            return self.error(NON_ASCII_RECIPIENT);
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

    fn data(&mut self) {
        if !self.envelope.in_transaction() || self.bdat_size.is_some() {
            return self.error(Reply::BAD_SEQUENCE);
        }
        if self.envelope.recipients.is_empty() {
            return self.error(if self.rcpt_refused {
                NO_VALID_RECIPIENTS
            } else {
                Reply::BAD_SEQUENCE
            });
        }
        if self.envelope.params.body == Some(BodyType::BinaryMime) {
            return self.error(BINARYMIME_NEEDS_BDAT);
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

    fn bdat(&mut self, size: u64, last: bool) {
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
                NO_VALID_RECIPIENTS
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

    fn chunk_end(&mut self, last: bool) {
        let size = self.bdat_size.unwrap_or(0);
        if last {
            self.message_end(size);
        } else {
            let reply = Reply::new(250, st(2, 0, 0), format!("{size} octets received"));
            self.send(reply);
        }
    }

    fn message_end(&mut self, size: u64) {
        self.decide(Pending::MessageEnd, Event::MessageEnd { size });
    }

    /// The session refuses the message in progress by itself; `started` when the driver was
    /// told the message started.
    fn message_refused(&mut self, reply: Reply, error: Option<crate::DataError>, started: bool) {
        if started {
            self.event(Event::MessageAborted { error });
        }
        self.send(reply);
        self.reset_transaction();
        self.after_decision();
    }

    fn message_answered(&mut self, accepted: bool) {
        if accepted {
            self.messages += 1;
        }
        self.reset_transaction();
    }

    fn starttls(&mut self) {
        if !self.config.tls.available {
            return self.error(Reply::NOT_IMPLEMENTED);
        }
        if self.tls {
            return self.error(ALREADY_TLS);
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

    fn auth(&mut self, mechanism: &str, initial: Option<&str>) {
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
            Some(Ok(SaslResponse::Cancel)) => return self.error(AUTH_CANCELLED),
            Some(Err(e)) => return self.error(e.reply()),
        };
        self.errors = 0;
        self.framer.set_max(config.limits.auth_line);
        self.phase = Phase::Auth(exchange);
        self.auth_step(response);
    }

    fn auth_line(&mut self, line: &[u8]) {
        match decode_sasl_response(line) {
            Ok(SaslResponse::Data(d)) => self.auth_step(Some(d)),
            Ok(SaslResponse::Cancel) => {
                self.end_auth();
                self.error(AUTH_CANCELLED);
            }
            Err(e) => {
                self.end_auth();
                self.error(e.reply());
            }
        }
    }

    fn auth_step(&mut self, response: Option<Vec<u8>>) {
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

    fn end_auth(&mut self) {
        self.phase = Phase::Command;
        self.framer.set_max(self.config.limits.command_line);
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

/// Where `data` lies in `input` (offset, length), or `None` when it is not a slice of it (the
/// decoder's two-byte CRLF constant).
fn locate(input: &[u8], data: &[u8]) -> Option<(usize, usize)> {
    let start = (data.as_ptr() as usize).wrapping_sub(input.as_ptr() as usize);
    (start <= input.len() && data.len() <= input.len() - start).then_some((start, data.len()))
}

/// Splits the first `consumed` bytes off `input` and keeps the part `at` names: message
/// content without a copy (or the CRLF a bare line ending became).
fn content_piece(input: &mut BytesMut, at: Option<(usize, usize)>, consumed: usize) -> Bytes {
    match at {
        Some((start, len)) => {
            let mut piece = input.split_to(consumed);
            piece.advance(start);
            piece.truncate(len);
            piece.freeze()
        }
        None => {
            input.advance(consumed);
            CRLF
        }
    }
}

/// Transcript lines kept between two polls.
const TRANSCRIPT_MAX: usize = 1024;

/// A line that is not a command, for a log: its verb if it starts with one, and its size.
fn unparsed(line: &[u8]) -> String {
    let word = line.split(|&b| b == b' ').next().unwrap_or_default();
    match VERBS
        .iter()
        .find(|v| v.as_bytes().eq_ignore_ascii_case(word))
    {
        Some(verb) if *verb != "AUTH" => {
            format!("{verb} ... (not understood, {} bytes)", line.len())
        }
        _ => format!("(not a command, {} bytes)", line.len()),
    }
}

/// A command line for a log: as sent, except that an AUTH command keeps only its mechanism
/// (RFC 4954 4: the initial response carries the credentials).
fn redacted(line: &[u8]) -> String {
    let mut words = line.splitn(3, |&b| b == b' ');
    let verb = words.next().unwrap_or_default();
    if !verb.eq_ignore_ascii_case(b"AUTH") {
        return String::from_utf8_lossy(line).into_owned();
    }
    let mut text = String::from_utf8_lossy(verb).into_owned();
    match words.next() {
        Some(m)
            if !m.is_empty()
                && m.len() <= 20
                && m.iter()
                    .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            text.push(' ');
            text.push_str(&String::from_utf8_lossy(m));
        }
        Some(_) => text.push_str(" ***"),
        None => return text,
    }
    if words.next().is_some() {
        text.push_str(" ***");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction() {
        let cases: &[(&[u8], &str)] = &[
            (b"EHLO client.example", "EHLO client.example"),
            (
                b"MAIL FROM:<a@b.example> SIZE=10",
                "MAIL FROM:<a@b.example> SIZE=10",
            ),
            (b"AUTH PLAIN AGFubgBzZWNyZXQ=", "AUTH PLAIN ***"),
            (b"auth plain AGFubgBzZWNyZXQ=", "auth plain ***"),
            (b"AUTH LOGIN", "AUTH LOGIN"),
            (b"AUTH LOGIN YW5u", "AUTH LOGIN ***"),
            (b"AUTH AGFubgBzZWNyZXQ=AGFubgBzZWNyZXQ=", "AUTH ***"),
            (b"AUTH", "AUTH"),
            (b"AUTH  PLAIN x", "AUTH *** ***"),
        ];
        let lines: &[(&[u8], &str)] = &[
            (b"c2VjcmV0", "(not a command, 8 bytes)"),
            (b" AUTH PLAIN AGFubgBzZWNyZXQ=", "(not a command, 28 bytes)"),
            (b"AUTH\tPLAIN x", "(not a command, 12 bytes)"),
            (
                b"MAIL FROM:bad address",
                "MAIL ... (not understood, 21 bytes)",
            ),
            (b"Subject: secret plans", "(not a command, 21 bytes)"),
        ];
        for (line, want) in lines {
            assert_eq!(unparsed(line), *want, "{:?}", String::from_utf8_lossy(line));
        }
        for (line, want) in cases {
            assert_eq!(redacted(line), *want, "{:?}", String::from_utf8_lossy(line));
        }
    }

    /// Drives a session that accepts every decision; returns the transcript.
    fn transcript(config: Config, input: &[u8], bytewise: bool) -> Vec<String> {
        use crate::testing::{Decision, Peer, drive};
        struct Accept;
        impl Peer for Accept {
            fn transmit(&mut self, _: &[u8]) {}
            fn content(&mut self, _: Bytes) {}
            fn event(&mut self, e: &Event, _: &Session) -> Decision {
                match e {
                    Event::Auth { .. } => Decision::Identity("ann".into()),
                    _ => Decision::Accept,
                }
            }
            fn closed(&mut self, _: CloseReason) {}
        }
        let now = Instant::now();
        let mut s = Session::new(Arc::new(config), now);
        s.record_transcript(true);
        let chunks: Vec<&[u8]> = if bytewise {
            input.chunks(1).collect()
        } else {
            vec![input]
        };
        let mut lines = Vec::new();
        let mut pending = Vec::new();
        for chunk in chunks {
            pending.extend_from_slice(chunk);
            drive(&mut s, now, &mut pending, &mut Accept);
            lines.extend(std::iter::from_fn(|| s.poll_transcript()));
        }
        lines
    }

    /// The transcript is for logs: no AUTH secret and no message content, fed whole or
    /// one byte at a time.
    #[test]
    fn transcript_leaves_out_secrets_and_content() {
        let mut config = Config::new("mx.example");
        config.auth.mechanisms = vec!["PLAIN".into(), "LOGIN".into()];
        config.auth.allow_insecure = true;
        let input = b"EHLO c\r\nAUTH LOGIN\r\nYW5u\r\nc2VjcmV0\r\nRSET\r\n\
            MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\nSecret body\r\n.\r\n\
            MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nBDAT 9 LAST\r\nchunkbodyQUIT\r\n";
        for bytewise in [false, true] {
            let lines = transcript(config.clone(), input, bytewise);
            assert_eq!(
                lines,
                [
                    "EHLO c",
                    "AUTH LOGIN",
                    "***",
                    "***",
                    "RSET",
                    "MAIL FROM:<a@b.example>",
                    "RCPT TO:<c@d.example>",
                    "DATA",
                    "DATA: 13 bytes",
                    "MAIL FROM:<a@b.example>",
                    "RCPT TO:<c@d.example>",
                    "BDAT 9 LAST",
                    "QUIT",
                ],
                "bytewise: {bytewise}"
            );
        }
        let lines = transcript(
            config.clone(),
            b"EHLO c\r\nAUTH PLAIN AGFubgBzZWNyZXQ=\r\n",
            false,
        );
        assert_eq!(lines, ["EHLO c", "AUTH PLAIN ***"]);
        // A client that sends on after a refusal: content after a refused DATA, AUTH LOGIN
        // answers after a refused AUTH. None of it is shown.
        let input = b"DATA\r\nSubject: secret plans\r\n.\r\nAUTH CRAM-MD5\r\nYW5u\r\nc2VjcmV0\r\n";
        for bytewise in [false, true] {
            let lines = transcript(config.clone(), input, bytewise);
            assert_eq!(
                lines,
                [
                    "DATA",
                    "(not a command, 21 bytes)",
                    "(not a command, 1 bytes)",
                    "AUTH CRAM-MD5",
                    "(not a command, 4 bytes)",
                    "(not a command, 8 bytes)",
                ],
                "bytewise: {bytewise}"
            );
        }
    }
}
