//! The atomics and lock of the lock-free parts (the global limiter's pool,
//! the limit cell): std's, or loom's when built with `--cfg loom` for the
//! model checks of the pool.

#[cfg(loom)]
pub(crate) use loom::sync::{Mutex, atomic};
#[cfg(not(loom))]
pub(crate) use std::sync::{Mutex, atomic};

/// A spin-wait hint; under loom, a yield, so that the model can run the
/// thread being waited for.
pub(crate) fn spin_loop() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::hint::spin_loop();
}
