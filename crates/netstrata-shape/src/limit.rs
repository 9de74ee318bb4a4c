//! Limits (a rate and a burst), the configuration of a shaper, and the cell
//! through which a limit changes at run time.

use std::time::Duration;

use crate::ShapeError;
use crate::sync::atomic::{AtomicU64, Ordering, fence};

/// Nanoseconds per second: buckets count in bytes and nanoseconds, so
/// `rate × elapsed_ns` is an exact number of nano-bytes.
pub(crate) const NS: u64 = 1_000_000_000;

/// A grant is at most this much of a bucket's rate (5 ms): a saturated
/// direction wakes at most 200 times a second, and any window of a few
/// seconds is accurate to a fraction of a percent.
pub const GRANT_INTERVAL: Duration = Duration::from_millis(5);

/// The smallest grant worth a wake-up (16 bytes), unless less is pending or
/// the burst is smaller: a 1-byte trickle never costs a timer per byte.
pub const MIN_GRANT: u64 = 16;

/// Every connection waiting on a global limit is served at least once per
/// round of this length (50 ms): with `n` connections waiting, a global
/// grant is `min(5 ms, 50 ms / n)` of the global rate.
pub const FAIR_ROUND: Duration = Duration::from_millis(50);

/// Which way bytes flow through a shaper.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the peer: reading (the layer's inbound side).
    Inbound,
    /// To the peer: writing (the layer's outbound side, datagram sends).
    Outbound,
}

impl Direction {
    pub(crate) fn index(self) -> usize {
        match self {
            Self::Inbound => 0,
            Self::Outbound => 1,
        }
    }
}

/// A token bucket: a sustained `rate` in bytes per second and a `burst`,
/// the most bytes that may pass at once (the bucket's capacity).
///
/// Over any interval of `t` seconds a limited direction passes at most
/// `burst + rate × t` bytes. A bucket starts full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Limit {
    rate: u64,
    burst: u64,
}

impl Limit {
    /// The largest rate (1 TiB/s), which keeps every product of a rate and a
    /// time in nanoseconds exact in 128-bit integers.
    pub const MAX_RATE: u64 = 1 << 40;
    /// The largest burst (1 TiB).
    pub const MAX_BURST: u64 = 1 << 40;

    /// A limit of `rate` bytes per second with bursts of up to `burst` bytes.
    ///
    /// Both must be at least 1 ([`ShapeError::ZeroRate`],
    /// [`ShapeError::ZeroBurst`]) and at most [`Self::MAX_RATE`] and
    /// [`Self::MAX_BURST`].
    pub fn new(rate: u64, burst: u64) -> Result<Self, ShapeError> {
        if rate == 0 {
            return Err(ShapeError::ZeroRate);
        }
        if burst == 0 {
            return Err(ShapeError::ZeroBurst);
        }
        if rate > Self::MAX_RATE {
            return Err(ShapeError::RateTooHigh {
                rate,
                max: Self::MAX_RATE,
            });
        }
        if burst > Self::MAX_BURST {
            return Err(ShapeError::BurstTooLarge {
                burst,
                max: Self::MAX_BURST,
            });
        }
        Ok(Self { rate, burst })
    }

    /// A limit of `rate` bytes per second with the default burst: 50 ms of
    /// the rate, at least [`MIN_GRANT`] bytes. A full bucket then adds at
    /// most 1% to the bytes of any 5-second window.
    pub fn per_second(rate: u64) -> Result<Self, ShapeError> {
        Self::new(rate, (rate / 20).max(MIN_GRANT))
    }

    /// Bytes per second.
    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// The most bytes that may pass at once.
    pub fn burst(&self) -> u64 {
        self.burst
    }

    /// The bytes a saturated direction waits for before it passes more:
    /// [`GRANT_INTERVAL`] of the rate, at least [`MIN_GRANT`], at most the burst.
    pub fn grant(&self) -> u64 {
        self.grant_over(GRANT_INTERVAL)
    }

    /// `span` of the rate, at least [`MIN_GRANT`], at most the burst.
    pub(crate) fn grant_over(&self, span: Duration) -> u64 {
        // Spans are at most a grant interval: 64 bits suffice below ~3.6 TB/s.
        let span = u64::try_from(span.as_nanos()).unwrap_or(u64::MAX);
        let bytes = match self.rate.checked_mul(span) {
            Some(nb) => nb / NS,
            None => u64::try_from(u128::from(self.rate) * u128::from(span) / u128::from(NS))
                .unwrap_or(u64::MAX),
        };
        bytes.max(MIN_GRANT).min(self.burst)
    }

    /// Nanoseconds until `deficit` bytes (less `have_nanobytes` already
    /// accrued toward them) are earned, rounded up.
    pub(crate) fn ns_to_earn(&self, deficit: u64, have_nanobytes: u64) -> u64 {
        let need = u128::from(deficit) * u128::from(NS);
        let need = need.saturating_sub(u128::from(have_nanobytes));
        u64::try_from(need.div_ceil(u128::from(self.rate))).unwrap_or(u64::MAX)
    }
}

/// What a shaper, a datagram shaper or a global limiter is configured with:
/// a limit per direction (`None` is unlimited) and the window over which
/// current throughput is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShapeConfig {
    inbound: Option<Limit>,
    outbound: Option<Limit>,
    window: Duration,
}

impl ShapeConfig {
    /// The default throughput window (1 s).
    pub const DEFAULT_WINDOW: Duration = Duration::from_secs(1);
    /// The shortest throughput window (1 ms).
    pub const MIN_WINDOW: Duration = Duration::from_millis(1);

    /// Unlimited both ways, default window.
    pub fn new() -> Self {
        Self {
            inbound: None,
            outbound: None,
            window: Self::DEFAULT_WINDOW,
        }
    }

    /// Limits reading.
    pub fn with_inbound(mut self, limit: Limit) -> Self {
        self.inbound = Some(limit);
        self
    }

    /// Limits writing.
    pub fn with_outbound(mut self, limit: Limit) -> Self {
        self.outbound = Some(limit);
        self
    }

    /// Sets the limit of `direction` (`None`: unlimited).
    pub fn with_limit(mut self, direction: Direction, limit: Option<Limit>) -> Self {
        match direction {
            Direction::Inbound => self.inbound = limit,
            Direction::Outbound => self.outbound = limit,
        }
        self
    }

    /// Sets the window over which current throughput is measured (default
    /// [`Self::DEFAULT_WINDOW`], at least [`Self::MIN_WINDOW`]).
    pub fn with_window(mut self, window: Duration) -> Self {
        self.window = window.max(Self::MIN_WINDOW);
        self
    }

    /// The limit of `direction`.
    pub fn limit(&self, direction: Direction) -> Option<Limit> {
        match direction {
            Direction::Inbound => self.inbound,
            Direction::Outbound => self.outbound,
        }
    }

    /// The throughput window.
    pub fn window(&self) -> Duration {
        self.window
    }
}

impl Default for ShapeConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// A limit that another thread may change at any time: a sequence lock over
/// two atomics. Readers never block; a reader that overlaps a write retries.
/// The sequence number doubles as a generation, so a shaper re-reads the
/// limit only when it changed (one atomic load on the hot path).
#[derive(Debug)]
pub(crate) struct LimitCell {
    seq: AtomicU64,
    /// Bytes per second; 0 is unlimited.
    rate: AtomicU64,
    burst: AtomicU64,
}

impl LimitCell {
    pub(crate) fn new(limit: Option<Limit>) -> Self {
        let (rate, burst) = limit.map_or((0, 0), |l| (l.rate, l.burst));
        Self {
            seq: AtomicU64::new(0),
            rate: AtomicU64::new(rate),
            burst: AtomicU64::new(burst),
        }
    }

    /// Changes with every store; even when no store is under way.
    pub(crate) fn generation(&self) -> u64 {
        self.seq.load(Ordering::Acquire)
    }

    /// The limit and the generation it was read at.
    pub(crate) fn load(&self) -> (u64, Option<Limit>) {
        loop {
            let before = self.seq.load(Ordering::Acquire);
            if before & 1 == 1 {
                crate::sync::spin_loop();
                continue;
            }
            let rate = self.rate.load(Ordering::Relaxed);
            let burst = self.burst.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == before {
                let limit = (rate > 0).then_some(Limit { rate, burst });
                return (before, limit);
            }
        }
    }

    pub(crate) fn store(&self, limit: Option<Limit>) {
        let (rate, burst) = limit.map_or((0, 0), |l| (l.rate, l.burst));
        let mut seq = self.seq.load(Ordering::Relaxed);
        loop {
            if seq & 1 == 0 {
                match self.seq.compare_exchange_weak(
                    seq,
                    seq + 1,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => break,
                    Err(now) => seq = now,
                }
            } else {
                crate::sync::spin_loop();
                seq = self.seq.load(Ordering::Relaxed);
            }
        }
        fence(Ordering::Release);
        self.rate.store(rate, Ordering::Relaxed);
        self.burst.store(burst, Ordering::Relaxed);
        self.seq.store(seq + 2, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_validated() {
        assert_eq!(Limit::new(0, 10), Err(ShapeError::ZeroRate));
        assert_eq!(Limit::new(10, 0), Err(ShapeError::ZeroBurst));
        assert!(matches!(
            Limit::new(Limit::MAX_RATE + 1, 1),
            Err(ShapeError::RateTooHigh { .. })
        ));
        assert!(matches!(
            Limit::new(1, Limit::MAX_BURST + 1),
            Err(ShapeError::BurstTooLarge { .. })
        ));
        let l = Limit::per_second(1_000_000).unwrap();
        assert_eq!((l.rate(), l.burst()), (1_000_000, 50_000));
        assert_eq!(l.grant(), 5_000);
        assert_eq!(Limit::per_second(1024).unwrap().grant(), MIN_GRANT);
        assert_eq!(Limit::new(1024, 4).unwrap().grant(), 4);
    }

    #[test]
    fn time_to_earn_rounds_up() {
        let l = Limit::new(3, 10).unwrap();
        // 1 byte at 3 B/s is 333_333_333.3 ns.
        assert_eq!(l.ns_to_earn(1, 0), 333_333_334);
        assert_eq!(l.ns_to_earn(3, 0), NS);
        assert_eq!(l.ns_to_earn(1, 1_000_000_000), 0);
    }

    #[test]
    fn cell_round_trips_and_counts_generations() {
        let cell = LimitCell::new(None);
        let (g0, l) = cell.load();
        assert_eq!(l, None);
        let limit = Limit::new(5, 7).unwrap();
        cell.store(Some(limit));
        let (g1, l) = cell.load();
        assert_eq!(l, Some(limit));
        assert_ne!(g0, g1);
        assert_eq!(cell.generation(), g1);
    }
}
