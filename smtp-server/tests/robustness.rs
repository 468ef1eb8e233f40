//! The driver under load and misbehaviour, over loopback, every wait bounded: concurrency,
//! handler panics, shutdown mid-DATA, the connection limit, timeouts.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Capture, Raw, WAIT};
use smtp_server::smtp_proto::{ForwardPath, RcptParams, Reply};
use smtp_server::{Body, Context, Handler, Listen, Server, async_trait};

async fn send_one(addr: std::net::SocketAddr, n: usize) -> bool {
    let mut c = Raw::connect(addr).await;
    assert_eq!(c.code().await, 220);
    c.send(&format!(
        "EHLO c{n}\r\nMAIL FROM:<s{n}@example.com>\r\nRCPT TO:<r@example.net>\r\nDATA\r\n"
    ))
    .await;
    for want in [250, 250, 250, 354] {
        assert_eq!(c.code().await, want);
    }
    c.send(&format!("Subject: {n}\r\n\r\nmessage {n}\r\n.\r\nQUIT\r\n"))
        .await;
    c.code().await == 250 && c.code().await == 221
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_concurrent_connections() {
    const N: usize = 500;
    let capture = Capture::default();
    let server = common::spawn(capture.clone()).await;
    let addr = server.local_addr().unwrap();
    let clients: Vec<_> = (0..N).map(|n| tokio::spawn(send_one(addr, n))).collect();
    for c in clients {
        assert!(tokio::time::timeout(WAIT, c).await.unwrap().unwrap());
    }
    let got = capture.wait_for(N).await;
    let mut subjects: Vec<usize> = got
        .iter()
        .map(|m| {
            m.message
                .parsed()
                .unwrap()
                .subject()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    subjects.sort_unstable();
    assert_eq!(
        subjects,
        (0..N).collect::<Vec<_>>(),
        "every message arrived once"
    );
    server.shutdown().await.unwrap();
}

/// Panics in `rcpt` for one address and in `data` for one subject.
#[derive(Clone, Default)]
struct Panicky(Capture);

#[async_trait]
impl Handler for Panicky {
    async fn rcpt(
        &self,
        _: &mut Context,
        to: &ForwardPath<'_>,
        _: &RcptParams<'_>,
    ) -> Result<(), Reply> {
        if to.to_string().contains("panic") {
            panic!("handler bug in rcpt");
        }
        Ok(())
    }

    async fn data(&self, ctx: &mut Context, body: Body) -> Result<(), Reply> {
        let msg = body.collect().await.map_err(|_| Reply::LOCAL_ERROR)?;
        if msg.raw().starts_with(b"panic") {
            panic!("handler bug in data");
        }
        let (tx, _) = (self.0.clone(), ());
        tx.messages.lock().unwrap().push(common::Captured {
            info: ctx.session().clone(),
            envelope: ctx.envelope().clone(),
            message: msg,
        });
        tx.arrived.notify_waiters();
        Ok(())
    }
}

#[tokio::test]
async fn handler_panics_cost_one_transaction() {
    let handler = Panicky::default();
    let server = common::spawn(handler.clone()).await;
    let addr = server.local_addr().unwrap();
    let mut c = Raw::connect(addr).await;
    assert_eq!(c.code().await, 220);
    assert_eq!(c.cmd("EHLO c").await, 250);
    assert_eq!(c.cmd("MAIL FROM:<a@example.com>").await, 250);
    let (code, text) = c.reply_to("RCPT TO:<panic@example.net>").await;
    assert_eq!((code, text.contains("4.3.0")), (451, true));
    assert_eq!(c.cmd("RCPT TO:<ok@example.net>").await, 250);
    assert_eq!(c.cmd("DATA").await, 354);
    c.send("panic here\r\n.\r\n").await;
    assert_eq!(c.code().await, 451, "a panic in data is a 451, never a 250");
    // The next transaction on the same connection succeeds.
    assert_eq!(c.cmd("MAIL FROM:<a@example.com>").await, 250);
    assert_eq!(c.cmd("RCPT TO:<ok@example.net>").await, 250);
    assert_eq!(c.cmd("DATA").await, 354);
    c.send("fine\r\n.\r\n").await;
    assert_eq!(c.code().await, 250);
    // And other connections never noticed.
    assert!(send_one(addr, 1).await);
    assert_eq!(handler.0.wait_for(2).await.len(), 2);
    server.shutdown().await.unwrap();
}

/// Slow to accept each message, so that a shutdown catches clients mid-DATA.
#[derive(Clone, Default)]
struct Slow {
    capture: Capture,
}

#[async_trait]
impl Handler for Slow {
    async fn data(&self, ctx: &mut Context, body: Body) -> Result<(), Reply> {
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.capture.data(ctx, body).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_while_clients_are_mid_data() {
    let handler = Slow::default();
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .shutdown_grace(Duration::from_secs(10))
        .handler(handler.clone())
        .bind()
        .await
        .unwrap()
        .spawn();
    let addr = server.local_addr().unwrap();
    let ready = Arc::new(tokio::sync::Barrier::new(21));
    let acked = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for n in 0..20 {
        let ready = Arc::clone(&ready);
        let acked = Arc::clone(&acked);
        clients.push(tokio::spawn(async move {
            let mut c = Raw::connect(addr).await;
            assert_eq!(c.code().await, 220);
            c.send(&format!(
                "EHLO c\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<r{n}@example.net>\r\nDATA\r\n"
            ))
            .await;
            for want in [250, 250, 250, 354] {
                assert_eq!(c.code().await, want);
            }
            c.send("Subject: half\r\n\r\nfirst half\r\n").await;
            ready.wait().await;
            tokio::time::sleep(Duration::from_millis(20 * n)).await;
            c.send("second half\r\n.\r\n").await;
            let (code, _) = c.reply().await;
            if code == 250 {
                acked.fetch_add(1, Ordering::SeqCst);
            }
            code
        }));
    }
    ready.wait().await;
    let stop = tokio::spawn(server.shutdown());
    for c in clients {
        let code = tokio::time::timeout(WAIT, c).await.unwrap().unwrap();
        assert!(matches!(code, 250 | 421 | 0), "got {code}");
    }
    tokio::time::timeout(WAIT, stop)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    // Every 250 was preceded by the handler accepting the message, and nothing is lost.
    assert_eq!(handler.capture.count(), acked.load(Ordering::SeqCst));
    assert_eq!(
        acked.load(Ordering::SeqCst),
        20,
        "within the grace period every message finished"
    );
}

#[tokio::test]
async fn idle_sessions_get_421_on_shutdown() {
    let server = common::spawn(smtp_server::Sink).await;
    let mut c = Raw::connect(server.local_addr().unwrap()).await;
    assert_eq!(c.code().await, 220);
    assert_eq!(c.cmd("EHLO c").await, 250);
    let stop = tokio::spawn(server.shutdown());
    let (code, text) = c.reply().await;
    assert_eq!(code, 421);
    assert!(text.contains("4.3.2"));
    tokio::time::timeout(WAIT, stop)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn connection_limit() {
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .max_connections(2)
        .handler(smtp_server::Sink)
        .bind()
        .await
        .unwrap()
        .spawn();
    let addr = server.local_addr().unwrap();
    let mut a = Raw::connect(addr).await;
    let mut b = Raw::connect(addr).await;
    assert_eq!((a.code().await, b.code().await), (220, 220));
    let mut c = Raw::connect(addr).await;
    let (code, text) = c.reply().await;
    assert_eq!(code, 421);
    assert!(text.contains("4.7.0"));
    assert_eq!(c.code().await, 0, "and closed");
    // A slot frees up when a client leaves.
    assert_eq!(a.cmd("QUIT").await, 221);
    let mut ok = false;
    for _ in 0..50 {
        let mut d = Raw::connect(addr).await;
        if d.code().await == 220 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok);
    assert_eq!(b.cmd("NOOP").await, 250);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn timeouts_idle_stalled_and_slow_data() {
    let capture = Capture::default();
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .configure(|c| {
            c.timeouts.command = Duration::from_millis(300);
            c.timeouts.data = Duration::from_millis(300);
        })
        .handler(capture.clone())
        .bind()
        .await
        .unwrap()
        .spawn();
    let addr = server.local_addr().unwrap();
    // Idle.
    let mut c = Raw::connect(addr).await;
    assert_eq!(c.code().await, 220);
    let (code, text) = c.reply().await;
    assert_eq!((code, text.contains("4.4.2")), (421, true));
    assert_eq!(c.code().await, 0);
    // Stalled in DATA.
    let mut c = Raw::connect(addr).await;
    assert_eq!(c.code().await, 220);
    c.send("EHLO c\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n")
        .await;
    for want in [250, 250, 250, 354] {
        assert_eq!(c.code().await, want);
    }
    c.send("Subject: stalled\r\n").await;
    assert_eq!(c.code().await, 421);
    // Slow but live: a line every 100 ms for 1.5 s, five times the deadline.
    let mut c = Raw::connect(addr).await;
    assert_eq!(c.code().await, 220);
    c.send("EHLO c\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n")
        .await;
    for want in [250, 250, 250, 354] {
        assert_eq!(c.code().await, want);
    }
    c.send("Subject: slow\r\n\r\n").await;
    for i in 0..15 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        c.send(&format!("line {i}\r\n")).await;
    }
    c.send(".\r\n").await;
    assert_eq!(c.code().await, 250);
    assert_eq!(capture.wait_for(1).await.len(), 1);
    server.shutdown().await.unwrap();
}

#[cfg(unix)]
#[tokio::test]
async fn unix_socket_listener() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let path = std::env::temp_dir().join(format!("smtp-test-{}.sock", std::process::id()));
    let capture = Capture::default();
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .listener(Listen::unix(&path))
        .lmtp(true)
        .handler(capture.clone())
        .bind()
        .await
        .unwrap()
        .spawn();
    let stream = tokio::net::UnixStream::connect(&path).await.unwrap();
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    w.write_all(b"LHLO c\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\nRCPT TO:<c@example.net>\r\nDATA\r\nSubject: unix\r\n\r\nx\r\n.\r\nQUIT\r\n")
        .await
        .unwrap();
    let mut codes = Vec::new();
    let mut line = String::new();
    while tokio::time::timeout(WAIT, r.read_line(&mut line))
        .await
        .unwrap()
        .unwrap()
        > 0
    {
        if line.as_bytes().get(3) == Some(&b' ') {
            codes.push(line[..3].to_string());
        }
        line.clear();
    }
    // RFC 2033 4.2: one reply per recipient after the message.
    assert_eq!(
        codes,
        [
            "220", "250", "250", "250", "250", "354", "250", "250", "221"
        ]
    );
    let got = capture.wait_for(1).await;
    assert_eq!(got[0].info.peer, None);
    server.shutdown().await.unwrap();
    let _ = std::fs::remove_file(&path);
}
