//! `netstrata bench`: C connections, each keeping D frames in flight to an
//! echo server; every echoed byte is checked, every round trip timed.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use netstrata_core::ConnectionStats;
use netstrata_reactor::{CloseReason, Context, EventLoop, Handler, LoopConfig};
use netstrata_shape::TrafficStats;
use serde::Serialize;

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

/// A load run.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The echo server.
    pub addr: SocketAddr,
    /// Connections.
    pub conns: usize,
    /// Frames in flight per connection.
    pub depth: usize,
    /// Bytes per frame (at least 8: a sequence number leads each frame).
    pub size: usize,
    /// How long to measure.
    pub duration: Duration,
    /// Payload kind.
    pub payload: Payload,
    /// Layers.
    pub stack: StackOptions,
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
    /// Round-trip percentiles in microseconds: p50, p99, p99.9, max.
    pub latency_us: [u64; 4],
    /// Errors (failed connections, wrong echoes), with a few examples.
    pub errors: u64,
    /// Up to five error descriptions.
    pub error_samples: Vec<String>,
    /// Connections that were established (a failed connect is not).
    pub connections_opened: u64,
    /// Why the first connection that could not be established failed.
    pub connect_error: Option<String>,
    /// Wire bytes written by all connections within the measured window
    /// (each connection's count taken at its first event after the window).
    pub wire_out: u64,
    /// Every connection's final figures, summed (drain included).
    pub totals: StackTotals,
    /// The shaper's global counters at the end of the window, if shaping.
    pub traffic: Option<TrafficStats>,
    /// Round trips in microseconds, for plots.
    pub histogram: Histogram<u64>,
    /// (seconds since the start, echoes so far), about ten a second.
    pub timeline: Vec<(f64, u64)>,
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

    /// One JSON line: [`JSON_SCHEMA_VERSION`], the run's configuration
    /// (`stack` is its description) and every figure; docs/tool.md lists
    /// the fields.
    pub fn json(&self, opts: &LoadOptions, stack: &str) -> String {
        let [p50, p99, p999, max] = self.latency_us;
        let side = |d: &netstrata_shape::Traffic| JsonTraffic {
            total_bytes: d.total_bytes,
            bytes_per_sec: d.throughput,
            peak_bytes_per_sec: d.peak_throughput,
        };
        let line = JsonReport {
            schema_version: JSON_SCHEMA_VERSION,
            config: JsonConfig {
                addr: opts.addr.to_string(),
                conns: opts.conns,
                depth: opts.depth,
                size: opts.size,
                secs: opts.duration.as_secs_f64(),
                payload: match opts.payload {
                    Payload::Text => "text",
                    Payload::Random => "random",
                },
                stack,
            },
            stack,
            messages: self.messages,
            secs: self.elapsed.as_secs_f64(),
            size: self.size,
            msgs_per_sec: self.msgs_per_sec(),
            mb_per_sec: self.mb_per_sec(),
            p50_us: p50,
            p99_us: p99,
            p999_us: p999,
            max_us: max,
            wire_bytes_per_sec: self.wire_bytes_per_sec(),
            traffic: self.traffic.map(|t| JsonTrafficBoth {
                out: side(&t.outbound),
                r#in: side(&t.inbound),
            }),
            errors: self.errors,
            error_samples: &self.error_samples,
        };
        serde_json::to_string(&line).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

/// The version of [`Report::json`]'s shape: raised when a field changes
/// meaning or goes away (new fields do not raise it).
pub const JSON_SCHEMA_VERSION: u32 = 1;

#[derive(Serialize)]
struct JsonReport<'a> {
    schema_version: u32,
    config: JsonConfig<'a>,
    stack: &'a str,
    messages: u64,
    secs: f64,
    size: usize,
    msgs_per_sec: f64,
    mb_per_sec: f64,
    p50_us: u64,
    p99_us: u64,
    p999_us: u64,
    max_us: u64,
    wire_bytes_per_sec: f64,
    traffic: Option<JsonTrafficBoth>,
    errors: u64,
    error_samples: &'a [String],
}

#[derive(Serialize)]
struct JsonConfig<'a> {
    addr: String,
    conns: usize,
    depth: usize,
    size: usize,
    secs: f64,
    payload: &'static str,
    stack: &'a str,
}

#[derive(Serialize)]
struct JsonTrafficBoth {
    out: JsonTraffic,
    r#in: JsonTraffic,
}

#[derive(Serialize)]
struct JsonTraffic {
    total_bytes: u64,
    bytes_per_sec: u64,
    peak_bytes_per_sec: u64,
}

/// Progress during a run: seconds done, echoes so far.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Time since the start.
    pub elapsed: Duration,
    /// Echoes received so far.
    pub messages: u64,
    /// The shaper's global counters now, if shaping.
    pub traffic: Option<TrafficStats>,
}

struct Shared {
    histogram: Histogram<u64>,
    messages: u64,
    measuring: bool,
    errors: u64,
    error_samples: Vec<String>,
    wire_out: u64,
    totals: StackTotals,
    opened: u64,
    connect_error: Option<String>,
}

impl Shared {
    fn error(&mut self, what: String) {
        self.errors += 1;
        if self.error_samples.len() < 5 {
            self.error_samples.push(what);
        }
    }
}

struct LoadConn {
    shared: Rc<RefCell<Shared>>,
    payload: Rc<[u8]>,
    depth: usize,
    sent_at: VecDeque<Instant>,
    next_send: u64,
    next_recv: u64,
    frame: Vec<u8>,
    /// This connection's wire bytes were added to the window's total.
    counted: bool,
    /// The connection was established.
    opened: bool,
}

/// Adds a connection's wire bytes written so far to the window's total,
/// once, when the window has ended.
fn count_window(counted: &mut bool, shared: &mut Shared, wire_out: u64) {
    if !*counted {
        *counted = true;
        shared.wire_out += wire_out;
    }
}

impl LoadConn {
    fn send_one(&mut self, cx: &mut Context<'_>) {
        self.frame.clear();
        self.frame.extend_from_slice(&self.next_send.to_be_bytes());
        self.frame.extend_from_slice(&self.payload[8..]);
        match cx.send(&self.frame) {
            Ok(_) => {
                self.sent_at.push_back(cx.now());
                self.next_send += 1;
            }
            Err(e) => self.shared.borrow_mut().error(format!("send: {e}")),
        }
    }
}

impl Handler for LoadConn {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        self.opened = true;
        self.shared.borrow_mut().opened += 1;
        for _ in 0..self.depth {
            self.send_one(cx);
        }
    }

    fn on_message(&mut self, cx: &mut Context<'_>, msg: Bytes) {
        let expected_seq = self.next_recv.to_be_bytes();
        self.next_recv += 1;
        let sent = self.sent_at.pop_front();
        let intact = msg.len() == self.payload.len()
            && msg[..8] == expected_seq
            && msg[8..] == self.payload[8..];
        let mut shared = self.shared.borrow_mut();
        if !intact {
            shared.error(format!(
                "echo {} differs from what was sent ({} bytes)",
                self.next_recv - 1,
                msg.len()
            ));
            drop(shared);
            return cx.abort();
        }
        let measuring = shared.measuring;
        if measuring {
            shared.messages += 1;
            if let Some(at) = sent {
                let us = cx.now().saturating_duration_since(at).as_micros();
                let _ = shared
                    .histogram
                    .record(u64::try_from(us).unwrap_or(u64::MAX).max(1));
            }
        }
        if !measuring {
            count_window(&mut self.counted, &mut shared, cx.stats().wire_out);
        }
        drop(shared);
        if measuring {
            self.send_one(cx);
        } else if self.sent_at.is_empty() {
            cx.close();
        }
    }

    fn on_close(&mut self, reason: &CloseReason, stats: &ConnectionStats) {
        let mut shared = self.shared.borrow_mut();
        count_window(&mut self.counted, &mut shared, stats.wire_out);
        shared.totals.add(stats);
        match reason {
            CloseReason::Clean => {}
            _ if !self.opened => {
                let why = connect_failure(reason);
                shared.error(format!("could not connect: {why}"));
                shared.connect_error.get_or_insert(why);
            }
            other => shared.error(format!("connection closed: {other}")),
        }
        if !self.sent_at.is_empty() && matches!(reason, CloseReason::Clean) {
            shared.error(format!("{} echoes missing at close", self.sent_at.len()));
        }
    }
}

/// Why a connect failed, in words: an I/O error as the system says it
/// (`connection refused`), anything else as the close reason's own words.
fn connect_failure(reason: &CloseReason) -> String {
    match reason {
        CloseReason::Io(kind) => kind.to_string(),
        CloseReason::Error(netstrata_core::Error::Io(e)) => e.to_string(),
        other => other.to_string(),
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

/// Runs the load, calling `progress` about ten times a second.
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
    if opts.size < 8 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "--size must be at least 8 (each frame starts with a sequence number)",
        ));
    }
    let shared = Rc::new(RefCell::new(Shared {
        histogram: Histogram::new(3).map_err(io::Error::other)?,
        messages: 0,
        measuring: true,
        errors: 0,
        error_samples: Vec::new(),
        wire_out: 0,
        totals: StackTotals::default(),
        opened: 0,
        connect_error: None,
    }));
    let payload: Rc<[u8]> = payload(opts.payload, opts.size).into();
    let mut event_loop = EventLoop::new(LoopConfig::new())?;
    for _ in 0..opts.conns {
        let handler = LoadConn {
            shared: Rc::clone(&shared),
            payload: Rc::clone(&payload),
            depth: opts.depth.max(1),
            sent_at: VecDeque::new(),
            next_send: 0,
            next_recv: 0,
            frame: Vec::with_capacity(opts.size),
            counted: false,
            opened: false,
        };
        let conn = opts
            .stack
            .connection()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        event_loop.connect(opts.addr, conn, handler)?;
    }
    let start = Instant::now();
    let end = start + opts.duration;
    let mut next_tick = start;
    let mut timeline = Vec::new();
    while Instant::now() < end && event_loop.connections() > 0 && !stop.load(Ordering::Relaxed) {
        event_loop.turn(Some(Duration::from_millis(20)))?;
        let now = Instant::now();
        if now >= next_tick {
            next_tick = now + Duration::from_millis(100);
            let messages = shared.borrow().messages;
            timeline.push(((now - start).as_secs_f64(), messages));
            progress(Progress {
                elapsed: now - start,
                messages,
                traffic: opts.stack.traffic(now),
            });
        }
    }
    let elapsed = start.elapsed().min(opts.duration);
    let traffic = opts.stack.traffic(Instant::now());
    timeline.push((elapsed.as_secs_f64(), shared.borrow().messages));
    shared.borrow_mut().measuring = false;
    // Drain: frames in flight come back, then each connection closes.
    let drain_end = Instant::now() + Duration::from_secs(5);
    while event_loop.connections() > 0 && Instant::now() < drain_end {
        event_loop.turn(Some(Duration::from_millis(20)))?;
    }
    if event_loop.connections() > 0 {
        shared.borrow_mut().error(format!(
            "{} connections did not drain in 5 s",
            event_loop.connections()
        ));
    }
    drop(event_loop);
    let shared = shared.borrow();
    let h = &shared.histogram;
    Ok(Report {
        messages: shared.messages,
        elapsed,
        size: opts.size,
        latency_us: [
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            h.max(),
        ],
        errors: shared.errors,
        error_samples: shared.error_samples.clone(),
        connections_opened: shared.opened,
        connect_error: shared.connect_error.clone(),
        wire_out: shared.wire_out,
        totals: shared.totals.clone(),
        traffic,
        histogram: h.clone(),
        timeline,
    })
}
