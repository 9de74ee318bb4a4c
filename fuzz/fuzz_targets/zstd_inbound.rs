//! Arbitrary bytes, in arbitrary chunks and with arbitrary upward room,
//! into the zstd layer's decoder: no panic, the room is honoured, decoder
//! memory stays within what it reserved from its budget, the budget is
//! whole again once the layer is gone, and an error sticks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netstrata_core::Stack;
use netstrata_zstd::{DecoderBudget, Zstd, ZstdConfig};

#[path = "common.rs"]
mod common;
use common::feed_inbound;

fuzz_target!(|data: &[u8]| {
    let Some((&control, data)) = data.split_first() else {
        return;
    };
    // A stack, so the first error sticks as the contract says.
    // A budget of its own, so what it holds is this input's alone; small
    // enough that large windows meet it.
    let budget = DecoderBudget::new(16 << 20);
    let config = ZstdConfig::new().with_decoder_budget(budget.clone());
    let mut stack = Stack::new((Zstd::with_config(config),));
    let chunk = usize::from(control % 31) + 1;
    let room = |i: usize| (i * 131 + usize::from(control) * 7) % 4099 + 1;
    feed_inbound(&mut stack, data, chunk, room, |stack| {
        let zstd = &stack.layers().0;
        assert!(zstd.decoder_memory() <= zstd.decoder_reserved());
        assert!(budget.in_use() <= budget.capacity());
    });
    drop(stack);
    assert_eq!(budget.in_use(), 0, "reservations returned");
});
