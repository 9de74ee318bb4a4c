//! `Connection::take_transmit` used as the reactor's io_uring driver uses
//! it (several runs for one write, more only while `wire_ready` says some
//! are ready, the runs dropped when the write completes) allocates nothing
//! in steady state, on a stack that passes bytes through and on one that
//! copies them (a layer that rewrites every byte). Taking another run
//! after the first would run the stack again into a buffer the first run
//! still shares, and allocate a new one. (A test binary of its own: it
//! counts the process's allocations.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use netstrata_core::layers::Xor;
use netstrata_core::{Codec, Connection, Layer, RawCodec, Stack};

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

struct Counting;

// SAFETY: every call is passed to the system allocator unchanged; the
// count is an atomic increment, which does not allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const RUNS: usize = 16;
const SEND_MAX: usize = 256 * 1024;

/// One turn: 256 messages of 1 KiB sent, then written in sends of up to
/// 16 runs and 256 KiB, each completing before the next. Returns the
/// bytes written.
fn turn<S: Layer, C: Codec>(conn: &mut Connection<S, C>, sending: &mut Vec<Bytes>) -> usize {
    let now = Instant::now();
    for _ in 0..256 {
        conn.send(&[7; 1024]).unwrap();
    }
    let mut written = 0;
    loop {
        let mut budget = SEND_MAX;
        while sending.len() < RUNS && budget > 0 {
            if !sending.is_empty() && conn.wire_ready() == 0 {
                break;
            }
            let Some(run) = conn.take_transmit(now, budget).unwrap() else {
                break;
            };
            budget -= run.len();
            sending.push(run);
        }
        if sending.is_empty() {
            return written;
        }
        written += sending.iter().map(Bytes::len).sum::<usize>();
        // The send completed: its runs go back to their buffers.
        sending.clear();
    }
}

fn allocations_in_steady_state<S: Layer>(mut conn: Connection<S, RawCodec>) -> u64 {
    let mut sending = Vec::with_capacity(RUNS);
    for _ in 0..5 {
        assert_eq!(turn(&mut conn, &mut sending), 256 * 1024);
    }
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..100 {
        assert_eq!(turn(&mut conn, &mut sending), 256 * 1024);
    }
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

#[test]
fn taking_runs_for_one_write_allocates_nothing() {
    let plain = Connection::new(Stack::new(()), RawCodec::new());
    assert_eq!(
        allocations_in_steady_state(plain),
        0,
        "a pass-through stack"
    );
    let copying = Connection::new(Stack::new((Xor::new([0x5a]),)), RawCodec::new());
    assert_eq!(allocations_in_steady_state(copying), 0, "a copying stack");
}
