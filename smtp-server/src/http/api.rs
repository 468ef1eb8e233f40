//! The routes. Field names, shapes and status codes follow Mailpit's API v1 (its errors are
//! plain text; success is always 200, which its clients require).
// An early return of a whole response is the point of these helpers (axum's own extractors
// reject the same way); the size of `Response` does not matter at these rates.
#![allow(clippy::result_large_err)]

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query as UrlQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::HttpServer;
use crate::faults::{DropPoint, Faults, Step};
use crate::handlers::capture::{Capture, CaptureEvent, Captured, Chaos, Mailbox, Query};

/// The value of a `Result<_, Response>`, or that response returned from the handler.
macro_rules! or_respond {
    ($result:expr) => {
        match $result {
            Ok(value) => value,
            Err(response) => return response,
        }
    };
}

#[derive(Clone)]
struct App {
    server: Arc<HttpServer>,
    shutdown: CancellationToken,
    /// Requests that may be held open: waits, event streams (beyond, 503).
    waits: Arc<tokio::sync::Semaphore>,
    streams: Arc<tokio::sync::Semaphore>,
}

/// Waits held open at once.
const MAX_WAITS: usize = 128;
/// Event streams open at once.
const MAX_STREAMS: usize = 64;

pub(super) fn router(server: HttpServer) -> Router {
    router_with_shutdown(server, CancellationToken::new())
}

/// The page's policy: its own script and style only; frames only from us (the sandboxed
/// message view); nothing else.
const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; frame-src 'self'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

/// A message's HTML: a sandbox (no scripts, no same-origin, no forms, no popups), no fetches
/// but inline images and styles.
const VIEW_CSP: &str = "sandbox; default-src 'none'; img-src data: cid:; style-src 'unsafe-inline'; \
    font-src data:; frame-ancestors 'self'";

pub(super) fn router_with_shutdown(server: HttpServer, shutdown: CancellationToken) -> Router {
    let app = App {
        server: Arc::new(server),
        shutdown,
        waits: Arc::new(tokio::sync::Semaphore::new(MAX_WAITS)),
        streams: Arc::new(tokio::sync::Semaphore::new(MAX_STREAMS)),
    };
    Router::new()
        .route("/", get(page))
        .route("/app.js", get(script))
        .route("/app.css", get(style))
        .route("/livez", axum::routing::any(ok_empty))
        .route("/readyz", axum::routing::any(ok_empty))
        .route("/metrics", get(metrics))
        .route(
            "/api/v1/messages",
            get(list).delete(delete_messages).put(set_read),
        )
        .route("/api/v1/search", get(search).delete(delete_search))
        .route("/api/v1/message/{id}", get(message))
        .route("/api/v1/message/{id}/headers", get(headers))
        .route("/api/v1/message/{id}/raw", get(raw))
        .route("/api/v1/message/{id}/part/{part}", get(part))
        .route("/api/v1/info", get(info))
        .route("/api/v1/webui", get(webui))
        .route("/api/v1/chaos", get(get_chaos).put(put_chaos))
        .route("/api/v1/wait", get(wait))
        .route("/api/v1/events", get(events))
        .route(
            "/api/v1/faults",
            get(get_faults).put(put_faults).delete(delete_faults),
        )
        .route("/view/{file}", get(view))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(preflight))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(app)
}

/// `OPTIONS` on the API: 200 with an empty body, as Mailpit answers a CORS preflight.
async fn preflight(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    if request.method() == axum::http::Method::OPTIONS && request.uri().path().starts_with("/api/")
    {
        return text(StatusCode::OK, "");
    }
    next.run(request).await
}

/// On every response: no sniffing a type into HTML, no referrer leaving.
async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        );
    }
    response
}

fn text(status: StatusCode, body: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

async fn not_found() -> Response {
    text(StatusCode::NOT_FOUND, "404 page not found")
}

async fn ok_empty() -> StatusCode {
    StatusCode::OK
}

fn ok() -> Response {
    text(StatusCode::OK, "ok")
}

/// A client's query, or the 400 for one too long to run on every message.
fn client_query(q: &str) -> Result<Query, Response> {
    Query::parse_limited(q).ok_or_else(|| {
        bad_request(format!(
            "Error: query longer than {} bytes or {} terms",
            Query::MAX_LEN,
            Query::MAX_TERMS
        ))
    })
}

/// A JSON body with every object key in lower case: Mailpit (Go) matches field names without
/// regard to case, and its clients rely on it (`{"ids": [...]}` must not mean "all").
fn lower_keys(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), lower_keys(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(lower_keys).collect()),
        v => v,
    }
}

/// Decodes a JSON body whatever the case of its keys (the struct names them in lower case).
fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    serde_json::from_value(lower_keys(v)).map_err(|e| e.to_string())
}

fn bad_request(message: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message.into(),
    )
        .into_response()
}

impl App {
    /// The store, or the 404 every API route gives without one.
    fn capture(&self) -> Result<&Capture, Response> {
        self.server.capture.as_ref().ok_or_else(|| {
            text(
                StatusCode::NOT_FOUND,
                "404 page not found (no capture store: --handler capture)",
            )
        })
    }
}

// ---- the page

async fn page(State(app): State<App>) -> Response {
    if app.server.capture.is_none() {
        return text(
            StatusCode::NOT_FOUND,
            "404 page not found (no capture store: --handler capture)",
        );
    }
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, PAGE_CSP),
        ],
        include_str!("ui/index.html"),
    )
        .into_response()
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("ui/app.js"),
    )
        .into_response()
}

async fn style() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("ui/app.css"),
    )
        .into_response()
}

/// OpenMetrics to whoever asks for it (Prometheus does), Prometheus's text format 0.0.4
/// otherwise (curl, promtool).
async fn metrics(State(app): State<App>, request_headers: axum::http::HeaderMap) -> Response {
    let Some(m) = &app.server.metrics else {
        return not_found().await;
    };
    if let Some(c) = &app.server.capture {
        m.capture_dropped_total(c.stats().dropped);
    }
    let openmetrics = request_headers.get_all(header::ACCEPT).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.contains("application/openmetrics-text"))
    });
    if openmetrics {
        (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            m.render(),
        )
            .into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            m.render_prometheus(),
        )
            .into_response()
    }
}

// ---- JSON shapes (Mailpit's names and key order)

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Address {
    name: String,
    address: String,
}

fn address(m: &Mailbox) -> Address {
    Address {
        name: m.name.clone(),
        address: m.address.clone(),
    }
}

fn addresses(list: &[Mailbox]) -> Vec<Address> {
    list.iter().map(address).collect()
}

use crate::handlers::trace::rfc3339;

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct MessageSummary {
    #[serde(rename = "ID")]
    id: String,
    #[serde(rename = "MessageID")]
    message_id: String,
    read: bool,
    from: Address,
    to: Vec<Address>,
    cc: Vec<Address>,
    bcc: Vec<Address>,
    reply_to: Vec<Address>,
    subject: String,
    created: String,
    username: String,
    tags: Vec<String>,
    size: usize,
    attachments: usize,
    snippet: String,
}

fn summary(m: &Captured) -> MessageSummary {
    let s = m.summary();
    MessageSummary {
        id: m.id().to_string(),
        message_id: s.message_id.clone(),
        read: m.is_read(),
        from: address(&s.from),
        to: addresses(&s.to),
        cc: addresses(&s.cc),
        bcc: addresses(&s.bcc),
        reply_to: addresses(&s.reply_to),
        subject: s.subject.clone(),
        created: rfc3339(m.created()),
        username: m.session().auth.clone().unwrap_or_default(),
        tags: Vec::new(),
        size: m.raw().len(),
        attachments: s.parts.iter().filter(|p| !p.inline).count(),
        snippet: s.snippet.clone(),
    }
}

#[derive(Serialize)]
struct MessagesSummary {
    total: usize,
    unread: usize,
    count: usize,
    messages_count: usize,
    messages_unread: usize,
    start: usize,
    tags: Vec<String>,
    messages: Vec<MessageSummary>,
}

#[derive(Deserialize, Default)]
struct Paging {
    start: Option<String>,
    limit: Option<String>,
    query: Option<String>,
    count: Option<String>,
    timeout: Option<String>,
}

impl Paging {
    /// Mailpit's parsing: a bad or negative `start` is 0; a bad `limit` is 50, 0 is no limit.
    fn window(&self) -> (usize, usize) {
        let start = self
            .start
            .as_deref()
            .and_then(|s| s.parse::<i64>().ok())
            .map_or(0, |n| n.max(0) as usize);
        let limit = match self.limit.as_deref().map(str::parse::<i64>) {
            Some(Ok(0)) => usize::MAX,
            Some(Ok(n)) if n > 0 => n as usize,
            _ => 50,
        };
        (start, limit)
    }
}

fn page_of(capture: &Capture, matched: Vec<Arc<Captured>>, paging: &Paging) -> MessagesSummary {
    let (total, unread) = capture.counts();
    let (start, limit) = paging.window();
    let matched_unread = matched.iter().filter(|m| !m.is_read()).count();
    let messages_count = matched.len();
    let messages: Vec<MessageSummary> = matched
        .iter()
        .skip(start)
        .take(limit)
        .map(|m| summary(m))
        .collect();
    MessagesSummary {
        total,
        unread,
        count: messages.len(),
        messages_count,
        messages_unread: matched_unread,
        start,
        tags: Vec::new(),
        messages,
    }
}

// ---- lists, search, delete

async fn list(State(app): State<App>, UrlQuery(paging): UrlQuery<Paging>) -> Response {
    let capture = or_respond!(app.capture());
    Json(page_of(capture, capture.messages(), &paging)).into_response()
}

async fn search(State(app): State<App>, UrlQuery(paging): UrlQuery<Paging>) -> Response {
    let capture = or_respond!(app.capture());
    let q = paging.query.as_deref().unwrap_or_default().trim();
    if q.is_empty() {
        return bad_request("Error: no search query");
    }
    let query = or_respond!(client_query(q));
    let matched = capture.search(&query);
    Json(page_of(capture, matched, &paging)).into_response()
}

#[derive(Deserialize, Default)]
struct Ids {
    #[serde(default)]
    ids: Vec<String>,
}

/// `{"IDs": [...]}` deletes those; no body, an unreadable body or no IDs deletes all (as
/// Mailpit does).
async fn delete_messages(State(app): State<App>, body: Bytes) -> Response {
    let capture = or_respond!(app.capture());
    let ids: Ids = json_body(&body).unwrap_or_default();
    if ids.ids.is_empty() {
        capture.clear();
    } else {
        capture.delete(&ids.ids);
    }
    ok()
}

async fn delete_search(State(app): State<App>, UrlQuery(paging): UrlQuery<Paging>) -> Response {
    let capture = or_respond!(app.capture());
    let q = paging.query.as_deref().unwrap_or_default().trim();
    if q.is_empty() {
        return bad_request("Error: no search query");
    }
    let query = or_respond!(client_query(q));
    let ids: Vec<String> = capture
        .search(&query)
        .iter()
        .map(|m| m.id().to_string())
        .collect();
    capture.delete(&ids);
    ok()
}

#[derive(Deserialize)]
struct ReadRequest {
    #[serde(default)]
    read: bool,
    #[serde(default)]
    ids: Vec<String>,
    #[serde(default)]
    search: String,
}

async fn set_read(State(app): State<App>, body: Bytes) -> Response {
    let capture = or_respond!(app.capture());
    let req: ReadRequest = match json_body(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(e),
    };
    if !req.ids.is_empty() && !req.search.is_empty() {
        return bad_request("You may specify either IDs or a search query, not both");
    }
    let targets = if !req.search.is_empty() {
        capture.search(&or_respond!(client_query(&req.search)))
    } else if req.ids.is_empty() {
        capture.messages()
    } else {
        let ids: std::collections::HashSet<&str> = req.ids.iter().map(String::as_str).collect();
        capture
            .messages()
            .into_iter()
            .filter(|m| ids.contains(m.id()))
            .collect()
    };
    for m in targets {
        m.set_read(req.read);
    }
    ok()
}

// ---- one message

#[derive(Deserialize, Default)]
struct MessageQuery {
    query: Option<String>,
    dl: Option<String>,
}

/// The message by id, or `latest` (the newest, or the newest matching `query`).
fn find(capture: &Capture, id: &str, q: &MessageQuery) -> Result<Arc<Captured>, Response> {
    if id == "latest" {
        let found = match q.query.as_deref().map(str::trim) {
            Some(q) if !q.is_empty() => capture.search(&client_query(q)?).into_iter().next(),
            _ => capture.latest(),
        };
        return found.ok_or_else(|| text(StatusCode::NOT_FOUND, "Message not found"));
    }
    capture
        .get(id)
        .ok_or_else(|| text(StatusCode::NOT_FOUND, "404 page not found"))
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Attachment {
    #[serde(rename = "PartID")]
    part_id: String,
    file_name: String,
    content_type: String,
    #[serde(rename = "ContentID")]
    content_id: String,
    size: usize,
}

async fn message(
    State(app): State<App>,
    Path(id): Path<String>,
    UrlQuery(q): UrlQuery<MessageQuery>,
) -> Response {
    let capture = or_respond!(app.capture());
    let m = or_respond!(find(capture, &id, &q));
    m.set_read(true);
    let s = m.summary();
    let parts = |inline: bool| -> Vec<Attachment> {
        s.parts
            .iter()
            .filter(|p| p.inline == inline)
            .map(|p| Attachment {
                part_id: p.id.clone(),
                file_name: p.file_name.clone(),
                content_type: p.content_type.clone(),
                content_id: p.content_id.clone(),
                size: p.size,
            })
            .collect()
    };
    let date = s
        .date
        .and_then(|d| u64::try_from(d).ok())
        .map_or_else(|| m.created(), |d| UNIX_EPOCH + Duration::from_secs(d));
    let env = m.envelope();
    let info = m.session();
    let return_path = env.sender().unwrap_or_else(|| s.from.address.clone());
    // Mailpit's fields, in its order, then ours: the envelope and the session.
    let body = json!({
        "ID": m.id(),
        "MessageID": s.message_id,
        "From": address(&s.from),
        "To": addresses(&s.to),
        "Cc": addresses(&s.cc),
        "Bcc": addresses(&s.bcc),
        "ReplyTo": addresses(&s.reply_to),
        "ReturnPath": return_path,
        "Subject": s.subject,
        "ListUnsubscribe": {"Header": "", "Links": [], "Errors": "", "HeaderPost": ""},
        "Date": rfc3339(date),
        "Tags": [],
        "Username": info.auth.clone().unwrap_or_default(),
        "Text": m.text(),
        "HTML": m.html(),
        "Size": m.raw().len(),
        "Inline": parts(true),
        "Attachments": parts(false),
        "Envelope": {
            "MailFrom": env.sender(),
            "RcptTo": env.recipient_addresses(),
            "Client": info.client_addr().map(|a| a.to_string()),
            "Helo": info.helo,
            "Tls": info.tls.as_ref().map(|t| format!("{} {}", t.protocol, t.cipher)),
            "Auth": info.auth,
            "Listener": info.listener,
        },
    });
    Json(body).into_response()
}

async fn headers(
    State(app): State<App>,
    Path(id): Path<String>,
    UrlQuery(q): UrlQuery<MessageQuery>,
) -> Response {
    let capture = or_respond!(app.capture());
    let m = or_respond!(find(capture, &id, &q));
    // Names in the canonical form (`Message-Id`), sorted, each with its values in order.
    let mut map: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (name, value) in m.headers() {
        map.entry(canonical(&name)).or_default().push(value);
    }
    Json(map).into_response()
}

/// Go's `textproto` canonical form: `message-id` → `Message-Id`.
fn canonical(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        out.push(if upper {
            c.to_ascii_uppercase()
        } else {
            c.to_ascii_lowercase()
        });
        upper = c == '-';
    }
    out
}

async fn raw(
    State(app): State<App>,
    Path(id): Path<String>,
    UrlQuery(q): UrlQuery<MessageQuery>,
) -> Response {
    let capture = or_respond!(app.capture());
    let m = or_respond!(find(capture, &id, &q));
    let mut response = (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "sandbox; default-src 'none'",
            ),
        ],
        m.raw().clone(),
    )
        .into_response();
    if q.dl.as_deref() == Some("1") {
        let value = format!("attachment; filename=\"{}.eml\"", safe_name(m.id()));
        if let Ok(v) = HeaderValue::from_str(&value) {
            response
                .headers_mut()
                .insert(header::CONTENT_DISPOSITION, v);
        }
    }
    response
}

/// `inline; filename="ascii"; filename*=UTF-8''percent-encoded` (RFC 6266 4.3, RFC 8187):
/// the name as it was, for clients that read `filename*`, and a safe ASCII fallback.
fn content_disposition(disposition: &str, name: &str) -> String {
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!(
        "{disposition}; filename=\"{}\"; filename*=UTF-8''{encoded}",
        safe_name(name)
    )
}

/// A file name safe in a header (letters, digits, `.-_` kept; the rest `_`).
fn safe_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

async fn part(State(app): State<App>, Path((id, part)): Path<(String, String)>) -> Response {
    let capture = or_respond!(app.capture());
    let m = or_respond!(find(capture, &id, &MessageQuery::default()));
    let Some((content_type, bytes)) = m.part(&part) else {
        return not_found().await;
    };
    let name = m
        .summary()
        .parts
        .iter()
        .find(|p| p.id == part)
        .map(|p| p.file_name.clone())
        .unwrap_or_default();
    // Only types a browser shows without running anything are served as themselves; the
    // rest (HTML, SVG, XML, scripts, styles, ...) is a download, never a page or a resource
    // of ours.
    let shown = [
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "text/plain",
        "application/pdf",
    ]
    .iter()
    .any(|t| content_type.eq_ignore_ascii_case(t));
    let (content_type, disposition) = if shown {
        (content_type, "inline")
    } else {
        ("application/octet-stream".to_string(), "attachment")
    };
    let mut response = (
        [(
            header::CONTENT_SECURITY_POLICY,
            "sandbox; default-src 'none'",
        )],
        bytes,
    )
        .into_response();
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&content_disposition(disposition, &name)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    response
}

/// `/view/{ID}.html`: the message's HTML in a sandbox; `/view/{ID}.txt`: its text.
async fn view(State(app): State<App>, Path(file): Path<String>) -> Response {
    let capture = or_respond!(app.capture());
    let (id, html) = match (file.strip_suffix(".html"), file.strip_suffix(".txt")) {
        (Some(id), _) => (id, true),
        (_, Some(id)) => (id, false),
        _ => return not_found().await,
    };
    let m = or_respond!(find(capture, id, &MessageQuery::default()));
    if html {
        let body = m.html();
        if body.is_empty() {
            return not_found().await;
        }
        (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CONTENT_SECURITY_POLICY, VIEW_CSP),
            ],
            body,
        )
            .into_response()
    } else {
        (
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (
                    header::CONTENT_SECURITY_POLICY,
                    "sandbox; default-src 'none'",
                ),
            ],
            m.text(),
        )
            .into_response()
    }
}

// ---- info, chaos

async fn info(State(app): State<App>) -> Response {
    let capture = or_respond!(app.capture());
    let (messages, unread) = capture.counts();
    let stats = capture.stats();
    Json(json!({
        "Version": concat!("smtp-server ", env!("CARGO_PKG_VERSION")),
        "LatestVersion": "disabled",
        "Database": "",
        "DatabaseSize": capture.bytes(),
        "Messages": messages,
        "Unread": unread,
        "Tags": {},
        "RuntimeStats": {
            "Uptime": stats.uptime.as_secs(),
            "Memory": capture.bytes(),
            "MessagesDeleted": stats.deleted,
            "SMTPAccepted": stats.accepted,
            "SMTPAcceptedSize": stats.accepted_bytes,
            "SMTPRejected": stats.refused,
            "SMTPIgnored": 0,
        },
    }))
    .into_response()
}

async fn webui(State(app): State<App>) -> Response {
    Json(json!({
        "Label": "",
        "MessageRelay": {"Enabled": false, "SMTPServer": "", "ReturnPath": "", "AllowedRecipients": "",
            "BlockedRecipients": "", "OverrideFrom": "", "PreserveMessageIDs": false, "RecipientAllowlist": ""},
        "SpamAssassin": false,
        "ChaosEnabled": app.server.capture.is_some(),
        "DuplicatesIgnored": false,
        "HideDeleteAllButton": false,
    }))
    .into_response()
}

#[derive(Serialize, Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "PascalCase")]
struct Trigger {
    #[serde(default, alias = "errorcode")]
    error_code: u16,
    #[serde(default, alias = "probability")]
    probability: u8,
}

#[derive(Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct Triggers {
    #[serde(alias = "sender")]
    sender: Option<Trigger>,
    #[serde(alias = "recipient")]
    recipient: Option<Trigger>,
    #[serde(alias = "authentication")]
    authentication: Option<Trigger>,
}

fn triggers(c: Chaos) -> Triggers {
    let t = |(error_code, probability)| {
        Some(Trigger {
            error_code,
            probability,
        })
    };
    Triggers {
        sender: t(c.sender),
        recipient: t(c.recipient),
        authentication: t(c.authentication),
    }
}

async fn get_chaos(State(app): State<App>) -> Response {
    match app.capture() {
        Ok(c) => Json(triggers(c.chaos())).into_response(),
        Err(r) => r,
    }
}

/// Mailpit's rules: a trigger left out goes back to its default (probability 0); a code of
/// 0 is the default code.
async fn put_chaos(State(app): State<App>, body: Bytes) -> Response {
    let capture = or_respond!(app.capture());
    let t: Triggers = match json_body(&body) {
        Ok(t) => t,
        Err(e) => return bad_request(e),
    };
    let defaults = Chaos::default();
    let pick = |t: Option<Trigger>, default: (u16, u8)| -> Result<(u16, u8), Response> {
        let Some(t) = t else {
            return Ok((default.0, 0));
        };
        let code = if t.error_code == 0 {
            default.0
        } else {
            t.error_code
        };
        if !(400..=599).contains(&code) {
            return Err(bad_request("error code must be between 400 and 599"));
        }
        if t.probability > 100 {
            return Err(bad_request("probability must be between 0 and 100"));
        }
        Ok((code, t.probability))
    };
    let chaos = match (
        pick(t.sender, defaults.sender),
        pick(t.recipient, defaults.recipient),
        pick(t.authentication, defaults.authentication),
    ) {
        (Ok(sender), Ok(recipient), Ok(authentication)) => Chaos {
            sender,
            recipient,
            authentication,
        },
        (Err(r), _, _) | (_, Err(r), _) | (_, _, Err(r)) => return r,
    };
    capture.set_chaos(chaos);
    Json(triggers(chaos)).into_response()
}

// ---- ours: wait, events, faults

/// `GET /api/v1/wait?query=&count=1&timeout=5`: 200 with the matches once `count` messages
/// match (all messages without a query), else 408 with what did match after `timeout`
/// seconds (at most 300).
async fn wait(State(app): State<App>, UrlQuery(paging): UrlQuery<Paging>) -> Response {
    let capture = or_respond!(app.capture()).clone();
    let count = paging.count.as_deref().map_or(Ok(1), str::parse::<usize>);
    let timeout = paging.timeout.as_deref().map_or(Ok(5.0), str::parse::<f64>);
    let (Ok(count), Ok(timeout)) = (count, timeout) else {
        return bad_request("count must be a number, timeout a number of seconds");
    };
    if !(0.0..=300.0).contains(&timeout) {
        return bad_request("timeout must be between 0 and 300 seconds");
    }
    let query = or_respond!(client_query(paging.query.as_deref().unwrap_or_default()));
    let Ok(_slot) = app.waits.clone().try_acquire_owned() else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "too many waits open");
    };
    let waited = tokio::select! {
        r = capture.wait_for(&query, count, Duration::from_secs_f64(timeout)) => r,
        () = app.shutdown.cancelled() => Err(capture.search(&query)),
    };
    let (status, found) = match waited {
        Ok(found) => (StatusCode::OK, found),
        Err(found) => (StatusCode::REQUEST_TIMEOUT, found),
    };
    // Every match, not a page of them.
    let all = Paging {
        limit: Some("0".into()),
        ..Paging::default()
    };
    (status, Json(page_of(&capture, found, &all))).into_response()
}

/// `GET /api/v1/events`: `new` (a message summary), `delete` (`{"ID": ...}`), `truncate`.
async fn events(State(app): State<App>) -> Response {
    let capture = or_respond!(app.capture()).clone();
    let Ok(slot) = app.streams.clone().try_acquire_owned() else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many event streams open",
        );
    };
    let feed = capture.subscribe();
    let stop = app.shutdown.clone();
    let state = (feed, stop, capture, slot);
    let stream =
        futures_util::stream::unfold(state, |(mut feed, stop, capture, slot)| async move {
            let event = loop {
                let event = tokio::select! {
                    e = feed.recv() => e,
                    () = stop.cancelled() => return None,
                };
                // A message dropped before its event was read is not announced.
                if let Ok(CaptureEvent::New(id)) = &event
                    && capture.get(id).is_none()
                {
                    continue;
                }
                break event;
            };
            let event = match event {
                Ok(CaptureEvent::New(id)) => {
                    let m = capture.get(&id)?;
                    Event::default().event("new").json_data(summary(&m)).ok()?
                }
                Ok(CaptureEvent::Deleted(id)) => Event::default()
                    .event("delete")
                    .json_data(json!({ "ID": id }))
                    .ok()?,
                Ok(CaptureEvent::Truncated) => Event::default().event("truncate").data("null"),
                // Fell behind: the client should reload the list.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    Event::default().event("lagged").data(n.to_string())
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            };
            Some((Ok::<_, Infallible>(event), (feed, stop, capture, slot)))
        });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

#[derive(Serialize, Deserialize, Default)]
struct StepCode {
    step: String,
    code: u16,
}

#[derive(Serialize, Deserialize, Default)]
struct StepCount {
    step: String,
    n: u32,
}

#[derive(Serialize, Deserialize, Default)]
struct StepDelay {
    step: String,
    ms: u64,
}

/// The faults as JSON: `{"reject_recipients": ["*@bad.example"], "temp_fail": [{"step":
/// "rcpt", "code": 452}], "fail_first": [{"step": "data", "n": 2}], "delay": [{"step": "data",
/// "ms": 500}], "drop_connection": "mid_data", "rate_limit": 100}`, every key optional.
#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FaultsJson {
    #[serde(default)]
    reject_recipients: Vec<String>,
    #[serde(default)]
    temp_fail: Vec<StepCode>,
    #[serde(default)]
    fail_first: Vec<StepCount>,
    #[serde(default)]
    delay: Vec<StepDelay>,
    #[serde(default)]
    drop_connection: Option<String>,
    #[serde(default)]
    rate_limit: Option<u32>,
}

fn step(name: &str) -> Result<Step, String> {
    match name {
        "mail" => Ok(Step::Mail),
        "rcpt" => Ok(Step::Rcpt),
        "data" => Ok(Step::Data),
        _ => Err(format!("step {name:?}: use mail, rcpt or data")),
    }
}

fn step_name(s: Step) -> String {
    match s {
        Step::Mail => "mail",
        Step::Rcpt => "rcpt",
        Step::Data => "data",
    }
    .to_string()
}

const DROP_POINTS: [(&str, DropPoint); 4] = [
    ("after_mail", DropPoint::AfterMail),
    ("after_rcpt", DropPoint::AfterRcpt),
    ("mid_data", DropPoint::MidData),
    ("after_data", DropPoint::AfterData),
];

/// The most entries of each fault list, and of delay in all per step.
const MAX_FAULTS: usize = 32;
const MAX_DELAY_MS: u64 = 600_000;

impl FaultsJson {
    fn into_faults(self) -> Result<Faults, String> {
        let lists = [
            self.reject_recipients.len(),
            self.temp_fail.len(),
            self.fail_first.len(),
            self.delay.len(),
        ];
        if lists.iter().any(|&n| n > MAX_FAULTS) {
            return Err(format!("at most {MAX_FAULTS} entries per list"));
        }
        for name in ["mail", "rcpt", "data"] {
            let total: u64 = self
                .delay
                .iter()
                .filter(|d| d.step == name)
                .map(|d| d.ms)
                .fold(0, u64::saturating_add);
            if total > MAX_DELAY_MS {
                return Err(format!("delay: at most {MAX_DELAY_MS} ms in all per step"));
            }
        }
        let mut f = Faults::new();
        for p in self.reject_recipients {
            f = f.reject_recipients(p);
        }
        for t in self.temp_fail {
            if !(400..=499).contains(&t.code) {
                return Err(format!("temp_fail code {}: use a 4xx code", t.code));
            }
            f = f.temp_fail(step(&t.step)?, t.code);
        }
        for t in self.fail_first {
            f = f.fail_first(step(&t.step)?, t.n);
        }
        for t in self.delay {
            f = f.delay(step(&t.step)?, Duration::from_millis(t.ms));
        }
        if let Some(at) = self.drop_connection {
            let point = DROP_POINTS
                .iter()
                .find(|(n, _)| *n == at)
                .map(|p| p.1)
                .ok_or_else(|| {
                    format!(
                        "drop_connection {at:?}: use after_mail, after_rcpt, mid_data or after_data"
                    )
                })?;
            f = f.drop_connection(point);
        }
        if let Some(n) = self.rate_limit {
            f = f.rate_limit(n);
        }
        Ok(f)
    }

    fn from_faults(f: &Faults) -> Self {
        Self {
            reject_recipients: f.reject.clone(),
            temp_fail: f
                .temp_fail
                .iter()
                .map(|&(s, code)| StepCode {
                    step: step_name(s),
                    code,
                })
                .collect(),
            fail_first: f
                .fail_first
                .iter()
                .map(|&(s, n)| StepCount {
                    step: step_name(s),
                    n,
                })
                .collect(),
            delay: f
                .delays
                .iter()
                .map(|&(s, d)| StepDelay {
                    step: step_name(s),
                    ms: d.as_millis() as u64,
                })
                .collect(),
            drop_connection: f.drop_at.and_then(|d| {
                DROP_POINTS
                    .iter()
                    .find(|(_, p)| *p == d)
                    .map(|(n, _)| n.to_string())
            }),
            rate_limit: f.rate_limit,
        }
    }
}

fn faults_handler(app: &App) -> Result<&dyn crate::faults::FaultControl, Response> {
    app.server.faults.as_deref().ok_or_else(|| {
        text(
            StatusCode::NOT_FOUND,
            "404 page not found (no faults: --handler capture)",
        )
    })
}

async fn get_faults(State(app): State<App>) -> Response {
    match faults_handler(&app) {
        Ok(h) => Json(FaultsJson::from_faults(&h.faults())).into_response(),
        Err(r) => r,
    }
}

async fn put_faults(State(app): State<App>, body: Bytes) -> Response {
    let h = or_respond!(faults_handler(&app));
    let parsed: FaultsJson = match serde_json::from_slice(&body) {
        Ok(f) => f,
        Err(e) => return bad_request(e.to_string()),
    };
    match parsed.into_faults() {
        Ok(f) => {
            h.set_faults(f);
            Json(FaultsJson::from_faults(&h.faults())).into_response()
        }
        Err(e) => bad_request(e),
    }
}

async fn delete_faults(State(app): State<App>) -> Response {
    match faults_handler(&app) {
        Ok(h) => {
            h.set_faults(Faults::new());
            ok()
        }
        Err(r) => r,
    }
}
