//! TestServer, fault injection and the scripted client, over loopback and in memory.

use std::time::{Duration, Instant};

use smtp_testkit::smtp_proto::Config;
use smtp_testkit::smtp_server;
use smtp_testkit::{Client, DropPoint, Faults, Step, TestServer};

const WAIT: Duration = Duration::from_secs(10);
const MESSAGE: &str =
    "From: ann@example.com\r\nTo: bob@example.net\r\nSubject: Welcome\r\n\r\nHello Bob\r\n";

#[tokio::test]
async fn capture_wait_clear_and_subscribe() {
    let server = TestServer::start().await;
    let mut feed = server.subscribe();
    let mut c = Client::connect(server.addr()).await;
    c.send_mail(
        "ann@example.com",
        &["bob@example.net", "carol@example.org"],
        MESSAGE,
    )
    .await
    .expect(250)
    .expect_enhanced("2.6.0");
    let got = server.wait_for(1, WAIT).await.unwrap();
    got[0]
        .assert_subject("Welcome")
        .assert_recipients(&["bob@example.net", "carol@example.org"])
        .assert_body_contains("Hello Bob")
        .assert_header("To", "bob@example.net");
    assert_eq!(got[0].envelope().sender(), "ann@example.com");
    assert_eq!(got[0].session().helo.as_deref(), Some("client.test"));
    assert_eq!(feed.next().await.unwrap().subject(), Some("Welcome"));
    server.clear();
    assert!(server.messages().is_empty());
    // A timeout shows what did arrive.
    let err = server
        .wait_for(1, Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("wanted 1 message(s)"), "{err}");
    c.send_mail(
        "ann@example.com",
        &["x@example.net"],
        "Subject: second\r\n\r\n.\r\n",
    )
    .await
    .expect(250);
    let err = server
        .wait_for(2, Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("1 arrived") && err.to_string().contains("Subject: second"),
        "{err}"
    );
}

#[tokio::test]
async fn starttls_and_auth() {
    let server = TestServer::builder()
        .starttls()
        .auth("user", "secret")
        .auth_required()
        .start()
        .await;
    let root = server.tls().unwrap().certificate_pem.clone();
    let mut c = Client::connect(server.addr()).await;
    c.ehlo("me").await.expect(250);
    c.mail("<a@example.com>")
        .await
        .expect(530)
        .expect_enhanced("5.7.0");
    c.starttls(&root, "localhost").await.expect(220);
    c.ehlo("me").await.expect(250);
    c.auth_plain("user", "wrong").await.expect(535);
    c.auth_plain("user", "secret").await.expect(235);
    c.mail("<a@example.com>").await.expect(250);
    c.rcpt("<b@example.net>").await.expect(250);
    c.data(MESSAGE).await.expect(250);
    let m = server.wait_for(1, WAIT).await.unwrap().remove(0);
    assert_eq!(m.session().auth.as_deref(), Some("user"));
    assert!(m.session().tls.is_some());
}

#[tokio::test]
async fn limits_lmtp_and_bdat() {
    let server = TestServer::builder()
        .max_message_size(100)
        .lmtp()
        .start()
        .await;
    let mut c = Client::connect(server.addr()).await;
    c.lhlo("me").await.expect(250);
    c.mail("<a@example.com> SIZE=1000").await.expect(552);
    c.mail("<a@example.com>").await.expect(250);
    c.rcpt("<b@example.net>").await.expect(250);
    c.rcpt("<c@example.net>").await.expect(250);
    c.bdat("Subject: chunked\r\n\r\n", false).await.expect(250);
    // RFC 2033 4.2: one reply per recipient.
    c.bdat("body\r\n", true).await.expect(250);
    c.read_reply().await.expect(250);
    let m = server.wait_for(1, WAIT).await.unwrap().remove(0);
    assert_eq!(m.raw(), b"Subject: chunked\r\n\r\nbody\r\n");
}

#[tokio::test]
async fn fault_reject_and_temporary_failures() {
    let server = TestServer::builder()
        .faults(
            Faults::new()
                .reject_recipients("*@invalid.example")
                .temp_fail(Step::Mail, 452),
        )
        .start()
        .await;
    let mut c = Client::connect(server.addr()).await;
    c.ehlo("me").await.expect(250);
    c.mail("<a@example.com>")
        .await
        .expect(452)
        .expect_enhanced("4.3.1");
    let server = TestServer::builder()
        .faults(
            Faults::new()
                .reject_recipients("*@invalid.example")
                .temp_fail(Step::Data, 451),
        )
        .start()
        .await;
    let mut c = Client::connect(server.addr()).await;
    c.ehlo("me").await.expect(250);
    c.mail("<a@example.com>").await.expect(250);
    c.rcpt("<nobody@INVALID.example>")
        .await
        .expect(550)
        .expect_enhanced("5.1.1");
    c.rcpt("<bob@example.net>").await.expect(250);
    c.data(MESSAGE).await.expect(451).expect_enhanced("4.3.0");
    assert!(
        server.messages().is_empty(),
        "a refused message is not captured"
    );
}

#[tokio::test]
async fn fault_fail_first_then_accept() {
    let server = TestServer::builder()
        .faults(Faults::new().fail_first(Step::Data, 2))
        .start()
        .await;
    let mut codes = Vec::new();
    for _ in 0..3 {
        let mut c = Client::connect(server.addr()).await;
        codes.push(
            c.send_mail("a@example.com", &["b@example.net"], MESSAGE)
                .await
                .code(),
        );
    }
    assert_eq!(codes, [451, 451, 250]);
    assert_eq!(server.wait_for(1, WAIT).await.unwrap().len(), 1);
}

#[tokio::test]
async fn fault_delay() {
    let server = TestServer::builder()
        .faults(Faults::new().delay(Step::Rcpt, Duration::from_millis(300)))
        .start()
        .await;
    let mut c = Client::connect(server.addr()).await;
    c.ehlo("me").await.expect(250);
    c.mail("<a@example.com>").await.expect(250);
    let start = Instant::now();
    c.rcpt("<b@example.net>").await.expect(250);
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

#[tokio::test]
async fn fault_drop_connection_points() {
    // (where, how many of MAIL, RCPT, DATA got a reply before the connection went away)
    for (at, answered_before_drop) in [
        (DropPoint::AfterMail, 0),
        (DropPoint::AfterRcpt, 1),
        (DropPoint::MidData, 2),
        (DropPoint::AfterData, 2),
    ] {
        let server = TestServer::builder()
            .faults(Faults::new().drop_connection(at))
            .start()
            .await;
        let mut c = Client::connect(server.addr()).await;
        c.ehlo("me").await.expect(250);
        let replies = [
            c.mail("<a@example.com>").await.code(),
            c.rcpt("<b@example.net>").await.code(),
        ];
        let last = if replies.contains(&0) {
            0
        } else {
            // A big message, so that the drop happens while it is still being sent.
            let big = format!("Subject: big\r\n\r\n{}", "x".repeat(70).repeat(20_000));
            c.data(big).await.code()
        };
        let codes: Vec<u16> = replies.into_iter().chain([last]).collect();
        let answered = codes.iter().take_while(|c| **c != 0).count();
        assert_eq!(
            answered,
            answered_before_drop,
            "{at:?}: {codes:?}\n{}",
            c.transcript()
        );
        assert_eq!(
            codes.last(),
            Some(&0),
            "{at:?}: no reply, the connection is gone"
        );
        let captured = server.messages().len();
        assert_eq!(captured, usize::from(at == DropPoint::AfterData), "{at:?}");
    }
}

#[tokio::test]
async fn fault_rate_limit() {
    let server = TestServer::builder()
        .faults(Faults::new().rate_limit(2))
        .start()
        .await;
    let mut c = Client::connect(server.addr()).await;
    c.send_mail("a@example.com", &["b@example.net"], MESSAGE)
        .await
        .expect(250);
    c.mail("<a@example.com>").await.expect(250);
    c.rcpt("<b@example.net>").await.expect(250);
    c.data(MESSAGE).await.expect(250);
    c.mail("<a@example.com>")
        .await
        .expect(421)
        .expect_enhanced("4.7.0");
    assert_eq!(c.read_reply().await.code(), 0, "closed after 421");
}

#[tokio::test]
async fn in_memory_client_runs_the_real_driver() {
    let mut c = Client::in_memory(Config::new("mem.example"), smtp_server::Sink).await;
    assert_eq!(c.greeting.as_ref().unwrap().code(), 220);
    c.ehlo("me").await.expect(250);
    c.send_raw("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n")
        .await;
    c.read_reply().await.expect(250);
    c.read_reply().await.expect(250);
    c.read_reply().await.expect(354);
    c.send_raw("x\n.\nstill data\r\n.\r\n").await;
    c.read_reply().await.expect(250);
    c.quit().await.expect(221);
}

/// Issue 13, 20: an empty message is legal; the accessors answer `None` and never panic.
#[tokio::test]
async fn empty_message_accessors_do_not_panic() {
    let server = TestServer::start().await;
    let mut c = Client::connect(server.addr()).await;
    c.send_mail("ann@example.com", &["bob@example.net"], "")
        .await
        .expect(250);
    let got = server.wait_for(1, WAIT).await.unwrap();
    assert_eq!(got[0].subject(), None);
    assert_eq!(got[0].text(), None);
    assert_eq!(got[0].header("Subject"), None);
    assert!(got[0].attachment_names().is_empty());
}

/// Issue 13, 21: the in-memory client runs a `ServerBuilder`'s settings and handler (here
/// AUTH required and a small size limit), no hand-built `Config`.
#[tokio::test]
async fn in_memory_client_from_a_server_builder() {
    let builder = smtp_server::Server::builder()
        .hostname("built.example")
        .allow_insecure_auth(true)
        .auth_mechanisms(["PLAIN"])
        .auth_required(true)
        .configure(|c| c.limits.message_size = 100)
        .handler(smtp_server::Sink);
    let mut c = Client::in_memory_with(builder).await;
    let greeting = c.greeting.clone().unwrap();
    assert!(
        greeting.text().starts_with("built.example "),
        "{greeting:?}"
    );
    c.ehlo("me").await.expect(250);
    c.mail("<a@example.com>").await.expect(530);
    c.mail("<a@example.com> SIZE=101").await.expect(530);
    c.quit().await.expect(221);
}

/// Issue 13, 21: the scripted client over a Unix socket (an LMTP agent's transport).
#[tokio::test]
async fn client_over_a_unix_socket() {
    let path = std::env::temp_dir().join(format!("testkit-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let server = smtp_server::Server::builder()
        .listener(smtp_server::Listen::unix(&path))
        .lmtp(true)
        .handler(smtp_server::Sink)
        .bind()
        .await
        .unwrap()
        .spawn();
    assert_eq!(server.local_addr(), None, "no TCP listener, and no panic");
    let mut c = Client::connect_unix(&path).await;
    assert!(c.greeting.as_ref().unwrap().text().ends_with("LMTP ready"));
    c.lhlo("me").await.expect(250);
    c.quit().await.expect(221);
    server.shutdown().await.unwrap();
    let _ = std::fs::remove_file(&path);
}
