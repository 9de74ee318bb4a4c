//! The shaping layer and its handle.

use std::sync::{Arc, Mutex, PoisonError};
use std::task::Waker;
use std::time::Instant;

use bytes::BytesMut;
use netstrata_core::{Flush, Inbound, Layer, Outbound, Result, StickyError, transfer};

use crate::epoch::Epoch;
use crate::global::GlobalLimiter;
use crate::limit::{Direction, Limit, LimitCell, ShapeConfig};
use crate::meter::{Meter, TrafficStats};
use crate::throttle::{CallLimits, PoolLimit, Throttle, Wait};
use crate::{NAME, ShapeError};

/// One direction of what a shaper shares with its handles: its limit and
/// its traffic meter.
#[derive(Debug)]
pub(crate) struct SharedDirection {
    pub(crate) limit: LimitCell,
    pub(crate) meter: Meter,
}

/// What a shaper shares with its handles (and a datagram shaper with its):
/// the limits and meters of both directions, and the connection's waker.
#[derive(Debug)]
pub(crate) struct ShaperShared {
    pub(crate) epoch: Epoch,
    pub(crate) sides: [SharedDirection; 2],
    /// The connection's waker, woken when a handle changes a limit.
    waker: Mutex<Option<Waker>>,
}

impl ShaperShared {
    pub(crate) fn new(config: &ShapeConfig) -> Arc<Self> {
        let side = |d| SharedDirection {
            limit: LimitCell::new(config.limit(d)),
            meter: Meter::new(config.window()),
        };
        Arc::new(Self {
            epoch: Epoch::default(),
            sides: [side(Direction::Inbound), side(Direction::Outbound)],
            waker: Mutex::new(None),
        })
    }

    fn waker(&self) -> std::sync::MutexGuard<'_, Option<Waker>> {
        self.waker.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts `n` bytes that passed at `now`, here and globally; `throttle`
    /// keeps the writer's cursors.
    #[inline]
    pub(crate) fn record(
        &self,
        direction: Direction,
        global: Option<&GlobalLimiter>,
        throttle: &mut Throttle,
        now: Instant,
        n: u64,
    ) {
        if n == 0 {
            return;
        }
        let meter = &self.sides[direction.index()].meter;
        // A shaper is its connection meter's only writer.
        meter.record_with(&mut throttle.cursors[0], &self.epoch, now, n, true);
        if let Some(g) = global {
            let meter = &g.pool(direction).meter;
            meter.record_with(&mut throttle.cursors[1], g.epoch(), now, n, false);
        }
    }
}

/// A cloneable, `Send + Sync` handle to one shaper (or datagram shaper):
/// change its limits at run time from any thread, read its traffic figures.
///
/// A change takes effect on the shaper's next call and in its next
/// [`poll_timeout`](Layer::poll_timeout), and wakes the connection's waker
/// ([`Layer::set_waker`]) so that its driver asks at once: the reactor
/// does. The time since the shaper last refilled is credited at the new
/// rate.
#[derive(Debug, Clone)]
pub struct ShaperHandle {
    conn: Arc<ShaperShared>,
}

impl ShaperHandle {
    pub(crate) fn new(conn: Arc<ShaperShared>) -> Self {
        Self { conn }
    }

    /// Sets the connection's own limit for `direction` (`None`: unlimited).
    pub fn set_limit(&self, direction: Direction, limit: Option<Limit>) {
        self.conn.sides[direction.index()].limit.store(limit);
        if let Some(waker) = self.conn.waker().as_ref() {
            waker.wake_by_ref();
        }
    }

    /// The connection's own limit for `direction`.
    pub fn limit(&self, direction: Direction) -> Option<Limit> {
        self.conn.sides[direction.index()].limit.load().1
    }

    /// The connection's traffic figures as of `now`: bytes that passed the
    /// shaper each way, throughput over the configured window, peak.
    pub fn stats(&self, now: Instant) -> TrafficStats {
        let Some(at) = self.conn.epoch.peek_ns(now) else {
            return TrafficStats::default();
        };
        TrafficStats {
            inbound: self.conn.sides[0].meter.snapshot(at),
            outbound: self.conn.sides[1].meter.snapshot(at),
        }
    }
}

/// The limits of one direction for one call, from the caches in `throttle`.
pub(crate) fn call_limits<'a>(
    conn: &ShaperShared,
    global: Option<&'a GlobalLimiter>,
    direction: Direction,
    throttle: &mut Throttle,
) -> CallLimits<'a> {
    let local = throttle.local.get(&conn.sides[direction.index()].limit);
    let global = global.map(|g| {
        let pool = g.pool(direction);
        PoolLimit {
            pool,
            limit: throttle.global.get(&pool.limit),
            epoch: g.epoch(),
        }
    });
    CallLimits { local, global }
}

/// The limits of one direction as they are now (no cache: for getters).
pub(crate) fn fresh_limits<'a>(
    conn: &ShaperShared,
    global: Option<&'a GlobalLimiter>,
    direction: Direction,
) -> CallLimits<'a> {
    CallLimits {
        local: conn.sides[direction.index()].limit.load().1,
        global: global.map(|g| {
            let pool = g.pool(direction);
            PoolLimit {
                pool,
                limit: pool.limit.load().1,
                epoch: g.epoch(),
            }
        }),
    }
}

/// A sans-IO traffic-shaping layer: a token bucket per direction, an
/// optional share of a [`GlobalLimiter`], and traffic counters.
///
/// Place it just above the transport (the bottom of a stack), so that it
/// shapes wire bytes. It never buffers: bytes beyond the budget stay in the
/// caller's input buffer. Reading pauses: when the read budget is spent,
/// [`wants_read`](Layer::wants_read) turns `false` and
/// [`poll_timeout`](Layer::poll_timeout) names the exact instant the next
/// grant is available (see the crate docs for grants).
///
/// # Methods, by kind
/// - construction: [`new`](Self::new), [`unlimited`](Self::unlimited),
///   [`with_global`](Self::with_global);
/// - getters: [`handle`](Self::handle) (limits and figures, from any thread);
/// - the [`Layer`] calls, which a stack or [`netstrata_core::Connection`] makes.
#[derive(Debug)]
pub struct Shaper {
    conn: Arc<ShaperShared>,
    global: Option<GlobalLimiter>,
    /// Inbound, outbound.
    throttles: [Throttle; 2],
    read_closed: bool,
    write_closed: bool,
    /// The key of this shaper's waker in the global limiter's registry.
    global_waker: Option<u64>,
    /// The first error (a write after shutdown); the layer is dead after it.
    failed: StickyError,
}

impl Shaper {
    /// A shaper with `config`'s limits (and no global limiter).
    pub fn new(config: ShapeConfig) -> Self {
        Self {
            conn: ShaperShared::new(&config),
            global: None,
            throttles: Default::default(),
            read_closed: false,
            write_closed: false,
            global_waker: None,
            failed: StickyError::new(),
        }
    }

    /// A shaper that limits nothing and only counts (limits can be set later
    /// through its [`handle`](Self::handle)).
    pub fn unlimited() -> Self {
        Self::new(ShapeConfig::new())
    }

    /// Also holds the connection to its fair share of `global`'s limits.
    pub fn with_global(mut self, global: &GlobalLimiter) -> Self {
        self.global = Some(global.clone());
        self
    }

    /// A handle to change this shaper's limits and read its figures.
    pub fn handle(&self) -> ShaperHandle {
        ShaperHandle::new(self.conn.clone())
    }

    /// Moves up to `room` bytes of `input` to `output` as the budget of
    /// `direction` allows; returns how many moved.
    fn pass(
        &mut self,
        direction: Direction,
        now: Instant,
        input: &mut BytesMut,
        output: &mut BytesMut,
        room: usize,
    ) -> usize {
        let Self {
            conn,
            global,
            throttles,
            ..
        } = self;
        let throttle = &mut throttles[direction.index()];
        let b = call_limits(conn, global.as_ref(), direction, throttle);
        let moved = if b.is_unlimited() {
            if throttle.wait() != Wait::Idle {
                // The limits were lifted while it waited.
                throttle.abandon(&b);
            }
            transfer(input, output, room)
        } else {
            let mut moved = 0;
            loop {
                let max = input.len().min(room - moved) as u64;
                let allowed = throttle.allowance(now, max, &b);
                if allowed == 0 {
                    break;
                }
                // `allowed <= max`, which fits in a usize.
                moved += transfer(input, output, allowed as usize);
                throttle.passed(allowed, &b);
            }
            throttle.settle(&b);
            if direction == Direction::Inbound && input.is_empty() {
                throttle.idle_read(now, &b);
            }
            moved
        };
        conn.record(direction, global.as_ref(), throttle, now, moved as u64);
        moved
    }
}

impl Layer for Shaper {
    fn name(&self) -> &'static str {
        NAME
    }

    fn handle_inbound(&mut self, io: Inbound<'_>) -> Result<()> {
        self.failed.check()?;
        if !self.read_closed {
            self.pass(
                Direction::Inbound,
                io.now,
                io.input,
                io.upper,
                io.upper_room,
            );
            self.read_closed = io.input_ended && io.input.is_empty();
        }
        Ok(())
    }

    fn handle_outbound(&mut self, io: Outbound<'_>) -> Result<()> {
        self.failed.check()?;
        if self.write_closed {
            if io.input.is_empty() {
                return Ok(());
            }
            return Err(self.failed.fail(ShapeError::WriteAfterShutdown.into()));
        }
        self.pass(
            Direction::Outbound,
            io.now,
            io.input,
            io.lower,
            io.lower_room,
        );
        self.write_closed = io.flush == Flush::Finish && io.input.is_empty();
        Ok(())
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if self.failed.has_failed() {
            return None;
        }
        [Direction::Inbound, Direction::Outbound]
            .into_iter()
            .filter_map(|d| {
                let throttle = &self.throttles[d.index()];
                if throttle.wait() == Wait::Idle {
                    return None;
                }
                throttle.wake(&fresh_limits(&self.conn, self.global.as_ref(), d))
            })
            .min()
    }

    fn handle_timeout(&mut self, now: Instant, _down: &mut BytesMut) -> Result<()> {
        self.failed.check()?;
        for d in [Direction::Inbound, Direction::Outbound] {
            let b = fresh_limits(&self.conn, self.global.as_ref(), d);
            self.throttles[d.index()].expire(now, &b);
        }
        Ok(())
    }

    fn wants_read(&self) -> bool {
        !self.failed.has_failed()
            && (self.read_closed || self.throttles[Direction::Inbound.index()].wait() == Wait::Idle)
    }

    fn is_read_closed(&self) -> bool {
        self.read_closed
    }

    fn is_write_closed(&self) -> bool {
        self.write_closed
    }

    fn set_waker(&mut self, waker: &Waker) {
        *self.conn.waker() = Some(waker.clone());
        if let Some(global) = &self.global {
            self.global_waker = Some(global.register_waker(self.global_waker, waker));
        }
    }
}

impl Drop for Shaper {
    fn drop(&mut self) {
        if let (Some(global), Some(key)) = (&self.global, self.global_waker) {
            global.unregister_waker(key);
        }
        // A waiting ticket must not hold up the connections queued behind it.
        if self.global.is_some() {
            for d in [Direction::Inbound, Direction::Outbound] {
                let b = fresh_limits(&self.conn, self.global.as_ref(), d);
                self.throttles[d.index()].abandon(&b);
            }
        }
    }
}
