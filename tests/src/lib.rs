//! A small "application" that sends mail, as our users' code does, so that the tests in
//! `tests/` can check it with `smtp-testkit` the way they would.
#![forbid(unsafe_code)]

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// Why the welcome mail was not sent.
#[derive(Debug)]
pub enum SendError {
    /// The server refused for good (5xx), or the address is invalid.
    Permanent(String),
    /// Still failing after every retry.
    GaveUp {
        /// How many attempts were made.
        attempts: u32,
        /// The last error.
        last: String,
    },
}

/// Sends the welcome mail to `to` through the SMTP server at `server`, retrying transient
/// failures (4xx replies, dropped connections) up to `attempts` times, with a short backoff.
pub async fn send_welcome(
    server: std::net::SocketAddr,
    to: &str,
    attempts: u32,
) -> Result<u32, SendError> {
    let message = Message::builder()
        .from(
            "Shop <noreply@shop.example>"
                .parse()
                .map_err(|e| SendError::Permanent(format!("{e}")))?,
        )
        .to(to
            .parse()
            .map_err(|e| SendError::Permanent(format!("{e}")))?)
        .subject("Welcome")
        .header(ContentType::TEXT_PLAIN)
        .body(format!("Hello {to}, welcome to the shop.\n"))
        .map_err(|e| SendError::Permanent(e.to_string()))?;
    let transport =
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(server.ip().to_string())
            .port(server.port())
            .timeout(Some(Duration::from_secs(10)))
            .build();
    let mut last = String::new();
    for attempt in 1..=attempts {
        match transport.send(message.clone()).await {
            Ok(_) => return Ok(attempt),
            Err(e) if e.is_permanent() => return Err(SendError::Permanent(e.to_string())),
            Err(e) => {
                last = e.to_string();
                tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))).await;
            }
        }
    }
    Err(SendError::GaveUp { attempts, last })
}
