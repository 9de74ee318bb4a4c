//! The members of a stack: what differs between static and dynamic stacks.

use std::time::Instant;

use bytes::BytesMut;

use super::Stack;
use crate::Result;
use crate::layer::{Inbound, Layer, Outbound};

/// The members of a [`Stack`], top (toward the application) first.
///
/// Implemented for `()` (no layer), tuples of one to eight layers (static
/// dispatch) and `Vec<Box<dyn Layer + Send>>` ([`DynStack`]).
pub trait Layers {
    /// How many layers there are.
    fn count(&self) -> usize;
    /// Layer `i`, for its getters.
    fn layer(&self, i: usize) -> &dyn Layer;
    /// Layer `i`, for calls off the hot path ([`Layer::set_waker`]).
    fn layer_mut(&mut self, i: usize) -> &mut dyn Layer;
    /// [`Layer::handle_inbound`] of layer `i`.
    fn inbound(&mut self, i: usize, io: Inbound<'_>) -> Result<()>;
    /// [`Layer::handle_outbound`] of layer `i`.
    fn outbound(&mut self, i: usize, io: Outbound<'_>) -> Result<()>;
    /// [`Layer::handle_timeout`] of layer `i`.
    fn timeout(&mut self, i: usize, now: Instant, lower: &mut BytesMut) -> Result<()>;
    /// [`Layer::release_buffers`] of layer `i`.
    fn release(&mut self, i: usize);
}

/// A layer that can be boxed into a [`DynStack`].
pub type BoxedLayer = Box<dyn Layer + Send>;

/// A stack built at run time; layers can be inserted and removed on a live
/// connection (see [`Stack::insert`]).
pub type DynStack = Stack<Vec<BoxedLayer>>;

impl Layers for Vec<BoxedLayer> {
    fn count(&self) -> usize {
        self.len()
    }
    fn layer(&self, i: usize) -> &dyn Layer {
        &*self[i]
    }
    fn layer_mut(&mut self, i: usize) -> &mut dyn Layer {
        &mut *self[i]
    }
    fn inbound(&mut self, i: usize, io: Inbound<'_>) -> Result<()> {
        self[i].handle_inbound(io)
    }
    fn outbound(&mut self, i: usize, io: Outbound<'_>) -> Result<()> {
        self[i].handle_outbound(io)
    }
    fn timeout(&mut self, i: usize, now: Instant, lower: &mut BytesMut) -> Result<()> {
        self[i].handle_timeout(now, lower)
    }
    fn release(&mut self, i: usize) {
        self[i].release_buffers()
    }
}

/// No layer: the stack passes bytes unchanged (a baseline, or a plain
/// connection that may be upgraded later through a [`DynStack`]).
impl Layers for () {
    fn count(&self) -> usize {
        0
    }
    fn layer(&self, i: usize) -> &dyn Layer {
        unreachable!("layer index {i} of an empty stack")
    }
    fn layer_mut(&mut self, i: usize) -> &mut dyn Layer {
        unreachable!("layer index {i} of an empty stack")
    }
    fn inbound(&mut self, i: usize, _: Inbound<'_>) -> Result<()> {
        unreachable!("layer index {i} of an empty stack")
    }
    fn outbound(&mut self, i: usize, _: Outbound<'_>) -> Result<()> {
        unreachable!("layer index {i} of an empty stack")
    }
    fn timeout(&mut self, i: usize, _: Instant, _: &mut BytesMut) -> Result<()> {
        unreachable!("layer index {i} of an empty stack")
    }
    fn release(&mut self, i: usize) {
        unreachable!("layer index {i} of an empty stack")
    }
}

macro_rules! tuple_layers {
    ($n:expr; $($idx:tt $T:ident),+) => {
        impl<$($T: Layer),+> Layers for ($($T,)+) {
            fn count(&self) -> usize {
                $n
            }
            fn layer(&self, i: usize) -> &dyn Layer {
                match i {
                    $($idx => &self.$idx,)+
                    _ => unreachable!("layer index {i} out of range"),
                }
            }
            fn layer_mut(&mut self, i: usize) -> &mut dyn Layer {
                match i {
                    $($idx => &mut self.$idx,)+
                    _ => unreachable!("layer index {i} out of range"),
                }
            }
            fn inbound(&mut self, i: usize, io: Inbound<'_>) -> Result<()> {
                match i {
                    $($idx => self.$idx.handle_inbound(io),)+
                    _ => unreachable!("layer index {i} out of range"),
                }
            }
            fn outbound(&mut self, i: usize, io: Outbound<'_>) -> Result<()> {
                match i {
                    $($idx => self.$idx.handle_outbound(io),)+
                    _ => unreachable!("layer index {i} out of range"),
                }
            }
            fn timeout(&mut self, i: usize, now: Instant, lower: &mut BytesMut) -> Result<()> {
                match i {
                    $($idx => self.$idx.handle_timeout(now, lower),)+
                    _ => unreachable!("layer index {i} out of range"),
                }
            }
            fn release(&mut self, i: usize) {
                match i {
                    $($idx => self.$idx.release_buffers(),)+
                    _ => unreachable!("layer index {i} out of range"),
                }
            }
        }
    };
}

tuple_layers!(1; 0 A);
tuple_layers!(2; 0 A, 1 B);
tuple_layers!(3; 0 A, 1 B, 2 C);
tuple_layers!(4; 0 A, 1 B, 2 C, 3 D);
tuple_layers!(5; 0 A, 1 B, 2 C, 3 D, 4 E);
tuple_layers!(6; 0 A, 1 B, 2 C, 3 D, 4 E, 5 F);
tuple_layers!(7; 0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G);
tuple_layers!(8; 0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G, 7 H);
