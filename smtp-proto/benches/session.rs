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

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use smtp_proto::{Config, Output, Session};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const MESSAGES: usize = 10_000;

fn client_bytes() -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < 1000 {
        body.extend_from_slice(
            b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\r\n",
        );
    }
    let mut out = b"EHLO client.example\r\n".to_vec();
    for i in 0..MESSAGES {
        out.extend_from_slice(
            format!(
                "MAIL FROM:<sender{}@example.com>\r\nRCPT TO:<rcpt@example.org>\r\nDATA\r\n",
                i % 10
            )
            .as_bytes(),
        );
        out.extend_from_slice(&body);
        out.extend_from_slice(b".\r\n");
    }
    out.extend_from_slice(b"QUIT\r\n");
    out
}

/// Runs one session over `input`, fed in 64 KiB reads; returns messages accepted and bytes
/// written.
fn run(config: &Arc<Config>, input: &[u8]) -> (usize, usize) {
    let now = Instant::now();
    let mut s = Session::new(Arc::clone(config), now);
    let mut buf: Vec<u8> = Vec::with_capacity(128 * 1024);
    let mut wrote = 0;
    let mut body = 0;
    let mut accepted = 0;
    let mut reads = input.chunks(64 * 1024);
    let drain = |s: &mut Session, wrote: &mut usize, accepted: &mut usize| {
        while let Some(out) = s.poll_output() {
            match out {
                Output::Transmit(bytes) => *wrote += bytes.len(),
                Output::Event(e) => {
                    if e.needs_decision() {
                        if matches!(e, smtp_proto::Event::MessageEnd { .. }) {
                            *accepted += 1;
                        }
                        s.accept(now);
                    }
                }
                Output::Closed(_) => return true,
            }
        }
        false
    };
    if drain(&mut s, &mut wrote, &mut accepted) {
        return (accepted, wrote);
    }
    // Consumed bytes are skipped with an offset and compacted only before the next read, as a
    // real driver does (draining the buffer on every step would cost a memmove each time).
    let mut pos = 0;
    loop {
        let used = s.handle_input(now, &buf[pos..]);
        let n = used.bytes;
        if let Some(chunk) = used.body {
            body += black_box(chunk).len();
        }
        let had_body = used.body.is_some();
        pos += n;
        if drain(&mut s, &mut wrote, &mut accepted) {
            break;
        }
        if n == 0 && !had_body && !s.is_pending() {
            buf.drain(..pos);
            pos = 0;
            match reads.next() {
                Some(read) => buf.extend_from_slice(read),
                None => break,
            }
        }
    }
    assert!(body >= 1000 * MESSAGES);
    (accepted, wrote)
}

fn bench_session(c: &mut Criterion) {
    let input = client_bytes();
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
    let mut group = c.benchmark_group("session");
    group.throughput(Throughput::Elements(MESSAGES as u64));
    group.bench_function("pipelined_1kb_messages", |b| {
        b.iter(|| assert_eq!(run(&config, &input).0, MESSAGES))
    });
    group.finish();
}

criterion_group!(benches, bench_session);
criterion_main!(benches);
