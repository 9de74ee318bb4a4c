//! netstrata-frame's `LengthDelimited` against tokio-util's
//! `LengthDelimitedCodec`, default settings on both sides, same input.
//!
//! Criterion measures decoding a buffer of many frames (setup, cloning the
//! input, is not timed) and encoding as many messages into a buffer with room
//! for them (its pages touched in setup). Afterwards, under `cargo bench`, the
//! binary prints the ratio of frames per second, ours over tokio-util's, two
//! ways: from criterion's estimates of this run (`estimates.json`, if found
//! and written by this run), and from a short interleaved timing of both
//! sides (best of many runs, input warm in cache, so both see the same
//! machine state).

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use bytes::BytesMut;
use criterion::{BatchSize, Criterion, Throughput};
use netstrata_frame::{Codec, LengthDelimited};
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

/// A frame size and how many frames one iteration handles.
#[derive(Clone, Copy)]
struct Case {
    name: &'static str,
    frame_len: usize,
    frames: usize,
}

const CASES: [Case; 2] = [
    Case {
        name: "64B",
        frame_len: 64,
        frames: 4096,
    },
    Case {
        name: "16KiB",
        frame_len: 16 * 1024,
        frames: 256,
    },
];

fn payload(case: Case) -> Vec<u8> {
    (0..case.frame_len).map(|i| i as u8).collect()
}

/// `case.frames` frames of `case.frame_len` bytes, 4-byte big-endian lengths.
fn wire(case: Case) -> BytesMut {
    let payload = payload(case);
    let mut codec = LengthDelimited::new();
    let mut wire = BytesMut::with_capacity(case.frames * (4 + case.frame_len));
    for _ in 0..case.frames {
        Codec::encode(&mut codec, &payload, &mut wire).expect("encodable");
    }
    wire
}

fn decode_ours(mut src: BytesMut) -> usize {
    let mut codec = LengthDelimited::new();
    let mut frames = 0;
    while let Some(frame) = Codec::decode(&mut codec, &mut src).expect("valid input") {
        black_box(frame);
        frames += 1;
    }
    frames
}

fn decode_tokio(mut src: BytesMut) -> usize {
    let mut codec = LengthDelimitedCodec::new();
    let mut frames = 0;
    while let Some(frame) = Decoder::decode(&mut codec, &mut src).expect("valid input") {
        black_box(frame);
        frames += 1;
    }
    frames
}

fn encode_ours(payload: &[u8], frames: usize, mut dst: BytesMut) -> BytesMut {
    let mut codec = LengthDelimited::new();
    for _ in 0..frames {
        Codec::encode(&mut codec, black_box(payload), &mut dst).expect("encodable");
    }
    dst
}

fn encode_tokio(payload: &[u8], frames: usize, mut dst: BytesMut) -> BytesMut {
    let mut codec = LengthDelimitedCodec::new();
    for _ in 0..frames {
        Encoder::<&[u8]>::encode(&mut codec, black_box(payload), &mut dst).expect("encodable");
    }
    dst
}

fn bench_decode(c: &mut Criterion) {
    for case in CASES {
        let input = wire(case);
        assert_eq!(decode_ours(input.clone()), case.frames);
        assert_eq!(decode_tokio(input.clone()), case.frames);
        let mut group = c.benchmark_group(format!("decode-{}", case.name));
        group.throughput(Throughput::Elements(case.frames as u64));
        group.bench_function("netstrata", |b| {
            b.iter_batched(|| input.clone(), decode_ours, BatchSize::LargeInput)
        });
        group.bench_function("tokio-util", |b| {
            b.iter_batched(|| input.clone(), decode_tokio, BatchSize::LargeInput)
        });
        group.finish();
    }
}

/// An empty buffer with room for `room` bytes, its pages already touched so
/// that page faults are not timed.
fn empty_buffer(room: usize) -> BytesMut {
    let mut buf = BytesMut::zeroed(room);
    buf.clear();
    buf
}

fn bench_encode(c: &mut Criterion) {
    for case in CASES {
        let payload = payload(case);
        let room = case.frames * (4 + case.frame_len);
        let mut group = c.benchmark_group(format!("encode-{}", case.name));
        group.throughput(Throughput::Elements(case.frames as u64));
        group.bench_function("netstrata", |b| {
            b.iter_batched(
                || empty_buffer(room),
                |dst| encode_ours(&payload, case.frames, dst),
                BatchSize::LargeInput,
            )
        });
        group.bench_function("tokio-util", |b| {
            b.iter_batched(
                || empty_buffer(room),
                |dst| encode_tokio(&payload, case.frames, dst),
                BatchSize::LargeInput,
            )
        });
        group.finish();
    }
}

/// Best time of `run(setup())` over interleaved rounds of both sides, for
/// about `budget`.
fn best_of<S, T>(
    budget: Duration,
    mut setup: impl FnMut() -> S,
    mut ours: impl FnMut(S) -> T,
    mut theirs: impl FnMut(S) -> T,
) -> (Duration, Duration) {
    let mut best = (Duration::MAX, Duration::MAX);
    let start = Instant::now();
    let mut rounds = 0;
    while rounds < 20 || start.elapsed() < budget {
        let input = setup();
        let t = Instant::now();
        black_box(ours(input));
        best.0 = best.0.min(t.elapsed());
        let input = setup();
        let t = Instant::now();
        black_box(theirs(input));
        best.1 = best.1.min(t.elapsed());
        rounds += 1;
    }
    best
}

/// Criterion's estimate (slope, else mean), in ns per iteration, of
/// `group/function`, if this run wrote it (after `since`).
fn criterion_estimate(group: &str, function: &str, since: SystemTime) -> Option<f64> {
    let dirs = [
        std::env::var_os("CRITERION_HOME").map(PathBuf::from),
        std::env::var_os("CARGO_TARGET_DIR").map(|d| PathBuf::from(d).join("criterion")),
        Some(PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/target/criterion"
        ))),
    ];
    let path = dirs
        .into_iter()
        .flatten()
        .map(|dir| dir.join(group).join(function).join("new/estimates.json"))
        .find(|path| {
            std::fs::metadata(path)
                .and_then(|m| m.modified())
                .is_ok_and(|modified| modified >= since)
        })?;
    let json = std::fs::read_to_string(path).ok()?;
    let estimate = |key: &str| -> Option<f64> {
        let rest = json.split_once(&format!("\"{key}\":"))?.1;
        let rest = rest.split_once("\"point_estimate\":")?.1;
        rest.split([',', '}']).next()?.trim().parse().ok()
    };
    // "slope" is null unless criterion sampled linearly.
    let slope = json
        .split_once("\"slope\":")
        .is_some_and(|(_, rest)| !rest.trim_start().starts_with("null"));
    if slope {
        estimate("slope")
    } else {
        estimate("mean")
    }
}

fn print_ratios(since: SystemTime) {
    let budget = Duration::from_millis(1500);
    println!();
    println!(
        "netstrata LengthDelimited::new() vs tokio-util LengthDelimitedCodec::new(), frames/s"
    );
    println!(
        "{:<14}{:>30}{:>40}",
        "", "criterion (this run)", "interleaved best-of (warm input)"
    );
    for case in CASES {
        let input = wire(case);
        let payload = payload(case);
        let room = case.frames * (4 + case.frame_len);
        let decode = best_of(budget, || input.clone(), decode_ours, decode_tokio);
        let encode = best_of(
            budget,
            || empty_buffer(room),
            |dst| encode_ours(&payload, case.frames, dst),
            |dst| encode_tokio(&payload, case.frames, dst),
        );
        for (op, (ours, theirs)) in [("decode", decode), ("encode", encode)] {
            let group = format!("{op}-{}", case.name);
            let rate = |secs: f64| case.frames as f64 / secs / 1e6;
            let from_criterion = match (
                criterion_estimate(&group, "netstrata", since),
                criterion_estimate(&group, "tokio-util", since),
            ) {
                (Some(ours), Some(theirs)) => format!(
                    "{:>6.1} vs {:>6.1} M/s = {:.2}x",
                    rate(ours / 1e9),
                    rate(theirs / 1e9),
                    theirs / ours
                ),
                _ => "not measured".to_string(),
            };
            println!(
                "{group:<14}{from_criterion:>30}{:>40}",
                format!(
                    "{:>6.1} vs {:>6.1} M/s = {:.2}x",
                    rate(ours.as_secs_f64()),
                    rate(theirs.as_secs_f64()),
                    theirs.as_secs_f64() / ours.as_secs_f64()
                ),
            );
        }
    }
}

fn main() {
    let start = SystemTime::now();
    let mut criterion = Criterion::default().configure_from_args();
    bench_decode(&mut criterion);
    bench_encode(&mut criterion);
    criterion.final_summary();
    // `cargo bench` passes --bench; `cargo test --benches` does not.
    if std::env::args().any(|arg| arg == "--bench") {
        print_ratios(start);
    }
}
