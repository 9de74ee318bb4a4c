//! A fault proxy: TCP in, TCP out, and on the way the everyday misery of
//! real networks, one spec per direction — bytes rechunked down to one at
//! a time, delayed, stalled, cut (FIN), reset (RST), a bit flipped, the
//! bandwidth capped. `netstrata fault-proxy` runs it; the fault matrix
//! (`tests/faults.rs`, docs/reliability.md) puts it between every stack's
//! two ends.
//!
//! ```text
//!   client ──▶ accept ──▶ upstream faults ───▶ connect ──▶ server
//!          ◀──        ◀── downstream faults ◀──        ◀──
//!            one thread per direction, 16 KiB in flight each
//! ```
//!
//! Deterministic in its own decisions: piece sizes are drawn from a
//! ChaCha generator seeded by the seed, the connection's number and the
//! direction, and every other fault is at a byte offset, so a failing run
//! replays with the same seed. (When the sender's bytes arrive still
//! depends on the sender: a piece can end early where a read did.)
//!
//! Bounded: each direction holds at most one 16 KiB read; while it writes,
//! stalls or paces, it does not read, and the sender feels TCP
//! backpressure. Network input cannot make it panic: it only counts and
//! copies bytes.
//!
//! What the early endings do to the connection:
//! - **cut@N** (FIN): after exactly N bytes the receiver gets a FIN; the
//!   sender's later bytes in that direction are read and dropped (the
//!   sender is not told); the other direction keeps flowing, so the
//!   receiver's reaction (its own FIN, a TLS alert) reaches the sender.
//! - **reset@N** (RST): after exactly N bytes both ends get an RST (linger
//!   zero, then close): the connection is gone both ways. A reset or a
//!   socket error on either side is passed on the same way.
//!
//! It is not a general proxy: no TLS of its own, no protocol awareness, no
//! limit on connections (it serves tests and the operator's own runs).
//!
//! ```no_run
//! use netstrata_cli::fault::{FaultConfig, FaultProxy};
//!
//! let config = FaultConfig::new(42)
//!     .with_upstream("rechunk=1..64,cut@4096".parse().unwrap())
//!     .with_downstream("flip@100".parse().unwrap());
//! let proxy = FaultProxy::start(
//!     "127.0.0.1:0".parse().unwrap(),
//!     "127.0.0.1:7000".parse().unwrap(),
//!     config,
//! )
//! .unwrap();
//! println!("connect to {}", proxy.local_addr());
//! ```

mod forward;
mod relay;
mod spec;

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use forward::Outcome;
pub use spec::{Ending, FaultSpec, Flip, Stall};

/// Chooses the faults of connection `index`: (upstream, downstream).
pub type ChooseSpecs = dyn Fn(u64) -> (FaultSpec, FaultSpec) + Send + Sync;

/// The seed and the faults of each direction.
#[derive(Clone, Default)]
pub struct FaultConfig {
    /// Seed of every random decision.
    pub seed: u64,
    /// Faults of the client → server direction.
    pub upstream: FaultSpec,
    /// Faults of the server → client direction.
    pub downstream: FaultSpec,
    /// Bytes of each direction kept in each connection's record (what was
    /// forwarded, after the faults); 0, the default, keeps none.
    pub record: usize,
    /// Faults chosen per connection, in place of `upstream` and
    /// `downstream` (a soak's seeded random faults).
    pub per_connection: Option<Arc<ChooseSpecs>>,
}

impl std::fmt::Debug for FaultConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultConfig")
            .field("seed", &self.seed)
            .field("upstream", &self.upstream)
            .field("downstream", &self.downstream)
            .field("record", &self.record)
            .field("per_connection", &self.per_connection.is_some())
            .finish()
    }
}

impl FaultConfig {
    /// No fault yet, seeded by `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            ..Self::default()
        }
    }

    /// Client → server faults.
    pub fn with_upstream(mut self, spec: FaultSpec) -> Self {
        self.upstream = spec;
        self
    }

    /// Server → client faults.
    pub fn with_downstream(mut self, spec: FaultSpec) -> Self {
        self.downstream = spec;
        self
    }

    /// Keep up to `bytes` of each direction of each connection in its
    /// [`ConnectionRecord`] (to find where records or blocks end).
    pub fn with_record(mut self, bytes: usize) -> Self {
        self.record = bytes;
        self
    }

    /// Faults chosen by `choose` for each connection from its number (from
    /// 0, in the order accepted), instead of the same for all: seeded
    /// random faults, say, that replay with the seed.
    pub fn with_faults_per_connection(
        mut self,
        choose: impl Fn(u64) -> (FaultSpec, FaultSpec) + Send + Sync + 'static,
    ) -> Self {
        self.per_connection = Some(Arc::new(choose));
        self
    }

    /// The faults of connection `index`: (upstream, downstream).
    pub fn specs(&self, index: u64) -> (FaultSpec, FaultSpec) {
        match &self.per_connection {
            Some(choose) => choose(index),
            None => (self.upstream.clone(), self.downstream.clone()),
        }
    }

    /// The generator seeds of connection `index`: (upstream, downstream).
    fn seeds(&self, index: u64) -> (u64, u64) {
        let mix = |direction: u64| {
            // splitmix64 of (seed, connection, direction).
            let mut z = self
                .seed
                .wrapping_add((index * 2 + direction).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        (mix(0), mix(1))
    }
}

/// What the proxy did to one connection, once both directions ended.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ConnectionRecord {
    /// The connection's number, from 0 in the order accepted.
    pub index: u64,
    /// Why the connect to the upstream failed, if it did.
    pub connect_error: Option<io::ErrorKind>,
    /// How the client → server direction ended.
    pub upstream: Option<Outcome>,
    /// How the server → client direction ended.
    pub downstream: Option<Outcome>,
    /// Bytes forwarded each way: (upstream, downstream).
    pub forwarded: (u64, u64),
    /// The bytes forwarded each way, up to [`FaultConfig::record`].
    pub wire: (Vec<u8>, Vec<u8>),
    /// The faults injected, both directions together.
    pub injected: Injected,
}

/// Faults that happened (not those asked for past a connection's end).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Injected {
    /// Directions cut (FIN).
    pub cuts: u64,
    /// Directions reset (RST).
    pub resets: u64,
    /// Bits flipped and forwarded.
    pub flips: u64,
    /// Stalls taken.
    pub stalls: u64,
}

impl Injected {
    /// The sum of both.
    pub fn plus(self, other: Self) -> Self {
        Self {
            cuts: self.cuts + other.cuts,
            resets: self.resets + other.resets,
            flips: self.flips + other.flips,
            stalls: self.stalls + other.stalls,
        }
    }
}

impl ConnectionRecord {
    fn new(index: u64) -> Self {
        Self {
            index,
            ..Self::default()
        }
    }
}

/// The most connection records a proxy keeps (the latest): a long run
/// keeps its totals, not every record.
pub const KEPT_RECORDS: usize = 4096;

/// What the proxy did to all connections that have ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Totals {
    /// Connections that have ended.
    pub connections: u64,
    /// Of those, connections a direction of which ended other than by the
    /// sender's end (a cut, a reset, a socket error, a failed connect).
    pub ended_early: u64,
    /// Bytes forwarded each way: (upstream, downstream).
    pub forwarded: (u64, u64),
    /// The faults injected.
    pub injected: Injected,
}

/// The records kept and the totals.
#[derive(Debug, Default)]
struct Finished {
    records: std::collections::VecDeque<ConnectionRecord>,
    totals: Totals,
}

/// State shared by the accept thread, the connections and the owner.
#[derive(Debug, Default)]
struct Shared {
    stop: AtomicBool,
    finished: Mutex<Finished>,
    changed: Condvar,
}

impl Shared {
    fn finish(&self, record: ConnectionRecord) {
        let early = |o: Option<Outcome>| o != Some(Outcome::Eof);
        let mut finished = self.finished.lock().unwrap_or_else(PoisonError::into_inner);
        let totals = &mut finished.totals;
        totals.connections += 1;
        totals.ended_early += u64::from(early(record.upstream) || early(record.downstream));
        totals.forwarded.0 += record.forwarded.0;
        totals.forwarded.1 += record.forwarded.1;
        totals.injected = totals.injected.plus(record.injected);
        if finished.records.len() == KEPT_RECORDS {
            finished.records.pop_front();
        }
        finished.records.push_back(record);
        drop(finished);
        self.changed.notify_all();
    }
}

/// A running fault proxy; stops when dropped.
#[derive(Debug)]
pub struct FaultProxy {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Listens on `listen` and relays each connection to `upstream` with
    /// `config`'s faults, from a thread of its own.
    pub fn start(
        listen: SocketAddr,
        upstream: SocketAddr,
        config: FaultConfig,
    ) -> io::Result<Self> {
        let listener = TcpListener::bind(listen)?;
        let local_addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let accept = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("fault-proxy".into())
                .spawn(move || accept_loop(&listener, upstream, &config, &shared))?
        };
        Ok(Self {
            local_addr,
            shared,
            accept: Some(accept),
        })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The records of the connections that have ended so far (the latest
    /// [`KEPT_RECORDS`]).
    pub fn finished(&self) -> Vec<ConnectionRecord> {
        let finished = self
            .shared
            .finished
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        finished.records.iter().cloned().collect()
    }

    /// What the proxy did to every connection that has ended.
    pub fn totals(&self) -> Totals {
        self.shared
            .finished
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .totals
    }

    /// Waits until `count` connections have ended, at most `timeout`;
    /// returns the records kept.
    pub fn wait_finished(&self, count: u64, timeout: Duration) -> Vec<ConnectionRecord> {
        let deadline = Instant::now() + timeout;
        let mut finished = self
            .shared
            .finished
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while finished.totals.connections < count {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            finished = self
                .shared
                .changed
                .wait_timeout(finished, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        finished.records.iter().cloned().collect()
    }

    /// Stops accepting, ends every connection (without a reset) and waits
    /// for them; returns what the proxy did to all of them.
    pub fn stop(mut self) -> Totals {
        self.stop_now();
        self.totals()
    }

    fn stop_now(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        // Wakes the blocked accept.
        let _ = TcpStream::connect_timeout(&self.local_addr, Duration::from_secs(1));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop_now();
    }
}

fn accept_loop(
    listener: &TcpListener,
    upstream: SocketAddr,
    config: &FaultConfig,
    shared: &Arc<Shared>,
) {
    let mut relays: Vec<JoinHandle<()>> = Vec::new();
    let mut index = 0;
    while !shared.stop.load(Ordering::Relaxed) {
        let client = match listener.accept() {
            Ok((client, _)) => client,
            Err(e) => {
                tracing::debug!(error = %e, "fault proxy: accept");
                // EMFILE and the like: do not spin.
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        if shared.stop.load(Ordering::Relaxed) {
            break;
        }
        relays.retain(|r| !r.is_finished());
        let (config, shared) = (config.clone(), Arc::clone(shared));
        let spawned = std::thread::Builder::new()
            .name(format!("fault-relay-{index}"))
            .spawn(move || relay::relay(client, upstream, &config, index, &shared));
        match spawned {
            Ok(relay) => relays.push(relay),
            Err(e) => tracing::warn!(error = %e, "fault proxy: cannot start a relay thread"),
        }
        index += 1;
    }
    for relay in relays {
        let _ = relay.join();
    }
}
