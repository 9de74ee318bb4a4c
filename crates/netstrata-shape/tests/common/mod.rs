//! Helpers shared by the shaping tests: drivers on a virtual clock, a
//! conformance check, and a layer that records what crosses it.
#![allow(dead_code, unreachable_pub)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use netstrata_core::{Flush, Inbound, Layer, Outbound, Result, transfer};
use netstrata_shape::{Limit, Shaper};

pub const KIB: u64 = 1024;
pub const MIB: u64 = 1024 * 1024;
pub const GIB: u64 = 1024 * 1024 * 1024;
const NS: i128 = 1_000_000_000;

/// A delivery: nanoseconds since the start, bytes.
pub type Delivery = (u64, u64);

pub fn ns(d: Duration) -> u64 {
    d.as_nanos() as u64
}

/// Asserts that `deliveries` (in time order) conform to `limit`: for every
/// `i <= j`, the bytes of deliveries `i..=j` are at most
/// `burst + rate × (t_j - t_i)`. Exact (integers, nano-bytes).
pub fn assert_conforms(deliveries: &[Delivery], limit: Limit, what: &str) {
    let (rate, burst) = (i128::from(limit.rate()), i128::from(limit.burst()));
    // min over i of (NS × bytes before i − rate × t_i)
    let mut best = i128::MAX;
    let mut before = 0i128;
    for (j, &(t, n)) in deliveries.iter().enumerate() {
        let t = i128::from(t);
        best = best.min(NS * before - rate * t);
        before += i128::from(n);
        let excess = NS * before - rate * t - NS * burst - best;
        assert!(
            excess <= 0,
            "{what}: delivery {j} at {t} ns exceeds the burst by {} bytes",
            excess as f64 / NS as f64
        );
    }
}

/// The fewest and most bytes delivered in any window of length `window`
/// that fits in `[0, horizon]`.
pub fn window_extremes(deliveries: &[Delivery], window: Duration, horizon: Duration) -> (u64, u64) {
    let (w, h) = (ns(window), ns(horizon));
    assert!(h >= w, "horizon shorter than the window");
    let times: Vec<u64> = deliveries.iter().map(|d| d.0).collect();
    let bytes = |from: usize, to: usize| -> u64 { deliveries[from..to].iter().map(|d| d.1).sum() };
    // Extremes are reached at windows starting or ending at a delivery.
    let mut starts: Vec<u64> = times.iter().copied().filter(|&t| t + w <= h).collect();
    starts.extend(times.iter().filter(|&&t| t >= w).map(|&t| t - w));
    starts.push(0);
    starts.push(h - w);
    let (mut lo, mut hi) = (u64::MAX, 0);
    for s in starts {
        // Closed at both ends gives the most, open at both ends the least.
        let a = times.partition_point(|&t| t < s);
        let b = times.partition_point(|&t| t <= s + w);
        hi = hi.max(bytes(a, b));
        let a = times.partition_point(|&t| t <= s);
        let b = times.partition_point(|&t| t < s + w);
        lo = lo.min(bytes(a, b.max(a)));
    }
    (lo, hi)
}

/// Relative error of `got` bytes over `window` against `rate`.
pub fn rate_error(got: u64, window: Duration, rate: u64) -> f64 {
    let want = rate as f64 * window.as_secs_f64();
    (got as f64 - want) / want
}

/// Asserts every window of `window` within `tolerance` of `rate`.
pub fn assert_rate(
    deliveries: &[Delivery],
    rate: u64,
    window: Duration,
    horizon: Duration,
    tolerance: f64,
    what: &str,
) {
    let (lo, hi) = window_extremes(deliveries, window, horizon);
    let (elo, ehi) = (rate_error(lo, window, rate), rate_error(hi, window, rate));
    eprintln!(
        "{what}: windows of {window:?} within {:+.3}% .. {:+.3}%",
        elo * 100.0,
        ehi * 100.0
    );
    assert!(
        elo.abs() <= tolerance && ehi.abs() <= tolerance,
        "{what}: windows of {window:?} range {:+.3}% .. {:+.3}% of {rate} B/s",
        elo * 100.0,
        ehi * 100.0
    );
}

/// A big input that is never touched (calloc'd, split without copying).
fn big_input() -> BytesMut {
    BytesMut::zeroed(256 * MIB as usize)
}

/// Drives the outbound side of `shaper` as a saturating sender from `start`
/// for `span`, calling it exactly when it asks; returns the deliveries.
pub fn saturate_outbound(shaper: &mut Shaper, start: Instant, span: Duration) -> Vec<Delivery> {
    let mut input = big_input();
    let mut out = Vec::new();
    let mut now = start;
    loop {
        if input.len() < 128 * MIB as usize {
            input = big_input();
        }
        let mut down = BytesMut::new();
        shaper
            .handle_outbound(Outbound::new(now, &mut input, Flush::Batch, &mut down))
            .unwrap();
        if !down.is_empty() {
            out.push((ns(now - start), down.len() as u64));
        }
        let wake = shaper
            .poll_timeout()
            .expect("a saturated shaper has a deadline");
        assert!(wake > now, "deadline {wake:?} not after {now:?}");
        if wake > start + span {
            return out;
        }
        now = wake;
        shaper.handle_timeout(now, &mut down).unwrap();
    }
}

/// Drives the inbound side of `shaper` with a peer that always has bytes
/// to send: input is offered only while `wants_read`, and each call must
/// consume nothing while it is `false`.
pub fn saturate_inbound(shaper: &mut Shaper, start: Instant, span: Duration) -> Vec<Delivery> {
    let mut input = BytesMut::new();
    let mut out = Vec::new();
    let mut now = start;
    loop {
        let mut up = BytesMut::new();
        let wanted = shaper.wants_read();
        if wanted && input.len() < 64 * MIB as usize {
            input = big_input();
        }
        let before = input.len();
        shaper
            .handle_inbound(Inbound::new(now, &mut input, &mut up, &mut BytesMut::new()))
            .unwrap();
        if !wanted {
            assert_eq!(input.len(), before, "consumed input while refusing reads");
        }
        if !up.is_empty() {
            out.push((ns(now - start), up.len() as u64));
        }
        assert!(
            !shaper.wants_read(),
            "a saturated reader is paused between grants"
        );
        let wake = shaper
            .poll_timeout()
            .expect("a paused reader has a deadline");
        assert!(wake > now);
        if wake > start + span {
            return out;
        }
        now = wake;
        shaper.handle_timeout(now, &mut up).unwrap();
    }
}

/// Sum of the bytes delivered in `[from, to)`.
pub fn bytes_between(deliveries: &[Delivery], from: Duration, to: Duration) -> u64 {
    deliveries
        .iter()
        .filter(|d| d.0 >= ns(from) && d.0 < ns(to))
        .map(|d| d.1)
        .sum()
}

/// Several saturating senders on one virtual clock, each with its own
/// shaper (sharing a global limiter), called when they ask, in turn.
pub struct Senders {
    pub shapers: Vec<Shaper>,
    /// Whether each sender has bytes to send.
    pub active: Vec<bool>,
    inputs: Vec<BytesMut>,
    pub deliveries: Vec<Vec<Delivery>>,
    pub start: Instant,
    pub now: Instant,
    /// Readers instead of writers: input is offered while `wants_read`.
    reading: bool,
}

impl Senders {
    pub fn new(shapers: Vec<Shaper>, start: Instant) -> Self {
        let n = shapers.len();
        Self {
            shapers,
            active: vec![true; n],
            inputs: (0..n).map(|_| BytesMut::new()).collect(),
            deliveries: vec![Vec::new(); n],
            start,
            now: start,
            reading: false,
        }
    }

    /// Saturated readers: their peers always have bytes to send.
    pub fn readers(shapers: Vec<Shaper>, start: Instant) -> Self {
        Self {
            reading: true,
            ..Self::new(shapers, start)
        }
    }

    /// Adds a sender, active from now.
    pub fn push(&mut self, shaper: Shaper) {
        self.shapers.push(shaper);
        self.active.push(true);
        self.inputs.push(BytesMut::new());
        self.deliveries.push(Vec::new());
    }

    fn call(&mut self, i: usize) {
        let input = &mut self.inputs[i];
        let shaper = &mut self.shapers[i];
        if !self.active[i] {
            input.clear();
        } else if input.len() < 4 * MIB as usize && (!self.reading || shaper.wants_read()) {
            *input = BytesMut::zeroed(8 * MIB as usize);
        }
        let mut out = BytesMut::new();
        if self.reading {
            shaper
                .handle_inbound(Inbound::new(
                    self.now,
                    input,
                    &mut out,
                    &mut BytesMut::new(),
                ))
                .unwrap();
        } else {
            shaper
                .handle_outbound(Outbound::new(self.now, input, Flush::Batch, &mut out))
                .unwrap();
        }
        if !out.is_empty() {
            self.deliveries[i].push((ns(self.now - self.start), out.len() as u64));
        }
    }

    /// Runs until `start + until`. A deadline may equal `now` (another
    /// sender gave bytes back after this one was called): it is run at once,
    /// a bounded number of times.
    pub fn run_until(&mut self, until: Duration) {
        let end = self.start + until;
        let mut same_instant = 0;
        loop {
            for i in 0..self.shapers.len() {
                self.call(i);
            }
            let next = self.shapers.iter().filter_map(|s| s.poll_timeout()).min();
            let Some(next) = next else { return };
            if next <= self.now {
                same_instant += 1;
                assert!(
                    same_instant < 100,
                    "deadlines keep falling at {:?}",
                    self.now - self.start
                );
            } else {
                same_instant = 0;
            }
            if next > end {
                self.now = end;
                return;
            }
            self.now = self.now.max(next);
            let now = self.now;
            for s in &mut self.shapers {
                if s.poll_timeout().is_some_and(|t| t <= now) {
                    s.handle_timeout(now, &mut BytesMut::new()).unwrap();
                }
            }
        }
    }

    /// Bytes sender `i` delivered in `[from, to)`.
    pub fn got(&self, i: usize, from: Duration, to: Duration) -> u64 {
        bytes_between(&self.deliveries[i], from, to)
    }

    /// All deliveries, merged in time order.
    pub fn merged(&self) -> Vec<Delivery> {
        let mut all: Vec<Delivery> = self.deliveries.iter().flatten().copied().collect();
        all.sort_by_key(|d| d.0);
        all
    }
}

/// What a [`Tap`] saw: (instant, bytes) per call that moved bytes.
#[derive(Debug, Default)]
pub struct Taped {
    pub outbound: Vec<(Instant, u64)>,
    pub inbound: Vec<(Instant, u64)>,
}

/// A pass-through layer that records the instant and size of every move.
#[derive(Debug, Clone, Default)]
pub struct Tap {
    pub seen: Arc<Mutex<Taped>>,
}

impl Tap {
    /// Deliveries each way relative to `start`: (outbound, inbound).
    pub fn deliveries(&self, start: Instant) -> (Vec<Delivery>, Vec<Delivery>) {
        let seen = self.seen.lock().unwrap();
        let rel = |v: &[(Instant, u64)]| v.iter().map(|&(t, n)| (ns(t - start), n)).collect();
        (rel(&seen.outbound), rel(&seen.inbound))
    }
}

impl Layer for Tap {
    fn name(&self) -> &'static str {
        "tap"
    }
    fn handle_inbound(&mut self, io: Inbound<'_>) -> Result<()> {
        let n = transfer(io.input, io.upper, io.upper_room);
        if n > 0 {
            self.seen.lock().unwrap().inbound.push((io.now, n as u64));
        }
        Ok(())
    }
    fn handle_outbound(&mut self, io: Outbound<'_>) -> Result<()> {
        let n = transfer(io.input, io.lower, io.lower_room);
        if n > 0 {
            self.seen.lock().unwrap().outbound.push((io.now, n as u64));
        }
        Ok(())
    }
    fn is_read_closed(&self) -> bool {
        false
    }
    fn is_write_closed(&self) -> bool {
        false
    }
}
