//! `netstrata tunnel`: plain TCP on one side, a netstrata stack on the
//! other. Each accepted connection gets a connection to the target; bytes
//! are pumped both ways with backpressure, half-closes are passed on, and a
//! failure of either connection ends both with a logged reason.
//!
//! ```text
//!   client ──plain──▶ tunnel A ══zstd+tls+shape══▶ tunnel B ──plain──▶ server
//!                 (--stack-side connect)      (--stack-side listen)
//! ```
//!
//! One event loop on one thread carries every pair. Between the two
//! connections of a pair at most 256 KiB per direction are in flight: a
//! gate layer on top of each stack stops reading its socket when that much
//! waits for the other side, and the other side wakes it as it drains (the
//! `link` module explains how).

mod link;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread::{self, JoinHandle};

use bytes::Bytes;
use netstrata_core::{ConnectionStats, DynStack, RawCodec};
use netstrata_reactor::{CloseReason, Context, EventLoop, Handle, Handler, LoopConfig};

use crate::stack::StackOptions;
use link::{Gate, Link, Side};

/// Which side of the tunnel speaks the netstrata stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackSide {
    /// Clients of the tunnel speak the stack (the far end of a pair).
    Listen,
    /// The target speaks the stack (the near end of a pair).
    Connect,
}

/// A tunnel's settings.
#[derive(Debug, Clone)]
pub struct TunnelOptions {
    /// Where to accept connections (port 0 picks one).
    pub listen: SocketAddr,
    /// Where to connect for each accepted connection.
    pub connect: SocketAddr,
    /// The side that speaks `stack`; the other is plain TCP.
    pub stack_side: StackSide,
    /// The layers of the stack side (frames are not used: raw bytes).
    pub stack: StackOptions,
    /// Print a line to stderr as each tunnelled connection ends.
    pub log: bool,
}

/// A running tunnel.
#[derive(Debug)]
pub struct Tunnel {
    addr: SocketAddr,
    handle: Handle,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<io::Result<()>>,
}

type Loop = EventLoop<DynStack, RawCodec, End>;

/// Connections accepted whose outgoing connection is still to be made.
type ConnectQueue = Arc<Mutex<Vec<Arc<Link>>>>;

impl Tunnel {
    /// Binds `opts.listen` and starts the tunnel's event loop thread.
    ///
    /// # Errors
    /// The address cannot be bound, or the stack options are invalid.
    pub fn start(opts: TunnelOptions) -> io::Result<Self> {
        // Every connection is built the same way: check the options once.
        let probe = Gate::new(Side::Accepted, Link::new());
        opts.stack
            .raw_connection(Box::new(probe))
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let listener = TcpListener::bind(opts.listen)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::sync_channel(1);
        let thread_stop = Arc::clone(&stop);
        let thread = thread::Builder::new()
            .name("netstrata-tunnel".into())
            .spawn(move || {
                let queue = ConnectQueue::default();
                // Each stream's windows bound what its handlers queue
                // through the handle (`link::WINDOW` per direction), so the
                // loop's own command limit is lifted: a full queue would
                // have to fail a stream that is within its window.
                let config = LoopConfig::new().with_command_queue(usize::MAX);
                let mut event_loop = Loop::new(config)?;
                let handle = event_loop.handle();
                listen(&mut event_loop, listener, &opts, &queue)?;
                let _ = tx.send(handle.clone());
                while !thread_stop.load(Ordering::Acquire) {
                    event_loop.turn(None)?;
                    let links = std::mem::take(&mut *lock(&queue));
                    for link in links {
                        connect(&mut event_loop, &opts, &handle, link);
                    }
                }
                Ok(())
            })?;
        let Ok(handle) = rx.recv() else {
            // The loop failed to start: report why.
            return Err(thread.join().map_or_else(
                |_| io::Error::other("tunnel thread panicked"),
                |r| r.err().unwrap_or_else(|| io::Error::other("tunnel ended")),
            ));
        };
        Ok(Self {
            addr,
            handle,
            stop,
            thread,
        })
    }

    /// The address the tunnel listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the tunnel at once, dropping its connections.
    pub fn stop(self) -> io::Result<()> {
        self.stop.store(true, Ordering::Release);
        // Wakes the loop so it sees the flag.
        let _ = self.handle.stop();
        self.join()
    }

    /// Waits until the tunnel's loop ends (an error, or [`Self::stop`]).
    pub fn join(self) -> io::Result<()> {
        self.thread
            .join()
            .map_err(|_| io::Error::other("tunnel thread panicked"))?
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The stack of `side`'s connection, under its gate.
fn stack_of(opts: &TunnelOptions, side: Side) -> StackOptions {
    let stacked = match side {
        Side::Accepted => opts.stack_side == StackSide::Listen,
        Side::Connected => opts.stack_side == StackSide::Connect,
    };
    match stacked {
        true => opts.stack.clone(),
        false => StackOptions::default(),
    }
}

fn listen(
    event_loop: &mut Loop,
    listener: TcpListener,
    opts: &TunnelOptions,
    queue: &ConnectQueue,
) -> io::Result<()> {
    // The loop makes an accepted connection's stack, then its handler; the
    // link made with the one waits here for the other.
    let made: Arc<Mutex<Option<Arc<Link>>>> = Arc::default();
    let stack = stack_of(opts, Side::Accepted);
    let handle = event_loop.handle();
    let (queue, log, made2) = (Arc::clone(queue), opts.log, Arc::clone(&made));
    event_loop.listen(
        listener,
        move || {
            let link = Link::new();
            *lock(&made) = Some(Arc::clone(&link));
            let gate = Box::new(Gate::new(Side::Accepted, link));
            stack
                .raw_connection(gate)
                .expect("stack options checked at start")
        },
        move |peer| {
            let link = lock(&made2).take().unwrap_or_else(|| {
                // Not made with its connection: `on_open` aborts this one.
                let link = Link::new();
                link.fail("internal: no link".into(), Side::Connected, &handle);
                link
            });
            End {
                side: Side::Accepted,
                link,
                handle: handle.clone(),
                peer,
                queue: Some(Arc::clone(&queue)),
                log,
            }
        },
    )
}

/// Makes the outgoing connection of an accepted one.
fn connect(event_loop: &mut Loop, opts: &TunnelOptions, handle: &Handle, link: Arc<Link>) {
    if link.failure().is_some() {
        return;
    }
    let gate = Box::new(Gate::new(Side::Connected, Arc::clone(&link)));
    let mut conn = stack_of(opts, Side::Connected)
        .raw_connection(gate)
        .expect("stack options checked at start");
    let (pending, close) = link.take_pending();
    for msg in pending {
        // Bounded by the gate's credit, far below the send buffer.
        let _ = conn.send(&msg);
    }
    if close {
        conn.close();
    }
    let end = End {
        side: Side::Connected,
        link: Arc::clone(&link),
        handle: handle.clone(),
        peer: opts.connect,
        queue: None,
        log: opts.log,
    };
    match event_loop.connect(opts.connect, conn, end) {
        Ok(id) => link.set_id(Side::Connected, id),
        Err(e) => {
            let why = format!("cannot connect to {}: {e}", opts.connect);
            if opts.log {
                eprintln!("netstrata tunnel: {why}");
            }
            link.fail(why, Side::Accepted, handle);
        }
    }
}

/// The handler of either connection of a pair: forwards what arrives to
/// the other one.
struct End {
    side: Side,
    link: Arc<Link>,
    handle: Handle,
    peer: SocketAddr,
    /// Where an accepted connection asks for its outgoing one.
    queue: Option<ConnectQueue>,
    log: bool,
}

impl Handler for End {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        self.link.set_id(self.side, cx.id());
        if self.link.failure().is_some() {
            // The pair failed before this side opened: no one to pass bytes to.
            cx.abort();
            return;
        }
        if let Some(queue) = &self.queue {
            lock(queue).push(Arc::clone(&self.link));
        }
    }

    fn on_message(&mut self, _cx: &mut Context<'_>, msg: Bytes) {
        self.link.forward(self.side.other(), msg, &self.handle);
    }

    fn on_peer_closed(&mut self, _cx: &mut Context<'_>) {
        // Half-close: the other direction may still carry bytes.
        self.link.close(self.side.other(), &self.handle);
    }

    fn on_close(&mut self, reason: &CloseReason, stats: &ConnectionStats) {
        let place = format!("{} ({})", self.peer, side_name(self.side));
        let how = match reason {
            CloseReason::Clean => "clean".to_string(),
            // Aborted by `Link::fail`: the other side's line says why.
            CloseReason::Aborted if self.link.failure().is_some() => {
                "aborted: the other side failed".to_string()
            }
            CloseReason::Error(e) => e.to_string(),
            CloseReason::Io(kind) => format!("i/o: {kind}"),
            other => format!("{other:?}"),
        };
        if !matches!(reason, CloseReason::Clean) {
            let why = format!("{place}: {how}");
            self.link.fail(why, self.side.other(), &self.handle);
        }
        let line = format!(
            "{place} {how}, {} B in, {} B out",
            stats.wire_in, stats.wire_out
        );
        if let Some(closes) = self.link.closed(self.side, line)
            && self.log
        {
            eprintln!("netstrata tunnel: closed: {}", closes.join("; "));
        }
    }
}

fn side_name(side: Side) -> &'static str {
    match side {
        Side::Accepted => "client side",
        Side::Connected => "target side",
    }
}
