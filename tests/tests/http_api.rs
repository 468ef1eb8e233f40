//! The capture server's HTTP API as a test in any language sees it: `TestServer::builder()
//! .http()`, mail sent over SMTP, then plain HTTP requests (a raw HTTP/1.1 client here, so
//! nothing is hidden by a client library). Field names and status codes are Mailpit's API v1
//! (the Node `mailpit-api` client runs against the program in `tests/http/run.sh`).

use std::time::Duration;

use smtp_testkit::{Client, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(20);

struct HttpResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl HttpResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One request on its own connection (`Connection: close`), the whole response read.
async fn request(base: &str, method: &str, path: &str, body: Option<&str>) -> HttpResponse {
    request_with(base, method, path, body, &[]).await
}

async fn request_with(
    base: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> HttpResponse {
    let addr = base.trim_start_matches("http://");
    let exchange = async {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        for (name, value) in headers {
            req.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(b) = body {
            req.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                b.len()
            ));
        }
        req.push_str("\r\n");
        req.push_str(body.unwrap_or_default());
        s.write_all(req.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.unwrap();
        raw
    };
    let raw = tokio::time::timeout(WAIT, exchange)
        .await
        .expect("HTTP response in time");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap()[9..12].parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    HttpResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(std::str::from_utf8(&data[..end]).unwrap().trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[end + 2..end + 2 + size]);
        data = &data[end + 2 + size + 2..];
    }
    out
}

async fn send(server: &TestServer, to: &str, message: &str) -> u16 {
    let mut c = Client::connect(server.addr()).await;
    let r = c.send_mail("ann@example.com", &[to], message).await;
    c.quit().await;
    r.code()
}

const MULTIPART: &str = "From: Ann <ann@example.com>\r\nTo: Bob <bob@example.net>\r\n\
Cc: carol@example.org\r\nSubject: Invoice 42\r\nMessage-ID: <inv42@example.com>\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
--b1\r\nContent-Type: text/plain\r\n\r\nPlease find the invoice attached.\r\n\
--b1\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"invoice.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQKJcOkw7zDtsOf\r\n--b1--\r\n";

#[tokio::test]
async fn mailpit_shapes_list_get_headers_raw_part_search_delete() {
    let server = TestServer::builder().http().start().await;
    let base = server.http_url().unwrap();
    assert_eq!(send(&server, "bob@example.net", MULTIPART).await, 250);
    assert_eq!(
        send(
            &server,
            "dave@example.net",
            "Subject: second\r\n\r\nhello world\r\n"
        )
        .await,
        250
    );

    // GET /api/v1/messages: newest first, Mailpit's MessagesSummary.
    let list = request(&base, "GET", "/api/v1/messages", None).await;
    assert_eq!(list.status, 200);
    assert!(
        list.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    let list = list.json();
    for key in [
        "total",
        "unread",
        "count",
        "messages_count",
        "messages_unread",
        "start",
        "tags",
    ] {
        assert!(list.get(key).is_some(), "{key} in {list}");
    }
    assert_eq!(list["total"], 2);
    assert_eq!(list["messages"][0]["Subject"], "second");
    let invoice = &list["messages"][1];
    assert_eq!(invoice["Subject"], "Invoice 42");
    assert_eq!(invoice["MessageID"], "inv42@example.com");
    assert_eq!(invoice["From"]["Name"], "Ann");
    assert_eq!(invoice["From"]["Address"], "ann@example.com");
    assert_eq!(invoice["To"][0]["Address"], "bob@example.net");
    assert_eq!(invoice["Cc"][0]["Address"], "carol@example.org");
    assert_eq!(invoice["Attachments"], 1, "a count in lists");
    assert_eq!(invoice["Read"], false);
    let id = invoice["ID"].as_str().unwrap().to_string();

    // Paging.
    let page = request(&base, "GET", "/api/v1/messages?start=1&limit=1", None)
        .await
        .json();
    assert_eq!(page["count"], 1);
    assert_eq!(page["start"], 1);
    assert_eq!(page["messages"][0]["ID"], id.as_str());

    // GET /api/v1/message/{ID}: the whole message, marked read; our envelope beside.
    let m = request(&base, "GET", &format!("/api/v1/message/{id}"), None)
        .await
        .json();
    assert_eq!(
        m["Text"].as_str().unwrap().trim(),
        "Please find the invoice attached."
    );
    assert_eq!(m["Attachments"][0]["FileName"], "invoice.pdf");
    assert_eq!(m["Attachments"][0]["ContentType"], "application/pdf");
    assert_eq!(m["Envelope"]["RcptTo"][0], "bob@example.net");
    let part_id = m["Attachments"][0]["PartID"].as_str().unwrap().to_string();
    let again = request(&base, "GET", "/api/v1/messages", None).await.json();
    assert_eq!(again["messages"][1]["Read"], true);
    assert_eq!(again["unread"], 1);
    let latest = request(&base, "GET", "/api/v1/message/latest", None)
        .await
        .json();
    assert_eq!(latest["Subject"], "second");

    // Headers, raw source, the attachment's bytes.
    let h = request(&base, "GET", &format!("/api/v1/message/{id}/headers"), None)
        .await
        .json();
    assert_eq!(h["Subject"][0], "Invoice 42");
    assert_eq!(h["Message-Id"][0], "<inv42@example.com>");
    let raw = request(&base, "GET", &format!("/api/v1/message/{id}/raw"), None).await;
    assert!(raw.text().ends_with(MULTIPART), "the source as sent");
    assert!(
        raw.header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    let part = request(
        &base,
        "GET",
        &format!("/api/v1/message/{id}/part/{part_id}"),
        None,
    )
    .await;
    assert_eq!(part.status, 200);
    assert_eq!(part.header("content-type"), Some("application/pdf"));
    assert!(part.body.starts_with(b"%PDF-1.4"));

    // Search: fields, words, negation; `+` is a space (form encoding).
    for (q, want) in [
        ("to:bob", 1),
        ("from:ann+subject:invoice", 1),
        ("hello", 1),
        ("!subject:invoice", 1),
        // Both were opened (`latest` marks read too, as Mailpit).
        ("is:unread", 0),
        ("is:read", 2),
        ("has:attachment", 1),
        ("nothing-matches", 0),
    ] {
        let r = request(&base, "GET", &format!("/api/v1/search?query={q}"), None)
            .await
            .json();
        assert_eq!(r["messages_count"], want, "{q}");
        assert_eq!(r["total"], 2, "{q}: the mailbox total");
    }
    assert_eq!(
        request(&base, "GET", "/api/v1/search?query=", None)
            .await
            .status,
        400
    );
    // A query too long to run against every message is refused.
    let long = "word+".repeat(40);
    let r = request(&base, "GET", &format!("/api/v1/search?query={long}"), None).await;
    assert_eq!(r.status, 400);

    // Not found: Mailpit's plain-text 404s.
    let missing = request(&base, "GET", "/api/v1/message/NOPE", None).await;
    assert_eq!(
        (missing.status, missing.text().as_str()),
        (404, "404 page not found")
    );

    // Delete by search, by ID, all.
    assert_eq!(
        request(&base, "DELETE", "/api/v1/search?query=hello", None)
            .await
            .status,
        200
    );
    assert_eq!(
        request(&base, "GET", "/api/v1/messages", None).await.json()["total"],
        1
    );
    // Field names match whatever their case, as Mailpit's (Go's) do: `ids` must not mean
    // "delete all".
    let body = format!("{{\"ids\":[\"{id}\"]}}");
    assert_eq!(
        request(&base, "DELETE", "/api/v1/messages", Some(&body))
            .await
            .text(),
        "ok"
    );
    assert_eq!(
        request(&base, "GET", "/api/v1/messages", None).await.json()["total"],
        0
    );
    send(&server, "x@example.net", "Subject: x\r\n\r\nx\r\n").await;
    assert_eq!(
        request(&base, "DELETE", "/api/v1/messages", None)
            .await
            .status,
        200
    );
    let info = request(&base, "GET", "/api/v1/info", None).await.json();
    assert_eq!(info["Messages"], 0);
    assert_eq!(info["RuntimeStats"]["SMTPAccepted"], 3);
    assert_eq!(request(&base, "GET", "/livez", None).await.status, 200);
    assert_eq!(request(&base, "GET", "/readyz", None).await.status, 200);
}

/// A captured message is hostile input: its HTML is served only inside a CSP sandbox, its
/// active parts as downloads, its source as inert text; the page itself allows no inline
/// script. (The browser test, `tests/http/browser.mjs`, proves nothing runs in Chromium.)
#[tokio::test]
async fn hostile_messages_are_served_inert() {
    let server = TestServer::builder().http().start().await;
    let base = server.http_url().unwrap();
    let hostile = "Subject: <img src=x onerror=alert(1)>\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/html\r\n\r\n\
<script>alert(1)</script><img src=x onerror=\"alert(2)\">\r\n--b\r\n\
Content-Type: image/svg+xml\r\nContent-Disposition: attachment; filename=\"x.svg\"\r\n\r\n\
<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(3)\"/>\r\n--b--\r\n";
    assert_eq!(send(&server, "bob@example.net", hostile).await, 250);
    let list = request(&base, "GET", "/api/v1/messages", None).await.json();
    let id = list["messages"][0]["ID"].as_str().unwrap().to_string();
    // JSON carries the subject as data; the page sets it as text.
    assert_eq!(
        list["messages"][0]["Subject"],
        "<img src=x onerror=alert(1)>"
    );

    let view = request(&base, "GET", &format!("/view/{id}.html"), None).await;
    assert_eq!(view.status, 200);
    let csp = view.header("content-security-policy").unwrap();
    assert!(csp.starts_with("sandbox;"), "{csp}");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(!csp.contains("allow-scripts"), "{csp}");
    assert_eq!(view.header("x-content-type-options"), Some("nosniff"));

    let m = request(&base, "GET", &format!("/api/v1/message/{id}"), None)
        .await
        .json();
    let svg = m["Attachments"][0]["PartID"].as_str().unwrap().to_string();
    let part = request(
        &base,
        "GET",
        &format!("/api/v1/message/{id}/part/{svg}"),
        None,
    )
    .await;
    assert_eq!(
        part.header("content-type"),
        Some("application/octet-stream")
    );
    assert!(
        part.header("content-disposition")
            .unwrap()
            .starts_with("attachment")
    );

    let raw = request(&base, "GET", &format!("/api/v1/message/{id}/raw"), None).await;
    assert!(
        raw.header("content-security-policy")
            .unwrap()
            .starts_with("sandbox")
    );

    let page = request(&base, "GET", "/", None).await;
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(
        !page.text().contains("<script>"),
        "no inline script in the page"
    );
}

/// Our additions: wait (200 once enough arrive, 408 with what did), the event stream, faults
/// and Mailpit's chaos, set at run time.
#[tokio::test]
async fn wait_events_faults_and_chaos() {
    let server = TestServer::builder().http().start().await;
    let base = server.http_url().unwrap();

    let timed_out = request(
        &base,
        "GET",
        "/api/v1/wait?query=subject:late&timeout=0.2",
        None,
    )
    .await;
    assert_eq!(timed_out.status, 408);
    assert_eq!(timed_out.json()["messages_count"], 0);

    // The event stream, read raw: headers at once, then `event: new` when mail arrives.
    let addr = base.trim_start_matches("http://").to_string();
    let mut events = TcpStream::connect(&addr).await.unwrap();
    events
        .write_all(format!("GET /api/v1/events HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();

    let waiter = {
        let base = base.clone();
        tokio::spawn(async move {
            request(
                &base,
                "GET",
                "/api/v1/wait?query=subject:late&count=1&timeout=10",
                None,
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        send(&server, "bob@example.net", "Subject: late\r\n\r\nhi\r\n").await,
        250
    );
    let waited = waiter.await.unwrap();
    assert_eq!(waited.status, 200);
    assert_eq!(waited.json()["messages"][0]["Subject"], "late");

    let mut seen = Vec::new();
    let got = tokio::time::timeout(WAIT, async {
        let mut buf = [0u8; 4096];
        loop {
            let n = events.read(&mut buf).await.unwrap();
            assert!(n > 0, "stream ended");
            seen.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&seen);
            if text.contains("event: new") && text.contains("\"Subject\":\"late\"") {
                return text.into_owned();
            }
        }
    })
    .await
    .expect("an event in time");
    assert!(got.contains("text/event-stream"), "{got}");

    // Faults, the testkit's model over HTTP.
    let put = request(
        &base,
        "PUT",
        "/api/v1/faults",
        Some(r#"{"reject_recipients":["*@bad.example"],"fail_first":[{"step":"data","n":1}]}"#),
    )
    .await;
    assert_eq!(put.status, 200, "{}", put.text());
    assert_eq!(put.json()["reject_recipients"][0], "*@bad.example");
    assert_eq!(
        send(&server, "x@bad.example", "Subject: a\r\n\r\na\r\n").await,
        550
    );
    assert_eq!(
        send(&server, "x@good.example", "Subject: b\r\n\r\nb\r\n").await,
        451
    );
    assert_eq!(
        send(&server, "x@good.example", "Subject: c\r\n\r\nc\r\n").await,
        250
    );
    let bad = request(
        &base,
        "PUT",
        "/api/v1/faults",
        Some(r#"{"delay":[{"step":"nope","ms":1}]}"#),
    )
    .await;
    assert_eq!(bad.status, 400);
    assert_eq!(
        request(&base, "DELETE", "/api/v1/faults", None)
            .await
            .status,
        200
    );
    assert_eq!(
        send(&server, "x@bad.example", "Subject: d\r\n\r\nd\r\n").await,
        250
    );

    // Mailpit's chaos shape: a trigger left out is reset.
    let chaos = request(
        &base,
        "PUT",
        "/api/v1/chaos",
        Some(r#"{"Recipient":{"ErrorCode":452,"Probability":100}}"#),
    )
    .await
    .json();
    assert_eq!(chaos["Recipient"]["ErrorCode"], 452);
    assert_eq!(chaos["Sender"]["Probability"], 0);
    // The testkit's recorder is not a Capture handler: chaos applies where the store is the
    // handler (the program's --handler capture); here it is stored and reported.
    let now = request(&base, "GET", "/api/v1/chaos", None).await.json();
    assert_eq!(now["Recipient"]["Probability"], 100);
    let reset = request(&base, "PUT", "/api/v1/chaos", Some("{}"))
        .await
        .json();
    assert_eq!(reset["Recipient"]["Probability"], 0);
    let invalid = request(
        &base,
        "PUT",
        "/api/v1/chaos",
        Some(r#"{"Sender":{"ErrorCode":200,"Probability":10}}"#),
    )
    .await;
    assert_eq!(
        (invalid.status, invalid.text().as_str()),
        (400, "error code must be between 400 and 599")
    );
}

/// `/metrics`: OpenMetrics to a client that asks for it (Prometheus does), Prometheus's text
/// format 0.0.4 otherwise (what `promtool check metrics` reads: a counter's HELP and TYPE name
/// its `_total` series). Each sample line is `name{labels} value` after its family's TYPE.
#[tokio::test]
async fn metrics_are_valid_exposition_text() {
    let server = TestServer::builder().http().start().await;
    let base = server.http_url().unwrap();
    assert_eq!(
        send(&server, "bob@example.net", "Subject: m\r\n\r\nm\r\n").await,
        250
    );
    // A refused AUTH and a refused message are counted too.
    let r = request(
        &base,
        "PUT",
        "/api/v1/faults",
        Some(r#"{"temp_fail":[{"step":"data","code":451}]}"#),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        send(&server, "bob@example.net", "Subject: n\r\n\r\nn\r\n").await,
        451
    );
    let accept = [(
        "Accept",
        "application/openmetrics-text; version=1.0.0,text/plain;q=0.5",
    )];
    let open = request_with(&base, "GET", "/metrics", None, &accept).await;
    let open_type = open.header("content-type").unwrap();
    assert!(open_type.starts_with("application/openmetrics-text"));
    assert!(open.text().ends_with("# EOF\n"));
    assert!(open.text().contains("# TYPE smtp_connections counter"));
    let m = request(&base, "GET", "/metrics", None).await;
    assert_eq!(
        m.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = m.text();
    assert!(!text.contains("# EOF"), "{text}");
    assert!(
        text.contains("# TYPE smtp_connections_total counter"),
        "{text}"
    );
    assert!(text.contains("# HELP smtp_connections_total "), "{text}");
    let mut typed = std::collections::HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let name = parts.next().unwrap();
            let kind = parts.next().unwrap();
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            typed.insert(name.to_string());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        // name{labels} value
        let (series, value) = line.rsplit_once(' ').expect(line);
        value
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("value in {line}"));
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{line}"
        );
        assert!(
            typed.iter().any(|t| name.starts_with(t.as_str())),
            "{line}: a sample before its TYPE"
        );
        if let Some(labels) = series.split_once('{').map(|(_, l)| l) {
            assert!(labels.ends_with('}'), "{line}");
        }
    }
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{series} in {text}"))
    };
    assert_eq!(value("smtp_messages_total{outcome=\"accepted\"}"), 1.0);
    assert_eq!(
        value("smtp_messages_total{outcome=\"refused_temporary\"}"),
        1.0
    );
    assert!(value("smtp_connections_total") >= 2.0);
    assert!(value("smtp_handler_seconds_count{hook=\"data\"}") >= 2.0);
    assert!(value("smtp_received_bytes_total") > 0.0);
}
