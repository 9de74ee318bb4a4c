//! One direction of a global limiter: a token bucket in atomics and a
//! first-come-first-served queue of tickets, lock-free on the hot path.
//!
//! # How the shares stay fair
//!
//! A global bucket is three monotone counters, all in bytes and all
//! atomics:
//!
//! ```text
//!   supply ─ bytes the rate has earned so far (capped: supply ≤ tail + burst)
//!   tail   ─ bytes reserved so far
//!   clock  ─ the instant (ns) up to which the rate has been credited
//!
//!        served             queued tickets (each a connection's grant)
//!   ──────────────────┬──────┬──────┬──────┬───────▶ bytes
//!                  supply   [ c1  ][ c2  ][ c3  ]tail
//! ```
//!
//! A connection that wants to pass bytes *reserves* a grant: one
//! `fetch_add` on `tail` hands it the ticket `[tail, tail + len)`. The
//! ticket is covered once `supply` reaches its end, which happens at an
//! instant it can compute exactly from `clock`, `supply` and the rate; it
//! asks to be woken then ([`Layer::poll_timeout`](netstrata_core::Layer::poll_timeout)),
//! passes its grant, and reserves again if it still has bytes.
//!
//! Tickets are therefore served in the order they were taken, first come
//! first served, and a connection holds at most one ticket per direction.
//! When `n` connections are saturated, each takes its next ticket only after
//! its previous one was served, so the queue cycles through them in
//! rounds, each taking one grant per round: **each gets `rate / n`**, to
//! within one grant. A connection that goes idle takes no ticket; the
//! others' rounds get shorter and its share goes to them at once. A
//! connection also held back by its own limit takes tickets less often and
//! the rest goes to the others (max-min fairness). No connection can be
//! starved: a ticket is covered after at most the tickets ahead of it,
//! `(queued bytes) / rate` from now, whatever the others do.
//!
//! Grants are `min(5 ms, 50 ms / n)` of the global rate for `n` waiting
//! connections (at least [`MIN_GRANT`](crate::MIN_GRANT) bytes): a round
//! lasts at most about [`FAIR_ROUND`](crate::FAIR_ROUND), so shares are
//! even within a percent over a few seconds, with a wake-up per connection
//! per round rather than per byte.
//!
//! Rounding: credits are whole bytes and the clock moves forward by the
//! time they took, rounded up to the nanosecond, so the fraction of a byte
//! earned is carried to the next credit. Each credit loses less than 1 ns
//! of the rate (a few parts per million at hundreds of credits a second),
//! never invents any, and the rate is never exceeded.
//! `supply ≤ tail + burst` is enforced by compare-and-swap on `supply` alone
//! against a `tail` that only grows, so the burst holds under any
//! interleaving of threads.

use std::sync::PoisonError;

use crate::limit::{FAIR_ROUND, GRANT_INTERVAL, Limit, LimitCell, NS, ShapeConfig};
use crate::meter::Meter;
use crate::sync::Mutex;
use crate::sync::atomic::{AtomicU64, Ordering};

/// A reservation of `len` bytes in a global bucket: the bytes
/// `[end - len, end)` of its tail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ticket {
    end: u64,
    len: u64,
    /// The limiter's era (limit changes) when it was taken.
    era: u64,
    /// Counted among the waiting tickets.
    counted: bool,
}

impl Ticket {
    pub(crate) fn len(&self) -> u64 {
        self.len
    }
}

/// Where a [`Ticket`] stands ([`Pool::status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// A limit change since it was taken: take a new one.
    Void,
    /// Its bytes may pass.
    Covered,
    /// Queued until the bucket's supply reaches it.
    Waiting,
}

/// One direction of a global limiter.
#[derive(Debug)]
pub(crate) struct Pool {
    pub(crate) limit: LimitCell,
    clock: AtomicU64,
    supply: AtomicU64,
    tail: AtomicU64,
    /// Tickets taken and not yet seen covered: the connections in the queue.
    waiting: AtomicU64,
    /// Bumped twice by every limit change (odd during it): tickets of an
    /// older era are void.
    era: AtomicU64,
    /// Held by a limit change.
    changing: Mutex<()>,
    pub(crate) meter: Meter,
}

impl Pool {
    pub(crate) fn new(limit: Option<Limit>, config: &ShapeConfig) -> Self {
        Self {
            limit: LimitCell::new(limit),
            clock: AtomicU64::new(0),
            // A bucket starts full.
            supply: AtomicU64::new(limit.map_or(0, |l| l.burst())),
            tail: AtomicU64::new(0),
            waiting: AtomicU64::new(0),
            era: AtomicU64::new(0),
            changing: Mutex::new(()),
            meter: Meter::new(config.window()),
        }
    }

    /// Free bytes (negative: bytes reserved beyond what was earned).
    pub(crate) fn level(&self) -> i64 {
        let tail = self.tail.load(Ordering::Acquire);
        let supply = self.supply.load(Ordering::Acquire);
        supply.wrapping_sub(tail) as i64
    }

    /// Credits what the rate earned up to `now_ns`.
    pub(crate) fn refill(&self, now_ns: u64, limit: Limit) {
        let mut clock = self.clock.load(Ordering::Acquire);
        loop {
            if now_ns <= clock {
                return;
            }
            let earned = match (now_ns - clock).checked_mul(limit.rate()) {
                Some(nb) => u128::from(nb / NS),
                None => u128::from(now_ns - clock) * u128::from(limit.rate()) / u128::from(NS),
            };
            if earned == 0 {
                // Less than a byte: keep the time for the next call.
                return;
            }
            let room = (limit.burst() as i64).saturating_sub(self.level()).max(0) as u64;
            let (credit, to) = if earned >= u128::from(room) {
                // The bucket fills: what it cannot hold is discarded.
                (room, now_ns)
            } else {
                let credit = earned as u64;
                (credit, clock + limit.ns_to_earn(credit, 0))
            };
            match self
                .clock
                .compare_exchange(clock, to, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    self.add(credit, limit.burst());
                    return;
                }
                Err(now) => clock = now,
            }
        }
    }

    /// Adds `n` bytes to the supply, up to `burst` free bytes.
    fn add(&self, n: u64, burst: u64) {
        if n == 0 {
            return;
        }
        let mut supply = self.supply.load(Ordering::Acquire);
        loop {
            // `tail` only grows, so an old value caps more tightly, never less.
            let level = supply.wrapping_sub(self.tail.load(Ordering::Acquire)) as i64;
            let room = (burst as i64).saturating_sub(level);
            if room <= 0 {
                return;
            }
            let next = supply.wrapping_add(n.min(room as u64));
            match self.supply.compare_exchange_weak(
                supply,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(now) => supply = now,
            }
        }
    }

    /// Discards free bytes above a lowered burst (by reserving them).
    fn clamp(&self, burst: u64) {
        loop {
            let tail = self.tail.load(Ordering::Acquire);
            let level = self.supply.load(Ordering::Acquire).wrapping_sub(tail) as i64;
            if level <= burst as i64 {
                return;
            }
            let excess = level as u64 - burst;
            if self
                .tail
                .compare_exchange(
                    tail,
                    tail.wrapping_add(excess),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
            {
                return;
            }
        }
    }

    /// The size of the next grant: `min(5 ms, 50 ms / waiting)` of the rate.
    pub(crate) fn grant(&self, limit: Limit) -> u64 {
        let waiting = self.waiting.load(Ordering::Relaxed);
        let share = FAIR_ROUND / u32::try_from(waiting + 1).unwrap_or(u32::MAX);
        limit.grant_over(share.min(GRANT_INTERVAL))
    }

    /// Whether no connection is queued.
    pub(crate) fn uncontended(&self) -> bool {
        self.waiting.load(Ordering::Relaxed) == 0
    }

    /// Takes a ticket for `len` bytes at the end of the queue.
    pub(crate) fn reserve(&self, len: u64) -> Ticket {
        let era = self.era.load(Ordering::Acquire);
        let tail = self.tail.fetch_add(len, Ordering::AcqRel);
        Ticket {
            end: tail.wrapping_add(len),
            len,
            era,
            counted: false,
        }
    }

    /// Whether the ticket was taken under the limit now in force. A ticket
    /// from before a limit change, or taken during one (odd era), is void:
    /// its holder takes a new one.
    pub(crate) fn is_current(&self, ticket: &Ticket) -> bool {
        let era = self.era.load(Ordering::Acquire);
        ticket.era == era && era.is_multiple_of(2)
    }

    /// Where `ticket` stands. Coverage is read before the era: a limit
    /// change marks its era (odd) before it forgives debt, so supply that
    /// covers a ticket only thanks to that forgiveness is always seen with
    /// the ticket void — its bytes are never passed twice.
    pub(crate) fn status(&self, ticket: &Ticket) -> Status {
        let covered = self.is_covered(ticket);
        match (self.is_current(ticket), covered) {
            (false, _) => Status::Void,
            (true, true) => Status::Covered,
            (true, false) => Status::Waiting,
        }
    }

    /// Changes the limit: a new era (see [`new_era`](Self::new_era)), and
    /// free bytes above a lower burst discarded.
    pub(crate) fn set_limit(&self, limit: Option<Limit>) {
        self.limit.store(limit);
        self.new_era();
        if let Some(limit) = limit {
            self.clamp(limit.burst());
        }
    }

    /// Starts a new era after a limit change: the queued tickets, sized
    /// and placed for the old limit, become void and their debt is
    /// forgiven (the bucket is left empty, not above its burst), so every
    /// waiting connection takes a grant sized for the new limit at once,
    /// instead of draining old grants at a new, maybe far lower, rate.
    fn new_era(&self) {
        // One change at a time, so the era is odd exactly while one runs.
        let _one = self.changing.lock().unwrap_or_else(PoisonError::into_inner);
        // Odd while the debt is forgiven: tickets taken meanwhile are void,
        // and a reader that sees the forgiven supply sees the era changed.
        self.era.fetch_add(1, Ordering::AcqRel);
        let mut supply = self.supply.load(Ordering::Acquire);
        loop {
            let tail = self.tail.load(Ordering::Acquire);
            if (supply.wrapping_sub(tail) as i64) >= 0 {
                break;
            }
            match self.supply.compare_exchange_weak(
                supply,
                tail,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(now) => supply = now,
            }
        }
        self.era.fetch_add(1, Ordering::AcqRel);
    }

    /// Takes `len` bytes only if they are free now (no debt, no queueing).
    pub(crate) fn try_take(&self, len: u64) -> bool {
        let mut tail = self.tail.load(Ordering::Acquire);
        loop {
            // `supply` only grows: free bytes seen here stay free until
            // `tail` moves, which the compare-and-swap detects.
            let supply = self.supply.load(Ordering::Acquire);
            if (supply.wrapping_sub(tail) as i64) < len as i64 {
                return false;
            }
            match self.tail.compare_exchange_weak(
                tail,
                tail.wrapping_add(len),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(now) => tail = now,
            }
        }
    }

    /// Whether the supply has reached the ticket's end.
    pub(crate) fn is_covered(&self, ticket: &Ticket) -> bool {
        self.supply.load(Ordering::Acquire).wrapping_sub(ticket.end) as i64 >= 0
    }

    /// The instant (ns after the epoch) the ticket is covered at the
    /// current rate: exact, rounded up.
    pub(crate) fn covered_at(&self, ticket: &Ticket, limit: Limit) -> u64 {
        self.covered_at_end(ticket.end, limit)
    }

    /// When `len` more bytes reserved now would be covered.
    pub(crate) fn predict(&self, len: u64, limit: Limit) -> u64 {
        let end = self.tail.load(Ordering::Acquire).wrapping_add(len);
        self.covered_at_end(end, limit)
    }

    fn covered_at_end(&self, end: u64, limit: Limit) -> u64 {
        let clock = self.clock.load(Ordering::Acquire);
        let supply = self.supply.load(Ordering::Acquire);
        let deficit = end.wrapping_sub(supply) as i64;
        if deficit <= 0 {
            return clock;
        }
        clock.saturating_add(limit.ns_to_earn(deficit as u64, 0))
    }

    /// Counts a ticket that has to wait among the waiting ones.
    pub(crate) fn queue(&self, ticket: &mut Ticket) {
        if !ticket.counted {
            ticket.counted = true;
            self.waiting.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The ticket was seen covered (or is given up).
    pub(crate) fn done(&self, ticket: Ticket) {
        if ticket.counted {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Gives back `n` bytes of a covered ticket that will not be passed.
    pub(crate) fn give_back(&self, n: u64, limit: Option<Limit>) {
        if let Some(limit) = limit {
            self.add(n, limit.burst());
        }
    }

    /// Gives up a ticket: a covered one returns its bytes; a waiting one
    /// keeps its place and its bytes go unused (at most one grant, once).
    ///
    /// The tail never moves back, not even for the newest ticket: the
    /// burst cap of [`add`](Self::add) and the forgiveness of
    /// [`new_era`](Self::new_era) both read the tail before they write the
    /// supply, and a tail moved back in between left more than the burst
    /// free, or forgiven debt free to pass (found by the loom models).
    pub(crate) fn abandon(&self, ticket: Ticket, limit: Option<Limit>) {
        if self.status(&ticket) == Status::Covered {
            self.give_back(ticket.len, limit);
        }
        // Void: its debt was forgiven. Waiting: it stays in the queue.
        self.done(ticket);
    }
}

#[cfg(all(test, loom))]
mod loom_model;

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(rate: u64, burst: u64) -> (Pool, Limit) {
        let limit = Limit::new(rate, burst).unwrap();
        (
            Pool::new(Some(limit), &ShapeConfig::new().with_outbound(limit)),
            limit,
        )
    }

    #[test]
    fn tickets_are_served_in_order_at_exact_instants() {
        let (p, l) = pool(1000, 100);
        let a = p.reserve(100);
        assert!(p.is_covered(&a), "a full bucket covers the burst");
        let b = p.reserve(30);
        let c = p.reserve(20);
        assert_eq!(p.covered_at(&b, l), 30_000_000);
        assert_eq!(p.covered_at(&c, l), 50_000_000);
        p.refill(29_999_999, l);
        assert!(!p.is_covered(&b));
        p.refill(30_000_000, l);
        assert!(p.is_covered(&b) && !p.is_covered(&c));
        p.refill(50_000_000, l);
        assert!(p.is_covered(&c));
    }

    #[test]
    fn fractions_of_a_byte_are_carried() {
        // 3 B/s, refilled every 997 ns for a second: a byte every 333.33 ms,
        // each credit rounded up by less than a nanosecond.
        let (p, l) = pool(3, 10);
        assert!(p.try_take(10));
        for ns in (1..=1_000_000_000).step_by(997) {
            p.refill(ns, l);
        }
        assert_eq!(p.level(), 2);
        p.refill(1_000_000_001, l);
        assert_eq!(p.level(), 2);
        p.refill(1_000_000_002, l);
        assert_eq!(p.level(), 3);
    }

    #[test]
    fn the_burst_caps_the_supply_and_a_lower_burst_clamps_it() {
        let (p, l) = pool(1000, 100);
        p.refill(10 * NS, l);
        assert_eq!(p.level(), 100);
        p.clamp(40);
        assert_eq!(p.level(), 40);
        assert!(!p.try_take(41));
        assert!(p.try_take(40));
    }

    #[test]
    fn a_limit_change_voids_the_queue_and_forgives_its_debt() {
        let (p, l) = pool(1000, 100);
        assert!(p.try_take(100));
        let a = p.reserve(50);
        let mut b = p.reserve(50);
        p.queue(&mut b);
        p.new_era();
        assert!(!p.is_current(&a) && !p.is_current(&b));
        // Empty, not in debt, and not above the burst.
        assert_eq!(p.level(), 0);
        let c = p.reserve(10);
        assert!(p.is_current(&c));
        assert_eq!(p.covered_at(&c, l), 10_000_000);
        p.abandon(b, Some(l));
        assert_eq!(p.level(), -10, "a void ticket gives nothing back");
        assert!(p.uncontended());
    }

    #[test]
    fn an_abandoned_waiting_ticket_keeps_its_place() {
        let (p, l) = pool(1000, 100);
        assert!(p.try_take(100));
        let a = p.reserve(50);
        let b = p.reserve(50);
        // The newest as well as one in the middle.
        p.abandon(b, Some(l));
        assert_eq!(p.level(), -100);
        let c = p.reserve(10);
        p.abandon(a, Some(l));
        assert_eq!(p.level(), -110);
        assert_eq!(p.covered_at(&c, l), 110_000_000);
    }
}
