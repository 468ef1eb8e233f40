//! The bounded queue that carries a message's content from the connection to its handler's
//! [`Body`](crate::Body): one sender, one receiver, a few pieces in flight (backpressure).
//!
//! A connection keeps its queue from message to message: when the previous message's sender
//! and receiver are both gone (the handler dropped its `Body`, as nearly every handler does),
//! the next message reuses it, so a message costs no allocation here. A handler that keeps
//! its `Body` (sends it to another task) gets a queue of its own; nothing is shared.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use crate::body::Piece;

/// The queue both ends share.
pub(crate) struct Pipe {
    state: Mutex<State>,
}

struct State {
    queue: VecDeque<Piece>,
    capacity: usize,
    /// The receiver waits for a piece (or the end).
    rx_waker: Option<Waker>,
    /// The sender waits for room.
    tx_waker: Option<Waker>,
    tx_closed: bool,
    rx_closed: bool,
}

impl Pipe {
    pub(crate) fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                queue: VecDeque::with_capacity(capacity),
                capacity,
                rx_waker: None,
                tx_waker: None,
                tx_closed: false,
                rx_closed: false,
            }),
        })
    }

    /// A sender and a receiver on `pipe`, reset for a new message if no one else holds it,
    /// or on a new queue if someone does.
    pub(crate) fn open(pipe: &mut Arc<Self>) -> (Sender, Receiver) {
        match Arc::get_mut(pipe) {
            Some(unshared) => {
                let state = unshared
                    .state
                    .get_mut()
                    .unwrap_or_else(PoisonError::into_inner);
                state.queue.clear();
                state.rx_waker = None;
                state.tx_waker = None;
                state.tx_closed = false;
                state.rx_closed = false;
            }
            None => {
                let capacity = pipe.lock().capacity;
                *pipe = Self::new(capacity);
            }
        }
        (
            Sender {
                pipe: Arc::clone(pipe),
            },
            Receiver {
                pipe: Arc::clone(pipe),
            },
        )
    }

    /// Nothing done under the lock can panic; a poisoned lock still holds a valid state.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The connection's end.
pub(crate) struct Sender {
    pipe: Arc<Pipe>,
}

impl Sender {
    /// Queues `piece` once there is room. `Err` gives it back when the receiver is gone.
    #[cfg(test)]
    pub(crate) async fn send(&self, piece: Piece) -> Result<(), Piece> {
        let mut piece = Some(piece);
        std::future::poll_fn(|cx| self.poll_send(cx, &mut piece)).await;
        piece.map_or(Ok(()), Err)
    }

    /// Queues the piece in `slot` (taking it) once there is room; ready, with the piece left
    /// in `slot`, when the receiver is gone.
    pub(crate) fn poll_send(&self, cx: &mut Context<'_>, slot: &mut Option<Piece>) -> Poll<()> {
        let mut state = self.pipe.lock();
        if state.rx_closed || slot.is_none() {
            return Poll::Ready(());
        }
        if state.queue.len() < state.capacity {
            state.queue.extend(slot.take());
            let waker = state.rx_waker.take();
            drop(state);
            if let Some(w) = waker {
                w.wake();
            }
            return Poll::Ready(());
        }
        set_waker(&mut state.tx_waker, cx);
        Poll::Pending
    }

    /// Queues `piece` if there is room now.
    pub(crate) fn try_send(&self, piece: Piece) -> Result<(), Piece> {
        let mut state = self.pipe.lock();
        if state.rx_closed || state.queue.len() >= state.capacity {
            return Err(piece);
        }
        state.queue.push_back(piece);
        let waker = state.rx_waker.take();
        drop(state);
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        let mut state = self.pipe.lock();
        state.tx_closed = true;
        let waker = state.rx_waker.take();
        drop(state);
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// The handler's end (inside its `Body`).
pub(crate) struct Receiver {
    pipe: Arc<Pipe>,
}

impl Receiver {
    /// The next piece; `None` once the sender is gone and everything was taken.
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Piece>> {
        let mut state = self.pipe.lock();
        if let Some(piece) = state.queue.pop_front() {
            let waker = state.tx_waker.take();
            drop(state);
            if let Some(w) = waker {
                w.wake();
            }
            return Poll::Ready(Some(piece));
        }
        if state.tx_closed {
            return Poll::Ready(None);
        }
        set_waker(&mut state.rx_waker, cx);
        Poll::Pending
    }

    pub(crate) async fn recv(&mut self) -> Option<Piece> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let mut state = self.pipe.lock();
        state.rx_closed = true;
        // What no one will read is let go now, not when the queue is next used; the queue
        // keeps its room for the next message.
        state.queue.clear();
        let waker = state.tx_waker.take();
        drop(state);
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl fmt::Debug for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Receiver")
    }
}

/// Keeps the waker to wake, replacing it only if it would wake another task.
fn set_waker(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(w) if w.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn chunk(s: &'static str) -> Piece {
        Ok(Some(Bytes::from_static(s.as_bytes())))
    }

    #[tokio::test]
    async fn pieces_arrive_in_order_then_none_after_the_sender_is_gone() {
        let mut pipe = Pipe::new(2);
        let (tx, mut rx) = Pipe::open(&mut pipe);
        let send = async move {
            for s in ["a", "b", "c", "d"] {
                tx.send(chunk(s)).await.unwrap();
            }
            tx.send(Ok(None)).await.unwrap();
        };
        let recv = async {
            let mut got = Vec::new();
            while let Some(p) = rx.recv().await {
                got.push(p.unwrap());
            }
            got
        };
        let ((), got) = tokio::join!(send, recv);
        let got: Vec<_> = got.into_iter().map(|b| b.map(|b| b.to_vec())).collect();
        assert_eq!(
            got,
            [b"a".to_vec(), b"b".to_vec(), b"c".to_vec(), b"d".to_vec()]
                .map(Some)
                .into_iter()
                .chain([None])
                .collect::<Vec<_>>()
        );
    }

    #[tokio::test]
    async fn a_full_queue_waits_and_a_gone_receiver_gives_the_piece_back() {
        let mut pipe = Pipe::new(1);
        let (tx, rx) = Pipe::open(&mut pipe);
        tx.try_send(chunk("a")).unwrap();
        assert!(tx.try_send(chunk("b")).is_err(), "full");
        let waiting =
            tokio::time::timeout(std::time::Duration::from_millis(50), tx.send(chunk("b")));
        assert!(waiting.await.is_err(), "a full queue makes the sender wait");
        drop(rx);
        assert!(
            tx.send(chunk("c")).await.is_err(),
            "no receiver: the piece comes back"
        );
    }

    #[tokio::test]
    async fn the_queue_is_reused_only_when_both_ends_are_gone() {
        let mut pipe = Pipe::new(2);
        let first = Arc::as_ptr(&pipe);
        let (tx, rx) = Pipe::open(&mut pipe);
        tx.try_send(chunk("left over")).unwrap();
        drop((tx, rx));
        let (tx, mut rx) = Pipe::open(&mut pipe);
        assert_eq!(Arc::as_ptr(&pipe), first, "reused");
        drop(tx);
        assert!(
            rx.recv().await.is_none(),
            "nothing of the last message is left"
        );
        // A handler keeps its body: the next message gets a queue of its own.
        let (tx2, _rx2) = Pipe::open(&mut pipe);
        assert_ne!(
            Arc::as_ptr(&pipe),
            first,
            "a new queue while the old one is held"
        );
        tx2.try_send(chunk("new")).unwrap();
        drop(tx2);
        assert!(
            rx.recv().await.is_none(),
            "the kept body sees nothing of the next message"
        );
    }
}
