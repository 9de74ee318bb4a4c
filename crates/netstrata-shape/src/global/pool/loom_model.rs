//! Loom models of the pool: every interleaving (up to loom's preemption
//! bound) of connections taking, passing, giving up and giving back tickets
//! while the bucket is refilled and the limit changes. Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p netstrata-shape --release --lib loom`.
//!
//! Each model keeps a ledger of the bytes its connections passed and then
//! checks the two promises of a token bucket: the free bytes never exceed
//! the burst, and what passed plus what is still free never exceeds what the
//! bucket started with plus what the rate earned (a limit change forgives
//! debt, but never so that forgiven bytes can pass).

use loom::sync::Arc;
use loom::thread;

use super::{Pool, Status};
use crate::limit::{Limit, NS, ShapeConfig};

/// A byte per millisecond.
const RATE: u64 = 1000;
const BURST: u64 = 100;

fn limit() -> Limit {
    Limit::new(RATE, BURST).unwrap()
}

fn full_pool() -> Arc<Pool> {
    let limit = limit();
    Arc::new(Pool::new(
        Some(limit),
        &ShapeConfig::new().with_outbound(limit),
    ))
}

/// A pool whose starting burst has passed (the ledger's first entry).
fn drained_pool() -> (Arc<Pool>, u64) {
    let pool = full_pool();
    assert!(pool.try_take(BURST));
    (pool, BURST)
}

/// Bytes the rate earns in `ns`.
fn earned(ns: u64) -> u64 {
    RATE * ns / NS
}

/// A connection's turn, as the shaper takes it: a ticket for `len` bytes,
/// passed whole if covered at once, else queued and then given up (the
/// connection is dropped). Returns the bytes passed.
fn take_or_give_up(pool: &Pool, len: u64) -> u64 {
    let mut ticket = pool.reserve(len);
    match pool.status(&ticket) {
        Status::Covered => {
            pool.done(ticket);
            len
        }
        Status::Waiting => {
            pool.queue(&mut ticket);
            pool.abandon(ticket, Some(limit()));
            0
        }
        // Taken during a limit change: dropped, a new one is taken.
        Status::Void => 0,
    }
}

/// The bucket's promises, once every thread is done.
fn check(pool: &Pool, passed: u64, allowed: u64) {
    let level = pool.level();
    assert!(level <= BURST as i64, "{level} free bytes, burst {BURST}");
    let free = u64::try_from(level).unwrap_or(0);
    assert!(
        passed + free <= allowed,
        "{passed} bytes passed and {free} free, of {allowed} allowed"
    );
}

#[test]
fn loom_two_connections_take_while_the_bucket_refills() {
    loom::model(|| {
        let pool = full_pool();
        let other = {
            let pool = Arc::clone(&pool);
            thread::spawn(move || take_or_give_up(&pool, 60))
        };
        let mut passed = take_or_give_up(&pool, 60);
        pool.refill(50_000_000, limit());
        passed += other.join().unwrap();
        check(&pool, passed, BURST + earned(50_000_000));
    });
}

#[test]
fn loom_a_waiting_ticket_given_up_while_the_bucket_refills() {
    loom::model(|| {
        let (pool, mut passed) = drained_pool();
        let dropped = {
            let pool = Arc::clone(&pool);
            thread::spawn(move || take_or_give_up(&pool, 50))
        };
        // Long enough to fill the bucket whatever is queued.
        pool.refill(NS, limit());
        passed += dropped.join().unwrap();
        check(&pool, passed, BURST + earned(NS));
    });
}

#[test]
fn loom_a_waiting_ticket_given_up_during_a_limit_change() {
    loom::model(|| {
        let (pool, mut passed) = drained_pool();
        let dropped = {
            let pool = Arc::clone(&pool);
            thread::spawn(move || take_or_give_up(&pool, 50))
        };
        pool.set_limit(Some(limit()));
        passed += dropped.join().unwrap();
        // Nothing was earned: the forgiven debt must not pass.
        check(&pool, passed, BURST);
    });
}

#[test]
fn loom_a_queued_ticket_never_passes_on_forgiven_debt() {
    loom::model(|| {
        let (pool, mut passed) = drained_pool();
        let mut ticket = pool.reserve(50);
        assert_eq!(pool.status(&ticket), Status::Waiting);
        pool.queue(&mut ticket);
        let waiting = {
            let pool = Arc::clone(&pool);
            thread::spawn(move || {
                // Its wake-up: passes the ticket if covered, else takes a
                // new one (the limit changed) and passes that if covered.
                match pool.status(&ticket) {
                    Status::Covered => {
                        pool.done(ticket);
                        return 50;
                    }
                    Status::Waiting => return 0,
                    Status::Void => pool.done(ticket),
                }
                take_or_give_up(&pool, 50)
            })
        };
        pool.set_limit(Some(limit()));
        passed += waiting.join().unwrap();
        check(&pool, passed, BURST);
    });
}

#[test]
fn loom_free_takes_and_returned_credit_keep_the_burst() {
    loom::model(|| {
        let pool = full_pool();
        let taker = {
            let pool = Arc::clone(&pool);
            thread::spawn(move || if pool.try_take(80) { 80 } else { 0 })
        };
        // A covered grant of which only part passes: the rest goes back.
        let mut passed = 0;
        let ticket = pool.reserve(50);
        if pool.status(&ticket) == Status::Covered {
            passed += 30;
            pool.give_back(20, Some(limit()));
        }
        pool.done(ticket);
        pool.refill(30_000_000, limit());
        passed += taker.join().unwrap();
        check(&pool, passed, BURST + earned(30_000_000));
    });
}
