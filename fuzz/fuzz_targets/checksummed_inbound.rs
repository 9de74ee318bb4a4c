//! Arbitrary bytes, in arbitrary chunks and with arbitrary upward room,
//! into the record layer inside a stack: no panic, the room is honoured, and
//! once an error is returned it sticks.
#![no_main]

use std::time::Instant;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use netstrata_core::layers::{Checksummed, PassThrough, Xor};
use netstrata_core::{Inbound, Layer, Stack};

#[path = "sticky.rs"]
mod sticky;
use sticky::Sticky;

fuzz_target!(|data: &[u8]| {
    let Some((&control, data)) = data.split_first() else {
        return;
    };
    let mut stack = Stack::new((Xor::new(*b"k"), Checksummed::new(), PassThrough::new()))
        .with_buffer_limit(usize::from(control).max(1) * 16);
    let now = Instant::now();
    let (mut input, mut up, mut down) = (BytesMut::new(), BytesMut::new(), BytesMut::new());
    let chunk = usize::from(control % 17) + 1;
    let mut sticky = Sticky::default();
    for (i, piece) in data.chunks(chunk).enumerate() {
        input.extend_from_slice(piece);
        let room = (i * 31 + usize::from(control)) % 97 + 1;
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
        sticky.check(result);
        up.clear();
    }
});
