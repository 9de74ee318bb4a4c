//! One direction of a shaper: its own bucket, and its ticket in a global
//! limiter's queue. Shared by the stream layer and the datagram shaper.

use std::time::Instant;

use crate::bucket::Bucket;
use crate::epoch::Epoch;
use crate::global::{Pool, Status, Ticket};
use crate::limit::{Limit, LimitCell};
use crate::meter::Cursor;

/// What a direction is waiting for before it passes more bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Nothing: it passes bytes when it has them.
    #[default]
    Idle,
    /// Its own bucket to hold `need` bytes.
    Local { need: u64 },
    /// Its global ticket to be covered.
    Global,
}

/// The global side of a [`CallLimits`]: the global limiter's pool for one
/// direction and the limit in force on it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PoolLimit<'a> {
    pub(crate) pool: &'a Pool,
    pub(crate) limit: Option<Limit>,
    pub(crate) epoch: &'a Epoch,
}

/// The limits in force for one call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallLimits<'a> {
    pub(crate) local: Option<Limit>,
    pub(crate) global: Option<PoolLimit<'a>>,
}

impl CallLimits<'_> {
    /// Whether nothing limits this direction.
    pub(crate) fn is_unlimited(&self) -> bool {
        self.local.is_none() && self.global.is_none_or(|g| g.limit.is_none())
    }

    fn global_limited(&self) -> Option<(&Pool, Limit)> {
        self.global.and_then(|g| Some((g.pool, g.limit?)))
    }
}

/// A limit read from its cell only when the cell's generation changed.
#[derive(Debug, Default)]
pub(crate) struct Cached {
    generation: Option<u64>,
    limit: Option<Limit>,
}

impl Cached {
    pub(crate) fn get(&mut self, cell: &LimitCell) -> Option<Limit> {
        let generation = cell.generation();
        if self.generation != Some(generation) {
            let (generation, limit) = cell.load();
            self.generation = Some(generation);
            self.limit = limit;
        }
        self.limit
    }
}

/// How a datagram that does not fit now is treated (already resolved
/// against the time it was first offered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Deadline {
    /// Drop it unless it fits now.
    Now,
    /// Wait for it while it fits by this instant.
    At(Instant),
    /// Wait as long as it takes.
    Never,
}

/// A datagram's fate, before it is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    Send,
    WaitUntil(Instant),
    Drop,
}

/// One direction's shaping state: its own token bucket and its ticket in
/// the global queue. It throttles the bytes a direction passes.
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    bucket: Bucket,
    ticket: Option<Ticket>,
    /// Bytes of a covered global ticket not passed yet.
    credit: u64,
    wait: Wait,
    /// The `now` of the call that began the wait.
    since: Option<Instant>,
    pub(crate) local: Cached,
    pub(crate) global: Cached,
    /// Where this direction last counted: its connection meter, the global one.
    pub(crate) cursors: [Option<Cursor>; 2],
}

impl Throttle {
    pub(crate) fn wait(&self) -> Wait {
        self.wait
    }

    fn block(&mut self, now: Instant, wait: Wait) -> u64 {
        self.wait = wait;
        self.since = Some(now);
        0
    }

    /// Brings the buckets up to `now`; drops a ticket the global limit no
    /// longer needs.
    fn refill(&mut self, now: Instant, b: &CallLimits<'_>) {
        if let Some(limit) = b.local {
            self.bucket.refill(now, limit);
        }
        match b.global {
            Some(PoolLimit {
                pool,
                limit: Some(limit),
                epoch,
            }) => pool.refill(epoch.ns(now), limit),
            Some(PoolLimit { pool, .. }) => {
                // The global limit was lifted while a ticket waited.
                if let Some(ticket) = self.ticket.take() {
                    pool.abandon(ticket, None);
                }
                self.credit = 0;
            }
            None => self.credit = 0,
        }
    }

    /// How many of `max` bytes may pass now. Pass them, report them with
    /// [`passed`](Self::passed), and ask again; once this returns 0 the throttle
    /// knows what it waits for ([`wake`](Self::wake)). Call
    /// [`settle`](Self::settle) before the end of the caller's call.
    ///
    /// A direction passes bytes in grants: it waits until its own bucket
    /// holds `min(max, grant)` bytes, then (under a global limit) takes a
    /// ticket for at most a global grant and waits for it to be covered;
    /// then it passes everything both allow.
    pub(crate) fn allowance(&mut self, now: Instant, max: u64, b: &CallLimits<'_>) -> u64 {
        if max == 0 {
            // Nothing to pass now: a covered ticket goes back to the others.
            if self.ticket.is_some() {
                self.refill(now, b);
            }
            if let (Some(ticket), Some((pool, limit))) = (self.ticket, b.global_limited())
                && pool.status(&ticket) != Status::Waiting
            {
                self.ticket = None;
                pool.abandon(ticket, Some(limit));
            }
            if self.ticket.is_none() {
                self.wait = Wait::Idle;
            }
            return 0;
        }
        self.refill(now, b);
        let local = b.local.map_or(u64::MAX, |_| self.bucket.level());
        let global = b.global_limited();
        if let (Some((pool, limit)), Some(ticket)) = (global, self.ticket) {
            match pool.status(&ticket) {
                Status::Waiting => return self.block(now, Wait::Global),
                // The limit changed: take a grant sized for the new one.
                Status::Void => {}
                // Never more than the burst at once. (A ticket is sized
                // under the limit in force: a limit change voids older ones.)
                Status::Covered => self.credit += ticket.len().min(limit.burst()),
            }
            self.ticket = None;
            pool.done(ticket);
        }
        if self.credit == 0 {
            let need = b.local.map_or(1, |l| max.min(l.grant()));
            if local < need {
                return self.block(now, Wait::Local { need });
            }
        }
        if let Some((pool, limit)) = global
            && self.credit == 0
        {
            // Take what is free when nobody queues, else one fair grant.
            let mut grant = pool.grant(limit);
            if pool.uncontended() {
                grant = grant.max(u64::try_from(pool.level()).unwrap_or(0));
            }
            let want = max.min(local).min(grant);
            let mut ticket = pool.reserve(want);
            match pool.status(&ticket) {
                Status::Covered => self.credit = want,
                Status::Waiting => {
                    pool.queue(&mut ticket);
                    self.ticket = Some(ticket);
                    return self.block(now, Wait::Global);
                }
                // A limit change meanwhile: look again at once.
                Status::Void => return self.block(now, Wait::Global),
            }
        }
        let allowed = match global {
            Some(_) => max.min(local).min(self.credit),
            None => max.min(local),
        };
        if allowed == 0 {
            // Global credit, but the own bucket is dry: its limit was
            // lowered after the ticket was taken. Wait for the bucket (the
            // caller's `settle` gives the credit back meanwhile).
            let need = b.local.map_or(1, |l| max.min(l.grant()));
            return self.block(now, Wait::Local { need });
        }
        self.wait = Wait::Idle;
        allowed
    }

    /// Spends `n` bytes of the allowance.
    pub(crate) fn passed(&mut self, n: u64, b: &CallLimits<'_>) {
        if b.local.is_some() {
            self.bucket.take(n);
        }
        self.credit -= n.min(self.credit);
    }

    /// Gives back global credit that was not passed (the room ran out), so
    /// a connection never holds covered bytes between calls.
    pub(crate) fn settle(&mut self, b: &CallLimits<'_>) {
        if self.credit > 0 {
            if let Some(g) = b.global {
                g.pool.give_back(self.credit, g.limit);
            }
            self.credit = 0;
        }
    }

    /// Nothing is pending to read: reading stays paused while the own
    /// bucket holds less than a grant, so the driver does not read a
    /// trickle at a time.
    pub(crate) fn idle_read(&mut self, now: Instant, b: &CallLimits<'_>) {
        if self.ticket.is_some() {
            return;
        }
        self.wait = Wait::Idle;
        if let Some(limit) = b.local {
            self.bucket.refill(now, limit);
            if self.bucket.level() < limit.grant() {
                self.block(
                    now,
                    Wait::Local {
                        need: limit.grant(),
                    },
                );
            }
        }
    }

    /// The instant the wait ends, at the limits in `b` (read afresh, so a
    /// changed rate moves it at once). `None` when not waiting.
    pub(crate) fn wake(&self, b: &CallLimits<'_>) -> Option<Instant> {
        let since = self.since?;
        let at = match self.wait {
            Wait::Idle => return None,
            Wait::Local { need } => match b.local {
                Some(limit) => self.bucket.ready_at(need.min(limit.burst()), limit),
                None => Some(since),
            },
            Wait::Global => match (b.global, self.ticket) {
                (Some(g), Some(ticket)) if g.pool.is_current(&ticket) => match g.limit {
                    Some(limit) => g.epoch.at(g.pool.covered_at(&ticket, limit)),
                    None => Some(since),
                },
                // No ticket, or a void one: look again at once.
                _ => Some(since),
            },
        };
        at.map(|at| at.max(since))
    }

    /// A deadline at or before `now` has passed: stop waiting, so the next
    /// call looks again.
    pub(crate) fn expire(&mut self, now: Instant, b: &CallLimits<'_>) {
        if self.wake(b).is_some_and(|at| at <= now) {
            self.wait = Wait::Idle;
        }
    }

    /// Gives up any ticket and stops waiting (the shaper is dropped, the
    /// limits were lifted, a datagram is given up).
    pub(crate) fn abandon(&mut self, b: &CallLimits<'_>) {
        if let (Some(ticket), Some(g)) = (self.ticket.take(), b.global) {
            g.pool.abandon(ticket, g.limit);
        }
        self.settle(b);
        self.wait = Wait::Idle;
    }

    /// Decides on a datagram of `len` bytes (not 0): all of it passes, or
    /// none. A ticket taken to wait for it stays with the throttle until the
    /// datagram is offered again, or [`abandon`](Self::abandon)ed.
    pub(crate) fn datagram(
        &mut self,
        now: Instant,
        len: u64,
        deadline: Deadline,
        b: &CallLimits<'_>,
    ) -> Fate {
        if b.local.is_some_and(|l| len > l.burst())
            || b.global_limited().is_some_and(|(_, l)| len > l.burst())
        {
            // It can never fit, whatever the wait.
            self.abandon(b);
            return Fate::Drop;
        }
        let void = |t: &Ticket| b.global.is_some_and(|g| !g.pool.is_current(t));
        if self.ticket.is_some_and(|t| t.len() != len || void(&t)) {
            self.abandon(b);
        }
        self.refill(now, b);
        let within = |at: Instant| match deadline {
            Deadline::Now => at <= now,
            Deadline::At(end) => at <= end,
            Deadline::Never => true,
        };
        if let Some(limit) = b.local
            && self.bucket.level() < len
        {
            let at = self.bucket.ready_at(len, limit);
            self.abandon(b);
            return match at {
                Some(at) if within(at) => Fate::WaitUntil(at),
                _ => Fate::Drop,
            };
        }
        if let Some((pool, limit)) = b.global_limited() {
            let epoch = b.global.map(|g| g.epoch);
            let at_ns = |ns| epoch.and_then(|e| e.at(ns));
            match self.ticket.map(|t| (t, pool.status(&t))) {
                Some((ticket, Status::Void)) => {
                    // A limit change since the check above: look again.
                    self.ticket = None;
                    pool.done(ticket);
                    return Fate::WaitUntil(now);
                }
                Some((ticket, Status::Waiting)) => {
                    return match at_ns(pool.covered_at(&ticket, limit)) {
                        Some(at) if within(at) => Fate::WaitUntil(at.max(now)),
                        _ => {
                            self.abandon(b);
                            Fate::Drop
                        }
                    };
                }
                Some((ticket, Status::Covered)) => {
                    self.ticket = None;
                    pool.done(ticket);
                }
                None if deadline == Deadline::Now => {
                    if !pool.try_take(len) {
                        return Fate::Drop;
                    }
                }
                None => {
                    if !at_ns(pool.predict(len, limit)).is_some_and(within) {
                        return Fate::Drop;
                    }
                    let mut ticket = pool.reserve(len);
                    match pool.status(&ticket) {
                        Status::Covered => {}
                        Status::Waiting => {
                            pool.queue(&mut ticket);
                            self.ticket = Some(ticket);
                            let at = at_ns(pool.covered_at(&ticket, limit));
                            return Fate::WaitUntil(at.unwrap_or(now).max(now));
                        }
                        // A limit change meanwhile: look again at once.
                        Status::Void => return Fate::WaitUntil(now),
                    }
                }
            }
        }
        if b.local.is_some() {
            self.bucket.take(len);
        }
        Fate::Send
    }
}
