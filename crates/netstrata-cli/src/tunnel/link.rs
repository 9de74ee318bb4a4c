//! What the two connections of one tunnelled stream share: flow-control
//! credit per direction, the connections' ids and wakers, and the first
//! failure.
//!
//! The reactor hands each connection's messages to its own handler and
//! offers no way to hold them back, so backpressure lives in a [`Gate`]
//! layer on top of each stack: it passes bytes up only while its direction
//! has credit, and says `wants_read() == false` when it has none, so the
//! reactor stops reading that socket. Credit comes back when the other
//! connection's gate hands the bytes to its own stack (which is bounded and
//! drained only as its socket takes them). At most [`WINDOW`] bytes per
//! direction are between the two sockets, in any buffer.
//!
//! A blocked gate sleeps: it has no deadline. The gate that returns credit
//! to an empty direction wakes the blocked connection through the waker the
//! reactor gave it ([`Layer::set_waker`]); the loop then gives the stack an
//! inbound pass ([`Connection::handle_wake`](netstrata_core::Connection::handle_wake)),
//! which moves bytes the gate had to leave below itself (no socket event
//! would), and reads the socket again.
//!
//! A failure of either connection aborts the other ([`Handle::abort`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Waker;

use bytes::Bytes;
use netstrata_core::{Error, Flush, Inbound, Layer, Outbound, Result, transfer};
use netstrata_reactor::{ConnId, Handle};

/// Bytes one direction may have in flight between the two sockets.
pub(crate) const WINDOW: usize = 256 * 1024;

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
    /// Each side's connection waker, once its driver gave one.
    wakers: [Option<Waker>; 2],
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
    state: Mutex<State>,
}

impl Link {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            credit: [AtomicUsize::new(WINDOW), AtomicUsize::new(WINDOW)],
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
            // A stopped loop is ending every connection anyway; the
            // tunnel's loop has no command limit (the windows bound it).
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

    /// Records the pair's failure and aborts `other`, if it was made (a
    /// connected side not yet made never will be: see `failure`).
    pub(crate) fn fail(&self, why: String, other: Side, handle: &Handle) {
        let mut state = self.state();
        state.failure.get_or_insert(why);
        if let Some(id) = state.ids[other.index()] {
            // Ignored by the loop if `other` has closed since.
            let _ = handle.abort(id);
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

    /// Gives `side` back `n` bytes of credit; wakes its connection if it
    /// had none, since its gate then sleeps with reading paused.
    fn return_credit(&self, side: Side, n: usize) {
        if n == 0 {
            return;
        }
        let before = self.credit[side.index()].fetch_add(n, Ordering::AcqRel);
        if before == 0 {
            let waker = self.state().wakers[side.index()].clone();
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }
}

/// The top layer of each tunnelled connection: passes bytes up only as the
/// direction's credit allows, and gives credit back to the other direction
/// as it passes bytes down. See the module docs.
#[derive(Debug)]
pub(crate) struct Gate {
    side: Side,
    link: Arc<Link>,
    read_closed: bool,
    write_closed: bool,
}

impl Gate {
    pub(crate) fn new(side: Side, link: Arc<Link>) -> Self {
        Self {
            side,
            link,
            read_closed: false,
            write_closed: false,
        }
    }

    fn credit(&self) -> usize {
        self.link.credit[self.side.index()].load(Ordering::Acquire)
    }
}

impl Layer for Gate {
    fn name(&self) -> &'static str {
        "tunnel"
    }

    fn handle_inbound(&mut self, io: Inbound<'_>) -> Result<()> {
        let credit = self.credit();
        let n = transfer(io.input, io.upper, io.upper_room.min(credit));
        self.link.credit[self.side.index()].fetch_sub(n, Ordering::AcqRel);
        if io.input_ended && io.input.is_empty() {
            self.read_closed = true;
        }
        Ok(())
    }

    fn handle_outbound(&mut self, io: Outbound<'_>) -> Result<()> {
        if self.write_closed && !io.input.is_empty() {
            return Err(Error::misuse("tunnel", "write after shutdown"));
        }
        let n = transfer(io.input, io.lower, io.lower_room);
        self.link.return_credit(self.side.other(), n);
        if io.flush == Flush::Finish && io.input.is_empty() {
            self.write_closed = true;
        }
        Ok(())
    }

    fn wants_read(&self) -> bool {
        self.credit() > 0
    }

    fn is_read_closed(&self) -> bool {
        self.read_closed
    }

    fn is_write_closed(&self) -> bool {
        self.write_closed
    }

    fn set_waker(&mut self, waker: &Waker) {
        self.link.state().wakers[self.side.index()] = Some(waker.clone());
    }
}

#[cfg(test)]
mod tests {
    use std::task::Wake;
    use std::time::Instant;

    use bytes::BytesMut;
    use netstrata_core::{Connection, ConnectionConfig, DynStack, RawCodec};

    use super::*;

    /// Counts wake-ups, as the reactor's per-connection waker would mark it.
    #[derive(Debug, Default)]
    struct Wakes(AtomicUsize);

    impl Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl Wakes {
        fn count(&self) -> usize {
            self.0.load(Ordering::SeqCst)
        }
    }

    fn waker() -> (Arc<Wakes>, Waker) {
        let wakes = Arc::new(Wakes::default());
        (Arc::clone(&wakes), Waker::from(wakes))
    }

    fn inbound(gate: &mut Gate, now: Instant, input: &mut BytesMut, up: &mut BytesMut) {
        let mut down = BytesMut::new();
        gate.handle_inbound(Inbound::new(now, input, up, &mut down))
            .unwrap();
    }

    fn outbound(gate: &mut Gate, now: Instant, input: &mut BytesMut, down: &mut BytesMut) {
        gate.handle_outbound(Outbound::new(now, input, Flush::Batch, down))
            .unwrap();
    }

    /// The reader stops at the window. The writer returning credit wakes
    /// it once; the pass that follows moves its held bytes.
    #[test]
    fn credit_bounds_the_reader_and_the_writer_wakes_it() {
        let link = Link::new();
        let mut reader = Gate::new(Side::Connected, Arc::clone(&link));
        let mut writer = Gate::new(Side::Accepted, Arc::clone(&link));
        let (wakes, w) = waker();
        reader.set_waker(&w);
        let now = Instant::now();
        let mut input = BytesMut::from(&vec![7u8; WINDOW + 10][..]);
        let mut up = BytesMut::new();
        inbound(&mut reader, now, &mut input, &mut up);
        assert_eq!((up.len(), input.len()), (WINDOW, 10));
        assert!(!reader.wants_read());
        assert_eq!(wakes.count(), 0);

        // The other connection passes 4 bytes on, then 4 more: one wake-up,
        // for the direction that had no credit.
        let (mut queued, mut wire) = (up.split_to(8), BytesMut::new());
        outbound(&mut writer, now, &mut queued.split_to(4), &mut wire);
        outbound(&mut writer, now, &mut queued, &mut wire);
        assert_eq!(wire.len(), 8);
        assert_eq!(wakes.count(), 1);
        assert!(reader.wants_read());

        let mut more = BytesMut::new();
        inbound(&mut reader, now, &mut input, &mut more);
        assert_eq!((more.len(), input.len()), (8, 2));
        assert!(!reader.wants_read(), "blocked again");
        assert_eq!(wakes.count(), 1);
    }

    fn gated(side: Side, link: &Arc<Link>, waker: Waker) -> Conn {
        let gate: Box<dyn Layer + Send> = Box::new(Gate::new(side, Arc::clone(link)));
        // Room above the gate for a whole window: the gate, not the
        // message buffer, is what stops the reader.
        let config = ConnectionConfig::new().with_message_buffer(2 * WINDOW);
        let mut conn = Connection::with_config(DynStack::new(vec![gate]), RawCodec::new(), config);
        conn.set_waker(waker);
        conn
    }

    type Conn = Connection<DynStack, RawCodec>;

    /// The size of the reader's socket reads; `WINDOW` is not a multiple.
    const CHUNK: usize = 10_000;

    /// What the reactor does for the reader over its turns: read the
    /// socket while it wants to, and forward each message to the writer.
    fn pump(reader: &mut Conn, writer: &mut Conn, data: &[u8], fed: &mut usize, now: Instant) {
        loop {
            while reader.wants_read() && *fed < data.len() {
                let end = data.len().min(*fed + CHUNK);
                *fed += reader.handle_input(now, &data[*fed..end]).unwrap();
            }
            while let Some(msg) = reader.poll_message(now).unwrap() {
                writer.send(&msg).unwrap();
            }
            if !reader.wants_read() || *fed == data.len() {
                return;
            }
        }
    }

    /// Two connections of a pair driven as the reactor does, with a client
    /// that reads nothing, then everything: the target side stops reading
    /// at the window, and resumes only when woken, with no timers. Every
    /// byte arrives, in order.
    #[test]
    fn a_blocked_direction_resumes_when_woken_without_timers() {
        // Several windows; and a last read that crosses the window, whose
        // tail waits below the gate with nothing more on the socket, so
        // that only the pass the wake-up gives moves it.
        resume_after_block(3 * WINDOW + 12_345);
        resume_after_block(WINDOW.next_multiple_of(CHUNK));
    }

    fn resume_after_block(len: usize) {
        let link = Link::new();
        let (reader_wakes, w) = waker();
        let mut reader = gated(Side::Connected, &link, w);
        let (writer_wakes, w) = waker();
        let mut writer = gated(Side::Accepted, &link, w);
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let now = Instant::now();
        let (mut fed, mut received) = (0, Vec::new());

        // The client reads nothing: the reader fills the window and sleeps.
        pump(&mut reader, &mut writer, &data, &mut fed, now);
        assert!(!reader.wants_read());
        let credit = &link.credit[Side::Connected.index()];
        assert_eq!(credit.load(Ordering::SeqCst), 0, "the window is full");
        assert_eq!(reader.poll_timeout(), None, "no timer while blocked");
        assert_eq!(reader_wakes.count(), 0);

        // The client reads everything; each wake-up gives the reader a pass,
        // as the reactor does.
        let mut seen = 0;
        for _ in 0..1000 {
            while let Some(out) = writer.poll_transmit(now).unwrap() {
                received.extend_from_slice(out);
                let n = out.len();
                writer.advance_transmit(n);
            }
            if received.len() == data.len() {
                break;
            }
            assert!(reader_wakes.count() > seen, "stalled without a wake-up");
            seen = reader_wakes.count();
            reader.handle_wake();
            pump(&mut reader, &mut writer, &data, &mut fed, now);
        }
        assert!(
            received == data,
            "{} of {} bytes",
            received.len(),
            data.len()
        );
        assert_eq!(writer_wakes.count(), 0, "the other direction never blocked");
    }
}
