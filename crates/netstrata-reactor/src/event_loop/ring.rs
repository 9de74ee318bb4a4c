//! A connection on the io_uring driver: what its receive and its send in
//! flight are doing, and what their completions change.
//!
//! The rest of the loop is the same on both drivers. A receive's bytes go
//! into the stack at once when it takes them all, else they wait in the
//! connection's inbox and reading the "socket" takes them from there
//! (`read`); a write hands the stack's wire bytes, uncopied, to a send the
//! ring holds until it completes (`write`); a completion schedules its
//! connection as a readiness event would.

use std::io;
use std::os::fd::AsRawFd;
use std::time::Instant;

use bytes::{Buf, BytesMut};
use netstrata_core::{Codec, Layer};

use super::connections::Connections;
use super::entry::{Entry, Phase, Reading};
use crate::uring::{Completion, Op, Ring, Sent};
use crate::{CloseReason, Handler};

/// Most bytes one send carries; more wait for its completion.
const SEND_MAX: usize = 256 * 1024;

/// Where a connection's multishot receive is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Recv {
    /// None in flight: armed again once the inbox has room.
    Off,
    Armed,
    /// Cancelled (the inbox is full): its last completion is to come.
    Stopping,
}

/// How the peer's stream ended, as a receive reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Eof,
    Failed(io::ErrorKind),
}

/// A connection's io_uring state (unused on epoll).
#[derive(Debug)]
pub(super) struct RingIo {
    /// Bytes received and not yet read into the stack.
    inbox: BytesMut,
    recv: Recv,
    end: Option<End>,
    /// The slot of the send in flight.
    send: Option<usize>,
    /// A send failed: the connection ends with this.
    send_failed: Option<io::ErrorKind>,
}

impl RingIo {
    pub(super) fn new() -> Self {
        Self {
            inbox: BytesMut::new(),
            recv: Recv::Off,
            end: None,
            send: None,
            send_failed: None,
        }
    }

    /// Reads at most `max` received bytes into `buf`, as `recv` would from
    /// the socket: `WouldBlock` while nothing waits, `Ok` with nothing
    /// appended at the end of stream.
    pub(super) fn read_into(&mut self, buf: &mut BytesMut, max: usize) -> io::Result<()> {
        if self.inbox.is_empty() {
            return match self.end {
                Some(End::Eof) => Ok(()),
                Some(End::Failed(kind)) => Err(kind.into()),
                None => Err(io::ErrorKind::WouldBlock.into()),
            };
        }
        if buf.is_empty() && self.inbox.len() <= max {
            // The whole inbox becomes the stack's buffer: no copy.
            std::mem::swap(buf, &mut self.inbox);
        } else {
            let n = max.min(self.inbox.len());
            buf.extend_from_slice(&self.inbox[..n]);
            self.inbox.advance(n);
        }
        Ok(())
    }

    /// Whether a send is in flight: the connection must not close cleanly
    /// before it completes, and its FIN waits for it.
    pub(super) fn sending(&self) -> bool {
        self.send.is_some()
    }

    /// The slot of the send in flight.
    pub(super) fn send_slot(&self) -> Option<usize> {
        self.send
    }
}

impl<S: Layer, C: Codec, H> Entry<S, C, H> {
    /// Bytes a receive got: straight into the stack when it takes them all
    /// now (one copy, as a `recv` into its buffer would make), else into
    /// the inbox, where the read step finds them.
    fn take_received(&mut self, bytes: &[u8], now: Instant) {
        let direct = self.ring_io.inbox.is_empty()
            && self.phase == Phase::Open
            && self.reading == Reading::Open
            && self.conn.wants_read()
            && self.conn.read_room() >= bytes.len();
        if !direct {
            self.ring_io.inbox.extend_from_slice(bytes);
            return;
        }
        // A stack error stays with the connection: its pass ends it.
        let _ = self.conn.read_with(now, |buf, _| {
            buf.extend_from_slice(bytes);
            Ok::<(), std::convert::Infallible>(())
        });
        self.last_activity = now;
    }
}

impl<S: Layer + 'static, C: Codec + 'static, H: Handler> Connections<S, C, H> {
    /// The live connection a completion's `op` names.
    fn owner(&self, op: Op) -> Option<usize> {
        let Op::Recv { token, .. } = op else {
            return None;
        };
        let token = token as usize;
        let entry = self.slab.get(token)?;
        (Op::recv(token, entry.id.generation) == op).then_some(token)
    }

    /// Takes the ring's completions into `completions`: received bytes
    /// into inboxes, sends done; each schedules its connection. Leaves the
    /// accept and epoll completions, for the loop.
    pub(super) fn complete(
        &mut self,
        ring: &mut Ring,
        now: Instant,
        completions: &mut Vec<Completion>,
    ) {
        ring.complete(completions, |op, bytes| {
            if let Some(token) = self.owner(op) {
                self.slab[token].take_received(bytes, now);
            }
        });
        completions.retain(|completion| match completion.op {
            Op::Recv { .. } => {
                self.received(completion);
                false
            }
            Op::Send { slot } => {
                self.sent(ring, slot as usize, completion.result, now);
                false
            }
            Op::Cancel => false,
            Op::Epoll | Op::Accept { .. } => true,
        });
    }

    /// A receive completed: bytes (already in the inbox), the end, an
    /// error, or no buffer left (read again once buffers are back).
    fn received(&mut self, completion: &Completion) {
        let Some(token) = self.owner(completion.op) else {
            return;
        };
        let entry = &mut self.slab[token];
        let io = &mut entry.ring_io;
        if !completion.more {
            io.recv = Recv::Off;
        }
        let ended = match completion.result {
            n if n > 0 => false,
            0 => {
                io.end = Some(End::Eof);
                true
            }
            e if e == -libc::ENOBUFS || e == -libc::ECANCELED => false,
            e => {
                io.end = Some(End::Failed(io::Error::from_raw_os_error(-e).kind()));
                true
            }
        };
        entry.socket_in = entry.socket_in.on_event(true, ended);
        if entry.phase != Phase::Connecting {
            self.schedule(token);
        }
    }

    /// A send completed, in part or all, or failed.
    fn sent(&mut self, ring: &mut Ring, slot: usize, result: i32, now: Instant) {
        let (owner, failed) = match ring.sent(slot, result) {
            Sent::Orphaned => return,
            Sent::Partly { owner } => {
                // Bytes moved: the connection is not idle.
                if let Some(token) = self.owner(owner) {
                    self.slab[token].last_activity = now;
                }
                return;
            }
            Sent::Done { owner } => (owner, None),
            Sent::Failed { owner, errno } => {
                (owner, Some(io::Error::from_raw_os_error(errno).kind()))
            }
        };
        let Some(token) = self.owner(owner) else {
            return;
        };
        let entry = &mut self.slab[token];
        entry.ring_io.send = None;
        entry.ring_io.send_failed = failed;
        entry.last_activity = now;
        self.schedule(token);
    }

    /// Writes connection `token`'s wire bytes in one send, unless one is in
    /// flight (its completion drives the rest). `Ok(true)` once nothing is
    /// left to send.
    pub(super) fn write_ring(&mut self, token: usize, now: Instant) -> Result<bool, CloseReason> {
        let Some(ring) = self.ring.as_mut() else {
            return Ok(true);
        };
        let entry = &mut self.slab[token];
        if let Some(kind) = entry.ring_io.send_failed.take() {
            return Err(CloseReason::Io(kind));
        }
        if entry.ring_io.sending() {
            return Ok(false);
        }
        // The wire bytes as they are, without a copy: runs split off the
        // stack's buffer, and messages queued by reference. After a stack
        // error, what it still owes the peer (a TLS alert) goes first,
        // then the error.
        let (fd, owner) = (
            entry.socket.as_raw_fd(),
            Op::recv(token, entry.id.generation),
        );
        let (conn, mut budget, mut failed) = (&mut entry.conn, SEND_MAX, None);
        let slot = ring
            .send(fd, owner, || {
                // Only the first run may run the stack (see `wire_ready`).
                let first = budget == SEND_MAX;
                if budget == 0 || failed.is_some() || (!first && conn.wire_ready() == 0) {
                    return None;
                }
                match conn.take_transmit(now, budget) {
                    Ok(run) => {
                        budget -= run.as_ref().map_or(0, |r| r.len());
                        run
                    }
                    Err(e) => {
                        failed = Some(e);
                        None
                    }
                }
            })
            .map_err(|e| match failed.take() {
                // The stack's error says more than the ring's.
                Some(stack) => CloseReason::from(stack),
                None => CloseReason::Io(e.kind()),
            })?;
        if let Some(slot) = slot {
            entry.ring_io.send = Some(slot);
            entry.last_activity = now;
        }
        match failed {
            Some(e) => Err(e.into()),
            None => Ok(slot.is_none()),
        }
    }

    /// After a pass: stops the receive while the inbox holds a read chunk
    /// (the peer then feels TCP backpressure), and arms it again once
    /// there is room.
    pub(super) fn settle_ring(&mut self, token: usize) -> io::Result<()> {
        let high = self.config.read_chunk;
        let Some(ring) = self.ring.as_mut() else {
            return Ok(());
        };
        let entry = &mut self.slab[token];
        let io = &mut entry.ring_io;
        let full = io.inbox.len() >= high;
        match io.recv {
            Recv::Armed if full => {
                ring.cancel(Op::recv(token, entry.id.generation))?;
                io.recv = Recv::Stopping;
            }
            Recv::Off if !full && io.end.is_none() && entry.phase == Phase::Open => {
                ring.recv(
                    entry.socket.as_raw_fd(),
                    Op::recv(token, entry.id.generation),
                )?;
                io.recv = Recv::Armed;
            }
            _ => {}
        }
        Ok(())
    }

    /// Cancels what the ring does for connection `token` (it closes).
    pub(super) fn forget_ring(&mut self, token: usize) {
        let Some(ring) = self.ring.as_mut() else {
            return;
        };
        let entry = &self.slab[token];
        let io = &entry.ring_io;
        let recv = (io.recv == Recv::Armed).then(|| Op::recv(token, entry.id.generation));
        let send = io.send.map(|slot| Op::Send { slot: slot as u32 });
        for op in [recv, send].into_iter().flatten() {
            if let Err(e) = ring.cancel(op) {
                tracing::debug!(error = %e, "io_uring cancel");
            }
        }
    }
}
