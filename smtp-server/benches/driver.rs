//! The real connection driver end to end, in memory: one connection over a `tokio::io::duplex`
//! pipe, `serve_stream` with the `Sink` handler, a client that pipelines 1 KB messages (EHLO
//! once, then MAIL/RCPT/DATA/body repeated). Everything runs on one current-thread runtime.
//!
//! Reports allocations per message (a counting global allocator: a run of `MESSAGES` messages
//! minus a run of none, divided by `MESSAGES`; printed before the measurements) and messages
//! per second (criterion).
//!
//! `cargo bench -p smtp-server --bench driver`; the figures are in BENCHMARKS.md.
//! `DRIVER_BENCH_ONCE=1 valgrind --tool=callgrind <bench binary> --bench` runs one pass only.

use std::alloc::System;
use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use smtp_proto::Config;
use smtp_server::Sink;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const MESSAGES: usize = 10_000;
/// The pipe's capacity each way: a socket buffer's order of magnitude.
const PIPE: usize = 64 * 1024;

/// One connection: the client writes `input` in socket-sized pieces and reads every reply
/// until the server closes. Returns the bytes of replies read.
async fn one_connection(input: &[u8]) -> usize {
    let (mut client, server) = tokio::io::duplex(PIPE);
    let serve = smtp_server::serve_stream(server, Config::new("bench.example"), Sink, None);
    let talk = async {
        let (mut rx, mut tx) = tokio::io::split(&mut client);
        let write = async {
            for piece in input.chunks(PIPE) {
                tx.write_all(piece).await.expect("write");
            }
        };
        let read = async {
            let mut buf = vec![0u8; PIPE];
            let mut total = 0;
            loop {
                match rx.read(&mut buf).await {
                    Ok(0) | Err(_) => break total,
                    Ok(n) => total += n,
                }
            }
        };
        tokio::join!(write, read).1
    };
    let (served, read) = tokio::join!(serve, talk);
    served.expect("serve_stream");
    read
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Allocations (count, bytes) of one connection sending `messages` messages.
fn allocations(rt: &tokio::runtime::Runtime, messages: usize) -> (usize, usize) {
    let input = smtp_proto::testing::pipelined_messages(messages);
    let region = Region::new(GLOBAL);
    let read = rt.block_on(one_connection(&input));
    let stats = region.change();
    black_box(read);
    (stats.allocations, stats.bytes_allocated)
}

fn report_allocations() {
    let rt = runtime();
    // Warm up: the runtime's and the process's one-time allocations happen outside the count.
    allocations(&rt, 10);
    let (base_n, base_b) = allocations(&rt, 0);
    let (n, b) = allocations(&rt, MESSAGES);
    let per = (n - base_n) as f64 / MESSAGES as f64;
    let bytes = (b - base_b) as f64 / MESSAGES as f64;
    println!(
        "driver: {per:.2} allocations per 1 KB message ({bytes:.0} octets), \
         {base_n} for a connection with no message"
    );
}

fn bench(c: &mut Criterion) {
    report_allocations();
    if std::env::var_os("DRIVER_BENCH_ONCE").is_some() {
        return;
    }
    let rt = runtime();
    let input = smtp_proto::testing::pipelined_messages(MESSAGES);
    let mut group = c.benchmark_group("driver");
    group.throughput(Throughput::Elements(MESSAGES as u64));
    group.sample_size(20);
    group.bench_function("pipelined 1 KB, sink", |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            for _ in 0..iters {
                black_box(rt.block_on(one_connection(&input)));
            }
            started.elapsed()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
