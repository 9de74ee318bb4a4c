//! Datagram sockets on an event loop: one handler call per datagram, with
//! the system calls batched underneath (see [`crate::DatagramIo`]).

mod endpoint;
mod inbox;
mod outbox;
mod wire;

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use std::{fmt, io};

pub(crate) use endpoint::UdpEndpoint;
use outbox::Outbox;
use wire::UdpIo;

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

    /// The datagram to `to` that [`DatagramContext::send_to`] queued could
    /// not be sent (no route, an address of the other family, too large
    /// for a path that may not fragment). Called once per datagram, after
    /// the callback that sent it (up to 1 024 per flush; more are counted
    /// and logged only): a batch that fails is sent again one datagram at
    /// a time, so one bad datagram never fails the others. ICMP errors
    /// (port unreachable) are not reported: an unconnected socket does not
    /// get them. Counted in [`DatagramCounters::failed`]. Default: a
    /// `debug` log line.
    fn on_send_failed(&mut self, cx: &mut DatagramContext<'_>, to: SocketAddr, error: &io::Error) {
        let local = cx.local_addr().ok();
        tracing::debug!(%to, ?local, error = %error, "udp send failed");
    }

    /// A timer set with [`DatagramContext::set_timer`] is due
    /// (retransmissions, keepalives, expiring per-peer state). Default:
    /// nothing.
    fn on_timer(&mut self, cx: &mut DatagramContext<'_>, id: u64) {
        let _ = (cx, id);
    }
}

/// What a UDP socket has done so far, each datagram counted once however
/// the system calls batched them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DatagramCounters {
    /// Datagrams handed to [`DatagramHandler::on_datagram`].
    pub received: u64,
    /// Their bytes.
    pub received_bytes: u64,
    /// Datagrams the kernel took to send.
    pub sent: u64,
    /// Their bytes.
    pub sent_bytes: u64,
    /// Datagrams dropped for being larger than the datagram buffer.
    pub truncated: u64,
    /// Datagrams [`DatagramContext::send_to`] dropped because the send
    /// queue was full.
    pub dropped: u64,
    /// Datagrams the kernel refused ([`DatagramHandler::on_send_failed`]).
    pub failed: u64,
    /// System calls that received datagrams: fewer than `received` when
    /// calls are batched.
    pub receive_calls: u64,
    /// System calls that sent datagrams (or tried to).
    pub send_calls: u64,
}

/// A datagram handler's view of its socket during a callback.
pub struct DatagramContext<'a> {
    pub(crate) io: &'a UdpIo,
    pub(crate) out: &'a mut Outbox,
    pub(crate) now: Instant,
    pub(crate) timers: &'a mut Vec<(Instant, u64)>,
    pub(crate) counters: DatagramCounters,
}

impl fmt::Debug for DatagramContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatagramContext")
            .field("queued", &self.out.len())
            .field("now", &self.now)
            .field("timers", &self.timers.len())
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl DatagramContext<'_> {
    /// The largest datagram [`send_to`](Self::send_to) takes: what UDP over
    /// IPv4 carries (65 507 bytes).
    pub const MAX_DATAGRAM: usize = 65_507;

    /// Queues `data` for `to`. Queued datagrams leave together at the end
    /// of the handler's batch (or sooner, once 64 KiB wait), in the order
    /// they were queued; while the socket's buffer is full they wait for
    /// it to drain. Returns `Ok(false)` when the queue is full (1 024
    /// datagrams or 4 MiB) and the datagram was dropped, as UDP drops under load;
    /// an error for a datagram larger than [`Self::MAX_DATAGRAM`] or to
    /// port 0. A
    /// datagram the kernel refuses later is reported to
    /// [`DatagramHandler::on_send_failed`].
    pub fn send_to(&mut self, data: &[u8], to: SocketAddr) -> io::Result<bool> {
        if to.port() == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a datagram to port 0 cannot be sent",
            ));
        }
        if data.len() > Self::MAX_DATAGRAM {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a {}-byte datagram is larger than UDP carries ({} bytes)",
                    data.len(),
                    Self::MAX_DATAGRAM
                ),
            ));
        }
        Ok(self.out.push(self.io, data, to))
    }

    /// The socket's local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.socket.local_addr()
    }

    /// The loop's time at the start of this turn.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Datagrams this socket dropped so far because they were larger than
    /// the loop's datagram buffer (see [`DatagramHandler::on_truncated`]).
    pub fn truncated(&self) -> u64 {
        self.counters.truncated
    }

    /// What this socket has received (the datagram being handed over
    /// included), sent and dropped so far. Sends queued and not yet gone
    /// are not counted yet.
    pub fn counters(&self) -> DatagramCounters {
        self.counters
    }

    /// Calls [`DatagramHandler::on_timer`] with `id` after `after`. Timers
    /// cannot be cancelled: ignore ids you no longer expect.
    pub fn set_timer(&mut self, after: Duration, id: u64) {
        self.timers.push((self.now + after, id));
    }
}
