//! One pass of bytes through a stack, each way, with the room accounting:
//! every layer is offered only the room the buffer above (inbound) or below
//! (outbound) has left, and what crossed it is counted.

use std::time::Instant;

use bytes::BytesMut;

use super::{Layers, Stack};
use crate::layer::{ByteCounters, Flush, Inbound, Layer, Outbound};
use crate::{Error, Result};

impl<L: Layers> Stack<L> {
    pub(super) fn run_inbound(&mut self, io: Inbound<'_>) -> Result<()> {
        let n = self.layers.count();
        if n == 0 {
            return self.empty.handle_inbound(io);
        }
        let Inbound {
            now,
            input,
            input_ended,
            upper,
            upper_room,
            lower,
            ..
        } = io;
        let Self {
            layers,
            joints,
            counters,
            buffer_limit,
            ..
        } = self;
        let upper_start = upper.len();
        loop {
            let (mut moved, mut blocked) = (false, false);
            for i in (0..n).rev() {
                let ended = if i + 1 == n {
                    input_ended
                } else {
                    layers.layer(i + 1).is_read_closed()
                };
                let (above, here) = joints.split_at_mut(i);
                let (from, answers) = match here.first_mut() {
                    Some(j) if i + 1 < n => (&mut j.inbound, &mut j.outbound),
                    _ => (&mut *input, &mut *lower),
                };
                let (to, room) = match i.checked_sub(1) {
                    Some(a) => {
                        let b = &mut above[a].inbound;
                        let room = buffer_limit.saturating_sub(b.len());
                        (b, room)
                    }
                    None => {
                        let used = upper.len().saturating_sub(upper_start);
                        (&mut *upper, upper_room.saturating_sub(used))
                    }
                };
                let before = from.len();
                let result = inbound_counted(
                    &mut counters[i],
                    Inbound {
                        now,
                        input: from,
                        input_ended: ended,
                        upper: to,
                        upper_room: room,
                        lower: answers,
                    },
                    |io| layers.inbound(i, io),
                );
                let appended = match result {
                    Ok(appended) => appended,
                    Err(e) => {
                        // The failing layer's last words (a TLS alert) go
                        // down to the wire before the stack stops.
                        pass_down(layers, joints, counters, *buffer_limit, i, now, lower);
                        return Err(e);
                    }
                };
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

    pub(super) fn run_outbound(&mut self, io: Outbound<'_>) -> Result<()> {
        let n = self.layers.count();
        if n == 0 {
            return self.empty.handle_outbound(io);
        }
        let Outbound {
            now,
            input,
            flush,
            lower,
            lower_room,
            ..
        } = io;
        let Self {
            layers,
            joints,
            counters,
            buffer_limit,
            ..
        } = self;
        let lower_start = lower.len();
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
                    Some(a) => &mut above[a].outbound,
                    None => &mut *input,
                };
                let (to, room) = match joint_below(here, i, n, *buffer_limit) {
                    Some(joint) => joint,
                    None => {
                        let used = lower.len().saturating_sub(lower_start);
                        (&mut *lower, lower_room.saturating_sub(used))
                    }
                };
                let before = (from.len(), to.len());
                outbound_counted(
                    counters,
                    Outbound {
                        now,
                        input: from,
                        flush,
                        lower: to,
                        lower_room: room,
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

    pub(super) fn run_timeout(&mut self, now: Instant, lower: &mut BytesMut) -> Result<()> {
        let n = self.layers.count();
        for i in 0..n {
            if self
                .layers
                .layer(i)
                .poll_timeout()
                .is_some_and(|t| t <= now)
            {
                let to = match self.joints.get_mut(i) {
                    Some(j) if i + 1 < n => &mut j.outbound,
                    _ => &mut *lower,
                };
                let before = to.len();
                let result = self.layers.timeout(i, now, to);
                self.counters[i].count_outbound(0, to.len().saturating_sub(before));
                if let Err(e) = result {
                    let Self {
                        layers,
                        joints,
                        counters,
                        buffer_limit,
                        ..
                    } = self;
                    pass_down(layers, joints, counters, *buffer_limit, i, now, lower);
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

/// The outbound buffer below layer `i` of `n` when it is a joint between
/// two layers (`None` at the bottom, where the stack's lower buffer is),
/// with the room it has left under `limit`. `here` is the joints from
/// `i`'s on.
fn joint_below(
    here: &mut [super::Joint],
    i: usize,
    n: usize,
    limit: usize,
) -> Option<(&mut BytesMut, usize)> {
    match here.first_mut() {
        Some(j) if i + 1 < n => {
            let room = limit.saturating_sub(j.outbound.len());
            Some((&mut j.outbound, room))
        }
        _ => None,
    }
}

/// Passes what layer `failed` left for the layers below it (an alert
/// answering the input it refused, a timeout's alert) down through them to
/// `lower`, as far as they take it now. Best effort: the stack is failing
/// with `failed`'s error, which is the one reported; an error below is not.
fn pass_down<L: Layers>(
    layers: &mut L,
    joints: &mut [super::Joint],
    counters: &mut [ByteCounters],
    buffer_limit: usize,
    failed: usize,
    now: Instant,
    lower: &mut BytesMut,
) {
    let n = layers.count();
    for i in failed + 1..n {
        let (above, here) = joints.split_at_mut(i);
        let from = &mut above[i - 1].outbound;
        if from.is_empty() {
            return;
        }
        let (to, room) =
            joint_below(here, i, n, buffer_limit).unwrap_or((&mut *lower, buffer_limit));
        let io = Outbound {
            now,
            input: from,
            flush: Flush::Batch,
            lower: to,
            lower_room: room,
        };
        if outbound_counted(&mut counters[i], io, |io| layers.outbound(i, io)).is_err() {
            return;
        }
    }
}

/// Runs one inbound call through `call` and counts what crossed. Returns
/// how many bytes went up; the caller checks them against the room it gave
/// ([`room_exceeded`]), so a faulty user layer cannot break the bound unseen.
pub(crate) fn inbound_counted(
    counters: &mut ByteCounters,
    io: Inbound<'_>,
    call: impl FnOnce(Inbound<'_>) -> Result<()>,
) -> Result<usize> {
    let Inbound {
        now,
        input,
        input_ended,
        upper,
        upper_room,
        lower,
        ..
    } = io;
    let before = (input.len(), upper.len(), lower.len());
    let result = call(Inbound {
        now,
        input: &mut *input,
        input_ended,
        upper: &mut *upper,
        upper_room,
        lower: &mut *lower,
    });
    let appended = upper.len().saturating_sub(before.1);
    counters.count_inbound(
        before.0.saturating_sub(input.len()),
        appended,
        lower.len().saturating_sub(before.2),
    );
    result.map(|()| appended)
}

/// The error for a layer that appended more than its upward room.
#[cold]
pub(crate) fn room_exceeded(layer: &'static str, appended: usize, room: usize) -> Error {
    Error::misuse(
        layer,
        format!("layer appended {appended} bytes upward with room for {room}"),
    )
}

/// Runs one outbound call through `call` and counts what crossed.
pub(crate) fn outbound_counted(
    counters: &mut ByteCounters,
    io: Outbound<'_>,
    call: impl FnOnce(Outbound<'_>) -> Result<()>,
) -> Result<()> {
    let Outbound {
        now,
        input,
        flush,
        lower,
        lower_room,
        ..
    } = io;
    let before = (input.len(), lower.len());
    let result = call(Outbound {
        now,
        input: &mut *input,
        flush,
        lower: &mut *lower,
        lower_room,
    });
    counters.count_outbound(
        before.0.saturating_sub(input.len()),
        lower.len().saturating_sub(before.1),
    );
    result
}
