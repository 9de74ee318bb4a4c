//! Stacks: layers composed into one layer.
//!
//! One pass algorithm serves static stacks (tuples of layers, dispatched by
//! `match`, no `dyn`) and dynamic stacks (`Vec<Box<dyn Layer + Send>>`);
//! [`Layers`] is the only thing that differs between them.
//!
//! - `members`: the [`Layers`] trait and its implementations (tuples,
//!   `Vec<BoxedLayer>`, `()`);
//! - `room`: one pass each way, with the room accounting;
//! - `dynamic`: inserting and removing layers on a live [`DynStack`].

mod dynamic;
mod members;
pub(crate) mod room;

use std::task::Waker;
use std::time::Instant;

use bytes::BytesMut;

use crate::layer::release_if_empty;
use crate::layer::{ByteCounters, Inbound, Layer, LayerStats, Outbound};
use crate::layers::PassThrough;
use crate::{Error, Result, StickyError};

pub use dynamic::StackBuffers;
pub(crate) use dynamic::prepend;
pub use members::{BoxedLayer, DynStack, Layers};

/// The buffers between two adjacent layers of a stack.
#[derive(Debug, Default)]
struct Joint {
    /// Inbound bytes: produced by the lower layer, not yet taken by the upper.
    inbound: BytesMut,
    /// Outbound bytes: produced by the upper layer, not yet taken by the lower.
    outbound: BytesMut,
}

/// Layers composed into one layer, top (toward the application) first.
///
/// A `Stack` is itself a [`Layer`], so stacks nest. Between each pair of
/// layers it keeps two buffers, each bounded by
/// [`buffer_limit`](Stack::buffer_limit) (default
/// [`Stack::DEFAULT_BUFFER_LIMIT`]): a layer is offered only as much upward
/// room as the buffer above it has left, and reading stops when the bottom
/// layer's buffer is full. The stack counts the bytes crossing every member
/// ([`Layer::collect_stats`]) and keeps the first error any member returns.
/// What the failing member still owes the peer (a TLS alert written to the
/// buffer below it) is passed down through the members under it, as far as
/// they take it, before the error is returned: the peer learns why.
///
/// ```
/// use netstrata_core::layers::{PassThrough, Xor};
/// use netstrata_core::{DynStack, Layer, LayerExt, Stack};
///
/// // Static: typed, monomorphised.
/// let stack = Stack::new((Xor::new(*b"key"), PassThrough::new()));
/// // The same by chaining.
/// let chained = Xor::new(*b"key").stack(PassThrough::new());
/// // Dynamic: built from configuration at run time.
/// let dynamic = DynStack::new(vec![Box::new(Xor::new(*b"key")), Box::new(PassThrough::new())]);
/// assert_eq!(stack.len() + chained.len(), 2 * dynamic.len());
/// ```
#[derive(Debug)]
pub struct Stack<L> {
    layers: L,
    /// `joints[j]` sits between layer `j` and layer `j + 1`.
    joints: Vec<Joint>,
    counters: Vec<ByteCounters>,
    buffer_limit: usize,
    /// What an empty stack is: bytes pass unchanged, ends pass through.
    empty: PassThrough,
    failed: StickyError,
}

impl<L: Layers> Stack<L> {
    /// The default bound of each buffer between two layers (64 KiB).
    pub const DEFAULT_BUFFER_LIMIT: usize = 64 * 1024;

    /// A stack of `layers`, top first.
    pub fn new(layers: L) -> Self {
        let n = layers.count();
        Self {
            joints: (1..n.max(1)).map(|_| Joint::default()).collect(),
            counters: vec![ByteCounters::default(); n],
            layers,
            buffer_limit: Self::DEFAULT_BUFFER_LIMIT,
            empty: PassThrough::new(),
            failed: StickyError::new(),
        }
    }

    /// Sets the bound of each buffer between two layers (at least 1 byte).
    pub fn with_buffer_limit(mut self, limit: usize) -> Self {
        self.buffer_limit = limit.max(1);
        self
    }

    /// The bound of each buffer between two layers.
    pub fn buffer_limit(&self) -> usize {
        self.buffer_limit
    }

    /// How many layers the stack has.
    pub fn len(&self) -> usize {
        self.layers.count()
    }

    /// Whether the stack has no layer (it then passes bytes unchanged).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The members.
    pub fn layers(&self) -> &L {
        &self.layers
    }

    /// The members, mutably (to change a layer's settings at run time).
    pub fn layers_mut(&mut self) -> &mut L {
        &mut self.layers
    }

    /// The error that killed the stack, if any.
    pub fn error(&self) -> Option<&Error> {
        self.failed.error()
    }
}

impl<L: Layers> Layer for Stack<L> {
    fn name(&self) -> &'static str {
        "stack"
    }

    fn handle_inbound(&mut self, io: Inbound<'_>) -> Result<()> {
        StickyError::guard(self, |s| &mut s.failed, |s| s.run_inbound(io))
    }

    fn handle_outbound(&mut self, io: Outbound<'_>) -> Result<()> {
        StickyError::guard(self, |s| &mut s.failed, |s| s.run_outbound(io))
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if self.failed.has_failed() {
            return None;
        }
        (0..self.layers.count())
            .filter_map(|i| self.layers.layer(i).poll_timeout())
            .min()
    }

    fn handle_timeout(&mut self, now: Instant, lower: &mut BytesMut) -> Result<()> {
        StickyError::guard(self, |s| &mut s.failed, |s| s.run_timeout(now, lower))
    }

    fn wants_read(&self) -> bool {
        let n = self.layers.count();
        !self.failed.has_failed()
            && (0..n).all(|i| self.layers.layer(i).wants_read())
            && n.checked_sub(2)
                .is_none_or(|j| self.joints[j].inbound.len() < self.buffer_limit)
    }

    fn is_handshaking(&self) -> bool {
        (0..self.layers.count()).any(|i| self.layers.layer(i).is_handshaking())
    }

    fn is_read_closed(&self) -> bool {
        match self.layers.count() {
            0 => self.empty.is_read_closed(),
            _ => self.layers.layer(0).is_read_closed(),
        }
    }

    fn is_write_closed(&self) -> bool {
        match self.layers.count() {
            0 => self.empty.is_write_closed(),
            n => self.layers.layer(n - 1).is_write_closed(),
        }
    }

    /// Only without layers: a member that passes bytes through is still
    /// counted, and may have bytes waiting in the joints around it.
    fn passes_bytes_through(&self) -> bool {
        self.layers.count() == 0 && !self.failed.has_failed() && self.empty.passes_bytes_through()
    }

    fn release_buffers(&mut self) {
        for joint in &mut self.joints {
            release_if_empty(&mut joint.inbound);
            release_if_empty(&mut joint.outbound);
        }
        for i in 0..self.layers.count() {
            self.layers.release(i);
        }
    }

    fn set_waker(&mut self, waker: &Waker) {
        for i in 0..self.layers.count() {
            self.layers.layer_mut(i).set_waker(waker);
        }
    }

    fn collect_stats(&self, _own: &ByteCounters, out: &mut Vec<LayerStats>) {
        for (i, counters) in self.counters.iter().enumerate() {
            self.layers.layer(i).collect_stats(counters, out);
        }
    }
}

/// Composition by chaining: `a.stack(b)` puts `a` above `b`.
pub trait LayerExt: Layer + Sized {
    /// A two-layer [`Stack`] with `self` above `lower`.
    fn stack<B: Layer>(self, lower: B) -> Stack<(Self, B)> {
        Stack::new((self, lower))
    }
}

impl<T: Layer> LayerExt for T {}

/// Moves up to `max` bytes from the front of `src` to the end of `dst` and
/// returns how many moved. When `dst` is empty nothing is copied: the buffers
/// are swapped, or `dst` becomes the front part of `src`. For layer authors.
pub fn transfer(src: &mut BytesMut, dst: &mut BytesMut, max: usize) -> usize {
    let n = src.len().min(max);
    if n == 0 {
        return 0;
    }
    if dst.is_empty() && n == src.len() {
        std::mem::swap(src, dst);
    } else if dst.is_empty() {
        *dst = src.split_to(n);
    } else {
        dst.extend_from_slice(&src[..n]);
        bytes::Buf::advance(src, n);
    }
    n
}
