//! One client loop (a thread with its own event loop): its share of the
//! connections driven until the measured window ends and every frame in
//! flight has come back, sending a sample of each interval to the run,
//! which merges the loops' samples into [`Interval`]s.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use netstrata_reactor::{EventLoop, Handler, LoopConfig};

use super::conn::{Exchange, LoadConn, Pace, Phase, Shared};
use super::{Interval, Latency, LoadOptions, Mode, payload};
use crate::cpu::CpuTime;

/// When a run's phases begin and end, the same for every loop.
#[derive(Debug, Clone, Copy)]
pub(super) struct Clock {
    pub(super) start: Instant,
    /// The measured window: from the end of the warm-up to `end`.
    pub(super) measure: Instant,
    pub(super) end: Instant,
    pub(super) interval: Duration,
}

impl Clock {
    /// The start of interval `k` of the measured window.
    pub(super) fn interval_start(&self, k: u32) -> Instant {
        self.measure + self.interval * k
    }
}

/// An interval's figures from one loop.
pub(super) struct Sample {
    pub(super) index: u32,
    pub(super) end: Instant,
    pub(super) errors: u64,
    /// Its round trips: one per echo.
    pub(super) histogram: Histogram<u64>,
}

/// What one loop measured, for the totals.
pub(super) struct LoopResult {
    pub(super) shared: Shared,
    /// The loop's CPU time within the measured window.
    pub(super) cpu: Option<CpuTime>,
    /// When it stopped measuring (the window's end, or a stop request).
    pub(super) measured_until: Instant,
}

/// Adds a loop's sample of an interval; once all `loops` have given theirs,
/// hands the interval to `done`.
pub(super) fn merge_sample(
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
pub(super) fn run_loop(
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
    let config = match opts.driver {
        Some(driver) => LoopConfig::new().with_driver(driver),
        None => LoopConfig::new(),
    };
    let mut event_loop: EventLoop<_, _, Box<dyn Handler>> = EventLoop::new(config)?;
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
