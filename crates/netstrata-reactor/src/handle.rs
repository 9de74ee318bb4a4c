//! Reaching an event loop from other threads.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::task::Wake;
use std::time::Duration;

use bytes::Bytes;
use mio::Waker;

use crate::event_loop::Handover;

/// What a command counts against the queue's limit besides its message.
pub(crate) const COMMAND_COST: usize = 64;

/// A connection of an event loop: stable for its life, never reused for
/// another. Shown as `conn N`, where N numbers the connections of the
/// process from 1, as in the log line each close writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId {
    pub(crate) index: usize,
    /// The connection's number in the process: its slot's generation.
    pub(crate) generation: u64,
}

/// The next connection's number; shared by every loop of the process.
static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

impl ConnId {
    /// A number no connection of the process had before.
    pub(crate) fn next_number() -> u64 {
        NEXT_CONN.fetch_add(1, Ordering::Relaxed)
    }

    /// The connection's number, unique in the process (`conn N` in logs).
    pub fn number(&self) -> u64 {
        self.generation
    }
}

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "conn {}", self.generation)
    }
}

/// Work sent to a loop from other threads through a [`Handle`].
#[derive(Debug)]
pub(crate) enum Command {
    Send(ConnId, Bytes),
    Close(ConnId),
    Abort(ConnId),
    Wake(ConnId),
    /// From a connection's layer waker: at most one queued per connection.
    LayerWake(Arc<ConnWaker>),
    /// A connection another loop of the server accepted for this one.
    Adopt(Handover),
    Shutdown(Duration),
    Stop,
}

/// What the commands that end something (abort, shutdown, stop) may hold
/// of the queue, at [`COMMAND_COST`] each: 65 536 of them (4 MiB). A
/// budget of their own, which sends, closes and wakes cannot use up: a
/// connection can always be dropped, or a loop stopped, after
/// [`HandleError::Full`]; only a thread flooding such commands is refused.
pub(crate) const ENDING_QUEUE: usize = 65_536 * COMMAND_COST;

/// Which of a loop's two queue quotas a command counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Quota {
    /// Sends, closes and wakes: `LoopConfig::with_command_queue`.
    Work,
    /// Aborts, shutdown and stop: [`ENDING_QUEUE`].
    Ending,
    /// A layer's wake: never refused (it must not be lost), and queued at
    /// most once per connection.
    Free,
}

impl Command {
    /// The quota the command counts against, and the bytes it counts.
    pub(crate) fn cost(&self) -> (Quota, usize) {
        match self {
            Self::Send(_, msg) => (Quota::Work, COMMAND_COST + msg.len()),
            Self::Close(_) | Self::Wake(_) | Self::Adopt(_) => (Quota::Work, COMMAND_COST),
            Self::Abort(_) | Self::Shutdown(_) | Self::Stop => (Quota::Ending, COMMAND_COST),
            Self::LayerWake(_) => (Quota::Free, 0),
        }
    }
}

/// What a loop and its handles share besides the channel.
#[derive(Debug)]
pub(crate) struct Queue {
    /// Bytes of sends, closes and wakes sent and not yet taken by the loop.
    pub(crate) queued: AtomicUsize,
    /// The most `queued` may reach (one command of any size always fits
    /// an empty queue).
    pub(crate) limit: usize,
    /// Bytes of aborts, shutdowns and stops sent and not yet taken, at
    /// most [`ENDING_QUEUE`].
    pub(crate) ending: AtomicUsize,
    /// The loop's waker was woken and the loop has not yet drained the
    /// channel since: later commands need no wake of their own.
    pub(crate) woken: AtomicBool,
}

impl Queue {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            queued: AtomicUsize::new(0),
            limit,
            ending: AtomicUsize::new(0),
            woken: AtomicBool::new(false),
        }
    }

    /// The count and limit of `quota`; `None` for a free command.
    fn quota(&self, quota: Quota) -> Option<(&AtomicUsize, usize)> {
        match quota {
            Quota::Work => Some((&self.queued, self.limit)),
            Quota::Ending => Some((&self.ending, ENDING_QUEUE)),
            Quota::Free => None,
        }
    }

    /// Counts `command` in, unless its quota is used up.
    fn charge(&self, command: &Command) -> Result<(), HandleError> {
        let (quota, cost) = command.cost();
        self.charge_cost(quota, cost)
    }

    /// Counts `cost` bytes against `quota`, unless it is used up.
    fn charge_cost(&self, quota: Quota, cost: usize) -> Result<(), HandleError> {
        let Some((queued, limit)) = self.quota(quota) else {
            return Ok(());
        };
        let before = queued.fetch_add(cost, Ordering::AcqRel);
        if before > 0 && before.saturating_add(cost) > limit {
            queued.fetch_sub(cost, Ordering::AcqRel);
            return Err(HandleError::Full { limit });
        }
        Ok(())
    }

    /// Counts `command` out: the loop has taken it.
    pub(crate) fn taken(&self, command: &Command) {
        let (quota, cost) = command.cost();
        if let Some((queued, _)) = self.quota(quota) {
            queued.fetch_sub(cost, Ordering::AcqRel);
        }
    }
}

/// Sends work to an event loop from any thread. Cloneable.
///
/// Commands wait in a queue the loop drains each turn. The queue is bounded
/// ([`LoopConfig::with_command_queue`](crate::LoopConfig::with_command_queue),
/// 16 MiB of messages by default, each command counting its message's
/// length plus 64 bytes): a thread that sends faster than the loop runs
/// gets [`HandleError::Full`] instead of growing the queue without bound.
/// One wake-up of the loop serves every command sent before it runs.
#[derive(Debug, Clone)]
pub struct Handle {
    pub(crate) tx: Sender<Command>,
    pub(crate) waker: Arc<Waker>,
    pub(crate) queue: Arc<Queue>,
    pub(crate) driver: crate::Driver,
}

/// Why a [`Handle`] could not pass a command to its loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandleError {
    /// The loop has ended.
    #[error("the event loop has stopped")]
    Stopped,
    /// The loop's command queue holds `limit` bytes of commands it has not
    /// run yet: the sending threads are faster than the loop. Nothing was
    /// queued; try again once the loop has caught up (the connection's
    /// handler can say when, e.g. from `on_writable`), or give up.
    #[error("the event loop's command queue is full ({limit} bytes)")]
    Full {
        /// The queue's limit in bytes.
        limit: usize,
    },
}

impl Handle {
    /// The driver the loop runs on ([`crate::EventLoop::driver`]).
    pub fn driver(&self) -> crate::Driver {
        self.driver
    }

    fn command(&self, command: Command) -> Result<(), HandleError> {
        self.queue.charge(&command)?;
        self.tx.send(command).map_err(|_| HandleError::Stopped)?;
        if !self.queue.woken.swap(true, Ordering::AcqRel) {
            self.waker.wake().map_err(|_| HandleError::Stopped)?;
        }
        Ok(())
    }

    /// Hands the loop a connection another loop accepted, or gives it back
    /// if the loop's queue is full. A loop that has stopped drops it: the
    /// connection closes and its seat is given back.
    pub(crate) fn adopt(&self, handover: Handover) -> Result<(), Handover> {
        if self.queue.charge_cost(Quota::Work, COMMAND_COST).is_err() {
            return Err(handover);
        }
        if self.tx.send(Command::Adopt(handover)).is_ok()
            && !self.queue.woken.swap(true, Ordering::AcqRel)
        {
            let _ = self.waker.wake();
        }
        Ok(())
    }

    /// Sends `msg` on connection `id`: the loop hands it to the connection's
    /// [`Handler::on_handle_send`](crate::Handler::on_handle_send), which by
    /// default sends it, or ends the connection with an error if its send
    /// buffer is full — a message is never dropped from a stream that goes
    /// on. Ignored if the connection has closed since (its
    /// [`Handler::on_close`](crate::Handler::on_close) has run) or has
    /// begun its orderly close ([`Context::close`](crate::Context::close),
    /// [`Handle::close`]): its stream ends where it was closed.
    ///
    /// [`HandleError::Full`] if the loop's command queue is full: `msg` was
    /// not queued.
    pub fn send(&self, id: ConnId, msg: Bytes) -> Result<(), HandleError> {
        self.command(Command::Send(id, msg))
    }

    /// Makes the loop look at connection `id` again at once: its stack
    /// gets a pass each way ([`Connection::handle_wake`](netstrata_core::Connection::handle_wake)),
    /// then its layers' deadlines, reading and writing. Layers do this
    /// through the waker the loop gives each connection (a shaper whose
    /// limit was raised), which is never refused.
    pub fn wake(&self, id: ConnId) -> Result<(), HandleError> {
        self.command(Command::Wake(id))
    }

    /// Begins an orderly close of connection `id`.
    pub fn close(&self, id: ConnId) -> Result<(), HandleError> {
        self.command(Command::Close(id))
    }

    /// Drops connection `id` at once with a reset, without an orderly close (what
    /// [`Context::abort`](crate::Context::abort) does from its handler):
    /// what to do with a connection a message could not be queued for.
    /// Aborts, shutdowns and stops have a budget of their own that sends
    /// cannot use up (65 536 of them): [`HandleError::Full`] only for a
    /// thread flooding them.
    pub fn abort(&self, id: ConnId) -> Result<(), HandleError> {
        self.command(Command::Abort(id))
    }

    /// Stops accepting, closes every connection in order, and stops the
    /// loop once all are closed or `grace` has passed (the rest are
    /// dropped with [`CloseReason::Shutdown`](crate::CloseReason::Shutdown)).
    /// Counts against the budget of [`Self::abort`], not that of sends.
    pub fn shutdown(&self, grace: Duration) -> Result<(), HandleError> {
        self.command(Command::Shutdown(grace))
    }

    /// Stops the loop at once; connections are dropped. Counts against the
    /// budget of [`Self::abort`], not that of sends.
    pub fn stop(&self) -> Result<(), HandleError> {
        self.command(Command::Stop)
    }
}

/// The waker the loop gives each connection's layers
/// ([`Connection::set_waker`](netstrata_core::Connection::set_waker)).
#[derive(Debug)]
pub(crate) struct ConnWaker {
    pub(crate) handle: Handle,
    pub(crate) id: ConnId,
    /// A wake of this connection is queued and not yet run: more wakes
    /// add nothing, so a layer waking in a loop queues one command.
    pub(crate) pending: AtomicBool,
}

impl ConnWaker {
    pub(crate) fn new(handle: Handle, id: ConnId) -> Self {
        Self {
            handle,
            id,
            pending: AtomicBool::new(false),
        }
    }
}

impl Wake for ConnWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.pending.swap(true, Ordering::AcqRel) {
            // A stopped loop has nothing left to wake.
            let _ = self.handle.command(Command::LayerWake(Arc::clone(self)));
        }
    }
}
