//! Shaping limits changed at run time by arbitrary values, per connection
//! and global, interleaved with writes, reads and the passing of virtual
//! time, on up to three shapers sharing one global limiter.
//!
//! Limits are any rate and burst (0, 1, huge, past the maximum: refused
//! with a typed error), unlimited, and flipped many times without time
//! passing. Every shaper call is made at a virtual instant the script moves.
//!
//! Invariants:
//! - nothing panics or overflows (the fuzz build checks arithmetic);
//! - while a limit holds, from the moment it was set the bytes passed in
//!   that direction never exceed `burst + rate × elapsed` (+1 for the byte
//!   fraction carried over): per connection for its own limit, summed over
//!   all connections for the global limit (a new limit begins a new span);
//! - nothing is lost, duplicated or reordered: each direction passes a
//!   prefix of what was offered, byte for byte, and its counters
//!   (`ShaperHandle::stats`, `GlobalLimiter::stats`) say as much;
//! - nothing stalls: with bytes pending, a shaper names a deadline, and
//!   following deadlines drains everything in the end.
#![no_main]

use std::time::{Duration, Instant};

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use netstrata_core::{Flush, Inbound, Layer, Outbound};
use netstrata_shape::{Direction, GlobalLimiter, Limit, ShapeConfig, ShapeError, Shaper};

#[path = "common.rs"]
mod common;
use common::Script;

const NS: u128 = 1_000_000_000;
const DIRECTIONS: [Direction; 2] = [Direction::Inbound, Direction::Outbound];

/// The place of `direction` in `DIRECTIONS`.
fn index(direction: Direction) -> usize {
    match direction {
        Direction::Inbound => 0,
        Direction::Outbound => 1,
    }
}

/// A limit that has held since `since`, and what passed under it.
#[derive(Debug, Clone, Copy)]
struct Span {
    limit: Option<Limit>,
    since: Instant,
    passed: u128,
}

impl Span {
    fn new(limit: Option<Limit>, since: Instant) -> Self {
        Self {
            limit,
            since,
            passed: 0,
        }
    }

    fn add(&mut self, n: usize, now: Instant, what: &str) {
        self.passed += n as u128;
        if let Some(limit) = self.limit {
            let elapsed = now.duration_since(self.since).as_nanos();
            let allowed = u128::from(limit.burst()) + u128::from(limit.rate()) * elapsed / NS + 1;
            assert!(
                self.passed <= allowed,
                "{what}: {} bytes passed in {elapsed} ns under {limit:?} (at most {allowed})",
                self.passed
            );
        }
    }
}

/// One direction of one connection: what was offered, what passed.
#[derive(Debug)]
struct Flow {
    /// Bytes offered, not yet passed (outbound: the layer's input;
    /// inbound: the wire bytes it has not read).
    pending: BytesMut,
    offered: u64,
    passed: u64,
    span: Span,
}

impl Flow {
    fn new(limit: Option<Limit>, now: Instant) -> Self {
        Self {
            pending: BytesMut::new(),
            offered: 0,
            passed: 0,
            span: Span::new(limit, now),
        }
    }

    /// Offers `n` more bytes, numbered on from the last.
    fn offer(&mut self, n: usize) {
        for _ in 0..n {
            self.pending.extend_from_slice(&[(self.offered % 251) as u8]);
            self.offered += 1;
        }
    }

    /// Checks that `out` continues the passed bytes in order.
    fn passed(&mut self, out: &[u8]) {
        for &b in out {
            assert_eq!(b, (self.passed % 251) as u8, "a byte lost, doubled or reordered");
            self.passed += 1;
        }
        assert_eq!(self.passed + self.pending.len() as u64, self.offered);
    }
}

struct Conn {
    shaper: Shaper,
    flows: [Flow; 2],
}

struct Run {
    now: Instant,
    global: GlobalLimiter,
    global_spans: [Span; 2],
    conns: Vec<Conn>,
}

impl Run {
    /// One call in `direction` on connection `k`, with `room` above for reads.
    fn pass(&mut self, k: usize, direction: Direction, room: usize) {
        let now = self.now;
        let conn = &mut self.conns[k];
        let d = index(direction);
        let mut out = BytesMut::new();
        let result = match direction {
            Direction::Outbound => {
                let io = Outbound::new(now, &mut conn.flows[d].pending, Flush::Batch, &mut out);
                conn.shaper.handle_outbound(io)
            }
            Direction::Inbound => {
                let mut lower = BytesMut::new();
                let io = Inbound::new(now, &mut conn.flows[d].pending, &mut out, &mut lower)
                    .with_upper_room(room);
                let result = conn.shaper.handle_inbound(io);
                assert!(lower.is_empty(), "a shaper answered toward the wire");
                result
            }
        };
        result.unwrap_or_else(|e| panic!("a shaper failed: {e}"));
        if direction == Direction::Inbound {
            assert!(out.len() <= room, "past the room above");
        }
        conn.flows[d].passed(&out);
        let what = format!("connection {k} {direction:?}");
        conn.flows[d].span.add(out.len(), now, &what);
        self.global_spans[d].add(out.len(), now, &format!("global {direction:?}"));
    }

    fn check_counters(&self) {
        let mut totals = [0u64; 2];
        for conn in &self.conns {
            let stats = conn.shaper.handle().stats(self.now);
            assert_eq!(stats.inbound.total_bytes, conn.flows[0].passed);
            assert_eq!(stats.outbound.total_bytes, conn.flows[1].passed);
            totals[0] += conn.flows[0].passed;
            totals[1] += conn.flows[1].passed;
        }
        let global = self.global.stats(self.now);
        assert_eq!(global.inbound.total_bytes, totals[0]);
        assert_eq!(global.outbound.total_bytes, totals[1]);
    }

    /// Runs the deadlines `now` has reached, then passes what they allow.
    fn timers(&mut self) {
        for k in 0..self.conns.len() {
            let due = self.conns[k].shaper.poll_timeout().is_some_and(|t| t <= self.now);
            if due {
                let mut lower = BytesMut::new();
                self.conns[k]
                    .shaper
                    .handle_timeout(self.now, &mut lower)
                    .unwrap_or_else(|e| panic!("a timeout failed: {e}"));
                assert!(lower.is_empty());
            }
            for direction in DIRECTIONS {
                self.pass(k, direction, usize::MAX);
            }
        }
    }
}

/// A limit from the script: any rate and burst, on several scales, or none.
fn limit(script: &mut Script<'_>) -> Result<Option<Limit>, ShapeError> {
    let scale = script.byte();
    let (rate, burst) = (script.u64(), script.u64());
    let (rate, burst) = match scale % 6 {
        0 => return Ok(None),
        1 => (rate % 64, burst % 64),
        2 => (rate % 100_000, burst % 100_000),
        3 => (rate % (Limit::MAX_RATE + 2), burst % (Limit::MAX_BURST + 2)),
        4 => return Limit::per_second(rate % (1 << 42)).map(Some),
        _ => (rate, burst),
    };
    Limit::new(rate, burst).map(Some)
}

/// A limit from the script, or none where the script's value is refused:
/// a refusal is typed and says why.
fn limit_or_none(script: &mut Script<'_>) -> Option<Option<Limit>> {
    match limit(script) {
        Ok(limit) => Some(limit),
        Err(
            ShapeError::ZeroRate
            | ShapeError::ZeroBurst
            | ShapeError::RateTooHigh { .. }
            | ShapeError::BurstTooLarge { .. },
        ) => None,
        Err(other) => panic!("an unexpected refusal: {other}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut script = Script::new(data);
    let now = Instant::now();
    let mut config = ShapeConfig::new();
    for direction in DIRECTIONS {
        config = config.with_limit(direction, limit_or_none(&mut script).flatten());
    }
    let global = GlobalLimiter::new(config);
    let global_spans = DIRECTIONS.map(|d| Span::new(global.limit(d), now));
    let count = usize::from(script.byte() % 3) + 1;
    let conns = (0..count)
        .map(|_| {
            let mut config = ShapeConfig::new();
            for direction in DIRECTIONS {
                config = config.with_limit(direction, limit_or_none(&mut script).flatten());
            }
            let shaper = Shaper::new(config).with_global(&global);
            let flows = DIRECTIONS.map(|d| Flow::new(config.limit(d), now));
            Conn { shaper, flows }
        })
        .collect();
    let mut run = Run {
        now,
        global,
        global_spans,
        conns,
    };
    for _ in 0..256 {
        if script.is_empty() {
            break;
        }
        let op = script.byte();
        let k = usize::from(op >> 4) % run.conns.len();
        let direction = DIRECTIONS[usize::from(op >> 3) & 1];
        let d = index(direction);
        match op % 8 {
            0 => {
                if let Some(limit) = limit_or_none(&mut script) {
                    run.conns[k].shaper.handle().set_limit(direction, limit);
                    run.conns[k].flows[d].span = Span::new(limit, run.now);
                }
            }
            1 => {
                if let Some(limit) = limit_or_none(&mut script) {
                    run.global.set_limit(direction, limit);
                    run.global_spans[d] = Span::new(limit, run.now);
                }
            }
            2 | 3 => {
                // At most 8 KiB a direction in all, so that draining at
                // 1 byte a second stays a few thousand deadlines.
                let flow = &mut run.conns[k].flows[d];
                let n = (usize::from(script.u16()) % 4096).min(8192 - flow.offered as usize);
                flow.offer(n);
                let room = usize::from(script.u16());
                run.pass(k, direction, room);
            }
            4 => {
                let room = usize::from(script.u16());
                run.pass(k, direction, room);
            }
            5 | 6 => {
                let step = u64::from(script.u16());
                let step = match script.byte() % 4 {
                    0 => Duration::from_nanos(step),
                    1 => Duration::from_micros(step),
                    2 => Duration::from_millis(step),
                    _ => Duration::from_secs(step),
                };
                run.now += step;
                run.timers();
            }
            _ => {
                // To the next deadline of any shaper.
                if let Some(next) = run.conns.iter().filter_map(|c| c.shaper.poll_timeout()).min() {
                    run.now = run.now.max(next);
                }
                run.timers();
            }
        }
        run.check_counters();
    }
    // Everything offered passes, following the deadlines.
    for _ in 0..100_000 {
        run.timers();
        let pending = run
            .conns
            .iter()
            .any(|c| c.flows.iter().any(|f| !f.pending.is_empty()));
        if !pending {
            run.check_counters();
            return;
        }
        let next = run.conns.iter().filter_map(|c| c.shaper.poll_timeout()).min();
        let Some(next) = next else {
            for (k, c) in run.conns.iter().enumerate() {
                eprintln!(
                    "conn {k}: pending in {} out {}; shaper {:?}",
                    c.flows[0].pending.len(),
                    c.flows[1].pending.len(),
                    c.shaper
                );
            }
            eprintln!("global {:?}", run.global);
            panic!("bytes pending and no deadline: a stall");
        };
        run.now = run.now.max(next);
    }
    panic!("bytes still pending after 100000 deadlines");
});
