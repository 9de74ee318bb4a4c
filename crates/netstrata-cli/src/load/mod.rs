//! `netstrata bench`: connections to an echo server spread over client
//! loops (one thread each), sending in a closed loop (D frames in flight
//! per connection) or an open one (R frames a second across all, timed
//! from when each was meant to leave); every echoed byte is checked, every
//! round trip recorded.
//!
//! - this module: the options, and the run that starts the loops and
//!   gathers their samples;
//! - `client_loop`: one loop's connections, its pacing and its samples;
//! - `conn`: one connection's exchanges;
//! - `figures`: what a run reports ([`Report`], [`Latency`], [`Interval`],
//!   [`Progress`]);
//! - `json`: the report's JSON form.

mod client_loop;
mod conn;
mod figures;
mod json;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use netstrata_reactor::Driver;

use self::client_loop::{Clock, LoopResult, Sample, merge_sample, run_loop};
pub use self::figures::{Interval, Latency, Progress, Report};
pub use self::json::JSON_SCHEMA_VERSION;
use crate::cpu::CpuTime;
use crate::report::StackTotals;
use crate::stack::StackOptions;

/// What the payload of each frame looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    /// Repetitive JSON-like log lines (compressible).
    Text,
    /// Pseudo-random bytes (incompressible).
    Random,
}

/// What a connection does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Connections stay open and carry frame after frame.
    Persistent,
    /// A new connection (and handshake) for each exchange of one frame:
    /// `--conns` exchanges at once (closed loop), or `--msg-rate` new
    /// connections a second (open loop).
    Connect,
}

/// A load run.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The echo server.
    pub addr: SocketAddr,
    /// Connections.
    pub conns: usize,
    /// Frames in flight per connection (closed loop).
    pub depth: usize,
    /// Bytes per frame (at least 8: a sequence number leads each frame).
    pub size: usize,
    /// How long to measure, after the warm-up.
    pub duration: Duration,
    /// Payload kind.
    pub payload: Payload,
    /// Layers.
    pub stack: StackOptions,
    /// Client loops, one thread each; connections are dealt out in turn.
    pub threads: usize,
    /// Open loop at this many frames a second across all connections
    /// (each connection sends its share at even intervals); `None`: closed
    /// loop, `depth` in flight.
    pub msg_rate: Option<f64>,
    /// Run this long before measuring; nothing in it counts.
    pub warmup: Duration,
    /// Length of the intervals of [`Report::intervals`].
    pub interval: Duration,
    /// Persistent connections, or one per exchange.
    pub mode: Mode,
    /// The client loops' event-loop driver; `None`: the one
    /// [`netstrata_reactor::LoopConfig::new`] picks (`NETSTRATA_DRIVER`, else
    /// auto).
    pub driver: Option<Driver>,
}

impl LoadOptions {
    /// 16 connections x 16 in flight x 64 B text frames for 5 s, one loop,
    /// no warm-up, 1 s intervals, the default driver, against `addr` with
    /// `stack`.
    pub fn new(addr: SocketAddr, stack: StackOptions) -> Self {
        Self {
            addr,
            conns: 16,
            depth: 16,
            size: 64,
            duration: Duration::from_secs(5),
            payload: Payload::Text,
            stack,
            threads: 1,
            msg_rate: None,
            warmup: Duration::ZERO,
            interval: Duration::from_secs(1),
            mode: Mode::Persistent,
            driver: None,
        }
    }
}

/// A payload of `size` bytes (the first 8 are replaced by sequence numbers).
pub fn payload(kind: Payload, size: usize) -> Vec<u8> {
    match kind {
        Payload::Text => {
            let line = br#"{"ts":"2026-11-22T04:28:33Z","level":"info","svc":"api","msg":"request done","status":200,"ms":12}
"#;
            line.iter().copied().cycle().take(size).collect()
        }
        Payload::Random => {
            let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
            (0..size)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect()
        }
    }
}

/// Runs the load, calling `progress` about ten times a second and at the
/// end of each interval.
pub fn run(opts: &LoadOptions, progress: impl FnMut(Progress)) -> io::Result<Report> {
    run_until(opts, &AtomicBool::new(false), progress)
}

/// [`run`], measuring only until `stop` is set (by a signal handler): the
/// report then covers the time measured so far.
pub fn run_until(
    opts: &LoadOptions,
    stop: &AtomicBool,
    mut progress: impl FnMut(Progress),
) -> io::Result<Report> {
    let invalid = |what: &str| Err(io::Error::new(io::ErrorKind::InvalidInput, what.to_owned()));
    if opts.size < 8 {
        return invalid("--size must be at least 8 (each frame starts with a sequence number)");
    }
    if opts.threads == 0 || opts.conns == 0 {
        return invalid("at least one connection and one client loop are needed");
    }
    if opts.msg_rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
        return invalid("--msg-rate must be a positive number of messages a second");
    }
    if opts.interval.is_zero() {
        return invalid("--interval must be longer than zero");
    }
    // No more loops than connections: a loop without one would idle.
    let threads = opts.threads.min(opts.conns);
    let start = Instant::now();
    let clock = Clock {
        start,
        measure: start + opts.warmup,
        end: start + opts.warmup + opts.duration,
        interval: opts.interval,
    };
    let counters: Vec<AtomicU64> = (0..threads).map(|_| AtomicU64::new(0)).collect();
    let (tx, rx) = mpsc::channel::<Sample>();
    let mut intervals: Vec<Interval> = Vec::new();
    let mut pending: Vec<(usize, Sample)> = Vec::new();
    let mut timeline = Vec::new();
    // The shapers' counters as the window ends (the drain comes after).
    let mut traffic_at_end = None;
    let results = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let tx = tx.clone();
                let counter = &counters[t];
                let mine: Vec<usize> = (t..opts.conns).step_by(threads).collect();
                std::thread::Builder::new()
                    .name(format!("bench-loop-{t}"))
                    .spawn_scoped(scope, move || {
                        run_loop(opts, &mine, threads, clock, stop, counter, &tx)
                    })
            })
            .collect::<io::Result<_>>()?;
        drop(tx);
        // The caller's thread follows the loops: progress, and each
        // interval once every loop has reported it.
        let mut next_tick = start;
        loop {
            // A loop that has finished has sent all its samples.
            let done = workers.iter().all(|w| w.is_finished());
            let first = match done {
                true => rx.try_recv().ok(),
                false => rx.recv_timeout(Duration::from_millis(50)).ok(),
            };
            let mut ended = Vec::new();
            for sample in first
                .into_iter()
                .chain(std::iter::from_fn(|| rx.try_recv().ok()))
            {
                merge_sample(&mut pending, sample, threads, &clock, |i| ended.push(i));
            }
            let now = Instant::now();
            for interval in ended {
                intervals.push(interval.clone());
                progress(Progress {
                    elapsed: now - start,
                    messages: total(&counters),
                    traffic: opts.stack.traffic(now),
                    interval: Some(interval),
                });
            }
            if now >= next_tick && now <= clock.end {
                next_tick = now + Duration::from_millis(100);
                let messages = total(&counters);
                let since = now.saturating_duration_since(clock.measure);
                timeline.push((since.as_secs_f64(), messages));
                progress(Progress {
                    elapsed: now - start,
                    messages,
                    traffic: opts.stack.traffic(now),
                    interval: None,
                });
            }
            if traffic_at_end.is_none() && (now >= clock.end || stop.load(Ordering::Relaxed)) {
                traffic_at_end = Some(opts.stack.traffic(now));
            }
            if done {
                break;
            }
        }
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(io::Error::other("a client loop panicked")))
            })
            .collect::<io::Result<Vec<LoopResult>>>()
    })?;
    let measured_until = results.iter().map(|r| r.measured_until).max();
    let elapsed = measured_until
        .unwrap_or(clock.end)
        .min(clock.end)
        .saturating_duration_since(clock.measure);
    let traffic = traffic_at_end.unwrap_or_else(|| opts.stack.traffic(Instant::now()));
    let mut histogram = Histogram::new(3).map_err(io::Error::other)?;
    let mut report = Report {
        messages: 0,
        elapsed,
        size: opts.size,
        latency: Latency::default(),
        errors: 0,
        error_samples: Vec::new(),
        connections_opened: 0,
        connect_error: None,
        wire_out: 0,
        totals: StackTotals::default(),
        traffic,
        histogram: Histogram::new(3).map_err(io::Error::other)?,
        timeline,
        intervals,
        client_cpu: Some(CpuTime::default()),
        connect_latency: None,
    };
    let mut connects = Histogram::<u64>::new(3).map_err(io::Error::other)?;
    for LoopResult { shared, cpu, .. } in results {
        histogram.add(&shared.histogram).map_err(io::Error::other)?;
        connects.add(&shared.connects).map_err(io::Error::other)?;
        report.messages += shared.messages;
        report.errors += shared.errors;
        for e in shared.error_samples {
            if report.error_samples.len() < 5 {
                report.error_samples.push(e);
            }
        }
        report.connections_opened += shared.opened;
        if report.connect_error.is_none() {
            report.connect_error = shared.connect_error;
        }
        report.wire_out += shared.wire_out;
        report.totals.merge(&shared.totals);
        report.client_cpu = match (report.client_cpu, cpu) {
            (Some(a), Some(b)) => Some(a + b),
            _ => None,
        };
    }
    report
        .timeline
        .push((elapsed.as_secs_f64(), report.messages));
    report.latency = Latency::of(&histogram);
    report.histogram = histogram;
    if opts.mode == Mode::Connect {
        report.connect_latency = Some(Latency::of(&connects));
    }
    Ok(report)
}

fn total(counters: &[AtomicU64]) -> u64 {
    counters.iter().map(|c| c.load(Ordering::Relaxed)).sum()
}
