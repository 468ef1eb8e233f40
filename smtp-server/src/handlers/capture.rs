//! [`Capture`]: a bounded in-memory store of received mail, with each message's envelope and
//! session, searchable, with a live feed of new messages: what a capture server (the HTTP API
//! of the `http` feature, the `smtp-server --handler capture` program) and tests read.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use mail_parser::{MessageParser, MimeHeaders};
use smtp_proto::{
    EnhancedStatus, Envelope, ForwardPath, MailParams, RcptParams, Reply, ReversePath,
};
use tokio::sync::broadcast;

use crate::body::Body;
use crate::handler::{Context, Handler, SessionInfo};

/// What the store changed, for a live feed ([`Capture::subscribe`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum CaptureEvent {
    /// A message arrived (its id: [`Capture::get`] it while it is held; the feed holds no
    /// message, so a subscriber that falls behind keeps no memory alive).
    New(String),
    /// A message was deleted (by a client, or dropped to stay within the limits).
    Deleted(String),
    /// Every message was deleted.
    Truncated,
}

/// One captured message: the bytes as received, the envelope, the session, and a parsed
/// summary.
#[derive(Debug)]
pub struct Captured {
    id: String,
    created: SystemTime,
    envelope: Envelope,
    session: SessionInfo,
    raw: Bytes,
    read: AtomicBool,
    summary: Summary,
    /// What plain words are searched in, lower case, at most [`SEARCH_TEXT`] bytes.
    search_text: String,
}

/// The most of a message's text kept for word searches.
const SEARCH_TEXT: usize = 64 << 10;
/// The most entries kept of one address list or of the parts.
const MAX_LIST: usize = 1000;

/// A mailbox in a header: display name (empty if none) and address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mailbox {
    /// The display name, `""` if none.
    pub name: String,
    /// The address.
    pub address: String,
}

/// A MIME part that is an attachment or an inline part with a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The part's id within the message (for [`Captured::part`]).
    pub id: String,
    /// Its file name (or Content-ID when it has none).
    pub file_name: String,
    /// Its content type, such as `application/pdf`.
    pub content_type: String,
    /// Its Content-ID, without angle brackets, `""` if none.
    pub content_id: String,
    /// Its decoded size.
    pub size: usize,
    /// Inline (a Content-ID or `Content-Disposition: inline`), not an attachment.
    pub inline: bool,
}

/// The parsed facts of a message, made once when it arrives.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// `From` (the first).
    pub from: Mailbox,
    /// `To`.
    pub to: Vec<Mailbox>,
    /// `Cc`.
    pub cc: Vec<Mailbox>,
    /// `Bcc` (rarely present in a message as sent).
    pub bcc: Vec<Mailbox>,
    /// `Reply-To`.
    pub reply_to: Vec<Mailbox>,
    /// `Subject`, `""` if none.
    pub subject: String,
    /// `Message-ID`, without angle brackets, `""` if none.
    pub message_id: String,
    /// `Date` as Unix seconds, if it parses.
    pub date: Option<i64>,
    /// Attachments and named inline parts.
    pub parts: Vec<Part>,
    /// The start of the text (or of the HTML, as text), at most 250 characters.
    pub snippet: String,
}

impl Captured {
    /// The message's id: the one in the `250` reply (`queued as ID`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// When it arrived.
    pub fn created(&self) -> SystemTime {
        self.created
    }

    /// The envelope: sender, recipients, parameters.
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// The session: client address, HELO, TLS, AUTH user, listener.
    pub fn session(&self) -> &SessionInfo {
        &self.session
    }

    /// The message as received (after dot-unstuffing).
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// Whether a client has opened it (Mailpit's read flag).
    pub fn is_read(&self) -> bool {
        self.read.load(Ordering::Relaxed)
    }

    /// Sets the read flag.
    pub fn set_read(&self, read: bool) {
        self.read.store(read, Ordering::Relaxed);
    }

    /// The parsed summary.
    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    /// The message parsed (each call parses again: the store keeps only the raw bytes and the
    /// summary, so that its memory bound holds).
    pub fn parsed(&self) -> Option<mail_parser::Message<'_>> {
        MessageParser::default().parse(&self.raw[..])
    }

    /// The text body (or the HTML converted to text), `""` if none.
    pub fn text(&self) -> String {
        self.parsed()
            .and_then(|m| m.body_text(0).map(|t| t.into_owned()))
            .unwrap_or_default()
    }

    /// The HTML body, `""` if none. **Hostile input**: show it only in a sandbox.
    pub fn html(&self) -> String {
        self.parsed()
            .and_then(|m| {
                // Only a real text/html part, not text converted to HTML.
                (!m.html_body.is_empty())
                    .then(|| m.body_html(0).map(|t| t.into_owned()))
                    .flatten()
                    .filter(|_| {
                        m.html_body
                            .first()
                            .and_then(|&i| m.part(i))
                            .is_some_and(|p| {
                                p.content_type().is_some_and(|c| {
                                    c.subtype().is_some_and(|s| s.eq_ignore_ascii_case("html"))
                                })
                            })
                    })
            })
            .unwrap_or_default()
    }

    /// The header lines: each name (as written) with its raw values, in order.
    pub fn headers(&self) -> Vec<(String, String)> {
        let Some(m) = self.parsed() else {
            return Vec::new();
        };
        m.headers()
            .iter()
            .map(|h| {
                let raw = &self.raw[h.offset_start() as usize..h.offset_end() as usize];
                let value = String::from_utf8_lossy(raw);
                (h.name().to_string(), unfold(&value))
            })
            .collect()
    }

    /// An attachment's decoded bytes and content type, by [`Part::id`].
    pub fn part(&self, id: &str) -> Option<(String, Vec<u8>)> {
        let index: u32 = id.parse().ok()?;
        let m = self.parsed()?;
        let part = m.part(index)?;
        let content_type = content_type(part);
        Some((content_type, part.contents().to_vec()))
    }

    /// What this message costs against the store's byte limit: its bytes, its summary's and
    /// search text's, the envelope's, and a fixed share for the rest.
    fn cost(&self) -> usize {
        let s = &self.summary;
        let mailbox = |m: &Mailbox| m.name.len() + m.address.len() + 64;
        let lists: usize = std::iter::once(&s.from)
            .chain(&s.to)
            .chain(&s.cc)
            .chain(&s.bcc)
            .chain(&s.reply_to)
            .map(mailbox)
            .sum();
        let parts: usize = s
            .parts
            .iter()
            .map(|p| {
                p.id.len() + p.file_name.len() + p.content_type.len() + p.content_id.len() + 64
            })
            .sum();
        let envelope: usize = self
            .envelope
            .recipients
            .iter()
            .map(|r| r.path.address().len() + 96)
            .sum();
        self.raw.len()
            + lists
            + parts
            + envelope
            + s.subject.len()
            + s.message_id.len()
            + s.snippet.len()
            + self.search_text.len()
            + self.id.len()
            + 1024
    }
}

/// A header value unfolded (RFC 5322 2.2.3): each line break and the white space around it
/// become one space.
fn unfold(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, line) in value.split('\n').enumerate() {
        let line = line.trim_end_matches('\r');
        if i == 0 {
            out.push_str(line.trim());
        } else if !line.trim().is_empty() {
            out.push(' ');
            out.push_str(line.trim());
        }
    }
    out
}

fn content_type(part: &mail_parser::MessagePart<'_>) -> String {
    match part.content_type() {
        Some(c) => match c.subtype() {
            Some(sub) => format!("{}/{sub}", c.ctype()),
            None => c.ctype().to_string(),
        },
        None => "application/octet-stream".to_string(),
    }
}

fn mailboxes(addr: Option<&mail_parser::Address<'_>>) -> Vec<Mailbox> {
    let Some(addr) = addr else {
        return Vec::new();
    };
    addr.iter()
        .take(MAX_LIST)
        .map(|a| Mailbox {
            name: a.name().unwrap_or_default().to_string(),
            address: a.address().unwrap_or_default().to_string(),
        })
        .collect()
}

/// The summary of a message (what lists and searches read). Envelope recipients that no
/// `To`, `Cc` or `Bcc` header names are added to `bcc`, as Mailpit does: they were blind
/// copies.
fn summarize(raw: &[u8], envelope: &Envelope) -> Summary {
    let mut s = summarize_headers(raw);
    for r in &envelope.recipients {
        let address = r.path.address();
        let named =
            s.to.iter()
                .chain(&s.cc)
                .chain(&s.bcc)
                .any(|m| m.address.eq_ignore_ascii_case(&address));
        if !named && !address.is_empty() {
            s.bcc.push(Mailbox {
                name: String::new(),
                address,
            });
        }
    }
    s
}

fn summarize_headers(raw: &[u8]) -> Summary {
    let Some(m) = MessageParser::default().parse(raw) else {
        return Summary::default();
    };
    let mut parts = Vec::new();
    for &i in m.attachments.iter().take(MAX_LIST) {
        let Some(p) = m.part(i) else { continue };
        let content_id = p
            .content_id()
            .unwrap_or_default()
            .trim_matches(['<', '>'])
            .to_string();
        let inline = p
            .content_disposition()
            .is_some_and(|d| d.ctype().eq_ignore_ascii_case("inline"))
            || !content_id.is_empty();
        parts.push(Part {
            id: i.to_string(),
            file_name: p
                .attachment_name()
                .map_or_else(|| content_id.clone(), str::to_string),
            content_type: content_type(p),
            content_id,
            size: p.contents().len(),
            inline,
        });
    }
    let text = m.body_text(0).map(|t| t.into_owned()).unwrap_or_default();
    let mut snippet = String::new();
    for word in text.split_whitespace() {
        if snippet.len() >= 1000 {
            break;
        }
        if !snippet.is_empty() {
            snippet.push(' ');
        }
        snippet.push_str(word);
    }
    Summary {
        from: mailboxes(m.from()).into_iter().next().unwrap_or_default(),
        to: mailboxes(m.to()),
        cc: mailboxes(m.cc()),
        bcc: mailboxes(m.bcc()),
        reply_to: mailboxes(m.reply_to()),
        subject: m.subject().unwrap_or_default().to_string(),
        message_id: m.message_id().unwrap_or_default().to_string(),
        date: m.date().map(mail_parser::DateTime::to_timestamp),
        parts,
        snippet: snippet.chars().take(250).collect(),
    }
}

/// A search, in Mailpit's syntax: words match anywhere (sender, recipients, subject, text);
/// `to:`, `from:`, `cc:`, `bcc:`, `subject:`, `message-id:`, `addressed:` match one field;
/// `is:read`, `is:unread`, `has:attachment`, `larger:10k`, `smaller:1M`; `"quoted phrases"`;
/// a leading `!` or `-` negates a term. Every term must match; case does not matter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    terms: Vec<(bool, Term)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Term {
    Field(Field, String),
    Read(bool),
    HasAttachment,
    HasInline,
    /// Received before (or after) this Unix time.
    Before(i64),
    After(i64),
    Larger(u64),
    Smaller(u64),
    Word(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    To,
    From,
    Cc,
    Bcc,
    ReplyTo,
    Subject,
    MessageId,
    Addressed,
}

/// A day, `YYYY/MM/DD` or `YYYY-MM-DD` (UTC midnight), as Unix seconds.
fn day(s: &str) -> Option<i64> {
    let mut parts = s.split(['/', '-']);
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let (y, m, d): (i64, u32, u32) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    if !(1..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some((era * 146_097 + doe - 719_468) * 86_400)
}

fn unix(t: SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn size_value(s: &str) -> Option<u64> {
    let s = s.to_ascii_lowercase();
    let (digits, unit) = if let Some(d) = s.strip_suffix("mb").or_else(|| s.strip_suffix('m')) {
        (d, 1u64 << 20)
    } else if let Some(d) = s.strip_suffix("kb").or_else(|| s.strip_suffix('k')) {
        (d, 1 << 10)
    } else {
        (s.as_str(), 1)
    };
    let n: f64 = digits.parse().ok()?;
    (n >= 0.0).then_some((n * unit as f64) as u64)
}

impl Query {
    /// The longest query [`Query::parse_limited`] takes, and its most terms.
    pub const MAX_LEN: usize = 1024;
    /// See [`Query::MAX_LEN`].
    pub const MAX_TERMS: usize = 32;

    /// Parses a query from a client: `None` if it is longer than [`Query::MAX_LEN`] bytes or
    /// has more than [`Query::MAX_TERMS`] terms (each term costs a pass over the store).
    pub fn parse_limited(query: &str) -> Option<Self> {
        if query.len() > Self::MAX_LEN {
            return None;
        }
        let q = Self::parse(query);
        (q.terms.len() <= Self::MAX_TERMS).then_some(q)
    }

    /// Parses a query (anything parses: an unknown `key:value` is a word).
    pub fn parse(query: &str) -> Self {
        let mut terms = Vec::new();
        for token in tokens(query) {
            let (negated, token) = match token.strip_prefix(['!', '-']) {
                Some(rest) if !rest.is_empty() => (true, rest.to_string()),
                _ => (false, token),
            };
            let lower = token.to_lowercase();
            let term = match lower.split_once(':') {
                Some(("to", v)) => Term::Field(Field::To, v.to_string()),
                Some(("from", v)) => Term::Field(Field::From, v.to_string()),
                Some(("cc", v)) => Term::Field(Field::Cc, v.to_string()),
                Some(("bcc", v)) => Term::Field(Field::Bcc, v.to_string()),
                Some(("reply-to", v)) => Term::Field(Field::ReplyTo, v.to_string()),
                Some(("subject", v)) => Term::Field(Field::Subject, v.to_string()),
                Some(("message-id", v)) => Term::Field(Field::MessageId, v.to_string()),
                Some(("addressed", v)) => Term::Field(Field::Addressed, v.to_string()),
                Some(("is", "read")) => Term::Read(true),
                Some(("is", "unread")) => Term::Read(false),
                Some(("has", "attachment" | "attachments")) => Term::HasAttachment,
                Some(("has", "inline" | "inlines")) => Term::HasInline,
                Some(("before", v)) if day(v).is_some() => Term::Before(day(v).unwrap_or_default()),
                Some(("after", v)) if day(v).is_some() => Term::After(day(v).unwrap_or_default()),
                Some(("larger", v)) if size_value(v).is_some() => {
                    Term::Larger(size_value(v).unwrap_or_default())
                }
                Some(("smaller", v)) if size_value(v).is_some() => {
                    Term::Smaller(size_value(v).unwrap_or_default())
                }
                _ => Term::Word(lower),
            };
            if matches!(&term, Term::Word(w) | Term::Field(_, w) if w.is_empty()) {
                continue;
            }
            terms.push((negated, term));
        }
        Self { terms }
    }

    /// True if the query has no term (it matches everything).
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Whether `m` matches every term.
    pub fn matches(&self, m: &Captured) -> bool {
        self.terms.iter().all(|(negated, term)| {
            let hit = match term {
                Term::Field(field, v) => field_matches(m, *field, v),
                Term::Read(read) => m.is_read() == *read,
                Term::HasAttachment => m.summary.parts.iter().any(|p| !p.inline),
                Term::HasInline => m.summary.parts.iter().any(|p| p.inline),
                Term::Before(t) => unix(m.created) <= *t,
                Term::After(t) => unix(m.created) >= *t,
                Term::Larger(n) => m.raw.len() as u64 > *n,
                Term::Smaller(n) => (m.raw.len() as u64) < *n,
                Term::Word(w) => m.search_text.contains(w.as_str()),
            };
            hit != *negated
        })
    }
}

/// Splits a query on spaces, keeping `"quoted phrases"` whole (without the quotes).
fn tokens(query: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in query.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn contains(haystack: &str, needle: &str) -> bool {
    haystack.to_lowercase().contains(needle)
}

fn any_mailbox(list: &[Mailbox], v: &str) -> bool {
    list.iter()
        .any(|a| contains(&a.address, v) || contains(&a.name, v))
}

fn field_matches(m: &Captured, field: Field, v: &str) -> bool {
    let s = &m.summary;
    // Envelope-only recipients are in `bcc` (see `summarize`).
    match field {
        Field::To => any_mailbox(&s.to, v),
        Field::From => {
            any_mailbox(std::slice::from_ref(&s.from), v)
                || m.envelope.sender().is_some_and(|a| contains(&a, v))
        }
        Field::Cc => any_mailbox(&s.cc, v),
        Field::Bcc => any_mailbox(&s.bcc, v),
        Field::ReplyTo => any_mailbox(&s.reply_to, v),
        Field::Subject => contains(&s.subject, v),
        Field::MessageId => contains(&s.message_id, v),
        Field::Addressed => {
            any_mailbox(std::slice::from_ref(&s.from), v)
                || any_mailbox(&s.to, v)
                || any_mailbox(&s.cc, v)
                || any_mailbox(&s.bcc, v)
                || any_mailbox(&s.reply_to, v)
        }
    }
}

/// What a plain word is searched in: sender, recipients, subject, and the text (lower case),
/// made once when the message arrives, at most [`SEARCH_TEXT`] bytes.
fn search_text(s: &Summary, text: &str) -> String {
    let mut t = String::new();
    for a in std::iter::once(&s.from)
        .chain(&s.to)
        .chain(&s.cc)
        .chain(&s.bcc)
    {
        t.push_str(&a.name);
        t.push(' ');
        t.push_str(&a.address);
        t.push(' ');
    }
    t.push_str(&s.subject);
    t.push(' ');
    t.push_str(text);
    let mut t = t.to_lowercase();
    if t.len() > SEARCH_TEXT {
        let mut end = SEARCH_TEXT;
        while !t.is_char_boundary(end) {
            end -= 1;
        }
        t.truncate(end);
    }
    t
}

/// Counters since start (Mailpit's `RuntimeStats`).
#[derive(Debug, Default)]
struct Stats {
    accepted: AtomicU64,
    accepted_bytes: AtomicU64,
    rejected: AtomicU64,
    deleted: AtomicU64,
    dropped: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    /// Oldest first.
    messages: VecDeque<Arc<Captured>>,
    bytes: usize,
}

/// Mailpit's chaos triggers: refuse MAIL (`sender`), RCPT (`recipient`) or AUTH
/// (`authentication`) with `code`, each with a probability in percent. Random by design (the
/// deterministic faults are [`Faults`](crate::faults::Faults)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chaos {
    /// At MAIL: `(code, probability)`.
    pub sender: (u16, u8),
    /// At RCPT.
    pub recipient: (u16, u8),
    /// At AUTH (when this handler answers AUTH).
    pub authentication: (u16, u8),
}

impl Default for Chaos {
    fn default() -> Self {
        Self {
            sender: (451, 0),
            recipient: (451, 0),
            authentication: (535, 0),
        }
    }
}

fn chaos_reply((code, probability): (u16, u8), what: &str) -> Result<(), Reply> {
    if probability > 0 && fastrand::u8(0..100) < probability {
        let status = if code >= 500 { (5, 7, 1) } else { (4, 7, 1) };
        return Err(Reply::new(
            code,
            Some(EnhancedStatus::new(status.0, status.1, status.2)),
            format!("Chaos {what} error"),
        ));
    }
    Ok(())
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    max_messages: usize,
    max_bytes: usize,
    events: broadcast::Sender<CaptureEvent>,
    stats: Stats,
    chaos: Mutex<Chaos>,
    started: std::time::Instant,
}

/// A bounded in-memory store of received mail: at most [`Capture::max_messages`] messages
/// (10,000 by default) and [`Capture::max_bytes`] bytes (256 MiB), the oldest dropped first.
/// Cheap to clone: clones share the store. As a [`Handler`] it accepts every message and
/// stores it; wrap it in a [`FaultHandler`](crate::faults::FaultHandler) to refuse some.
///
/// ```
/// # async fn run() -> Result<(), smtp_server::Error> {
/// use smtp_server::{Capture, Server};
/// use smtp_server::capture::Query;
///
/// let capture = Capture::new();
/// let server = Server::builder().listen("127.0.0.1:0").handler(capture.clone()).bind().await?;
/// let handle = server.spawn();
/// // ... send mail to handle.local_addr() ...
/// let arrived = capture
///     .wait_for(&Query::parse("to:ann@example.com"), 1, std::time::Duration::from_secs(5))
///     .await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Capture {
    shared: Arc<Shared>,
}

impl Default for Capture {
    fn default() -> Self {
        Self::new()
    }
}

impl Capture {
    /// An empty store with the default limits.
    pub fn new() -> Self {
        Self::with_limits(10_000, 256 << 20)
    }

    /// An empty store that keeps at most `max_messages` messages and `max_bytes` bytes (raw
    /// size plus about 1 KB each for the summary), dropping the oldest.
    pub fn with_limits(max_messages: usize, max_bytes: usize) -> Self {
        let (events, _) = broadcast::channel(1024);
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                max_messages: max_messages.max(1),
                max_bytes: max_bytes.max(1),
                events,
                stats: Stats::default(),
                chaos: Mutex::new(Chaos::default()),
                started: std::time::Instant::now(),
            }),
        }
    }

    /// The message limit.
    pub fn max_messages(&self) -> usize {
        self.shared.max_messages
    }

    /// The byte limit.
    pub fn max_bytes(&self) -> usize {
        self.shared.max_bytes
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores a message (what the handler does with each message it accepts).
    pub fn insert(
        &self,
        id: String,
        envelope: Envelope,
        session: SessionInfo,
        raw: Bytes,
    ) -> Arc<Captured> {
        // A copy of exactly this size: the bytes may be a slice of a larger buffer (a
        // connection's read buffer), which would stay alive, unaccounted, as long as the
        // message is kept.
        let raw = Bytes::copy_from_slice(&raw);
        let summary = summarize(&raw, &envelope);
        let text = MessageParser::default()
            .parse(&raw[..])
            .and_then(|m| m.body_text(0).map(|t| t.into_owned()))
            .unwrap_or_default();
        let search_text = search_text(&summary, &text);
        let message = Arc::new(Captured {
            id,
            created: SystemTime::now(),
            envelope,
            session,
            raw,
            read: AtomicBool::new(false),
            summary,
            search_text,
        });
        let stats = &self.shared.stats;
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        stats
            .accepted_bytes
            .fetch_add(message.raw.len() as u64, Ordering::Relaxed);
        // Events are sent under the lock, so that subscribers see them in the store's order.
        let mut state = self.state();
        state.bytes += message.cost();
        state.messages.push_back(Arc::clone(&message));
        let _ = self
            .shared
            .events
            .send(CaptureEvent::New(message.id.clone()));
        while state.messages.len() > self.shared.max_messages
            || (state.bytes > self.shared.max_bytes && state.messages.len() > 1)
        {
            let Some(old) = state.messages.pop_front() else {
                break;
            };
            state.bytes -= old.cost();
            stats.dropped.fetch_add(1, Ordering::Relaxed);
            let _ = self
                .shared
                .events
                .send(CaptureEvent::Deleted(old.id.clone()));
        }
        drop(state);
        message
    }

    /// Every message, newest first.
    pub fn messages(&self) -> Vec<Arc<Captured>> {
        self.state().messages.iter().rev().cloned().collect()
    }

    /// The messages that match `query`, newest first.
    pub fn search(&self, query: &Query) -> Vec<Arc<Captured>> {
        let all = self.messages();
        if query.is_empty() {
            return all;
        }
        all.into_iter().filter(|m| query.matches(m)).collect()
    }

    /// The message with this id.
    pub fn get(&self, id: &str) -> Option<Arc<Captured>> {
        self.state().messages.iter().find(|m| m.id == id).cloned()
    }

    /// The newest message.
    pub fn latest(&self) -> Option<Arc<Captured>> {
        self.state().messages.back().cloned()
    }

    /// Messages held, and how many of them are unread.
    pub fn counts(&self) -> (usize, usize) {
        let state = self.state();
        let unread = state.messages.iter().filter(|m| !m.is_read()).count();
        (state.messages.len(), unread)
    }

    /// Bytes held (as counted against the limit).
    pub fn bytes(&self) -> usize {
        self.state().bytes
    }

    /// Deletes these messages (unknown ids are ignored); returns how many were deleted.
    pub fn delete(&self, ids: &[String]) -> usize {
        let ids: std::collections::HashSet<&str> = ids.iter().map(String::as_str).collect();
        let mut state = self.state();
        let (gone, kept): (Vec<_>, Vec<_>) = state
            .messages
            .drain(..)
            .partition(|m| ids.contains(m.id.as_str()));
        state.messages = kept.into();
        state.bytes -= gone.iter().map(|m| m.cost()).sum::<usize>();
        for m in &gone {
            let _ = self.shared.events.send(CaptureEvent::Deleted(m.id.clone()));
        }
        drop(state);
        self.shared
            .stats
            .deleted
            .fetch_add(gone.len() as u64, Ordering::Relaxed);
        gone.len()
    }

    /// Deletes every message.
    pub fn clear(&self) {
        let n = {
            let mut state = self.state();
            let n = state.messages.len();
            state.messages.clear();
            state.bytes = 0;
            n
        };
        self.shared
            .stats
            .deleted
            .fetch_add(n as u64, Ordering::Relaxed);
        let _ = self.shared.events.send(CaptureEvent::Truncated);
    }

    /// A live feed of changes. A receiver that falls more than 1,024 events behind misses some
    /// (and is told so by `broadcast`'s `Lagged`).
    pub fn subscribe(&self) -> broadcast::Receiver<CaptureEvent> {
        self.shared.events.subscribe()
    }

    /// Waits until at least `count` messages match `query`, at most `timeout`: `Ok` with the
    /// matches (newest first), or `Err` with what did match when the time ran out.
    pub async fn wait_for(
        &self,
        query: &Query,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<Arc<Captured>>, Vec<Arc<Captured>>> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut events = self.subscribe();
        loop {
            let found = self.search(query);
            if found.len() >= count {
                return Ok(found);
            }
            // Any event (or a lag) may change the answer: look again.
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Ok(_) | Err(broadcast::error::RecvError::Lagged(_))) => {}
                Ok(Err(broadcast::error::RecvError::Closed)) | Err(_) => {
                    let found = self.search(query);
                    return if found.len() >= count {
                        Ok(found)
                    } else {
                        Err(found)
                    };
                }
            }
        }
    }

    /// The chaos triggers in force.
    pub fn chaos(&self) -> Chaos {
        *self.shared.chaos.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the chaos triggers.
    pub fn set_chaos(&self, chaos: Chaos) {
        *self.shared.chaos.lock().unwrap_or_else(|e| e.into_inner()) = chaos;
    }

    /// Counters since start: (accepted, accepted bytes, refused, deleted, dropped for the
    /// limits), and the time since start.
    pub fn stats(&self) -> CaptureStats {
        let s = &self.shared.stats;
        CaptureStats {
            accepted: s.accepted.load(Ordering::Relaxed),
            accepted_bytes: s.accepted_bytes.load(Ordering::Relaxed),
            refused: s.rejected.load(Ordering::Relaxed),
            deleted: s.deleted.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
            uptime: self.shared.started.elapsed(),
        }
    }
}

/// [`Capture::stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CaptureStats {
    /// Messages stored.
    pub accepted: u64,
    /// Their bytes.
    pub accepted_bytes: u64,
    /// Messages refused by chaos triggers.
    pub refused: u64,
    /// Messages deleted by clients.
    pub deleted: u64,
    /// Messages dropped to stay within the limits.
    pub dropped: u64,
    /// Time since the store was made.
    pub uptime: Duration,
}

#[async_trait]
impl Handler for Capture {
    async fn mail(
        &self,
        _: &mut Context,
        _: &ReversePath<'_>,
        _: &MailParams<'_>,
    ) -> Result<(), Reply> {
        let refused = chaos_reply(self.chaos().sender, "sender");
        if refused.is_err() {
            self.shared.stats.rejected.fetch_add(1, Ordering::Relaxed);
        }
        refused
    }

    async fn rcpt(
        &self,
        _: &mut Context,
        _: &ForwardPath<'_>,
        _: &RcptParams<'_>,
    ) -> Result<(), Reply> {
        let refused = chaos_reply(self.chaos().recipient, "recipient");
        if refused.is_err() {
            self.shared.stats.rejected.fetch_add(1, Ordering::Relaxed);
        }
        refused
    }

    async fn auth(&self, _: &mut Context, _: &smtp_proto::Credentials) -> Result<String, Reply> {
        chaos_reply(self.chaos().authentication, "authentication")?;
        Err(Reply::AUTH_INVALID)
    }

    async fn data(&self, ctx: &mut Context, body: Body) -> Result<(), Reply> {
        let message = body.collect().await?;
        if message.raw().len() >= self.shared.max_bytes {
            return Err(Reply::new(
                552,
                Some(EnhancedStatus::new(5, 3, 4)),
                "Message too big for the capture store",
            ));
        }
        let (info, env) = (ctx.session(), ctx.envelope());
        let id = info
            .queue_id
            .clone()
            .unwrap_or_else(crate::handler::queue_id);
        self.insert(id, env.clone(), info.clone(), message.raw().clone());
        Ok(())
    }
}

/// A parsed summary is computed once per message; tests of the store and the query.
#[cfg(test)]
mod tests {
    use super::*;

    fn store(capture: &Capture, id: &str, raw: &str) -> Arc<Captured> {
        let mut env = Envelope::default();
        env.recipients.push(smtp_proto::Recipient {
            path: ForwardPath::Mailbox(smtp_proto::Mailbox::parse("hidden@bcc.example").unwrap()),
            params: Default::default(),
        });
        capture.insert(
            id.into(),
            env,
            SessionInfo::default(),
            Bytes::from(raw.to_string()),
        )
    }

    const MAIL: &str = "From: Ann <ann@example.com>\r\nTo: bob@example.net, Carol <carol@example.org>\r\n\
        Subject: Quarterly report\r\nMessage-ID: <q1@example.com>\r\n\r\nNumbers inside.\r\n";

    #[test]
    fn summaries() {
        let c = Capture::new();
        let m = store(&c, "A", MAIL);
        let s = m.summary();
        assert_eq!(
            s.from,
            Mailbox {
                name: "Ann".into(),
                address: "ann@example.com".into()
            }
        );
        assert_eq!(s.to.len(), 2);
        assert_eq!(s.subject, "Quarterly report");
        assert_eq!(s.message_id, "q1@example.com");
        assert_eq!(s.snippet, "Numbers inside.");
    }

    #[test]
    fn queries() {
        let c = Capture::new();
        store(&c, "A", MAIL);
        store(
            &c,
            "B",
            "From: x@y\r\nSubject: other\r\n\r\nhello world\r\n",
        );
        let ids = |q: &str| -> Vec<String> {
            c.search(&Query::parse(q))
                .iter()
                .map(|m| m.id().to_string())
                .collect()
        };
        assert_eq!(ids(""), ["B", "A"]);
        assert_eq!(ids("to:carol"), ["A"]);
        assert_eq!(ids("TO:CAROL@EXAMPLE.ORG"), ["A"]);
        // Envelope-only recipients are blind copies (as Mailpit).
        assert_eq!(ids("to:hidden@bcc.example"), Vec::<String>::new());
        assert_eq!(ids("bcc:hidden@bcc.example"), ["B", "A"]);
        assert_eq!(ids("addressed:hidden"), ["B", "A"]);
        assert_eq!(ids("after:2000/01/01 before:2999-12-31"), ["B", "A"]);
        assert_eq!(ids("before:2000/01/01"), Vec::<String>::new());
        assert_eq!(ids("has:inline"), Vec::<String>::new());
        assert_eq!(day("1970/01/02"), Some(86_400));
        assert_eq!(day("2000-03-01"), Some(951_868_800));
        assert_eq!(ids("from:ann subject:report"), ["A"]);
        assert_eq!(ids("subject:\"quarterly report\""), ["A"]);
        assert_eq!(ids("!subject:report"), ["B"]);
        assert_eq!(ids("-from:ann"), ["B"]);
        assert_eq!(ids("hello"), ["B"]);
        assert_eq!(ids("numbers"), ["A"]);
        assert_eq!(ids("is:unread"), ["B", "A"]);
        c.get("A").unwrap().set_read(true);
        assert_eq!(ids("is:read"), ["A"]);
        assert_eq!(ids("larger:1k"), Vec::<String>::new());
        assert_eq!(ids("smaller:1k"), ["B", "A"]);
        assert_eq!(ids("message-id:q1@"), ["A"]);
    }

    #[test]
    fn limits_drop_the_oldest() {
        let c = Capture::with_limits(2, usize::MAX);
        let mut feed = c.subscribe();
        for id in ["1", "2", "3"] {
            store(&c, id, MAIL);
        }
        let ids: Vec<String> = c.messages().iter().map(|m| m.id().to_string()).collect();
        assert_eq!(ids, ["3", "2"]);
        assert_eq!(c.stats().dropped, 1);
        let mut deleted = Vec::new();
        while let Ok(e) = feed.try_recv() {
            if let CaptureEvent::Deleted(id) = e {
                deleted.push(id);
            }
        }
        assert_eq!(deleted, ["1"]);
        // Bytes: one message's cost fits, a second does not.
        let cost = c.get("3").unwrap().cost();
        let c = Capture::with_limits(100, cost + 10);
        store(&c, "a", MAIL);
        store(&c, "b", MAIL);
        assert_eq!(c.counts().0, 1);
        assert!(c.bytes() <= cost + 10);
    }

    #[test]
    fn delete_and_clear() {
        let c = Capture::new();
        store(&c, "A", MAIL);
        store(&c, "B", MAIL);
        assert_eq!(c.delete(&["A".into(), "nope".into()]), 1);
        assert_eq!(c.counts(), (1, 1));
        c.clear();
        assert_eq!(c.counts(), (0, 0));
        assert_eq!(c.bytes(), 0);
    }

    #[tokio::test]
    async fn wait_for_returns_when_enough_arrive_or_times_out() {
        let c = Capture::new();
        let q = Query::parse("subject:report");
        let waiter = {
            let c = c.clone();
            let q = q.clone();
            tokio::spawn(async move { c.wait_for(&q, 2, Duration::from_secs(5)).await })
        };
        store(&c, "A", MAIL);
        store(&c, "B", "Subject: no\r\n\r\n");
        store(&c, "C", MAIL);
        let got = waiter.await.unwrap().unwrap();
        assert_eq!(got.len(), 2);
        let short = c.wait_for(&q, 3, Duration::from_millis(50)).await;
        assert_eq!(short.unwrap_err().len(), 2, "what did arrive");
    }
}
