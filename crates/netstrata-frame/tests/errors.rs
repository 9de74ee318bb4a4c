//! Hostile and broken input: typed errors, skip-and-resync, no panics, and
//! memory bounded by what arrived rather than by what a header claims.

mod common;

use bytes::{BufMut, BytesMut};
use common::{as_vecs, chunking, feed};
use netstrata_core::Codec;
use netstrata_frame::{
    Delimited, FrameError, FrameLimit, LengthDelimited, Lines, Oversize, Varint,
};
use proptest::prelude::*;

#[test]
fn header_announcing_8_mib_reserves_nothing() {
    let mut src = BytesMut::with_capacity(16);
    let capacity = src.capacity();
    src.put_u32(8 * 1024 * 1024);
    src.put_slice(b"abc");
    let mut codec = LengthDelimited::new();
    assert_eq!(codec.decode(&mut src), Ok(None));
    assert_eq!(src.capacity(), capacity);
    assert_eq!(src.len(), 7);

    let mut src = BytesMut::with_capacity(16);
    src.put_slice(&[0x80, 0x80, 0x80, 0x04]); // 8 MiB as a varint
    assert_eq!(Varint::new().decode(&mut src), Ok(None));
    assert_eq!(src.capacity(), capacity);
}

#[test]
fn oversized_frame_is_a_typed_peer_fault() {
    let mut src = BytesMut::new();
    src.put_u32(8 * 1024 * 1024 + 1);
    let mut codec = LengthDelimited::new();
    let err = codec.decode(&mut src).unwrap_err();
    assert_eq!(
        err,
        FrameError::FrameTooLong {
            len: 8 * 1024 * 1024 + 1,
            max: 8 * 1024 * 1024
        }
    );
    assert!(err.is_peer_fault());
    // The error sticks: the bytes stay, the same error comes again.
    assert_eq!(src.len(), 4);
    assert_eq!(codec.decode(&mut src), Err(err));
    // Exactly at the limit is fine.
    let mut src = BytesMut::new();
    src.put_u32(8 * 1024 * 1024);
    assert_eq!(codec.decode(&mut src), Ok(None));
}

#[test]
fn skip_mode_drops_exactly_the_oversized_frame() {
    let mut codec = LengthDelimited::builder()
        .max_frame_length(10)
        .on_oversize(Oversize::Skip)
        .new_codec();
    let mut wire = BytesMut::new();
    wire.put_u32(1000);
    wire.put_slice(&[0xAB; 1000]);
    Codec::encode(&mut codec, b"next", &mut wire).unwrap();
    Codec::encode(&mut codec, b"", &mut wire).unwrap();
    for chunks in [&[1][..], &[7, 300], &[usize::MAX]] {
        let mut codec = codec.clone();
        let out = feed(&mut codec, &wire, chunks);
        assert_eq!(out.error, None);
        assert_eq!(as_vecs(&out.frames), [b"next".to_vec(), vec![]]);
        assert_eq!(codec.skipped_frames(), 1);
    }
}

/// Skipped bytes are dropped as they arrive, not buffered.
#[test]
fn skip_mode_buffers_nothing_of_the_skipped_frame() {
    let mut codec = LengthDelimited::builder()
        .max_frame_length(10)
        .on_oversize(Oversize::Skip)
        .new_codec();
    let mut src = BytesMut::new();
    src.put_u32(1 << 30);
    for _ in 0..100 {
        assert_eq!(codec.decode(&mut src), Ok(None));
        assert!(src.is_empty());
        src.put_slice(&[0; 1000]);
    }
    assert_eq!(codec.skipped_frames(), 1);

    let mut codec = Varint::new()
        .with_max_frame_length(10)
        .with_oversize(Oversize::Skip);
    let mut src = BytesMut::from(&[0xE8, 0x07][..]); // 1000
    src.put_slice(&[0; 999]);
    assert_eq!(codec.decode(&mut src), Ok(None));
    assert!(src.is_empty());
    src.put_slice(&[0, 1, b'x']);
    assert_eq!(&codec.decode(&mut src).unwrap().unwrap()[..], b"x");
    assert_eq!(codec.skipped_frames(), 1);
}

#[test]
fn negative_length_after_adjustment_is_a_bad_length() {
    let mut codec = LengthDelimited::builder().length_adjustment(-4).new_codec();
    let mut src = BytesMut::from(&[0, 0, 0, 2, 1, 2][..]);
    assert_eq!(
        codec.decode(&mut src),
        Err(FrameError::BadLength {
            field: 2,
            adjustment: -4
        })
    );
    // Extreme values neither overflow nor panic.
    for adjustment in [i64::MIN, -1, 1, i64::MAX] {
        for limit in [FrameLimit::FieldValue, FrameLimit::WholeFrame] {
            let mut codec = LengthDelimited::builder()
                .length_field_length(8)
                .length_adjustment(adjustment)
                .num_skip(usize::MAX)
                .max_frame_length(usize::MAX)
                .limit_applies_to(limit)
                .new_codec();
            let mut src = BytesMut::from(&[0xFF; 16][..]);
            let _ = codec.decode(&mut src);
            let _ = Codec::encode(&mut codec, b"x", &mut src);
            let _ = codec.max_buffered();
        }
    }
}

#[test]
fn varint_errors() {
    let mut codec = Varint::new();
    let overflow = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02];
    assert_eq!(
        codec.decode(&mut BytesMut::from(&overflow[..])),
        Err(FrameError::VarintOverflow)
    );
    let too_long = [0x80; 11];
    assert_eq!(
        codec.decode(&mut BytesMut::from(&too_long[..])),
        Err(FrameError::VarintTooLong)
    );
    // Nine continuation bytes: still waiting for the tenth.
    assert_eq!(codec.decode(&mut BytesMut::from(&[0x80; 9][..])), Ok(None));
    let above_max = [0x81, 0x80, 0x80, 0x04]; // 8 MiB + 1
    assert_eq!(
        codec.decode(&mut BytesMut::from(&above_max[..])),
        Err(FrameError::FrameTooLong {
            len: 8 * 1024 * 1024 + 1,
            max: 8 * 1024 * 1024
        })
    );
    let mut small = Varint::new().with_max_frame_length(3);
    let mut wire = BytesMut::new();
    assert_eq!(
        small.encode(b"four", &mut wire),
        Err(FrameError::MessageTooLong { len: 4, max: 3 })
    );
    assert!(wire.is_empty());
}

#[test]
fn too_long_line_is_an_error_by_default() {
    let mut codec = Lines::new().with_max_length(4);
    // "abcd\r" is 5 bytes before the newline: too long (the \r counts).
    let out = feed(&mut codec, b"ab\nabcd\r\n", &[1]);
    assert_eq!(as_vecs(&out.frames), [b"ab".to_vec()]);
    assert_eq!(out.error, Some(FrameError::LineTooLong { max: 4 }));
    assert!(out.error.unwrap().is_peer_fault());
    let out = feed(&mut Lines::new().with_max_length(4), b"abcd\nabc\r\n", &[1]);
    assert_eq!(as_vecs(&out.frames), [b"abcd".to_vec(), b"abc".to_vec()]);
    // An unterminated last line above the limit.
    let out = feed(
        &mut Lines::new().with_max_length(4),
        b"abcde",
        &[usize::MAX],
    );
    assert_eq!(out.error, Some(FrameError::LineTooLong { max: 4 }));
}

#[test]
fn too_long_line_skip_mode_resumes_after_the_next_delimiter() {
    let wire = b"ok\r\nthis one is too long\r\nafter\r\nlast";
    for chunks in [&[1][..], &[3, 5], &[usize::MAX]] {
        let mut codec = Lines::new()
            .with_max_length(6)
            .with_oversize(Oversize::Skip);
        let out = feed(&mut codec, wire, chunks);
        assert_eq!(out.error, None);
        let expected: [&[u8]; 3] = [b"ok", b"after", b"last"];
        assert_eq!(out.frames, expected);
        assert_eq!(codec.skipped_frames(), 1);
    }
    // A multi-byte delimiter split across chunks ends the skipped frame.
    let wire = b"0123456789\r\n\r\nok\r\n\r\n";
    for chunks in [&[1][..], &[11, 1, 1, 1], &[12, 2]] {
        let mut codec = Delimited::new(b"\r\n\r\n")
            .with_max_length(4)
            .with_oversize(Oversize::Skip);
        let out = feed(&mut codec, wire, chunks);
        assert_eq!(out.error, None);
        assert_eq!(as_vecs(&out.frames), [b"ok".to_vec()]);
        assert_eq!(codec.skipped_frames(), 1);
    }
}

#[test]
fn delimited_refuses_messages_that_would_not_decode_back() {
    let mut codec = Delimited::new(b"\r\n\r\n");
    let mut wire = BytesMut::new();
    for msg in [&b"a\r\n\r\nb"[..], b"a\r\n", b"\r\n"] {
        assert_eq!(
            codec.encode(msg, &mut wire),
            Err(FrameError::MessageContainsDelimiter),
            "{msg:?}"
        );
    }
    for msg in [&b"a\n"[..], b"a\r", b"a\r\n\r", b"\n\r"] {
        assert!(codec.encode(msg, &mut wire).is_ok(), "{msg:?}");
    }
    let mut lines = Lines::new();
    assert!(lines.encode(b"a\r", &mut wire).is_err());
    assert!(lines.encode(b"a\rb", &mut wire).is_ok());
}

/// Decodes bytes in the given chunks with a fresh decoder; also returns its
/// `max_buffered()`.
type Decode = Box<dyn FnMut(&[u8], &[usize]) -> (common::Outcome, usize)>;

/// Every decoder in every mode.
fn decoders() -> Vec<Decode> {
    fn run<C: Codec<Error = FrameError> + Clone + 'static>(codec: C) -> Decode {
        Box::new(move |wire, chunks| {
            let mut codec = codec.clone();
            let out = feed(&mut codec, wire, chunks);
            (out, codec.max_buffered())
        })
    }
    let mut all = Vec::new();
    for oversize in [Oversize::Error, Oversize::Skip] {
        for width in [1, 2, 3, 4, 8] {
            all.push(run(LengthDelimited::builder()
                .length_field_length(width)
                .max_frame_length(40)
                .on_oversize(oversize)
                .new_codec()));
        }
        all.push(run(LengthDelimited::builder()
            .length_field_length(2)
            .little_endian()
            .length_field_offset(1)
            .length_adjustment(-5)
            .num_skip(0)
            .max_frame_length(40)
            .on_oversize(oversize)
            .new_codec()));
        all.push(run(LengthDelimited::netty_decoder(40, 1, 2, 1, 3)
            .to_builder()
            .on_oversize(oversize)
            .new_codec()));
        all.push(run(Varint::new()
            .with_max_frame_length(40)
            .with_oversize(oversize)));
        all.push(run(Lines::new().with_max_length(8).with_oversize(oversize)));
        all.push(run(Delimited::new(b"\r\n\r\n")
            .with_max_length(8)
            .with_oversize(oversize)));
        all.push(run(Delimited::new(b"\0")
            .with_max_length(0)
            .with_oversize(oversize)));
    }
    all
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Arbitrary bytes: no panic, buffering within `max_buffered` (checked in
    /// `feed`), and the same outcome however the bytes are chunked.
    #[test]
    fn arbitrary_input_is_safe_and_chunking_independent(
        wire in prop::collection::vec(
            prop_oneof![3 => any::<u8>(), 1 => Just(0u8), 1 => Just(b'\n'), 1 => Just(b'\r')],
            0..300,
        ),
        chunks in chunking(),
    ) {
        for mut decode in decoders() {
            let (whole, max_buffered) = decode(&wire, &[usize::MAX]);
            let (chunked, _) = decode(&wire, &chunks);
            // What is left buffered at an error depends on the chunking.
            prop_assert_eq!(&chunked.frames, &whole.frames);
            prop_assert_eq!(&chunked.error, &whole.error);
            prop_assert!(whole.frames.iter().all(|f| f.len() <= max_buffered));
        }
    }
}

/// A stream cut inside a skipped frame is truncation, not a clean end.
#[test]
fn end_of_stream_inside_a_skipped_frame_is_an_error() {
    let mut codec = LengthDelimited::builder()
        .max_frame_length(10)
        .on_oversize(Oversize::Skip)
        .new_codec();
    let mut src = BytesMut::new();
    src.put_u32(100);
    src.put_slice(&[0; 60]);
    assert_eq!(codec.decode(&mut src), Ok(None));
    let err = codec.decode_eof(&mut src).unwrap_err();
    assert_eq!(err, FrameError::EndInSkippedFrame { missing: 40 });
    assert!(err.is_peer_fault());

    // Skipped to its end: a clean end.
    src.put_slice(&[0; 40]);
    assert_eq!(codec.decode_eof(&mut src), Ok(None));

    let mut codec = Varint::new()
        .with_max_frame_length(10)
        .with_oversize(Oversize::Skip);
    let mut src = BytesMut::from(&[20, 0, 0][..]);
    assert_eq!(codec.decode(&mut src), Ok(None));
    assert_eq!(
        codec.decode_eof(&mut src),
        Err(FrameError::EndInSkippedFrame { missing: 18 })
    );
}
