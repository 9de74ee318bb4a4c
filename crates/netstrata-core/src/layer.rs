//! The layer contract.

use std::task::Waker;
use std::time::Instant;

use bytes::BytesMut;

use crate::Result;

/// Work handed to [`Layer::handle_inbound`]: bytes from the lower side (toward
/// the wire) to turn into bytes for the upper side (toward the application).
///
/// A layer reads and uses the fields; a driver builds one with
/// [`Inbound::new`] and the `with_*` setters (fields may be added, so the
/// struct cannot be written as a literal outside this crate):
///
/// ```
/// # use std::time::Instant;
/// # use bytes::BytesMut;
/// use netstrata_core::Inbound;
/// let (mut input, mut upper, mut lower) = (BytesMut::from(&b"wire"[..]), BytesMut::new(), BytesMut::new());
/// let io = Inbound::new(Instant::now(), &mut input, &mut upper, &mut lower)
///     .with_upper_room(4096)
///     .with_input_ended(true);
/// assert_eq!(io.upper_room, 4096);
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct Inbound<'a> {
    /// The current time. Layers never read a clock.
    pub now: Instant,
    /// Bytes from the lower side. The layer consumes from the front what it
    /// can take and leaves the rest; the caller keeps what is left and offers
    /// it again, with more, on a later call.
    pub input: &'a mut BytesMut,
    /// No byte will follow those in `input`: the lower side has ended.
    pub input_ended: bool,
    /// Where the layer appends decoded bytes, for its upper neighbour.
    pub upper: &'a mut BytesMut,
    /// How many bytes the layer may append to `upper` in this call. A strict
    /// bound: it is what keeps a decompression bomb or a flood bounded.
    pub upper_room: usize,
    /// Where the layer appends bytes it must send toward the wire in answer
    /// (handshake messages, alerts), for its lower neighbour. A stack passes
    /// them through the layers below on its next [`Layer::handle_outbound`]
    /// call.
    pub lower: &'a mut BytesMut,
}

impl<'a> Inbound<'a> {
    /// Work on `input` at `now`: decoded bytes go to `upper`, answers toward
    /// the wire to `lower`. The input has not ended and the upward room is
    /// unbounded until set with [`with_input_ended`](Self::with_input_ended)
    /// and [`with_upper_room`](Self::with_upper_room).
    pub fn new(
        now: Instant,
        input: &'a mut BytesMut,
        upper: &'a mut BytesMut,
        lower: &'a mut BytesMut,
    ) -> Self {
        Self {
            now,
            input,
            input_ended: false,
            upper,
            upper_room: usize::MAX,
            lower,
        }
    }

    /// Sets how many bytes the layer may append to `upper` (strict).
    #[must_use]
    pub fn with_upper_room(mut self, room: usize) -> Self {
        self.upper_room = room;
        self
    }

    /// Sets whether the lower side has ended after `input`.
    #[must_use]
    pub fn with_input_ended(mut self, ended: bool) -> Self {
        self.input_ended = ended;
        self
    }
}

/// When a layer must make what it has consumed decodable by the peer.
///
/// Not `#[non_exhaustive]`: every layer must handle every variant, so a new
/// one would be a breaking change to the contract, not an addition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flush {
    /// The write batch is over: once `input` is consumed, emit everything so
    /// the peer can decode all of it on arrival (zstd end of block, TLS record).
    Batch,
    /// Orderly shutdown: once `input` is consumed, flush and end the stream
    /// (zstd end of frame, TLS `close_notify`), then report
    /// [`Layer::is_write_closed`].
    Finish,
}

/// Work handed to [`Layer::handle_outbound`]: bytes from the upper side to
/// turn into bytes for the lower side.
///
/// A layer reads and uses the fields; a driver builds one with
/// [`Outbound::new`] and [`with_lower_room`](Outbound::with_lower_room).
#[derive(Debug)]
#[non_exhaustive]
pub struct Outbound<'a> {
    /// The current time.
    pub now: Instant,
    /// Bytes from the upper side. Consume from the front what you can.
    pub input: &'a mut BytesMut,
    /// Whether to flush or finish after `input`.
    pub flush: Flush,
    /// Where the layer appends encoded bytes, for its lower neighbour.
    pub lower: &'a mut BytesMut,
    /// How many bytes the layer should append to `lower`. A soft bound: a
    /// layer whose output comes in indivisible units (a TLS record, a zstd
    /// block) stops taking input once the room is used and may exceed it by
    /// at most one unit, which it documents.
    pub lower_room: usize,
}

impl<'a> Outbound<'a> {
    /// Work on `input` at `now`, flushed as `flush` says, into `lower`. The
    /// downward room is unbounded until set with
    /// [`with_lower_room`](Self::with_lower_room).
    pub fn new(
        now: Instant,
        input: &'a mut BytesMut,
        flush: Flush,
        lower: &'a mut BytesMut,
    ) -> Self {
        Self {
            now,
            input,
            flush,
            lower,
            lower_room: usize::MAX,
        }
    }

    /// Sets how many bytes the layer should append to `lower` (soft).
    #[must_use]
    pub fn with_lower_room(mut self, room: usize) -> Self {
        self.lower_room = room;
        self
    }
}

/// Bytes that crossed one layer, counted by the stack around every call.
///
/// The four figures are all a layer has (each direction, on each side), so
/// the struct is exhaustive. Layers do not count; stacks and [`crate::Connection`] measure the buffers
/// before and after each call, so every layer, including one a user writes,
/// gets exact figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ByteCounters {
    /// Bytes the layer consumed from its lower side.
    pub inbound_in: u64,
    /// Bytes the layer delivered to its upper side.
    pub inbound_out: u64,
    /// Bytes the layer consumed from its upper side.
    pub outbound_in: u64,
    /// Bytes the layer emitted toward the wire, answers to inbound work included.
    pub outbound_out: u64,
}

impl ByteCounters {
    /// Wire bytes per application byte on the way out (compression ratio
    /// below 1, framing or TLS overhead above 1); `None` before any output.
    pub fn outbound_expansion(&self) -> Option<f64> {
        (self.outbound_in > 0).then(|| self.outbound_out as f64 / self.outbound_in as f64)
    }

    /// Wire bytes per application byte on the way in; `None` before any input.
    pub fn inbound_expansion(&self) -> Option<f64> {
        (self.inbound_out > 0).then(|| self.inbound_in as f64 / self.inbound_out as f64)
    }

    pub(crate) fn count_inbound(&mut self, consumed: usize, up: usize, down: usize) {
        self.inbound_in += consumed as u64;
        self.inbound_out += up as u64;
        self.outbound_out += down as u64;
    }

    pub(crate) fn count_outbound(&mut self, consumed: usize, down: usize) {
        self.outbound_in += consumed as u64;
        self.outbound_out += down as u64;
    }
}

/// One layer's figures, as listed by [`Layer::collect_stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LayerStats {
    /// The layer's [`Layer::name`].
    pub name: &'static str,
    /// What crossed it.
    pub bytes: ByteCounters,
}

impl LayerStats {
    /// The figures `bytes` of the layer called `name`.
    pub fn new(name: &'static str, bytes: ByteCounters) -> Self {
        Self { name, bytes }
    }
}

/// A bidirectional, sans-IO byte transform between a lower side (toward the
/// wire) and an upper side (toward the application).
///
/// # The contract
///
/// 1. **Sans-IO.** A layer never touches a socket and never reads a clock.
///    Time comes in as `now`; a layer that must be woken says when through
///    [`poll_timeout`](Layer::poll_timeout) and is told through
///    [`handle_timeout`](Layer::handle_timeout).
/// 2. **Caller-owned buffers.** A layer consumes from the front of its input
///    and appends to the outputs it is given. Inbound work may produce bytes
///    toward the wire ([`Inbound::lower`]).
/// 3. **Chunking does not matter.** Any split of the input into calls gives
///    the same output bytes, one byte at a time included.
/// 4. **Bounded.** A layer never appends more than [`Inbound::upper_room`]
///    bytes upward, never buffers more than a documented limit because of
///    what the peer sent, and reports [`wants_read`](Layer::wants_read)
///    `false` when it will take no more input, so the driver stops reading
///    the socket and the peer feels TCP backpressure.
/// 5. **Flush.** With [`Flush::Batch`], everything consumed is decodable by
///    the peer once the output arrives.
/// 6. **Ordered shutdown.** With [`Flush::Finish`], the layer ends its stream
///    and then reports [`is_write_closed`](Layer::is_write_closed). On the
///    inbound side it reports [`is_read_closed`](Layer::is_read_closed) only
///    at a clean end, and returns [`crate::Error::Truncated`] when the lower
///    side ends anywhere else.
/// 7. **Typed errors, the first one sticks.** Failures are [`crate::Error`]s
///    naming the layer, peer faults apart from caller misuse. After an error
///    the layer is dead: every later call returns that first error again and
///    produces no byte, [`poll_timeout`](Layer::poll_timeout) is `None` and
///    [`wants_read`](Layer::wants_read) `false`. Layers, stacks and
///    connections all keep it with one piece, [`crate::StickyError`]. No
///    input from the network may panic.
/// 8. **Counted.** Stacks count the bytes crossing every layer; see
///    [`ByteCounters`].
///
/// # Calling order
///
/// A driver (a stack, [`crate::Connection`]) calls, in any order it needs:
/// - input: [`handle_inbound`](Layer::handle_inbound),
///   [`handle_outbound`](Layer::handle_outbound),
///   [`handle_timeout`](Layer::handle_timeout) once `now` reaches
///   [`poll_timeout`](Layer::poll_timeout);
/// - then, after any of those, `handle_outbound` with [`Flush::Batch`] (its
///   input may be empty) so that bytes a layer produced in answer to inbound
///   work or a timeout move down the stack;
/// - getters at any time.
///
/// A layer holds no reference to the caller's buffers between calls.
///
/// # Optional hints
///
/// A layer may say more about itself so that a driver can take a shortcut;
/// the defaults say nothing, and a driver that ignores a hint stays correct.
/// - [`passes_bytes_through`](Layer::passes_bytes_through): outbound bytes
///   cross the layer unchanged, so a driver may place them below it without
///   calling it (a large message queued by reference, see
///   [`Connection::send_bytes`](crate::Connection::send_bytes)).
pub trait Layer {
    /// Short name for errors and statistics (`"tls"`, `"zstd"`).
    fn name(&self) -> &'static str;

    /// Consumes bytes from below, appends bytes for above.
    fn handle_inbound(&mut self, io: Inbound<'_>) -> Result<()>;

    /// Consumes bytes from above, appends bytes for below.
    fn handle_outbound(&mut self, io: Outbound<'_>) -> Result<()>;

    /// The next instant the layer must be called at through
    /// [`handle_timeout`](Layer::handle_timeout), if any.
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    /// Tells the layer that `now` has reached a deadline it asked for. Bytes
    /// it must send go to `lower`.
    fn handle_timeout(&mut self, now: Instant, lower: &mut BytesMut) -> Result<()> {
        let _ = (now, lower);
        Ok(())
    }

    /// Whether the layer would take more input from below now. `false` asks
    /// the driver to stop reading the socket until this turns `true` again
    /// (after upward room frees or a timeout passes).
    fn wants_read(&self) -> bool {
        true
    }

    /// Whether the layer is still setting up (a TLS handshake). Application
    /// bytes written meanwhile are held, bounded, by the layer.
    fn is_handshaking(&self) -> bool {
        false
    }

    /// Whether the inbound stream has ended cleanly: the layer has delivered
    /// all it will ever deliver upward.
    fn is_read_closed(&self) -> bool;

    /// Whether the outbound stream has ended: after [`Flush::Finish`] the
    /// layer wrote its end marker and will write nothing more.
    fn is_write_closed(&self) -> bool;

    /// Frees the memory of buffers the layer holds that are empty now, so an
    /// idle connection costs little. Drivers call it when a connection goes
    /// idle. The default does nothing.
    fn release_buffers(&mut self) {}

    /// Gives the layer its connection's waker (drivers set one per
    /// connection, see [`Connection::set_waker`](crate::Connection::set_waker)).
    /// A layer whose state can change outside its own calls, such as a limit
    /// raised from another thread through a handle, wakes it: the driver
    /// then asks [`poll_timeout`](Self::poll_timeout) and
    /// [`wants_read`](Self::wants_read) again at once instead of at the old
    /// deadline. The default ignores it.
    fn set_waker(&mut self, waker: &Waker) {
        let _ = waker;
    }

    /// Whether the layer's outbound side is, right now, the identity: the
    /// bytes given to [`handle_outbound`](Layer::handle_outbound) would
    /// come out on `lower` unchanged and in order (all of them, room
    /// allowing), whatever `now`, with nothing added and nothing
    /// remembered; the layer holds no outbound byte of its own; its write
    /// side is open and it has not failed. An optional hint (see the
    /// contract): the default is `false`.
    ///
    /// While it is `true`, a driver may move outbound bytes past the layer
    /// without calling it, in order (nothing given to the layer before may
    /// be left behind them), counting them as having crossed it.
    fn passes_bytes_through(&self) -> bool {
        false
    }

    /// Appends this layer's figures to `out`; `own` are the counters the
    /// caller kept for it. Stacks override this to list each member instead.
    fn collect_stats(&self, own: &ByteCounters, out: &mut Vec<LayerStats>) {
        out.push(LayerStats::new(self.name(), *own));
    }
}

impl<L: Layer + ?Sized> Layer for Box<L> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn handle_inbound(&mut self, io: Inbound<'_>) -> Result<()> {
        (**self).handle_inbound(io)
    }
    fn handle_outbound(&mut self, io: Outbound<'_>) -> Result<()> {
        (**self).handle_outbound(io)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        (**self).poll_timeout()
    }
    fn handle_timeout(&mut self, now: Instant, lower: &mut BytesMut) -> Result<()> {
        (**self).handle_timeout(now, lower)
    }
    fn wants_read(&self) -> bool {
        (**self).wants_read()
    }
    fn is_handshaking(&self) -> bool {
        (**self).is_handshaking()
    }
    fn is_read_closed(&self) -> bool {
        (**self).is_read_closed()
    }
    fn is_write_closed(&self) -> bool {
        (**self).is_write_closed()
    }
    fn release_buffers(&mut self) {
        (**self).release_buffers()
    }
    fn set_waker(&mut self, waker: &Waker) {
        (**self).set_waker(waker)
    }
    fn passes_bytes_through(&self) -> bool {
        (**self).passes_bytes_through()
    }
    fn collect_stats(&self, own: &ByteCounters, out: &mut Vec<LayerStats>) {
        (**self).collect_stats(own, out)
    }
}

/// Replaces `buf` with an unallocated buffer if it is empty.
pub(crate) fn release_if_empty(buf: &mut BytesMut) {
    if buf.is_empty() && buf.capacity() > 0 {
        *buf = BytesMut::new();
    }
}
