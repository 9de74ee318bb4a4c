//! The loop's UDP sockets: one handler call per datagram, each socket with
//! its own receive buffer.

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use mio::net::UdpSocket;
use mio::{Interest, Token};
use netstrata_core::{Codec, Layer};

use super::timers::{Timer, TimerKind};
use super::{EventLoop, LOOP_TIMER, UDP_BASE};
use crate::udp::{DatagramHandler, UdpEndpoint};
use crate::{DatagramIo, Handler};

/// Datagrams received from one socket per turn before others are served.
const UDP_BUDGET: usize = 256;
/// UDP sockets one loop serves at most (their tokens sit below the
/// listeners').
const MAX_SOCKETS: usize = 256;

/// A loop's UDP sockets, and which have datagrams left from the last turn.
pub(super) struct Datagrams {
    endpoints: Vec<UdpEndpoint>,
    ready: Vec<usize>,
    /// Each socket's largest datagram, in bytes.
    buffer: usize,
    /// How sockets move datagrams.
    io: DatagramIo,
}

impl Datagrams {
    pub(super) fn new(buffer: usize, io: DatagramIo) -> Self {
        Self {
            endpoints: Vec::new(),
            ready: Vec::new(),
            buffer,
            io,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.endpoints.len()
    }

    pub(super) fn mark_ready(&mut self, index: usize) {
        self.ready.push(index);
    }

    pub(super) fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }
}

impl<S: Layer + 'static, C: Codec + 'static, H: Handler> EventLoop<S, C, H> {
    /// Serves datagrams on `socket` (made non-blocking) with `handler`.
    /// Each socket receives into a buffer of its own, of
    /// [`LoopConfig::with_datagram_buffer`](crate::LoopConfig::with_datagram_buffer)
    /// bytes; a larger datagram is dropped and reported
    /// ([`DatagramHandler::on_truncated`]), never handed over cut short.
    pub fn bind_udp(
        &mut self,
        socket: std::net::UdpSocket,
        handler: impl DatagramHandler,
    ) -> io::Result<SocketAddr> {
        let udp = &mut self.udp;
        if udp.endpoints.len() >= MAX_SOCKETS {
            return Err(io::Error::other("at most 256 UDP sockets per loop"));
        }
        socket.set_nonblocking(true)?;
        let addr = socket.local_addr()?;
        let mut endpoint = UdpEndpoint::new(
            UdpSocket::from_std(socket),
            Box::new(handler),
            udp.buffer,
            udp.io,
        );
        // Writable too only while sends wait for room (see `watch`): a
        // socket's every send would otherwise raise a writable event, and
        // with it a turn that finds nothing to do.
        let token = Token(UDP_BASE - udp.endpoints.len());
        self.poll
            .registry()
            .register(endpoint.socket_mut(), token, Interest::READABLE)?;
        udp.endpoints.push(endpoint);
        Ok(addr)
    }

    /// Serves the UDP sockets with datagrams waiting, each at most a budget.
    pub(super) fn serve_datagrams(&mut self, now: Instant) {
        let mut ready = std::mem::take(&mut self.udp.ready);
        ready.sort_unstable();
        ready.dedup();
        for index in ready {
            let more = self.udp.endpoints[index].ready(UDP_BUDGET, now);
            self.take_datagram_timers(index);
            self.watch(index);
            if more {
                self.udp.ready.push(index);
            }
        }
    }

    /// UDP socket `index`'s timer `id` is due.
    pub(super) fn datagram_timer(&mut self, index: usize, id: u64, now: Instant) {
        self.udp.endpoints[index].timer(id, now);
        self.take_datagram_timers(index);
        self.watch(index);
    }

    /// Asks for UDP socket `index`'s writable events while its sends wait
    /// for room, and stops once they have left.
    fn watch(&mut self, index: usize) {
        let endpoint = &mut self.udp.endpoints[index];
        let blocked = endpoint.blocked();
        if blocked == endpoint.watching_writable {
            return;
        }
        let interest = match blocked {
            true => Interest::READABLE | Interest::WRITABLE,
            false => Interest::READABLE,
        };
        let token = Token(UDP_BASE - index);
        match self
            .poll
            .registry()
            .reregister(endpoint.socket_mut(), token, interest)
        {
            Ok(()) => endpoint.watching_writable = blocked,
            // The queue is still flushed on the socket's next event.
            Err(e) => tracing::debug!(error = %e, "udp: asking for writable events"),
        }
    }

    /// Moves the timers UDP socket `index`'s handler set into the loop's.
    fn take_datagram_timers(&mut self, index: usize) {
        for (at, id) in self.udp.endpoints[index].take_timers() {
            self.conns.timers.push(Timer {
                at,
                token: LOOP_TIMER,
                generation: index as u64,
                kind: TimerKind::Datagram(id),
            });
        }
    }
}
