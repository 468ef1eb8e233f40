//! The application's welcome mail, checked with TestServer as a user's test would, including
//! its retries under injected faults.

use std::time::Duration;

use smtp_testkit::{DropPoint, Faults, Step, TestServer};
use tests::{SendError, send_welcome};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn welcome_mail_arrives() {
    let server = TestServer::start().await;
    assert_eq!(
        send_welcome(server.addr(), "ann@example.com", 3)
            .await
            .unwrap(),
        1
    );
    let msg = server.wait_for(1, WAIT).await.unwrap().remove(0);
    assert_eq!(msg.envelope().recipients(), ["ann@example.com"]);
    assert_eq!(msg.envelope().sender(), "noreply@shop.example");
    assert_eq!(msg.subject(), Some("Welcome"));
    msg.assert_body_contains("welcome to the shop");
}

#[tokio::test]
async fn retries_transient_failures_then_succeeds() {
    let server = TestServer::builder()
        .faults(Faults::new().fail_first(Step::Data, 2))
        .start()
        .await;
    assert_eq!(
        send_welcome(server.addr(), "ann@example.com", 3)
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        server.wait_for(1, WAIT).await.unwrap().len(),
        1,
        "exactly one copy"
    );
}

#[tokio::test]
async fn gives_up_after_its_attempts() {
    let server = TestServer::builder()
        .faults(Faults::new().temp_fail(Step::Rcpt, 452))
        .start()
        .await;
    match send_welcome(server.addr(), "ann@example.com", 3).await {
        Err(SendError::GaveUp { attempts: 3, last }) => assert!(last.contains("452"), "{last}"),
        other => panic!("{other:?}"),
    }
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn does_not_retry_a_permanent_refusal() {
    let server = TestServer::builder()
        .faults(Faults::new().reject_recipients("*@closed.example"))
        .start()
        .await;
    match send_welcome(server.addr(), "gone@closed.example", 3).await {
        Err(SendError::Permanent(e)) => assert!(e.contains("550"), "{e}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn retries_after_a_dropped_connection() {
    // The connection drops mid-DATA on every attempt: the client must not think it sent.
    let server = TestServer::builder()
        .faults(Faults::new().drop_connection(DropPoint::MidData))
        .start()
        .await;
    assert!(matches!(
        send_welcome(server.addr(), "ann@example.com", 2).await,
        Err(SendError::GaveUp { attempts: 2, .. })
    ));
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn a_lost_250_means_a_duplicate() {
    // The message is accepted but the 250 never reaches the client: a retrying client
    // delivers it twice. This is the behaviour the test documents, not a server bug.
    let server = TestServer::builder()
        .faults(Faults::new().drop_connection(DropPoint::AfterData))
        .start()
        .await;
    let _ = send_welcome(server.addr(), "ann@example.com", 2).await;
    assert_eq!(server.wait_for(2, WAIT).await.unwrap().len(), 2);
}
