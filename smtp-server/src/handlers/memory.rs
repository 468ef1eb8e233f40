//! [`Memory`]: every message kept in memory, for tests and small tools.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use smtp_proto::{Envelope, Reply};
use tokio::sync::Notify;

use crate::body::{Body, Message};
use crate::handler::{Context, Handler, SessionInfo};

/// A message kept by [`Memory`].
#[derive(Debug, Clone)]
pub struct Stored {
    /// The session it came in.
    pub session: SessionInfo,
    /// Its envelope.
    pub envelope: Envelope,
    /// The message.
    pub message: Message,
}

/// Keeps every message in memory; clone it to share the store with the code that started
/// the server.
#[derive(Debug, Clone, Default)]
pub struct Memory {
    stored: Arc<Mutex<Vec<Stored>>>,
    arrived: Arc<Notify>,
}

impl Memory {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every message so far.
    pub fn messages(&self) -> Vec<Stored> {
        self.stored
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Adds a message, as if it had arrived (for handlers that wrap a `Memory`).
    pub fn push(&self, stored: Stored) {
        self.stored
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(stored);
        self.arrived.notify_waiters();
    }

    /// Waits until at least `n` messages are stored, at most `timeout`: `Ok` with every
    /// message, or `Err` with what did arrive.
    pub async fn wait_for(
        &self,
        n: usize,
        timeout: std::time::Duration,
    ) -> Result<Vec<Stored>, Vec<Stored>> {
        let wait = async {
            loop {
                let notified = self.arrived.notified();
                let all = self.messages();
                if all.len() >= n {
                    return all;
                }
                notified.await;
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| self.messages())
    }
}

#[async_trait]
impl Handler for Memory {
    async fn data(&self, ctx: &mut Context, body: Body) -> Result<(), Reply> {
        let message = body.collect().await?;
        self.push(Stored {
            session: ctx.session().clone(),
            envelope: ctx.envelope().clone(),
            message,
        });
        Ok(())
    }
}
