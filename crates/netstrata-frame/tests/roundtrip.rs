//! Encode then decode under any chunking gives the messages back, for every
//! codec and many length-delimited layouts.

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
