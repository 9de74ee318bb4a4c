//! Arbitrary bytes, in arbitrary chunks and with arbitrary upward room,
//! into the zstd layer's decoder: no panic, the room is honoured, decoder
//! memory stays within the window limit's budget, and an error sticks.
#![no_main]

use std::time::Instant;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use netstrata_core::{Inbound, Layer, Stack};
use netstrata_zstd::Zstd;

#[path = "sticky.rs"]
mod sticky;
use sticky::Sticky;

fuzz_target!(|data: &[u8]| {
    let Some((&control, data)) = data.split_first() else {
        return;
    };
    // A stack, so the first error sticks as the contract says.
    let mut stack = Stack::new((Zstd::new(),));
    let now = Instant::now();
    let (mut input, mut up, mut down) = (BytesMut::new(), BytesMut::new(), BytesMut::new());
    let chunk = usize::from(control % 31) + 1;
    let mut sticky = Sticky::default();
    for (i, piece) in data.chunks(chunk).enumerate() {
        input.extend_from_slice(piece);
        let room = (i * 131 + usize::from(control) * 7) % 4099 + 1;
        let before = up.len();
        let result = stack.handle_inbound(Inbound {
            now,
            input: &mut input,
            input_ended: (i + 1) * chunk >= data.len(),
            up: &mut up,
            up_room: room,
            down: &mut down,
        });
        assert!(up.len() - before <= room);
        assert!(stack.layers().0.decoder_memory() <= 1 << 20);
        sticky.check(result);
        up.clear();
    }
});
