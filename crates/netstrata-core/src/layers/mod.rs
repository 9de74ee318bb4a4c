//! Small layers that prove the contract and serve as templates for your own.
//!
//! - [`PassThrough`] forwards bytes unchanged; put it anywhere in a stack to
//!   read the byte counters at that point.
//! - [`Xor`] really transforms bytes (a repeating-key XOR). It is an
//!   obfuscation example, **not security**.
//! - [`Checksummed`] has a wire format of its own: records, an end-of-stream
//!   record and a checksum, so it tells a clean end from truncation.

mod checksummed;
mod pass_through;
mod xor;

pub use checksummed::Checksummed;
pub use pass_through::PassThrough;
pub use xor::Xor;

use crate::{Error, Flush, Result, StickyError};

/// Which end of its streams a simple layer has reached, one per direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum End {
    /// Bytes still flow.
    #[default]
    Open,
    /// The stream ended cleanly.
    Closed,
}

/// Bookkeeping shared by layers that end a direction when their input ends
/// and add nothing of their own at shutdown.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ends {
    pub(crate) read: End,
    pub(crate) write: End,
    pub(crate) failed: StickyError,
}

impl Ends {
    /// Refuses every call after an error (contract rule 7).
    pub(crate) fn before_inbound(&self) -> Result<()> {
        self.failed.check()
    }

    /// Marks the read side closed once the input has ended and is consumed.
    pub(crate) fn after_inbound(&mut self, input_ended: bool, input_empty: bool) {
        if input_ended && input_empty {
            self.read = End::Closed;
        }
    }

    /// Refuses every call after an error, and input after the write side
    /// closed (which is the first error).
    pub(crate) fn before_outbound(&mut self, layer: &'static str, input_empty: bool) -> Result<()> {
        self.failed.check()?;
        if self.write == End::Closed && !input_empty {
            return Err(self
                .failed
                .fail(Error::misuse(layer, "write after shutdown")));
        }
        Ok(())
    }

    /// Whether the layer takes input: not after an error.
    pub(crate) fn wants_read(&self) -> bool {
        !self.failed.has_failed()
    }

    /// Marks the write side closed once a `Finish` has consumed all input.
    pub(crate) fn after_outbound(&mut self, flush: Flush, input_empty: bool) {
        if flush == Flush::Finish && input_empty {
            self.write = End::Closed;
        }
    }
}
