//! What the tool shows while it runs: the progress bar, and the counters
//! `--stats-every` prints.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use netstrata_cli::load::{Interval, Progress};
use netstrata_cli::report::{bytes, rate};
use netstrata_cli::stack::StackOptions;
use netstrata_reactor::CloseCounts;

/// A progress bar on stderr if it is a terminal and `wanted`.
pub(crate) fn progress_bar(secs: f64, wanted: bool) -> Option<ProgressBar> {
    (wanted && std::io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::new((secs * 10.0) as u64);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {elapsed}/{duration} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    })
}

pub(crate) fn show_progress(bar: Option<&ProgressBar>, p: &Progress) {
    let Some(bar) = bar else { return };
    bar.set_position((p.elapsed.as_secs_f64() * 10.0) as u64);
    let msgs = p.messages as f64 / p.elapsed.as_secs_f64().max(1e-3);
    let mut msg = format!("{msgs:.0} msgs/s");
    if let Some(t) = p.traffic {
        msg.push_str(&format!(
            ", {} out on the wire",
            rate(t.outbound.throughput as f64)
        ));
    }
    bar.set_message(msg);
}

/// Prints one interval of a bench run (above the progress bar, if any).
pub(crate) fn print_interval(bar: Option<&ProgressBar>, i: &Interval) {
    let line = format!(
        "[{:>6.1}s] {:>9.0} msgs/s  p50 {} µs  p90 {} µs  p99 {} µs  p99.9 {} µs  max {} µs  errors {}",
        i.end_secs,
        i.msgs_per_sec(),
        i.latency.p50,
        i.latency.p90,
        i.latency.p99,
        i.latency.p999,
        i.latency.max,
        i.errors
    );
    match bar {
        Some(bar) => bar.println(line),
        None => say!("{line}"),
    }
}

/// Prints the global traffic counters of `stack`'s connections, the
/// `closes` by reason and the zstd decoders' memory every `every` while
/// they change, from a thread of its own, for as long as the process runs.
pub(crate) fn print_stats_every(stack: StackOptions, closes: Option<CloseCounts>, every: Duration) {
    std::thread::spawn(move || {
        let (mut last_traffic, mut last_closes) = (None, None);
        loop {
            std::thread::sleep(every);
            if let Some(t) = stack.traffic(std::time::Instant::now()) {
                let totals = (t.outbound.total_bytes, t.inbound.total_bytes);
                if last_traffic.replace(totals) != Some(totals) || t.outbound.throughput != 0 {
                    say!(
                        "traffic: out {} now, peak {}, total {}; in {} now, peak {}, total {}",
                        rate(t.outbound.throughput as f64),
                        rate(t.outbound.peak_throughput as f64),
                        bytes(t.outbound.total_bytes),
                        rate(t.inbound.throughput as f64),
                        rate(t.inbound.peak_throughput as f64),
                        bytes(t.inbound.total_bytes),
                    );
                }
            }
            let Some(closes) = &closes else { continue };
            let total = closes.total();
            if total == 0 || last_closes.replace(total) == Some(total) {
                continue;
            }
            let by_kind: Vec<String> = closes
                .snapshot()
                .iter()
                .map(|(kind, n)| format!("{n} {kind}"))
                .collect();
            say!("closed: {total} ({})", by_kind.join(", "));
            if let Some(zstd) = &stack.zstd {
                let budget = zstd.decoder_budget();
                say!(
                    "zstd decoders: {} of {} in use, {} refused",
                    bytes(budget.in_use() as u64),
                    bytes(budget.capacity() as u64),
                    budget.refused()
                );
            }
        }
    });
}
