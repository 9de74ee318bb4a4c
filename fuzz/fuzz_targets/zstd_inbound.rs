//! Arbitrary bytes, in arbitrary chunks and with arbitrary upward room,
//! into the zstd layer's decoder: no panic, the room is honoured, decoder
//! memory stays within the window limit's budget, and an error sticks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netstrata_core::Stack;
use netstrata_zstd::Zstd;

#[path = "common.rs"]
mod common;
use common::feed_inbound;

fuzz_target!(|data: &[u8]| {
    let Some((&control, data)) = data.split_first() else {
        return;
    };
    // A stack, so the first error sticks as the contract says.
    let mut stack = Stack::new((Zstd::new(),));
    let chunk = usize::from(control % 31) + 1;
    let room = |i: usize| (i * 131 + usize::from(control) * 7) % 4099 + 1;
    feed_inbound(&mut stack, data, chunk, room, |stack| {
        assert!(stack.layers().0.decoder_memory() <= 1 << 20);
    });
});
