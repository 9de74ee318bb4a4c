//! `netstrata echo-server`: echoes every frame.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use netstrata_core::ConnectionStats;
use netstrata_reactor::{CloseReason, Context, Handler, LoopConfig, Sent, Server, ServerConfig};

use crate::report::StackTotals;
use crate::stack::StackOptions;

/// Sends every message back; adds its connection's final figures to
/// `totals` if there are any.
#[derive(Debug, Default)]
pub struct Echo {
    totals: Option<Arc<Mutex<StackTotals>>>,
}

impl Handler for Echo {
    fn on_message(&mut self, cx: &mut Context<'_>, msg: Bytes) {
        // By reference on a plain stack: a large frame is not copied.
        match cx.send_bytes(msg) {
            Ok(Sent::Queued | Sent::Closed) => {}
            // The peer sends faster than it reads its echoes (one read of
            // zstd can decode to megabytes of them): read no more of it
            // until the queue has drained, so it feels TCP backpressure.
            Ok(Sent::HighWatermark) => cx.pause_reading(),
            // Past the hard limit, which pausing at the watermark keeps
            // the echo below: the echo cannot be kept.
            Err(_) => cx.abort(),
        }
    }

    fn on_writable(&mut self, cx: &mut Context<'_>) {
        cx.resume_reading();
    }

    fn on_close(&mut self, _reason: &CloseReason, stats: &ConnectionStats) {
        if let Some(totals) = &self.totals {
            totals
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .add(stats);
        }
    }
}

/// Starts an echo server on `addr` with `threads` loops.
pub fn serve(addr: SocketAddr, threads: usize, stack: StackOptions) -> io::Result<Server> {
    serve_counted(
        addr,
        Loops::PerThread(threads),
        stack,
        None,
        LoopConfig::new(),
    )
}

/// How an echo server's event loops map onto threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loops {
    /// One loop per thread ([`Server::bind`]).
    PerThread(usize),
    /// Loops that threads take turns to run ([`Server::bind_shared`]).
    Shared {
        /// Threads.
        threads: usize,
        /// Event loops.
        loops: usize,
    },
}

impl std::fmt::Display for Loops {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::PerThread(n) => write!(f, "{n} loops"),
            Self::Shared { threads, loops } => {
                write!(f, "{loops} loops shared by {threads} threads")
            }
        }
    }
}

/// [`serve`] with its loops laid out as `loops` and `config` for each,
/// adding each closed connection's figures to `totals`.
pub fn serve_counted(
    addr: SocketAddr,
    loops: Loops,
    stack: StackOptions,
    totals: Option<Arc<Mutex<StackTotals>>>,
    config: LoopConfig,
) -> io::Result<Server> {
    // Every connection is built the same way: check the options once.
    stack
        .connection()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let make_conn = move || stack.connection().expect("stack options checked at start");
    let make_handler = move |_| Echo {
        totals: totals.clone(),
    };
    let server = ServerConfig::new().with_loop(config);
    match loops {
        Loops::PerThread(threads) => {
            Server::bind(addr, server.with_threads(threads), make_conn, make_handler)
        }
        Loops::Shared { threads, loops } => Server::bind_shared(
            addr,
            server.with_threads(threads).with_loops(loops),
            make_conn,
            make_handler,
        ),
    }
}
