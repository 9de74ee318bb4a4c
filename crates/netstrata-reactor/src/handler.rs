//! What the application writes: a [`Handler`] per connection, called with a
//! [`Context`].

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use netstrata_core::{Codec, Connection, ConnectionStats, Error, Layer};

use crate::{ConnId, Handle};

/// Why a connection ended, as told to [`Handler::on_close`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum CloseReason {
    /// Both sides ended their streams cleanly.
    Clean,
    /// The stack or codec failed (peer misbehaved, truncation, handshake
    /// timeout): the error says which layer and why.
    Error(Error),
    /// The socket failed (reset, broken pipe) or could not connect.
    Io(std::io::ErrorKind),
    /// No bytes moved for the configured idle timeout.
    IdleTimeout,
    /// A connect did not complete within its timeout.
    ConnectTimeout,
    /// The application aborted it ([`Context::abort`], [`crate::Handle::abort`]);
    /// the peer got a reset.
    Aborted,
    /// The event loop stopped, or a graceful shutdown passed its deadline.
    Shutdown,
}

/// One connection's application logic. Every method has a default except
/// [`on_message`](Handler::on_message); all run on the connection's event
/// loop thread and must not block.
pub trait Handler: 'static {
    /// The connection is established (TCP; layers may still be handshaking:
    /// messages sent now are held by them until it completes).
    fn on_open(&mut self, cx: &mut Context<'_>) {
        let _ = cx;
    }

    /// A message arrived: a zero-copy slice of what was read. It keeps the
    /// memory of that read (up to 64 KiB, see `LoopConfig::with_read_chunk`)
    /// until dropped; copy it (`Bytes::copy_from_slice`) to keep it long.
    fn on_message(&mut self, cx: &mut Context<'_>, msg: Bytes);

    /// The queued bytes fell below the low watermark after
    /// [`Context::send`] had reported the high watermark reached.
    fn on_writable(&mut self, cx: &mut Context<'_>) {
        let _ = cx;
    }

    /// A message another thread sent to this connection with
    /// [`Handle::send`](crate::Handle::send), on this connection's loop
    /// thread, in the order the loop received them.
    ///
    /// By default it is sent ([`Context::send`]); if the connection cannot
    /// take it (its send buffer is full: the peer does not read), the
    /// returned error ends the connection at once with
    /// [`CloseReason::Error`] — a reset, not a clean end, so the peer cannot
    /// mistake a stream with a message missing for a whole one. Override it
    /// to apply another policy, such as queueing in the handler and sending
    /// the rest from [`on_writable`](Handler::on_writable).
    fn on_handle_send(&mut self, cx: &mut Context<'_>, msg: Bytes) -> Result<(), Error> {
        cx.send(&msg).map(drop)
    }

    /// A timer set with [`Context::set_timer`] fired.
    fn on_timer(&mut self, cx: &mut Context<'_>, id: u64) {
        let _ = (cx, id);
    }

    /// The peer ended its stream cleanly; by default the connection closes
    /// its side too ([`Context::close`]). Override to keep sending
    /// (half-close).
    fn on_peer_closed(&mut self, cx: &mut Context<'_>) {
        cx.close();
    }

    /// The connection is gone; `stats` are its final figures.
    fn on_close(&mut self, reason: &CloseReason, stats: &ConnectionStats) {
        let _ = (reason, stats);
    }
}

/// The connection operations a [`Context`] needs, without the stack and
/// codec types.
pub(crate) trait Conn {
    /// Sends `msg`; returns the bytes queued after it.
    fn send(&mut self, msg: &[u8]) -> netstrata_core::Result<usize>;
    fn close(&mut self);
    fn queued(&self) -> usize;
    fn stats(&self) -> ConnectionStats;
}

impl<S: Layer, C: Codec> Conn for Connection<S, C> {
    fn send(&mut self, msg: &[u8]) -> netstrata_core::Result<usize> {
        Self::send(self, msg)?;
        Ok(self.queued())
    }
    fn close(&mut self) {
        Self::close(self)
    }
    fn queued(&self) -> usize {
        Self::queued(self)
    }
    fn stats(&self) -> ConnectionStats {
        Self::stats(self)
    }
}

/// Requests a handler makes that the loop carries out after the callback.
#[derive(Debug, Default)]
pub(crate) struct Requests {
    pub(crate) abort: bool,
    pub(crate) timers: Vec<(Instant, u64)>,
    pub(crate) above_high: bool,
}

/// A handler's view of its connection during a callback.
pub struct Context<'a> {
    pub(crate) id: ConnId,
    pub(crate) peer: SocketAddr,
    pub(crate) now: Instant,
    pub(crate) conn: &'a mut dyn Conn,
    pub(crate) high_watermark: usize,
    pub(crate) requests: &'a mut Requests,
    pub(crate) handle: &'a Handle,
}

impl Context<'_> {
    /// This connection's id, for sending to it from elsewhere through a
    /// [`crate::Handle`].
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// A handle to this connection's event loop, for other threads to send
    /// to it later — work handed to a thread pool answers through it with
    /// [`Handle::send`] and [`Self::id`]. With a multi-loop
    /// [`crate::Server`], this is the handle of the loop the connection
    /// lives on (a [`ConnId`] means nothing to another loop).
    pub fn handle(&self) -> Handle {
        self.handle.clone()
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
    /// in one flush and one write.
    ///
    /// Returns `Ok(true)` while the queued bytes are below the high
    /// watermark, `Ok(false)` once they reach it: stop sending until
    /// [`Handler::on_writable`]. Messages are still accepted above the
    /// watermark up to the connection's send buffer
    /// ([`Error::SendBufferFull`] beyond it).
    pub fn send(&mut self, msg: &[u8]) -> Result<bool, Error> {
        let below = self.conn.send(msg)? < self.high_watermark;
        if !below {
            self.requests.above_high = true;
        }
        Ok(below)
    }

    /// Bytes queued toward the peer.
    pub fn queued(&self) -> usize {
        self.conn.queued()
    }

    /// Orderly close of our side: layers end their streams, then FIN. The
    /// peer's messages still arrive until it ends too.
    pub fn close(&mut self) {
        self.conn.close();
    }

    /// Drops the connection now, without an orderly close: what is still
    /// queued is discarded and the peer gets a reset, not a FIN.
    pub fn abort(&mut self) {
        self.requests.abort = true;
    }

    /// Calls [`Handler::on_timer`] with `id` after `after`. Timers cannot be
    /// cancelled: ignore ids you no longer expect.
    pub fn set_timer(&mut self, after: Duration, id: u64) {
        self.requests.timers.push((self.now + after, id));
    }

    /// The connection's figures so far.
    pub fn stats(&self) -> ConnectionStats {
        self.conn.stats()
    }
}
