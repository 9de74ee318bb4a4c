//! One client loop's connections: what each sends, when, and what it
//! records of the echoes.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use netstrata_core::ConnectionStats;
use netstrata_reactor::{CloseReason, Context, Handler};

use crate::report::StackTotals;

/// The timer a paced connection sends on.
const SEND_TIMER: u64 = 1;

/// What one loop's connections record, shared by them (one thread).
pub(super) struct Shared {
    /// Round trips within the measured window, in microseconds.
    pub(super) histogram: Histogram<u64>,
    /// The same for the interval under way.
    pub(super) interval: Histogram<u64>,
    pub(super) interval_errors: u64,
    pub(super) messages: u64,
    pub(super) errors: u64,
    pub(super) error_samples: Vec<String>,
    pub(super) wire_out: u64,
    pub(super) totals: StackTotals,
    pub(super) opened: u64,
    pub(super) connect_error: Option<String>,
    /// The phase of the run, set by the loop's driver.
    pub(super) phase: Phase,
    /// Each paced connection's next intended send, by its slot: the driver
    /// wakes the loop in time for the earliest.
    pub(super) schedule: Vec<Instant>,
    /// `--mode connect`: TCP connects within the measured window, in
    /// microseconds.
    pub(super) connects: Histogram<u64>,
    /// `--mode connect`, closed loop: exchanges that ended and want a
    /// successor (the loop's driver opens them).
    pub(super) to_open: usize,
}

/// Where a run is: what connections do with an echo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Sending, not recording.
    Warmup,
    /// Sending and recording.
    Measuring,
    /// No more sends: frames in flight come back, then each connection closes.
    Draining,
}

impl Shared {
    pub(super) fn new() -> Result<Self, hdrhistogram::CreationError> {
        Ok(Self {
            histogram: Histogram::new(3)?,
            interval: Histogram::new(3)?,
            interval_errors: 0,
            messages: 0,
            errors: 0,
            error_samples: Vec::new(),
            wire_out: 0,
            totals: StackTotals::default(),
            opened: 0,
            connect_error: None,
            phase: Phase::Warmup,
            schedule: Vec::new(),
            connects: Histogram::new(3)?,
            to_open: 0,
        })
    }

    pub(super) fn error(&mut self, what: String) {
        self.errors += 1;
        self.interval_errors += 1;
        if self.error_samples.len() < 5 {
            self.error_samples.push(what);
        }
    }

    fn record(&mut self, round_trip: Duration) {
        let us = micros(round_trip);
        self.messages += 1;
        // Auto-resizing histograms take any value.
        let _ = self.histogram.record(us);
        let _ = self.interval.record(us);
    }

    /// The earliest intended send of any paced connection.
    pub(super) fn next_send(&self) -> Option<Instant> {
        self.schedule.iter().min().copied()
    }
}

/// How a connection decides when to send.
#[derive(Debug, Clone, Copy)]
pub(super) enum Pace {
    /// Closed loop: `depth` frames in flight, the next sent as an echo
    /// comes back.
    Closed { depth: usize },
    /// Open loop: one frame every `every`, the first at `first`, whatever
    /// the echoes do; each round trip is measured from the frame's intended
    /// send time, so a stalled server is charged for the frames it delayed.
    Open {
        every: Duration,
        first: Instant,
        slot: usize,
    },
}

pub(super) struct LoadConn {
    shared: Rc<RefCell<Shared>>,
    payload: Rc<[u8]>,
    pace: Pace,
    /// When each frame in flight was sent (closed loop) or meant to be
    /// sent (open loop).
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
    pub(super) fn new(shared: Rc<RefCell<Shared>>, payload: Rc<[u8]>, pace: Pace) -> Self {
        if let Pace::Open { first, slot, .. } = pace {
            let mut shared = shared.borrow_mut();
            if shared.schedule.len() <= slot {
                shared.schedule.resize(slot + 1, first);
            }
            shared.schedule[slot] = first;
        }
        let size = payload.len();
        Self {
            shared,
            payload,
            pace,
            sent_at: VecDeque::new(),
            next_send: 0,
            next_recv: 0,
            frame: Vec::with_capacity(size),
            counted: false,
            opened: false,
        }
    }

    /// Sends the next frame, timed from `intended`.
    fn send_one(&mut self, cx: &mut Context<'_>, intended: Instant) {
        self.frame.clear();
        self.frame.extend_from_slice(&self.next_send.to_be_bytes());
        self.frame.extend_from_slice(&self.payload[8..]);
        match cx.send(&self.frame) {
            Ok(_) => {
                self.sent_at.push_back(intended);
                self.next_send += 1;
            }
            Err(e) => self.shared.borrow_mut().error(format!("send: {e}")),
        }
    }

    /// Open loop: sends every frame whose time has come (several at once
    /// if the loop was late: each is still timed from its own intended
    /// time), then sets the timer for the next.
    fn send_due(&mut self, cx: &mut Context<'_>) {
        let Pace::Open { every, first, slot } = self.pace else {
            return;
        };
        let now = cx.now();
        let mut next = first;
        if self.shared.borrow().phase == Phase::Draining {
            self.shared.borrow_mut().schedule[slot] = far_future(now);
            if self.sent_at.is_empty() {
                cx.close();
            }
            return;
        }
        while next <= now {
            self.send_one(cx, next);
            next += every;
        }
        self.pace = Pace::Open {
            every,
            first: next,
            slot,
        };
        self.shared.borrow_mut().schedule[slot] = next;
        cx.set_timer(next - now, SEND_TIMER);
    }
}

/// `d` in whole microseconds, at least 1 (a histogram's smallest value).
fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// `--mode connect`: one connection per exchange. It connects (with
/// `--tls`, handshakes), sends one frame, checks its echo and closes; the
/// exchange is timed from `started` (when the connect began, or in open
/// loop when it was meant to), the TCP connect alone as well.
pub(super) struct Exchange {
    shared: Rc<RefCell<Shared>>,
    payload: Rc<[u8]>,
    started: Instant,
    /// Closed loop: a successor is opened when this one ends.
    replace: bool,
    opened: bool,
    echoed: bool,
}

impl Exchange {
    pub(super) fn new(
        shared: Rc<RefCell<Shared>>,
        payload: Rc<[u8]>,
        started: Instant,
        replace: bool,
    ) -> Self {
        Self {
            shared,
            payload,
            started,
            replace,
            opened: false,
            echoed: false,
        }
    }
}

impl Handler for Exchange {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        self.opened = true;
        let mut shared = self.shared.borrow_mut();
        shared.opened += 1;
        if shared.phase == Phase::Measuring {
            let connect = cx.now().saturating_duration_since(self.started);
            let _ = shared.connects.record(micros(connect));
        }
        drop(shared);
        let mut frame = self.payload.to_vec();
        frame[..8].copy_from_slice(&0u64.to_be_bytes());
        if let Err(e) = cx.send(&frame) {
            self.shared.borrow_mut().error(format!("send: {e}"));
            cx.abort();
        }
    }

    fn on_message(&mut self, cx: &mut Context<'_>, msg: Bytes) {
        let intact = !self.echoed
            && msg.len() == self.payload.len()
            && msg[..8] == 0u64.to_be_bytes()
            && msg[8..] == self.payload[8..];
        let mut shared = self.shared.borrow_mut();
        if !intact {
            shared.error(format!(
                "echo differs from what was sent ({} bytes)",
                msg.len()
            ));
            drop(shared);
            return cx.abort();
        }
        self.echoed = true;
        if shared.phase == Phase::Measuring {
            shared.record(cx.now().saturating_duration_since(self.started));
        }
        drop(shared);
        cx.close();
    }

    fn on_close(&mut self, reason: &CloseReason, stats: &ConnectionStats) {
        let mut shared = self.shared.borrow_mut();
        shared.totals.add(stats);
        if shared.phase != Phase::Draining {
            shared.wire_out += stats.wire_out;
        }
        match reason {
            CloseReason::Clean if self.echoed => {}
            CloseReason::Clean => shared.error("closed before its echo".to_owned()),
            _ if !self.opened => {
                let why = connect_failure(reason);
                shared.error(format!("could not connect: {why}"));
                shared.connect_error.get_or_insert(why);
            }
            other => shared.error(format!("connection closed: {other}")),
        }
        if self.replace && shared.phase != Phase::Draining {
            shared.to_open += 1;
        }
    }
}

/// A time no send is planned for.
fn far_future(now: Instant) -> Instant {
    now + Duration::from_secs(3600)
}

impl Handler for LoadConn {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        self.opened = true;
        self.shared.borrow_mut().opened += 1;
        match self.pace {
            Pace::Closed { depth } => {
                let now = cx.now();
                for _ in 0..depth {
                    self.send_one(cx, now);
                }
            }
            Pace::Open { .. } => self.send_due(cx),
        }
    }

    fn on_timer(&mut self, cx: &mut Context<'_>, id: u64) {
        if id == SEND_TIMER {
            self.send_due(cx);
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
        let phase = shared.phase;
        if phase == Phase::Measuring
            && let Some(at) = sent
        {
            shared.record(cx.now().saturating_duration_since(at));
        }
        if phase == Phase::Draining {
            count_window(&mut self.counted, &mut shared, cx.stats().wire_out);
        }
        drop(shared);
        match (phase, self.pace) {
            (Phase::Draining, _) => {
                if self.sent_at.is_empty() {
                    cx.close();
                }
            }
            (_, Pace::Closed { .. }) => {
                let now = cx.now();
                self.send_one(cx, now);
            }
            (_, Pace::Open { .. }) => {}
        }
    }

    fn on_close(&mut self, reason: &CloseReason, stats: &ConnectionStats) {
        let mut shared = self.shared.borrow_mut();
        if let Pace::Open { slot, .. } = self.pace {
            shared.schedule[slot] = far_future(Instant::now());
        }
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
