//! Trace headers (RFC 5321 4.4): `Received` with the RFC 3848 / RFC 6531 `with` keywords.

use std::time::{SystemTime, UNIX_EPOCH};

use smtp_proto::Envelope;

use crate::handler::SessionInfo;

/// The `with` keyword of a `Received` header (RFC 3848; RFC 6531 3.7.3 for SMTPUTF8):
/// `ESMTP`, `LMTP` or `UTF8SMTP`/`UTF8LMTP`, then `S` for TLS, `A` for AUTH.
pub fn with_protocol(info: &SessionInfo, smtputf8: bool) -> String {
    let mut p = String::from(match (smtputf8, info.lmtp) {
        (false, false) => "ESMTP",
        (false, true) => "LMTP",
        (true, false) => "UTF8SMTP",
        (true, true) => "UTF8LMTP",
    });
    if info.tls.is_some() {
        p.push('S');
    }
    if info.auth.is_some() {
        p.push('A');
    }
    p
}

/// A `Received` trace header (RFC 5321 4.4), ending in CRLF: the client's HELO name and
/// address, our name, the protocol (RFC 3848), the message's id (the one in the `250` reply),
/// and the time.
pub fn received_header(info: &SessionInfo, envelope: &Envelope, by: &str) -> String {
    let protocol = with_protocol(info, envelope.params.smtputf8);
    let from = info.helo.as_deref().unwrap_or("unknown");
    let addr = info
        .client_addr()
        .map_or_else(|| "local".to_string(), |a| format!("[{}]", a.ip()));
    let id = info
        .queue_id
        .clone()
        .unwrap_or_else(|| format!("{:X}", info.id));
    format!(
        "Received: from {from} ({addr})\r\n\tby {by} with {protocol} id {id};\r\n\t{}\r\n",
        rfc5322_date(SystemTime::now())
    )
}

/// An RFC 5322 date in UTC, such as `Sun, 22 Nov 2026 08:04:17 +0000` (mail-parser's
/// `DateTime` writes it).
pub fn rfc5322_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    mail_parser::DateTime::from_timestamp(i64::try_from(secs).unwrap_or(i64::MAX)).to_rfc822()
}

/// A time as RFC 3339 in UTC with milliseconds, such as `2026-11-30T05:07:26.123Z` (the
/// JetStream handler's `SMTP-Received-At`, the HTTP API's times).
#[cfg_attr(not(any(feature = "jetstream", feature = "http")), allow(dead_code))]
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    let t = mail_parser::DateTime::from_timestamp(secs);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year,
        t.month,
        t.day,
        t.hour,
        t.minute,
        t.second,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn with_keywords() {
        let mut info = SessionInfo::default();
        let table = [
            (false, false, false, false, "ESMTP"),
            (false, true, false, false, "ESMTPS"),
            (false, true, true, false, "ESMTPSA"),
            (false, false, true, false, "ESMTPA"),
            (true, false, false, false, "LMTP"),
            (true, true, true, false, "LMTPSA"),
            (false, false, false, true, "UTF8SMTP"),
            (false, true, true, true, "UTF8SMTPSA"),
            (true, false, true, true, "UTF8LMTPA"),
        ];
        for (lmtp, tls, auth, utf8, want) in table {
            info.lmtp = lmtp;
            info.tls = tls.then(crate::TlsInfo::default);
            info.auth = auth.then(|| "ann".to_string());
            assert_eq!(with_protocol(&info, utf8), want);
        }
    }

    #[test]
    fn rfc3339_times() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_795_334_657_123);
        assert_eq!(rfc3339(t), "2026-11-22T08:04:17.123Z");
    }

    #[test]
    fn dates() {
        assert_eq!(rfc5322_date(UNIX_EPOCH), "Thu, 1 Jan 1970 00:00:00 +0000");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_334_657);
        assert_eq!(rfc5322_date(t), "Sun, 22 Nov 2026 08:04:17 +0000");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc5322_date(leap), "Tue, 29 Feb 2000 00:00:00 +0000");
    }
}
