//! Listening sockets: accepting, the connection limit, backing off after
//! errors such as EMFILE.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Token};
use netstrata_core::{Codec, Connection, Layer};

use super::entry::{Origin, Phase};
use super::timers::{Timer, TimerKind};
use super::{EventLoop, LISTENER_BASE, LOOP_TIMER, LoopState, Opening};
use crate::uring::{Completion, Op};
use crate::{Handle, Handler};

/// How long accepting pauses after an error such as EMFILE.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Makes the connection and handler of each accepted connection.
type MakeConn<S, C> = Arc<dyn Fn() -> Connection<S, C> + Send + Sync>;
type MakeHandler<H> = Arc<dyn Fn(SocketAddr) -> H + Send + Sync>;

/// Who takes a server's new connections: the connection limit across its
/// loops, and how many each loop holds, so that a loop that accepted a
/// connection while holding more than another hands it to that one.
/// `SO_REUSEPORT` spreads connections over the loops' listeners by a hash
/// of their addresses, unevenly for a few connections (16 over 2 loops
/// often split 10 to 6), and the busier loop sets the tail latency; this
/// evens them out, whichever listener the kernel chose.
#[derive(Debug)]
pub(crate) struct Admission {
    open: AtomicUsize,
    max: usize,
    /// Connections each loop holds (or has been handed and not yet taken).
    loads: Box<[AtomicUsize]>,
    /// The loops, to hand a connection to; set once they all run.
    handles: OnceLock<Vec<Handle>>,
}

impl Admission {
    /// At most `max` connections over `loops` loops.
    pub(crate) fn new(max: usize, loops: usize) -> Self {
        Self {
            open: AtomicUsize::new(0),
            max,
            loads: (0..loops.max(1)).map(|_| AtomicUsize::new(0)).collect(),
            handles: OnceLock::new(),
        }
    }

    /// The loops' handles, in the order of their indexes: from now on a
    /// loop hands connections to a less loaded one.
    pub(crate) fn set_handles(&self, handles: Vec<Handle>) {
        let _ = self.handles.set(handles);
    }

    /// How many connections each loop holds.
    pub(crate) fn loads(&self) -> Vec<usize> {
        self.loads
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .collect()
    }

    /// A seat for a connection loop `me` accepted, on the loop that
    /// should take it (`me` unless another holds fewer), or `None` at the
    /// limit.
    fn admit(self: &Arc<Self>, me: usize) -> Option<Seat> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()?;
        let load = |i: usize| self.loads[i].load(Ordering::Relaxed);
        let least = (0..self.loads.len())
            .min_by_key(|&i| (load(i), i != me))
            .unwrap_or(me);
        let to = match self.handles.get() {
            Some(_) if load(least) < load(me) => least,
            _ => me,
        };
        self.loads[to].fetch_add(1, Ordering::Relaxed);
        Some(Seat {
            admission: Arc::clone(self),
            on: to,
        })
    }
}

/// An accepted connection's place in its server's counts, on loop `on`;
/// given back when dropped (the connection closed, or was never taken).
#[derive(Debug)]
pub(crate) struct Seat {
    admission: Arc<Admission>,
    on: usize,
}

impl Seat {
    /// Moves the seat to loop `to` (a hand-over that did not happen).
    fn move_to(&mut self, to: usize) {
        let loads = &self.admission.loads;
        loads[self.on].fetch_sub(1, Ordering::Relaxed);
        loads[to].fetch_add(1, Ordering::Relaxed);
        self.on = to;
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.admission.loads[self.on].fetch_sub(1, Ordering::Relaxed);
        self.admission.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Whether an accept error passes at once (try the next connection).
fn transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted | io::ErrorKind::WouldBlock
    )
}

/// A connection one loop accepted and handed to another.
#[derive(Debug)]
pub(crate) struct Handover {
    socket: TcpStream,
    peer: SocketAddr,
    seat: Seat,
}

pub(super) struct Listener<S, C, H> {
    socket: TcpListener,
    make_conn: MakeConn<S, C>,
    make_handler: MakeHandler<H>,
    admission: Arc<Admission>,
    /// This loop's index among the server's loops.
    me: usize,
    /// Accepting is paused after an error such as EMFILE, until a timer.
    paused: bool,
    /// On io_uring: its multishot accept is in flight.
    armed: bool,
}

impl<S: Layer + 'static, C: Codec + 'static, H: Handler> EventLoop<S, C, H> {
    /// Accepts connections on `listener` (non-blocking): each gets a
    /// connection from `make_conn` and a handler from `make_handler`.
    pub fn listen(
        &mut self,
        listener: std::net::TcpListener,
        make_conn: impl Fn() -> Connection<S, C> + Send + Sync + 'static,
        make_handler: impl Fn(SocketAddr) -> H + Send + Sync + 'static,
    ) -> io::Result<()> {
        let admission = Arc::new(Admission::new(usize::MAX, 1));
        self.listen_shared(
            listener,
            Arc::new(make_conn),
            Arc::new(make_handler),
            admission,
            0,
        )
    }

    /// Accepts on `listener` as loop `me` of the loops `admission` counts.
    pub(crate) fn listen_shared(
        &mut self,
        listener: std::net::TcpListener,
        make_conn: MakeConn<S, C>,
        make_handler: MakeHandler<H>,
        admission: Arc<Admission>,
        me: usize,
    ) -> io::Result<()> {
        listener.set_nonblocking(true)?;
        let mut socket = TcpListener::from_std(listener);
        let token = Token(LISTENER_BASE - self.listeners.len());
        if self.conns.ring.is_none() {
            self.poll
                .registry()
                .register(&mut socket, token, Interest::READABLE)?;
        }
        self.listeners.push(Listener {
            socket,
            make_conn,
            make_handler,
            admission,
            me,
            paused: false,
            armed: false,
        });
        Ok(())
    }

    /// On io_uring: starts a multishot accept on each listener that has
    /// none and is not paused.
    pub(super) fn arm_listeners(&mut self) {
        let Some(ring) = self.conns.ring.as_mut() else {
            return;
        };
        if self.state != LoopState::Running {
            return;
        }
        for (index, listener) in self.listeners.iter_mut().enumerate() {
            if listener.armed || listener.paused {
                continue;
            }
            match ring.accept(listener.socket.as_raw_fd(), index) {
                Ok(()) => listener.armed = true,
                Err(e) => tracing::warn!(error = %e, "io_uring accept"),
            }
        }
    }

    /// On io_uring: what an accept completion of listener `index` brought.
    pub(super) fn accepted(&mut self, index: usize, completion: Completion, now: Instant) {
        let Some(listener) = self.listeners.get_mut(index) else {
            return;
        };
        if !completion.more {
            listener.armed = false;
        }
        if let Some(stream) = completion.stream {
            let socket = TcpStream::from_std(stream);
            match socket.peer_addr() {
                Ok(peer) => self.admit(index, socket, peer, now),
                Err(e) => tracing::debug!(error = %e, "accepted connection without a peer"),
            }
            return;
        }
        let e = io::Error::from_raw_os_error(-completion.result);
        if completion.result == -libc::ECANCELED || transient(&e) {
            return;
        }
        if completion.more
            && let Some(ring) = self.conns.ring.as_mut()
            && let Err(e) = ring.cancel(Op::Accept {
                index: index as u32,
            })
        {
            tracing::debug!(error = %e, "io_uring cancel");
        }
        self.pause_accepting(index, &e, now);
    }

    pub(super) fn accept(&mut self, index: usize, now: Instant) {
        loop {
            let Some(listener) = self.listeners.get_mut(index) else {
                return;
            };
            if listener.paused {
                return;
            }
            match listener.socket.accept() {
                Ok((socket, peer)) => self.admit(index, socket, peer, now),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if transient(&e) => {}
                Err(e) => {
                    self.pause_accepting(index, &e, now);
                    return;
                }
            }
        }
    }

    /// A connection listener `index` accepted: within the server's limit,
    /// on the loop that should take it.
    fn admit(&mut self, index: usize, socket: TcpStream, peer: SocketAddr, now: Instant) {
        let Some(listener) = self.listeners.get(index) else {
            return;
        };
        let me = listener.me;
        let Some(seat) = listener.admission.admit(me) else {
            tracing::debug!(%peer, "connection limit reached; refusing");
            return;
        };
        let handover = Handover { socket, peer, seat };
        let to = handover.seat.on;
        let kept = match listener.admission.handles.get().and_then(|h| h.get(to)) {
            Some(handle) if to != me => handle.adopt(handover).err().map(|mut back| {
                // That loop has stopped or is swamped: keep it.
                back.seat.move_to(me);
                back
            }),
            _ => Some(handover),
        };
        if let Some(handover) = kept {
            self.take(handover, index, now);
        }
    }

    /// EMFILE, ENFILE, ENOBUFS, ENOMEM: accepting again at once would fail
    /// again; pause instead of spinning.
    fn pause_accepting(&mut self, index: usize, e: &io::Error, now: Instant) {
        let Some(listener) = self.listeners.get_mut(index) else {
            return;
        };
        tracing::warn!(error = %e, "accept failed; pausing accepts");
        listener.paused = true;
        self.conns.timers.push(Timer {
            at: now + ACCEPT_BACKOFF,
            token: LOOP_TIMER,
            generation: index as u64,
            kind: TimerKind::Accept,
        });
    }

    /// Opens an accepted connection on this loop, with the connection and
    /// handler listener `index` makes.
    fn take(&mut self, handover: Handover, index: usize, now: Instant) {
        let Handover { socket, peer, seat } = handover;
        let Some(listener) = self.listeners.get(index) else {
            tracing::debug!(%peer, "the loop no longer accepts; closing");
            return;
        };
        let conn = (listener.make_conn)();
        let handler = (listener.make_handler)(peer);
        if let Err(e) = self.conns.config.socket.apply_stream(&socket) {
            tracing::debug!(%peer, error = %e, "socket options");
        }
        let opening = Opening {
            socket,
            peer,
            origin: Origin::Accepted(seat),
            phase: Phase::Open,
        };
        match self.conns.insert(opening, conn, handler, now) {
            Ok(id) => self.conns.open(id.index, now),
            Err(e) => tracing::debug!(%peer, error = %e, "cannot take the connection"),
        }
    }

    /// A connection another loop of the server accepted for this one
    /// (see [`Admission`]); closed at once if this loop is shutting down.
    pub(super) fn adopt(&mut self, handover: Handover, now: Instant) {
        if self.state == LoopState::Running {
            self.take(handover, 0, now);
        }
    }

    /// The backoff after an accept error has passed.
    pub(super) fn resume_accepting(&mut self, index: usize, now: Instant) {
        if let Some(listener) = self.listeners.get_mut(index) {
            listener.paused = false;
            // Edge-triggered: connections waiting in the backlog raise no
            // new event. (On io_uring the next turn arms the accept again.)
            if self.conns.ring.is_none() {
                self.accept(index, now);
            }
        }
    }

    /// Closes every listening socket (graceful shutdown).
    pub(super) fn stop_listening(&mut self) {
        for (index, listener) in self.listeners.iter_mut().enumerate() {
            match self.conns.ring.as_mut() {
                // The kernel's reference closes the socket once cancelled.
                Some(ring) if listener.armed => {
                    let _ = ring.cancel(Op::Accept {
                        index: index as u32,
                    });
                }
                Some(_) => {}
                None => {
                    let _ = self.poll.registry().deregister(&mut listener.socket);
                }
            }
        }
        for listener in self.listeners.drain(..) {
            if let Some(ring) = self.conns.ring.as_mut() {
                ring.close_later(listener.socket.into(), None);
            }
        }
    }
}
