//! `Connection`: a stack plus a codec, still sans-IO.
//!
//! - `config`: [`ConnectionConfig`], the limits of its own buffers;
//! - `inbound`: wire bytes in, up the stack, cut into messages;
//! - `outbound`: messages in, down the stack in batches, wire bytes out;
//! - `chain`: wire bytes queued by reference, ahead of the copied ones;
//! - `upgrade`: layers inserted into or removed from a live [`DynStack`](crate::DynStack).

mod chain;
mod config;
mod inbound;
mod outbound;
mod upgrade;

use std::task::Waker;
use std::time::Instant;

use bytes::BytesMut;

use crate::layer::{ByteCounters, Layer, LayerStats, release_if_empty};
use crate::{Codec, Error, StickyError};

use chain::Chain;
pub use config::ConnectionConfig;

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
    /// The peer ended cleanly and every message was delivered. With
    /// `transport: false` the stack's top layer ended before the transport
    /// did: the connection reads no more, and the layers below are never
    /// told that their input ended (it has not).
    Ended {
        transport: bool,
    },
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

/// A [`Connection`]'s figures. More may be added: start from `default()`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionStats {
    /// Each layer, top first.
    pub layers: Vec<LayerStats>,
    /// Messages handed to the application.
    pub messages_in: u64,
    /// Messages accepted by [`Connection::send`] and
    /// [`Connection::send_bytes`].
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
/// - application commands: [`send`](Self::send),
///   [`send_bytes`](Self::send_bytes), [`close`](Self::close);
/// - output: [`poll_message`](Self::poll_message),
///   [`poll_transmit`](Self::poll_transmit) or
///   [`poll_transmit_vectored`](Self::poll_transmit_vectored) with
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
/// 4. call [`poll_transmit`](Self::poll_transmit) and write what it returns
///    (or [`poll_transmit_vectored`](Self::poll_transmit_vectored), for a
///    vectored write), then [`advance_transmit`](Self::advance_transmit) by
///    what was written, until it returns `None` (`0`). It flushes the stack
///    once per call, so all messages sent since the last call go out as one
///    batch;
/// 5. once [`is_write_closed`](Self::is_write_closed), shut down the
///    transport's write side (TCP FIN); once [`state`](Self::state) is
///    [`State::Closed`], drop the transport.
///
/// The first error from the stack or from decoding ends the connection and
/// is returned by every later call; errors of the application's own calls
/// (a message too large to encode, [`Error::SendBufferFull`]) are not kept.
/// What was accepted before the error is not dropped with it:
/// [`poll_message`](Self::poll_message) still hands over the messages
/// decoded whole before it, and when the codec failed (a partial message at
/// end of stream, a bad length), the stack is sound, so
/// [`poll_transmit`](Self::poll_transmit) still carries the messages sent
/// before the error to the peer before it returns the error.
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
    /// Wire bytes queued by reference ([`Connection::send_bytes`]), all of
    /// them due before `wire_out`'s.
    chain: Chain,
    counters: ByteCounters,
    stats: ConnectionStats,
    read: ReadSide,
    write: WriteSide,
    failed: StickyError,
    /// The error that ended the connection came from the codec, above the
    /// stack: the stack is sound and still carries what was sent before.
    failed_above_stack: bool,
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
            chain: Chain::default(),
            counters: ByteCounters::default(),
            stats: ConnectionStats::default(),
            read: ReadSide::Open,
            write: WriteSide::Open,
            failed: StickyError::new(),
            failed_above_stack: false,
            inbound_stalled: false,
            outbound_dirty: true,
            waker: None,
        }
    }

    // ---- getters ----

    /// Where the connection is in its life.
    pub fn state(&self) -> State {
        let done = matches!(self.read, ReadSide::Ended { .. })
            && self.write == WriteSide::Finished
            && self.unsent() == 0;
        if self.failed.has_failed() || done {
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
        self.failed.error()
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
        !self.failed.has_failed()
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
        matches!(self.read, ReadSide::Ended { .. })
    }

    /// Whether [`send`](Self::send) can still queue messages: [`close`](Self::close)
    /// has not been called and no error has ended the connection.
    pub fn is_write_open(&self) -> bool {
        self.write == WriteSide::Open && !self.failed.has_failed()
    }

    /// Whether our stream has ended and all of it was transmitted: time to
    /// shut down the transport's write side.
    pub fn is_write_closed(&self) -> bool {
        self.write == WriteSide::Finished && self.unsent() == 0
    }

    /// Bytes of memory the connection's own four buffers hold now (their
    /// capacity, not their contents), plus the bytes of messages queued by
    /// reference ([`send_bytes`](Self::send_bytes); by their length: such a
    /// message may keep alive the larger buffer it was cut from, which this
    /// cannot see). Buffers grow as bytes arrive, never as a header
    /// announces, and each is bounded by [`ConnectionConfig`]; the stack's
    /// buffers between layers are not included.
    pub fn buffered_capacity(&self) -> usize {
        [&self.wire_in, &self.app_in, &self.app_out, &self.wire_out]
            .iter()
            .map(|b| b.capacity())
            .sum::<usize>()
            + self.chain.len()
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
        self.chain.release_if_empty();
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
    /// stack plus wire bytes not yet transmitted, those queued by reference
    /// included. What write watermarks compare against.
    pub fn queued(&self) -> usize {
        self.app_out.len() + self.unsent()
    }

    /// Bytes waiting for room toward the wire, what the send buffer bounds
    /// ([`ConnectionConfig::with_send_buffer`]): encoded messages not yet
    /// taken by the stack, plus the wire bytes queued by reference
    /// ([`send_bytes`](Self::send_bytes)) beyond the write buffer's room,
    /// which a copying [`send`](Self::send) would have left waiting above
    /// the stack.
    pub fn send_queued(&self) -> usize {
        let over_room = self
            .unsent()
            .saturating_sub(self.config.write_buffer)
            .min(self.chain.len());
        self.app_out.len() + over_room
    }

    /// Wire bytes ready to transmit without running the stack again: a
    /// driver that takes several runs for one write
    /// ([`take_transmit`](Self::take_transmit)) takes more only while this
    /// is not zero, so that the stack never refills a buffer a run it
    /// handed over still shares (which would allocate a new one).
    pub fn wire_ready(&self) -> usize {
        self.unsent()
    }

    /// Wire bytes not yet transmitted: the chain, then `wire_out`.
    fn unsent(&self) -> usize {
        self.chain.len() + self.wire_out.len()
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

    fn message_buffer(&self) -> usize {
        self.config
            .message_buffer
            .unwrap_or_else(|| self.codec.max_buffered())
    }

    /// The next instant [`handle_timeout`](Self::handle_timeout) must be
    /// called at, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.failed.has_failed() {
            return None;
        }
        self.stack.poll_timeout()
    }
}
