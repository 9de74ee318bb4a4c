//! A connection's own token bucket: owned by one shaper, so plain integers.

use std::time::{Duration, Instant};

use crate::limit::{Limit, NS};

/// A token bucket counted exactly: whole bytes plus the nano-bytes earned
/// toward the next one. `rate × elapsed_ns` is an integer number of
/// nano-bytes, so no rounding ever accumulates: after any sequence of calls
/// the bucket holds exactly what the rate earned, capped at the burst.
#[derive(Debug, Clone, Default)]
pub(crate) struct Bucket {
    level: u64,
    /// Nano-bytes toward the next byte (< 1e9).
    frac: u64,
    /// When `level` was last brought up to date; `None` before first use.
    last: Option<Instant>,
}

impl Bucket {
    /// Credits what the rate earned since the last call (a full bucket at
    /// first use). A `now` earlier than the last call credits nothing.
    pub(crate) fn refill(&mut self, now: Instant, limit: Limit) {
        let Some(last) = self.last else {
            self.level = limit.burst();
            self.frac = 0;
            self.last = Some(now);
            return;
        };
        if now > last {
            let elapsed = now.duration_since(last);
            // Nano-bytes earned, in 64 bits when they fit (short gaps).
            let earned = u64::try_from(elapsed.as_nanos())
                .ok()
                .and_then(|ns| ns.checked_mul(limit.rate()))
                .and_then(|nb| nb.checked_add(self.frac));
            let (bytes, frac) = match earned {
                Some(nb) => (nb / NS, nb % NS),
                None => {
                    let nb = elapsed.as_nanos() * u128::from(limit.rate()) + u128::from(self.frac);
                    let bytes = u64::try_from(nb / u128::from(NS)).unwrap_or(u64::MAX);
                    (bytes, (nb % u128::from(NS)) as u64)
                }
            };
            self.level = self.level.saturating_add(bytes);
            self.frac = frac;
            self.last = Some(now);
        }
        if self.level >= limit.burst() {
            // A full bucket discards what it cannot hold.
            self.level = limit.burst();
            self.frac = 0;
        }
    }

    /// Whole bytes available as of the last refill.
    pub(crate) fn level(&self) -> u64 {
        self.level
    }

    /// Spends `n` bytes (at most the level).
    pub(crate) fn take(&mut self, n: u64) {
        self.level -= n.min(self.level);
    }

    /// The exact instant the bucket holds `need` bytes, at the current
    /// rate. `need` must not exceed the burst. `None` before first use
    /// (the bucket is full then).
    pub(crate) fn ready_at(&self, need: u64, limit: Limit) -> Option<Instant> {
        let last = self.last?;
        if self.level >= need {
            return Some(last);
        }
        let ns = limit.ns_to_earn(need - self.level, self.frac);
        last.checked_add(Duration::from_nanos(ns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_full_and_refills_exactly() {
        let limit = Limit::new(3, 100).unwrap();
        let t0 = Instant::now();
        let mut b = Bucket::default();
        b.refill(t0, limit);
        assert_eq!(b.level(), 100);
        b.take(100);
        // 3 B/s: one byte every 333.33 ms. A million calls 1 ns apart lose nothing.
        let mut t = t0;
        for _ in 0..1_000_000 {
            t += Duration::from_nanos(1);
            b.refill(t, limit);
        }
        assert_eq!(b.level(), 0);
        assert_eq!(b.frac, 3_000_000);
        b.refill(t0 + Duration::from_secs(10), limit);
        assert_eq!(b.level(), 30);
        assert_eq!(b.frac, 0);
    }

    #[test]
    fn ready_at_is_the_exact_instant() {
        let limit = Limit::new(3, 100).unwrap();
        let t0 = Instant::now();
        let mut b = Bucket::default();
        b.refill(t0, limit);
        b.take(100);
        let at = b.ready_at(2, limit).unwrap();
        assert_eq!(at - t0, Duration::from_nanos(666_666_667));
        b.refill(at - Duration::from_nanos(1), limit);
        assert_eq!(b.level(), 1);
        b.refill(at, limit);
        assert_eq!(b.level(), 2);
    }

    #[test]
    fn a_lower_burst_caps_the_level() {
        let t0 = Instant::now();
        let mut b = Bucket::default();
        b.refill(t0, Limit::new(10, 100).unwrap());
        b.refill(t0, Limit::new(10, 5).unwrap());
        assert_eq!(b.level(), 5);
    }
}
