//! The zstd layer against zstd's own raw streaming API, same level, same
//! flush pattern, in the same run.
//!
//! One iteration compresses one batch of length-delimited messages with one
//! flush (end of block) and decompresses it again:
//!
//! - raw zstd: `zstd::stream::raw::{Encoder, Decoder}` with the layer's
//!   default parameters (level 3, window 2^15, hash 2^14, chain 2^13, 16 KiB
//!   blocks), writing into reused `Vec`s: the baseline (goal: the layer
//!   within 5%, ratio >= 0.95);
//! - layer: `Zstd::handle_outbound` with `Flush::Batch`, then
//!   `Zstd::handle_inbound`, on reused `BytesMut`s, input copied in;
//! - connection (info): two `Connection`s with `LengthDelimited` over `Zstd`,
//!   messages sent one by one and decoded one by one;
//! - raw zstd, level-3 defaults (info): zstd's defaults (a 2 MiB window and
//!   about 3.5 MiB of context), for speed and ratio.
//!
//! Data: JSON-like log lines, or random bytes; messages of 64 B (64 per
//! batch) or 16 KiB (3 per batch), cut from a 4 MiB source so that batches
//! differ. Also printed: compression ratios and per-connection memory.
//!
//! Then, for a peer that starts a new frame per batch (2^21 window): the
//! layer's decoder keeping its context from one frame to the next against
//! dropping it at each boundary.
//!
//! `cargo bench --bench zstd -- --warm-up-time 1 --measurement-time 3`

#[path = "support/ratio.rs"]
mod ratio;

use std::hint::black_box;
use std::time::Instant;

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group};
use netstrata::{Connection, Flush, Inbound, Layer, Outbound};
use netstrata_frame::LengthDelimited;
use netstrata_zstd::{Zstd, ZstdConfig};
use zstd::stream::raw::{CParameter, DParameter, Decoder, Encoder, InBuffer, Operation, OutBuffer};
use zstd::zstd_safe::{CCtx, DCtx};

const SOURCE: usize = 4 << 20;
const CASES: [(usize, usize, &str); 2] = [(64, 64, "64B x 64"), (16 * 1024, 3, "16KiB x 3")];

/// xorshift64*.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// JSON-like log lines: a few services and paths, random ids and figures.
fn log_text(len: usize) -> Vec<u8> {
    const LEVELS: [&str; 6] = ["INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"];
    const SERVICES: [&str; 5] = ["api-gateway", "auth", "billing", "search", "orders"];
    const PATHS: [&str; 5] = [
        "/api/v1/users",
        "/api/v1/orders",
        "/api/v2/search",
        "/health",
        "/api/v1/cart/items",
    ];
    const STATUS: [u16; 9] = [200, 200, 200, 201, 204, 304, 400, 404, 500];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut ts = 1_717_243_200_000u64;
    let mut text = String::with_capacity(len + 300);
    while text.len() < len {
        ts += rng.next() % 50;
        let (a, id) = (rng.next(), rng.next());
        let pick = |shift: u32, n: usize| ((a >> shift) as usize) % n;
        text.push_str(&format!(
            "{{\"ts\":{ts},\"level\":\"{}\",\"service\":\"{}\",\"host\":\"web-{:02}\",\
             \"req_id\":\"{id:016x}\",\"path\":\"{}/{}\",\"status\":{},\"latency_ms\":{}.{},\
             \"bytes\":{}}}\n",
            LEVELS[pick(0, 6)],
            SERVICES[pick(8, 5)],
            pick(16, 32),
            PATHS[pick(32, 5)],
            pick(40, 100_000),
            STATUS[pick(20, 9)],
            pick(44, 900),
            pick(50, 10),
            pick(28, 65_536),
        ));
    }
    text.into_bytes()
}

fn random(len: usize) -> Vec<u8> {
    let mut rng = Rng(7);
    (0..len).map(|_| rng.next() as u8).collect()
}

/// One batch: its messages, and the same length-delimited as on the wire.
struct Batch {
    messages: Vec<Vec<u8>>,
    framed: Vec<u8>,
}

fn batches(source: &[u8], size: usize, per: usize) -> Vec<Batch> {
    source
        .chunks_exact(size)
        .collect::<Vec<_>>()
        .chunks_exact(per)
        .map(|msgs| Batch {
            messages: msgs.iter().map(|m| m.to_vec()).collect(),
            framed: msgs
                .iter()
                .flat_map(|m| {
                    (m.len() as u32)
                        .to_be_bytes()
                        .into_iter()
                        .chain(m.iter().copied())
                })
                .collect(),
        })
        .collect()
}

/// The layer's defaults, as raw zstd parameters.
fn same_params() -> [CParameter; 6] {
    let c = ZstdConfig::new();
    [
        CParameter::CompressionLevel(c.level()),
        CParameter::WindowLog(c.window_log()),
        CParameter::HashLog(c.hash_log()),
        CParameter::ChainLog(c.chain_log()),
        CParameter::MaxBlockSize(c.block_size()),
        CParameter::ContentSizeFlag(false),
    ]
}

/// A workload: batches in turn, counting bytes in and on the wire.
trait Run {
    fn round(&mut self);
    fn counts(&self) -> (u64, u64);
}

struct Raw<'a> {
    batches: &'a [Batch],
    next: usize,
    enc: Encoder<'static>,
    dec: Decoder<'static>,
    wire: Vec<u8>,
    plain: Vec<u8>,
    counts: (u64, u64),
}

impl<'a> Raw<'a> {
    fn new(batches: &'a [Batch], defaults: bool) -> Self {
        let mut enc = Encoder::new(3).unwrap();
        let mut dec = Decoder::new().unwrap();
        if !defaults {
            for p in same_params() {
                enc.set_parameter(p).unwrap();
            }
            dec.set_parameter(DParameter::WindowLogMax(ZstdConfig::new().max_window_log()))
                .unwrap();
        }
        let max = batches.iter().map(|b| b.framed.len()).max().unwrap();
        Self {
            batches,
            next: 0,
            enc,
            dec,
            wire: Vec::with_capacity(zstd::zstd_safe::compress_bound(max) + 1024),
            plain: Vec::with_capacity(max + 1024),
            counts: (0, 0),
        }
    }
}

impl Run for Raw<'_> {
    fn round(&mut self) {
        let batch = &self.batches[self.next].framed;
        self.next = (self.next + 1) % self.batches.len();
        self.wire.clear();
        let mut dst = OutBuffer::around(&mut self.wire);
        let mut src = InBuffer::around(batch);
        while src.pos() < batch.len() {
            self.enc.run(&mut src, &mut dst).unwrap();
        }
        while self.enc.flush(&mut dst).unwrap() != 0 {}
        self.plain.clear();
        let mut out = OutBuffer::around(&mut self.plain);
        let mut src = InBuffer::around(&self.wire);
        while src.pos() < self.wire.len() {
            self.dec.run(&mut src, &mut out).unwrap();
        }
        assert_eq!(self.plain.len(), batch.len());
        black_box(&self.plain);
        self.counts.0 += batch.len() as u64;
        self.counts.1 += self.wire.len() as u64;
    }

    fn counts(&self) -> (u64, u64) {
        self.counts
    }
}

struct Ours<'a> {
    batches: &'a [Batch],
    next: usize,
    tx: Zstd,
    rx: Zstd,
    input: BytesMut,
    wire: BytesMut,
    plain: BytesMut,
    now: Instant,
    counts: (u64, u64),
}

impl<'a> Ours<'a> {
    fn new(batches: &'a [Batch]) -> Self {
        Self {
            batches,
            next: 0,
            tx: Zstd::new(),
            rx: Zstd::new(),
            input: BytesMut::new(),
            wire: BytesMut::new(),
            plain: BytesMut::new(),
            now: Instant::now(),
            counts: (0, 0),
        }
    }
}

impl Run for Ours<'_> {
    fn round(&mut self) {
        let batch = &self.batches[self.next].framed;
        self.next = (self.next + 1) % self.batches.len();
        self.input.extend_from_slice(batch);
        self.wire.clear();
        self.tx
            .handle_outbound(
                Outbound::new(self.now, &mut self.input, Flush::Batch, &mut self.wire)
                    .with_lower_room(64 * 1024),
            )
            .unwrap();
        let wire = self.wire.len();
        self.plain.clear();
        self.rx
            .handle_inbound(
                Inbound::new(
                    self.now,
                    &mut self.wire,
                    &mut self.plain,
                    &mut BytesMut::new(),
                )
                .with_upper_room(8 << 20),
            )
            .unwrap();
        assert_eq!(self.plain.len(), batch.len());
        black_box(&self.plain);
        self.counts.0 += batch.len() as u64;
        self.counts.1 += wire as u64;
    }

    fn counts(&self) -> (u64, u64) {
        self.counts
    }
}

struct Conns<'a> {
    batches: &'a [Batch],
    next: usize,
    tx: Connection<Zstd, LengthDelimited>,
    rx: Connection<Zstd, LengthDelimited>,
    now: Instant,
    counts: (u64, u64),
}

impl<'a> Conns<'a> {
    fn new(batches: &'a [Batch]) -> Self {
        Self {
            batches,
            next: 0,
            tx: Connection::new(Zstd::new(), LengthDelimited::new()),
            rx: Connection::new(Zstd::new(), LengthDelimited::new()),
            now: Instant::now(),
            counts: (0, 0),
        }
    }
}

impl Run for Conns<'_> {
    fn round(&mut self) {
        let batch = &self.batches[self.next];
        self.next = (self.next + 1) % self.batches.len();
        for m in &batch.messages {
            self.tx.send(m).unwrap();
        }
        let mut got = 0;
        while let Some(wire) = self.tx.poll_transmit(self.now).unwrap() {
            let n = self.rx.handle_input(self.now, wire).unwrap();
            self.tx.advance_transmit(n);
            self.counts.1 += n as u64;
            while let Some(m) = self.rx.poll_message(self.now).unwrap() {
                black_box(m);
                got += 1;
            }
        }
        assert_eq!(got, batch.messages.len());
        self.counts.0 += batch.framed.len() as u64;
    }

    fn counts(&self) -> (u64, u64) {
        self.counts
    }
}

fn data() -> [(&'static str, Vec<u8>); 2] {
    [("text", log_text(SOURCE)), ("random", random(SOURCE))]
}

fn bench(c: &mut Criterion) {
    for (kind, source) in data() {
        for (size, per, label) in CASES {
            let batches = batches(&source, size, per);
            let mut g = c.benchmark_group(format!("zstd/{kind}/{label}"));
            g.throughput(Throughput::Bytes(batches[0].framed.len() as u64));
            let mut raw = Raw::new(&batches, false);
            g.bench_function("raw zstd", |b| b.iter(|| raw.round()));
            let mut ours = Ours::new(&batches);
            g.bench_function("layer", |b| b.iter(|| ours.round()));
            let mut conns = Conns::new(&batches);
            g.bench_function("connection", |b| b.iter(|| conns.round()));
            let mut defaults = Raw::new(&batches, true);
            g.bench_function("raw zstd, level-3 defaults", |b| {
                b.iter(|| defaults.round())
            });
            g.finish();
        }
    }
}

/// Context sizes after compressing and decompressing `batches` with
/// `params` (the layer's, or none for zstd's level-3 defaults).
fn raw_memory(batches: &[Batch], params: &[CParameter]) -> (usize, usize) {
    let mut cctx = CCtx::create();
    let mut dctx = DCtx::create();
    for p in params {
        cctx.set_parameter(*p).unwrap();
    }
    let mut enc = Encoder::with_context(&mut cctx);
    let mut dec = Decoder::with_context(&mut dctx);
    for batch in batches.iter().take(64) {
        let mut wire = Vec::with_capacity(zstd::zstd_safe::compress_bound(batch.framed.len()) + 64);
        let mut dst = OutBuffer::around(&mut wire);
        let mut src = InBuffer::around(&batch.framed);
        enc.run(&mut src, &mut dst).unwrap();
        while enc.flush(&mut dst).unwrap() != 0 {}
        let mut plain = Vec::with_capacity(batch.framed.len());
        let mut out = OutBuffer::around(&mut plain);
        dec.run(&mut InBuffer::around(&wire), &mut out).unwrap();
    }
    drop((enc, dec));
    (cctx.sizeof(), dctx.sizeof())
}

/// Same-run ratios, interleaved, then compression ratios and memory.
fn ratios() {
    let mut sizes = Vec::new();
    for (kind, source) in data() {
        for (size, per, label) in CASES {
            let batches = batches(&source, size, per);
            let (rounds, iters) = if size < 1024 { (31, 400) } else { (31, 40) };
            let mut raw = Raw::new(&batches, false);
            let mut ours = Ours::new(&batches);
            let mut conns = Conns::new(&batches);
            let mut defaults = Raw::new(&batches, true);
            let medians = ratio::compare(
                &format!("zstd, {kind}, {label}, baseline: raw zstd with the layer's parameters"),
                "batch",
                &mut [
                    ("raw zstd", Box::new(|| raw.round())),
                    ("layer", Box::new(|| ours.round())),
                    ("connection (info)", Box::new(|| conns.round())),
                    (
                        "raw zstd, level-3 defaults (info)",
                        Box::new(|| defaults.round()),
                    ),
                ],
                rounds,
                iters,
            );
            let mb_s = |ns: f64| batches[0].framed.len() as f64 / ns * 1e3;
            println!(
                "  throughput: raw {:.0} MB/s, layer {:.0} MB/s (compress + decompress)",
                mb_s(medians[0]),
                mb_s(medians[1])
            );
            let ratio = |r: &dyn Run| {
                let (plain, wire) = r.counts();
                plain as f64 / wire as f64
            };
            println!(
                "  compression ratio: raw {:.3}, layer {:.3}, connection {:.3}, level-3 defaults {:.3}",
                ratio(&raw),
                ratio(&ours),
                ratio(&conns),
                ratio(&defaults)
            );
            let default_raw = raw_memory(&batches, &[CParameter::CompressionLevel(3)]);
            let same_raw = raw_memory(&batches, &same_params());
            sizes.push((
                kind,
                label,
                (ours.tx.encoder_memory(), ours.rx.decoder_memory()),
                same_raw,
                default_raw,
            ));
        }
    }
    println!("\nper-connection memory, bytes (encoder + decoder):");
    for (kind, label, ours, same, defaults) in sizes {
        println!(
            "  {kind:<6} {label:<9}  layer {} + {} = {}   raw same params {} + {} = {}   level-3 defaults {} + {} = {}",
            ours.0,
            ours.1,
            ours.0 + ours.1,
            same.0,
            same.1,
            same.0 + same.1,
            defaults.0,
            defaults.1,
            defaults.0 + defaults.1,
        );
    }
}

/// Each of `batches` as a frame of its own, level 3 with a 2^21 window and
/// no content size: what a peer sends that starts a new frame per flush
/// with zstd's stream defaults.
fn own_frames(batches: &[Batch]) -> Vec<Vec<u8>> {
    batches
        .iter()
        .map(|b| {
            let mut encoder = Encoder::new(3).unwrap();
            encoder.set_parameter(CParameter::WindowLog(21)).unwrap();
            encoder
                .set_parameter(CParameter::ContentSizeFlag(false))
                .unwrap();
            let mut out = vec![0; b.framed.len() + 1024];
            let mut input = InBuffer::around(&b.framed);
            let mut output = OutBuffer::around(&mut out[..]);
            while input.pos < b.framed.len() {
                encoder.run(&mut input, &mut output).unwrap();
            }
            while encoder.finish(&mut output, true).unwrap() > 0 {}
            let n = output.pos();
            out.truncate(n);
            out
        })
        .collect()
}

/// Decodes frames in a row with one layer, dropping its decoder's context
/// at each frame boundary (`release_buffers`, as the reactor's idle sweep
/// does) or keeping it for the next frame (what the layer does otherwise).
struct FramesInARow<'a> {
    frames: &'a [Vec<u8>],
    sizes: Vec<usize>,
    next: usize,
    rx: Zstd,
    drop_between: bool,
    wire: BytesMut,
    plain: BytesMut,
    now: Instant,
}

impl<'a> FramesInARow<'a> {
    fn new(frames: &'a [Vec<u8>], batches: &[Batch], drop_between: bool) -> Self {
        Self {
            frames,
            sizes: batches.iter().map(|b| b.framed.len()).collect(),
            next: 0,
            rx: Zstd::new(),
            drop_between,
            wire: BytesMut::new(),
            plain: BytesMut::new(),
            now: Instant::now(),
        }
    }

    fn round(&mut self) {
        let i = self.next;
        self.next = (i + 1) % self.frames.len();
        self.wire.extend_from_slice(&self.frames[i]);
        self.plain.clear();
        self.rx
            .handle_inbound(
                Inbound::new(
                    self.now,
                    &mut self.wire,
                    &mut self.plain,
                    &mut BytesMut::new(),
                )
                .with_upper_room(8 << 20),
            )
            .unwrap();
        assert_eq!(self.plain.len(), self.sizes[i]);
        black_box(&self.plain);
        if self.drop_between {
            self.rx.release_buffers();
        }
    }
}

/// What keeping the decoder's context from one frame to the next saves, for
/// a peer that sends a frame per batch at a 2 MiB window.
fn frames_in_a_row() {
    for (kind, source) in data() {
        for (size, per, label) in CASES {
            let batches = batches(&source, size, per);
            let frames = own_frames(&batches);
            let (rounds, iters) = if size < 1024 { (15, 200) } else { (15, 40) };
            let mut kept = FramesInARow::new(&frames, &batches, false);
            let mut dropped = FramesInARow::new(&frames, &batches, true);
            ratio::compare(
                &format!(
                    "zstd frames in a row (a frame per batch, 2^21 window), {kind}, {label}, baseline: context kept"
                ),
                "frame",
                &mut [
                    ("context kept between frames", Box::new(|| kept.round())),
                    (
                        "context dropped between frames",
                        Box::new(|| dropped.round()),
                    ),
                ],
                rounds,
                iters,
            );
            println!(
                "  decoder held between frames: kept {} B, dropped {} B",
                kept.rx.decoder_memory(),
                dropped.rx.decoder_memory()
            );
        }
    }
}

/// `NETSTRATA_ZSTD_VARIANT=raw|layer|connection|defaults:text|random:SIZE:PER:ROUNDS`
/// runs one variant alone and exits, for profilers and callgrind.
fn single_variant(spec: &str) {
    let parts: Vec<&str> = spec.split(':').collect();
    let [variant, kind, size, per, rounds] = parts[..] else {
        panic!("NETSTRATA_ZSTD_VARIANT=variant:kind:size:per:rounds, got {spec}");
    };
    let num = |s: &str| s.parse::<usize>().expect("a number");
    let source = match kind {
        "text" => log_text(SOURCE),
        "random" => random(SOURCE),
        other => panic!("unknown data {other}"),
    };
    let batches = batches(&source, num(size), num(per));
    let mut run: Box<dyn Run> = match variant {
        "raw" => Box::new(Raw::new(&batches, false)),
        "layer" => Box::new(Ours::new(&batches)),
        "connection" => Box::new(Conns::new(&batches)),
        "defaults" => Box::new(Raw::new(&batches, true)),
        other => panic!("unknown variant {other}"),
    };
    for _ in 0..num(rounds) {
        run.round();
    }
}

criterion_group!(benches, bench);

fn main() {
    if let Ok(spec) = std::env::var("NETSTRATA_ZSTD_VARIANT") {
        return single_variant(&spec);
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
    if !std::env::args().any(|a| a == "--list" || a == "--test") {
        ratios();
        frames_in_a_row();
    }
}
