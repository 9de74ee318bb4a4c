//! Datagram sockets on an event loop: one handler call per datagram.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;

use bytes::Bytes;
use mio::net::UdpSocket;

/// Application logic for a UDP socket. Runs on the loop's thread.
pub trait DatagramHandler: 'static {
    /// A datagram arrived from `from`.
    fn on_datagram(&mut self, cx: &mut DatagramContext<'_>, data: &[u8], from: SocketAddr);
}

/// A datagram handler's view of its socket during a callback.
pub struct DatagramContext<'a> {
    pub(crate) socket: &'a UdpSocket,
    pub(crate) queue: &'a mut VecDeque<(Bytes, SocketAddr)>,
    pub(crate) queue_limit: usize,
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
}

/// A UDP socket registered with a loop.
pub(crate) struct Udp {
    pub(crate) socket: UdpSocket,
    pub(crate) handler: Box<dyn DatagramHandler>,
    pub(crate) queue: VecDeque<(Bytes, SocketAddr)>,
}

impl Udp {
    /// Datagrams queued at most while the socket's send buffer is full.
    pub(crate) const QUEUE_LIMIT: usize = 1024;

    /// Receives waiting datagrams (at most `budget`), calling the handler
    /// for each, then sends what is queued. Returns whether datagrams may be
    /// left (the budget ran out first).
    pub(crate) fn ready(&mut self, buf: &mut [u8], budget: usize) -> bool {
        self.flush();
        let mut more = true;
        for _ in 0..budget {
            match self.socket.recv_from(buf) {
                Ok((n, from)) => {
                    let mut cx = DatagramContext {
                        socket: &self.socket,
                        queue: &mut self.queue,
                        queue_limit: Self::QUEUE_LIMIT,
                    };
                    self.handler.on_datagram(&mut cx, &buf[..n], from);
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
