//! Encode then decode under any chunking gives the messages back, for every
//! codec and many length-delimited layouts; a frame written as its prefix
//! then the message is the frame `encode` writes.

mod common;

use bytes::BytesMut;
use common::{as_vecs, chunking, encode_all, feed, messages};
use netstrata_core::Codec;
use netstrata_frame::{
    Delimited, FrameError, FrameLimit, LengthDelimited, LengthDelimitedBuilder, Lines, Oversize,
    Varint,
};
use proptest::prelude::*;

/// A length-delimited layout and the header length and `num_skip` it implies.
#[derive(Debug, Clone)]
struct Layout {
    settings: LengthDelimitedBuilder,
    header: usize,
    num_skip: usize,
}

/// Any length-delimited layout: every field width, both byte orders, header
/// bytes before the field, adjustments either way, any `num_skip`, either
/// limit rule and oversize mode.
fn layout() -> impl Strategy<Value = Layout> {
    (
        1usize..=8,
        any::<bool>(),
        0usize..4,
        -12i64..=12,
        prop::option::of(0usize..14),
        prop::option::of(0usize..80),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(width, big, offset, adjustment, num_skip, max, whole, skip)| {
                let mut b = LengthDelimited::builder()
                    .length_field_length(width)
                    .length_field_offset(offset)
                    .length_adjustment(adjustment);
                b = if big {
                    b.big_endian()
                } else {
                    b.little_endian()
                };
                if let Some(n) = num_skip {
                    b = b.num_skip(n);
                }
                if let Some(max) = max {
                    b = b.max_frame_length(max);
                }
                if whole {
                    b = b.limit_applies_to(FrameLimit::WholeFrame);
                }
                if skip {
                    b = b.on_oversize(Oversize::Skip);
                }
                Layout {
                    settings: b,
                    header: offset + width,
                    num_skip: num_skip.unwrap_or(offset + width),
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn default_length_delimited_round_trips(msgs in messages(300), chunks in chunking()) {
        let mut codec = LengthDelimited::new();
        let wire = encode_all(&mut codec, &msgs);
        let out = feed(&mut codec, &wire, &chunks);
        prop_assert_eq!(out.error, None);
        prop_assert_eq!(out.leftover, 0);
        prop_assert_eq!(as_vecs(&out.frames), msgs);
    }

    /// Each message either is refused by the encoder (caller misuse, nothing
    /// written) or comes back as the encoded frame minus its first `num_skip`
    /// bytes: the message itself when `num_skip` is the header length.
    #[test]
    fn every_layout_round_trips(
        layout in layout(),
        msgs in messages(70),
        chunks in chunking(),
    ) {
        let Layout { settings, header, num_skip } = layout;
        let mut codec = settings.new_codec();
        let mut wire = BytesMut::new();
        let mut expected = Vec::new();
        for msg in &msgs {
            let mut frame = BytesMut::new();
            match codec.encode(msg, &mut frame) {
                Ok(()) => {
                    prop_assert_eq!(frame.len(), header + msg.len());
                    prop_assert_eq!(&frame[header..], &msg[..]);
                    let decoded = frame[num_skip..].to_vec();
                    if num_skip == header {
                        prop_assert_eq!(&decoded, msg);
                    }
                    expected.push(decoded);
                    wire.extend_from_slice(&frame);
                }
                Err(e) => {
                    prop_assert!(!e.is_peer_fault(), "{e}");
                    prop_assert!(frame.is_empty());
                }
            }
        }
        let out = feed(&mut codec, &wire, &chunks);
        prop_assert_eq!(out.error, None);
        prop_assert_eq!(out.leftover, 0);
        prop_assert_eq!(as_vecs(&out.frames), expected);
        prop_assert_eq!(codec.skipped_frames(), 0);
    }

    /// A message framed as `encode_prefix`'s prefix followed by the body is
    /// exactly what `encode` writes, for every layout and size; a message
    /// `encode` refuses, `encode_prefix` refuses with the same error.
    #[test]
    fn length_delimited_prefix_then_body_is_the_frame(
        layout in layout(),
        lens in prop::collection::vec(
            prop_oneof![0usize..90, Just(4096usize), Just(16 * 1024), Just(65_536), Just(70_000)],
            1..6,
        ),
    ) {
        let mut codec = layout.settings.new_codec();
        for len in lens {
            prop_assert_eq!(prefix_then_body(&mut codec, len), encoded(&mut codec, len));
        }
    }

    #[test]
    fn varint_prefix_then_body_is_the_frame(
        max in prop::option::of(0usize..20_000),
        lens in prop::collection::vec(prop_oneof![0usize..300, 16_000usize..17_000], 1..8),
    ) {
        let mut codec = match max {
            Some(max) => Varint::new().with_max_frame_length(max),
            None => Varint::new(),
        };
        for len in lens {
            prop_assert_eq!(prefix_then_body(&mut codec, len), encoded(&mut codec, len));
        }
    }

    #[test]
    fn varint_round_trips(msgs in messages(300), chunks in chunking()) {
        let mut codec = Varint::new();
        let wire = encode_all(&mut codec, &msgs);
        let out = feed(&mut codec, &wire, &chunks);
        prop_assert_eq!(out.error, None);
        prop_assert_eq!(as_vecs(&out.frames), msgs);
    }

    /// Messages over a small alphabet rich in delimiter bytes; the ones the
    /// encoder refuses are left out.
    #[test]
    fn delimited_round_trips(
        delimiter in prop::sample::select(vec![&b"\n"[..], b"\0", b"\r\n", b"\r\n\r\n", b"aba"]),
        msgs in prop::collection::vec(
            prop::collection::vec(prop::sample::select(vec![b'a', b'b', b'\r', b'\n', b'\0', b'x']), 0..12),
            0..10,
        ),
        chunks in chunking(),
    ) {
        check_delimited(Delimited::new(delimiter), &msgs, &chunks)?;
    }

    #[test]
    fn lines_round_trip(
        msgs in prop::collection::vec(
            prop::collection::vec(prop::sample::select(vec![b'a', b'\r', b'\n', b' ']), 0..12),
            0..10,
        ),
        chunks in chunking(),
    ) {
        check_delimited(Lines::new(), &msgs, &chunks)?;
    }
}

fn check_delimited<C: Codec<Error = FrameError>>(
    mut codec: C,
    msgs: &[Vec<u8>],
    chunks: &[usize],
) -> Result<(), TestCaseError> {
    let mut wire = BytesMut::new();
    let mut expected = Vec::new();
    for msg in msgs {
        match codec.encode(msg, &mut wire) {
            Ok(()) => expected.push(msg.clone()),
            Err(e) => prop_assert_eq!(e, FrameError::MessageContainsDelimiter),
        }
    }
    let out = feed(&mut codec, &wire, chunks);
    prop_assert_eq!(out.error, None);
    prop_assert_eq!(out.leftover, 0);
    prop_assert_eq!(as_vecs(&out.frames), expected);
    Ok(())
}

/// A message of `len` bytes with marked ends.
fn body(len: usize) -> Vec<u8> {
    let mut body = vec![0x5a; len];
    if let Some(first) = body.first_mut() {
        *first = 1;
    }
    if let Some(last) = body.last_mut() {
        *last = 2;
    }
    body
}

/// What `encode` appends for a message of `len` bytes (to a buffer that
/// already holds bytes), or its error.
fn encoded<C: Codec<Error = FrameError>>(codec: &mut C, len: usize) -> Result<Vec<u8>, FrameError> {
    let mut dst = BytesMut::from(&b"before"[..]);
    codec.encode(&body(len), &mut dst)?;
    Ok(dst[6..].to_vec())
}

/// `encode_prefix`'s prefix, then the body; its error with nothing appended.
fn prefix_then_body<C: Codec<Error = FrameError>>(
    codec: &mut C,
    len: usize,
) -> Result<Vec<u8>, FrameError> {
    let mut dst = BytesMut::from(&b"before"[..]);
    let result = codec
        .encode_prefix(len, &mut dst)
        .expect("frames as prefix + body");
    if let Err(e) = result {
        assert_eq!(&dst[..], b"before", "nothing appended on refusal");
        return Err(e);
    }
    dst.extend_from_slice(&body(len));
    Ok(dst[6..].to_vec())
}

#[test]
fn prefix_then_body_is_the_frame_for_the_presets() {
    let codecs = [
        LengthDelimited::new(),
        LengthDelimited::netty_prepender(2, 0, true),
        LengthDelimited::netty_prepender(8, -3, false),
        LengthDelimited::netty_decoder(1 << 20, 2, 3, -5, 0),
        LengthDelimited::builder()
            .length_field_length(2)
            .little_endian()
            .length_adjustment(-2)
            .new_codec(),
    ];
    for mut codec in codecs {
        for len in [
            0,
            1,
            255,
            256,
            4095,
            4096,
            16 * 1024,
            65_535,
            65_536,
            100_000,
        ] {
            assert_eq!(
                prefix_then_body(&mut codec, len),
                encoded(&mut codec, len),
                "{codec:?}, {len} bytes"
            );
        }
    }
}
