//! One event loop: a `mio::Poll`, the connections, timers and a waker.
//!
//! The modules follow a byte's path through the loop:
//!
//! - [`accept`]: listeners hand over new connections (and `connect` in
//!   [`connections`] opens outgoing ones);
//! - [`drive`]: each connection with work this turn is read ([`read`]),
//!   its stack runs and its messages go to the handler, its output is
//!   written ([`write`]), and what has ended is closed ([`close`]);
//! - [`connections`]: the connections, and what a handler's `Context`
//!   reaches of them;
//! - [`timers`]: layer deadlines, timeouts, application timers;
//! - [`commands`]: work sent from other threads through a `Handle`;
//! - [`datagrams`]: UDP sockets.
//!
//! A connection's state is in [`entry`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};
use std::{fmt, io};

use mio::net::TcpStream;
use mio::{Events, Poll, Token, Waker};
use netstrata_core::{Codec, Connection, Layer};

use crate::closes::CloseCounts;
use crate::handle::{Command, ConnId, Handle, Queue};
use crate::handler::{CloseReason, Handler};
use crate::uring::{Completion, Op, Ring};
use crate::{Driver, LoopConfig};

mod accept;
mod close;
mod commands;
mod connections;
mod datagrams;
mod drive;
mod entry;
#[cfg(feature = "metrics")]
mod figures;
mod read;
mod ring;
mod timers;
mod write;

use accept::Listener;
pub(crate) use accept::{Admission, Handover};
use connections::Connections;
use datagrams::Datagrams;
use entry::{Origin, Phase};
use timers::{Timer, TimerKind};

const WAKER: Token = Token(usize::MAX);
/// Listener tokens count down from here; connection tokens are slab keys.
const LISTENER_BASE: usize = usize::MAX / 2;
/// UDP socket tokens count down from here.
const UDP_BASE: usize = LISTENER_BASE - 512;
/// Token of loop-wide timers (accept backoff, drain deadline, buffer sweep).
const LOOP_TIMER: usize = usize::MAX;

/// What one event says about a socket.
#[derive(Debug, Clone, Copy)]
struct Readiness {
    readable: bool,
    writable: bool,
    /// The peer's FIN or an error: no further edge will come for it.
    ended: bool,
}

/// Whether the loop takes new work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LoopState {
    Running,
    /// Graceful shutdown: no accepting, connections closing, until the deadline.
    Draining {
        deadline: Instant,
    },
    Stopped,
}

/// One event loop: drives many [`Connection`]s over non-blocking sockets on
/// the thread that calls [`run`](Self::run).
///
/// Per turn it reads what is ready (bounded per connection), hands every
/// decoded message to the connection's [`Handler`], then writes each
/// connection that has output once: all messages sent in the turn leave in
/// one flush of the stack and one `write`.
pub struct EventLoop<S, C, H> {
    poll: Poll,
    events: Events,
    /// This turn's events.
    event_tokens: Vec<(Token, Readiness)>,
    conns: Connections<S, C, H>,
    listeners: Vec<Listener<S, C, H>>,
    udp: Datagrams,
    rx: Receiver<Command>,
    state: LoopState,
    /// On io_uring: the epoll has events for the next turn (a completion
    /// said so, or the last poll filled the buffer).
    epoll_ready: bool,
    /// On io_uring: this turn's accept and epoll completions.
    completions: Vec<Completion>,
}

// Sockets, handlers and queues are not `Debug`: the counts say what the
// loop holds.
impl<S: Layer + 'static, C: Codec + 'static, H: Handler> fmt::Debug for EventLoop<S, C, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventLoop")
            .field("state", &self.state)
            .field("connections", &self.conns.len())
            .field("listeners", &self.listeners.len())
            .field("udp_sockets", &self.udp.len())
            .finish_non_exhaustive()
    }
}

impl<S: Layer + 'static, C: Codec + 'static, H: Handler> EventLoop<S, C, H> {
    /// A loop with `config`.
    pub fn new(config: LoopConfig) -> io::Result<Self> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (tx, rx) = mpsc::channel();
        let ring = Self::ring(&config, &poll);
        let handle = Handle {
            tx,
            waker,
            queue: Arc::new(Queue::new(config.command_queue)),
            driver: match ring {
                Some(_) => Driver::Uring,
                None => Driver::Epoll,
            },
        };
        let udp = Datagrams::new(config.datagram_buffer, config.datagram_io);
        #[cfg(feature = "metrics")]
        let metrics_every = config.metrics_every;
        #[cfg_attr(not(feature = "metrics"), allow(unused_mut))]
        let mut conns = Connections::new(poll.registry().try_clone()?, ring, handle, config);
        #[cfg(feature = "metrics")]
        conns.timers.push(Timer {
            at: Instant::now() + metrics_every,
            token: LOOP_TIMER,
            generation: 0,
            kind: TimerKind::Figures,
        });
        Ok(Self {
            poll,
            events: Events::with_capacity(1024),
            event_tokens: Vec::new(),
            conns,
            listeners: Vec::new(),
            udp,
            rx,
            state: LoopState::Running,
            epoll_ready: true,
            completions: Vec::new(),
        })
    }

    /// The ring of a loop `config` puts on io_uring, polling the loop's
    /// epoll; `None` on epoll, and where io_uring is unavailable (logged).
    fn ring(config: &LoopConfig, poll: &Poll) -> Option<Ring> {
        use std::os::fd::AsRawFd;
        if config.driver.resolve() != Driver::Uring {
            return None;
        }
        let (count, len) = config.uring_buffers;
        let one_thread = !config.uring_any_thread;
        let ring =
            Ring::new(count, len, one_thread, config.uring_fails_with).and_then(|mut ring| {
                ring.poll_epoll(poll.as_raw_fd())?;
                Ok(ring)
            });
        match ring {
            Ok(ring) => Some(ring),
            Err(e) => {
                tracing::warn!(error = %e, "io_uring is unavailable; the loop runs on epoll");
                None
            }
        }
    }

    /// The driver the loop runs on: [`Driver::Uring`] only where io_uring
    /// was asked for and could be set up.
    pub fn driver(&self) -> Driver {
        self.conns.handle.driver
    }

    /// On io_uring: receives that found every buffer of the ring taken
    /// and waited for the next turn, since the loop began (0 on epoll).
    pub fn uring_buffer_exhaustions(&self) -> u64 {
        self.conns.ring.as_ref().map_or(0, Ring::exhausted)
    }

    /// A handle to send work to this loop from other threads.
    pub fn handle(&self) -> Handle {
        self.conns.handle.clone()
    }

    /// How many connections the loop holds.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Closes of this loop's connections so far, by kind (shared with the
    /// other loops when the loop belongs to a [`crate::Server`]).
    pub fn close_counts(&self) -> CloseCounts {
        self.conns.closes.clone()
    }

    /// Counts this loop's closes in `counts`, with those of other loops.
    pub(crate) fn count_closes_in(&mut self, counts: CloseCounts) {
        self.conns.closes = counts;
    }

    /// Starts a non-blocking connect to `addr` with `conn` and `handler`.
    /// [`Handler::on_open`] runs once connected; a failure or the connect
    /// timeout ends in [`Handler::on_close`]. (From a handler, the same is
    /// [`crate::Context::connect`].)
    pub fn connect(
        &mut self,
        addr: SocketAddr,
        conn: Connection<S, C>,
        handler: H,
    ) -> io::Result<ConnId> {
        self.conns.connect(addr, conn, handler, Instant::now())
    }

    /// Runs until stopped ([`Handle::stop`], [`Handle::shutdown`]).
    pub fn run(&mut self) -> io::Result<()> {
        while !self.is_stopped() {
            self.turn_then(None, false)?;
        }
        self.finish();
        Ok(())
    }

    /// Whether the loop has stopped: it takes no more turns.
    pub(crate) fn is_stopped(&self) -> bool {
        self.state == LoopState::Stopped
    }

    /// Stops the loop at once (its turn failed): [`Self::finish`] closes
    /// what it holds.
    pub(crate) fn stop(&mut self) {
        self.state = LoopState::Stopped;
    }

    /// Closes what is left once the loop has stopped.
    pub(crate) fn finish(&mut self) {
        self.conns.close_all(CloseReason::Shutdown);
        // On io_uring the sockets close once their cancellations are in.
        if let Some(ring) = self.conns.ring.as_mut()
            && let Err(e) = ring.submit_and_wait(Some(Duration::ZERO))
        {
            tracing::debug!(error = %e, "io_uring submit at the loop's end");
        }
    }

    /// The loop's epoll descriptor, readable while events wait for a turn:
    /// a scheduler of many loops waits on these.
    pub(crate) fn poll_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        match &self.conns.ring {
            Some(ring) => ring.fd(),
            None => self.poll.as_raw_fd(),
        }
    }

    /// Whether the last turn left work (a read budget used up, datagrams
    /// waiting): the next turn should not wait for events.
    pub(crate) fn has_work_left(&self) -> bool {
        self.conns.has_scheduled()
            || self.udp.has_ready()
            || (self.conns.ring.is_some() && self.epoll_ready)
    }

    /// Whether the last turn's poll filled the events buffer: more events
    /// may wait in the epoll, and an epoll holding this one's descriptor
    /// gets no new edge for them.
    pub(crate) fn took_full_batch(&self) -> bool {
        self.conns.ring.is_none() && self.events_filled()
    }

    /// Whether the last poll of the epoll filled the events buffer (more
    /// events may wait).
    fn events_filled(&self) -> bool {
        self.events.iter().count() == self.events.capacity()
    }

    /// The loop's next deadline (layer deadlines, timeouts, timers).
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.conns.timers.next()
    }

    /// Runs one turn: waits for events at most `timeout` (and not past the
    /// next deadline), then processes them. For embedding the loop.
    pub fn turn(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.turn_then(timeout, true)
    }

    /// [`Self::turn`]; on io_uring, `submit` says whether what the turn
    /// queued is submitted before it returns (else the next turn's wait
    /// submits it, in the same system call).
    fn turn_then(&mut self, timeout: Option<Duration>, submit: bool) -> io::Result<()> {
        let now = Instant::now();
        let mut wait = self
            .next_deadline()
            .map(|t| t.saturating_duration_since(now));
        if self.has_work_left() {
            // Sockets with work left from the last turn (read budgets).
            wait = Some(Duration::ZERO);
        }
        if let Some(limit) = timeout {
            wait = Some(wait.map_or(limit, |w| w.min(limit)));
        }
        let now = if self.conns.ring.is_some() {
            self.wait_ring(wait)?
        } else {
            self.poll_epoll(wait)?;
            let now = Instant::now();
            self.dispatch_events(now);
            now
        };
        self.run_timers(now);
        self.serve_datagrams(now);
        self.conns.drive_scheduled(now);
        if submit && self.conns.ring.is_some() {
            self.arm_listeners();
            if let Some(ring) = self.conns.ring.as_mut() {
                ring.submit_and_wait(Some(Duration::ZERO))?;
            }
        }
        if let LoopState::Draining { .. } = self.state
            && self.conns.len() == 0
        {
            self.state = LoopState::Stopped;
        }
        Ok(())
    }

    /// Waits for epoll events at most `wait`.
    fn poll_epoll(&mut self, wait: Option<Duration>) -> io::Result<()> {
        match self.poll.poll(&mut self.events, wait) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// On io_uring: submits what the last turn queued, waits for
    /// completions at most `wait`, and hands them out; polls the epoll
    /// (without waiting) when it has events.
    fn wait_ring(&mut self, wait: Option<Duration>) -> io::Result<Instant> {
        self.arm_listeners();
        if let Some(ring) = self.conns.ring.as_mut() {
            ring.submit_and_wait(wait)?;
        }
        let now = Instant::now();
        let mut completions = std::mem::take(&mut self.completions);
        if let Some(mut ring) = self.conns.ring.take() {
            self.conns.complete(&mut ring, now, &mut completions);
            self.conns.ring = Some(ring);
        }
        for completion in completions.drain(..) {
            match completion.op {
                Op::Epoll => {
                    self.epoll_ready = true;
                    let epoll = self.poll_fd_epoll();
                    if !completion.more
                        && let Some(ring) = self.conns.ring.as_mut()
                    {
                        ring.poll_epoll(epoll)?;
                    }
                }
                Op::Accept { index } => self.accepted(index as usize, completion, now),
                _ => {}
            }
        }
        self.completions = completions;
        if std::mem::take(&mut self.epoll_ready) {
            self.poll_epoll(Some(Duration::ZERO))?;
            self.epoll_ready = self.events_filled();
            self.dispatch_events(now);
        }
        Ok(now)
    }

    /// The epoll descriptor itself (on io_uring [`Self::poll_fd`] is the
    /// ring's).
    fn poll_fd_epoll(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.poll.as_raw_fd()
    }

    /// Hands this turn's events to the listeners, UDP sockets, command
    /// queue and connections they concern.
    fn dispatch_events(&mut self, now: Instant) {
        let mut tokens = std::mem::take(&mut self.event_tokens);
        tokens.extend(self.events.iter().map(|e| {
            let ended = e.is_read_closed() || e.is_error();
            let readiness = Readiness {
                readable: e.is_readable() || ended,
                writable: e.is_writable() || e.is_error(),
                ended,
            };
            (e.token(), readiness)
        }));
        for (token, readiness) in tokens.drain(..) {
            match token {
                WAKER => self.run_commands(now),
                Token(t) if t > LISTENER_BASE - self.listeners.len() && t <= LISTENER_BASE => {
                    self.accept(LISTENER_BASE - t, now);
                }
                Token(t) if t > UDP_BASE - self.udp.len() && t <= UDP_BASE => {
                    self.udp.mark_ready(UDP_BASE - t);
                }
                Token(t) => self.conns.on_socket_event(t, readiness, now),
            }
        }
        // Keep the allocation for the next turn.
        self.event_tokens = tokens;
    }

    /// Stops accepting and begins closing every connection; the loop stops
    /// once all are closed or at `deadline`.
    fn begin_drain(&mut self, deadline: Instant) {
        self.stop_listening();
        self.conns.close_each();
        self.state = LoopState::Draining { deadline };
        self.conns.timers.push(Timer {
            at: deadline,
            token: LOOP_TIMER,
            generation: 0,
            kind: TimerKind::Drain,
        });
    }
}

/// A new connection's socket and where it came from.
struct Opening {
    socket: TcpStream,
    peer: SocketAddr,
    origin: Origin,
    phase: Phase,
}
