//! A message's content as it arrives, and the collected message.

use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};

use crate::error::BodyError;
use crate::pipe::{Pipe, Receiver};

/// The content of one message, as a stream of chunks with backpressure: the connection reads
/// from the client only as fast as the handler takes chunks, so a message of any size never
/// has to sit in memory.
///
/// Take chunks with [`Body::chunk`] (or as a `futures::Stream`), or everything at once with
/// [`Body::collect`]. The content is unstuffed and ends with the final CRLF of the message.
#[derive(Debug)]
pub struct Body {
    rx: Receiver,
    limit: u64,
    /// The end was seen (or reported): from now on, `None`.
    done: bool,
}

/// What the connection sends a [`Body`]: content, then the end or an error. The end is
/// explicit: a channel closed without it (the connection failed mid-message) reads as
/// [`BodyError::Incomplete`], never as a complete message.
pub(crate) type Piece = Result<Option<Bytes>, BodyError>;

impl Body {
    pub(crate) fn new(rx: Receiver, limit: u64) -> Self {
        Self {
            rx,
            limit,
            done: false,
        }
    }

    /// The next chunk; `None` at the end of the message. A message cut short (the connection
    /// failed, timed out, or the client reset) ends with `Err`, never with `None`.
    pub async fn chunk(&mut self) -> Option<Result<Bytes, BodyError>> {
        let piece = self.rx.recv().await;
        self.next(piece)
    }

    fn next(&mut self, piece: Option<Piece>) -> Option<Result<Bytes, BodyError>> {
        if self.done {
            return None;
        }
        match piece {
            Some(Ok(Some(bytes))) => Some(Ok(bytes)),
            Some(Ok(None)) => {
                self.done = true;
                None
            }
            Some(Err(e)) => {
                self.done = true;
                Some(Err(e))
            }
            None => {
                self.done = true;
                Some(Err(BodyError::Incomplete))
            }
        }
    }

    /// Reads the whole message into memory (at most the session's size limit).
    pub async fn collect(mut self) -> Result<Message, BodyError> {
        let mut raw =
            BytesMut::with_capacity(usize::try_from(self.limit.min(64 * 1024)).unwrap_or(0));
        while let Some(chunk) = self.chunk().await {
            raw.extend_from_slice(&chunk?);
        }
        Ok(Message::new(raw.freeze()))
    }

    /// Reads and drops the content; returns its size.
    pub async fn discard(mut self) -> Result<u64, BodyError> {
        let mut size = 0;
        while let Some(chunk) = self.chunk().await {
            size += chunk?.len() as u64;
        }
        Ok(size)
    }
}

impl From<Bytes> for Body {
    /// A body that gives `content` as one chunk: for a handler that read a message and passes
    /// it on to another handler (such as a [`Relay`](crate::Relay)), changed or as it came.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let body = smtp_server::Body::from(bytes::Bytes::from_static(b"Subject: hi\r\n\r\nhello\r\n"));
    /// assert_eq!(body.collect().await.unwrap().raw().len(), 22);
    /// # }
    /// ```
    fn from(content: Bytes) -> Self {
        let (tx, rx) = Pipe::open(&mut Pipe::new(2));
        let limit = content.len() as u64;
        if !content.is_empty() {
            // A new channel has room for both.
            let _ = tx.try_send(Ok(Some(content)));
        }
        let _ = tx.try_send(Ok(None));
        Self::new(rx, limit)
    }
}

impl From<Message> for Body {
    fn from(message: Message) -> Self {
        message.raw.into()
    }
}

impl futures_util::Stream for Body {
    type Item = Result<Bytes, BodyError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let piece = std::task::ready!(self.rx.poll_recv(cx));
        Poll::Ready(self.next(piece))
    }
}

/// A whole message: its raw bytes and, parsed on first use, its MIME structure.
pub struct Message {
    raw: Bytes,
    parsed: OnceLock<Option<mail_parser::Message<'static>>>,
}

impl Message {
    /// A message from its raw bytes.
    pub fn new(raw: Bytes) -> Self {
        Self {
            raw,
            parsed: OnceLock::new(),
        }
    }

    /// The bytes exactly as received (after dot-unstuffing).
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// The parsed message (headers, bodies, attachments), parsed once on first call; `None` if
    /// mail-parser cannot make sense of it.
    pub fn parsed(&self) -> Option<&mail_parser::Message<'static>> {
        self.parsed
            .get_or_init(|| {
                mail_parser::MessageParser::default()
                    .parse(&self.raw[..])
                    .map(mail_parser::Message::into_owned)
            })
            .as_ref()
    }

    /// The subject, if the message has one. Never panics (an empty message has none).
    pub fn subject(&self) -> Option<&str> {
        self.parsed()?.subject()
    }

    /// The first text body (decoded), if any.
    pub fn text(&self) -> Option<String> {
        self.parsed()?.body_text(0).map(|t| t.into_owned())
    }

    /// The first HTML body (decoded), if any.
    pub fn html(&self) -> Option<String> {
        self.parsed()?.body_html(0).map(|t| t.into_owned())
    }

    /// A header's raw value, trimmed: the first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<String> {
        let value = self.parsed()?.header_raw(name)?;
        Some(value.trim().to_string())
    }
}

impl Clone for Message {
    fn clone(&self) -> Self {
        Self::new(self.raw.clone())
    }
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("len", &self.raw.len())
            .field("subject", &self.parsed().and_then(|m| m.subject()))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The end is explicit: a connection that fails mid-message must not look like the end.
    #[tokio::test]
    async fn a_closed_channel_is_incomplete_not_the_end() {
        let (tx, rx) = Pipe::open(&mut Pipe::new(4));
        tx.send(Ok(Some(Bytes::from_static(b"Subject: cut\r\n"))))
            .await
            .unwrap();
        drop(tx);
        let mut body = Body::new(rx, 100);
        assert!(matches!(body.chunk().await, Some(Ok(_))));
        assert_eq!(body.chunk().await, Some(Err(BodyError::Incomplete)));
        assert_eq!(body.chunk().await, None);
        let (tx, rx) = Pipe::open(&mut Pipe::new(4));
        tx.send(Ok(Some(Bytes::from_static(b"x")))).await.unwrap();
        drop(tx);
        assert_eq!(
            Body::new(rx, 100).collect().await.unwrap_err(),
            BodyError::Incomplete
        );
        // With the end marker: complete.
        let (tx, rx) = Pipe::open(&mut Pipe::new(4));
        tx.send(Ok(Some(Bytes::from_static(b"x")))).await.unwrap();
        tx.send(Ok(None)).await.unwrap();
        drop(tx);
        assert_eq!(
            Body::new(rx, 100).collect().await.unwrap().raw().as_ref(),
            b"x"
        );
    }

    /// An empty message is legal SMTP (RFC 5321 4.1.1.4 allows no content at all): every
    /// accessor answers `None`, none panics.
    #[test]
    fn accessors_never_panic() {
        for raw in ["", "\r\n", "no header at all", "Subject:\r\n\r\n"] {
            let m = Message::new(Bytes::from(raw));
            let _ = (m.subject(), m.text(), m.html(), m.header("Subject"));
        }
        let m = Message::new(Bytes::from_static(
            b"Subject: Hi\r\nX-Tag:  a b \r\n\r\nHello.\r\n",
        ));
        assert_eq!(m.subject(), Some("Hi"));
        assert_eq!(m.header("x-tag").as_deref(), Some("a b"));
        assert_eq!(m.text().as_deref(), Some("Hello.\r\n"));
    }
}
