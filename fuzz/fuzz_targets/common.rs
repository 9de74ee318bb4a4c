//! What the fuzz targets share (a `#[path]` module: each target is its own
//! binary): the layer contract's "the first error sticks", checked call by
//! call, and a loop feeding arbitrary bytes to a layer.

use std::time::Instant;

use bytes::BytesMut;
use netstrata_core::{Inbound, Layer};

/// The first error a layer or stack returned, if any.
#[derive(Debug, Default)]
pub struct Sticky(Option<String>);

impl Sticky {
    /// Checks one call's result against the ones before: after an error,
    /// every later call returns the same error.
    pub fn check(&mut self, result: netstrata_core::Result<()>) {
        match (&self.0, result) {
            (None, Err(e)) => self.0 = Some(e.to_string()),
            (Some(first), Err(e)) => assert_eq!(first, &e.to_string()),
            (Some(_), Ok(())) => panic!("an error did not stick"),
            (None, Ok(())) => {}
        }
    }

    /// Whether an error was returned.
    #[allow(dead_code)] // not every target asks
    pub fn failed(&self) -> bool {
        self.0.is_some()
    }
}

/// Feeds `data` to `layer` in pieces of `chunk` bytes, the last one with
/// the input ended, giving call `i` the upward room `room(i)`. After each
/// call: the room was honoured, the first error sticks, and `after` runs
/// its own checks on the layer.
#[allow(dead_code)] // not every target feeds this way
pub fn feed_inbound<L: Layer>(
    layer: &mut L,
    data: &[u8],
    chunk: usize,
    room: impl Fn(usize) -> usize,
    mut after: impl FnMut(&L),
) {
    let now = Instant::now();
    let (mut input, mut up, mut down) = (BytesMut::new(), BytesMut::new(), BytesMut::new());
    let mut sticky = Sticky::default();
    for (i, piece) in data.chunks(chunk).enumerate() {
        input.extend_from_slice(piece);
        let room = room(i);
        let result = layer.handle_inbound(Inbound::new(now, &mut input, &mut up, &mut down).with_upper_room(room).with_input_ended((i + 1) * chunk >= data.len()));
        assert!(up.len() <= room);
        after(layer);
        sticky.check(result);
        up.clear();
    }
}
