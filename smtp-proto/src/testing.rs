//! Driving a [`Session`] without I/O: the one drive loop that the virtual-clock [`Pair`], the
//! fuzz harness and the benches share, and the `Pair` itself (re-exported by `smtp-testkit`).
//!
//! Behind the `testing` feature (and always in this crate's own tests): nothing here is needed
//! to serve mail.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::{CloseReason, Config, DecisionError, Envelope, Event, Output, Reply, Session};

/// How a stand-in handler answers an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// [`Session::accept`] (for [`Event::StartTls`]: the handshake is done,
    /// [`Session::tls_established`]).
    Accept,
    /// [`Session::reply`].
    Reply(Reply),
    /// [`Session::reply_each`] (LMTP, one reply per recipient).
    ReplyEach(Vec<Reply>),
    /// [`Session::accept_auth`] with this identity.
    Identity(String),
    /// [`Session::set_capabilities`], then accept.
    Capabilities(Vec<String>),
    /// Leave the decision pending (answer it later).
    Defer,
}

impl Decision {
    /// Applies this decision to the session's pending event.
    ///
    /// # Errors
    /// What the session says when the decision does not fit ([`DecisionError`]).
    pub fn apply(self, session: &mut Session, now: Instant) -> Result<(), DecisionError> {
        match self {
            Self::Accept => session.accept(now),
            Self::Reply(r) => session.reply(now, r),
            Self::ReplyEach(rs) => session.reply_each(now, rs),
            Self::Identity(id) => session.accept_auth(now, id),
            Self::Capabilities(caps) => {
                session.set_capabilities(caps)?;
                session.accept(now)
            }
            Self::Defer => Ok(()),
        }
    }
}

/// The other side of [`drive`]: what a driver does with each output.
pub trait Peer {
    /// Replies to write to the client.
    fn transmit(&mut self, bytes: &[u8]);
    /// Message content, in order.
    fn content(&mut self, bytes: Bytes);
    /// An event; for one that [needs a decision](Event::needs_decision), the answer. For
    /// [`Event::StartTls`], `Accept` completes the upgrade at once.
    fn event(&mut self, event: &Event, session: &Session) -> Decision;
    /// The session closed.
    fn closed(&mut self, reason: CloseReason);
}

/// Runs `session` until it waits: hands every output to `peer` (answering decisions as it
/// says), and feeds it `input` as far as the session takes it, in order. What the session
/// does not take yet stays in `input`. This is the whole drive loop of a driver without I/O:
/// after every input and every decision, poll until nothing is left.
pub fn drive(session: &mut Session, now: Instant, input: &mut Vec<u8>, peer: &mut impl Peer) {
    // Taken bytes are skipped with an offset and dropped from `input` once, at the end.
    let mut pos = 0;
    loop {
        while let Some(out) = session.poll_output() {
            match out {
                Output::Transmit(bytes) => peer.transmit(bytes),
                Output::Content(bytes) => peer.content(bytes),
                Output::Closed(reason) => peer.closed(reason),
                Output::Event(event) => {
                    let decision = peer.event(&event, session);
                    if matches!(event, Event::StartTls) {
                        if decision == Decision::Accept {
                            // RFC 3207 6: plaintext pipelined after STARTTLS is never read.
                            pos = input.len();
                            session.tls_established(now);
                        }
                    } else if event.needs_decision() {
                        decision
                            .apply(session, now)
                            .expect("a decision for the pending event");
                    }
                }
            }
        }
        let room = session.input_capacity();
        if pos == input.len() || room == 0 || session.is_pending() {
            input.drain(..pos);
            return;
        }
        pos += session.feed(now, &input[pos..]);
    }
}

/// A message the session finished receiving (at [`Event::MessageEnd`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The envelope at the end of the message.
    pub envelope: Envelope,
    /// The content, as the session handed it out.
    pub body: Vec<u8>,
}

type Decider = Box<dyn FnMut(&Event, &Session) -> Decision>;

/// What a [`Pair`] records.
struct Record {
    wire: Vec<u8>,
    transcript: String,
    events: Vec<Event>,
    body: Vec<u8>,
    messages: Vec<Received>,
    closed: Option<CloseReason>,
    decider: Decider,
    auto_tls: bool,
}

impl Peer for Record {
    fn transmit(&mut self, bytes: &[u8]) {
        self.wire.extend_from_slice(bytes);
        for line in String::from_utf8_lossy(bytes).split_inclusive('\n') {
            let _ = writeln!(self.transcript, "S: {}", line.trim_end());
        }
    }

    fn content(&mut self, bytes: Bytes) {
        self.body.extend_from_slice(&bytes);
    }

    fn event(&mut self, event: &Event, session: &Session) -> Decision {
        match event {
            Event::MessageStart | Event::MessageAborted { .. } => self.body.clear(),
            Event::MessageEnd { .. } => self.messages.push(Received {
                envelope: session.envelope().clone(),
                body: std::mem::take(&mut self.body),
            }),
            _ => {}
        }
        self.events.push(event.clone());
        if matches!(event, Event::StartTls) {
            return if self.auto_tls {
                Decision::Accept
            } else {
                Decision::Defer
            };
        }
        if event.needs_decision() {
            (self.decider)(event, session)
        } else {
            Decision::Defer
        }
    }

    fn closed(&mut self, reason: CloseReason) {
        let _ = writeln!(self.transcript, "-- closed: {reason:?}");
        self.closed = Some(reason);
    }
}

/// Drives a [`Session`] with scripted client bytes and a virtual clock, recording everything.
///
/// Every call runs the session until it waits for input (or for a decision left pending with
/// [`Decision::Defer`]). A stand-in handler, by default accepting everything, answers the
/// decision events; STARTTLS is completed at once (the session is told TLS is established),
/// and client bytes pipelined after it are dropped, as a real driver must.
///
/// ```
/// use smtp_proto::Config;
/// use smtp_proto::testing::Pair;
/// let mut pair = Pair::new(Config::new("mx.example"));
/// pair.send("EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n");
/// pair.send("Subject: hi\r\n\r\n..dot\r\n.\r\n");
/// assert_eq!(pair.codes(), [220, 250, 250, 250, 354, 250]);
/// assert_eq!(pair.messages()[0].body, b"Subject: hi\r\n\r\n.dot\r\n");
/// ```
pub struct Pair {
    session: Session,
    now: Instant,
    /// Client bytes the session has not taken yet.
    input: Vec<u8>,
    read: usize,
    record: Record,
}

impl Pair {
    /// A session with this configuration and an accept-everything handler, greeted.
    pub fn new(config: Config) -> Self {
        Self::with_decider(config, |_, _| Decision::Accept)
    }

    /// A session whose decisions are made by `decider`.
    pub fn with_decider(
        config: Config,
        decider: impl FnMut(&Event, &Session) -> Decision + 'static,
    ) -> Self {
        let now = Instant::now();
        let mut pair = Self {
            session: Session::new(Arc::new(config), now),
            now,
            input: Vec::new(),
            read: 0,
            record: Record {
                wire: Vec::new(),
                transcript: String::new(),
                events: Vec::new(),
                body: Vec::new(),
                messages: Vec::new(),
                closed: None,
                decider: Box::new(decider),
                auto_tls: true,
            },
        };
        pair.drive();
        pair
    }

    /// Whether STARTTLS completes at once (the default); if not, call
    /// [`Pair::tls_established`] yourself.
    pub fn auto_tls(&mut self, on: bool) -> &mut Self {
        self.record.auto_tls = on;
        self
    }

    /// The session.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The session, to call it directly (a decision out of turn, a capability check).
    pub fn session_mut(&mut self) -> &mut Session {
        &mut self.session
    }

    /// The virtual time now.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The client sends these bytes; the session runs.
    pub fn send(&mut self, bytes: impl AsRef<[u8]>) -> &mut Self {
        let bytes = bytes.as_ref();
        for line in String::from_utf8_lossy(bytes).split_inclusive('\n') {
            let _ = writeln!(
                self.record.transcript,
                "C: {}",
                line.trim_end_matches(['\r', '\n'])
            );
        }
        self.input.extend_from_slice(bytes);
        self.drive();
        self
    }

    /// The client sends these bytes one at a time, the session running after each.
    pub fn send_bytewise(&mut self, bytes: impl AsRef<[u8]>) -> &mut Self {
        for b in bytes.as_ref() {
            self.send([*b]);
        }
        self
    }

    /// Moves the virtual clock forward and lets the session handle its deadline.
    pub fn advance(&mut self, by: Duration) -> &mut Self {
        self.now += by;
        let _ = writeln!(self.record.transcript, "-- {} s later", by.as_secs_f64());
        self.session.handle_timeout(self.now);
        self.drive();
        self
    }

    /// The client closes the connection.
    pub fn eof(&mut self) -> &mut Self {
        self.session.handle_eof(self.now);
        self.drive();
        self
    }

    /// Asks the session to shut down.
    pub fn shutdown(&mut self) -> &mut Self {
        self.session.shutdown(self.now);
        self.drive();
        self
    }

    /// Completes a STARTTLS upgrade (when [`Pair::auto_tls`] is off).
    pub fn tls_established(&mut self) -> &mut Self {
        self.input.clear();
        self.session.tls_established(self.now);
        self.drive();
        self
    }

    /// Answers a decision left pending with [`Decision::Defer`].
    ///
    /// # Panics
    /// If the decision does not fit the pending event.
    pub fn decide(&mut self, decision: Decision) -> &mut Self {
        decision
            .apply(&mut self.session, self.now)
            .expect("a decision for the pending event");
        self.drive();
        self
    }

    fn drive(&mut self) {
        drive(
            &mut self.session,
            self.now,
            &mut self.input,
            &mut self.record,
        );
    }

    /// Replies the server sent since the last call to `replies` or [`Pair::codes`].
    pub fn replies(&mut self) -> Vec<Reply> {
        let mut out = Vec::new();
        while let Ok(Some((reply, used))) = Reply::parse(&self.record.wire[self.read..], usize::MAX)
        {
            out.push(reply);
            self.read += used;
        }
        out
    }

    /// The codes of [`Pair::replies`].
    pub fn codes(&mut self) -> Vec<u16> {
        self.replies().iter().map(Reply::code).collect()
    }

    /// Every byte the server sent.
    pub fn wire(&self) -> &[u8] {
        &self.record.wire
    }

    /// The whole conversation, `C:` and `S:` lines, for failure messages.
    pub fn transcript(&self) -> &str {
        &self.record.transcript
    }

    /// Every event the session emitted, in order.
    pub fn events(&self) -> &[Event] {
        &self.record.events
    }

    /// Messages that reached their end, in order.
    pub fn messages(&self) -> &[Received] {
        &self.record.messages
    }

    /// Client bytes not consumed yet: held by the session behind a decision, or not taken
    /// because its buffer is full.
    pub fn unconsumed(&self) -> usize {
        self.session.buffered_input() + self.input.len()
    }

    /// Why the session closed, if it did.
    pub fn closed(&self) -> Option<CloseReason> {
        self.record.closed
    }

    /// True once the session closed.
    pub fn is_closed(&self) -> bool {
        self.record.closed.is_some()
    }
}

impl std::fmt::Debug for Pair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.record.transcript)
    }
}

/// What the benchmarks' client sends on one connection: EHLO, then `messages` times
/// `MAIL FROM` / `RCPT TO` / `DATA` / a body of about 1,000 octets / `.`, then QUIT, all
/// pipelined (ten senders in turn, one recipient).
pub fn pipelined_messages(messages: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < 1000 {
        body.extend_from_slice(
            b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\r\n",
        );
    }
    let mut out = b"EHLO client.example\r\n".to_vec();
    for i in 0..messages {
        let _ = write!(
            Lines(&mut out),
            "MAIL FROM:<sender{}@example.com>\r\nRCPT TO:<rcpt@example.org>\r\nDATA\r\n",
            i % 10
        );
        out.extend_from_slice(&body);
        out.extend_from_slice(b".\r\n");
    }
    out.extend_from_slice(b"QUIT\r\n");
    out
}

/// `fmt::Write` into a byte vector.
struct Lines<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Lines<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}
