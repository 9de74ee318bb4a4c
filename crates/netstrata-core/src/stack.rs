//! Stacks: layers composed into one layer.
//!
//! One pass algorithm serves static stacks (tuples of layers, dispatched by
//! `match`, no `dyn`) and dynamic stacks (`Vec<Box<dyn Layer + Send>>`);
//! [`Layers`] is the only thing that differs between them.

use std::task::Waker;
use std::time::Instant;

use bytes::BytesMut;

use crate::layer::{ByteCounters, Flush, Inbound, Layer, LayerStats, Outbound};
use crate::layer::{inbound_counted, outbound_counted, release_if_empty, room_exceeded};
use crate::layers::PassThrough;
use crate::{Error, Result};

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
    fn timeout(&mut self, i: usize, now: Instant, down: &mut BytesMut) -> Result<()>;
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
    fn timeout(&mut self, i: usize, now: Instant, down: &mut BytesMut) -> Result<()> {
        self[i].handle_timeout(now, down)
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
            fn timeout(&mut self, i: usize, now: Instant, down: &mut BytesMut) -> Result<()> {
                match i {
                    $($idx => self.$idx.handle_timeout(now, down),)+
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

/// The buffers between two adjacent layers of a stack.
#[derive(Debug, Default)]
struct Joint {
    /// Bytes going up: produced by the lower layer, not yet taken by the upper.
    up: BytesMut,
    /// Bytes going down: produced by the upper layer, not yet taken by the lower.
    down: BytesMut,
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
    failed: Option<Error>,
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
            failed: None,
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
        self.failed.as_ref()
    }

    fn check(&self) -> Result<()> {
        match &self.failed {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    fn keep(&mut self, result: Result<()>) -> Result<()> {
        if let Err(e) = &result
            && e.is_sticky()
            && self.failed.is_none()
        {
            self.failed = Some(e.clone());
        }
        result
    }

    fn run_inbound(&mut self, io: Inbound<'_>) -> Result<()> {
        let n = self.layers.count();
        if n == 0 {
            return self.empty.handle_inbound(io);
        }
        let Inbound {
            now,
            input,
            input_ended,
            up,
            up_room,
            down,
        } = io;
        let Self {
            layers,
            joints,
            counters,
            buffer_limit,
            ..
        } = self;
        let up_start = up.len();
        loop {
            let (mut moved, mut blocked) = (false, false);
            for i in (0..n).rev() {
                let ended = if i + 1 == n {
                    input_ended
                } else {
                    layers.layer(i + 1).is_read_closed()
                };
                let (above, here) = joints.split_at_mut(i);
                let (from, to_down) = match here.first_mut() {
                    Some(j) if i + 1 < n => (&mut j.up, &mut j.down),
                    _ => (&mut *input, &mut *down),
                };
                let (to, room) = match i.checked_sub(1) {
                    Some(a) => {
                        let b = &mut above[a].up;
                        let room = buffer_limit.saturating_sub(b.len());
                        (b, room)
                    }
                    None => {
                        let used = up.len().saturating_sub(up_start);
                        (&mut *up, up_room.saturating_sub(used))
                    }
                };
                let before = from.len();
                let appended = inbound_counted(
                    &mut counters[i],
                    Inbound {
                        now,
                        input: from,
                        input_ended: ended,
                        up: to,
                        up_room: room,
                        down: to_down,
                    },
                    |io| layers.inbound(i, io),
                )?;
                if appended > room {
                    return Err(room_exceeded(layers.layer(i).name(), appended, room));
                }
                moved |= from.len() != before || appended > 0;
                blocked |= !from.is_empty() || appended == room;
            }
            if !(moved && blocked) {
                return Ok(());
            }
        }
    }

    fn run_outbound(&mut self, io: Outbound<'_>) -> Result<()> {
        let n = self.layers.count();
        if n == 0 {
            return self.empty.handle_outbound(io);
        }
        let Outbound {
            now,
            input,
            flush,
            down,
            down_room,
        } = io;
        let Self {
            layers,
            joints,
            counters,
            buffer_limit,
            ..
        } = self;
        let down_start = down.len();
        loop {
            let (mut moved, mut blocked) = (false, false);
            for (i, counters) in counters.iter_mut().enumerate() {
                // A layer finishes only after the one above it has.
                let flush = match flush {
                    Flush::Finish if i > 0 && !layers.layer(i - 1).is_write_closed() => {
                        Flush::Batch
                    }
                    f => f,
                };
                let (above, here) = joints.split_at_mut(i);
                let from = match i.checked_sub(1) {
                    Some(a) => &mut above[a].down,
                    None => &mut *input,
                };
                let (to, room) = match here.first_mut() {
                    Some(j) if i + 1 < n => {
                        let room = buffer_limit.saturating_sub(j.down.len());
                        (&mut j.down, room)
                    }
                    _ => {
                        let used = down.len().saturating_sub(down_start);
                        (&mut *down, down_room.saturating_sub(used))
                    }
                };
                let before = (from.len(), to.len());
                outbound_counted(
                    counters,
                    Outbound {
                        now,
                        input: from,
                        flush,
                        down: to,
                        down_room: room,
                    },
                    |io| layers.outbound(i, io),
                )?;
                let room_left = room.saturating_sub(to.len().saturating_sub(before.1));
                moved |= from.len() != before.0 || to.len() != before.1;
                blocked |= !from.is_empty() || room_left == 0;
            }
            if !(moved && blocked) {
                return Ok(());
            }
        }
    }

    fn run_timeout(&mut self, now: Instant, down: &mut BytesMut) -> Result<()> {
        let n = self.layers.count();
        for i in 0..n {
            if self
                .layers
                .layer(i)
                .poll_timeout()
                .is_some_and(|t| t <= now)
            {
                let to = match self.joints.get_mut(i) {
                    Some(j) if i + 1 < n => &mut j.down,
                    _ => &mut *down,
                };
                let before = to.len();
                let result = self.layers.timeout(i, now, to);
                self.counters[i].count_outbound(0, to.len().saturating_sub(before));
                result?;
            }
        }
        Ok(())
    }
}

impl<L: Layers> Layer for Stack<L> {
    fn name(&self) -> &'static str {
        "stack"
    }

    fn handle_inbound(&mut self, io: Inbound<'_>) -> Result<()> {
        self.check()?;
        let result = self.run_inbound(io);
        self.keep(result)
    }

    fn handle_outbound(&mut self, io: Outbound<'_>) -> Result<()> {
        self.check()?;
        let result = self.run_outbound(io);
        self.keep(result)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if self.failed.is_some() {
            return None;
        }
        (0..self.layers.count())
            .filter_map(|i| self.layers.layer(i).poll_timeout())
            .min()
    }

    fn handle_timeout(&mut self, now: Instant, down: &mut BytesMut) -> Result<()> {
        self.check()?;
        let result = self.run_timeout(now, down);
        self.keep(result)
    }

    fn wants_read(&self) -> bool {
        let n = self.layers.count();
        self.failed.is_none()
            && (0..n).all(|i| self.layers.layer(i).wants_read())
            && n.checked_sub(2)
                .is_none_or(|j| self.joints[j].up.len() < self.buffer_limit)
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

    fn release_buffers(&mut self) {
        for joint in &mut self.joints {
            release_if_empty(&mut joint.up);
            release_if_empty(&mut joint.down);
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

/// The caller's four buffers around a stack, needed to insert or remove a
/// layer on a live connection ([`crate::Connection::insert_layer`] passes its
/// own).
#[derive(Debug)]
pub struct Edge<'a> {
    /// Inbound bytes the stack delivered above, not yet consumed.
    pub up: &'a mut BytesMut,
    /// Outbound bytes waiting above the stack, not yet given to it.
    pub from_up: &'a mut BytesMut,
    /// Inbound bytes waiting below the stack, not yet given to it.
    pub from_down: &'a mut BytesMut,
    /// Outbound bytes the stack delivered below, not yet sent.
    pub down: &'a mut BytesMut,
}

/// Prepends `front` to `buf`.
fn prepend(buf: &mut BytesMut, mut front: BytesMut) {
    if !front.is_empty() {
        front.extend_from_slice(buf);
        *buf = front;
    }
}

impl DynStack {
    /// Inserts `layer` at boundary `index` (0 is the top, [`len`](Stack::len)
    /// the bottom) of a live stack.
    ///
    /// Bytes buffered at that boundary go to the new layer and nothing is
    /// lost or reordered: inbound bytes that arrived from below but were not
    /// yet consumed above become the new layer's input; outbound bytes that
    /// the layer above produced before the insertion stay below the new
    /// layer, so they are sent as they were written, ahead of anything the
    /// new layer emits. At the top, the caller's unconsumed inbound bytes
    /// (`edge.up`) are handed to the new layer, so a peer that pipelines the
    /// first upgraded bytes right behind its last plain message is read
    /// correctly.
    ///
    /// Bytes that have already passed *through* layers above the boundary
    /// stay where they are: insert below other layers only at a point where
    /// the peer cannot have sent upgraded bytes yet (after a STARTTLS-style
    /// request and answer), or insert at the top.
    pub fn insert(&mut self, index: usize, layer: BoxedLayer, edge: Edge<'_>) -> Result<()> {
        self.check()?;
        let n = self.layers.len();
        if index > n {
            return Err(Error::misuse(
                "stack",
                format!("insert at boundary {index} of a {n}-layer stack"),
            ));
        }
        if n == 0 {
            // The new layer sits between the caller's buffers: what the empty
            // stack already passed up must be read again, by the new layer.
            prepend(edge.from_down, edge.up.split());
            edge.down.extend_from_slice(&edge.from_up.split());
        } else if index == 0 {
            let joint = Joint {
                up: edge.up.split(),
                down: edge.from_up.split(),
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
    pub fn remove(&mut self, index: usize, now: Instant, edge: Edge<'_>) -> Result<BoxedLayer> {
        self.check()?;
        let n = self.layers.len();
        if index >= n {
            return Err(Error::misuse(
                "stack",
                format!("remove layer {index} of a {n}-layer stack"),
            ));
        }
        // Drain what waits above the layer into what waits below it.
        let Edge {
            up,
            from_up,
            from_down,
            down,
        } = edge;
        let (above, below) = self.joints.split_at_mut(index);
        let from = match index.checked_sub(1) {
            Some(a) => &mut above[a].down,
            None => &mut *from_up,
        };
        let to = match below.first_mut() {
            Some(j) if index + 1 < n => &mut j.down,
            _ => &mut *down,
        };
        let name = self.layers[index].name();
        let result = outbound_counted(
            &mut self.counters[index],
            Outbound {
                now,
                input: from,
                flush: Flush::Batch,
                down: to,
                down_room: usize::MAX,
            },
            |io| self.layers[index].handle_outbound(io),
        );
        self.keep(result)?;
        let stuck = match index.checked_sub(1) {
            Some(a) => self.joints[a].down.len(),
            None => from_up.len(),
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
                joint.up.extend_from_slice(&b.up);
                joint.down = b.down;
            }
            (None, Some(b)) => {
                up.extend_from_slice(&b.up);
                *from_up = b.down;
            }
            (Some(a), None) => {
                let joint = self.joints.remove(a);
                prepend(from_down, joint.up);
            }
            (None, None) => {}
        }
        self.counters.remove(index);
        Ok(self.layers.remove(index))
    }
}
