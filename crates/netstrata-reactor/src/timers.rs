//! Deadlines of one event loop: a binary heap with lazy deletion.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// What a deadline is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TimerKind {
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
}

/// One deadline: for connection `token` of generation `generation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Timer {
    pub(crate) at: Instant,
    pub(crate) token: usize,
    pub(crate) generation: u64,
    pub(crate) kind: TimerKind,
}

/// Deadlines, earliest first. Entries are never removed early: a timer that
/// no longer applies (a closed connection, a moved layer deadline) is
/// recognised and dropped when it fires.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<Timer>>,
}

impl Timers {
    pub(crate) fn push(&mut self, timer: Timer) {
        self.heap.push(Reverse(timer));
    }

    /// The earliest deadline, if any.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(t)| t.at)
    }

    /// Removes and returns a deadline that `now` has reached.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<Timer> {
        match self.heap.peek() {
            Some(Reverse(t)) if t.at <= now => self.heap.pop().map(|Reverse(t)| t),
            _ => None,
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn due_timers_come_out_in_order() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
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
