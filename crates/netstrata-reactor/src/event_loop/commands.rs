//! Work sent from other threads through a [`Handle`](crate::Handle).

use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use netstrata_core::{Codec, Layer};

use super::connections::Connections;
use super::{EventLoop, LoopState};
use crate::context::Loop;
use crate::handle::{Command, ConnId};
use crate::{CloseReason, Handler, socket};

/// Commands run per turn before sockets are served again; the rest wait
/// for the next turn.
const COMMAND_BUDGET: usize = 1024;

impl<S: Layer + 'static, C: Codec + 'static, H: Handler> EventLoop<S, C, H> {
    pub(super) fn run_commands(&mut self, now: Instant) {
        let queue = &self.conns.handle.queue;
        // Commands sent from here on wake the loop again.
        queue.woken.store(false, Ordering::Release);
        for _ in 0..COMMAND_BUDGET {
            let Ok(command) = self.rx.try_recv() else {
                return;
            };
            self.conns.handle.queue.taken(&command);
            match command {
                Command::Send(id, msg) => self.conns.handle_send(id, msg, now),
                Command::Wake(id) => self.conns.wake(id),
                Command::LayerWake(waker) => {
                    waker.pending.store(false, Ordering::Release);
                    self.conns.wake(waker.id);
                }
                Command::Close(id) => Loop::close(&mut self.conns, id),
                Command::Abort(id) => {
                    if self.conns.get(id).is_some() {
                        self.conns.close(id.index, CloseReason::Aborted);
                    }
                }
                Command::Adopt(handover) => self.adopt(handover, now),
                Command::Shutdown(grace) => self.begin_drain(now + grace),
                Command::Stop => self.state = LoopState::Stopped,
            }
        }
        // Budget used up: come back next turn without waiting.
        let handle = &self.conns.handle;
        if !handle.queue.woken.swap(true, Ordering::AcqRel) {
            let _ = handle.waker.wake();
        }
    }
}

impl<S: Layer + 'static, C: Codec + 'static, H: Handler> Connections<S, C, H> {
    /// Gives a message from a [`crate::Handle`] to the connection's handler;
    /// an error it returns (by default: the send buffer is full) ends the
    /// connection, so no message goes missing from a stream that goes on.
    /// Like a closed connection, one the application has begun to close
    /// takes no more: its stream ends where it closed.
    fn handle_send(&mut self, id: ConnId, msg: Bytes, now: Instant) {
        if !self.get(id).is_some_and(|e| e.conn.is_write_open()) {
            return;
        }
        let mut failed = None;
        let outcome = self.callback(id.index, now, |h, cx| {
            failed = h.on_handle_send(cx, msg).err();
        });
        match (outcome, failed) {
            (Err(reason), _) => self.close(id.index, reason),
            (Ok(()), Some(e)) => {
                tracing::debug!(error = %e, "a message from a handle could not be sent");
                // Queued messages would arrive, then an end: a reset
                // tells the peer its stream is not whole.
                socket::reset_on_close(&self.slab[id.index].socket);
                self.close(id.index, CloseReason::Error(e));
            }
            (Ok(()), None) => self.schedule(id.index),
        }
    }

    /// A connection's layers changed outside its events: give its stack a
    /// pass each way this turn.
    fn wake(&mut self, id: ConnId) {
        if let Some(entry) = self.get(id) {
            entry.conn.handle_wake();
            self.schedule(id.index);
        }
    }
}
