//! Layer and stack overhead: the same message batches through connections
//! whose stacks differ only in their layers.
//!
//! - none: a static empty stack (the baseline)
//! - 1 pass-through: one layer (goal: within 3% of none)
//! - 3 pass-through, static vs dynamic (goal: dynamic within 3% of static)
//!
//! One iteration: 64 messages of 64 bytes (or 3 of 16 KiB) sent on one
//! connection, flushed, fed to the other and decoded.
//!
//! `cargo bench --bench stack`

#[path = "support/link.rs"]
mod link;
#[path = "support/ratio.rs"]
mod ratio;

use criterion::{Criterion, Throughput, criterion_group};
use link::Link;
use netstrata::layers::PassThrough;
use netstrata::{BoxedLayer, DynStack, Stack};

fn none() -> Stack<()> {
    Stack::new(())
}
fn one() -> Stack<(PassThrough,)> {
    Stack::new((PassThrough::new(),))
}
fn three_static() -> Stack<(PassThrough, PassThrough, PassThrough)> {
    Stack::new((PassThrough::new(), PassThrough::new(), PassThrough::new()))
}
fn three_dynamic() -> DynStack {
    let layers: Vec<BoxedLayer> = (0..3).map(|_| Box::new(PassThrough::new()) as _).collect();
    DynStack::new(layers)
}

/// Batches fit the default 64 KiB buffers: a batch one byte over them costs
/// every variant a second pass and a copy of the partial frame, which hides
/// the layers' own cost (see docs/benchmarks.md).
const CASES: [(usize, usize, &str); 2] = [(64, 64, "64B x 64"), (16 * 1024, 3, "16KiB x 3")];

fn bench(c: &mut Criterion) {
    for (size, batch, label) in CASES {
        let mut g = c.benchmark_group(format!("stack/{label}"));
        g.throughput(Throughput::Elements(batch as u64));
        let mut l = Link::symmetric(none, size, batch);
        g.bench_function("none", |b| b.iter(|| l.round()));
        let mut l = Link::symmetric(one, size, batch);
        g.bench_function("1 pass-through", |b| b.iter(|| l.round()));
        let mut l = Link::symmetric(three_static, size, batch);
        g.bench_function("3 pass-through static", |b| b.iter(|| l.round()));
        let mut l = Link::symmetric(three_dynamic, size, batch);
        g.bench_function("3 pass-through dynamic", |b| b.iter(|| l.round()));
        g.finish();
    }
}

/// Same-run ratios, interleaved.
fn ratios() {
    for (size, batch, label) in CASES {
        let (mut a, mut b) = (
            Link::symmetric(none, size, batch),
            Link::symmetric(one, size, batch),
        );
        let (mut s, mut d) = (
            Link::symmetric(three_static, size, batch),
            Link::symmetric(three_dynamic, size, batch),
        );
        ratio::compare(
            &format!("stack overhead, {label}, baseline: no layer"),
            "batch",
            &mut [
                ("none", Box::new(|| a.round())),
                ("1 pass-through", Box::new(|| b.round())),
                ("3 pass-through static", Box::new(|| s.round())),
                ("3 pass-through dynamic", Box::new(|| d.round())),
            ],
            61,
            1000,
        );
        let (mut s, mut d) = (
            Link::symmetric(three_static, size, batch),
            Link::symmetric(three_dynamic, size, batch),
        );
        ratio::compare(
            &format!("dynamic vs static, {label}, baseline: static"),
            "batch",
            &mut [
                ("3 pass-through static", Box::new(|| s.round())),
                ("3 pass-through dynamic", Box::new(|| d.round())),
            ],
            61,
            1000,
        );
    }
}

/// `NETSTRATA_STACK_VARIANT=none|one|static|dynamic:SIZE:BATCH:ROUNDS` runs
/// one variant alone and exits, for counting instructions with callgrind
/// (deterministic, unlike time on a shared VM); see docs/benchmarks.md.
fn single_variant(spec: &str) {
    let (variant, size, batch, rounds) = link::variant_spec("NETSTRATA_STACK_VARIANT", spec);
    match variant.as_str() {
        "none" => link::run_alone(none, size, batch, rounds),
        "one" => link::run_alone(one, size, batch, rounds),
        "static" => link::run_alone(three_static, size, batch, rounds),
        "dynamic" => link::run_alone(three_dynamic, size, batch, rounds),
        other => panic!("unknown variant {other}"),
    }
}

criterion_group!(benches, bench);

fn main() {
    if let Ok(spec) = std::env::var("NETSTRATA_STACK_VARIANT") {
        return single_variant(&spec);
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
    if !std::env::args().any(|a| a == "--list" || a == "--test") {
        ratios();
    }
}
