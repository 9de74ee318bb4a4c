//! Heap allocations per message on the server's loop, in steady state:
//! after a warm-up, echoing N and then 10 N messages must cost the loop's
//! thread no more allocations the second time than the first (a count that
//! grew with N would be allocations per message). Plain and zstd allocate
//! nothing at all. TLS allocates only inside rustls: its unbuffered API
//! (0.23) hands each decrypted record over in a `Vec` of its own and
//! encrypts each outgoing record into a new buffer, two allocations per
//! record each way of which netstrata's batching (every message of a turn
//! in one record) makes fewer than one per message; the TLS test checks
//! that every allocation on the loop comes from rustls, by its backtrace.
//!
//! A counting global allocator counts per thread: each thread that
//! allocates takes a slot of its own, and the server's handler tells the
//! test which slot is its loop's.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use netstrata_cli::demo::dev_tls;
use netstrata_cli::stack::StackOptions;
use netstrata_core::{Blocking, Connection, DynStack};
use netstrata_frame::LengthDelimited;
use netstrata_reactor::{Context, Handler, LoopConfig, Server, ServerConfig};
use netstrata_zstd::ZstdConfig;

const SLOTS: usize = 256;

/// Allocations by thread slot.
static COUNTS: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];
static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);

/// The slot whose allocations are traced (`usize::MAX`: none), and what
/// was traced: for each allocation, whether rustls made it.
static TRACED_SLOT: AtomicUsize = AtomicUsize::new(usize::MAX);
static TRACED: Mutex<Vec<Traced>> = Mutex::new(Vec::new());

#[derive(Debug)]
struct Traced {
    by_rustls: bool,
    backtrace: String,
}

thread_local! {
    static SLOT: Cell<usize> = const { Cell::new(usize::MAX) };
    /// This thread is inside `trace` (whose own allocations don't count).
    static TRACING: Cell<bool> = const { Cell::new(false) };
}

/// This thread's slot (taken on its first allocation; threads past the
/// last slot share it).
fn slot() -> usize {
    SLOT.with(|s| {
        if s.get() == usize::MAX {
            s.set(NEXT_SLOT.fetch_add(1, Ordering::Relaxed).min(SLOTS - 1));
        }
        s.get()
    })
}

/// Records where an allocation of the traced slot came from.
fn trace() {
    if TRACED_SLOT.load(Ordering::Relaxed) != slot() || TRACING.with(Cell::get) {
        return;
    }
    TRACING.with(|t| t.set(true));
    let backtrace = std::backtrace::Backtrace::force_capture().to_string();
    let by_rustls = backtrace.contains("rustls::");
    TRACED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Traced {
            by_rustls,
            backtrace,
        });
    TRACING.with(|t| t.set(false));
}

struct Counting;

// SAFETY: every call is passed to the system allocator unchanged; the
// count is an atomic increment and a thread-local read, neither of which
// allocates, and tracing guards against its own allocations.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        COUNTS[slot()].fetch_add(1, Ordering::Relaxed);
        trace();
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        COUNTS[slot()].fetch_add(1, Ordering::Relaxed);
        trace();
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Echoes, and says which slot its loop's thread counts in.
struct Echo {
    loop_slot: Arc<OnceLock<usize>>,
}

impl Handler for Echo {
    fn on_message(&mut self, cx: &mut Context<'_>, msg: Bytes) {
        self.loop_slot.get_or_init(slot);
        let _ = cx.send(&msg);
    }
}

type Client = Blocking<TcpStream, DynStack, LengthDelimited>;

/// Sends `n` messages in bursts of 16 (one flush each), and checks every
/// echo.
fn echo(client: &mut Client, n: usize, payload: &[u8]) {
    const BURST: usize = 16;
    for burst in (0..n).step_by(BURST) {
        let count = BURST.min(n - burst);
        for _ in 0..count {
            client.send(payload).unwrap();
        }
        client.flush().unwrap();
        for _ in 0..count {
            let echoed = client.recv().unwrap().expect("an echo");
            assert_eq!(&echoed[..], payload);
        }
    }
}

/// The loop's allocations while echoing `n` messages.
fn allocations(client: &mut Client, loop_slot: usize, n: usize, payload: &[u8]) -> u64 {
    let before = COUNTS[loop_slot].load(Ordering::Relaxed);
    echo(client, n, payload);
    COUNTS[loop_slot].load(Ordering::Relaxed) - before
}

/// A server on one loop with `server_stack`, a client with
/// `client_stack`, the warm-up done: the client, the loop's slot, the
/// payload and the server.
fn start(
    server_stack: StackOptions,
    client_stack: StackOptions,
) -> (Client, usize, Vec<u8>, Server) {
    let loop_slot = Arc::new(OnceLock::new());
    let handler_slot = Arc::clone(&loop_slot);
    let make_conn = move || server_stack.connection().unwrap();
    // The loop's figures (the tool builds the reactor with `metrics`) are
    // published on a timer, once a second by default, and building their
    // labels allocates: once a period, not per message. A slow machine can
    // stretch a measured window past a period, so the timer is set out of
    // the test's reach.
    let no_figures = LoopConfig::new().with_metrics_every(Duration::from_secs(3600));
    let server = Server::bind(
        "127.0.0.1:0".parse().unwrap(),
        ServerConfig::new().with_threads(1).with_loop(no_figures),
        make_conn,
        move |_| Echo {
            loop_slot: Arc::clone(&handler_slot),
        },
    )
    .unwrap();
    let stream = TcpStream::connect(server.local_addr()).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let conn: Connection<DynStack, LengthDelimited> = client_stack.connection().unwrap();
    let mut client = Blocking::new(stream, conn);
    let payload: Vec<u8> = b"a message of some sixty-four bytes, echoed over and over again.."
        .iter()
        .copied()
        .cycle()
        .take(64)
        .collect();
    // Warm-up: handshakes, buffers grown to their working size.
    echo(&mut client, N, &payload);
    let slot = *loop_slot.get().expect("the server echoed");
    (client, slot, payload, server)
}

const N: usize = 2_000;

/// Plain and zstd: nothing allocated per message.
fn check_none(name: &str, stack: StackOptions) {
    let (mut client, slot, payload, server) = start(stack.clone(), stack);
    let first = allocations(&mut client, slot, N, &payload);
    let second = allocations(&mut client, slot, 10 * N, &payload);
    println!(
        "{name}: {first} allocations for {N} echoes, {second} for {}",
        10 * N
    );
    // A few for what happens now and then (a buffer grown to a new size),
    // never one per message or per turn.
    assert!(
        second <= first + 8 && second <= 16,
        "{name}: {first} allocations for {N} echoes, {second} for {}: they grow with the count",
        10 * N
    );
    drop(client);
    server.stop().unwrap();
}

#[test]
fn plain_allocates_nothing_per_message() {
    check_none("plain", StackOptions::default());
}

#[test]
fn zstd_allocates_nothing_per_message() {
    check_none(
        "zstd",
        StackOptions {
            zstd: Some(ZstdConfig::new()),
            ..StackOptions::default()
        },
    );
}

#[test]
fn tls_allocates_only_in_rustls_and_less_than_once_per_message() {
    let (server_tls, client_tls) = dev_tls().unwrap();
    let tls = |side| StackOptions {
        tls: Some(side),
        ..StackOptions::default()
    };
    let (mut client, slot, payload, server) = start(tls(server_tls), tls(client_tls));
    let counted = allocations(&mut client, slot, N, &payload);
    TRACED_SLOT.store(slot, Ordering::Relaxed);
    echo(&mut client, N, &payload);
    TRACED_SLOT.store(usize::MAX, Ordering::Relaxed);
    let traced = std::mem::take(&mut *TRACED.lock().unwrap());
    let ours: Vec<&Traced> = traced.iter().filter(|t| !t.by_rustls).collect();
    println!(
        "tls: {counted} allocations for {N} echoes; traced {} for {N} more, {} outside rustls",
        traced.len(),
        ours.len()
    );
    assert!(
        ours.is_empty(),
        "allocated outside rustls:\n{}",
        ours[0].backtrace
    );
    // Bursts of 16 messages: a record or two each way per burst, at two
    // allocations each; one per message would be a record per message.
    let bound = N / 4;
    assert!(
        counted < bound as u64 && traced.len() < bound,
        "{counted} and {} allocations for {N} echoes (at most {bound}): records are not batched",
        traced.len()
    );
    drop(client);
    server.stop().unwrap();
}
