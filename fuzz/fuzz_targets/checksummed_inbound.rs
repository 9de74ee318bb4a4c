//! Arbitrary bytes, in arbitrary chunks and with arbitrary upward room,
//! into the record layer inside a stack: no panic, the room is honoured, and
//! once an error is returned it sticks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netstrata_core::Stack;
use netstrata_core::layers::{Checksummed, PassThrough, Xor};

#[path = "common.rs"]
mod common;
use common::feed_inbound;

fuzz_target!(|data: &[u8]| {
    let Some((&control, data)) = data.split_first() else {
        return;
    };
    let mut stack = Stack::new((Xor::new(*b"k"), Checksummed::new(), PassThrough::new()))
        .with_buffer_limit(usize::from(control).max(1) * 16);
    let chunk = usize::from(control % 17) + 1;
    let room = |i: usize| (i * 31 + usize::from(control)) % 97 + 1;
    feed_inbound(&mut stack, data, chunk, room, |_| {});
});
