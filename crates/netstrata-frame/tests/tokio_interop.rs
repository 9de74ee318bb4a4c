//! Byte-for-byte interop with tokio-util's `LengthDelimitedCodec`, and the
//! same decoding decisions on arbitrary input.

mod common;

use bytes::{Bytes, BytesMut};
use common::{as_vecs, chunking, feed, messages};
use netstrata_core::Codec;
use netstrata_frame::{FrameError, LengthDelimited};
use proptest::prelude::*;
use tokio_util::codec::length_delimited::Builder as TokioBuilder;
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

/// The same settings for both codecs.
#[derive(Debug, Clone, Copy)]
struct Settings {
    width: usize,
    big_endian: bool,
    offset: usize,
    adjustment: i64,
    num_skip: Option<usize>,
    max: Option<usize>,
}

impl Settings {
    const DEFAULT: Self = Self {
        width: 4,
        big_endian: true,
        offset: 0,
        adjustment: 0,
        num_skip: None,
        max: None,
    };

    fn ours(self) -> LengthDelimited {
        let mut b = LengthDelimited::builder()
            .length_field_length(self.width)
            .length_field_offset(self.offset)
            .length_adjustment(self.adjustment);
        b = if self.big_endian {
            b.big_endian()
        } else {
            b.little_endian()
        };
        if let Some(n) = self.num_skip {
            b = b.num_skip(n);
        }
        if let Some(max) = self.max {
            b = b.max_frame_length(max);
        }
        b.new_codec()
    }

    fn tokio(self) -> LengthDelimitedCodec {
        let mut b = TokioBuilder::new();
        b.length_field_length(self.width)
            .length_field_offset(self.offset)
            .length_adjustment(self.adjustment as isize);
        if self.big_endian {
            b.big_endian();
        } else {
            b.little_endian();
        }
        if let Some(n) = self.num_skip {
            b.num_skip(n);
        }
        if let Some(max) = self.max {
            b.max_frame_length(max);
        }
        b.new_codec()
    }
}

/// Layouts where both encoders write the same bytes (no offset, default
/// `num_skip`): default, 2-byte little endian counting itself, 8-byte, 3-byte
/// with extra header bytes after the field, 1-byte.
const SAME_ENCODING: [Settings; 5] = [
    Settings::DEFAULT,
    Settings {
        width: 2,
        big_endian: false,
        adjustment: -2,
        ..Settings::DEFAULT
    },
    Settings {
        width: 8,
        ..Settings::DEFAULT
    },
    Settings {
        width: 3,
        big_endian: false,
        adjustment: 5,
        ..Settings::DEFAULT
    },
    Settings {
        width: 1,
        ..Settings::DEFAULT
    },
];

/// A 2-byte type tag, then a 2-byte length counting the whole 4-byte header.
const OFFSET_AND_ADJUSTMENT: Settings = Settings {
    width: 2,
    offset: 2,
    adjustment: -4,
    ..Settings::DEFAULT
};

fn tokio_decode_all(codec: &mut LengthDelimitedCodec, wire: &[u8]) -> Vec<Vec<u8>> {
    let mut src = BytesMut::from(wire);
    let mut frames = Vec::new();
    while let Some(frame) = codec.decode(&mut src).expect("tokio decodes") {
        frames.push(frame.to_vec());
    }
    assert!(src.is_empty(), "tokio left {} bytes", src.len());
    frames
}

/// Messages the settings can frame (tokio's encoder refuses nothing we keep).
fn framable(settings: Settings, msgs: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let mut ours = settings.ours();
    msgs.into_iter()
        .filter(|m| Codec::encode(&mut ours, m, &mut BytesMut::new()).is_ok())
        .collect()
}

proptest! {
    #[test]
    fn same_bytes_both_ways(
        which in 0..SAME_ENCODING.len(),
        msgs in messages(300),
        chunks in chunking(),
    ) {
        let settings = SAME_ENCODING[which];
        let msgs = framable(settings, msgs);
        let mut ours = settings.ours();
        let mut tokio = settings.tokio();
        let mut our_wire = BytesMut::new();
        let mut tokio_wire = BytesMut::new();
        for msg in &msgs {
            Codec::encode(&mut ours, msg, &mut our_wire).unwrap();
            Encoder::<Bytes>::encode(&mut tokio, Bytes::copy_from_slice(msg), &mut tokio_wire).unwrap();
        }
        prop_assert_eq!(&our_wire[..], &tokio_wire[..]);
        // Ours to theirs, theirs to ours.
        prop_assert_eq!(tokio_decode_all(&mut settings.tokio(), &our_wire), msgs.clone());
        let out = feed(&mut settings.ours(), &tokio_wire, &chunks);
        prop_assert_eq!(out.error, None);
        prop_assert_eq!(as_vecs(&out.frames), msgs);
    }

    /// With a header field before the length, tokio-util's encoder writes no
    /// prefix (it ignores the offset); a tokio user prepends it by hand, and
    /// our decoder reads that. Our encoder writes the prefix itself, and
    /// tokio-util's decoder reads our frames.
    #[test]
    fn offset_and_adjustment_both_ways(
        msgs in messages(200),
        tag in any::<[u8; 2]>(),
        chunks in chunking(),
    ) {
        let settings = OFFSET_AND_ADJUSTMENT;
        let mut ours = settings.ours();
        let mut our_wire = BytesMut::new();
        let mut tokio_wire = BytesMut::new();
        for msg in &msgs {
            Codec::encode(&mut ours, msg, &mut our_wire).unwrap();
            let mut frame = BytesMut::new();
            settings.tokio().encode(&msg[..], &mut frame).unwrap();
            tokio_wire.extend_from_slice(&tag);
            tokio_wire.extend_from_slice(&frame);
        }
        prop_assert_eq!(tokio_decode_all(&mut settings.tokio(), &our_wire), msgs.clone());
        let out = feed(&mut settings.ours(), &tokio_wire, &chunks);
        prop_assert_eq!(out.error, None);
        prop_assert_eq!(as_vecs(&out.frames), msgs);
    }

    /// On arbitrary bytes and settings, both decoders return the same frames
    /// and fail at the same frame. The one difference: a frame that ends
    /// inside its own length field is refused here and returned by
    /// tokio-util.
    #[test]
    fn same_decisions_on_any_input(
        width in 1usize..=8,
        big_endian in any::<bool>(),
        offset in 0usize..4,
        adjustment in -10i64..=10,
        num_skip in prop::option::of(0usize..8),
        max in prop::option::of(0usize..300),
        // Frames with small length values, mostly with the body length the
        // header announces, so that frames and errors are both common.
        frames in prop::collection::vec(
            (0u64..24, prop::option::weighted(0.2, 0usize..30), any::<u8>()),
            0..12,
        ),
        chunks in chunking(),
    ) {
        let settings = Settings { width, big_endian, offset, adjustment, num_skip, max };
        let header = offset + width;
        let mut wire = Vec::new();
        for (value, body_len, fill) in frames {
            wire.extend(std::iter::repeat_n(fill, offset));
            if big_endian {
                wire.extend_from_slice(&value.to_be_bytes()[8 - width..]);
            } else {
                wire.extend_from_slice(&value.to_le_bytes()[..width]);
            }
            let whole = num_skip.unwrap_or(header) as i64 + value as i64 + adjustment;
            let body_len = body_len.unwrap_or((whole - header as i64).max(0) as usize);
            wire.extend(std::iter::repeat_n(fill, body_len));
        }
        let ours = feed(&mut settings.ours(), &wire, &chunks);

        let mut tokio = settings.tokio();
        let mut src = BytesMut::from(&wire[..]);
        let mut theirs = Vec::new();
        let mut tokio_failed = false;
        // tokio-util may return empty frames forever without consuming input.
        while theirs.len() <= ours.frames.len() {
            match tokio.decode(&mut src) {
                Ok(Some(frame)) => theirs.push(frame.to_vec()),
                Ok(None) => break,
                Err(_) => {
                    tokio_failed = true;
                    break;
                }
            }
        }
        let ours_frames = as_vecs(&ours.frames);
        match ours.error {
            None => {
                prop_assert!(!tokio_failed);
                prop_assert_eq!(theirs, ours_frames);
            }
            Some(FrameError::BadLength { .. }) => {
                prop_assert_eq!(&theirs[..ours_frames.len()], &ours_frames[..]);
            }
            Some(e) => {
                prop_assert!(matches!(e, FrameError::FrameTooLong { .. }), "{e}");
                prop_assert!(tokio_failed);
                prop_assert_eq!(theirs, ours_frames);
            }
        }
    }
}

#[test]
fn default_matches_tokio_new() {
    let mut wire = BytesMut::new();
    Codec::encode(&mut LengthDelimited::new(), b"abc", &mut wire).unwrap();
    let mut theirs = BytesMut::new();
    LengthDelimitedCodec::new()
        .encode(Bytes::from_static(b"abc"), &mut theirs)
        .unwrap();
    assert_eq!(&wire[..], b"\0\0\0\x03abc");
    assert_eq!(wire, theirs);
    assert_eq!(
        LengthDelimited::new().max_frame_length(),
        LengthDelimitedCodec::new().max_frame_length()
    );
}
