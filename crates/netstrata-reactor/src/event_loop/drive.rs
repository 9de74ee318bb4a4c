//! One pass over a connection with work: read, deliver, write, refill,
//! settle. Each step returns `Err(reason)` when the connection must end;
//! [`Connections::drive`] closes it with that reason, in one place.

use std::time::Instant;

use netstrata_core::{Codec, Layer, State};

use super::connections::Connections;
use super::entry::{Phase, Reading, Writing};
use super::timers::{Timer, TimerKind};
use crate::{CloseReason, Handler};

impl<S: Layer + 'static, C: Codec + 'static, H: Handler> Connections<S, C, H> {
    /// Drives connection `token`, closing it if it has ended.
    pub(super) fn drive(&mut self, token: usize, now: Instant) {
        let Some(entry) = self.slab.get_mut(token) else {
            return;
        };
        entry.scheduled = false;
        let outcome = match entry.phase {
            Phase::Connecting => Ok(()),
            Phase::Aborting => Err(entry.abort_reason()),
            Phase::Open => self.pass(token, now),
        };
        if let Err(reason) = outcome {
            self.end(token, now, reason);
        }
    }

    fn pass(&mut self, token: usize, now: Instant) -> Result<(), CloseReason> {
        self.read(token, now)?;
        self.deliver(token, now)?;
        self.write(token, now)?;
        self.refill(token, now)?;
        self.settle(token)
    }

    /// Hands the connection's decoded messages to its handler, while it
    /// reads; then tells it once that the peer has ended.
    fn deliver(&mut self, token: usize, now: Instant) -> Result<(), CloseReason> {
        while self.slab[token].reading == Reading::Open {
            let Some(msg) = self.slab[token].conn.poll_message(now)? else {
                break;
            };
            self.callback(token, now, |h, cx| h.on_message(cx, msg))?;
        }
        let entry = &mut self.slab[token];
        if entry.reading == Reading::Open && entry.conn.is_read_closed() {
            entry.reading = Reading::PeerClosed;
            self.callback(token, now, |h, cx| h.on_peer_closed(cx))?;
        }
        Ok(())
    }

    /// The queue fell to the low mark after a send reached the high one:
    /// let the handler refill it, and write what it sent at once. Repeats
    /// while the socket takes it all: no writable event would come for a
    /// socket that never filled.
    fn refill(&mut self, token: usize, now: Instant) -> Result<(), CloseReason> {
        let low = self.config.low_watermark;
        loop {
            let entry = &mut self.slab[token];
            if entry.writing != Writing::AboveHigh || entry.conn.queued() > low {
                return Ok(());
            }
            entry.writing = Writing::Open;
            self.callback(token, now, |h, cx| h.on_writable(cx))?;
            self.write(token, now)?;
        }
    }

    /// After the pass: has the connection ended, which layer deadline does
    /// it wait for, is there more to read next turn?
    fn settle(&mut self, token: usize) -> Result<(), CloseReason> {
        let entry = &mut self.slab[token];
        if let Some(e) = entry.conn.error() {
            return Err(CloseReason::Error(e.clone()));
        }
        // On io_uring the last bytes may still be in a send.
        if entry.conn.state() == State::Closed && !entry.ring_io.sending() {
            return Err(CloseReason::Clean);
        }
        let deadline = entry.conn.poll_timeout();
        if deadline.is_some() && deadline != entry.layer_deadline {
            entry.layer_deadline = deadline;
            if let Some(at) = deadline {
                let generation = entry.id.generation;
                self.timers.push(Timer {
                    at,
                    token,
                    generation,
                    kind: TimerKind::Layer,
                });
            }
        }
        if self.slab[token].reads() {
            // Read budget used up with bytes left: continue next turn.
            self.schedule(token);
        }
        self.settle_ring(token)
            .map_err(|e| CloseReason::Io(e.kind()))
    }
}
