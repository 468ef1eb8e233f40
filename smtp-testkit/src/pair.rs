//! A session and a scripted client on a virtual clock.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use smtp_proto::{CloseReason, Config, Envelope, Event, Output, Reply, Session};

/// How the [`Pair`]'s stand-in handler answers a decision event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// [`Session::accept`].
    Accept,
    /// [`Session::reply`].
    Reply(Reply),
    /// [`Session::reply_each`] (LMTP, one reply per recipient).
    ReplyEach(Vec<Reply>),
    /// [`Session::accept_auth`] with this identity.
    Identity(String),
    /// [`Session::set_capabilities`], then accept.
    Capabilities(Vec<String>),
    /// Leave the decision pending (answer it later with [`Pair::decide`]).
    Defer,
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

/// Drives a [`Session`] with scripted client bytes and a virtual clock, recording everything.
///
/// Every call runs the session until it waits for input (or for a decision left pending with
/// [`Decision::Defer`]). A stand-in handler, by default accepting everything, answers the
/// decision events; STARTTLS is completed at once (the session is told TLS is established),
/// and any client bytes still buffered at that point are dropped, as a real driver must.
pub struct Pair {
    session: Session,
    now: Instant,
    input: Vec<u8>,
    wire: Vec<u8>,
    read: usize,
    transcript: String,
    events: Vec<Event>,
    body: Vec<u8>,
    messages: Vec<Received>,
    closed: Option<CloseReason>,
    decider: Decider,
    auto_tls: bool,
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
            wire: Vec::new(),
            read: 0,
            transcript: String::new(),
            events: Vec::new(),
            body: Vec::new(),
            messages: Vec::new(),
            closed: None,
            decider: Box::new(decider),
            auto_tls: true,
        };
        pair.drive();
        pair
    }

    /// Whether STARTTLS completes at once (the default); if not, call
    /// [`Pair::tls_established`] yourself.
    pub fn auto_tls(&mut self, on: bool) -> &mut Self {
        self.auto_tls = on;
        self
    }

    /// The session.
    pub fn session(&self) -> &Session {
        &self.session
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
                self.transcript,
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
        let _ = writeln!(self.transcript, "-- {} s later", by.as_secs_f64());
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
    pub fn decide(&mut self, decision: Decision) -> &mut Self {
        self.apply(decision);
        self.drive();
        self
    }

    /// Runs the session until it waits. Bounded: a session that makes no progress after many
    /// rounds is a bug, and panics with the transcript.
    fn drive(&mut self) {
        for _ in 0..1_000_000 {
            self.drain_outputs();
            if self.closed.is_some() || self.session.is_pending() {
                return;
            }
            let used = self.session.handle_input(self.now, &self.input);
            let (consumed, had_body) = (used.bytes, used.body.is_some());
            if let Some(body) = used.body {
                self.body.extend_from_slice(body);
            }
            self.input.drain(..consumed);
            if consumed == 0 && !had_body {
                // A decision answered in this last drain (such as the end of a lone
                // `BDAT 0 LAST`) needs one more turn, with no input, to send its reply.
                let seen = self.events.len();
                self.drain_outputs();
                if self.events.len() == seen {
                    return;
                }
            }
        }
        panic!("session made no progress:\n{}", self.transcript);
    }

    fn drain_outputs(&mut self) {
        while let Some(out) = self.session.poll_output() {
            match out {
                Output::Transmit(bytes) => {
                    self.wire.extend_from_slice(bytes);
                    for line in String::from_utf8_lossy(bytes).split_inclusive('\n') {
                        let _ = writeln!(self.transcript, "S: {}", line.trim_end());
                    }
                }
                Output::Event(event) => self.event(event),
                Output::Closed(reason) => {
                    let _ = writeln!(self.transcript, "-- closed: {reason:?}");
                    self.closed = Some(reason);
                }
            }
        }
    }

    fn event(&mut self, event: Event) {
        match &event {
            Event::MessageStart => self.body.clear(),
            Event::MessageEnd { .. } => self.messages.push(Received {
                envelope: self.session.envelope().clone(),
                body: std::mem::take(&mut self.body),
            }),
            Event::MessageAborted { .. } => self.body.clear(),
            Event::StartTls if self.auto_tls => {
                // Bytes pipelined after STARTTLS in plaintext must never be read as commands.
                self.input.clear();
                self.session.tls_established(self.now);
            }
            _ => {}
        }
        if event.needs_decision() {
            let decision = (self.decider)(&event, &self.session);
            self.events.push(event);
            self.apply(decision);
        } else {
            self.events.push(event);
        }
    }

    fn apply(&mut self, decision: Decision) {
        let now = self.now;
        match decision {
            Decision::Accept => self.session.accept(now),
            Decision::Reply(r) => self.session.reply(now, r),
            Decision::ReplyEach(rs) => self.session.reply_each(now, rs),
            Decision::Identity(id) => self.session.accept_auth(now, id),
            Decision::Capabilities(caps) => {
                self.session.set_capabilities(caps);
                self.session.accept(now);
            }
            Decision::Defer => {}
        }
    }

    /// Replies the server sent since the last call to `replies` or [`Pair::codes`].
    pub fn replies(&mut self) -> Vec<Reply> {
        let mut out = Vec::new();
        while let Ok(Some((reply, used))) = Reply::parse(&self.wire[self.read..], usize::MAX) {
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
        &self.wire
    }

    /// The whole conversation, `C:` and `S:` lines, for failure messages.
    pub fn transcript(&self) -> &str {
        &self.transcript
    }

    /// Every event the session emitted, in order.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Messages that reached their end, in order.
    pub fn messages(&self) -> &[Received] {
        &self.messages
    }

    /// Client bytes the session has not consumed.
    pub fn unconsumed(&self) -> &[u8] {
        &self.input
    }

    /// Why the session closed, if it did.
    pub fn closed(&self) -> Option<CloseReason> {
        self.closed
    }

    /// True once the session closed.
    pub fn is_closed(&self) -> bool {
        self.closed.is_some()
    }
}

impl std::fmt::Debug for Pair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.transcript)
    }
}
