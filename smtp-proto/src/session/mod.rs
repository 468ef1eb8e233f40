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
use crate::reply::Reply;
mod auth;
mod commands;
mod decision;
mod transcript;

use crate::sasl::{
    LoginExchange, PlainExchange, SaslExchange, SaslResponse, SaslStep, decode_sasl_response,
};

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
            out: Vec::new(),
            sent: Vec::new(),
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

    /// Frees the buffers the session keeps from command to command, if nothing is in them
    /// (the input, the output, the queue of work); they are allocated again when next
    /// needed. For a driver that holds many idle connections: call it when a connection has
    /// been quiet for a while, and read its next input into a buffer only once the socket is
    /// readable.
    ///
    /// ```
    /// # use std::{sync::Arc, time::Instant};
    /// use smtp_proto::{Config, Session};
    /// let mut s = Session::new(Arc::new(Config::new("mx.example")), Instant::now());
    /// while s.poll_output().is_some() {}
    /// s.release_buffers();
    /// assert_eq!(s.input_buffer().capacity(), 0);
    /// ```
    pub fn release_buffers(&mut self) {
        if self.input.is_empty() {
            self.input = BytesMut::new();
        }
        if self.out.is_empty() {
            self.out = Vec::new();
        }
        if self.sent.is_empty() {
            self.sent = Vec::new();
        }
        if self.queue.is_empty() {
            self.queue = VecDeque::new();
        }
    }

    /// Bytes received and not consumed yet (pipelined commands waiting behind a decision).
    pub fn buffered_input(&self) -> usize {
        self.input.len()
    }

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
                        // Not a slice of the input: one of the decoder's short constants
                        // (the CRLF a bare line ending became, or a CR kept as is).
                        let constant = match (at, data) {
                            (Some(_), _) => None,
                            (None, b"\r\n") => Some(CRLF),
                            (None, other) => Some(Bytes::copy_from_slice(other)),
                        };
                        let piece = content_piece(input, at, consumed, constant);
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
}

/// Where `data` lies in `input` (offset, length), or `None` when it is not a slice of it (the
/// decoder's two-byte CRLF constant).
fn locate(input: &[u8], data: &[u8]) -> Option<(usize, usize)> {
    let start = (data.as_ptr() as usize).wrapping_sub(input.as_ptr() as usize);
    (start <= input.len() && data.len() <= input.len() - start).then_some((start, data.len()))
}

/// Splits the first `consumed` bytes off `input` and keeps the part `at` names: message
/// content without a copy (or `constant`, when the decoder gave one).
fn content_piece(
    input: &mut BytesMut,
    at: Option<(usize, usize)>,
    consumed: usize,
    constant: Option<Bytes>,
) -> Bytes {
    match (at, constant) {
        (Some((start, len)), _) => {
            let mut piece = input.split_to(consumed);
            piece.advance(start);
            piece.truncate(len);
            piece.freeze()
        }
        (None, constant) => {
            input.advance(consumed);
            constant.unwrap_or_default()
        }
    }
}
