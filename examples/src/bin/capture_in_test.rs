//! What a test of mail-sending code looks like with `smtp-testkit`: start a capture server,
//! let the code under test send to it, assert on what arrived. (In a real test this body is a
//! `#[tokio::test]`; here it is a program so that `cargo run` shows it.)
//!
//! ```text
//! cargo run -p examples --bin capture_in_test
//! ```
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::time::Duration;

use smtp_testkit::{Client, TestServer};

/// The "code under test": sends a welcome mail to `to` through `server`.
async fn send_welcome(server: SocketAddr, to: &str) {
    let mut c = Client::connect(server).await;
    let mail = format!("From: shop@example.com\r\nTo: {to}\r\nSubject: Welcome\r\n\r\nHello!\r\n");
    c.send_mail("shop@example.com", &[to], &mail)
        .await
        .expect(250);
    c.quit().await;
}

#[tokio::main]
async fn main() {
    let server = TestServer::start().await; // 127.0.0.1:0, ready now
    send_welcome(server.addr(), "ann@example.com").await;
    let msg = server
        .wait_for(1, Duration::from_secs(5))
        .await
        .expect("the welcome mail")
        .remove(0);
    assert_eq!(msg.envelope().recipients(), ["ann@example.com"]);
    msg.assert_subject("Welcome").assert_body_contains("Hello!");
    println!("captured: {msg:?}");
}
