//! The wire layer beside Stalwart's `smtp-proto` 0.2 on the same inputs, in the same run:
//! (a) a pipelined mix of MAIL/RCPT/RSET/NOOP lines; (b) a 1 MB DATA body of 70-80 octet lines,
//! some needing unstuffing, fed in 8 KiB reads.
//!
//! `cargo bench -p smtp-proto@0.1.0 --bench parse`; the figures are in BENCHMARKS.md.
//!
//! On a shared machine the two sides of a criterion group are measured minutes apart, and a
//! neighbour's load can move the ratio by 20 %. `PARSE_BENCH_INTERLEAVED=1` instead runs both
//! parsers (and both decoders) in alternation, 100 rounds, and prints the best time of each and
//! their ratio: the figure to quote.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group};
use smtp_proto::{BareLineEndings, Command, DataDecoder, Decoded, Framed, LineFramer};
use stalwart_smtp_proto as stalwart;

/// Deterministic pseudo-random numbers, so every run sees the same input.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn commands(count: usize) -> Vec<u8> {
    let mut rng = Lcg(1);
    let mut out = Vec::new();
    for i in 0..count {
        let line = match rng.next(4) {
            0 => format!(
                "MAIL FROM:<sender{i}@example.com> SIZE={} BODY=8BITMIME\r\n",
                i * 7
            ),
            1 => format!("RCPT TO:<recipient.{i}@mail.example.org> NOTIFY=FAILURE\r\n"),
            2 => "RSET\r\n".to_string(),
            _ => "NOOP\r\n".to_string(),
        };
        out.extend_from_slice(line.as_bytes());
    }
    out
}

/// About 1 MB of 70-80 octet lines; one line in 20 starts with a dot (stuffed), then the end.
fn body() -> Vec<u8> {
    let mut rng = Lcg(7);
    let mut out = Vec::with_capacity(1 << 20);
    out.extend_from_slice(b"From: a@example.com\r\nTo: b@example.org\r\nSubject: bench\r\n\r\n");
    while out.len() < 1 << 20 {
        let len = 70 + rng.next(11) as usize;
        if rng.next(20) == 0 {
            out.extend_from_slice(b"..");
        }
        out.extend((0..len).map(|i| b"abcdefghijklmnopqrstuvwxyz ABCDEFG"[(i * 7 + len) % 34]));
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// Frames and parses every line of `input` as a server would; how many parsed. The result
/// is passed by reference to `black_box`, as Stalwart's request is in [`parse_stalwart`].
fn parse_ours(input: &[u8]) -> usize {
    let mut framer = LineFramer::new(512);
    let (mut pos, mut n) = (0, 0);
    while let Framed::Line { line, consumed } = framer.next_line(&input[pos..]) {
        pos += consumed;
        let command = Command::parse(line);
        black_box(&command);
        n += usize::from(command.is_ok());
    }
    n
}

/// Stalwart's `RequestReceiver` over the same input; how many requests it read.
fn parse_stalwart(input: &[u8]) -> usize {
    let mut receiver = stalwart::request::receiver::RequestReceiver::default();
    let (mut bytes, mut n) = (input.iter(), 0);
    loop {
        match receiver.ingest(&mut bytes) {
            Ok(request) => {
                black_box(&request);
                n += 1;
            }
            Err(stalwart::Error::NeedsMoreData { .. }) => return n,
            Err(e) => panic!("{e:?}"),
        }
    }
}

/// Decodes `body` fed in 8 KiB reads, handing each piece of the message to `out`.
fn decode_ours(body: &[u8], policy: BareLineEndings, mut out: impl FnMut(&[u8])) {
    let mut dec = DataDecoder::with_policy(u64::MAX, policy);
    for read in body.chunks(8192) {
        let mut pos = 0;
        loop {
            match dec.decode(&read[pos..]) {
                Decoded::Data { data, consumed } => {
                    out(data);
                    pos += consumed;
                }
                Decoded::End { .. } => return,
                Decoded::NeedMore => break,
            }
        }
    }
}

/// Stalwart's `DataReceiver` over `body` in 8 KiB reads, into `message` (its only API).
fn decode_stalwart(body: &[u8], message: &mut Vec<u8>) {
    message.clear();
    let mut rx = stalwart::request::receiver::DataReceiver::new();
    for read in body.chunks(8192) {
        if rx.ingest(&mut read.iter(), message) {
            break;
        }
    }
}

/// Decodes `body` handing out slices; the message's length.
fn decode_slices(body: &[u8], policy: BareLineEndings) -> usize {
    let mut total = 0;
    decode_ours(body, policy, |data| total += black_box(data).len());
    total
}

/// Decodes `body` into `message`, as a handler that buffers would (and as Stalwart must).
fn decode_into(body: &[u8], policy: BareLineEndings, message: &mut Vec<u8>) {
    message.clear();
    decode_ours(body, policy, |data| message.extend_from_slice(data));
}

fn bench_commands(c: &mut Criterion) {
    const COUNT: usize = 10_000;
    let input = commands(COUNT);
    let mut group = c.benchmark_group("commands");
    group.throughput(Throughput::Elements(COUNT as u64));
    group.bench_function("ours", |b| b.iter(|| assert_eq!(parse_ours(&input), COUNT)));
    group.bench_function("stalwart", |b| {
        b.iter(|| assert_eq!(parse_stalwart(&input), COUNT))
    });
    group.finish();
}

fn bench_data(c: &mut Criterion) {
    let input = body();
    let mut group = c.benchmark_group("data_1mb_8k_reads");
    group.throughput(Throughput::Bytes(input.len() as u64));
    for policy in [BareLineEndings::Normalize, BareLineEndings::Keep] {
        group.bench_function(format!("ours_slices_{policy:?}"), |b| {
            b.iter(|| assert!(decode_slices(&input, policy) > 1_000_000))
        });
    }
    // Collecting into a Vec, as Stalwart does: the same work a handler that buffers would do.
    for policy in [BareLineEndings::Normalize, BareLineEndings::Keep] {
        group.bench_function(format!("ours_into_vec_{policy:?}"), |b| {
            let mut message = Vec::with_capacity(input.len());
            b.iter(|| {
                decode_into(&input, policy, &mut message);
                assert!(message.len() > 1_000_000);
            })
        });
    }
    group.bench_function("stalwart_into_vec", |b| {
        let mut message = Vec::with_capacity(input.len());
        b.iter(|| {
            decode_stalwart(&input, &mut message);
            assert!(message.len() > 1_000_000);
        })
    });
    group.finish();
}

/// Runs each of `runs` for `rounds` rounds in alternation; the best time per round of each.
fn interleaved(rounds: usize, runs: &mut [&mut dyn FnMut()]) -> Vec<f64> {
    let mut best = vec![f64::MAX; runs.len()];
    for _ in 0..rounds {
        for (i, run) in runs.iter_mut().enumerate() {
            let start = std::time::Instant::now();
            run();
            best[i] = best[i].min(start.elapsed().as_secs_f64());
        }
    }
    best
}

fn print_interleaved() {
    let input = commands(10_000);
    let best = interleaved(
        100,
        &mut [&mut || assert_eq!(parse_ours(&input), 10_000), &mut || {
            assert_eq!(parse_stalwart(&input), 10_000)
        }],
    );
    println!(
        "commands: ours {:.1} ns, Stalwart {:.1} ns per command: ours {:.2}x",
        best[0] * 1e5,
        best[1] * 1e5,
        best[1] / best[0]
    );
    let body = body();
    let (mut copy, mut message) = (Vec::new(), Vec::new());
    let best = interleaved(
        100,
        &mut [
            &mut || assert!(decode_slices(&body, BareLineEndings::Normalize) > 1_000_000),
            &mut || decode_into(&body, BareLineEndings::Normalize, &mut copy),
            &mut || decode_stalwart(&body, &mut message),
        ],
    );
    assert!(copy.len() > 1_000_000 && message.len() > 1_000_000);
    let gib = |secs: f64| body.len() as f64 / secs / f64::from(1u32 << 30);
    println!(
        "data: ours (Normalize, slices) {:.2} GiB/s, ours (Normalize, into a Vec) {:.2} GiB/s, \
         Stalwart (into a Vec) {:.2} GiB/s: ours {:.2}x and {:.2}x",
        gib(best[0]),
        gib(best[1]),
        gib(best[2]),
        best[2] / best[0],
        best[2] / best[1]
    );
}

criterion_group!(benches, bench_commands, bench_data);

fn main() {
    if std::env::var_os("PARSE_BENCH_INTERLEAVED").is_some() {
        print_interleaved();
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
