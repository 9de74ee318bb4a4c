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
//! One event loop on one thread carries every pair, with the reactor's
//! handler API alone: the accepted connection's handler opens the target
//! connection from `on_open` ([`Context::connect`]); each side passes what
//! it reads to the other with a loop-local send ([`Context::local`]); a
//! side whose send finds the other above its high watermark ([`WINDOW`])
//! pauses its own reads ([`Context::pause_reading`]), and the other resumes
//! them from `on_writable` once it has drained to the low mark. At most
//! about one window plus one read per direction is in flight between the
//! two sockets.

mod pair;

use std::cell::RefCell;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::rc::Rc;
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use bytes::Bytes;
use netstrata_core::{ConnectionStats, DynStack, RawCodec};
use netstrata_reactor::{
    CloseCounts, CloseReason, ConnId, Context, EventLoop, Handle, Handler, LoopConfig, Sent,
};

use crate::report::StackTotals;
use crate::stack::StackOptions;
use pair::{Leg, Pair};

/// Bytes queued toward one side before the other side's reads pause (the
/// loop's high watermark; reads resume at a quarter of it).
pub const WINDOW: usize = 256 * 1024;

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

impl TunnelOptions {
    /// The stack of `side`'s connections.
    fn stack_of(&self, side: Leg) -> StackOptions {
        let stacked = match side {
            Leg::Client => self.stack_side == StackSide::Listen,
            Leg::Target => self.stack_side == StackSide::Connect,
        };
        match stacked {
            true => self.stack.clone(),
            false => StackOptions::default(),
        }
    }
}

/// A running tunnel.
#[derive(Debug)]
pub struct Tunnel {
    addr: SocketAddr,
    handle: Handle,
    closes: CloseCounts,
    accepted: Arc<Mutex<StackTotals>>,
    thread: JoinHandle<io::Result<()>>,
}

type Conn = netstrata_core::Connection<DynStack, RawCodec>;

impl Tunnel {
    /// Binds `opts.listen` and starts the tunnel's event loop thread.
    ///
    /// # Errors
    /// The address cannot be bound, or the stack options are invalid.
    pub fn start(opts: TunnelOptions) -> io::Result<Self> {
        Self::start_with(opts, LoopConfig::new())
    }

    /// [`Self::start`] with `config` for the loop (its watermarks are the
    /// tunnel's window, whatever `config` says).
    ///
    /// # Errors
    /// As [`Self::start`].
    pub fn start_with(opts: TunnelOptions, config: LoopConfig) -> io::Result<Self> {
        // Every connection is built the same way: check the options once.
        opts.stack
            .raw_connection()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let listener = TcpListener::bind(opts.listen)?;
        let addr = listener.local_addr()?;
        let (tx, rx) = mpsc::sync_channel(1);
        let accepted = Arc::new(Mutex::new(StackTotals::default()));
        let totals = Arc::clone(&accepted);
        let thread = thread::Builder::new()
            .name("netstrata-tunnel".into())
            .spawn(move || {
                let config = config.with_watermarks(WINDOW / 4, WINDOW);
                let mut event_loop = EventLoop::new(config)?;
                let opts = Arc::new(opts);
                let client_stack = opts.stack_of(Leg::Client);
                event_loop.listen(
                    listener,
                    move || connection(&client_stack),
                    move |peer| End::client(peer, Arc::clone(&opts), Arc::clone(&totals)),
                )?;
                let _ = tx.send((event_loop.handle(), event_loop.close_counts()));
                event_loop.run()
            })?;
        let Ok((handle, closes)) = rx.recv() else {
            // The loop failed to start: report why.
            return Err(thread.join().map_or_else(
                |_| io::Error::other("tunnel thread panicked"),
                |r| r.err().unwrap_or_else(|| io::Error::other("tunnel ended")),
            ));
        };
        Ok(Self {
            addr,
            handle,
            closes,
            accepted,
            thread,
        })
    }

    /// Closes of both legs of every tunnelled connection so far, by kind.
    pub fn close_counts(&self) -> CloseCounts {
        self.closes.clone()
    }

    /// The accepted (client-side) connections that have closed, summed;
    /// shared, so it still counts after [`Self::join`] takes the tunnel.
    pub fn accepted(&self) -> Arc<Mutex<StackTotals>> {
        Arc::clone(&self.accepted)
    }

    /// A handle of the tunnel's loop, for [`Handle::shutdown`] from
    /// another thread (a signal handler's); [`Self::join`] then returns
    /// once the loop has ended.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Graceful shutdown: stops accepting, closes every pair in order,
    /// drops what is still open after `grace`, and waits for the loop.
    pub fn shutdown(self, grace: Duration) -> io::Result<()> {
        let _ = self.handle.shutdown(grace);
        self.join()
    }

    /// The address the tunnel listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the tunnel at once, dropping its connections.
    pub fn stop(self) -> io::Result<()> {
        // A loop that has ended already has nothing to stop.
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

/// A connection with `stack`, checked at start.
fn connection(stack: &StackOptions) -> Conn {
    stack
        .raw_connection()
        .expect("stack options checked at start")
}

/// The handler of either connection of a pair: passes what arrives to the
/// other one.
struct End {
    side: Leg,
    peer: SocketAddr,
    /// The other connection of the pair, once there is one.
    other: Option<ConnId>,
    pair: Rc<RefCell<Pair>>,
    /// For aborting the other side from `on_close`, which has no context.
    handle: Option<Handle>,
    /// The client side's, to open the target side.
    opts: Option<Arc<TunnelOptions>>,
    /// The client side's: where its figures go when it closes.
    accepted: Option<Arc<Mutex<StackTotals>>>,
}

impl End {
    fn client(
        peer: SocketAddr,
        opts: Arc<TunnelOptions>,
        accepted: Arc<Mutex<StackTotals>>,
    ) -> Self {
        Self {
            side: Leg::Client,
            peer,
            other: None,
            pair: Rc::new(RefCell::new(Pair::new(opts.log))),
            handle: None,
            opts: Some(opts),
            accepted: Some(accepted),
        }
    }

    /// Opens the target side of this client side.
    fn open_target(&mut self, cx: &mut Context<'_>, opts: &TunnelOptions) {
        let target = Self {
            side: Leg::Target,
            peer: opts.connect,
            other: Some(cx.id()),
            pair: Rc::clone(&self.pair),
            handle: Some(cx.handle()),
            opts: None,
            accepted: None,
        };
        let conn = connection(&opts.stack_of(Leg::Target));
        match cx.connect(opts.connect, conn, target) {
            Ok(id) => {
                self.other = Some(id);
                self.pair.borrow_mut().target_made = true;
            }
            Err(e) => {
                let why = format!("cannot connect to {}: {e}", opts.connect);
                if opts.log {
                    complain!("netstrata tunnel: {why}");
                }
                self.pair.borrow_mut().fail(why);
                cx.abort();
            }
        }
    }
}

impl Handler for End {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        self.handle = Some(cx.handle());
        if let Some(opts) = self.opts.take() {
            self.open_target(cx, &opts);
        }
    }

    fn on_message(&mut self, cx: &mut Context<'_>, msg: Bytes) {
        let sent = match self.other.and_then(|id| cx.local(id)) {
            Some(mut other) => other.send(&msg),
            None => Ok(Sent::Closed),
        };
        match sent {
            Ok(Sent::Queued) => {}
            // `on_writable` of the other side resumes us.
            Ok(Sent::HighWatermark) => cx.pause_reading(),
            Ok(Sent::Closed) => {
                let why = format!("{}: bytes for a side that has ended", self.place());
                self.pair.borrow_mut().fail(why);
                cx.abort();
            }
            Err(e) => {
                self.pair
                    .borrow_mut()
                    .fail(format!("{}: {e}", self.place()));
                cx.abort();
            }
        }
    }

    fn on_writable(&mut self, cx: &mut Context<'_>) {
        if let Some(mut other) = self.other.and_then(|id| cx.local(id)) {
            other.resume_reading();
        }
    }

    fn on_peer_closed(&mut self, cx: &mut Context<'_>) {
        // Half-close: the other direction may still carry bytes.
        if let Some(mut other) = self.other.and_then(|id| cx.local(id)) {
            other.close();
        }
    }

    fn on_close(&mut self, reason: &CloseReason, stats: &ConnectionStats) {
        if let Some(accepted) = &self.accepted {
            accepted
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .add(stats);
        }
        let mut pair = self.pair.borrow_mut();
        let how = match reason {
            CloseReason::Clean => "clean".to_string(),
            CloseReason::Aborted if pair.failure.is_some() => {
                "aborted: the other side failed".to_string()
            }
            other => other.to_string(),
        };
        if !matches!(reason, CloseReason::Clean) {
            pair.fail(format!("{}: {how}", self.place()));
            if let (Some(handle), Some(other)) = (&self.handle, self.other) {
                // Ignored by the loop if `other` has closed since.
                let _ = handle.abort(other);
            }
        }
        let line = format!(
            "{} {how}, {} B in, {} B out",
            self.place(),
            stats.wire_in,
            stats.wire_out
        );
        let log = pair.log;
        if let Some(closes) = pair.closed(line)
            && log
        {
            complain!("netstrata tunnel: closed: {}", closes.join("; "));
        }
    }
}

impl End {
    fn place(&self) -> String {
        format!("{} ({})", self.peer, self.side.name())
    }
}
