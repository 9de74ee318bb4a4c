//! Reaching an event loop from other threads.

use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::task::Wake;
use std::time::Duration;

use bytes::Bytes;
use mio::Waker;

/// A connection of an event loop: stable for its life, never reused for
/// another (the generation changes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId {
    pub(crate) index: usize,
    pub(crate) generation: u32,
}

/// Work sent to a loop from other threads through a [`Handle`].
#[derive(Debug)]
pub(crate) enum Command {
    Send(ConnId, Bytes),
    Close(ConnId),
    Abort(ConnId),
    Wake(ConnId),
    Shutdown(Duration),
    Stop,
}

/// Sends work to an event loop from any thread. Cloneable.
#[derive(Debug, Clone)]
pub struct Handle {
    pub(crate) tx: Sender<Command>,
    pub(crate) waker: Arc<Waker>,
}

/// The loop a [`Handle`] points to has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the event loop has stopped")]
pub struct Stopped;

impl Handle {
    fn command(&self, command: Command) -> Result<(), Stopped> {
        self.tx.send(command).map_err(|_| Stopped)?;
        self.waker.wake().map_err(|_| Stopped)
    }

    /// Sends `msg` on connection `id`: the loop hands it to the connection's
    /// [`Handler::on_handle_send`](crate::Handler::on_handle_send), which by
    /// default sends it, or ends the connection with an error if its send
    /// buffer is full — a message is never dropped from a stream that goes
    /// on. Ignored if the connection has closed since (its
    /// [`Handler::on_close`](crate::Handler::on_close) has run) or has
    /// begun its orderly close ([`Context::close`](crate::Context::close),
    /// [`Handle::close`]): its stream ends where it was closed.
    pub fn send(&self, id: ConnId, msg: Bytes) -> Result<(), Stopped> {
        self.command(Command::Send(id, msg))
    }

    /// Makes the loop look at connection `id` again at once: its layers'
    /// deadlines, reading and writing. Layers do this through the waker the
    /// loop gives each connection (a shaper whose limit was raised).
    pub fn wake(&self, id: ConnId) -> Result<(), Stopped> {
        self.command(Command::Wake(id))
    }

    /// Begins an orderly close of connection `id`.
    pub fn close(&self, id: ConnId) -> Result<(), Stopped> {
        self.command(Command::Close(id))
    }

    /// Drops connection `id` at once with a reset, without an orderly close (what
    /// [`Context::abort`](crate::Context::abort) does from its handler).
    pub fn abort(&self, id: ConnId) -> Result<(), Stopped> {
        self.command(Command::Abort(id))
    }

    /// Stops accepting, closes every connection in order, and stops the
    /// loop once all are closed or `grace` has passed (the rest are
    /// dropped with [`CloseReason::Shutdown`](crate::CloseReason::Shutdown)).
    pub fn shutdown(&self, grace: Duration) -> Result<(), Stopped> {
        self.command(Command::Shutdown(grace))
    }

    /// Stops the loop at once; connections are dropped.
    pub fn stop(&self) -> Result<(), Stopped> {
        self.command(Command::Stop)
    }
}

/// The waker the loop gives each connection's layers
/// ([`Connection::set_waker`](netstrata_core::Connection::set_waker)).
#[derive(Debug)]
pub(crate) struct ConnWaker {
    pub(crate) handle: Handle,
    pub(crate) id: ConnId,
}

impl Wake for ConnWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // A stopped loop has nothing left to wake.
        let _ = self.handle.wake(self.id);
    }
}
