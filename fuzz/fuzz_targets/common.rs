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

/// A fuzz input read as a script: small integers and byte strings taken
/// from the front, zeros once it runs out (so every input is a script).
#[allow(dead_code)] // not every target reads scripts
pub struct Script<'a> {
    data: &'a [u8],
}

#[allow(dead_code)]
impl<'a> Script<'a> {
    /// A script over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next byte, 0 at the end.
    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// The next two bytes, little-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    /// The next four bytes, little-endian.
    pub fn u32(&mut self) -> u32 {
        u32::from(self.u16()) | u32::from(self.u16()) << 16
    }

    /// The next eight bytes, little-endian.
    pub fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | u64::from(self.u32()) << 32
    }

    /// The next `n` bytes, fewer at the end.
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (front, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        front
    }
}
