//! Instants as nanosecond counts, for state kept in atomics.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The origin of a shared nanosecond clock: the `now` of the first call
/// that needed one. No clock is read; instants only come from callers.
#[derive(Debug, Default)]
pub(crate) struct Epoch(OnceLock<Instant>);

impl Epoch {
    /// Nanoseconds from the epoch to `now` (0 for an earlier `now`); the
    /// first call sets the epoch.
    pub(crate) fn ns(&self, now: Instant) -> u64 {
        let epoch = *self.0.get_or_init(|| now);
        since(epoch, now)
    }

    /// Like [`ns`](Self::ns), but `None` while no call has set the epoch.
    pub(crate) fn peek_ns(&self, now: Instant) -> Option<u64> {
        self.0.get().map(|&epoch| since(epoch, now))
    }

    /// The instant `ns` nanoseconds after the epoch.
    pub(crate) fn at(&self, ns: u64) -> Option<Instant> {
        self.0.get()?.checked_add(Duration::from_nanos(ns))
    }
}

fn since(epoch: Instant, now: Instant) -> u64 {
    u64::try_from(now.saturating_duration_since(epoch).as_nanos()).unwrap_or(u64::MAX)
}
