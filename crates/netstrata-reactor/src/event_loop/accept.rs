//! Listening sockets: accepting, the connection limit, backing off after
//! errors such as EMFILE.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Interest, Token};
use netstrata_core::{Codec, Connection, Layer};

use super::entry::{Origin, Phase};
use super::timers::{Timer, TimerKind};
use super::{EventLoop, LISTENER_BASE, LOOP_TIMER, Opening};
use crate::Handler;

/// How long accepting pauses after an error such as EMFILE.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Makes the connection and handler of each accepted connection.
type MakeConn<S, C> = Arc<dyn Fn() -> Connection<S, C> + Send + Sync>;
type MakeHandler<H> = Arc<dyn Fn(SocketAddr) -> H + Send + Sync>;

/// A count of open connections shared by the loops of a server.
#[derive(Debug)]
pub(crate) struct ConnLimit {
    pub(crate) open: AtomicUsize,
    pub(crate) max: usize,
}

impl ConnLimit {
    fn try_acquire(&self) -> bool {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok()
    }

    pub(super) fn release(&self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
    }
}

pub(super) struct Listener<S, C, H> {
    socket: TcpListener,
    make_conn: MakeConn<S, C>,
    make_handler: MakeHandler<H>,
    limit: Arc<ConnLimit>,
    /// Accepting is paused after an error such as EMFILE, until a timer.
    paused: bool,
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
        let limit = Arc::new(ConnLimit {
            open: AtomicUsize::new(0),
            max: usize::MAX,
        });
        self.listen_shared(listener, Arc::new(make_conn), Arc::new(make_handler), limit)
    }

    pub(crate) fn listen_shared(
        &mut self,
        listener: std::net::TcpListener,
        make_conn: MakeConn<S, C>,
        make_handler: MakeHandler<H>,
        limit: Arc<ConnLimit>,
    ) -> io::Result<()> {
        listener.set_nonblocking(true)?;
        let mut socket = TcpListener::from_std(listener);
        let token = Token(LISTENER_BASE - self.listeners.len());
        self.poll
            .registry()
            .register(&mut socket, token, Interest::READABLE)?;
        self.listeners.push(Listener {
            socket,
            make_conn,
            make_handler,
            limit,
            paused: false,
        });
        Ok(())
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
                Ok((socket, peer)) => {
                    if !listener.limit.try_acquire() {
                        tracing::debug!(%peer, "connection limit reached; refusing");
                        continue;
                    }
                    let opening = Opening {
                        socket,
                        peer,
                        origin: Origin::Accepted(Arc::clone(&listener.limit)),
                        phase: Phase::Open,
                    };
                    let conn = (listener.make_conn)();
                    let handler = (listener.make_handler)(peer);
                    if let Err(e) = self.conns.config.socket.apply_stream(&opening.socket) {
                        tracing::debug!(%peer, error = %e, "socket options");
                    }
                    match self.conns.insert(opening, conn, handler, now) {
                        Ok(id) => self.conns.open(id.index, now),
                        Err(e) => tracing::debug!(%peer, error = %e, "cannot take the connection"),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) => {}
                Err(e) => {
                    // EMFILE, ENFILE, ENOBUFS, ENOMEM: accepting again at once
                    // would fail again; pause instead of spinning.
                    tracing::warn!(error = %e, "accept failed; pausing accepts");
                    listener.paused = true;
                    self.conns.timers.push(Timer {
                        at: now + ACCEPT_BACKOFF,
                        token: LOOP_TIMER,
                        generation: index as u64,
                        kind: TimerKind::Accept,
                    });
                    return;
                }
            }
        }
    }

    /// The backoff after an accept error has passed.
    pub(super) fn resume_accepting(&mut self, index: usize, now: Instant) {
        if let Some(listener) = self.listeners.get_mut(index) {
            listener.paused = false;
            // Edge-triggered: connections waiting in the backlog raise no new event.
            self.accept(index, now);
        }
    }

    /// Closes every listening socket (graceful shutdown).
    pub(super) fn stop_listening(&mut self) {
        for listener in &mut self.listeners {
            let _ = self.poll.registry().deregister(&mut listener.socket);
        }
        self.listeners.clear();
    }
}
