//! Datagram sockets on an event loop: one handler call per datagram.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mio::net::UdpSocket;

/// Application logic for a UDP socket. Runs on the loop's thread.
pub trait DatagramHandler: 'static {
    /// A datagram arrived from `from`.
    fn on_datagram(&mut self, cx: &mut DatagramContext<'_>, data: &[u8], from: SocketAddr);

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

    /// Calls [`DatagramHandler::on_timer`] with `id` after `after`. Timers
    /// cannot be cancelled: ignore ids you no longer expect.
    pub fn set_timer(&mut self, after: Duration, id: u64) {
        self.timers.push((self.now + after, id));
    }
}

/// A UDP socket registered with a loop.
pub(crate) struct Udp {
    pub(crate) socket: UdpSocket,
    pub(crate) handler: Box<dyn DatagramHandler>,
    pub(crate) queue: VecDeque<(Bytes, SocketAddr)>,
    /// Timers the handler set and the loop has not taken yet.
    pub(crate) timers: Vec<(Instant, u64)>,
}

impl Udp {
    /// Datagrams queued at most while the socket's send buffer is full.
    pub(crate) const QUEUE_LIMIT: usize = 1024;

    /// Receives waiting datagrams (at most `budget`), calling the handler
    /// for each, then sends what is queued. Returns whether datagrams may be
    /// left (the budget ran out first).
    pub(crate) fn ready(&mut self, buf: &mut [u8], budget: usize, now: Instant) -> bool {
        self.flush();
        let mut more = true;
        for _ in 0..budget {
            match self.socket.recv_from(buf) {
                Ok((n, from)) => {
                    self.call(now, |h, cx| h.on_datagram(cx, &buf[..n], from));
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
        self.flush();
        more
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
