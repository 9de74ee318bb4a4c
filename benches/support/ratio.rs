//! Same-run ratios for the criterion benches: every variant is timed in
//! interleaved rounds (so drift and frequency changes hit all alike) and
//! compared with the baseline, the first variant.

use std::time::Instant;

/// A named workload; one call does one unit of work (one batch).
pub(crate) type Variant<'a> = (&'static str, Box<dyn FnMut() + 'a>);

/// Times each variant for `iters` calls per round over `rounds` rounds (in
/// rotating order), takes the median round, and prints time per call and the ratio to the
/// first variant. Returns the medians in nanoseconds per call.
pub(crate) fn compare(
    title: &str,
    unit: &str,
    variants: &mut [Variant<'_>],
    rounds: usize,
    iters: usize,
) -> Vec<f64> {
    let mut samples = vec![Vec::with_capacity(rounds); variants.len()];
    for (_, f) in variants.iter_mut() {
        for _ in 0..iters {
            f(); // warm up
        }
    }
    let n = variants.len();
    for round in 0..rounds {
        // Rotate the order each round so no variant always follows another.
        for k in 0..n {
            let i = (round + k) % n;
            let f = &mut variants[i].1;
            let start = Instant::now();
            for _ in 0..iters {
                f();
            }
            samples[i].push(start.elapsed().as_nanos() as f64 / iters as f64);
        }
    }
    let medians: Vec<f64> = samples
        .iter_mut()
        .map(|s| {
            s.sort_by(f64::total_cmp);
            s[s.len() / 2]
        })
        .collect();
    println!(
        "\n{title} (median of {rounds} interleaved rounds; ratio = baseline time / variant time, >1 is faster)"
    );
    for ((name, _), m) in variants.iter().zip(&medians) {
        println!(
            "  {name:<34} {m:>10.1} ns/{unit}   ratio {:>6.3}",
            medians[0] / m
        );
    }
    medians
}
