//! Whole sessions in memory: one connection sends 1 KB messages pipelined (EHLO once, then
//! MAIL/RCPT/DATA/body repeated) through the Session, with a driver that accepts everything.
//! Reports messages per second (criterion) and allocations per transaction (a counting global
//! allocator, printed before the measurements).
//!
//! `cargo bench -p smtp-proto@0.1.0 --bench session`; the figures are in BENCHMARKS.md.

use std::alloc::System;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use smtp_proto::testing::{Decision, Peer, drive};
use smtp_proto::{CloseReason, Config, Event, Session};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const MESSAGES: usize = 10_000;

/// A driver that accepts everything and counts what it sees.
#[derive(Default)]
struct Sink {
    wrote: usize,
    body: usize,
    accepted: usize,
}

impl Peer for Sink {
    fn transmit(&mut self, bytes: &[u8]) {
        self.wrote += bytes.len();
    }
    fn content(&mut self, bytes: Bytes) {
        self.body += black_box(bytes).len();
    }
    fn event(&mut self, event: &Event, _: &Session) -> Decision {
        if matches!(event, Event::MessageEnd { .. }) {
            self.accepted += 1;
        }
        Decision::Accept
    }
    fn closed(&mut self, _: CloseReason) {}
}

/// Runs one session over `input`, read the way a driver reads a socket: straight into the
/// session's buffer, as much as it takes at a time (one copy, as `read(2)` makes), then the
/// shared drive loop (`smtp_proto::testing::drive`) for the outputs. Returns messages accepted
/// and bytes written.
fn run(config: &Arc<Config>, input: &[u8]) -> (usize, usize) {
    let now = Instant::now();
    let mut s = Session::new(Arc::clone(config), now);
    let mut sink = Sink::default();
    let mut none = Vec::new();
    let mut rest = input;
    drive(&mut s, now, &mut none, &mut sink);
    while !rest.is_empty() && !s.is_closed() {
        let n = s.input_capacity().min(rest.len()).min(64 * 1024);
        s.input_buffer().extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        s.handle_input(now);
        drive(&mut s, now, &mut none, &mut sink);
    }
    assert!(sink.body >= 1000 * MESSAGES);
    (sink.accepted, sink.wrote)
}

fn bench_session(c: &mut Criterion) {
    let input = smtp_proto::testing::pipelined_messages(MESSAGES);
    let config = Arc::new(Config::new("mx.example"));
    // Allocations, counted over one whole run outside the measurements.
    let region = Region::new(GLOBAL);
    let (accepted, _) = run(&config, &input);
    let stats = region.change();
    assert_eq!(accepted, MESSAGES);
    println!(
        "allocations: {} in total, {:.2} per transaction ({} bytes per transaction)",
        stats.allocations,
        stats.allocations as f64 / MESSAGES as f64,
        stats.bytes_allocated / MESSAGES
    );
    // One run only, for an instruction count that does not depend on the machine's load:
    // `SESSION_BENCH_ONCE=1 valgrind --tool=callgrind <bench binary> --bench`.
    if std::env::var_os("SESSION_BENCH_ONCE").is_some() {
        return;
    }
    let mut group = c.benchmark_group("session");
    group.throughput(Throughput::Elements(MESSAGES as u64));
    group.bench_function("pipelined_1kb_messages", |b| {
        b.iter(|| assert_eq!(run(&config, &input).0, MESSAGES))
    });
    group.finish();
}

criterion_group!(benches, bench_session);
criterion_main!(benches);
