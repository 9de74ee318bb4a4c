//! netstrata-frame's `LengthDelimited` against tokio-util's
//! `LengthDelimitedCodec`, default settings on both sides, same input.
//!
//! Criterion measures decoding a buffer of many frames (setup, cloning the
//! input, is not timed) and encoding as many messages into a buffer with room
//! for them. Afterwards, under `cargo bench`, the binary prints the ratio of
//! frames per second, ours over tokio-util's, from a short interleaved timing
//! of both (best of many runs, so both see the same machine state).

use std::hint::black_box;
use std::time::{Duration, Instant};

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

fn bench_encode(c: &mut Criterion) {
    for case in CASES {
        let payload = payload(case);
        let room = case.frames * (4 + case.frame_len);
        let mut group = c.benchmark_group(format!("encode-{}", case.name));
        group.throughput(Throughput::Elements(case.frames as u64));
        group.bench_function("netstrata", |b| {
            b.iter_batched(
                || BytesMut::with_capacity(room),
                |dst| encode_ours(&payload, case.frames, dst),
                BatchSize::LargeInput,
            )
        });
        group.bench_function("tokio-util", |b| {
            b.iter_batched(
                || BytesMut::with_capacity(room),
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

fn print_ratios() {
    let budget = Duration::from_millis(1500);
    println!(
        "\nframes/s, netstrata LengthDelimited::new() vs tokio-util LengthDelimitedCodec::new() (best of interleaved runs):"
    );
    for case in CASES {
        let input = wire(case);
        let payload = payload(case);
        let room = case.frames * (4 + case.frame_len);
        let decode = best_of(budget, || input.clone(), decode_ours, decode_tokio);
        let encode = best_of(
            budget,
            || BytesMut::with_capacity(room),
            |dst| encode_ours(&payload, case.frames, dst),
            |dst| encode_tokio(&payload, case.frames, dst),
        );
        for (op, (ours, theirs)) in [("decode", decode), ("encode", encode)] {
            let rate = |d: Duration| case.frames as f64 / d.as_secs_f64() / 1e6;
            println!(
                "  {op} {:>5}: netstrata {:>8.2} M/s, tokio-util {:>8.2} M/s, ratio {:.2}",
                case.name,
                rate(ours),
                rate(theirs),
                theirs.as_secs_f64() / ours.as_secs_f64(),
            );
        }
    }
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    bench_decode(&mut criterion);
    bench_encode(&mut criterion);
    criterion.final_summary();
    // `cargo bench` passes --bench; `cargo test --benches` does not.
    if std::env::args().any(|arg| arg == "--bench") {
        print_ratios();
    }
}
