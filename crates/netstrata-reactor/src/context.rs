//! A handler's view of its loop during a callback: its own connection, and
//! the other connections of the same loop.

use std::any::Any;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use std::{fmt, io};

use bytes::Bytes;
use netstrata_core::{Codec, Connection, ConnectionStats, Error, Layer};

use crate::{ConnId, Handle, Handler};

/// What became of a message given to [`Context::send`], [`Local::send`]
/// or their `send_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// Queued; the connection's queue is below the high watermark: keep
    /// sending.
    Queued,
    /// Queued, and the queue has reached the high watermark: stop sending
    /// to that connection until its handler's
    /// [`on_writable`](Handler::on_writable). Messages are still accepted
    /// above the watermark, up to the connection's send buffer
    /// ([`Error::SendBufferFull`] beyond it).
    HighWatermark,
    /// Not queued: the connection sent to has closed, is closing
    /// ([`Context::close`]), or lives on another loop.
    Closed,
}

impl Sent {
    /// Whether the sender may go on sending ([`Sent::Queued`]).
    pub fn keep_sending(self) -> bool {
        self == Self::Queued
    }
}

/// What a [`Context`] reaches of its loop, without the stack, codec and
/// handler types; implemented by the loop's connections.
pub(crate) trait Loop {
    fn send(&mut self, id: ConnId, msg: &[u8]) -> Result<Sent, Error>;
    fn send_bytes(&mut self, id: ConnId, msg: Bytes) -> Result<Sent, Error>;
    fn close(&mut self, id: ConnId);
    fn abort(&mut self, id: ConnId);
    fn set_reading(&mut self, id: ConnId, on: bool);
    fn queued(&self, id: ConnId) -> Option<usize>;
    fn stats(&self, id: ConnId) -> Option<ConnectionStats>;
    fn contains(&self, id: ConnId) -> bool;
    fn set_timer(&mut self, id: ConnId, at: Instant, timer: u64);
    /// `parts` is a `(Connection<S, C>, H)` of the loop's own types.
    fn connect(
        &mut self,
        addr: SocketAddr,
        parts: Box<dyn Any>,
        now: Instant,
    ) -> io::Result<ConnId>;
    fn handle(&self) -> &Handle;
}

/// A handler's view of its connection and loop during a callback.
pub struct Context<'a> {
    pub(crate) id: ConnId,
    pub(crate) peer: SocketAddr,
    pub(crate) now: Instant,
    pub(crate) event_loop: &'a mut dyn Loop,
}

// The loop behind it is a trait object; what a reader of a log wants is
// which connection the callback is for.
impl fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("id", &self.id)
            .field("peer", &self.peer)
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

impl Context<'_> {
    /// This connection's id, for reaching it from other connections of the
    /// loop ([`Self::local`]) or from other threads ([`Handle`]).
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// A handle to this connection's event loop, for other threads to send
    /// to it later — work handed to a thread pool answers through it with
    /// [`Handle::send`] and [`Self::id`]. With a multi-loop
    /// [`crate::Server`], this is the handle of the loop the connection
    /// lives on (a [`ConnId`] means nothing to another loop).
    pub fn handle(&self) -> Handle {
        self.event_loop.handle().clone()
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// The loop's time at the start of this turn.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Queues `msg`; it leaves with everything else sent in this loop turn,
    /// in one flush and one write. [`Sent::HighWatermark`] says to stop
    /// sending until [`Handler::on_writable`].
    pub fn send(&mut self, msg: &[u8]) -> Result<Sent, Error> {
        self.event_loop.send(self.id, msg)
    }

    /// Like [`Self::send`], for a message held as [`Bytes`] (one given to
    /// [`Handler::on_message`], to echo it): on a plain stack a large
    /// message is queued by reference instead of copied
    /// ([`Connection::send_bytes`]) and written with the rest in one
    /// vectored write.
    pub fn send_bytes(&mut self, msg: Bytes) -> Result<Sent, Error> {
        self.event_loop.send_bytes(self.id, msg)
    }

    /// Bytes queued toward the peer.
    pub fn queued(&self) -> usize {
        self.event_loop.queued(self.id).unwrap_or(0)
    }

    /// Orderly close of our side: layers end their streams, then FIN. The
    /// peer's messages still arrive until it ends too.
    pub fn close(&mut self) {
        self.event_loop.close(self.id);
    }

    /// Drops the connection once this callback returns, without an orderly
    /// close: what is still queued is discarded and the peer gets a reset,
    /// not a FIN.
    pub fn abort(&mut self) {
        self.event_loop.abort(self.id);
    }

    /// Stops reading this connection: no message is delivered and its
    /// socket is not read (the peer feels TCP backpressure) until
    /// [`Self::resume_reading`]. Messages already decoded wait in the
    /// connection. Writing, timers and timeouts go on.
    pub fn pause_reading(&mut self) {
        self.event_loop.set_reading(self.id, false);
    }

    /// Reads this connection again after [`Self::pause_reading`].
    pub fn resume_reading(&mut self) {
        self.event_loop.set_reading(self.id, true);
    }

    /// Calls [`Handler::on_timer`] with `id` after `after`. Timers cannot be
    /// cancelled: ignore ids you no longer expect.
    pub fn set_timer(&mut self, after: Duration, id: u64) {
        self.event_loop.set_timer(self.id, self.now + after, id);
    }

    /// The connection's figures so far.
    pub fn stats(&self) -> ConnectionStats {
        self.event_loop.stats(self.id).unwrap_or_default()
    }

    /// Another connection of this loop, to send to, close, pause or resume
    /// directly — no command queue, no thread hop. `None` if it has closed
    /// or is not on this loop (use its loop's [`Handle`] then).
    pub fn local(&mut self, id: ConnId) -> Option<Local<'_>> {
        self.event_loop.contains(id).then_some(Local {
            id,
            event_loop: &mut *self.event_loop,
        })
    }

    /// Starts a non-blocking connect to `addr` on this loop, with `conn`
    /// and `handler`, and returns its id at once (messages may be sent to it
    /// through [`Self::local`] before it is connected; its stack holds
    /// them). Its handler's [`Handler::on_open`] runs once connected; a
    /// failure or the connect timeout ends in its [`Handler::on_close`].
    ///
    /// `conn` and `handler` must be of the types the loop drives (a loop's
    /// connections share one stack, codec and handler type; a
    /// `Box<dyn Handler>` handler lets them differ in behaviour): other types
    /// are refused with [`io::ErrorKind::InvalidInput`].
    pub fn connect<S, C, H>(
        &mut self,
        addr: SocketAddr,
        conn: Connection<S, C>,
        handler: H,
    ) -> io::Result<ConnId>
    where
        S: Layer + 'static,
        C: Codec + 'static,
        H: Handler,
    {
        self.event_loop
            .connect(addr, Box::new((conn, handler)), self.now)
    }
}

/// Another connection of the same loop, reached from a handler's
/// [`Context::local`].
pub struct Local<'a> {
    id: ConnId,
    event_loop: &'a mut dyn Loop,
}

impl fmt::Debug for Local<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Local")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Local<'_> {
    /// The connection's id.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// Queues `msg` on this connection, as its own handler's
    /// [`Context::send`] would; it leaves in this turn's write.
    /// [`Sent::HighWatermark`]: this connection's handler gets
    /// [`Handler::on_writable`] once its queue has drained to the low mark.
    pub fn send(&mut self, msg: &[u8]) -> Result<Sent, Error> {
        self.event_loop.send(self.id, msg)
    }

    /// Like [`Self::send`], for a message held as [`Bytes`]: see
    /// [`Context::send_bytes`].
    pub fn send_bytes(&mut self, msg: Bytes) -> Result<Sent, Error> {
        self.event_loop.send_bytes(self.id, msg)
    }

    /// Bytes queued toward this connection's peer.
    pub fn queued(&self) -> usize {
        self.event_loop.queued(self.id).unwrap_or(0)
    }

    /// Begins this connection's orderly close.
    pub fn close(&mut self) {
        self.event_loop.close(self.id);
    }

    /// Drops this connection with a reset once the current callback returns.
    pub fn abort(&mut self) {
        self.event_loop.abort(self.id);
    }

    /// Stops reading this connection (see [`Context::pause_reading`]).
    pub fn pause_reading(&mut self) {
        self.event_loop.set_reading(self.id, false);
    }

    /// Reads this connection again.
    pub fn resume_reading(&mut self) {
        self.event_loop.set_reading(self.id, true);
    }
}
