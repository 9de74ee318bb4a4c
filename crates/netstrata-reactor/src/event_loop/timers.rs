//! The loop's deadlines — layer deadlines, idle and connect timeouts,
//! application timers, and the loop's own (accept backoff, drain deadline,
//! buffer sweep) — in a binary heap with lazy deletion, and what each does
//! when it fires.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use netstrata_core::{Codec, Layer};

use super::connections::Connections;
use super::entry::Phase;
use super::{EventLoop, LOOP_TIMER, LoopState};
use crate::{CloseReason, Handler};

/// How often connections idle since the last sweep give back their buffers.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

impl<S: Layer + 'static, C: Codec + 'static, H: Handler> EventLoop<S, C, H> {
    pub(super) fn run_timers(&mut self, now: Instant) {
        while let Some(timer) = self.conns.timers.pop_due(now) {
            match timer.kind {
                TimerKind::Accept => self.resume_accepting(timer.generation as usize, now),
                TimerKind::Datagram(id) => self.datagram_timer(timer.generation as usize, id, now),
                TimerKind::Drain => {
                    if let LoopState::Draining { deadline } = self.state
                        && deadline <= now
                    {
                        self.state = LoopState::Stopped;
                    }
                }
                TimerKind::Sweep => {
                    self.conns.sweep(now);
                    self.conns.timers.push(Timer {
                        at: now + SWEEP_EVERY,
                        ..timer
                    });
                }
                #[cfg(feature = "metrics")]
                TimerKind::Figures => {
                    self.conns.publish_figures();
                    self.conns.timers.push(Timer {
                        at: now + self.conns.config.metrics_every,
                        ..timer
                    });
                }
                TimerKind::Layer | TimerKind::Idle | TimerKind::Connect | TimerKind::App(_) => {
                    self.conns.fire(timer, now);
                }
            }
        }
    }
}

impl<S: Layer + 'static, C: Codec + 'static, H: Handler> Connections<S, C, H> {
    /// A connection's timer is due: `timer.token`'s, if it is still the
    /// connection the timer was set for.
    fn fire(&mut self, timer: Timer, now: Instant) {
        let Some(entry) = self
            .slab
            .get_mut(timer.token)
            .filter(|e| e.id.generation == timer.generation)
        else {
            return;
        };
        match timer.kind {
            // A deadline the layers have moved since is stale.
            TimerKind::Layer if entry.layer_deadline == Some(timer.at) => {
                entry.layer_deadline = None;
                match entry.conn.handle_timeout(now) {
                    Ok(()) => self.schedule(timer.token),
                    Err(e) => self.end(timer.token, now, e.into()),
                }
            }
            TimerKind::Idle => {
                let Some(idle) = self.config.idle_timeout else {
                    return;
                };
                let due = entry.last_activity + idle;
                if due <= now {
                    self.close(timer.token, CloseReason::IdleTimeout);
                } else {
                    self.timers.push(Timer { at: due, ..timer });
                }
            }
            TimerKind::Connect if entry.phase == Phase::Connecting => {
                self.close(timer.token, CloseReason::ConnectTimeout);
            }
            TimerKind::App(id) => match self.callback(timer.token, now, |h, cx| h.on_timer(cx, id))
            {
                Ok(()) => self.schedule(timer.token),
                Err(reason) => self.close(timer.token, reason),
            },
            _ => {}
        }
    }

    /// Connections idle since the last sweep give back their buffers.
    fn sweep(&mut self, now: Instant) {
        let since = now - SWEEP_EVERY;
        for (_, entry) in self.slab.iter_mut() {
            if entry.last_activity <= since {
                entry.conn.release_buffers();
            }
        }
    }
}

/// What a deadline is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum TimerKind {
    /// A layer's `poll_timeout` (handshake timeout, shaping budget).
    Layer,
    /// The connection's idle timeout.
    Idle,
    /// A connect that has not completed.
    Connect,
    /// An application timer set through `Context::set_timer`.
    App(u64),
    /// A datagram handler's timer (`DatagramContext::set_timer`); the
    /// loop's timer, with the UDP socket's index as its generation.
    Datagram(u64),
    /// Accepting again after an accept error such as EMFILE.
    Accept,
    /// The end of a graceful shutdown.
    Drain,
    /// Connections idle since the last sweep give back their buffers.
    Sweep,
    /// The loop publishes its figures (feature `metrics`).
    #[cfg(feature = "metrics")]
    Figures,
}

/// One deadline: for connection `token` of generation `generation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Timer {
    pub(super) at: Instant,
    pub(super) token: usize,
    pub(super) generation: u64,
    pub(super) kind: TimerKind,
}

/// Deadlines, earliest first. Entries are never removed early: a timer that
/// no longer applies (a closed connection, a moved layer deadline) is
/// recognised and dropped when it fires.
#[derive(Debug)]
pub(super) struct Timers {
    heap: BinaryHeap<Reverse<Timer>>,
}

impl Timers {
    /// The loop's own sweep (connections idle since the last give back
    /// their buffers) is the first deadline.
    pub(super) fn new() -> Self {
        let mut timers = Self {
            heap: BinaryHeap::new(),
        };
        timers.push(Timer {
            at: Instant::now() + SWEEP_EVERY,
            token: LOOP_TIMER,
            generation: 0,
            kind: TimerKind::Sweep,
        });
        timers
    }

    pub(super) fn push(&mut self, timer: Timer) {
        self.heap.push(Reverse(timer));
    }

    /// The earliest deadline, if any.
    pub(super) fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(t)| t.at)
    }

    /// Removes and returns a deadline that `now` has reached.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<Timer> {
        match self.heap.peek() {
            Some(Reverse(t)) if t.at <= now => self.heap.pop().map(|Reverse(t)| t),
            _ => None,
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_timers_come_out_in_order() {
        let t0 = Instant::now();
        let mut timers = Timers::new();
        timers.heap.clear();
        for (ms, token) in [(30, 3), (10, 1), (20, 2)] {
            timers.push(Timer {
                at: t0 + Duration::from_millis(ms),
                token,
                generation: 0,
                kind: TimerKind::Idle,
            });
        }
        assert_eq!(timers.next(), Some(t0 + Duration::from_millis(10)));
        assert!(timers.pop_due(t0).is_none());
        let due: Vec<_> = std::iter::from_fn(|| timers.pop_due(t0 + Duration::from_millis(25)))
            .map(|t| t.token)
            .collect();
        assert_eq!(due, [1, 2]);
        assert_eq!(timers.len(), 1);
    }
}
