//! `netstrata bench`: connections to an echo server spread over client
//! loops (one thread each), sending in a closed loop (D frames in flight
//! per connection) or an open one (R frames a second across all, timed
//! from when each was meant to leave); every echoed byte is checked, every
//! round trip recorded.

mod conn;
mod json;

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use netstrata_reactor::{EventLoop, Handler, LoopConfig};
use netstrata_shape::TrafficStats;

use self::conn::{Exchange, LoadConn, Pace, Phase, Shared};
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
}

impl LoadOptions {
    /// 16 connections x 16 in flight x 64 B text frames for 5 s, one loop,
    /// no warm-up, 1 s intervals, against `addr` with `stack`.
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
        }
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Latency {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// 99.99th percentile.
    pub p9999: u64,
    /// The largest.
    pub max: u64,
}

impl Latency {
    /// The percentiles of `h` (all zero if it is empty).
    pub fn of(h: &Histogram<u64>) -> Self {
        Self {
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            p9999: h.value_at_quantile(0.9999),
            max: h.max(),
        }
    }
}

impl std::fmt::Display for Latency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {} µs, p90 {} µs, p99 {} µs, p99.9 {} µs, p99.99 {} µs, max {} µs",
            self.p50, self.p90, self.p99, self.p999, self.p9999, self.max
        )
    }
}

/// One interval of the measured window.
#[derive(Debug, Clone)]
pub struct Interval {
    /// Seconds from the start of the measured window to the interval's end.
    pub end_secs: f64,
    /// Echoes received in it.
    pub messages: u64,
    /// Its length in seconds.
    pub secs: f64,
    /// Its round trips.
    pub latency: Latency,
    /// Errors in it.
    pub errors: u64,
}

impl Interval {
    /// Echoes per second in the interval.
    pub fn msgs_per_sec(&self) -> f64 {
        self.messages as f64 / self.secs
    }
}

/// What a load run measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// Echoes received within the measured window.
    pub messages: u64,
    /// The measured window.
    pub elapsed: Duration,
    /// Frame size.
    pub size: usize,
    /// Round trips within the measured window (open loop: from each
    /// frame's intended send time).
    pub latency: Latency,
    /// Errors (failed connections, wrong echoes), with a few examples.
    pub errors: u64,
    /// Up to five error descriptions.
    pub error_samples: Vec<String>,
    /// Connections that were established (a failed connect is not).
    pub connections_opened: u64,
    /// Why the first connection that could not be established failed.
    pub connect_error: Option<String>,
    /// Wire bytes written by all connections, up to the end of the
    /// measured window (each connection's count taken at its first event
    /// after the window).
    pub wire_out: u64,
    /// Every connection's final figures, summed (drain included).
    pub totals: StackTotals,
    /// The shaper's global counters at the end of the window, if shaping.
    pub traffic: Option<TrafficStats>,
    /// Round trips in microseconds, for plots.
    pub histogram: Histogram<u64>,
    /// (seconds since the start, echoes so far), about ten a second.
    pub timeline: Vec<(f64, u64)>,
    /// The measured window interval by interval.
    pub intervals: Vec<Interval>,
    /// CPU time of the client loops within the measured window, if the
    /// system tells it (Linux `/proc`).
    pub client_cpu: Option<CpuTime>,
    /// `--mode connect`: the TCP connects alone (the exchanges, handshake
    /// and one round trip included, are [`latency`](Self::latency)).
    pub connect_latency: Option<Latency>,
}

impl Report {
    /// Echoed frames per second.
    pub fn msgs_per_sec(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64()
    }

    /// Payload megabytes per second, one way.
    pub fn mb_per_sec(&self) -> f64 {
        self.msgs_per_sec() * self.size as f64 / 1e6
    }

    /// Wire bytes per second written by all connections (what a shaper
    /// limits), over the measured window.
    pub fn wire_bytes_per_sec(&self) -> f64 {
        self.wire_out as f64 / self.elapsed.as_secs_f64()
    }

    /// The client loops' CPU time per echo in microseconds: is the client
    /// the limit? (A loop using a whole core is.)
    pub fn client_cpu_us_per_msg(&self) -> Option<f64> {
        let cpu = self.client_cpu?;
        (self.messages > 0).then(|| cpu.total().as_secs_f64() * 1e6 / self.messages as f64)
    }
}

/// Progress during a run.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Time since the start, warm-up included.
    pub elapsed: Duration,
    /// Echoes received so far in the measured window.
    pub messages: u64,
    /// The shaper's global counters now, if shaping.
    pub traffic: Option<TrafficStats>,
    /// An interval of the measured window that has just ended.
    pub interval: Option<Interval>,
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

/// When a run's phases begin and end, the same for every loop.
#[derive(Debug, Clone, Copy)]
struct Clock {
    start: Instant,
    /// The measured window: from the end of the warm-up to `end`.
    measure: Instant,
    end: Instant,
    interval: Duration,
}

impl Clock {
    /// The start of interval `k` of the measured window.
    fn interval_start(&self, k: u32) -> Instant {
        self.measure + self.interval * k
    }
}

/// An interval's figures from one loop.
struct Sample {
    index: u32,
    end: Instant,
    errors: u64,
    /// Its round trips: one per echo.
    histogram: Histogram<u64>,
}

/// What one loop measured, for the totals.
struct LoopResult {
    shared: Shared,
    /// The loop's CPU time within the measured window.
    cpu: Option<CpuTime>,
    /// When it stopped measuring (the window's end, or a stop request).
    measured_until: Instant,
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

/// Adds a loop's sample of an interval; once all `loops` have given theirs,
/// hands the interval to `done`.
fn merge_sample(
    pending: &mut Vec<(usize, Sample)>,
    sample: Sample,
    loops: usize,
    clock: &Clock,
    mut done: impl FnMut(Interval),
) {
    let whole = match pending.iter().position(|(_, p)| p.index == sample.index) {
        Some(i) => {
            let (count, merged) = &mut pending[i];
            *count += 1;
            merged.errors += sample.errors;
            merged.end = merged.end.max(sample.end);
            // Both histograms auto-resize: adding cannot fail.
            let _ = merged.histogram.add(&sample.histogram);
            (*count == loops).then(|| pending.remove(i).1)
        }
        None if loops == 1 => Some(sample),
        None => {
            pending.push((1, sample));
            None
        }
    };
    if let Some(s) = whole {
        let from = clock.interval_start(s.index);
        done(Interval {
            end_secs: s.end.saturating_duration_since(clock.measure).as_secs_f64(),
            messages: s.histogram.len(),
            secs: s.end.saturating_duration_since(from).as_secs_f64(),
            latency: Latency::of(&s.histogram),
            errors: s.errors,
        });
    }
}

/// One client loop: its share of the connections, driven until the
/// measured window ends and every frame in flight has come back.
fn run_loop(
    opts: &LoadOptions,
    mine: &[usize],
    loops: usize,
    clock: Clock,
    stop: &AtomicBool,
    counter: &AtomicU64,
    tx: &mpsc::Sender<Sample>,
) -> io::Result<LoopResult> {
    let shared = Rc::new(RefCell::new(Shared::new().map_err(io::Error::other)?));
    let payload: Rc<[u8]> = payload(opts.payload, opts.size).into();
    let mut event_loop: EventLoop<_, _, Box<dyn Handler>> = EventLoop::new(LoopConfig::new())?;
    let make = || {
        opts.stack
            .connection()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
    };
    // `--mode connect` in open loop: this loop's share of the schedule,
    // exchange i of all meant to start at start + i / rate.
    let mut next_exchange = mine.first().copied().unwrap_or(0);
    let exchange_at = |i: usize, rate: f64| clock.start + Duration::from_secs_f64(i as f64 / rate);
    match (opts.mode, opts.msg_rate) {
        (Mode::Persistent, _) => {
            for (slot, &c) in mine.iter().enumerate() {
                let pace = match opts.msg_rate {
                    None => Pace::Closed {
                        depth: opts.depth.max(1),
                    },
                    Some(rate) => {
                        // Each connection sends rate/conns a second; their
                        // phases are staggered so that together they send
                        // evenly.
                        let every = Duration::from_secs_f64(opts.conns as f64 / rate);
                        let phase = Duration::from_secs_f64(c as f64 / rate);
                        Pace::Open {
                            every,
                            first: clock.start + phase,
                            slot,
                        }
                    }
                };
                let handler = LoadConn::new(Rc::clone(&shared), Rc::clone(&payload), pace);
                event_loop.connect(opts.addr, make()?, Box::new(handler) as Box<dyn Handler>)?;
            }
        }
        (Mode::Connect, None) => shared.borrow_mut().to_open = mine.len(),
        (Mode::Connect, Some(_)) => {}
    }
    let mut cpu_at_measure = None;
    let mut next_interval = 0u32;
    let mut cpu_end = None;
    let mut measured_until = clock.end;
    loop {
        let now = Instant::now();
        let stopping = stop.load(Ordering::Relaxed) || now >= clock.end;
        {
            let mut s = shared.borrow_mut();
            if s.phase == Phase::Warmup && now >= clock.measure {
                s.phase = Phase::Measuring;
                cpu_at_measure = CpuTime::this_thread();
                // Whatever was recorded before belongs to the warm-up.
                s.interval.reset();
                s.interval_errors = 0;
            }
        }
        // Intervals that have ended, and at the end the last, partial one.
        let window_end = now.min(clock.end);
        while shared.borrow().phase == Phase::Measuring {
            let from = clock.interval_start(next_interval);
            let end = clock.interval_start(next_interval + 1).min(window_end);
            let ended = end == clock.interval_start(next_interval + 1);
            if !(ended || stopping && end > from) {
                break;
            }
            let mut s = shared.borrow_mut();
            let histogram = std::mem::replace(
                &mut s.interval,
                Histogram::new(3).map_err(io::Error::other)?,
            );
            let sample = Sample {
                index: next_interval,
                end,
                errors: std::mem::take(&mut s.interval_errors),
                histogram,
            };
            drop(s);
            // The caller only reads; if it has gone there is no one to tell.
            let _ = tx.send(sample);
            next_interval += 1;
        }
        if stopping {
            shared.borrow_mut().phase = Phase::Draining;
            cpu_end = CpuTime::this_thread();
            measured_until = now;
            break;
        }
        counter.store(shared.borrow().messages, Ordering::Relaxed);
        if opts.mode == Mode::Connect {
            // Closed loop: a successor for each exchange that ended; open
            // loop: the exchanges whose time has come.
            let due = match opts.msg_rate {
                None => std::mem::take(&mut shared.borrow_mut().to_open),
                Some(_) => 0,
            };
            for _ in 0..due {
                let handler = Exchange::new(Rc::clone(&shared), Rc::clone(&payload), now, true);
                event_loop.connect(opts.addr, make()?, Box::new(handler))?;
            }
            while let Some(rate) = opts.msg_rate {
                let started = exchange_at(next_exchange, rate);
                if started > now {
                    break;
                }
                let handler =
                    Exchange::new(Rc::clone(&shared), Rc::clone(&payload), started, false);
                event_loop.connect(opts.addr, make()?, Box::new(handler))?;
                next_exchange += loops;
            }
        } else if event_loop.connections() == 0 {
            break;
        }
        let mut wake = clock.interval_start(next_interval + 1).min(clock.end);
        if shared.borrow().phase == Phase::Warmup {
            wake = wake.min(clock.measure);
        }
        if let Some(send) = shared.borrow().next_send() {
            wake = wake.min(send);
        }
        if let (Mode::Connect, Some(rate)) = (opts.mode, opts.msg_rate) {
            wake = wake.min(exchange_at(next_exchange, rate));
        }
        event_loop.turn(Some(turn_timeout(wake, Instant::now())))?;
    }
    counter.store(shared.borrow().messages, Ordering::Relaxed);
    // Drain: frames in flight come back, then each connection closes.
    let drain_end = Instant::now() + Duration::from_secs(5);
    while event_loop.connections() > 0 && Instant::now() < drain_end {
        event_loop.turn(Some(Duration::from_millis(20)))?;
    }
    if event_loop.connections() > 0 {
        let left = event_loop.connections();
        shared
            .borrow_mut()
            .error(format!("{left} connections did not drain in 5 s"));
    }
    drop(event_loop);
    let shared = Rc::try_unwrap(shared)
        .map_err(|_| io::Error::other("a connection outlived its loop"))?
        .into_inner();
    let cpu = match (cpu_at_measure, cpu_end) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    Ok(LoopResult {
        shared,
        cpu,
        measured_until,
    })
}

/// How long a loop may wait for I/O before `wake`. The system's wait
/// counts in whole milliseconds, rounded up, so within 2 ms of `wake` the
/// loop only polls (it may spin its core while an open-loop schedule is
/// dense): a send that leaves late would be charged to the server.
fn turn_timeout(wake: Instant, now: Instant) -> Duration {
    let left = wake.saturating_duration_since(now);
    if left < Duration::from_millis(2) {
        Duration::ZERO
    } else {
        (left - Duration::from_millis(1)).min(Duration::from_millis(20))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loop_wakes_early_and_polls_in_the_last_two_milliseconds() {
        let now = Instant::now();
        assert_eq!(turn_timeout(now, now), Duration::ZERO);
        let soon = now + Duration::from_micros(1_500);
        assert_eq!(turn_timeout(soon, now), Duration::ZERO);
        let later = now + Duration::from_millis(5);
        assert_eq!(turn_timeout(later, now), Duration::from_millis(4));
        let far = now + Duration::from_secs(1);
        assert_eq!(turn_timeout(far, now), Duration::from_millis(20));
    }

    #[test]
    fn an_interval_is_handed_on_once_every_loop_gave_its_part() {
        let start = Instant::now();
        let clock = Clock {
            start,
            measure: start,
            end: start + Duration::from_secs(3),
            interval: Duration::from_secs(1),
        };
        let sample = |index, messages| {
            let mut histogram = Histogram::new(3).unwrap();
            for v in 1..=messages {
                histogram.record(v * 10).unwrap();
            }
            Sample {
                index,
                end: clock.interval_start(index + 1),
                errors: 1,
                histogram,
            }
        };
        let mut pending = Vec::new();
        let mut done = Vec::new();
        merge_sample(&mut pending, sample(0, 10), 2, &clock, |i| done.push(i));
        merge_sample(&mut pending, sample(1, 5), 2, &clock, |i| done.push(i));
        assert!(done.is_empty());
        merge_sample(&mut pending, sample(0, 30), 2, &clock, |i| done.push(i));
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].messages, 40);
        assert_eq!(done[0].errors, 2);
        assert_eq!(done[0].latency.max, 300);
        assert_eq!((done[0].end_secs, done[0].secs), (1.0, 1.0));
        assert_eq!(pending.len(), 1, "interval 1 waits for its second loop");
    }
}
