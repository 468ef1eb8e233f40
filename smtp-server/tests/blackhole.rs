//! Blackhole's jobs with a real client (lettre): response modes, refusal codes, delays, the
//! `X-Blackhole-*` header switches, a seeded random mode, and per-listener profiles (two
//! listeners in one server answering differently).
//!
//! Delays are short and measured with a tolerance: at least the delay (a reply must never come
//! early), and less than the delay plus a generous margin (these machines are shared).

mod common;

use std::time::Duration;

use common::{Capture, MARGIN, send_mail, within};
use smtp_server::blackhole::{Blackhole, Delay, Mode};
use smtp_server::{Listen, Server};

#[tokio::test]
async fn modes_and_codes() {
    let cases: Vec<(Blackhole, u16)> = vec![
        (Blackhole::accept(), 250),
        (Blackhole::bounce(), 550),
        (Blackhole::bounce().code(554).unwrap(), 554),
        (Blackhole::tempfail(), 451),
        (Blackhole::tempfail().code(452).unwrap(), 452),
        (Blackhole::bounce().code(421).unwrap(), 421),
    ];
    for (handler, want) in cases {
        let mode = handler.mode();
        let server = common::spawn(handler).await;
        let (code, _) = send_mail(server.local_addr().unwrap().port(), "").await;
        assert_eq!(code, want, "mode {mode}");
        server.shutdown().await.unwrap();
    }
}

/// Several codes: one per refused message, from the set (Blackhole's own bounce mode).
#[tokio::test]
async fn several_refusal_codes() {
    let server = common::spawn(Blackhole::bounce().codes(&[450, 451, 552]).unwrap().seed(4)).await;
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..24 {
        seen.insert(send_mail(server.local_addr().unwrap().port(), "").await.0);
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), [450, 451, 552]);
    server.shutdown().await.unwrap();
}

/// The same seed gives the same answers for the same messages, run after run.
#[tokio::test]
async fn random_mode_repeats_with_a_seed() {
    let mut runs = Vec::new();
    for _ in 0..2 {
        let server = common::spawn(Blackhole::new(Mode::Random).seed(2026)).await;
        let mut codes = Vec::new();
        for _ in 0..24 {
            codes.push(send_mail(server.local_addr().unwrap().port(), "").await.0);
        }
        server.shutdown().await.unwrap();
        runs.push(codes);
    }
    assert_eq!(runs[0], runs[1]);
    assert!(
        runs[0].iter().all(|c| *c == 250 || *c == 550),
        "{:?}",
        runs[0]
    );
    assert!(
        runs[0].contains(&250) && runs[0].contains(&550),
        "{:?}",
        runs[0]
    );
}

#[tokio::test]
async fn fixed_delay_and_range() {
    let d = Duration::from_millis(400);
    let server = common::spawn(Blackhole::bounce().delay(Delay::fixed(d))).await;
    let (code, took) = send_mail(server.local_addr().unwrap().port(), "").await;
    assert_eq!(code, 550);
    within(took, d);
    server.shutdown().await.unwrap();

    let (min, max) = (Duration::from_millis(200), Duration::from_millis(500));
    let server = common::spawn(Blackhole::accept().seed(1).delay(Delay::range(min, max))).await;
    for _ in 0..3 {
        let (code, took) = send_mail(server.local_addr().unwrap().port(), "").await;
        assert_eq!(code, 250);
        assert!(took >= min && took < max + MARGIN, "{took:?}");
    }
    server.shutdown().await.unwrap();
}

/// Blackhole's dynamic switches: headers choose the mode and delay of one message.
#[tokio::test]
async fn header_switches() {
    let server = common::spawn(Blackhole::accept()).await;
    let port = server.local_addr().unwrap().port();
    assert_eq!(send_mail(port, "X-Blackhole-Mode: bounce\r\n").await.0, 550);
    assert_eq!(
        send_mail(port, "x-blackhole-mode: TempFail\r\n").await.0,
        451
    );
    assert_eq!(
        send_mail(port, "X-Blackhole-Mode: no-such-mode\r\n")
            .await
            .0,
        250
    );
    // The next message is not switched: a switch is for its own message only.
    assert_eq!(send_mail(port, "").await.0, 250);
    let (code, took) = send_mail(port, "X-Blackhole-Delay: 0.3\r\n").await;
    assert_eq!(code, 250);
    within(took, Duration::from_millis(300));
    let (code, took) = send_mail(
        port,
        "X-Blackhole-Delay: 0.2, 0.4\r\nX-Blackhole-Mode: bounce\r\n",
    )
    .await;
    assert_eq!(code, 550);
    assert!(took >= Duration::from_millis(200) && took < Duration::from_millis(400) + MARGIN);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn switches_can_be_turned_off_and_header_delays_are_capped() {
    let server = common::spawn(Blackhole::accept().switches(false)).await;
    let port = server.local_addr().unwrap().port();
    let (code, took) = send_mail(
        port,
        "X-Blackhole-Mode: bounce\r\nX-Blackhole-Delay: 30\r\n",
    )
    .await;
    assert_eq!(code, 250);
    assert!(took < MARGIN, "{took:?}");
    server.shutdown().await.unwrap();

    let cap = Duration::from_millis(300);
    let server = common::spawn(Blackhole::accept().max_switch_delay(cap)).await;
    let (code, took) = send_mail(
        server.local_addr().unwrap().port(),
        "X-Blackhole-Delay: 3600\r\n",
    )
    .await;
    assert_eq!(code, 250);
    within(took, cap);
    server.shutdown().await.unwrap();
}

/// Blackhole's per-listener flags, in the library: one server, one port that accepts and
/// stores, one that bounces after a delay, one that answers 451; the handler of the shared
/// listener sees which listener a session came in on.
#[tokio::test]
async fn per_listener_profiles() {
    let capture = Capture::default();
    let delay = Duration::from_millis(300);
    let server = Server::builder()
        .handler(capture.clone())
        .listener(Listen::tcp("127.0.0.1:0").name("store"))
        .listener(
            Listen::tcp("127.0.0.1:0")
                .name("bounce")
                .handler(Blackhole::bounce().delay(Delay::fixed(delay))),
        )
        .listener(
            Listen::tcp("127.0.0.1:0")
                .name("small")
                .configure(|c| c.limits.message_size = 10),
        )
        .bind()
        .await
        .unwrap()
        .spawn();
    let ports: Vec<u16> = server.local_addrs().iter().map(|a| a.port()).collect();
    let (code, took) = send_mail(ports[1], "").await;
    assert_eq!(code, 550);
    within(took, delay);
    assert_eq!(
        send_mail(ports[2], "").await.0,
        552,
        "the small listener's size limit"
    );
    assert_eq!(send_mail(ports[0], "").await.0, 250);
    let got = capture.wait_for(1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].info.listener, "store");
    server.shutdown().await.unwrap();
}
