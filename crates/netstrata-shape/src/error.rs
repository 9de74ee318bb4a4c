//! The crate's one error type: caller misuse.

/// What the caller did wrong. A shaper has no wire format, so the peer
/// cannot misbehave toward it: every variant is caller misuse, and becomes
/// [`netstrata_core::Error::Misuse`] naming the layer `"shape"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShapeError {
    /// A rate of 0 bytes/s. The bucket would never refill: after at most one
    /// burst the direction would stall with no instant to wake at. To lift a
    /// limit, set it to `None` (unlimited) instead.
    #[error("a rate of 0 bytes/s never refills")]
    ZeroRate,
    /// A burst of 0 bytes: no byte could ever pass.
    #[error("a burst of 0 bytes lets nothing pass")]
    ZeroBurst,
    /// A rate above [`Limit::MAX_RATE`](crate::Limit::MAX_RATE).
    #[error("rate of {rate} bytes/s above the maximum of {max}")]
    RateTooHigh {
        /// The rate asked for.
        rate: u64,
        /// The largest rate supported.
        max: u64,
    },
    /// A burst above [`Limit::MAX_BURST`](crate::Limit::MAX_BURST).
    #[error("burst of {burst} bytes above the maximum of {max}")]
    BurstTooLarge {
        /// The burst asked for.
        burst: u64,
        /// The largest burst supported.
        max: u64,
    },
    /// Bytes written after the outbound stream was finished.
    #[error("write after shutdown")]
    WriteAfterShutdown,
}

impl From<ShapeError> for netstrata_core::Error {
    fn from(e: ShapeError) -> Self {
        Self::misuse(crate::NAME, e)
    }
}
