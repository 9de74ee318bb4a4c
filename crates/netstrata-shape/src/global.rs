//! Global limits: one token bucket per direction shared by any number of
//! connections on any number of threads, with fair shares between them.
//! Each direction is a [`Pool`] (how the shares stay fair is told there);
//! this module holds the shared handle and the wakers of the shapers that
//! share it.

mod pool;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Waker;
use std::time::Instant;

use crate::epoch::Epoch;
use crate::limit::{Direction, Limit, ShapeConfig};
use crate::meter::TrafficStats;

pub(crate) use pool::{Pool, Status, Ticket};

#[derive(Debug)]
struct GlobalShared {
    epoch: Epoch,
    pools: [Pool; 2],
    /// The wakers of the shapers sharing the limits, woken when a limit
    /// changes. Locked only to register, unregister and on a change.
    wakers: Mutex<Wakers>,
}

#[derive(Debug, Default)]
struct Wakers {
    next: u64,
    by_key: HashMap<u64, Waker>,
}

/// Limits shared by many connections, on any threads: one token bucket per
/// direction, served fairly, plus traffic counters for everything that
/// passes through it.
///
/// # Fairness
///
/// Each direction is a token bucket in atomics and a first-come-first-served
/// queue of *tickets*. A connection that wants to pass bytes reserves its
/// next grant with one atomic `fetch_add` on the queue's tail, computes the
/// exact instant the bucket's supply covers the ticket, and asks to be
/// woken then:
///
/// ```text
///        passed            queued tickets, one per waiting connection
///   ─────────────────┬──────┬──────┬──────┬──────▶ bytes
///                 supply  [ c1  ][ c2  ][ c3  ]tail
///   supply grows at the rate (never more than `burst` past the tail)
/// ```
///
/// A connection holds at most one ticket per direction and takes the next
/// only after passing the last, so `n` saturated connections are served in
/// rounds, one grant each per round: each gets `rate / n`. An idle
/// connection takes no ticket and its share goes to the others at once; a
/// connection held below its share by its own limit takes tickets less
/// often and leaves the rest to the others. None is starved: a ticket is
/// covered after the tickets ahead of it, at an instant fixed when it was
/// taken, whatever the others do (a dropped connection's ticket keeps its
/// place and its bytes go unused, once). With `n`
/// connections waiting, a grant is `min(5 ms, 50 ms / n)` of the rate
/// ([`FAIR_ROUND`](crate::FAIR_ROUND)), so every waiting connection is
/// served at least every 50 ms or so. Datagram shapers with
/// [`DatagramPolicy::Drop`](crate::DatagramPolicy::Drop) never queue: they
/// take only bytes that are free.
///
/// A cheap handle (`Arc`): clone it into every [`Shaper`](crate::Shaper)
/// and [`DatagramShaper`](crate::DatagramShaper) that shares the limits.
/// Each connection is held to the stricter of its own limit and its share
/// of the global one. Lock-free: a shaper takes a grant with one atomic
/// `fetch_add`, and checks it with an atomic load.
#[derive(Debug, Clone)]
pub struct GlobalLimiter {
    shared: Arc<GlobalShared>,
}

impl GlobalLimiter {
    /// A limiter with `config`'s limits and throughput window. With no
    /// limit it only counts traffic.
    pub fn new(config: ShapeConfig) -> Self {
        let pool = |d| Pool::new(config.limit(d), &config);
        Self {
            shared: Arc::new(GlobalShared {
                epoch: Epoch::default(),
                pools: [pool(Direction::Inbound), pool(Direction::Outbound)],
                wakers: Mutex::default(),
            }),
        }
    }

    /// Changes the limit of `direction` (`None`: unlimited) for every
    /// connection sharing it. Takes effect on each shaper's next call and
    /// in its next [`poll_timeout`](netstrata_core::Layer::poll_timeout)
    /// (due at once for a connection waiting in the queue), and wakes the
    /// waker of every sharing shaper ([`Layer::set_waker`](netstrata_core::Layer::set_waker))
    /// so that their drivers ask at once: the queue
    /// starts afresh, every waiting connection taking a grant sized for the
    /// new limit, from an empty bucket; free bytes above a lower burst are
    /// discarded. The time since the bucket was last credited is credited
    /// at the new rate.
    pub fn set_limit(&self, direction: Direction, limit: Option<Limit>) {
        self.pool(direction).set_limit(limit);
        for waker in self.wakers().by_key.values() {
            waker.wake_by_ref();
        }
    }

    /// The limit of `direction`.
    pub fn limit(&self, direction: Direction) -> Option<Limit> {
        self.pool(direction).limit.load().1
    }

    /// Totals and throughput of everything that passed through the limiter,
    /// as of `now`.
    pub fn stats(&self, now: Instant) -> TrafficStats {
        let shared = &self.shared;
        let Some(ns) = shared.epoch.peek_ns(now) else {
            return TrafficStats::default();
        };
        TrafficStats {
            inbound: shared.pools[0].meter.snapshot(ns),
            outbound: shared.pools[1].meter.snapshot(ns),
        }
    }

    pub(crate) fn pool(&self, direction: Direction) -> &Pool {
        &self.shared.pools[direction.index()]
    }

    pub(crate) fn epoch(&self) -> &Epoch {
        &self.shared.epoch
    }

    fn wakers(&self) -> std::sync::MutexGuard<'_, Wakers> {
        // The map stays consistent whatever panicked while it was held.
        self.shared
            .wakers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers (or, with its key, replaces) a shaper's waker; returns its key.
    pub(crate) fn register_waker(&self, key: Option<u64>, waker: &Waker) -> u64 {
        let mut wakers = self.wakers();
        let key = key.unwrap_or_else(|| {
            wakers.next += 1;
            wakers.next
        });
        wakers.by_key.insert(key, waker.clone());
        key
    }

    pub(crate) fn unregister_waker(&self, key: u64) {
        self.wakers().by_key.remove(&key);
    }
}
