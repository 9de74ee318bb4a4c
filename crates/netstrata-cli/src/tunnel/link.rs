//! What the two connections of one tunnelled stream share: flow-control
//! credit per direction, the connection ids, and the first failure.
//!
//! The reactor hands each connection's messages to its own handler and
//! offers no way to hold them back, so backpressure lives in a [`Gate`]
//! layer on top of each stack: it passes bytes up only while its direction
//! has credit, and says `wants_read() == false` when it has none, so the
//! reactor stops reading that socket. Credit comes back when the other
//! connection's gate hands the bytes to its own stack (which is bounded and
//! drained only as its socket takes them). At most [`WINDOW`] bytes per
//! direction are between the two sockets, in any buffer.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use netstrata_core::{Error, Flush, Inbound, Layer, Outbound, Result, transfer};
use netstrata_reactor::{ConnId, Handle};

/// Bytes one direction may have in flight between the two sockets.
pub(crate) const WINDOW: usize = 256 * 1024;

/// While a gate has no credit it asks to be woken this soon to look again
/// (the reactor has no call that tells one connection another freed room),
/// doubling the wait while nothing moves, up to [`MAX_RECHECK`], so a pair
/// whose far end reads nothing costs little.
const RECHECK: Duration = Duration::from_millis(1);
const MAX_RECHECK: Duration = Duration::from_millis(64);

/// Which connection of a tunnelled pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// The connection a client made to the tunnel.
    Accepted,
    /// The connection the tunnel made to the target.
    Connected,
}

impl Side {
    fn index(self) -> usize {
        match self {
            Self::Accepted => 0,
            Self::Connected => 1,
        }
    }

    pub(crate) fn other(self) -> Self {
        match self {
            Self::Accepted => Self::Connected,
            Self::Connected => Self::Accepted,
        }
    }
}

/// Bookkeeping behind the link's lock.
#[derive(Debug, Default)]
struct State {
    ids: [Option<ConnId>; 2],
    /// Bytes for the connected side, received before it was made.
    pending: Vec<Bytes>,
    /// The accepted side's peer ended before the connected side was made.
    close_pending: bool,
    /// Why the pair failed, first reason only.
    failure: Option<String>,
    /// Connections of the pair that have closed, and how.
    closed: Vec<String>,
}

/// Shared by the two connections (handlers and gates) of one stream.
#[derive(Debug)]
pub(crate) struct Link {
    /// Bytes each side may still pass up (index: the reading side).
    credit: [AtomicUsize; 2],
    failed: AtomicBool,
    state: Mutex<State>,
}

impl Link {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            credit: [AtomicUsize::new(WINDOW), AtomicUsize::new(WINDOW)],
            failed: AtomicBool::new(false),
            state: Mutex::default(),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every update keeps the state consistent; a panic elsewhere does not void it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn set_id(&self, side: Side, id: ConnId) {
        self.state().ids[side.index()] = Some(id);
    }

    /// Sends `msg` to `to`, or keeps it until `to` exists.
    pub(crate) fn forward(&self, to: Side, msg: Bytes, handle: &Handle) {
        let mut state = self.state();
        match state.ids[to.index()] {
            // A stopped loop is ending every connection anyway.
            Some(id) => {
                let _ = handle.send(id, msg);
            }
            None => state.pending.push(msg),
        }
    }

    /// Ends the write side of `to`: its peer gets everything forwarded so
    /// far, then the end of the stream.
    pub(crate) fn close(&self, to: Side, handle: &Handle) {
        let mut state = self.state();
        match state.ids[to.index()] {
            Some(id) => {
                let _ = handle.close(id);
            }
            None => state.close_pending = true,
        }
    }

    /// Bytes to send, and whether to close, on the connected side as it is made.
    pub(crate) fn take_pending(&self) -> (Vec<Bytes>, bool) {
        let mut state = self.state();
        (std::mem::take(&mut state.pending), state.close_pending)
    }

    /// Records the pair's failure and wakes `other` so its gate fails too
    /// (the reactor has no abort of another connection).
    pub(crate) fn fail(&self, why: String, other: Side, handle: &Handle) {
        self.failed.store(true, Ordering::Release);
        let mut state = self.state();
        state.failure.get_or_insert(why);
        if let Some(id) = state.ids[other.index()] {
            // An empty message sets nothing in motion but a pass of the
            // stack, where the gate reports the failure.
            let _ = handle.send(id, Bytes::new());
        }
    }

    pub(crate) fn failure(&self) -> Option<String> {
        self.state().failure.clone()
    }

    /// Notes that `side` closed; returns every close so far once both have.
    pub(crate) fn closed(&self, side: Side, how: String) -> Option<Vec<String>> {
        let mut state = self.state();
        state.closed.push(how);
        let both = state.closed.len() == 2 || (side == Side::Accepted && state.ids[1].is_none());
        both.then(|| state.closed.clone())
    }

    fn error(&self) -> Error {
        let why = self.failure().unwrap_or_else(|| "unknown".into());
        Error::from(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            format!("the other side of the tunnel failed: {why}"),
        ))
    }
}

/// The top layer of each tunnelled connection: passes bytes up only as the
/// direction's credit allows, and gives credit back to the other direction
/// as it passes bytes down. See the module docs.
#[derive(Debug)]
pub(crate) struct Gate {
    side: Side,
    link: Arc<Link>,
    last_now: Option<Instant>,
    /// The last inbound pass left bytes for want of credit.
    held: bool,
    /// The wait before looking again while blocked.
    recheck: Duration,
    read_closed: bool,
    write_closed: bool,
}

impl Gate {
    pub(crate) fn new(side: Side, link: Arc<Link>) -> Self {
        Self {
            side,
            link,
            last_now: None,
            held: false,
            recheck: RECHECK,
            read_closed: false,
            write_closed: false,
        }
    }

    fn credit(&self) -> &AtomicUsize {
        &self.link.credit[self.side.index()]
    }

    fn check(&self) -> Result<()> {
        match self.link.failed.load(Ordering::Acquire) {
            true => Err(self.link.error()),
            false => Ok(()),
        }
    }
}

impl Layer for Gate {
    fn name(&self) -> &'static str {
        "tunnel"
    }

    fn handle_inbound(&mut self, io: Inbound<'_>) -> Result<()> {
        self.check()?;
        self.last_now = Some(io.now);
        let credit = self.credit().load(Ordering::Acquire);
        let n = transfer(io.input, io.up, io.up_room.min(credit));
        self.credit().fetch_sub(n, Ordering::AcqRel);
        self.held = !io.input.is_empty() && n == credit;
        if n > 0 {
            self.recheck = RECHECK;
        }
        if io.input_ended && io.input.is_empty() {
            self.read_closed = true;
        }
        Ok(())
    }

    fn handle_outbound(&mut self, io: Outbound<'_>) -> Result<()> {
        self.check()?;
        if self.write_closed && !io.input.is_empty() {
            return Err(Error::misuse("tunnel", "write after shutdown"));
        }
        let n = transfer(io.input, io.down, io.down_room);
        self.link.credit[self.side.other().index()].fetch_add(n, Ordering::AcqRel);
        if io.flush == Flush::Finish && io.input.is_empty() {
            self.write_closed = true;
        }
        Ok(())
    }

    fn poll_timeout(&self) -> Option<Instant> {
        // Held bytes need a pass even if credit came back meanwhile: no
        // socket event will run one. No credit: reading is paused.
        let blocked = self.held || self.credit().load(Ordering::Acquire) == 0;
        (blocked && !self.read_closed).then(|| self.last_now.map(|t| t + self.recheck))?
    }

    fn handle_timeout(&mut self, now: Instant, _down: &mut BytesMut) -> Result<()> {
        self.last_now = Some(now);
        // Reset by the inbound pass that follows if bytes move.
        self.recheck = (self.recheck * 2).min(MAX_RECHECK);
        // The connection runs its inbound pass next: bytes held for want
        // of credit move up if some came back.
        self.check()
    }

    fn wants_read(&self) -> bool {
        !self.link.failed.load(Ordering::Acquire) && self.credit().load(Ordering::Acquire) > 0
    }

    fn is_read_closed(&self) -> bool {
        self.read_closed
    }

    fn is_write_closed(&self) -> bool {
        self.write_closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inbound(gate: &mut Gate, now: Instant, input: &mut BytesMut, up: &mut BytesMut) {
        let mut down = BytesMut::new();
        gate.handle_inbound(Inbound {
            now,
            input,
            input_ended: false,
            up,
            up_room: usize::MAX,
            down: &mut down,
        })
        .unwrap();
    }

    fn outbound(gate: &mut Gate, now: Instant, input: &mut BytesMut, down: &mut BytesMut) {
        gate.handle_outbound(Outbound {
            now,
            input,
            flush: Flush::Batch,
            down,
            down_room: usize::MAX,
        })
        .unwrap();
    }

    /// The reader stops at the window; bytes it holds are retried on a
    /// timer even once credit is back, since no socket event would run
    /// them; credit comes back as the writer passes bytes down.
    #[test]
    fn credit_bounds_the_reader_and_the_writer_returns_it() {
        let link = Link::new();
        let mut reader = Gate::new(Side::Connected, Arc::clone(&link));
        let mut writer = Gate::new(Side::Accepted, Arc::clone(&link));
        let now = Instant::now();
        let mut input = BytesMut::from(&vec![7u8; WINDOW + 10][..]);
        let mut up = BytesMut::new();
        inbound(&mut reader, now, &mut input, &mut up);
        assert_eq!((up.len(), input.len()), (WINDOW, 10));
        assert!(!reader.wants_read());
        assert_eq!(reader.poll_timeout(), Some(now + RECHECK));
        assert_eq!(writer.poll_timeout(), None);

        // The other connection passes 4 bytes on: 4 bytes of credit.
        let (mut queued, mut wire) = (up.split_to(4), BytesMut::new());
        outbound(&mut writer, now, &mut queued, &mut wire);
        assert_eq!(wire.len(), 4);
        assert!(reader.wants_read());
        assert_eq!(reader.poll_timeout(), Some(now + RECHECK), "held bytes");

        let later = now + RECHECK;
        reader.handle_timeout(later, &mut BytesMut::new()).unwrap();
        let mut more = BytesMut::new();
        inbound(&mut reader, later, &mut input, &mut more);
        assert_eq!((more.len(), input.len()), (4, 6));
        assert_eq!(reader.poll_timeout(), Some(later + RECHECK));

        // Nothing moves: the wait doubles, up to its bound.
        let mut at = later;
        for expected in [2, 4, 8, 16, 32, 64, 64] {
            at += Duration::from_millis(1);
            reader.handle_timeout(at, &mut BytesMut::new()).unwrap();
            inbound(&mut reader, at, &mut input, &mut more);
            let wait = Duration::from_millis(expected);
            assert_eq!(reader.poll_timeout(), Some(at + wait));
        }
    }

    /// A failure of the pair fails the other gate on its next call.
    #[test]
    fn a_failure_reaches_the_other_gate() {
        let link = Link::new();
        let mut gate = Gate::new(Side::Accepted, Arc::clone(&link));
        link.failed.store(true, Ordering::Release);
        link.state().failure = Some("target side reset".into());
        assert!(!gate.wants_read());
        let err = gate
            .handle_timeout(Instant::now(), &mut BytesMut::new())
            .unwrap_err();
        assert!(err.to_string().contains("target side reset"), "{err}");
    }
}
