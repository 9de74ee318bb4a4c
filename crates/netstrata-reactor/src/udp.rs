//! Datagram sockets on an event loop: one handler call per datagram.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use std::{fmt, io};

use bytes::Bytes;
use mio::net::UdpSocket;

use crate::socket::{self, Datagram};

/// Application logic for a UDP socket. Runs on the loop's thread; `Send`
/// because an event loop may move to another thread between turns.
pub trait DatagramHandler: Send + 'static {
    /// A datagram arrived from `from`.
    fn on_datagram(&mut self, cx: &mut DatagramContext<'_>, data: &[u8], from: SocketAddr);

    /// A datagram from `from` was larger than the loop's datagram buffer
    /// ([`LoopConfig::with_datagram_buffer`](crate::LoopConfig::with_datagram_buffer))
    /// and was dropped rather than handed over cut short. The loop also
    /// counts it ([`DatagramContext::truncated`]) and logs it. Default:
    /// nothing more.
    fn on_truncated(&mut self, cx: &mut DatagramContext<'_>, from: SocketAddr) {
        let _ = (cx, from);
    }

    /// A timer set with [`DatagramContext::set_timer`] is due
    /// (retransmissions, keepalives, expiring per-peer state). Default:
    /// nothing.
    fn on_timer(&mut self, cx: &mut DatagramContext<'_>, id: u64) {
        let _ = (cx, id);
    }
}

/// A datagram handler's view of its socket during a callback.
pub struct DatagramContext<'a> {
    pub(crate) socket: &'a UdpSocket,
    pub(crate) queue: &'a mut VecDeque<(Bytes, SocketAddr)>,
    pub(crate) queue_limit: usize,
    pub(crate) now: Instant,
    pub(crate) timers: &'a mut Vec<(Instant, u64)>,
    pub(crate) truncated: u64,
}

impl fmt::Debug for DatagramContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatagramContext")
            .field("queued", &self.queue.len())
            .field("queue_limit", &self.queue_limit)
            .field("now", &self.now)
            .field("timers", &self.timers.len())
            .field("truncated", &self.truncated)
            .finish_non_exhaustive()
    }
}

impl DatagramContext<'_> {
    /// Sends `data` to `to` now, or queues it if the socket's buffer is
    /// full (it leaves when the socket is writable again). Returns
    /// `Ok(false)` when the queue is full and the datagram was dropped, as
    /// UDP drops under load; other errors (no route) are returned.
    pub fn send_to(&mut self, data: &[u8], to: SocketAddr) -> io::Result<bool> {
        if self.queue.is_empty() {
            match self.socket.send_to(data, to) {
                Ok(_) => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        if self.queue.len() >= self.queue_limit {
            return Ok(false);
        }
        self.queue.push_back((Bytes::copy_from_slice(data), to));
        Ok(true)
    }

    /// The socket's local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// The loop's time at the start of this turn.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Datagrams this socket dropped so far because they were larger than
    /// the loop's datagram buffer (see [`DatagramHandler::on_truncated`]).
    pub fn truncated(&self) -> u64 {
        self.truncated
    }

    /// Calls [`DatagramHandler::on_timer`] with `id` after `after`. Timers
    /// cannot be cancelled: ignore ids you no longer expect.
    pub fn set_timer(&mut self, after: Duration, id: u64) {
        self.timers.push((self.now + after, id));
    }
}

/// A UDP socket of a loop, with its handler, its receive buffer and what
/// waits to be sent.
pub(crate) struct UdpEndpoint {
    socket: UdpSocket,
    handler: Box<dyn DatagramHandler>,
    /// Where datagrams are received: the loop's datagram buffer size.
    buf: Box<[u8]>,
    queue: VecDeque<(Bytes, SocketAddr)>,
    /// Timers the handler set and the loop has not taken yet.
    pub(crate) timers: Vec<(Instant, u64)>,
    /// Datagrams dropped for being larger than `buf`.
    truncated: u64,
}

impl UdpEndpoint {
    /// Datagrams queued at most while the socket's send buffer is full.
    pub(crate) const QUEUE_LIMIT: usize = 1024;

    pub(crate) fn new(socket: UdpSocket, handler: Box<dyn DatagramHandler>, buf: usize) -> Self {
        Self {
            socket,
            handler,
            buf: vec![0; buf].into_boxed_slice(),
            queue: VecDeque::new(),
            timers: Vec::new(),
            truncated: 0,
        }
    }

    pub(crate) fn socket_mut(&mut self) -> &mut UdpSocket {
        &mut self.socket
    }

    /// Receives waiting datagrams (at most `budget`), calling the handler
    /// for each, then sends what is queued. Returns whether datagrams may be
    /// left (the budget ran out first).
    pub(crate) fn ready(&mut self, budget: usize, now: Instant) -> bool {
        self.flush();
        let mut buf = std::mem::take(&mut self.buf);
        let mut more = true;
        for _ in 0..budget {
            match socket::recv_datagram(&self.socket, &mut buf) {
                Ok(Datagram::Whole(n, from)) => {
                    self.call(now, |h, cx| h.on_datagram(cx, &buf[..n], from));
                }
                Ok(Datagram::Truncated(from)) => {
                    self.truncated += 1;
                    self.warn_truncated(from, buf.len());
                    self.call(now, |h, cx| h.on_truncated(cx, from));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    more = false;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // ICMP errors of earlier sends surface here; they concern
                // one peer, not the socket.
                Err(e) => tracing::debug!(error = %e, "udp recv"),
            }
        }
        self.buf = buf;
        self.flush();
        more
    }

    /// Logs a dropped oversized datagram: at `warn` for the first of the
    /// socket (with what to change), at `debug` after.
    fn warn_truncated(&self, from: SocketAddr, buffer: usize) {
        let local = self.socket.local_addr().ok();
        if self.truncated == 1 {
            tracing::warn!(
                %from, ?local, buffer,
                "a datagram larger than the {buffer}-byte datagram buffer was dropped \
                 (LoopConfig::with_datagram_buffer raises it); later ones are logged at debug",
            );
        } else {
            tracing::debug!(%from, ?local, buffer, dropped = self.truncated, "oversized datagram dropped");
        }
    }

    /// Runs the handler's timer `id`, then sends what it queued.
    pub(crate) fn timer(&mut self, id: u64, now: Instant) {
        self.call(now, |h, cx| h.on_timer(cx, id));
        self.flush();
    }

    fn call(
        &mut self,
        now: Instant,
        f: impl FnOnce(&mut dyn DatagramHandler, &mut DatagramContext<'_>),
    ) {
        let mut cx = DatagramContext {
            socket: &self.socket,
            queue: &mut self.queue,
            queue_limit: Self::QUEUE_LIMIT,
            now,
            timers: &mut self.timers,
            truncated: self.truncated,
        };
        f(self.handler.as_mut(), &mut cx);
    }

    fn flush(&mut self) {
        while let Some((data, to)) = self.queue.front() {
            match self.socket.send_to(data, *to) {
                Ok(_) => {
                    self.queue.pop_front();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::debug!(error = %e, %to, "udp send");
                    self.queue.pop_front();
                }
            }
        }
    }
}
