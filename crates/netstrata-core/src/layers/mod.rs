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

use crate::{Error, Result};

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
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Ends {
    pub(crate) read: End,
    pub(crate) write: End,
}

impl Ends {
    /// Marks the read side closed once the input has ended and is consumed.
    pub(crate) fn after_inbound(&mut self, input_ended: bool, input_empty: bool) {
        if input_ended && input_empty {
            self.read = End::Closed;
        }
    }

    /// Refuses input after the write side closed.
    pub(crate) fn before_outbound(&self, layer: &'static str, input_empty: bool) -> Result<()> {
        if self.write == End::Closed && !input_empty {
            return Err(Error::misuse(layer, "write after shutdown"));
        }
        Ok(())
    }

    /// Marks the write side closed once a `Finish` has consumed all input.
    pub(crate) fn after_outbound(&mut self, flush: crate::Flush, input_empty: bool) {
        if flush == crate::Flush::Finish && input_empty {
            self.write = End::Closed;
        }
    }
}
