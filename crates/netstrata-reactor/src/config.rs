//! Limits and timeouts of an event loop.

use std::time::Duration;

use crate::SocketOptions;

/// How a loop's UDP sockets move datagrams through the kernel
/// ([`LoopConfig::with_datagram_io`]). Each falls back to the next where
/// the kernel lacks what it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DatagramIo {
    /// Segmentation offload both ways where the kernel offers it: runs of
    /// same-size datagrams to one peer leave in one `sendmsg` with
    /// `UDP_SEGMENT` (GSO), receives coalesce a peer's datagrams with
    /// `UDP_GRO`; the rest as [`Batch`](Self::Batch).
    #[default]
    Offload,
    /// Many datagrams per call, each on its own: `sendmmsg` and
    /// `recvmmsg`, no segmentation, no coalescing.
    Batch,
    /// One `recvmsg` and one `sendto` per datagram.
    Single,
}

/// Which kernel interface a loop waits and moves TCP bytes with
/// ([`LoopConfig::with_driver`]). Handlers, contexts, servers and clients
/// are the same on each. See the crate's docs, "Drivers".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Driver {
    /// Readiness from epoll (through mio), reads and writes as system calls.
    Epoll,
    /// io_uring (Linux 6.0 and later, the `uring` feature): multishot
    /// accepts and receives into a ring of kernel-chosen buffers, sends
    /// submitted once per turn. Where io_uring cannot be set up (an older
    /// kernel, `ENOSYS`, `EPERM` under seccomp or a container's policy, a
    /// build without the feature) the loop logs why and uses epoll.
    Uring,
    /// The driver measured fastest on the machine for the common
    /// workloads: epoll today (see the crate's docs, "Drivers").
    #[default]
    Auto,
}

impl Driver {
    /// The variable [`LoopConfig::new`] reads the driver from.
    pub const ENV: &'static str = "NETSTRATA_DRIVER";

    /// The driver named `name`: `epoll`, `uring` (or `io_uring`), `auto`.
    pub fn parse(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "epoll" => Some(Self::Epoll),
            "uring" | "io_uring" | "io-uring" => Some(Self::Uring),
            "auto" => Some(Self::Auto),
            _ => None,
        }
    }

    /// The driver `NETSTRATA_DRIVER` names; [`Driver::Auto`] when it is
    /// unset, and when it names none (with a warning).
    pub fn from_env() -> Self {
        match std::env::var(Self::ENV) {
            Ok(name) => Self::parse(&name).unwrap_or_else(|| {
                tracing::warn!(
                    value = %name,
                    "{} names no driver (epoll, uring, auto); using auto",
                    Self::ENV
                );
                Self::Auto
            }),
            Err(_) => Self::Auto,
        }
    }

    /// What `Auto` stands for.
    pub(crate) fn resolve(self) -> Self {
        match self {
            Self::Auto => Self::Epoll,
            other => other,
        }
    }
}

impl std::fmt::Display for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Epoll => "epoll",
            Self::Uring => "uring",
            Self::Auto => "auto",
        })
    }
}

/// Settings of an [`crate::EventLoop`] and of the connections it drives.
/// Each has a default and a setter.
#[derive(Debug, Clone)]
pub struct LoopConfig {
    pub(crate) socket: SocketOptions,
    pub(crate) high_watermark: usize,
    pub(crate) low_watermark: usize,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) connect_timeout: Duration,
    pub(crate) read_budget: usize,
    pub(crate) read_chunk: usize,
    pub(crate) command_queue: usize,
    pub(crate) datagram_buffer: usize,
    pub(crate) datagram_io: DatagramIo,
    pub(crate) metrics_every: Duration,
    pub(crate) driver: Driver,
    pub(crate) uring_buffers: (usize, usize),
    /// Makes io_uring set-up fail with this OS error (tests of the fallback).
    pub(crate) uring_fails_with: Option<i32>,
    /// The loop's turns may run on any thread (shared loops): its ring
    /// cannot belong to one.
    pub(crate) uring_any_thread: bool,
}

impl LoopConfig {
    /// Default high watermark of bytes queued toward a peer (1 MiB).
    pub const DEFAULT_HIGH_WATERMARK: usize = 1024 * 1024;
    /// Default low watermark (256 KiB).
    pub const DEFAULT_LOW_WATERMARK: usize = 256 * 1024;
    /// Default connect timeout (10 s).
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default bytes read from one connection per loop turn before the loop
    /// serves others (256 KiB).
    pub const DEFAULT_READ_BUDGET: usize = 256 * 1024;
    /// Default bound of commands queued by [`crate::Handle`]s and not yet
    /// run by the loop (16 MiB: messages plus 64 bytes per command).
    pub const DEFAULT_COMMAND_QUEUE: usize = 16 * 1024 * 1024;
    /// Default largest `read` call (64 KiB).
    pub const DEFAULT_READ_CHUNK: usize = 64 * 1024;
    /// Default period of publishing the loop's figures (1 s).
    pub const DEFAULT_METRICS_EVERY: Duration = Duration::from_secs(1);
    /// Default receive buffer of each UDP socket (64 KiB: the largest
    /// datagram UDP can carry, 65 507 bytes over IPv4 and 65 527 over IPv6,
    /// fits).
    pub const DEFAULT_DATAGRAM_BUFFER: usize = 64 * 1024;
    /// Default receive buffers of an io_uring loop: 64 of 64 KiB (4 MiB
    /// per loop).
    pub const DEFAULT_URING_BUFFERS: (usize, usize) = (64, 64 * 1024);

    /// The defaults; no idle timeout; the driver `NETSTRATA_DRIVER` names
    /// ([`Driver::from_env`]), so that any program's loops can be switched
    /// without a flag of its own.
    pub fn new() -> Self {
        Self {
            socket: SocketOptions::new(),
            high_watermark: Self::DEFAULT_HIGH_WATERMARK,
            low_watermark: Self::DEFAULT_LOW_WATERMARK,
            idle_timeout: None,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            read_budget: Self::DEFAULT_READ_BUDGET,
            read_chunk: Self::DEFAULT_READ_CHUNK,
            command_queue: Self::DEFAULT_COMMAND_QUEUE,
            datagram_buffer: Self::DEFAULT_DATAGRAM_BUFFER,
            datagram_io: DatagramIo::Offload,
            metrics_every: Self::DEFAULT_METRICS_EVERY,
            driver: Driver::from_env(),
            uring_buffers: Self::DEFAULT_URING_BUFFERS,
            uring_fails_with: None,
            uring_any_thread: false,
        }
    }

    /// Socket options for listeners and connections.
    pub fn with_socket(mut self, socket: SocketOptions) -> Self {
        self.socket = socket;
        self
    }

    /// The queued-bytes marks: `send` reports `high` reached, and
    /// `on_writable` follows once the queue falls to `low` (clamped to at
    /// most `high`).
    pub fn with_watermarks(mut self, low: usize, high: usize) -> Self {
        self.high_watermark = high.max(1);
        self.low_watermark = low.min(self.high_watermark);
        self
    }

    /// Closes connections that move no byte for `timeout`.
    pub fn with_idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = Some(timeout);
        self
    }

    /// Gives up connects that take longer than `timeout`.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Bytes read from one connection per turn before others are served.
    pub fn with_read_budget(mut self, bytes: usize) -> Self {
        self.read_budget = bytes.max(1);
        self
    }

    /// The largest `read` call of a TCP connection. A connection's reads start at 512 bytes and double while
    /// they come back full, up to this: messages are slices of the buffer
    /// they were read into and keep its memory until dropped, so a
    /// connection of small messages reserves little.
    pub fn with_read_chunk(mut self, bytes: usize) -> Self {
        self.read_chunk = bytes.max(1);
        self
    }

    /// Sets the bound of commands [`crate::Handle`]s have queued and the
    /// loop has not yet run, in bytes: each message sent counts its length
    /// plus 64, a close or wake 64. Past it, the handle's call returns
    /// [`crate::HandleError::Full`] and queues nothing; one command of any
    /// size always fits an empty queue. Aborts, shutdowns and stops count
    /// 64 each against a budget of their own (65 536 of them), which sends
    /// cannot use up; the wakes of connections' layers are never refused
    /// (at most one is queued per connection).
    pub fn with_command_queue(mut self, bytes: usize) -> Self {
        self.command_queue = bytes.max(1);
        self
    }

    /// The receive buffer of each UDP socket of the loop
    /// ([`crate::EventLoop::bind_udp`]): the largest datagram handed to a
    /// handler. A larger one is dropped, counted and logged
    /// ([`crate::DatagramHandler::on_truncated`]), never cut short. Lower it
    /// for a protocol with small datagrams and many sockets.
    pub fn with_datagram_buffer(mut self, bytes: usize) -> Self {
        self.datagram_buffer = bytes.max(1);
        self
    }

    /// How UDP sockets move datagrams through the kernel (default
    /// [`DatagramIo::Offload`]). Handlers see each datagram whichever is
    /// chosen. See the crate's docs, "UDP".
    pub fn with_datagram_io(mut self, io: DatagramIo) -> Self {
        self.datagram_io = io;
        self
    }

    /// How often the loop publishes its figures through the `metrics`
    /// facade (with the crate's `metrics` feature; nothing otherwise). Each
    /// publication reads every connection's counters once.
    pub fn with_metrics_every(mut self, every: Duration) -> Self {
        self.metrics_every = every.max(Duration::from_millis(1));
        self
    }

    /// Which kernel interface the loop uses (default: what
    /// `NETSTRATA_DRIVER` names, else [`Driver::Auto`]).
    /// [`crate::EventLoop::driver`] says which it got.
    pub fn with_driver(mut self, driver: Driver) -> Self {
        self.driver = driver;
        self
    }

    /// The receive buffers an io_uring loop lends the kernel: `count`
    /// buffers (rounded up to a power of two, at most 32 768) of `len`
    /// bytes. Each receive takes one and the loop copies it out and gives
    /// it back in the same turn; when a turn's receives use them all, the
    /// connections that found none are read again once buffers are back
    /// (their bytes wait in the kernel: nothing is lost).
    pub fn with_uring_buffers(mut self, count: usize, len: usize) -> Self {
        self.uring_buffers = (count.clamp(1, 1 << 15), len.clamp(1, 1 << 30));
        self
    }

    /// Makes io_uring set-up fail with OS error `errno` (`ENOSYS`,
    /// `EPERM`), as on a kernel or under a policy without it: for tests
    /// of the fallback to epoll.
    #[doc(hidden)]
    pub fn with_uring_failing(mut self, errno: i32) -> Self {
        self.uring_fails_with = Some(errno);
        self
    }

    /// The driver asked for.
    pub fn driver(&self) -> Driver {
        self.driver
    }

    /// The socket options.
    pub fn socket(&self) -> &SocketOptions {
        &self.socket
    }
}

impl Default for LoopConfig {
    fn default() -> Self {
        Self::new()
    }
}
