//! What the application writes: a [`Handler`] per connection, called with a
//! [`Context`].

use bytes::Bytes;
use netstrata_core::{ConnectionStats, Error};

use crate::Context;

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

impl From<Error> for CloseReason {
    fn from(e: Error) -> Self {
        Self::Error(e)
    }
}

/// One connection's application logic. Every method has a default except
/// [`on_message`](Handler::on_message); all run on the connection's event
/// loop thread and must not block.
///
/// A loop drives one handler type; `Box<dyn Handler>` is a handler too, for
/// a loop whose connections behave differently (a proxy's client and
/// target sides, say).
pub trait Handler: 'static {
    /// The connection is established (TCP; layers may still be handshaking:
    /// messages sent now are held by them until it completes).
    fn on_open(&mut self, cx: &mut Context<'_>) {
        let _ = cx;
    }

    /// A message arrived: a zero-copy slice of what was read. It keeps the
    /// memory of that read (up to 64 KiB, see `LoopConfig::with_read_chunk`)
    /// until dropped; copy it (`Bytes::copy_from_slice`) to keep it long.
    ///
    /// When a layer fails on what the peer sent (a bad TLS record), the
    /// messages it decoded whole before the failure still arrive here, then
    /// the connection closes with the layer's error; a send to such a
    /// connection returns [`Sent::Closed`](crate::Sent::Closed).
    fn on_message(&mut self, cx: &mut Context<'_>, msg: Bytes);

    /// The queued bytes fell to the low watermark after a send had reported
    /// [`Sent::HighWatermark`](crate::Sent::HighWatermark).
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

impl<H: Handler + ?Sized> Handler for Box<H> {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        (**self).on_open(cx);
    }

    fn on_message(&mut self, cx: &mut Context<'_>, msg: Bytes) {
        (**self).on_message(cx, msg);
    }

    fn on_writable(&mut self, cx: &mut Context<'_>) {
        (**self).on_writable(cx);
    }

    fn on_handle_send(&mut self, cx: &mut Context<'_>, msg: Bytes) -> Result<(), Error> {
        (**self).on_handle_send(cx, msg)
    }

    fn on_timer(&mut self, cx: &mut Context<'_>, id: u64) {
        (**self).on_timer(cx, id);
    }

    fn on_peer_closed(&mut self, cx: &mut Context<'_>) {
        (**self).on_peer_closed(cx);
    }

    fn on_close(&mut self, reason: &CloseReason, stats: &ConnectionStats) {
        (**self).on_close(reason, stats);
    }
}
