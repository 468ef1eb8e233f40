//! The protocol transcript for logs: AUTH redacted, content left out.

use super::*;

impl Session {
    /// Starts (or stops) keeping a transcript of the client's protocol lines for a log:
    /// command lines as sent, except that AUTH exchanges are redacted (`AUTH PLAIN ***`, each
    /// continuation line `***`) and message content is left out (`DATA: 1024 bytes`). Off by
    /// default: it costs an allocation per line.
    pub fn record_transcript(&mut self, on: bool) {
        self.transcript = on.then(VecDeque::new);
    }

    /// The next transcript line, in order, once [`record_transcript`](Self::record_transcript)
    /// was turned on. At most 1,024 lines are kept between polls; later ones are dropped.
    #[must_use]
    pub fn poll_transcript(&mut self) -> Option<String> {
        self.transcript.as_mut()?.pop_front()
    }

    pub(super) fn note(&mut self, line: impl FnOnce() -> String) {
        if let Some(t) = &mut self.transcript {
            // Bounded for a caller that never polls: one pipelined group's worth.
            if t.len() < TRANSCRIPT_MAX {
                t.push_back(line());
            }
        }
    }
}

/// Transcript lines kept between two polls.
const TRANSCRIPT_MAX: usize = 1024;

/// A line that is not a command, for a log: its verb if it starts with one, and its size.
pub(super) fn unparsed(line: &[u8]) -> String {
    let word = line.split(|&b| b == b' ').next().unwrap_or_default();
    match VERBS
        .iter()
        .find(|v| v.as_bytes().eq_ignore_ascii_case(word))
    {
        Some(verb) if *verb != "AUTH" => {
            format!("{verb} ... (not understood, {} bytes)", line.len())
        }
        _ => format!("(not a command, {} bytes)", line.len()),
    }
}

/// A command line for a log: as sent, except that an AUTH command keeps only its mechanism
/// (RFC 4954 4: the initial response carries the credentials).
pub(super) fn redacted(line: &[u8]) -> String {
    let mut words = line.splitn(3, |&b| b == b' ');
    let verb = words.next().unwrap_or_default();
    if !verb.eq_ignore_ascii_case(b"AUTH") {
        return String::from_utf8_lossy(line).into_owned();
    }
    let mut text = String::from_utf8_lossy(verb).into_owned();
    match words.next() {
        Some(m)
            if !m.is_empty()
                && m.len() <= 20
                && m.iter()
                    .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            text.push(' ');
            text.push_str(&String::from_utf8_lossy(m));
        }
        Some(_) => text.push_str(" ***"),
        None => return text,
    }
    if words.next().is_some() {
        text.push_str(" ***");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction() {
        let cases: &[(&[u8], &str)] = &[
            (b"EHLO client.example", "EHLO client.example"),
            (
                b"MAIL FROM:<a@b.example> SIZE=10",
                "MAIL FROM:<a@b.example> SIZE=10",
            ),
            (b"AUTH PLAIN AGFubgBzZWNyZXQ=", "AUTH PLAIN ***"),
            (b"auth plain AGFubgBzZWNyZXQ=", "auth plain ***"),
            (b"AUTH LOGIN", "AUTH LOGIN"),
            (b"AUTH LOGIN YW5u", "AUTH LOGIN ***"),
            (b"AUTH AGFubgBzZWNyZXQ=AGFubgBzZWNyZXQ=", "AUTH ***"),
            (b"AUTH", "AUTH"),
            (b"AUTH  PLAIN x", "AUTH *** ***"),
        ];
        let lines: &[(&[u8], &str)] = &[
            (b"c2VjcmV0", "(not a command, 8 bytes)"),
            (b" AUTH PLAIN AGFubgBzZWNyZXQ=", "(not a command, 28 bytes)"),
            (b"AUTH\tPLAIN x", "(not a command, 12 bytes)"),
            (
                b"MAIL FROM:bad address",
                "MAIL ... (not understood, 21 bytes)",
            ),
            (b"Subject: secret plans", "(not a command, 21 bytes)"),
        ];
        for (line, want) in lines {
            assert_eq!(unparsed(line), *want, "{:?}", String::from_utf8_lossy(line));
        }
        for (line, want) in cases {
            assert_eq!(redacted(line), *want, "{:?}", String::from_utf8_lossy(line));
        }
    }

    /// Drives a session that accepts every decision; returns the transcript.
    fn transcript(config: Config, input: &[u8], bytewise: bool) -> Vec<String> {
        use crate::testing::{Decision, Peer, drive};
        struct Accept;
        impl Peer for Accept {
            fn transmit(&mut self, _: &[u8]) {}
            fn content(&mut self, _: Bytes) {}
            fn event(&mut self, e: &Event, _: &Session) -> Decision {
                match e {
                    Event::Auth { .. } => Decision::Identity("ann".into()),
                    _ => Decision::Accept,
                }
            }
            fn closed(&mut self, _: CloseReason) {}
        }
        let now = Instant::now();
        let mut s = Session::new(Arc::new(config), now);
        s.record_transcript(true);
        let chunks: Vec<&[u8]> = if bytewise {
            input.chunks(1).collect()
        } else {
            vec![input]
        };
        let mut lines = Vec::new();
        let mut pending = Vec::new();
        for chunk in chunks {
            pending.extend_from_slice(chunk);
            drive(&mut s, now, &mut pending, &mut Accept);
            lines.extend(std::iter::from_fn(|| s.poll_transcript()));
        }
        lines
    }

    /// The transcript is for logs: no AUTH secret and no message content, fed whole or
    /// one byte at a time.
    #[test]
    fn transcript_leaves_out_secrets_and_content() {
        let mut config = Config::new("mx.example");
        config.auth.mechanisms = vec!["PLAIN".into(), "LOGIN".into()];
        config.auth.allow_insecure = true;
        let input = b"EHLO c\r\nAUTH LOGIN\r\nYW5u\r\nc2VjcmV0\r\nRSET\r\n\
            MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\nSecret body\r\n.\r\n\
            MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nBDAT 9 LAST\r\nchunkbodyQUIT\r\n";
        for bytewise in [false, true] {
            let lines = transcript(config.clone(), input, bytewise);
            assert_eq!(
                lines,
                [
                    "EHLO c",
                    "AUTH LOGIN",
                    "***",
                    "***",
                    "RSET",
                    "MAIL FROM:<a@b.example>",
                    "RCPT TO:<c@d.example>",
                    "DATA",
                    "DATA: 13 bytes",
                    "MAIL FROM:<a@b.example>",
                    "RCPT TO:<c@d.example>",
                    "BDAT 9 LAST",
                    "QUIT",
                ],
                "bytewise: {bytewise}"
            );
        }
        let lines = transcript(
            config.clone(),
            b"EHLO c\r\nAUTH PLAIN AGFubgBzZWNyZXQ=\r\n",
            false,
        );
        assert_eq!(lines, ["EHLO c", "AUTH PLAIN ***"]);
        // A client that sends on after a refusal: content after a refused DATA, AUTH LOGIN
        // answers after a refused AUTH. None of it is shown.
        let input = b"DATA\r\nSubject: secret plans\r\n.\r\nAUTH CRAM-MD5\r\nYW5u\r\nc2VjcmV0\r\n";
        for bytewise in [false, true] {
            let lines = transcript(config.clone(), input, bytewise);
            assert_eq!(
                lines,
                [
                    "DATA",
                    "(not a command, 21 bytes)",
                    "(not a command, 1 bytes)",
                    "AUTH CRAM-MD5",
                    "(not a command, 4 bytes)",
                    "(not a command, 8 bytes)",
                ],
                "bytewise: {bytewise}"
            );
        }
    }
}
