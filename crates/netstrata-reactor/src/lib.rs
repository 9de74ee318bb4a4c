//! netstrata-reactor: the event loop that drives netstrata
//! [`Connection`](netstrata_core::Connection)s over non-blocking sockets.
//!
//! The only netstrata crate that depends on mio, socket2 and quinn-udp. An
//! [`EventLoop`] runs on one thread at a time; a [`Server`] runs one per
//! core, each with its own `SO_REUSEPORT` listener, and evens new
//! connections out over its loops. [`Server::bind`] gives each loop a
//! thread of its own; [`Server::bind_shared`] lets the threads take turns
//! to run the loops, so that a thread the kernel sets aside (when the
//! server shares its cores with other busy threads) holds up no
//! connection for long: at two loops on two cores shared with the client,
//! its p99 measured below the tokio multi-threaded server's, where one
//! loop per thread measured up to twice it (docs/benchmarks.md). Its
//! handlers, stacks and codecs must be `Send`.
//! The application writes a [`Handler`] per
//! connection and gets messages as zero-copy [`bytes::Bytes`].
//!
//! ```text
//!            ┌──────────────── EventLoop (one thread) ─────────────────┐
//!  sockets ─▶│ mio::Poll ─▶ read (budget) ─▶ Connection ─▶ Handler::on_message
//!            │                                   ▲             │ cx.send()
//!  sockets ◀─│ one write per connection per turn ◀┴─ poll_transmit ◀┘
//!            │ timers: layer deadlines, idle, connect, app; Waker ◀─ Handle (other threads)
//!            └──────────────────────────────────────────────────────────┘
//! ```
//!
//! Per turn the loop reads what is ready (at most a budget per connection,
//! so one busy peer cannot starve others), hands every decoded message to the
//! handler, then writes each connection that has output once. Backpressure
//! runs both ways: a connection whose stack or application takes no more
//! input is not read (the peer feels TCP backpressure), and
//! [`Context::send`] reports the high watermark so the application can pause
//! until [`Handler::on_writable`].
//!
//! It does not do TLS, compression or shaping itself: those are layers in
//! the connection's stack. It does not frame messages either (the
//! connection's codec does), and it has no async runtime: handlers are
//! plain callbacks that must not block.
//!
//! # Why connections close
//!
//! Every close is told three ways: to the handler ([`Handler::on_close`]
//! with a [`CloseReason`]), to the log, and to the counts of the loop's
//! [`CloseCounts`] ([`Server::close_counts`], [`EventLoop::close_counts`]),
//! which count by [`CloseKind`] (`zstd: peer misbehaved`, `i/o: connection
//! reset`, `clean`, ...). The log goes through `tracing` (install a
//! subscriber, such as `tracing-subscriber`'s, to see it):
//!
//! - every close at `debug`, with fields `conn`, `peer`, `layer` and `kind`:
//!   `conn 17 from 127.0.0.1:5555 closed: zstd: peer misbehaved: peer window
//!   16 MiB (2^24) exceeds the limit 8 MiB (2^23)`;
//! - the close of an accepted connection that says something went wrong
//!   (an error of a layer, a socket error other than the peer resetting or
//!   going away) also at `warn`, at most once a second per [`CloseKind`] for the whole
//!   process, the next warning saying how many closes of that kind it did
//!   not show: a flood of bad clients cannot flood the log.
//!
//! [`ConnId`]s number connections across the process (`conn N`), so a line
//! names one connection even with several loops.
//!
//! # UDP
//!
//! [`EventLoop::bind_udp`] serves a UDP socket with a [`DatagramHandler`]:
//! one call per datagram, whole (a datagram larger than the loop's
//! datagram buffer is dropped and reported, never cut short), and
//! [`DatagramContext::send_to`] to answer. Underneath, the system calls
//! are batched as [`LoopConfig::with_datagram_io`] says:
//!
//! - [`DatagramIo::Offload`] (default): a peer's same-size datagrams that
//!   the kernel coalesced (`UDP_GRO`) come in one receive and are split
//!   back; runs of same-size datagrams to one peer leave in one `sendmsg`
//!   with `UDP_SEGMENT` (GSO); the rest as `Batch`. On loopback, with a
//!   peer that segments too, this echoed 17.8 times the datagrams per
//!   second of `Single`, at 17.9 times less CPU each (docs/benchmarks.md).
//! - [`DatagramIo::Batch`]: `recvmmsg` and `sendmmsg`, each datagram on its
//!   own, 32 per call at most.
//! - [`DatagramIo::Single`]: one `recvmsg` and one `sendto` per datagram.
//!
//! Sends are queued and leave at the end of the handler's batch of
//! datagrams (or once 64 KiB wait), in order; a datagram the kernel
//! refuses is reported to [`DatagramHandler::on_send_failed`] alone, never
//! the batch it left in. [`DatagramContext::counters`] counts each
//! datagram once, and the system calls each way. Where the kernel lacks
//! GSO or GRO, `Offload` does what it can without them; where quinn-udp
//! cannot set a socket up, the socket moves one datagram per call and a
//! warning says why.
//!
//! # Drivers
//!
//! A loop waits for the kernel and moves TCP bytes with one of two drivers
//! ([`LoopConfig::with_driver`]); handlers, contexts, servers, clients and
//! UDP sockets are the same on both, and the reactor's tests run on each.
//!
//! - [`Driver::Epoll`]: readiness from epoll (mio), then `recv` straight
//!   into the connection's buffer and one `writev` per connection per turn.
//! - [`Driver::Uring`] (the `uring` feature, on by default; Linux 6.0 and
//!   later): a multishot accept per listener, a multishot receive per
//!   connection into a ring of buffers the kernel picks from
//!   ([`LoopConfig::with_uring_buffers`], 64 of 64 KiB per loop), at most
//!   one send per connection in flight, and everything submitted in the
//!   one system call that also waits. A receive's bytes are copied out of
//!   the ring and the buffer given back in the same turn, so the ring is
//!   never held by slow connections; when a turn's receives take every
//!   buffer, those that found none are read again next turn, their bytes
//!   waiting in the kernel (the peer feels TCP backpressure; nothing is
//!   lost). The loop's epoll descriptor is polled by the ring: the
//!   [`Handle`] waker, UDP sockets and connects in progress stay on epoll.
//! - [`Driver::Auto`] (the default): epoll, the faster or equal of the two
//!   on the machines measured (docs/benchmarks.md, "io_uring").
//!
//! `NETSTRATA_DRIVER=epoll|uring|auto` sets the default of
//! [`LoopConfig::new`], so any program's loops switch without a flag of
//! its own; the `netstrata` tool also takes `--driver`. Where io_uring
//! cannot be set up (an older kernel, `ENOSYS`, `EPERM` under seccomp or
//! a container's policy), the loop logs why at `warn` and runs on epoll;
//! [`EventLoop::driver`], [`Handle::driver`] and [`Server::driver`] say
//! which driver a loop got.
//!
//! What differs on io_uring:
//!
//! - A loop's ring belongs to the thread of its first turn, which runs the
//!   kernel's completion work when it asks for completions (no interrupt
//!   per event); a loop must then take its turns on that thread (a turn
//!   elsewhere fails with an error saying so). [`Server::bind_shared`]
//!   sets its loops up for turns on any thread.
//! - The bytes of a send in flight (at most 256 KiB per connection) have
//!   left the connection's queue: the watermarks count them as written,
//!   as they count bytes in the kernel's socket buffer on epoll.
//! - A receive's bytes go into the stack as the completion comes when it
//!   takes them all, else they wait in the connection's inbox; past a read
//!   chunk ([`LoopConfig::with_read_chunk`], 64 KiB) the receive stops
//!   until the inbox drains, plus what one turn's completions carried. The
//!   read budget ([`LoopConfig::with_read_budget`]) bounds only what the
//!   read step takes from the inbox: each completion carries at most one
//!   receive buffer (64 KiB).
//! - Memory: the ring's buffers (4 MiB per loop by default) besides the
//!   connections'.
//! - The kernel may interrupt a blocking system call of a thread that
//!   dropped a loop on io_uring with `EINTR` (its task work); code that
//!   retries `Interrupted`, as the standard library's `read_exact` does,
//!   sees nothing.
//!
//! # Metrics
//!
//! With the `metrics` feature, each loop publishes its figures through the
//! [`metrics`](https://docs.rs/metrics) facade to whatever recorder the
//! application installs (a Prometheus exporter, say), every
//! [`LoopConfig::with_metrics_every`] (1 s): read from the counters the
//! connections already keep, never per message, so the loop pays nothing
//! per message for them. Counters are totals since the loop started.
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `netstrata_connections_open` | gauge | `loop` |
//! | `netstrata_connections_opened_total` | counter | `loop` |
//! | `netstrata_connections_closed_total` | counter | `reason` (a [`CloseKind`]: `clean`, `zstd: peer misbehaved`, ...; per server) |
//! | `netstrata_handshakes_total` | counter | `loop`, `outcome` (`completed`, `failed`: of connections whose layers were handshaking when they opened, those past the handshake, and those closed before it ended) |
//! | `netstrata_messages_total` | counter | `loop`, `direction` (`in`, `out`) |
//! | `netstrata_wire_bytes_total` | counter | `loop`, `direction` |
//! | `netstrata_layer_bytes_total` | counter | `loop`, `layer`, `direction` (`inbound`, `outbound`), `side` (`lower`, `upper`: the side of the layer the bytes crossed) |
//!
//! # Example
//!
//! An echo server on one loop, a blocking client, and a graceful shutdown:
//!
//! ```
//! use std::net::TcpStream;
//! use std::time::Duration;
//! use bytes::Bytes;
//! use netstrata_core::{Blocking, Connection, Stack};
//! use netstrata_frame::LengthDelimited;
//! use netstrata_reactor::{Context, Handler, Sent, Server, ServerConfig};
//!
//! struct Echo;
//!
//! impl Handler for Echo {
//!     fn on_message(&mut self, cx: &mut Context<'_>, msg: Bytes) {
//!         // Leaves with everything else sent in this turn, in one write.
//!         match cx.send(&msg) {
//!             // The peer reads its echoes slower than it sends: read no
//!             // more of it until the queue drains.
//!             Ok(Sent::HighWatermark) => cx.pause_reading(),
//!             Ok(_) => {}
//!             Err(_) => cx.abort(), // past the send buffer
//!         }
//!     }
//!
//!     fn on_writable(&mut self, cx: &mut Context<'_>) {
//!         cx.resume_reading();
//!     }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let plain = || Connection::new(Stack::new(()), LengthDelimited::new());
//! let server = Server::bind(
//!     "127.0.0.1:0".parse()?,
//!     ServerConfig::new().with_threads(1),
//!     plain,
//!     |_peer| Echo,
//! )?;
//!
//! let mut client = Blocking::new(TcpStream::connect(server.local_addr())?, plain());
//! client.send(b"ping")?;
//! client.flush()?;
//! assert_eq!(client.recv()?.as_deref(), Some(&b"ping"[..]));
//! client.shutdown()?;
//! assert!(client.recv()?.is_none()); // the server closed its side in turn
//!
//! server.shutdown(Duration::from_secs(1))?;
//! # Ok(()) }
//! ```
// Small helpers of `socket.rs` call the kernel directly (receiving into
// uninitialised memory, socket options, `sendmmsg`, segmented `sendmsg`),
// and `uring/` hands the kernel memory it writes or reads while the loop
// runs; each `unsafe` block has a SAFETY comment, and docs/architecture.md
// lists them.
#![deny(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod closes;
mod config;
mod context;
mod event_loop;
mod handle;
mod handler;
mod server;
mod socket;
mod turns;
mod udp;
mod uring;

pub use closes::{CloseCounts, CloseKind};
pub use config::{DatagramIo, Driver, LoopConfig};
pub use context::{Context, Local, Sent};
pub use event_loop::EventLoop;
pub use handle::{ConnId, Handle, HandleError};
pub use handler::{CloseReason, Handler};
pub use server::{Server, ServerConfig};
pub use socket::SocketOptions;
pub use udp::{DatagramContext, DatagramCounters, DatagramHandler};

// A `Server` and `Handle`s are shared across threads. An `EventLoop` is
// `Send` when its stack, codec and handler are (a shared server's loops
// move between threads between turns; `DatagramHandler`s are `Send` for
// that), and never `Sync`: one thread runs it at a time. A handler's
// `Context`, `Local` and `DatagramContext` borrow the loop during a
// callback.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Server>();
    send_sync::<ServerConfig>();
    send_sync::<LoopConfig>();
    send_sync::<DatagramIo>();
    send_sync::<SocketOptions>();
    send_sync::<Handle>();
    send_sync::<HandleError>();
    send_sync::<ConnId>();
    send_sync::<CloseReason>();
    send_sync::<CloseCounts>();
    send_sync::<CloseKind>();
    send_sync::<Sent>();
};

/// Runs the crate README's example as a doc test.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
