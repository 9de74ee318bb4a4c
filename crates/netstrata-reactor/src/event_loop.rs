//! One event loop: a `mio::Poll`, a slab of connections, timers and a waker.

use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mio::net::{TcpStream, UdpSocket};
use mio::{Events, Interest, Poll, Token, Waker};
use netstrata_core::{Codec, Connection, Layer, State};
use slab::Slab;

use crate::LoopConfig;
use crate::closes::{self, CloseCounts};
use crate::handle::{Command, ConnId, ConnWaker, Handle, Queue};
use crate::handler::{CloseReason, Context, Handler, Requests};
use crate::socket;
use crate::timers::{Timer, TimerKind, Timers};
use crate::udp::{DatagramHandler, Udp};

mod accept;
mod timing;

pub(crate) use accept::ConnLimit;
use accept::Listener;

const WAKER: Token = Token(usize::MAX);
/// Listener tokens count down from here; connection tokens are slab keys.
const LISTENER_BASE: usize = usize::MAX / 2;
/// UDP socket tokens count down from here.
const UDP_BASE: usize = LISTENER_BASE - 512;
/// Datagrams received from one socket per turn before others are served.
const UDP_BUDGET: usize = 256;
/// Token of loop-wide timers (accept backoff, drain deadline, buffer sweep).
const LOOP_TIMER: usize = usize::MAX;
/// How often connections idle since the last sweep give back their buffers.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// Commands run per turn before sockets are served again; the rest wait
/// for the next turn.
const COMMAND_BUDGET: usize = 1024;
/// A connection's first read, and the smallest: what a read reserves stays
/// allocated until the messages cut from it are dropped, so reads start
/// small and grow only as the peer sends more.
const MIN_READ: usize = 512;

/// Where a connection is in the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// A non-blocking connect is under way.
    Connecting,
    /// Established; `on_open` has run.
    Open,
}

struct Entry<S, C, H> {
    socket: TcpStream,
    conn: Connection<S, C>,
    handler: H,
    peer: SocketAddr,
    generation: u64,
    phase: Phase,
    /// The socket may have bytes to read (edge-triggered readiness).
    readable: bool,
    /// The peer's FIN (or an error) was seen: read until the end, even
    /// after a short read.
    read_ended: bool,
    /// Bytes the next read asks for (see [`next_read_size`]).
    read_size: usize,
    /// The write side was shut down (FIN sent).
    fin_sent: bool,
    /// `send` reported the high watermark; `on_writable` is owed.
    above_high: bool,
    /// `on_peer_closed` has run.
    peer_close_told: bool,
    /// The layer deadline a timer is registered for.
    layer_deadline: Option<Instant>,
    last_activity: Instant,
    /// Counted against a server's connection limit.
    limit: Option<Arc<ConnLimit>>,
    /// A listener accepted it (the peer is a client of ours), rather than
    /// our connecting out: only such closes may warn (see `closes`).
    accepted: bool,
    /// Already in the list of connections to process this turn.
    queued: bool,
}

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
    conns: Slab<Entry<S, C, H>>,
    listeners: Vec<Listener<S, C, H>>,
    udp: Vec<Udp>,
    /// UDP sockets whose receive budget ran out with datagrams left.
    udp_ready: Vec<usize>,
    timers: Timers,
    /// The loop's own handle: what [`Self::handle`] clones and handler
    /// contexts lend.
    handle: Handle,
    rx: Receiver<Command>,
    config: LoopConfig,
    /// Where UDP datagrams are received (`read_chunk` bytes), made when
    /// the first UDP socket is bound: connections read into their own
    /// buffers.
    scratch: Box<[u8]>,
    /// Connections to process this turn.
    ready: Vec<usize>,
    /// This turn's events.
    event_tokens: Vec<(Token, Readiness)>,
    state: LoopState,
    /// Closes by kind, shared with the other loops of a server.
    closes: CloseCounts,
}

impl<S: Layer, C: Codec, H: Handler> EventLoop<S, C, H> {
    /// A loop with `config`.
    pub fn new(config: LoopConfig) -> io::Result<Self> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (tx, rx) = mpsc::channel();
        let mut timers = Timers::default();
        timers.push(Timer {
            at: Instant::now() + SWEEP_EVERY,
            token: LOOP_TIMER,
            generation: 0,
            kind: TimerKind::Sweep,
        });
        Ok(Self {
            poll,
            events: Events::with_capacity(1024),
            conns: Slab::new(),
            listeners: Vec::new(),
            udp: Vec::new(),
            udp_ready: Vec::new(),
            timers,
            handle: Handle {
                tx,
                waker,
                queue: Arc::new(Queue::new(config.command_queue)),
            },
            rx,
            scratch: Box::default(),
            config,
            ready: Vec::new(),
            event_tokens: Vec::new(),
            state: LoopState::Running,
            closes: CloseCounts::default(),
        })
    }

    /// A handle to send work to this loop from other threads.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// How many connections the loop holds.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Closes of this loop's connections so far, by kind (shared with the
    /// other loops when the loop belongs to a [`crate::Server`]).
    pub fn close_counts(&self) -> CloseCounts {
        self.closes.clone()
    }

    /// Counts this loop's closes in `counts`, with those of other loops.
    pub(crate) fn count_closes_in(&mut self, counts: CloseCounts) {
        self.closes = counts;
    }

    /// Serves datagrams on `socket` (made non-blocking) with `handler`.
    pub fn bind_udp(
        &mut self,
        socket: std::net::UdpSocket,
        handler: impl DatagramHandler,
    ) -> io::Result<SocketAddr> {
        if self.udp.len() >= 256 {
            return Err(io::Error::other("at most 256 UDP sockets per loop"));
        }
        socket.set_nonblocking(true)?;
        let addr = socket.local_addr()?;
        let mut socket = UdpSocket::from_std(socket);
        let token = Token(UDP_BASE - self.udp.len());
        self.poll.registry().register(
            &mut socket,
            token,
            Interest::READABLE | Interest::WRITABLE,
        )?;
        self.udp.push(Udp {
            socket,
            handler: Box::new(handler),
            queue: Default::default(),
            timers: Vec::new(),
        });
        if self.scratch.is_empty() {
            self.scratch = vec![0; self.config.read_chunk].into_boxed_slice();
        }
        Ok(addr)
    }

    /// Starts a non-blocking connect to `addr` with `conn` and `handler`.
    /// [`Handler::on_open`] runs once connected; a failure or the connect
    /// timeout ends in [`Handler::on_close`].
    pub fn connect(
        &mut self,
        addr: SocketAddr,
        conn: Connection<S, C>,
        handler: H,
    ) -> io::Result<ConnId> {
        let socket = TcpStream::connect(addr)?;
        let now = Instant::now();
        let id = self.insert(socket, addr, conn, handler, Phase::Connecting, None, now)?;
        self.timers.push(Timer {
            at: now + self.config.connect_timeout,
            token: id.index,
            generation: id.generation,
            kind: TimerKind::Connect,
        });
        Ok(id)
    }

    /// Runs until stopped ([`Handle::stop`], [`Handle::shutdown`]).
    pub fn run(&mut self) -> io::Result<()> {
        while self.state != LoopState::Stopped {
            self.turn(None)?;
        }
        self.drop_all(CloseReason::Shutdown);
        Ok(())
    }

    /// Runs one turn: waits for events at most `timeout` (and not past the
    /// next deadline), then processes them. For embedding the loop.
    pub fn turn(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let now = Instant::now();
        let mut wait = self.timers.next().map(|t| t.saturating_duration_since(now));
        if !self.ready.is_empty() || !self.udp_ready.is_empty() {
            // Sockets with work left from the last turn (read budgets).
            wait = Some(Duration::ZERO);
        }
        if let Some(limit) = timeout {
            wait = Some(wait.map_or(limit, |w| w.min(limit)));
        }
        match self.poll.poll(&mut self.events, wait) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        let now = Instant::now();
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
                    self.udp_ready.push(UDP_BASE - t);
                }
                Token(t) => self.on_socket_event(t, readiness, now),
            }
        }
        // Keep the allocation for the next turn.
        self.event_tokens = tokens;
        self.run_timers(now);
        let mut udp_ready = std::mem::take(&mut self.udp_ready);
        udp_ready.sort_unstable();
        udp_ready.dedup();
        for index in udp_ready {
            let more = self.udp[index].ready(&mut self.scratch, UDP_BUDGET, now);
            self.take_udp_timers(index);
            if more {
                self.udp_ready.push(index);
            }
        }
        let mut ready = std::mem::take(&mut self.ready);
        for token in ready.drain(..) {
            self.process(token, now);
        }
        if self.ready.is_empty() {
            // Keep the allocation for the next turn.
            self.ready = ready;
        }
        if let LoopState::Draining { .. } = self.state
            && self.conns.is_empty()
        {
            self.state = LoopState::Stopped;
        }
        Ok(())
    }

    /// Moves the timers UDP socket `index`'s handler set into the loop's.
    fn take_udp_timers(&mut self, index: usize) {
        for (at, id) in self.udp[index].timers.drain(..) {
            self.timers.push(Timer {
                at,
                token: LOOP_TIMER,
                generation: index as u64,
                kind: TimerKind::Datagram(id),
            });
        }
    }

    fn run_commands(&mut self, now: Instant) {
        // Commands sent from here on wake the loop again.
        self.handle.queue.woken.store(false, Ordering::Release);
        for _ in 0..COMMAND_BUDGET {
            let Ok(command) = self.rx.try_recv() else {
                return;
            };
            self.handle.queue.taken(&command);
            match command {
                Command::Send(id, msg) => {
                    // Like a closed connection, one the application has begun
                    // to close takes no more: its stream ends where it closed.
                    if self.live(id).is_some_and(|e| e.conn.is_write_open()) {
                        self.handle_send(id.index, now, msg);
                    }
                }
                Command::Wake(id) => self.wake(id),
                Command::LayerWake(waker) => {
                    waker.pending.store(false, Ordering::Release);
                    self.wake(waker.id);
                }
                Command::Close(id) => {
                    if let Some(entry) = self.live(id) {
                        entry.conn.close();
                        self.mark(id.index);
                    }
                }
                Command::Abort(id) => {
                    if self.live(id).is_some() {
                        self.remove(id.index, CloseReason::Aborted);
                    }
                }
                Command::Shutdown(grace) => self.begin_drain(now + grace),
                Command::Stop => self.state = LoopState::Stopped,
            }
        }
        // Budget used up: come back next turn without waiting.
        if !self.handle.queue.woken.swap(true, Ordering::AcqRel) {
            let _ = self.handle.waker.wake();
        }
    }

    /// A connection's layers changed outside its events: give its stack a
    /// pass each way this turn.
    fn wake(&mut self, id: ConnId) {
        if let Some(entry) = self.live(id) {
            entry.conn.handle_wake();
            self.mark(id.index);
        }
    }

    fn live(&mut self, id: ConnId) -> Option<&mut Entry<S, C, H>> {
        self.conns
            .get_mut(id.index)
            .filter(|e| e.generation == id.generation)
    }

    fn mark(&mut self, token: usize) {
        if let Some(entry) = self.conns.get_mut(token)
            && !entry.queued
        {
            entry.queued = true;
            self.ready.push(token);
        }
    }

    fn begin_drain(&mut self, deadline: Instant) {
        self.stop_listening();
        let tokens: Vec<usize> = self.conns.iter().map(|(t, _)| t).collect();
        for token in tokens {
            self.conns[token].conn.close();
            self.mark(token);
        }
        self.state = LoopState::Draining { deadline };
        self.timers.push(Timer {
            at: deadline,
            token: LOOP_TIMER,
            generation: 0,
            kind: TimerKind::Drain,
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn insert(
        &mut self,
        mut socket: TcpStream,
        peer: SocketAddr,
        mut conn: Connection<S, C>,
        handler: H,
        phase: Phase,
        limit: Option<Arc<ConnLimit>>,
        now: Instant,
    ) -> io::Result<ConnId> {
        let handle = self.handle();
        let slot = self.conns.vacant_entry();
        let token = slot.key();
        if token >= LISTENER_BASE - 1024 {
            return Err(io::Error::other("too many connections in one loop"));
        }
        if let Err(e) = self.poll.registry().register(
            &mut socket,
            Token(token),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            if let Some(limit) = limit {
                limit.release();
            }
            return Err(e);
        }
        let generation = ConnId::next_number();
        let id = ConnId {
            index: token,
            generation,
        };
        conn.set_waker(Arc::new(ConnWaker::new(handle, id)).into());
        slot.insert(Entry {
            socket,
            conn,
            handler,
            peer,
            generation,
            accepted: phase == Phase::Open,
            phase,
            readable: false,
            read_ended: false,
            read_size: MIN_READ,
            fin_sent: false,
            above_high: false,
            peer_close_told: false,
            layer_deadline: None,
            last_activity: now,
            limit,
            queued: false,
        });
        if let Some(idle) = self.config.idle_timeout {
            self.timers.push(Timer {
                at: now + idle,
                token,
                generation,
                kind: TimerKind::Idle,
            });
        }
        Ok(id)
    }

    /// The connection is established: tell the handler and process it.
    fn open(&mut self, token: usize, now: Instant) {
        let entry = &mut self.conns[token];
        entry.phase = Phase::Open;
        // Bytes may already wait in the socket.
        entry.readable = true;
        let outcome = self.callback(token, now, |h, cx| h.on_open(cx));
        if let Some(reason) = outcome {
            self.remove(token, reason);
        } else {
            self.mark(token);
        }
    }

    fn on_socket_event(&mut self, token: usize, readiness: Readiness, now: Instant) {
        let Readiness {
            readable,
            writable,
            ended,
        } = readiness;
        let Some(entry) = self.conns.get_mut(token) else {
            return;
        };
        entry.readable |= readable;
        entry.read_ended |= ended;
        if entry.phase == Phase::Connecting {
            if !(readable || writable) {
                return;
            }
            match entry.socket.take_error() {
                Ok(Some(e)) | Err(e) => return self.remove(token, CloseReason::Io(e.kind())),
                Ok(None) => {}
            }
            match entry.socket.peer_addr() {
                Ok(_) => {
                    if let Err(e) = self.config.socket.apply_stream(&entry.socket) {
                        tracing::debug!(error = %e, "socket options");
                    }
                    self.open(token, now);
                }
                // Not connected yet: a spurious wake-up.
                Err(e) if e.kind() == io::ErrorKind::NotConnected => {}
                Err(e) => self.remove(token, CloseReason::Io(e.kind())),
            }
            return;
        }
        self.mark(token);
    }

    /// Runs a handler callback with a [`Context`], then carries out its
    /// requests. Returns a close reason if the connection must go.
    fn callback(
        &mut self,
        token: usize,
        now: Instant,
        f: impl FnOnce(&mut H, &mut Context<'_>),
    ) -> Option<CloseReason> {
        let entry = &mut self.conns[token];
        let mut requests = Requests::default();
        let mut cx = Context {
            id: ConnId {
                index: token,
                generation: entry.generation,
            },
            peer: entry.peer,
            now,
            conn: &mut entry.conn,
            high_watermark: self.config.high_watermark,
            requests: &mut requests,
            handle: &self.handle,
        };
        f(&mut entry.handler, &mut cx);
        entry.above_high |= requests.above_high;
        for (at, id) in requests.timers {
            self.timers.push(Timer {
                at,
                token,
                generation: entry.generation,
                kind: TimerKind::App(id),
            });
        }
        requests.abort.then_some(CloseReason::Aborted)
    }

    /// Gives a message from a [`crate::Handle`] to the connection's handler;
    /// an error it returns (by default: the send buffer is full) ends the
    /// connection, so no message goes missing from a stream that goes on.
    fn handle_send(&mut self, token: usize, now: Instant, msg: Bytes) {
        let mut failed = None;
        let reason = self.callback(token, now, |h, cx| {
            failed = h.on_handle_send(cx, msg).err();
        });
        match (reason, failed) {
            (Some(reason), _) => self.remove(token, reason),
            (None, Some(e)) => {
                tracing::debug!(error = %e, "a message from a handle could not be sent");
                // Queued messages would arrive, then an end: a reset
                // tells the peer its stream is not whole.
                socket::reset_on_close(&self.conns[token].socket);
                self.remove(token, CloseReason::Error(e));
            }
            (None, None) => self.mark(token),
        }
    }

    /// Reads, delivers messages, writes, and closes what has ended.
    fn process(&mut self, token: usize, now: Instant) {
        let Some(entry) = self.conns.get_mut(token) else {
            return;
        };
        entry.queued = false;
        if entry.phase != Phase::Open {
            return;
        }
        if let Err(reason) = self.read(token, now) {
            return self.remove(token, reason);
        }
        if let Some(reason) = self.deliver(token, now) {
            return self.remove(token, reason);
        }
        if let Err(reason) = self.write(token, now) {
            return self.remove(token, reason);
        }
        // The queue fell to the low mark: let the handler refill it, and
        // write what it sent at once. Repeat while the socket takes it all:
        // no writable event would come for a socket that never filled.
        while self.conns[token].above_high
            && self.conns[token].conn.queued() <= self.config.low_watermark
        {
            self.conns[token].above_high = false;
            if let Some(reason) = self.callback(token, now, |h, cx| h.on_writable(cx)) {
                return self.remove(token, reason);
            }
            if let Err(reason) = self.write(token, now) {
                return self.remove(token, reason);
            }
        }
        let entry = &mut self.conns[token];
        if let Some(e) = entry.conn.error() {
            let reason = CloseReason::Error(e.clone());
            return self.remove(token, reason);
        }
        if entry.conn.state() == State::Closed {
            return self.remove(token, CloseReason::Clean);
        }
        let deadline = entry.conn.poll_timeout();
        if deadline.is_some() && deadline != entry.layer_deadline {
            entry.layer_deadline = deadline;
            let generation = entry.generation;
            if let Some(at) = deadline {
                self.timers.push(Timer {
                    at,
                    token,
                    generation,
                    kind: TimerKind::Layer,
                });
            }
        }
        let entry = &self.conns[token];
        if entry.readable && entry.conn.wants_read() {
            // Read budget used up with bytes left: continue next turn.
            self.mark(token);
        }
    }

    fn read(&mut self, token: usize, now: Instant) -> Result<(), CloseReason> {
        let entry = &mut self.conns[token];
        let mut budget = self.config.read_budget;
        while entry.readable && budget > 0 && entry.conn.wants_read() {
            let room = entry.conn.read_room().min(entry.read_size);
            let socket = &entry.socket;
            let read = entry
                .conn
                .read_with(now, |buf, _| socket::recv_into(socket, buf, room));
            match read {
                // Errors of the stack are kept by the connection and
                // reported after the messages that came before them are
                // delivered.
                Err(_) => break,
                Ok(Ok(0)) => {
                    entry.readable = false;
                    entry.last_activity = now;
                    let _ = entry.conn.handle_input_eof(now);
                }
                Ok(Ok(n)) => {
                    budget = budget.saturating_sub(n);
                    entry.read_size =
                        next_read_size(entry.read_size, room, n, self.config.read_chunk);
                    entry.last_activity = now;
                    // A stream socket returns less than asked only when its
                    // queue is empty: skip the `read` that would say
                    // WouldBlock. Bytes arriving later raise a new edge; a
                    // FIN already seen raises none, so read on to the end.
                    entry.readable = n == room || entry.read_ended;
                }
                Ok(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => entry.readable = false,
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(e)) => return Err(CloseReason::Io(e.kind())),
            }
        }
        Ok(())
    }

    fn deliver(&mut self, token: usize, now: Instant) -> Option<CloseReason> {
        loop {
            let entry = &mut self.conns[token];
            match entry.conn.poll_message(now) {
                Ok(Some(msg)) => {
                    if let Some(reason) = self.callback(token, now, |h, cx| h.on_message(cx, msg)) {
                        return Some(reason);
                    }
                }
                Ok(None) => break,
                Err(_) => return None,
            }
        }
        let entry = &mut self.conns[token];
        if entry.conn.is_read_closed() && !entry.peer_close_told {
            entry.peer_close_told = true;
            return self.callback(token, now, |h, cx| h.on_peer_closed(cx));
        }
        None
    }

    fn write(&mut self, token: usize, now: Instant) -> Result<(), CloseReason> {
        let entry = &mut self.conns[token];
        loop {
            let Ok(Some(out)) = entry.conn.poll_transmit(now) else {
                break;
            };
            match entry.socket.write(out) {
                Ok(n) => {
                    entry.conn.advance_transmit(n);
                    entry.last_activity = now;
                }
                // The WRITABLE event will mark the connection again.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(CloseReason::Io(e.kind())),
            }
        }
        if entry.conn.is_write_closed() && !entry.fin_sent {
            entry.fin_sent = true;
            if let Err(e) = entry.socket.shutdown(Shutdown::Write)
                && e.kind() != io::ErrorKind::NotConnected
            {
                return Err(CloseReason::Io(e.kind()));
            }
        }
        Ok(())
    }

    fn remove(&mut self, token: usize, reason: CloseReason) {
        let Some(mut entry) = self.conns.try_remove(token) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut entry.socket);
        if matches!(reason, CloseReason::Aborted) {
            socket::reset_on_close(&entry.socket);
        }
        if let Some(limit) = &entry.limit {
            limit.release();
        }
        let id = ConnId {
            index: token,
            generation: entry.generation,
        };
        closes::record(&self.closes, id, entry.peer, entry.accepted, &reason);
        let stats = entry.conn.stats();
        entry.handler.on_close(&reason, &stats);
    }

    fn drop_all(&mut self, reason: CloseReason) {
        let tokens: Vec<usize> = self.conns.iter().map(|(t, _)| t).collect();
        for token in tokens {
            self.remove(token, reason.clone());
        }
    }
}

/// The size of a connection's next read, after a read of `asked` bytes
/// returned `n` with `size` the current one: doubled after a full read (the
/// peer sends more than that per turn), else twice the last read but at
/// least half the current size (shrinking over a few small reads), within
/// [`MIN_READ`]..=`max`.
fn next_read_size(size: usize, asked: usize, n: usize, max: usize) -> usize {
    let next = if n >= asked {
        size.max(asked.saturating_mul(2))
    } else {
        n.saturating_mul(2).max(size / 2)
    };
    next.clamp(MIN_READ, max.max(MIN_READ))
}

#[cfg(test)]
mod tests {
    use super::{MIN_READ, next_read_size};

    const MAX: usize = 64 * 1024;

    #[test]
    fn reads_double_while_they_come_back_full() {
        let mut size = MIN_READ;
        let mut sizes = Vec::new();
        for _ in 0..9 {
            size = next_read_size(size, size, size, MAX);
            sizes.push(size);
        }
        let expected = [1, 2, 4, 8, 16, 32, 64, 64, 64].map(|k| k * 1024);
        assert_eq!(sizes, expected);
    }

    #[test]
    fn reads_shrink_over_a_few_short_ones_and_follow_the_traffic() {
        let mut size = MAX;
        let mut sizes = Vec::new();
        for _ in 0..8 {
            size = next_read_size(size, size, 100, MAX);
            sizes.push(size);
        }
        let expected = [32 * 1024, 16 * 1024, 8192, 4096, 2048, 1024, 512, 512];
        assert_eq!(sizes, expected);
        // 1 088 bytes a turn (16 small frames): twice that, no more.
        assert_eq!(next_read_size(512, 512, 512, MAX), 1024);
        assert_eq!(next_read_size(1024, 1024, 1024, MAX), 2048);
        assert_eq!(next_read_size(2048, 2048, 1088, MAX), 2176);
        assert_eq!(next_read_size(2176, 2176, 1088, MAX), 2176);
    }

    #[test]
    fn a_read_cut_short_by_the_buffer_room_does_not_shrink_the_next() {
        // The connection had room for 10 000 bytes only, and got them all.
        assert_eq!(next_read_size(MAX, 10_000, 10_000, MAX), MAX);
    }
}
