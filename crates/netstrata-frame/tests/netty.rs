//! The Netty presets against the examples of Netty's
//! `LengthFieldBasedFrameDecoder` documentation, and `LengthFieldPrepender`'s
//! rules.

mod common;

use bytes::BytesMut;
use common::{as_vecs, feed};
use netstrata_core::Codec;
use netstrata_frame::{FrameError, LengthDelimited, Oversize};

const CONTENT: &[u8] = b"HELLO, WORLD";

fn frame(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Decodes `wire` with Netty's parameters, whole and byte at a time, and
/// checks the single frame.
fn check(params: (usize, usize, i64, usize), wire: &[u8], expected: &[u8]) {
    let (offset, width, adjustment, strip) = params;
    for chunks in [&[usize::MAX][..], &[1]] {
        let mut codec = LengthDelimited::netty_decoder(1024, offset, width, adjustment, strip);
        let out = feed(&mut codec, wire, chunks);
        assert_eq!(out.error, None, "{params:?}");
        assert_eq!(as_vecs(&out.frames), [expected.to_vec()], "{params:?}");
        assert_eq!(out.leftover, 0);
    }
}

#[test]
fn two_byte_length_at_offset_0_keep_header() {
    let wire = frame(&[&[0x00, 0x0C], CONTENT]);
    assert_eq!(wire.len(), 14);
    check((0, 2, 0, 0), &wire, &wire);
}

#[test]
fn two_byte_length_at_offset_0_strip_header() {
    let wire = frame(&[&[0x00, 0x0C], CONTENT]);
    check((0, 2, 0, 2), &wire, CONTENT);
}

#[test]
fn two_byte_length_counting_whole_message() {
    let wire = frame(&[&[0x00, 0x0E], CONTENT]);
    check((0, 2, -2, 0), &wire, &wire);
}

#[test]
fn three_byte_length_at_end_of_five_byte_header() {
    let wire = frame(&[&[0xCA, 0xFE], &[0x00, 0x00, 0x0C], CONTENT]);
    assert_eq!(wire.len(), 17);
    check((2, 3, 0, 0), &wire, &wire);
}

#[test]
fn three_byte_length_at_start_of_five_byte_header() {
    let wire = frame(&[&[0x00, 0x00, 0x0C], &[0xCA, 0xFE], CONTENT]);
    check((0, 3, 2, 0), &wire, &wire);
}

#[test]
fn length_in_middle_of_four_byte_header_strip_first_two_fields() {
    let wire = frame(&[&[0xCA], &[0x00, 0x0C], &[0xFE], CONTENT]);
    assert_eq!(wire.len(), 16);
    check((1, 2, 1, 3), &wire, &frame(&[&[0xFE], CONTENT]));
}

#[test]
fn length_in_middle_counting_whole_message_strip_first_two_fields() {
    let wire = frame(&[&[0xCA], &[0x00, 0x10], &[0xFE], CONTENT]);
    check((1, 2, -3, 3), &wire, &frame(&[&[0xFE], CONTENT]));
}

/// Netty's maximum counts the whole frame, header included.
#[test]
fn max_frame_length_counts_the_whole_frame() {
    let wire = frame(&[&[0x00, 0x0C], CONTENT]);
    let mut at_limit = LengthDelimited::netty_decoder(14, 0, 2, 0, 2);
    assert_eq!(feed(&mut at_limit, &wire, &[1]).frames, [CONTENT]);

    let mut below = LengthDelimited::netty_decoder(13, 0, 2, 0, 2);
    let out = feed(&mut below, &wire, &[1]);
    assert_eq!(
        out.error,
        Some(FrameError::FrameTooLong { len: 14, max: 13 })
    );
    assert_eq!(below.max_buffered(), 13);

    // Netty goes on after an oversized frame; so does the skip mode.
    let mut skipping = below.to_builder().on_oversize(Oversize::Skip).new_codec();
    let two = frame(&[&wire, &[0x00, 0x01, b'!']]);
    let out = feed(&mut skipping, &two, &[1]);
    assert_eq!(out.error, None);
    assert_eq!(as_vecs(&out.frames), [b"!".to_vec()]);
    assert_eq!(skipping.skipped_frames(), 1);
}

/// Frames shorter than the end of the length field, or than the bytes to
/// strip, are corrupt for Netty.
#[test]
fn frames_shorter_than_header_or_strip_are_bad_lengths() {
    // Field 0 with adjustment -3: frame of 1 + 2 + 0 - 3 = 0 bytes < 3.
    let mut codec = LengthDelimited::netty_decoder(1024, 1, 2, -3, 0);
    assert!(matches!(
        codec.decode(&mut BytesMut::from(&[0xCA, 0x00, 0x00, 0xFE][..])),
        Err(FrameError::BadLength { field: 0, .. })
    ));
    // Frame of 2 + 1 = 3 bytes, but 4 to strip.
    let mut codec = LengthDelimited::netty_decoder(1024, 0, 2, 0, 4);
    let mut src = BytesMut::from(&[0x00, 0x01, b'x', b'y', b'z'][..]);
    assert!(matches!(
        codec.decode(&mut src),
        Err(FrameError::BadLength { field: 1, .. })
    ));
}

#[test]
fn prepender_writes_netty_lengths() {
    let cases: [(usize, i64, bool, &[u8]); 5] = [
        (2, 0, false, &[0x00, 0x0C]),
        (2, 0, true, &[0x00, 0x0E]),
        (1, 3, false, &[0x0F]),
        (4, -2, true, &[0x00, 0x00, 0x00, 0x0E]),
        (8, 0, false, &[0, 0, 0, 0, 0, 0, 0, 0x0C]),
    ];
    for (width, adjustment, includes, header) in cases {
        let mut codec = LengthDelimited::netty_prepender(width, adjustment, includes);
        let mut wire = BytesMut::new();
        codec.encode(CONTENT, &mut wire).unwrap();
        assert_eq!(
            &wire[..],
            frame(&[header, CONTENT]),
            "{width} {adjustment} {includes}"
        );
        // Its own decoder reads the message back.
        assert_eq!(&codec.decode(&mut wire).unwrap().unwrap()[..], CONTENT);
    }
}

#[test]
fn prepender_with_netty_decoder_of_matching_settings() {
    // LengthFieldPrepender(2, true) with LengthFieldBasedFrameDecoder(max, 0, 2, -2, 2).
    let mut prepender = LengthDelimited::netty_prepender(2, 0, true);
    let mut wire = BytesMut::new();
    prepender.encode(CONTENT, &mut wire).unwrap();
    let mut decoder = LengthDelimited::netty_decoder(1024, 0, 2, -2, 2);
    assert_eq!(&decoder.decode(&mut wire).unwrap().unwrap()[..], CONTENT);
}

#[test]
fn prepender_refuses_what_netty_refuses() {
    // Negative length.
    let mut codec = LengthDelimited::netty_prepender(2, -20, false);
    let mut wire = BytesMut::new();
    assert_eq!(
        codec.encode(CONTENT, &mut wire),
        Err(FrameError::LengthNotRepresentable { len: 12, width: 2 })
    );
    // 256 does not fit in one byte.
    let mut codec = LengthDelimited::netty_prepender(1, 0, false);
    assert!(codec.encode(&[0; 255], &mut wire).is_ok());
    wire.clear();
    let err = codec.encode(&[0; 256], &mut wire).unwrap_err();
    assert!(!err.is_peer_fault());
    assert!(wire.is_empty());
}

#[test]
#[should_panic(expected = "1, 2, 3, 4 or 8")]
fn netty_widths_only() {
    let _ = LengthDelimited::netty_decoder(1024, 0, 5, 0, 0);
}
