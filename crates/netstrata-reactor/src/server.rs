//! A server: event loops with one `SO_REUSEPORT` listener each and new
//! connections evened out over them; one thread per loop
//! ([`Server::bind`]), or threads that take turns to run the loops
//! ([`Server::bind_shared`]).

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, mpsc};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use netstrata_core::{Codec, Connection, Layer};

use crate::event_loop::Admission;
use crate::turns::Turns;
use crate::{CloseCounts, EventLoop, Handle, Handler, LoopConfig};

/// Settings of a [`Server`].
#[derive(Debug, Clone)]
pub struct ServerConfig {
    threads: usize,
    /// Loops of a shared server; `None`: [`ServerConfig::SHARED_LOOPS_PER_THREAD`] per thread.
    loops: Option<usize>,
    max_connections: usize,
    event_loop: LoopConfig,
}

impl ServerConfig {
    /// Default connection limit across all loops (100 000).
    pub const DEFAULT_MAX_CONNECTIONS: usize = 100_000;

    /// Loops per thread of a [`Server::bind_shared`] server by default.
    pub const SHARED_LOOPS_PER_THREAD: usize = 1;

    /// One loop per core, at most [`Self::DEFAULT_MAX_CONNECTIONS`]
    /// connections, default loop settings.
    pub fn new() -> Self {
        Self {
            threads: thread::available_parallelism().map_or(1, |n| n.get()),
            loops: None,
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            event_loop: LoopConfig::new(),
        }
    }

    /// Number of event loops (threads); at least 1.
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// Event loops of a [`Server::bind_shared`] server, which its threads
    /// take turns to run; at least 1. ([`Server::bind`] runs one loop per
    /// thread.) More loops than threads means that a thread the kernel
    /// sets aside in the middle of a turn holds up fewer connections.
    pub fn with_loops(mut self, loops: usize) -> Self {
        self.loops = Some(loops.max(1));
        self
    }

    /// Connections open at once across all loops; more are accepted and
    /// closed at once.
    pub fn with_max_connections(mut self, max: usize) -> Self {
        self.max_connections = max;
        self
    }

    /// Settings of each loop.
    pub fn with_loop(mut self, config: LoopConfig) -> Self {
        self.event_loop = config;
        self
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// A running server.
///
/// ```no_run
/// use bytes::Bytes;
/// use netstrata_core::{Connection, Stack};
/// use netstrata_frame::LengthDelimited;
/// use netstrata_reactor::{Context, Handler, Server, ServerConfig};
///
/// struct Echo;
/// impl Handler for Echo {
///     fn on_message(&mut self, cx: &mut Context<'_>, msg: Bytes) {
///         let _ = cx.send(&msg);
///     }
/// }
///
/// let server = Server::bind(
///     "127.0.0.1:7000".parse().unwrap(),
///     ServerConfig::new(),
///     || Connection::new(Stack::new(()), LengthDelimited::new()),
///     |_peer| Echo,
/// )?;
/// println!("listening on {}", server.local_addr());
/// server.join()?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    handles: Vec<Handle>,
    threads: Vec<JoinHandle<io::Result<()>>>,
    closes: CloseCounts,
    admission: Arc<Admission>,
}

impl Server {
    /// Binds `addr` (port 0 picks one) and starts the loops: each accepted
    /// connection gets a [`Connection`] from `make_conn` and a handler from
    /// `make_handler`.
    pub fn bind<S, C, H>(
        addr: SocketAddr,
        config: ServerConfig,
        make_conn: impl Fn() -> Connection<S, C> + Send + Sync + 'static,
        make_handler: impl Fn(SocketAddr) -> H + Send + Sync + 'static,
    ) -> io::Result<Self>
    where
        S: Layer + 'static,
        C: Codec + 'static,
        H: Handler,
    {
        let (parts, addr, listeners) =
            Parts::bind(addr, &config, config.threads, make_conn, make_handler)?;
        let mut handles = Vec::new();
        let mut threads = Vec::new();
        for (i, listener) in listeners.into_iter().enumerate() {
            let (tx, rx) = mpsc::sync_channel(1);
            let parts = parts.clone();
            let thread = thread::Builder::new()
                .name(format!("netstrata-loop-{i}"))
                .spawn(move || {
                    let mut event_loop = parts.event_loop(i, listener)?;
                    let _ = tx.send(event_loop.handle());
                    event_loop.run()
                })?;
            match rx.recv() {
                Ok(handle) => handles.push(handle),
                Err(_) => {
                    // The loop failed to start: report why.
                    let err = thread.join().map_or_else(
                        |_| io::Error::other("event loop thread panicked"),
                        |r| {
                            r.err()
                                .unwrap_or_else(|| io::Error::other("event loop ended"))
                        },
                    );
                    for handle in &handles {
                        let _ = handle.stop();
                    }
                    return Err(err);
                }
            }
            threads.push(thread);
        }
        Ok(parts.server(addr, handles, threads))
    }

    /// As [`bind`](Self::bind), but the loops are not tied to threads:
    /// `config`'s threads take turns to run its loops
    /// ([`ServerConfig::with_loops`]; by default
    /// [`ServerConfig::SHARED_LOOPS_PER_THREAD`] per thread). A free
    /// thread runs any loop that has events or a deadline due, so when the
    /// kernel sets one thread aside (more busy threads than cores), the
    /// others go on serving its loops' connections. A loop still runs on
    /// one thread at a time and keeps its own connections, timers and
    /// listener; handlers see no difference, except that they move between
    /// threads between turns and so must be `Send`.
    ///
    /// Costs and gains are measured in docs/benchmarks.md ("Tail latency
    /// at one and two loops").
    pub fn bind_shared<S, C, H>(
        addr: SocketAddr,
        config: ServerConfig,
        make_conn: impl Fn() -> Connection<S, C> + Send + Sync + 'static,
        make_handler: impl Fn(SocketAddr) -> H + Send + Sync + 'static,
    ) -> io::Result<Self>
    where
        S: Layer + Send + 'static,
        C: Codec + Send + 'static,
        H: Handler + Send,
    {
        let n = config
            .loops
            .unwrap_or(config.threads * ServerConfig::SHARED_LOOPS_PER_THREAD);
        let (mut parts, addr, listeners) = Parts::bind(addr, &config, n, make_conn, make_handler)?;
        // Any thread runs any loop's turn: no ring may belong to one.
        parts.loop_config.uring_any_thread = true;
        let loops = listeners
            .into_iter()
            .enumerate()
            .map(|(i, listener)| parts.event_loop(i, listener))
            .collect::<io::Result<Vec<_>>>()?;
        let handles: Vec<Handle> = loops.iter().map(EventLoop::handle).collect();
        let turns = Arc::new(Turns::new(loops)?);
        let mut threads = Vec::with_capacity(config.threads);
        for i in 0..config.threads {
            let turns = Arc::clone(&turns);
            let spawned = thread::Builder::new()
                .name(format!("netstrata-turns-{i}"))
                .spawn(move || turns.run());
            match spawned {
                Ok(thread) => threads.push(thread),
                Err(e) => {
                    for handle in &handles {
                        let _ = handle.stop();
                    }
                    return Err(e);
                }
            }
        }
        Ok(parts.server(addr, handles, threads))
    }

    /// The driver its loops run on ([`crate::LoopConfig::with_driver`]):
    /// [`crate::Driver::Uring`] only where io_uring could be set up.
    pub fn driver(&self) -> crate::Driver {
        self.handles
            .first()
            .map_or(crate::Driver::Epoll, Handle::driver)
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes of the server's connections so far, by kind, over all its
    /// loops: how many ended cleanly, how many a layer refused and why.
    /// Each close is also logged (see the crate's docs on logging).
    pub fn close_counts(&self) -> CloseCounts {
        self.closes.clone()
    }

    /// How many connections each loop holds now, in the order of
    /// [`handles`](Self::handles). A loop that accepts a connection while
    /// holding more than another hands it to the one holding fewest, so
    /// these differ by at most one as connections arrive (closes can leave
    /// them further apart until the next arrivals).
    pub fn connections_per_loop(&self) -> Vec<usize> {
        self.admission.loads()
    }

    /// Handles of the loops (one per thread for [`Server::bind`]).
    pub fn handles(&self) -> &[Handle] {
        &self.handles
    }

    /// Graceful shutdown: every loop stops accepting, closes its
    /// connections in order and ends once they are closed or `grace` has
    /// passed. Returns when all loops have ended.
    pub fn shutdown(self, grace: Duration) -> io::Result<()> {
        for handle in &self.handles {
            let _ = handle.shutdown(grace);
        }
        self.join()
    }

    /// Stops every loop at once, dropping connections.
    pub fn stop(self) -> io::Result<()> {
        for handle in &self.handles {
            let _ = handle.stop();
        }
        self.join()
    }

    /// Waits until every loop has ended; returns the first error a loop
    /// (or its thread) ended with.
    pub fn join(self) -> io::Result<()> {
        let mut first = Ok(());
        for thread in self.threads {
            let ended = thread
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("event loop thread panicked")));
            if first.is_ok() {
                first = ended;
            }
        }
        first
    }
}

/// What a server's loops share, whichever threads run them.
struct Parts<S, C, H> {
    make_conn: Arc<dyn Fn() -> Connection<S, C> + Send + Sync>,
    make_handler: Arc<dyn Fn(SocketAddr) -> H + Send + Sync>,
    admission: Arc<Admission>,
    closes: CloseCounts,
    loop_config: LoopConfig,
}

impl<S, C, H> Clone for Parts<S, C, H> {
    fn clone(&self) -> Self {
        Self {
            make_conn: Arc::clone(&self.make_conn),
            make_handler: Arc::clone(&self.make_handler),
            admission: Arc::clone(&self.admission),
            closes: self.closes.clone(),
            loop_config: self.loop_config.clone(),
        }
    }
}

impl<S: Layer + 'static, C: Codec + 'static, H: Handler> Parts<S, C, H> {
    /// Binds `n` listeners on `addr` (port 0 picks one for all): the
    /// parts, the address bound and the listeners.
    fn bind(
        addr: SocketAddr,
        config: &ServerConfig,
        n: usize,
        make_conn: impl Fn() -> Connection<S, C> + Send + Sync + 'static,
        make_handler: impl Fn(SocketAddr) -> H + Send + Sync + 'static,
    ) -> io::Result<(Self, SocketAddr, Vec<std::net::TcpListener>)> {
        let socket = config.event_loop.socket();
        let first = socket.listener(addr)?;
        let addr = first.local_addr()?;
        let mut listeners = vec![first];
        for _ in 1..n {
            listeners.push(socket.listener(addr)?);
        }
        let parts = Self {
            make_conn: Arc::new(make_conn),
            make_handler: Arc::new(make_handler),
            admission: Arc::new(Admission::new(config.max_connections, n)),
            closes: CloseCounts::default(),
            loop_config: config.event_loop.clone(),
        };
        Ok((parts, addr, listeners))
    }

    /// Loop `i`, accepting on `listener`.
    fn event_loop(
        &self,
        i: usize,
        listener: std::net::TcpListener,
    ) -> io::Result<EventLoop<S, C, H>> {
        let mut event_loop = EventLoop::new(self.loop_config.clone())?;
        event_loop.count_closes_in(self.closes.clone());
        let (make_conn, make_handler) =
            (Arc::clone(&self.make_conn), Arc::clone(&self.make_handler));
        event_loop.listen_shared(
            listener,
            make_conn,
            make_handler,
            Arc::clone(&self.admission),
            i,
        )?;
        Ok(event_loop)
    }

    /// The server, once every loop runs: from now on they even out their
    /// connections.
    fn server(
        self,
        addr: SocketAddr,
        handles: Vec<Handle>,
        threads: Vec<JoinHandle<io::Result<()>>>,
    ) -> Server {
        self.admission.set_handles(handles.clone());
        Server {
            addr,
            handles,
            threads,
            closes: self.closes,
            admission: self.admission,
        }
    }
}
