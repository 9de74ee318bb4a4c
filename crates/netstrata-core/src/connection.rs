//! `Connection`: a stack plus a codec, still sans-IO.

use std::convert::Infallible;
use std::task::Waker;
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};

use crate::layer::{ByteCounters, Flush, Inbound, Layer, LayerStats, Outbound};
use crate::layer::{inbound_counted, outbound_counted, release_if_empty, room_exceeded};
use crate::stack::{BoxedLayer, DynStack, Edge};
use crate::{Codec, Error, Result};

/// Limits of a [`Connection`]'s own buffers. Every limit has a default and a
/// setter; the stack's internal buffers are set on the stack
/// ([`crate::Stack::with_buffer_limit`]).
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    read_buffer: usize,
    write_buffer: usize,
    send_buffer: usize,
    message_buffer: Option<usize>,
}

impl ConnectionConfig {
    /// Default bound of wire bytes read but not yet taken by the stack (64 KiB).
    pub const DEFAULT_READ_BUFFER: usize = 64 * 1024;
    /// Default bound of wire bytes produced but not yet transmitted (64 KiB).
    pub const DEFAULT_WRITE_BUFFER: usize = 64 * 1024;
    /// Default bound of encoded messages waiting for the stack (1 MiB).
    pub const DEFAULT_SEND_BUFFER: usize = 1024 * 1024;

    /// The defaults.
    pub fn new() -> Self {
        Self {
            read_buffer: Self::DEFAULT_READ_BUFFER,
            write_buffer: Self::DEFAULT_WRITE_BUFFER,
            send_buffer: Self::DEFAULT_SEND_BUFFER,
            message_buffer: None,
        }
    }

    /// Sets the bound of wire bytes read but not yet taken by the stack. When
    /// it is reached, [`Connection::wants_read`] turns `false`.
    pub fn with_read_buffer(mut self, bytes: usize) -> Self {
        self.read_buffer = bytes.max(1);
        self
    }

    /// Sets the room offered to the stack for wire bytes not yet transmitted.
    /// Layers treat it as a soft bound (one record or block beyond it).
    pub fn with_write_buffer(mut self, bytes: usize) -> Self {
        self.write_buffer = bytes.max(1);
        self
    }

    /// Sets the bound of encoded messages waiting for the stack. A message is
    /// refused ([`Error::SendBufferFull`]) only when the bound is already
    /// reached, so one message of any allowed size always fits.
    pub fn with_send_buffer(mut self, bytes: usize) -> Self {
        self.send_buffer = bytes.max(1);
        self
    }

    /// Sets the bound of decoded bytes waiting to be cut into messages.
    /// Default: the codec's [`Codec::max_buffered`], the least that lets the
    /// largest allowed message through.
    pub fn with_message_buffer(mut self, bytes: usize) -> Self {
        self.message_buffer = Some(bytes.max(1));
        self
    }

    /// The read buffer bound.
    pub fn read_buffer(&self) -> usize {
        self.read_buffer
    }

    /// The write buffer bound.
    pub fn write_buffer(&self) -> usize {
        self.write_buffer
    }

    /// The send buffer bound.
    pub fn send_buffer(&self) -> usize {
        self.send_buffer
    }
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// Where a [`Connection`] is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// A layer is still setting up (TLS handshake). Messages may already be
    /// sent; layers hold them until the handshake completes.
    Handshaking,
    /// Messages flow both ways.
    Open,
    /// One side has begun to end the connection; the other direction may
    /// still carry messages.
    Closing,
    /// Both directions ended cleanly, or an error ended the connection
    /// ([`Connection::error`] tells which).
    Closed,
}

/// The inbound direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadSide {
    Open,
    /// The transport reported end of stream; the stack may still deliver.
    TransportEnded,
    /// The peer ended cleanly and every message was delivered.
    Ended,
}

/// The outbound direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteSide {
    Open,
    /// [`Connection::close`] was called; the stack is flushing and ending.
    Finishing,
    /// The stack has ended its stream; what it wrote may await transmission.
    Finished,
}

/// A [`Connection`]'s figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionStats {
    /// Each layer, top first.
    pub layers: Vec<LayerStats>,
    /// Messages handed to the application.
    pub messages_in: u64,
    /// Messages accepted by [`Connection::send`].
    pub messages_out: u64,
    /// Bytes taken from the transport.
    pub wire_in: u64,
    /// Bytes handed to the transport.
    pub wire_out: u64,
}

/// A stack of layers plus a codec: wire bytes in, messages out; messages in,
/// wire bytes out. Sans-IO: a driver ([`crate::Blocking`], the reactor, the
/// test harness) moves bytes between it and a transport.
///
/// # Methods, by kind
/// - getters: [`state`](Self::state), [`error`](Self::error),
///   [`stats`](Self::stats), [`wants_read`](Self::wants_read),
///   [`read_room`](Self::read_room), [`is_read_closed`](Self::is_read_closed),
///   [`is_write_closed`](Self::is_write_closed), [`stack`](Self::stack);
/// - input: [`handle_input`](Self::handle_input),
///   [`handle_input_eof`](Self::handle_input_eof),
///   [`handle_timeout`](Self::handle_timeout);
/// - application commands: [`send`](Self::send), [`close`](Self::close);
/// - output: [`poll_message`](Self::poll_message),
///   [`poll_transmit`](Self::poll_transmit) with
///   [`advance_transmit`](Self::advance_transmit),
///   [`poll_timeout`](Self::poll_timeout).
///
/// # Calling order
/// A driver loops:
/// 1. while [`wants_read`](Self::wants_read), read from the transport and
///    pass what it read to [`handle_input`](Self::handle_input) (at most
///    [`read_room`](Self::read_room) bytes); at end of stream call
///    [`handle_input_eof`](Self::handle_input_eof);
/// 2. when `now` reaches [`poll_timeout`](Self::poll_timeout), call
///    [`handle_timeout`](Self::handle_timeout);
/// 3. take messages with [`poll_message`](Self::poll_message) until `None`,
///    and [`send`](Self::send) answers;
/// 4. call [`poll_transmit`](Self::poll_transmit) and write what it returns,
///    then [`advance_transmit`](Self::advance_transmit) by what was written,
///    until it returns `None`. It flushes the stack once per call, so all
///    messages sent since the last call go out as one batch;
/// 5. once [`is_write_closed`](Self::is_write_closed), shut down the
///    transport's write side (TCP FIN); once [`state`](Self::state) is
///    [`State::Closed`], drop the transport.
///
/// The first error from the stack or from decoding ends the connection and
/// is returned by every later call; errors of the application's own calls
/// (a message too large to encode, [`Error::SendBufferFull`]) are not kept.
#[derive(Debug)]
pub struct Connection<S, C> {
    stack: S,
    codec: C,
    config: ConnectionConfig,
    /// Wire bytes read, not yet taken by the stack.
    wire_in: BytesMut,
    /// Decoded bytes, not yet cut into messages.
    app_in: BytesMut,
    /// Encoded messages, not yet taken by the stack.
    app_out: BytesMut,
    /// Wire bytes produced, not yet transmitted.
    wire_out: BytesMut,
    counters: ByteCounters,
    stats: ConnectionStats,
    read: ReadSide,
    write: WriteSide,
    error: Option<Error>,
    /// The last inbound pass filled the message buffer: taking a message
    /// may let the stack deliver more without new input.
    inbound_stalled: bool,
    /// Something happened since the last complete outbound pass that may
    /// give the stack bytes to emit (a send, input, a deadline, a close).
    outbound_dirty: bool,
    /// Given to every layer, those inserted later included.
    waker: Option<Waker>,
}

const NAME: &str = "connection";

impl<S: Layer, C: Codec> Connection<S, C> {
    /// A connection over `stack`, framing messages with `codec`.
    pub fn new(stack: S, codec: C) -> Self {
        Self::with_config(stack, codec, ConnectionConfig::default())
    }

    /// A connection with explicit buffer limits.
    pub fn with_config(stack: S, codec: C, config: ConnectionConfig) -> Self {
        Self {
            stack,
            codec,
            config,
            wire_in: BytesMut::new(),
            app_in: BytesMut::new(),
            app_out: BytesMut::new(),
            wire_out: BytesMut::new(),
            counters: ByteCounters::default(),
            stats: ConnectionStats::default(),
            read: ReadSide::Open,
            write: WriteSide::Open,
            error: None,
            inbound_stalled: false,
            outbound_dirty: true,
            waker: None,
        }
    }

    // ---- getters ----

    /// Where the connection is in its life.
    pub fn state(&self) -> State {
        let done = self.read == ReadSide::Ended
            && self.write == WriteSide::Finished
            && self.wire_out.is_empty();
        if self.error.is_some() || done {
            State::Closed
        } else if self.read != ReadSide::Open || self.write != WriteSide::Open {
            State::Closing
        } else if self.stack.is_handshaking() {
            State::Handshaking
        } else {
            State::Open
        }
    }

    /// The error that ended the connection, if any.
    pub fn error(&self) -> Option<&Error> {
        self.error.as_ref()
    }

    /// Messages and bytes so far, with each layer's counters.
    pub fn stats(&self) -> ConnectionStats {
        let mut stats = self.stats.clone();
        self.stack.collect_stats(&self.counters, &mut stats.layers);
        stats
    }

    /// Whether the driver should read from the transport now. `false` while
    /// the read buffer is full, a layer refuses input (shaping, a full TLS
    /// buffer), after end of stream or after an error: the peer then feels
    /// TCP backpressure.
    pub fn wants_read(&self) -> bool {
        self.error.is_none()
            && self.read == ReadSide::Open
            && self.read_room() > 0
            && self.stack.wants_read()
    }

    /// How many wire bytes [`handle_input`](Self::handle_input) takes now.
    pub fn read_room(&self) -> usize {
        self.config.read_buffer.saturating_sub(self.wire_in.len())
    }

    /// Whether the peer ended its stream cleanly and every message was taken.
    pub fn is_read_closed(&self) -> bool {
        self.read == ReadSide::Ended
    }

    /// Whether [`send`](Self::send) can still queue messages: [`close`](Self::close)
    /// has not been called and no error has ended the connection.
    pub fn is_write_open(&self) -> bool {
        self.write == WriteSide::Open && self.error.is_none()
    }

    /// Whether our stream has ended and all of it was transmitted: time to
    /// shut down the transport's write side.
    pub fn is_write_closed(&self) -> bool {
        self.write == WriteSide::Finished && self.wire_out.is_empty()
    }

    /// Bytes of memory the connection's own four buffers hold now (their
    /// capacity, not their contents). Buffers grow as bytes arrive, never as
    /// a header announces, and each is bounded by [`ConnectionConfig`]; the
    /// stack's buffers between layers are not included.
    pub fn buffered_capacity(&self) -> usize {
        [&self.wire_in, &self.app_in, &self.app_out, &self.wire_out]
            .iter()
            .map(|b| b.capacity())
            .sum()
    }

    /// Frees the memory of every empty buffer, the stack's included, so an
    /// idle connection costs little; buffers grow again as bytes come.
    pub fn release_buffers(&mut self) {
        for buf in [
            &mut self.wire_in,
            &mut self.app_in,
            &mut self.app_out,
            &mut self.wire_out,
        ] {
            release_if_empty(buf);
        }
        self.stack.release_buffers();
    }

    /// Sets the waker every layer gets (now, and on a later
    /// [`insert_layer`](Connection::insert_layer)). A layer wakes it when
    /// something outside its calls changed it, e.g. a shaper's limit was
    /// raised from another thread; the driver should then call
    /// [`handle_wake`](Self::handle_wake), then deliver messages, read and
    /// transmit again and look at [`poll_timeout`](Self::poll_timeout), as
    /// after any event. Drivers without a waker poll deadlines only.
    pub fn set_waker(&mut self, waker: Waker) {
        self.stack.set_waker(&waker);
        self.waker = Some(waker);
    }

    /// Bytes queued for the peer: encoded messages not yet through the
    /// stack plus wire bytes not yet transmitted. What write watermarks
    /// compare against.
    pub fn queued(&self) -> usize {
        self.app_out.len() + self.wire_out.len()
    }

    /// Bytes of encoded messages not yet taken by the stack.
    pub fn send_queued(&self) -> usize {
        self.app_out.len()
    }

    /// The stack.
    pub fn stack(&self) -> &S {
        &self.stack
    }

    /// The stack, mutably (to change a layer's settings at run time).
    pub fn stack_mut(&mut self) -> &mut S {
        // A changed setting may free room or budget in either direction.
        self.handle_wake();
        &mut self.stack
    }

    /// Tells the connection that its waker fired (see
    /// [`set_waker`](Self::set_waker)): a layer changed outside its calls
    /// and may now pass on bytes it held back in either direction, so the
    /// next [`poll_message`](Self::poll_message) gives the stack an inbound
    /// pass and the next [`poll_transmit`](Self::poll_transmit) an outbound
    /// one, even with no new bytes from either end.
    pub fn handle_wake(&mut self) {
        self.inbound_stalled = true;
        self.outbound_dirty = true;
    }

    /// The codec.
    pub fn codec(&self) -> &C {
        &self.codec
    }

    /// The buffer limits.
    pub fn config(&self) -> &ConnectionConfig {
        &self.config
    }

    fn check(&self) -> Result<()> {
        match &self.error {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// Keeps the first error of the stack or codec.
    fn fail(&mut self, e: Error) -> Error {
        if self.error.is_none() && e.is_sticky() {
            self.error = Some(e.clone());
        }
        e
    }

    fn message_buffer(&self) -> usize {
        self.config
            .message_buffer
            .unwrap_or_else(|| self.codec.max_buffered())
    }

    // ---- input ----

    /// Takes wire bytes from the transport, at most
    /// [`read_room`](Self::read_room) of them, and runs them up the stack.
    /// Returns how many were taken.
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) -> Result<usize> {
        let copied = self.read_with(now, |buf, room| {
            buf.extend_from_slice(&data[..data.len().min(room)]);
            Ok::<_, Infallible>(())
        })?;
        Ok(copied.unwrap_or_else(|never| match never {}))
    }

    /// Like [`handle_input`](Self::handle_input), but the transport writes
    /// straight into the connection's input buffer, with no copy through a
    /// buffer of the driver's. `read` is given that buffer and how many
    /// bytes it may append ([`read_room`](Self::read_room)); it appends what
    /// the transport has, or fails having appended nothing. What it appended
    /// runs up the stack.
    ///
    /// Returns how many bytes `read` appended (0: the transport gave none,
    /// e.g. at end of stream), or `read`'s error; the outer error is the
    /// connection's, as from [`handle_input`](Self::handle_input).
    pub fn read_with<E>(
        &mut self,
        now: Instant,
        read: impl FnOnce(&mut BytesMut, usize) -> std::result::Result<(), E>,
    ) -> Result<std::result::Result<usize, E>> {
        self.check()?;
        if self.read != ReadSide::Open {
            return Err(Error::misuse(NAME, "input after end of stream"));
        }
        let (before, room) = (self.wire_in.len(), self.read_room());
        if let Err(e) = read(&mut self.wire_in, room) {
            return Ok(Err(e));
        }
        let n = self.wire_in.len().saturating_sub(before);
        if n > 0 {
            self.stats.wire_in += n as u64;
            self.run_inbound(now)?;
        }
        Ok(Ok(n))
    }

    /// Tells the connection that the transport reached end of stream. The
    /// stack decides whether that was a clean end or a truncation.
    pub fn handle_input_eof(&mut self, now: Instant) -> Result<()> {
        self.check()?;
        if self.read == ReadSide::Open {
            self.read = ReadSide::TransportEnded;
        }
        self.run_inbound(now)
    }

    /// Runs the layers' deadlines that `now` has reached.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<()> {
        self.check()?;
        self.outbound_dirty = true;
        let before = self.wire_out.len();
        let result = self.stack.handle_timeout(now, &mut self.wire_out);
        let sent = self.wire_out.len().saturating_sub(before);
        self.counters.count_outbound(0, sent);
        result.map_err(|e| self.fail(e))?;
        // A deadline may have returned read budget (shaping).
        self.run_inbound(now)
    }

    fn run_inbound(&mut self, now: Instant) -> Result<()> {
        let up_room = self.message_buffer().saturating_sub(self.app_in.len());
        let result = inbound_counted(
            &mut self.counters,
            Inbound {
                now,
                input: &mut self.wire_in,
                input_ended: self.read != ReadSide::Open,
                up: &mut self.app_in,
                up_room,
                down: &mut self.wire_out,
            },
            |io| self.stack.handle_inbound(io),
        );
        let appended = result.map_err(|e| self.fail(e))?;
        if appended > up_room {
            return Err(self.fail(room_exceeded(self.stack.name(), appended, up_room)));
        }
        self.inbound_stalled = appended == up_room;
        // Inbound work may answer toward the wire or end a handshake that
        // releases held writes.
        self.outbound_dirty = true;
        Ok(())
    }

    // ---- application commands ----

    /// Encodes `msg` for sending. It goes out, with everything else sent
    /// since, on the next [`poll_transmit`](Self::poll_transmit).
    ///
    /// Fails with [`Error::SendBufferFull`] (transmit, then retry) or with
    /// the codec's error for a message it cannot frame; neither ends the
    /// connection.
    pub fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.check()?;
        if self.write != WriteSide::Open {
            return Err(Error::misuse(NAME, "send after close"));
        }
        if self.app_out.len() >= self.config.send_buffer {
            return Err(Error::SendBufferFull {
                queued: self.app_out.len(),
                limit: self.config.send_buffer,
            });
        }
        let before = self.app_out.len();
        if let Err(e) = self.codec.encode(msg, &mut self.app_out) {
            self.app_out.truncate(before);
            return Err(Error::misuse(self.codec.name(), e));
        }
        self.stats.messages_out += 1;
        self.outbound_dirty = true;
        Ok(())
    }

    /// Begins an orderly close of our direction: the stack flushes, ends its
    /// stream top-down (zstd end of frame, TLS `close_notify`) on the next
    /// [`poll_transmit`](Self::poll_transmit) calls, and then
    /// [`is_write_closed`](Self::is_write_closed) turns `true`. Messages from
    /// the peer can still arrive.
    pub fn close(&mut self) {
        if self.write == WriteSide::Open {
            self.write = WriteSide::Finishing;
            self.outbound_dirty = true;
        }
    }

    // ---- output ----

    /// The next message from the peer, or `None` if no complete message is
    /// buffered. After `None`, [`is_read_closed`](Self::is_read_closed) tells
    /// whether more can come.
    #[must_use = "a message is lost if the result is dropped"]
    pub fn poll_message(&mut self, now: Instant) -> Result<Option<Bytes>> {
        self.check()?;
        loop {
            let decoded = self.codec.decode(&mut self.app_in);
            match decoded.map_err(|e| Error::peer(self.codec.name(), e)) {
                Ok(Some(msg)) => {
                    self.stats.messages_in += 1;
                    return Ok(Some(msg));
                }
                Ok(None) => {}
                Err(e) => return Err(self.fail(e)),
            }
            if self.inbound_stalled {
                let buffered = self.app_in.len();
                self.run_inbound(now)?;
                if self.app_in.len() != buffered {
                    continue;
                }
            }
            if self.read == ReadSide::Ended || !self.stack.is_read_closed() {
                return Ok(None);
            }
            // The stack has delivered its last byte.
            let last = self.codec.decode_eof(&mut self.app_in);
            return match last.map_err(|e| Error::peer(self.codec.name(), e)) {
                Ok(Some(msg)) => {
                    self.stats.messages_in += 1;
                    Ok(Some(msg))
                }
                Ok(None) if self.app_in.is_empty() => {
                    self.read = ReadSide::Ended;
                    Ok(None)
                }
                Ok(None) => Err(self.fail(Error::Truncated {
                    layer: self.codec.name(),
                    detail: "partial message at end of stream",
                })),
                Err(e) => Err(self.fail(e)),
            };
        }
    }

    /// Flushes everything sent since the last call through the stack (or
    /// ends the stream after [`close`](Self::close)) and returns the wire
    /// bytes waiting to be written, or `None` if there are none. Write them,
    /// then call [`advance_transmit`](Self::advance_transmit).
    ///
    /// After an error, the wire bytes the stack had already produced (a TLS
    /// alert telling the peer why) are still returned until they are
    /// written; then the error is.
    #[must_use = "returned bytes must be written to the transport"]
    pub fn poll_transmit(&mut self, now: Instant) -> Result<Option<&[u8]>> {
        if let Some(e) = &self.error {
            return match self.wire_out.is_empty() {
                true => Err(e.clone()),
                false => Ok(Some(&self.wire_out[..])),
            };
        }
        let room = self.config.write_buffer.saturating_sub(self.wire_out.len());
        if room > 0 && self.outbound_dirty && self.write != WriteSide::Finished {
            let flush = match self.write {
                WriteSide::Finishing => Flush::Finish,
                _ => Flush::Batch,
            };
            let before = self.wire_out.len();
            let result = outbound_counted(
                &mut self.counters,
                Outbound {
                    now,
                    input: &mut self.app_out,
                    flush,
                    down: &mut self.wire_out,
                    down_room: room,
                },
                |io| self.stack.handle_outbound(io),
            );
            result.map_err(|e| self.fail(e))?;
            let filled = self.wire_out.len() - before >= room;
            if self.write == WriteSide::Finishing
                && self.app_out.is_empty()
                && self.stack.is_write_closed()
            {
                self.write = WriteSide::Finished;
            }
            // Only a pass cut short by room leaves work that no new event announces.
            self.outbound_dirty =
                filled || !self.app_out.is_empty() || self.write == WriteSide::Finishing;
        }
        Ok((!self.wire_out.is_empty()).then_some(&self.wire_out[..]))
    }

    /// Marks `n` bytes returned by [`poll_transmit`](Self::poll_transmit)
    /// as written.
    pub fn advance_transmit(&mut self, n: usize) {
        let n = n.min(self.wire_out.len());
        self.wire_out.advance(n);
        self.stats.wire_out += n as u64;
    }

    /// The next instant [`handle_timeout`](Self::handle_timeout) must be
    /// called at, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.error.is_some() {
            return None;
        }
        self.stack.poll_timeout()
    }
}

impl<C: Codec> Connection<DynStack, C> {
    /// Inserts `layer` at boundary `index` (0 is the top) of the live stack;
    /// see [`DynStack::insert`] for what happens to buffered bytes. Messages
    /// sent before the call go out as they were, ahead of anything the new
    /// layer emits; unconsumed bytes the peer sent after its last message
    /// are read by the new layer.
    pub fn insert_layer(&mut self, index: usize, mut layer: BoxedLayer) -> Result<()> {
        self.check()?;
        if let Some(waker) = &self.waker {
            layer.set_waker(waker);
        }
        self.handle_wake();
        self.stack.insert(
            index,
            layer,
            Edge {
                up: &mut self.app_in,
                from_up: &mut self.app_out,
                from_down: &mut self.wire_in,
                down: &mut self.wire_out,
            },
        )
    }

    /// Removes the layer at `index` (0 is the top) from the live stack; see
    /// [`DynStack::remove`].
    pub fn remove_layer(&mut self, index: usize, now: Instant) -> Result<BoxedLayer> {
        self.check()?;
        self.handle_wake();
        self.stack.remove(
            index,
            now,
            Edge {
                up: &mut self.app_in,
                from_up: &mut self.app_out,
                from_down: &mut self.wire_in,
                down: &mut self.wire_out,
            },
        )
    }
}
