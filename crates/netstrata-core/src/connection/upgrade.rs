//! Changing a live connection's stack: a layer inserted or removed between
//! messages (STARTTLS, compression negotiated after a hello).

use std::time::Instant;

use super::Connection;
use crate::stack::{BoxedLayer, DynStack, StackBuffers};
use crate::{Codec, Layer, Result};

impl<C: Codec> Connection<DynStack, C> {
    /// Inserts `layer` at boundary `index` (0 is the top) of the live stack;
    /// see [`DynStack::insert`] for what happens to buffered bytes. Messages
    /// sent before the call go out as they were, ahead of anything the new
    /// layer emits; unconsumed bytes the peer sent after its last message
    /// are read by the new layer. Below the top of a non-empty stack,
    /// transmit ([`poll_transmit`](Self::poll_transmit)) the messages sent
    /// before the call first: while they wait above the boundary the call
    /// is refused with [`Error::Misuse`](crate::Error::Misuse).
    pub fn insert_layer(&mut self, index: usize, mut layer: BoxedLayer) -> Result<()> {
        self.failed.check()?;
        if let Some(waker) = &self.waker {
            layer.set_waker(waker);
        }
        self.handle_wake();
        self.stack.insert(
            index,
            layer,
            StackBuffers {
                inbound_above: &mut self.app_in,
                outbound_above: &mut self.app_out,
                inbound_below: &mut self.wire_in,
                outbound_below: &mut self.wire_out,
            },
        )
    }

    /// Removes the layer at `index` (0 is the top) from the live stack; see
    /// [`DynStack::remove`]. Below the top, transmit the messages sent
    /// before the call first, as for [`insert_layer`](Self::insert_layer).
    pub fn remove_layer(&mut self, index: usize, now: Instant) -> Result<BoxedLayer> {
        self.failed.check()?;
        self.handle_wake();
        self.stack.remove(
            index,
            now,
            StackBuffers {
                inbound_above: &mut self.app_in,
                outbound_above: &mut self.app_out,
                inbound_below: &mut self.wire_in,
                outbound_below: &mut self.wire_out,
            },
        )
    }
}
