//! The loop's connections: where they are kept, which have work this turn,
//! and what a handler's [`Context`] reaches of them.

use std::any::Any;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use netstrata_core::{Codec, Connection, ConnectionStats, Error, Layer};
use slab::Slab;

use super::entry::{Entry, Origin, Phase, Reading, SocketIn, Writing};
use super::read::MIN_READ;
use super::ring::RingIo;
use super::timers::{Timer, TimerKind, Timers};
use super::{LISTENER_BASE, Opening, Readiness};
use crate::closes::CloseCounts;
use crate::context::{Context, Loop, Sent};
use crate::handle::{ConnId, ConnWaker, Handle};
use crate::uring::Ring;
use crate::{CloseReason, Handler, LoopConfig};

/// A loop's connections, with what driving them needs besides the poll:
/// the turn's work list, the timers, the registry for new sockets.
pub(super) struct Connections<S, C, H> {
    pub(super) slab: Slab<Entry<S, C, H>>,
    /// Connections to drive this turn (each at most once: `Entry::scheduled`).
    scheduled: Vec<usize>,
    /// The list being driven, empty between turns (its allocation kept).
    driving: Vec<usize>,
    pub(super) timers: Timers,
    pub(super) registry: Registry,
    /// The io_uring driver's ring; `None` on epoll.
    pub(super) ring: Option<Ring>,
    /// The loop's own handle: what `EventLoop::handle` clones and contexts lend.
    pub(super) handle: Handle,
    pub(super) config: LoopConfig,
    /// Closes by kind, shared with the other loops of a server.
    pub(super) closes: CloseCounts,
    /// What the loop publishes through `metrics`.
    #[cfg(feature = "metrics")]
    pub(super) figures: super::figures::Figures,
}

impl<S: Layer + 'static, C: Codec + 'static, H: Handler> Connections<S, C, H> {
    pub(super) fn new(
        registry: Registry,
        ring: Option<Ring>,
        handle: Handle,
        config: LoopConfig,
    ) -> Self {
        Self {
            ring,
            slab: Slab::new(),
            scheduled: Vec::new(),
            driving: Vec::new(),
            timers: Timers::new(),
            registry,
            handle,
            config,
            closes: CloseCounts::default(),
            #[cfg(feature = "metrics")]
            figures: super::figures::Figures::new(),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.slab.len()
    }

    /// The live connection `id` (not a later one in its slot).
    pub(super) fn get(&mut self, id: ConnId) -> Option<&mut Entry<S, C, H>> {
        self.slab.get_mut(id.index).filter(|e| e.id == id)
    }

    /// [`Self::get`], to look at.
    fn get_ref(&self, id: ConnId) -> Option<&Entry<S, C, H>> {
        self.slab.get(id.index).filter(|e| e.id == id)
    }

    /// Drives `token` this turn.
    pub(super) fn schedule(&mut self, token: usize) {
        if let Some(entry) = self.slab.get_mut(token)
            && !entry.scheduled
        {
            entry.scheduled = true;
            self.scheduled.push(token);
        }
    }

    pub(super) fn has_scheduled(&self) -> bool {
        !self.scheduled.is_empty()
    }

    /// Drives every connection scheduled so far; those scheduled while
    /// driving (a read budget used up) wait for the next turn.
    pub(super) fn drive_scheduled(&mut self, now: Instant) {
        // The two lists trade places, each keeping its allocation: no turn
        // allocates, whether or not driving schedules connections again.
        let mut tokens = std::mem::take(&mut self.driving);
        std::mem::swap(&mut tokens, &mut self.scheduled);
        for token in tokens.drain(..) {
            self.drive(token, now);
        }
        self.driving = tokens;
    }

    /// What a socket event says about connection `token`.
    pub(super) fn on_socket_event(&mut self, token: usize, readiness: Readiness, now: Instant) {
        let Some(entry) = self.slab.get_mut(token) else {
            return;
        };
        entry.socket_in = entry
            .socket_in
            .on_event(readiness.readable, readiness.ended);
        match entry.phase {
            Phase::Connecting if readiness.readable || readiness.writable => {
                self.finish_connect(token, now);
            }
            Phase::Connecting => {}
            Phase::Open | Phase::Aborting => self.schedule(token),
        }
    }

    /// Starts a non-blocking connect to `addr`.
    pub(super) fn connect(
        &mut self,
        addr: SocketAddr,
        conn: Connection<S, C>,
        handler: H,
        now: Instant,
    ) -> io::Result<ConnId> {
        let opening = Opening {
            socket: TcpStream::connect(addr)?,
            peer: addr,
            origin: Origin::Connected,
            phase: Phase::Connecting,
        };
        let id = self.insert(opening, conn, handler, now)?;
        self.timers.push(Timer {
            at: now + self.config.connect_timeout,
            token: id.index,
            generation: id.generation,
            kind: TimerKind::Connect,
        });
        Ok(id)
    }

    /// A connecting socket became ready: connected, or failed.
    fn finish_connect(&mut self, token: usize, now: Instant) {
        let entry = &mut self.slab[token];
        let outcome = match entry.socket.take_error() {
            Ok(Some(e)) | Err(e) => Err(e),
            Ok(None) => entry.socket.peer_addr(),
        };
        match outcome {
            Ok(_) => {
                if let Err(e) = self.config.socket.apply_stream(&entry.socket) {
                    tracing::debug!(error = %e, "socket options");
                }
                self.open(token, now);
            }
            // Not connected yet: a spurious wake-up.
            Err(e) if e.kind() == io::ErrorKind::NotConnected => {}
            Err(e) => self.close(token, CloseReason::Io(e.kind())),
        }
    }

    /// Registers a new connection and gives it an id.
    pub(super) fn insert(
        &mut self,
        opening: Opening,
        mut conn: Connection<S, C>,
        handler: H,
        now: Instant,
    ) -> io::Result<ConnId> {
        let Opening {
            mut socket,
            peer,
            origin,
            phase,
        } = opening;
        let slot = self.slab.vacant_entry();
        let token = slot.key();
        let registered = if token >= LISTENER_BASE - 1024 {
            Err(io::Error::other("too many connections in one loop"))
        } else if self.ring.is_some() && phase == Phase::Open {
            // Its receives and sends go through the ring.
            Ok(())
        } else {
            self.registry.register(
                &mut socket,
                Token(token),
                Interest::READABLE | Interest::WRITABLE,
            )
        };
        // On failure an accepted connection's seat goes with `origin`.
        registered?;
        let id = ConnId {
            index: token,
            generation: ConnId::next_number(),
        };
        conn.set_waker(Arc::new(ConnWaker::new(self.handle.clone(), id)).into());
        #[cfg(feature = "metrics")]
        self.figures.opened();
        #[cfg(feature = "metrics")]
        let opened_handshaking = conn.stack().is_handshaking();
        slot.insert(Entry {
            id,
            socket,
            peer,
            conn,
            handler: Some(handler),
            origin,
            phase,
            socket_in: SocketIn::Waiting,
            reading: Reading::Open,
            writing: Writing::Open,
            read_size: MIN_READ,
            layer_deadline: None,
            last_activity: now,
            scheduled: false,
            ring_io: RingIo::new(),
            #[cfg(feature = "metrics")]
            opened_handshaking,
        });
        if let Some(idle) = self.config.idle_timeout {
            self.timers.push(Timer {
                at: now + idle,
                token,
                generation: id.generation,
                kind: TimerKind::Idle,
            });
        }
        Ok(id)
    }

    /// The connection is established: tell the handler and drive it.
    pub(super) fn open(&mut self, token: usize, now: Instant) {
        let entry = &mut self.slab[token];
        let connected = entry.phase == Phase::Connecting;
        entry.phase = Phase::Open;
        // Bytes may already wait in the socket.
        entry.socket_in = entry.socket_in.on_event(true, false);
        if self.ring.is_some() {
            // From now on the ring receives and sends; a connect was on epoll.
            if connected && let Err(e) = self.registry.deregister(&mut entry.socket) {
                tracing::debug!(error = %e, "deregister");
            }
            if let Err(e) = self.settle_ring(token) {
                self.close(token, CloseReason::Io(e.kind()));
                return;
            }
        }
        match self.callback(token, now, |h, cx| h.on_open(cx)) {
            Ok(()) => self.schedule(token),
            Err(reason) => self.close(token, reason),
        }
    }

    /// Runs a handler callback of connection `token` with a [`Context`].
    /// `Err` if the handler aborted the connection.
    pub(super) fn callback(
        &mut self,
        token: usize,
        now: Instant,
        f: impl FnOnce(&mut H, &mut Context<'_>),
    ) -> Result<(), CloseReason> {
        let entry = &mut self.slab[token];
        // The handler leaves its entry while it runs, so that its context
        // can reach every connection of the loop, its own included. Nothing
        // removes an entry during a callback (aborts wait for its end).
        let Some(mut handler) = entry.handler.take() else {
            return Ok(());
        };
        let mut cx = Context {
            id: entry.id,
            peer: entry.peer,
            now,
            event_loop: self,
        };
        f(&mut handler, &mut cx);
        let entry = &mut self.slab[token];
        entry.handler = Some(handler);
        match entry.phase {
            Phase::Aborting => Err(entry.abort_reason()),
            Phase::Connecting | Phase::Open => Ok(()),
        }
    }

    /// Begins the orderly close of every connection (graceful shutdown).
    pub(super) fn close_each(&mut self) {
        let tokens: Vec<usize> = self.slab.iter().map(|(t, _)| t).collect();
        for token in tokens {
            self.slab[token].conn.close();
            self.schedule(token);
        }
    }

    /// Queues a message on connection `id` with `send` (a copy or by
    /// reference) and tells the sender whether to go on.
    fn queue(
        &mut self,
        id: ConnId,
        send: impl FnOnce(&mut Connection<S, C>) -> Result<(), Error>,
    ) -> Result<Sent, Error> {
        let high = self.config.high_watermark;
        let Some(entry) = self.get(id) else {
            return Ok(Sent::Closed);
        };
        if entry.phase == Phase::Aborting || !entry.conn.is_write_open() {
            return Ok(Sent::Closed);
        }
        send(&mut entry.conn)?;
        let sent = if entry.conn.queued() < high {
            Sent::Queued
        } else {
            if entry.writing == Writing::Open {
                entry.writing = Writing::AboveHigh;
            }
            Sent::HighWatermark
        };
        // Another connection's bytes leave in this turn's write too.
        self.schedule(id.index);
        Ok(sent)
    }
}

impl<S: Layer + 'static, C: Codec + 'static, H: Handler> Loop for Connections<S, C, H> {
    fn send(&mut self, id: ConnId, msg: &[u8]) -> Result<Sent, Error> {
        self.queue(id, |conn| conn.send(msg))
    }

    fn send_bytes(&mut self, id: ConnId, msg: Bytes) -> Result<Sent, Error> {
        self.queue(id, |conn| conn.send_bytes(msg))
    }

    fn close(&mut self, id: ConnId) {
        if let Some(entry) = self.get(id) {
            entry.conn.close();
            self.schedule(id.index);
        }
    }

    fn abort(&mut self, id: ConnId) {
        if let Some(entry) = self.get(id) {
            entry.phase = Phase::Aborting;
            self.schedule(id.index);
        }
    }

    fn set_reading(&mut self, id: ConnId, on: bool) {
        let Some(entry) = self.get(id) else {
            return;
        };
        entry.reading = match (entry.reading, on) {
            (Reading::Open, false) => Reading::Paused,
            (Reading::Paused, true) => Reading::Open,
            (reading, _) => reading,
        };
        if on {
            self.schedule(id.index);
        }
    }

    fn queued(&self, id: ConnId) -> Option<usize> {
        self.get_ref(id).map(|e| e.conn.queued())
    }

    fn stats(&self, id: ConnId) -> Option<ConnectionStats> {
        self.get_ref(id).map(|e| e.conn.stats())
    }

    fn contains(&self, id: ConnId) -> bool {
        self.get_ref(id).is_some()
    }

    fn set_timer(&mut self, id: ConnId, at: Instant, timer: u64) {
        self.timers.push(Timer {
            at,
            token: id.index,
            generation: id.generation,
            kind: TimerKind::App(timer),
        });
    }

    fn connect(
        &mut self,
        addr: SocketAddr,
        parts: Box<dyn Any>,
        now: Instant,
    ) -> io::Result<ConnId> {
        let Ok(parts) = parts.downcast::<(Connection<S, C>, H)>() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "connect: the connection or handler is not of the types this loop drives",
            ));
        };
        let (conn, handler) = *parts;
        Self::connect(self, addr, conn, handler, now)
    }

    fn handle(&self) -> &Handle {
        &self.handle
    }
}
