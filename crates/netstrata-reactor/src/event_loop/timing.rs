//! The loop's timers: layer deadlines, idle and connect timeouts,
//! application timers, and the loop's own (accept backoff, drain deadline,
//! buffer sweep).

use std::time::Instant;

use netstrata_core::{Codec, Layer};

use super::{EventLoop, LOOP_TIMER, LoopState, Phase, SWEEP_EVERY};
use crate::timers::{Timer, TimerKind};
use crate::{CloseReason, Handler};

impl<S: Layer, C: Codec, H: Handler> EventLoop<S, C, H> {
    pub(super) fn run_timers(&mut self, now: Instant) {
        while let Some(timer) = self.timers.pop_due(now) {
            if timer.token == LOOP_TIMER {
                self.run_loop_timer(timer, now);
                continue;
            }
            let Some(entry) = self.conns.get_mut(timer.token) else {
                continue;
            };
            if entry.generation != timer.generation {
                continue;
            }
            match timer.kind {
                TimerKind::Layer => {
                    if entry.layer_deadline == Some(timer.at) {
                        entry.layer_deadline = None;
                        let _ = entry.conn.handle_timeout(now);
                        self.mark(timer.token);
                    }
                }
                TimerKind::Idle => {
                    let Some(idle) = self.config.idle_timeout else {
                        continue;
                    };
                    let due = entry.last_activity + idle;
                    if due <= now {
                        self.remove(timer.token, CloseReason::IdleTimeout);
                    } else {
                        self.timers.push(Timer { at: due, ..timer });
                    }
                }
                TimerKind::Connect => {
                    if entry.phase == Phase::Connecting {
                        self.remove(timer.token, CloseReason::ConnectTimeout);
                    }
                }
                TimerKind::App(id) => {
                    if let Some(reason) =
                        self.callback(timer.token, now, |h, cx| h.on_timer(cx, id))
                    {
                        self.remove(timer.token, reason);
                    } else {
                        self.mark(timer.token);
                    }
                }
                TimerKind::Accept
                | TimerKind::Drain
                | TimerKind::Sweep
                | TimerKind::Datagram(_) => {}
            }
        }
    }

    fn run_loop_timer(&mut self, timer: Timer, now: Instant) {
        match timer.kind {
            TimerKind::Accept => self.resume_accepting(timer.generation as usize, now),
            TimerKind::Datagram(id) => {
                let index = timer.generation as usize;
                self.udp[index].timer(id, now);
                self.take_udp_timers(index);
            }
            TimerKind::Drain => {
                if let LoopState::Draining { deadline } = self.state
                    && deadline <= now
                {
                    self.state = LoopState::Stopped;
                }
            }
            TimerKind::Sweep => {
                let since = now - SWEEP_EVERY;
                for (_, entry) in self.conns.iter_mut() {
                    if entry.last_activity <= since {
                        entry.conn.release_buffers();
                    }
                }
                self.timers.push(Timer {
                    at: now + SWEEP_EVERY,
                    ..timer
                });
            }
            _ => {}
        }
    }
}
