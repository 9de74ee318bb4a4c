//! The memory budget that the decoders of many connections share.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use crate::ZstdError;

/// Memory that the zstd decoders of many connections draw from, so that
/// what peers can make a process allocate has one bound, not one per
/// connection.
///
/// A decoder learns the window a frame needs from its header (RFC 8878
/// §3.1.1.1) before zstd allocates anything, and reserves what zstd's
/// context will then hold (see [`crate::ZstdConfig`] for the formula:
/// about `window + 478 KiB` above 128 KiB). The reservation stays while the
/// context lives and is returned when it is freed: when the connection
/// closes or fails, or when it goes idle between two frames. A frame the
/// budget cannot cover fails that connection alone with
/// [`ZstdError::BudgetExhausted`], a local limit
/// ([`netstrata_core::Error::LocalLimit`]), not a fault of the peer.
///
/// Cloning is cheap and every clone draws from the same budget. Every
/// [`crate::ZstdConfig::new`] starts with the one of the process,
/// [`DecoderBudget::process`] (1 GiB); give a group of connections a budget
/// of its own with [`crate::ZstdConfig::with_decoder_budget`].
///
/// ```
/// use netstrata_zstd::{DecoderBudget, ZstdConfig};
///
/// // 64 MiB for the decoders of one service, whatever its peers send.
/// let budget = DecoderBudget::new(64 << 20);
/// let config = ZstdConfig::new().with_decoder_budget(budget.clone());
/// assert_eq!(budget.in_use(), 0);
/// assert_eq!(config.decoder_budget().capacity(), 64 << 20);
/// ```
#[derive(Clone)]
pub struct DecoderBudget(Arc<Pool>);

struct Pool {
    capacity: usize,
    in_use: AtomicUsize,
    refused: AtomicU64,
}

impl DecoderBudget {
    /// Capacity of the process's budget: 1 GiB. That is about 4,700
    /// decoders at this crate's default window (2^15: 222 KiB each), 415 at
    /// the 2 MiB window of zstd's level 3 (2.5 MiB each) or 120 at the
    /// 8 MiB limit (8.5 MiB each), open at once.
    pub const DEFAULT_CAPACITY: usize = 1 << 30;

    /// A budget of `capacity` bytes, shared by the clones of what is
    /// returned.
    pub fn new(capacity: usize) -> Self {
        Self(Arc::new(Pool {
            capacity,
            in_use: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
        }))
    }

    /// The process's budget, [`Self::DEFAULT_CAPACITY`] bytes, which every
    /// [`crate::ZstdConfig::new`] uses until told otherwise.
    pub fn process() -> Self {
        static PROCESS: OnceLock<DecoderBudget> = OnceLock::new();
        PROCESS
            .get_or_init(|| Self::new(Self::DEFAULT_CAPACITY))
            .clone()
    }

    /// The most the decoders may hold together, in bytes.
    pub fn capacity(&self) -> usize {
        self.0.capacity
    }

    /// Bytes reserved by live decoders now.
    pub fn in_use(&self) -> usize {
        self.0.in_use.load(Ordering::Acquire)
    }

    /// Bytes still free.
    pub fn available(&self) -> usize {
        self.capacity().saturating_sub(self.in_use())
    }

    /// How many frames were refused so far because the budget could not
    /// cover them.
    pub fn refused(&self) -> u64 {
        self.0.refused.load(Ordering::Relaxed)
    }

    /// Whether `self` and `other` draw from the same budget.
    pub fn same(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Takes `bytes` from the budget, or refuses without taking any.
    fn take(&self, bytes: usize) -> Result<(), ZstdError> {
        let pool = &self.0;
        let taken = pool
            .in_use
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&n| n <= pool.capacity)
            });
        taken.map(drop).map_err(|used| {
            pool.refused.fetch_add(1, Ordering::Relaxed);
            ZstdError::BudgetExhausted {
                needed: bytes,
                available: pool.capacity.saturating_sub(used),
                capacity: pool.capacity,
            }
        })
    }

    fn give_back(&self, bytes: usize) {
        self.0.in_use.fetch_sub(bytes, Ordering::AcqRel);
    }
}

impl fmt::Debug for DecoderBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecoderBudget")
            .field("capacity", &self.capacity())
            .field("in_use", &self.in_use())
            .field("refused", &self.refused())
            .finish()
    }
}

/// Bytes one decoder holds of a [`DecoderBudget`]; given back when dropped.
pub(crate) struct Reservation {
    budget: DecoderBudget,
    bytes: usize,
}

impl Reservation {
    /// Reserves `bytes` of `budget`.
    pub(crate) fn new(budget: &DecoderBudget, bytes: usize) -> Result<Self, ZstdError> {
        budget.take(bytes)?;
        Ok(Self {
            budget: budget.clone(),
            bytes,
        })
    }

    /// Grows the reservation to at least `bytes` (a later frame with a
    /// larger window); a smaller request keeps what is held, since zstd
    /// keeps its larger buffers too.
    pub(crate) fn grow_to(&mut self, bytes: usize) -> Result<(), ZstdError> {
        if let Some(more) = bytes.checked_sub(self.bytes).filter(|&n| n > 0) {
            self.budget.take(more)?;
            self.bytes = bytes;
        }
        Ok(())
    }

    /// The bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.give_back(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_are_bounded_and_given_back() {
        let budget = DecoderBudget::new(1000);
        let a = Reservation::new(&budget, 600).unwrap();
        let err = Reservation::new(&budget, 500).err().unwrap();
        assert_eq!(
            err,
            ZstdError::BudgetExhausted {
                needed: 500,
                available: 400,
                capacity: 1000
            }
        );
        assert_eq!((budget.in_use(), budget.refused()), (600, 1));
        let mut b = Reservation::new(&budget, 400).unwrap();
        assert_eq!(budget.available(), 0);
        drop(a);
        b.grow_to(900).unwrap();
        b.grow_to(100).unwrap();
        assert_eq!((b.bytes(), budget.in_use()), (900, 900));
        assert!(b.grow_to(1001).is_err());
        assert_eq!(budget.in_use(), 900, "a refused growth takes nothing");
        drop(b);
        assert_eq!(budget.in_use(), 0);
    }

    #[test]
    fn clones_share_one_budget_and_the_process_has_one() {
        let budget = DecoderBudget::new(10);
        let clone = budget.clone();
        let _r = Reservation::new(&clone, 7).unwrap();
        assert_eq!(budget.in_use(), 7);
        assert!(budget.same(&clone));
        assert!(!budget.same(&DecoderBudget::new(10)));
        assert!(DecoderBudget::process().same(&DecoderBudget::process()));
        assert_eq!(
            DecoderBudget::process().capacity(),
            DecoderBudget::DEFAULT_CAPACITY
        );
    }

    #[test]
    fn a_budget_is_shared_across_threads() {
        let budget = DecoderBudget::new(1000);
        let held: Vec<_> = std::thread::scope(|s| {
            let tries: Vec<_> = (0..8)
                .map(|_| s.spawn(|| Reservation::new(&budget, 300).ok()))
                .collect();
            tries.into_iter().map(|t| t.join().unwrap()).collect()
        });
        assert_eq!(held.iter().flatten().count(), 3);
        assert_eq!(budget.in_use(), 900);
        assert_eq!(budget.refused(), 5);
        drop(held);
        assert_eq!(budget.in_use(), 0);
    }
}
