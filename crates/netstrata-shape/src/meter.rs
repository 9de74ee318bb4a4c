//! Traffic counters: total bytes, current and peak throughput, lock-free.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::epoch::Epoch;
use crate::limit::NS;

/// One direction's traffic figures at an instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Traffic {
    /// Bytes passed since the shaper or limiter was made.
    pub total_bytes: u64,
    /// Bytes per second over the last window (see
    /// [`ShapeConfig::with_window`](crate::ShapeConfig::with_window)),
    /// computed from the `now` given to the snapshot.
    pub throughput: u64,
    /// The highest throughput over any window seen so far.
    pub peak_throughput: u64,
}

/// Both directions' figures: a snapshot of a connection
/// ([`ShaperHandle::stats`](crate::ShaperHandle::stats)) or of everything
/// sharing a global limiter ([`GlobalLimiter::stats`](crate::GlobalLimiter::stats)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TrafficStats {
    /// Bytes read (from the peer).
    pub inbound: Traffic,
    /// Bytes written (to the peer).
    pub outbound: Traffic,
}

/// The window is cut into this many slots; current throughput covers the
/// last 7 whole slots plus the running one.
const SLOTS: u64 = 8;
/// A slot packs the low bits of its slot number (which slot of time it
/// counts) above its byte count, so one compare-and-swap both starts a new
/// slot and adds to it.
const COUNT_BITS: u32 = 40;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
const TAG_MASK: u64 = (1 << (64 - COUNT_BITS)) - 1;

fn tag(id: u64) -> u64 {
    id & TAG_MASK
}

/// The slot a writer last counted into, as instants, so that the next
/// count in the same slot needs no division.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cursor {
    end: Instant,
    id: u64,
}

/// Bytes counted per slot of time, over a ring of [`SLOTS`] slots. Any
/// number of threads may record and read at once.
#[derive(Debug)]
pub(crate) struct Meter {
    total: AtomicU64,
    slots: [AtomicU64; SLOTS as usize],
    /// One more than the newest slot number written (0: none yet).
    newest: AtomicU64,
    /// Bytes per second of the busiest complete window so far.
    peak: AtomicU64,
    slot_ns: u64,
}

impl Meter {
    pub(crate) fn new(window: Duration) -> Self {
        let window = u64::try_from(window.as_nanos()).unwrap_or(u64::MAX);
        Self {
            total: AtomicU64::new(0),
            slots: Default::default(),
            newest: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            slot_ns: (window / SLOTS).max(1),
        }
    }

    /// Counts `n` bytes at `at_ns` nanoseconds after the owner's epoch.
    pub(crate) fn record(&self, at_ns: u64, n: u64) {
        if n > 0 {
            self.total.fetch_add(n, Ordering::Relaxed);
            self.record_slot(at_ns / self.slot_ns, n);
        }
    }

    /// Counts `n` bytes at `now`, using and updating the writer's `cursor`
    /// (the bounds of the slot it last wrote), so that most calls need no
    /// clock arithmetic. With `exclusive`, the caller is the meter's only
    /// writer (a connection's own meter) and plain stores replace atomic
    /// read-modify-writes.
    #[inline]
    pub(crate) fn record_with(
        &self,
        cursor: &mut Option<Cursor>,
        epoch: &Epoch,
        now: Instant,
        n: u64,
        exclusive: bool,
    ) {
        if n == 0 {
            return;
        }
        match cursor {
            // A `now` before the slot (a driver's clock that stepped back)
            // counts in it too: figures move by one slot at most.
            Some(c) if now < c.end => {
                if exclusive {
                    // The cursor's slot holds the cursor's tag: the slow path wrote it.
                    let slot = &self.slots[(c.id % SLOTS) as usize];
                    let word = slot.load(Ordering::Relaxed);
                    let count = (word & COUNT_MASK).saturating_add(n).min(COUNT_MASK);
                    slot.store(tag(c.id) << COUNT_BITS | count, Ordering::Release);
                    let total = self.total.load(Ordering::Relaxed);
                    self.total.store(total.wrapping_add(n), Ordering::Relaxed);
                } else {
                    self.total.fetch_add(n, Ordering::Relaxed);
                    self.record_slot(c.id, n);
                }
            }
            _ => {
                let at = epoch.ns(now);
                self.record(at, n);
                let id = at / self.slot_ns;
                let start = epoch.at(id * self.slot_ns);
                *cursor = start.and_then(|start| {
                    let end = start.checked_add(Duration::from_nanos(self.slot_ns))?;
                    Some(Cursor { end, id })
                });
            }
        }
    }

    fn record_slot(&self, id: u64, n: u64) {
        let slot = &self.slots[(id % SLOTS) as usize];
        let mut word = slot.load(Ordering::Acquire);
        loop {
            // (A slot never written is 0; a written one counts at least a byte.)
            let fresh = word >> COUNT_BITS != tag(id) || word == 0;
            if fresh {
                // The first bytes of a new slot: the window that ended at
                // the newest slot is complete. Rate it before its oldest
                // slot (this one) is reused.
                let newest = self.newest.load(Ordering::Acquire);
                if newest != 0 && newest - 1 < id {
                    self.note_peak(newest - 1);
                }
            }
            let next = if fresh {
                tag(id) << COUNT_BITS | n.min(COUNT_MASK)
            } else {
                let count = (word & COUNT_MASK).saturating_add(n).min(COUNT_MASK);
                tag(id) << COUNT_BITS | count
            };
            match slot.compare_exchange_weak(word, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    if fresh {
                        self.newest.fetch_max(id + 1, Ordering::AcqRel);
                    }
                    return;
                }
                Err(now) => word = now,
            }
        }
    }

    /// Bytes in the slots numbered `first..=last` that still hold them.
    fn bytes_in(&self, first: u64, last: u64) -> u64 {
        (first..=last)
            .map(|id| self.slots[(id % SLOTS) as usize].load(Ordering::Acquire))
            .zip(first..=last)
            .filter(|(word, id)| word >> COUNT_BITS == tag(*id))
            .map(|(word, _)| word & COUNT_MASK)
            .sum()
    }

    /// Records the rate of the complete window ending with slot `last`.
    fn note_peak(&self, last: u64) {
        let first = last.saturating_sub(SLOTS - 1);
        let bytes = self.bytes_in(first, last);
        self.peak
            .fetch_max(per_second(bytes, SLOTS * self.slot_ns), Ordering::AcqRel);
    }

    /// The figures at `at_ns` nanoseconds after the owner's epoch.
    pub(crate) fn snapshot(&self, at_ns: u64) -> Traffic {
        let id = at_ns / self.slot_ns;
        let first = id.saturating_sub(SLOTS - 1);
        let bytes = self.bytes_in(first, id);
        // Seven whole slots before the running one, plus the running one so
        // far (slots before the epoch count as empty).
        let span = (SLOTS - 1) * self.slot_ns + (at_ns - id * self.slot_ns);
        let throughput = per_second(bytes, span);
        let newest = self.newest.load(Ordering::Acquire);
        if newest != 0 && newest - 1 < id {
            self.note_peak(newest - 1);
        }
        Traffic {
            total_bytes: self.total.load(Ordering::Relaxed),
            throughput,
            peak_throughput: self.peak.load(Ordering::Acquire).max(throughput),
        }
    }
}

fn per_second(bytes: u64, span_ns: u64) -> u64 {
    let rate = u128::from(bytes) * u128::from(NS) / u128::from(span_ns.max(1));
    u64::try_from(rate).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn steady_traffic_reads_its_rate() {
        let m = Meter::new(Duration::from_secs(1));
        // 1000 bytes every millisecond for 3 s: 1 MB/s.
        for t in 0..3000 {
            m.record(t * MS, 1000);
        }
        let s = m.snapshot(3000 * MS);
        assert_eq!(s.total_bytes, 3_000_000);
        assert_eq!(s.throughput, 1_000_000);
        assert_eq!(s.peak_throughput, 1_000_000);
    }

    #[test]
    fn peak_outlives_the_burst_and_throughput_decays() {
        let m = Meter::new(Duration::from_secs(1));
        for t in 0..1000 {
            m.record(t * MS, 5000);
        }
        for t in 1000..2000 {
            m.record(t * MS, 1000);
        }
        let s = m.snapshot(2000 * MS);
        assert_eq!(s.throughput, 1_000_000);
        assert_eq!(s.peak_throughput, 5_000_000);
        // Silence: nothing in the window, the peak stays.
        let s = m.snapshot(10_000 * MS);
        assert_eq!(s.throughput, 0);
        assert_eq!(s.peak_throughput, 5_000_000);
        assert_eq!(s.total_bytes, 6_000_000);
    }

    #[test]
    fn the_cursor_paths_count_like_the_general_one() {
        let t0 = Instant::now();
        let (general, owned, shared) = (
            Meter::new(Duration::from_secs(1)),
            Meter::new(Duration::from_secs(1)),
            Meter::new(Duration::from_secs(1)),
        );
        let epoch = Epoch::default();
        let (mut c1, mut c2) = (None, None);
        // Irregular times, crossing slots, windows and a silence.
        let mut t = 0u64;
        for i in 0..5000u64 {
            t += (i * 7919) % 3_000_000 + if i == 2500 { 5_000 * MS } else { 0 };
            let now = t0 + Duration::from_nanos(t);
            let n = 1 + i % 1500;
            general.record(epoch.ns(now), n);
            owned.record_with(&mut c1, &epoch, now, n, true);
            shared.record_with(&mut c2, &epoch, now, n, false);
        }
        for at in [t, t + 300 * MS, t + 2000 * MS] {
            assert_eq!(owned.snapshot(at), general.snapshot(at));
            assert_eq!(shared.snapshot(at), general.snapshot(at));
        }
        assert!(general.snapshot(t).throughput > 0);
    }

    #[test]
    fn a_burst_followed_by_silence_still_sets_the_peak() {
        let m = Meter::new(Duration::from_secs(1));
        m.record(10 * MS, 1_000_000);
        // The next record comes long after: the burst's window is rated first.
        m.record(60_000 * MS, 1);
        assert_eq!(m.snapshot(60_000 * MS).peak_throughput, 1_000_000);
    }
}
