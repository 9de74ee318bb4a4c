//! Shaping overhead and the token bucket's per-call cost.
//!
//! - stack overhead: the same message batches through connections whose
//!   stacks are empty (the baseline), one pass-through layer, or one
//!   unlimited `Shaper` (goal: the shaper within 2% of no layer). One
//!   iteration: 64 messages of 64 bytes (or 3 of 16 KiB) sent on one
//!   connection, flushed, fed to the other and decoded.
//! - per call: one `handle_outbound` of 64 bytes, the virtual clock 1 µs
//!   later each call, through a pass-through layer, an unlimited shaper, a
//!   shaper with its own (never binding) bucket, one with an uncontended
//!   global limit, and both; and one `DatagramShaper::poll_send`.
//!
//! `cargo bench --bench shape`
//!
//! `NETSTRATA_SHAPE_VARIANT=none|pass|shaper:SIZE:BATCH:ROUNDS` runs one
//! stack variant alone and exits, for counting instructions with callgrind.

#[path = "support/link.rs"]
mod link;
#[path = "support/ratio.rs"]
mod ratio;

use std::time::{Duration, Instant};

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group};
use link::Link;
use netstrata::layers::PassThrough;
use netstrata::{Flush, Layer, Outbound, Stack};
use netstrata_shape::{
    DatagramPolicy, DatagramShaper, GlobalLimiter, Limit, ShapeConfig, Shaper, Verdict,
};

fn none() -> Stack<()> {
    Stack::new(())
}
fn pass_through() -> Stack<(PassThrough,)> {
    Stack::new((PassThrough::new(),))
}
fn shaper() -> Stack<(Shaper,)> {
    Stack::new((Shaper::unlimited(),))
}

const CASES: [(usize, usize, &str); 2] = [(64, 64, "64B x 64"), (16 * 1024, 3, "16KiB x 3")];

/// One outbound call of 64 bytes per iteration, 1 µs of virtual time apart.
struct Calls<L> {
    layer: L,
    input: BytesMut,
    down: BytesMut,
    now: Instant,
}

impl<L: Layer> Calls<L> {
    fn new(layer: L) -> Self {
        Self {
            layer,
            input: BytesMut::with_capacity(4096),
            down: BytesMut::with_capacity(4096),
            now: Instant::now(),
        }
    }

    fn call(&mut self) {
        self.input.extend_from_slice(&[0x5a; 64]);
        self.now += Duration::from_micros(1);
        self.layer
            .handle_outbound(Outbound::new(
                self.now,
                &mut self.input,
                Flush::Batch,
                &mut self.down,
            ))
            .unwrap();
        assert_eq!(self.down.len(), 64);
        self.down.clear();
    }
}

/// A limit that never binds at 64 bytes per µs, so every call passes.
fn wide() -> Limit {
    Limit::new(Limit::MAX_RATE, Limit::MAX_BURST).unwrap()
}

fn own_bucket() -> Shaper {
    Shaper::new(ShapeConfig::new().with_outbound(wide()))
}

fn global_only(global: &GlobalLimiter) -> Shaper {
    Shaper::unlimited().with_global(global)
}

fn both(global: &GlobalLimiter) -> Shaper {
    own_bucket().with_global(global)
}

fn wide_global() -> GlobalLimiter {
    GlobalLimiter::new(ShapeConfig::new().with_outbound(wide()))
}

struct Datagrams {
    udp: DatagramShaper,
    now: Instant,
}

impl Datagrams {
    fn new() -> Self {
        let config = ShapeConfig::new().with_outbound(wide());
        Self {
            udp: DatagramShaper::new(config, DatagramPolicy::Drop),
            now: Instant::now(),
        }
    }
    fn call(&mut self) {
        self.now += Duration::from_micros(1);
        assert_eq!(self.udp.poll_send(self.now, 1200), Verdict::Send);
    }
}

fn bench(c: &mut Criterion) {
    for (size, batch, label) in CASES {
        let mut g = c.benchmark_group(format!("shape/{label}"));
        g.throughput(Throughput::Elements(batch as u64));
        let mut l = Link::symmetric(none, size, batch);
        g.bench_function("none", |b| b.iter(|| l.round()));
        let mut l = Link::symmetric(pass_through, size, batch);
        g.bench_function("pass-through", |b| b.iter(|| l.round()));
        let mut l = Link::symmetric(shaper, size, batch);
        g.bench_function("unlimited shaper", |b| b.iter(|| l.round()));
        g.finish();
    }
    let mut g = c.benchmark_group("shape/call");
    g.throughput(Throughput::Elements(1));
    let global = wide_global();
    let mut p = Calls::new(PassThrough::new());
    g.bench_function("pass-through", |b| b.iter(|| p.call()));
    let mut u = Calls::new(Shaper::unlimited());
    g.bench_function("unlimited shaper", |b| b.iter(|| u.call()));
    let mut o = Calls::new(own_bucket());
    g.bench_function("own bucket", |b| b.iter(|| o.call()));
    let mut gl = Calls::new(global_only(&global));
    g.bench_function("global bucket", |b| b.iter(|| gl.call()));
    let mut bo = Calls::new(both(&global));
    g.bench_function("own + global", |b| b.iter(|| bo.call()));
    let mut d = Datagrams::new();
    g.bench_function("datagram", |b| b.iter(|| d.call()));
    g.finish();
}

/// Same-run ratios, interleaved.
fn ratios() {
    for (size, batch, label) in CASES {
        let mut a = Link::symmetric(none, size, batch);
        let mut p = Link::symmetric(pass_through, size, batch);
        let mut s = Link::symmetric(shaper, size, batch);
        ratio::compare(
            &format!("shaper overhead, {label}, baseline: no layer"),
            "batch",
            &mut [
                ("none", Box::new(|| a.round())),
                ("pass-through", Box::new(|| p.round())),
                ("unlimited shaper", Box::new(|| s.round())),
            ],
            61,
            1000,
        );
    }
    let global = wide_global();
    let mut p = Calls::new(PassThrough::new());
    let mut u = Calls::new(Shaper::unlimited());
    let mut o = Calls::new(own_bucket());
    let mut gl = Calls::new(global_only(&global));
    let mut bo = Calls::new(both(&global));
    let mut d = Datagrams::new();
    ratio::compare(
        "per call (64 B outbound), baseline: pass-through layer",
        "call",
        &mut [
            ("pass-through", Box::new(|| p.call())),
            ("unlimited shaper", Box::new(|| u.call())),
            ("own bucket", Box::new(|| o.call())),
            ("global bucket", Box::new(|| gl.call())),
            ("own + global", Box::new(|| bo.call())),
            ("datagram (1200 B, own bucket)", Box::new(|| d.call())),
        ],
        61,
        20_000,
    );
}

/// Runs one stack variant alone (see the module docs).
fn single_variant(spec: &str) {
    let (variant, size, batch, rounds) = link::variant_spec("NETSTRATA_SHAPE_VARIANT", spec);
    match variant.as_str() {
        "none" => link::run_alone(none, size, batch, rounds),
        "pass" => link::run_alone(pass_through, size, batch, rounds),
        "shaper" => link::run_alone(shaper, size, batch, rounds),
        other => panic!("unknown variant {other}"),
    }
}

criterion_group!(benches, bench);

fn main() {
    if let Ok(spec) = std::env::var("NETSTRATA_SHAPE_VARIANT") {
        return single_variant(&spec);
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
    if !std::env::args().any(|a| a == "--list" || a == "--test") {
        ratios();
    }
}
