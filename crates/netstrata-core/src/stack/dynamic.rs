//! Dynamic stacks changed on a live connection: inserting and removing a
//! layer at a boundary without losing or reordering buffered bytes.

use std::time::Instant;

use bytes::BytesMut;

use super::room::outbound_counted;
use super::{BoxedLayer, DynStack, Joint};
use crate::layer::{ByteCounters, Flush, Layer, Outbound};
use crate::{Error, Result};

/// The caller's four buffers around a stack, needed to insert or remove a
/// layer on a live connection ([`crate::Connection::insert_layer`] passes its
/// own). Each name says which direction the bytes travel and on which side
/// of the stack they wait:
///
/// ```text
///   inbound_above ▲   │ outbound_above      (the codec's side)
///             ┌───┴───▼───┐
///             │   stack   │
///             └───▲───┬───┘
///   inbound_below │   ▼ outbound_below      (the transport's side)
/// ```
///
/// The four are all there is around a stack, so the struct is exhaustive:
/// write it as a literal.
#[derive(Debug)]
pub struct StackBuffers<'a> {
    /// Inbound bytes the stack delivered above, not yet consumed there.
    pub inbound_above: &'a mut BytesMut,
    /// Outbound bytes waiting above the stack, not yet given to it.
    pub outbound_above: &'a mut BytesMut,
    /// Inbound bytes waiting below the stack, not yet given to it.
    pub inbound_below: &'a mut BytesMut,
    /// Outbound bytes the stack delivered below, not yet sent.
    pub outbound_below: &'a mut BytesMut,
}

/// Prepends `front` to `buf`.
pub(crate) fn prepend(buf: &mut BytesMut, mut front: BytesMut) {
    if !front.is_empty() {
        front.extend_from_slice(buf);
        *buf = front;
    }
}

impl DynStack {
    /// Inserts `layer` at boundary `index` (0 is the top, [`len`](crate::Stack::len)
    /// the bottom) of a live stack.
    ///
    /// Bytes buffered at that boundary go to the new layer and nothing is
    /// lost or reordered: inbound bytes that arrived from below but were not
    /// yet consumed above become the new layer's input; outbound bytes that
    /// the layer above produced before the insertion stay below the new
    /// layer, so they are sent as they were written, ahead of anything the
    /// new layer emits. At the top, the caller's unconsumed inbound bytes
    /// (`buffers.inbound_above`) are handed to the new layer, so a peer that pipelines the
    /// first upgraded bytes right behind its last plain message is read
    /// correctly.
    ///
    /// Bytes that have already passed *through* layers above the boundary
    /// stay where they are: insert below other layers only at a point where
    /// the peer cannot have sent upgraded bytes yet (after a STARTTLS-style
    /// request and answer), or insert at the top.
    ///
    /// Below the top of a non-empty stack, outbound bytes still waiting
    /// above the boundary (written, not yet passed down by the layers
    /// above) would reach the new layer, which the peer does not have yet
    /// for them: the call is refused with [`Error::Misuse`] and nothing
    /// changes. Transmit first ([`crate::Connection::poll_transmit`]).
    pub fn insert(
        &mut self,
        index: usize,
        layer: BoxedLayer,
        buffers: StackBuffers<'_>,
    ) -> Result<()> {
        self.failed.check()?;
        let n = self.layers.len();
        if index > n {
            return Err(Error::misuse(
                "stack",
                format!("insert at boundary {index} of a {n}-layer stack"),
            ));
        }
        if n > 0 && index > 0 {
            self.refuse_waiting_above(index - 1, buffers.outbound_above, "insert")?;
        }
        if n == 0 {
            // The new layer sits between the caller's buffers: what the empty
            // stack already passed up must be read again, by the new layer.
            prepend(buffers.inbound_below, buffers.inbound_above.split());
            buffers
                .outbound_below
                .extend_from_slice(&buffers.outbound_above.split());
        } else if index == 0 {
            let joint = Joint {
                inbound: buffers.inbound_above.split(),
                outbound: buffers.outbound_above.split(),
            };
            self.joints.insert(0, joint);
        } else {
            // The old joint stays below the new layer; a fresh one goes above.
            self.joints.insert(index - 1, Joint::default());
        }
        self.layers.insert(index, layer);
        self.counters.insert(index, ByteCounters::default());
        Ok(())
    }

    /// Removes and returns the layer at `index` (0 is the top) of a live stack.
    ///
    /// Outbound bytes waiting for the layer are first passed through it
    /// (flushed); if it cannot take them all (a shaper out of budget), nothing
    /// changes and a [`Error::Misuse`] says so. Inbound bytes it produced stay
    /// ahead of the bytes it had not yet consumed, which now go straight to
    /// the layer above. Whatever state the layer holds leaves with it: end
    /// its stream first (a TLS `close_notify`) where the protocol needs it.
    ///
    /// Inbound bytes are processed as they arrive, so bytes the layer has
    /// already transformed cannot be taken back: remove it at a sync point,
    /// after the last byte the peer sent under it and before the peer sends
    /// anything without it (a downgrade request and its answer).
    ///
    /// Below the top, outbound bytes still waiting higher up (written, not
    /// yet passed down to the layer) would skip it once it is gone: the call
    /// is refused with [`Error::Misuse`] and nothing changes. Transmit first
    /// ([`crate::Connection::poll_transmit`]).
    pub fn remove(
        &mut self,
        index: usize,
        now: Instant,
        buffers: StackBuffers<'_>,
    ) -> Result<BoxedLayer> {
        self.failed.check()?;
        let n = self.layers.len();
        if index >= n {
            return Err(Error::misuse(
                "stack",
                format!("remove layer {index} of a {n}-layer stack"),
            ));
        }
        if index > 0 {
            self.refuse_waiting_above(index - 1, buffers.outbound_above, "remove")?;
        }
        // Drain what waits above the layer into what waits below it.
        let StackBuffers {
            inbound_above,
            outbound_above,
            inbound_below,
            outbound_below,
        } = buffers;
        let (above, below) = self.joints.split_at_mut(index);
        let from = match index.checked_sub(1) {
            Some(a) => &mut above[a].outbound,
            None => &mut *outbound_above,
        };
        let to = match below.first_mut() {
            Some(j) if index + 1 < n => &mut j.outbound,
            _ => &mut *outbound_below,
        };
        let name = self.layers[index].name();
        let result = outbound_counted(
            &mut self.counters[index],
            Outbound {
                now,
                input: from,
                flush: Flush::Batch,
                lower: to,
                lower_room: usize::MAX,
            },
            |io| self.layers[index].handle_outbound(io),
        );
        self.failed.record(result)?;
        let stuck = match index.checked_sub(1) {
            Some(a) => self.joints[a].outbound.len(),
            None => outbound_above.len(),
        };
        if stuck > 0 {
            return Err(Error::misuse(
                name,
                format!("cannot remove the layer: it does not take {stuck} outbound bytes now"),
            ));
        }
        // Merge the joints above and below the layer into one boundary.
        let below = (index + 1 < n).then(|| self.joints.remove(index));
        let above = index.checked_sub(1);
        match (above, below) {
            (Some(a), Some(b)) => {
                let joint = &mut self.joints[a];
                joint.inbound.extend_from_slice(&b.inbound);
                joint.outbound = b.outbound;
            }
            (None, Some(b)) => {
                inbound_above.extend_from_slice(&b.inbound);
                *outbound_above = b.outbound;
            }
            (Some(a), None) => {
                let joint = self.joints.remove(a);
                prepend(inbound_below, joint.inbound);
            }
            (None, None) => {}
        }
        self.counters.remove(index);
        Ok(self.layers.remove(index))
    }

    /// Refuses a change at a boundary below the top while outbound bytes
    /// wait above joint `joint` (in the caller's buffer or a joint higher
    /// up): they were written before the change and must cross the stack
    /// as it was.
    fn refuse_waiting_above(
        &self,
        joint: usize,
        outbound_above: &BytesMut,
        change: &str,
    ) -> Result<()> {
        let waiting = outbound_above.len()
            + self.joints[..joint]
                .iter()
                .map(|j| j.outbound.len())
                .sum::<usize>();
        if waiting == 0 {
            return Ok(());
        }
        Err(Error::misuse(
            "stack",
            format!(
                "{change} below the top with {waiting} outbound bytes written before it still \
                 waiting above: transmit them first"
            ),
        ))
    }
}
