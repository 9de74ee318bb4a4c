//! Arbitrary bytes in arbitrary chunks into every frame decoder, in both
//! oversize modes: no panic, frames within the limit, never more buffered
//! than `max_buffered()` while waiting, and at end of stream either frames,
//! a clean end or an error.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use netstrata_core::Codec;
use netstrata_frame::{Delimited, LengthDelimited, Lines, Oversize, Varint};

fn run<C: Codec>(mut codec: C, data: &[u8], chunk: usize) {
    let max = codec.max_buffered();
    let mut src = BytesMut::new();
    for piece in data.chunks(chunk) {
        src.extend_from_slice(piece);
        loop {
            match codec.decode(&mut src) {
                Ok(Some(frame)) => assert!(frame.len() <= max),
                Ok(None) => {
                    assert!(src.len() < max.max(1) + chunk);
                    break;
                }
                Err(_) => return,
            }
        }
    }
    while let Ok(Some(frame)) = codec.decode_eof(&mut src) {
        assert!(frame.len() <= max);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, data)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(control & 0x0f) + 1;
    let oversize = if control & 0x10 == 0 {
        Oversize::Error
    } else {
        Oversize::Skip
    };
    let small = 64 + usize::from(control >> 5) * 100;
    let width = [1, 2, 3, 4, 8][usize::from(control >> 5) % 5];
    let adjustment = i64::from(control as i8) / 8;
    run(LengthDelimited::new(), data, chunk);
    run(
        LengthDelimited::builder()
            .length_field_length(width)
            .little_endian()
            .length_field_offset(usize::from(control & 3))
            .length_adjustment(adjustment)
            .max_frame_length(small)
            .on_oversize(oversize)
            .new_codec(),
        data,
        chunk,
    );
    run(
        LengthDelimited::netty_decoder(small, 2, 2, -4, 4),
        data,
        chunk,
    );
    run(
        Varint::new()
            .with_max_frame_length(small)
            .with_oversize(oversize),
        data,
        chunk,
    );
    run(
        Lines::new().with_max_length(small).with_oversize(oversize),
        data,
        chunk,
    );
    run(
        Delimited::new(b"\r\n\r\n")
            .with_max_length(small)
            .with_oversize(oversize),
        data,
        chunk,
    );
});
