//! A UDP socket of a loop with its handler, its receive slots and what
//! waits to be sent.

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use mio::net::UdpSocket;

use super::inbox::{Inbox, Received};
use super::outbox::Outbox;
use super::wire::UdpIo;
use super::{DatagramContext, DatagramCounters, DatagramHandler};
use crate::DatagramIo;

/// A UDP socket of a loop: where it receives, and the rest, which a
/// handler's callback borrows.
pub(crate) struct UdpEndpoint {
    inbox: Inbox,
    parts: Parts,
    /// Whether the loop asked for the socket's writable events.
    pub(crate) watching_writable: bool,
}

/// All of an endpoint but its receive slots.
struct Parts {
    io: UdpIo,
    handler: Box<dyn DatagramHandler>,
    out: Outbox,
    /// Timers the handler set and the loop has not taken yet.
    timers: Vec<(Instant, u64)>,
    received: ReceiveCounts,
}

/// The receiving half of [`DatagramCounters`].
#[derive(Debug, Default, Clone, Copy)]
struct ReceiveCounts {
    datagrams: u64,
    bytes: u64,
    truncated: u64,
    calls: u64,
}

/// The parts of an endpoint a handler's callback borrows.
struct Callback<'a> {
    io: &'a UdpIo,
    handler: &'a mut dyn DatagramHandler,
    out: &'a mut Outbox,
    timers: &'a mut Vec<(Instant, u64)>,
    received: &'a mut ReceiveCounts,
    now: Instant,
}

impl Callback<'_> {
    fn call(&mut self, f: impl FnOnce(&mut dyn DatagramHandler, &mut DatagramContext<'_>)) {
        let counters = counters(self.received, self.out);
        let mut cx = DatagramContext {
            io: self.io,
            out: self.out,
            now: self.now,
            timers: self.timers,
            counters,
        };
        f(self.handler, &mut cx);
    }
}

impl UdpEndpoint {
    /// `socket` served by `handler`, handing over datagrams of at most
    /// `limit` bytes, moving them as `how` says.
    pub(crate) fn new(
        socket: UdpSocket,
        handler: Box<dyn DatagramHandler>,
        limit: usize,
        how: DatagramIo,
    ) -> Self {
        let io = UdpIo::new(socket, how);
        let inbox = Inbox::new(&io, limit);
        let parts = Parts {
            io,
            handler,
            out: Outbox::default(),
            timers: Vec::new(),
            received: ReceiveCounts::default(),
        };
        Self {
            inbox,
            parts,
            watching_writable: false,
        }
    }

    /// Whether sends wait for room in the socket's buffer.
    pub(crate) fn blocked(&self) -> bool {
        self.parts.out.is_blocked()
    }

    pub(crate) fn socket_mut(&mut self) -> &mut UdpSocket {
        &mut self.parts.io.socket
    }

    /// The timers the handler set since the loop last took them.
    pub(crate) fn take_timers(&mut self) -> std::vec::Drain<'_, (Instant, u64)> {
        self.parts.timers.drain(..)
    }

    /// Receives waiting datagrams (at least `budget` unless the socket
    /// runs dry first; a batch received is handed over whole), calling the
    /// handler for each, then sends what is queued. Returns whether
    /// datagrams may be left.
    pub(crate) fn ready(&mut self, budget: usize, now: Instant) -> bool {
        let Self { inbox, parts, .. } = self;
        parts.out.retry();
        parts.flush(now);
        let mut handed = 0;
        let more = loop {
            if handed >= budget {
                break true;
            }
            match inbox.recv(&parts.io) {
                Ok(()) => parts.received.calls += 1,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break false,
                // An error here concerns one datagram or peer, not the
                // socket. Each counts against the budget, so that an error
                // that persists cannot hold the loop.
                Err(e) => {
                    if e.kind() != io::ErrorKind::Interrupted {
                        tracing::debug!(error = %e, "udp recv");
                    }
                    handed += 1;
                    continue;
                }
            }
            let limit = inbox.limit();
            let mut cb = parts.callback(now);
            for datagram in inbox.datagrams() {
                handed += 1;
                match datagram {
                    Received::Whole(data, from) => {
                        cb.received.datagrams += 1;
                        cb.received.bytes += data.len() as u64;
                        cb.call(|h, cx| h.on_datagram(cx, data, from));
                    }
                    Received::Truncated(from) => {
                        cb.received.truncated += 1;
                        warn_truncated(cb.io, cb.received.truncated, from, limit);
                        cb.call(|h, cx| h.on_truncated(cx, from));
                    }
                }
            }
        };
        parts.flush(now);
        more
    }

    /// Runs the handler's timer `id`, then sends what it queued.
    pub(crate) fn timer(&mut self, id: u64, now: Instant) {
        self.parts.callback(now).call(|h, cx| h.on_timer(cx, id));
        self.parts.flush(now);
    }
}

impl Parts {
    fn callback(&mut self, now: Instant) -> Callback<'_> {
        Callback {
            io: &self.io,
            handler: self.handler.as_mut(),
            out: &mut self.out,
            timers: &mut self.timers,
            received: &mut self.received,
            now,
        }
    }

    /// Sends what is queued, then tells the handler of datagrams the
    /// kernel refused (once: what it sends from there leaves on the next
    /// flush, and what fails then is told then).
    fn flush(&mut self, now: Instant) {
        self.out.flush(&self.io);
        if self.out.failed.is_empty() {
            return;
        }
        let failed = std::mem::take(&mut self.out.failed);
        let mut cb = self.callback(now);
        for (to, error) in &failed {
            cb.call(|h, cx| h.on_send_failed(cx, *to, error));
        }
        self.out.flush(&self.io);
    }
}

/// What a socket has done, from its two halves.
fn counters(received: &ReceiveCounts, out: &Outbox) -> DatagramCounters {
    DatagramCounters {
        received: received.datagrams,
        received_bytes: received.bytes,
        sent: out.counters.sent,
        sent_bytes: out.counters.sent_bytes,
        truncated: received.truncated,
        dropped: out.counters.dropped,
        failed: out.counters.failed,
        receive_calls: received.calls,
        send_calls: out.counters.calls,
    }
}

/// Logs a dropped oversized datagram: at `warn` for the first of the
/// socket (with what to change), at `debug` after.
fn warn_truncated(io: &UdpIo, dropped: u64, from: SocketAddr, buffer: usize) {
    let local = io.socket.local_addr().ok();
    if dropped == 1 {
        tracing::warn!(
            %from, ?local, buffer,
            "a datagram larger than the {buffer}-byte datagram buffer was dropped \
             (LoopConfig::with_datagram_buffer raises it); later ones are logged at debug",
        );
    } else {
        tracing::debug!(%from, ?local, buffer, dropped, "oversized datagram dropped");
    }
}
