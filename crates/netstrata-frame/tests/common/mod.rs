//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use bytes::{Bytes, BytesMut};
use netstrata_core::Codec;
use netstrata_frame::FrameError;
use proptest::prelude::*;

/// What a decoder made of a byte stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub frames: Vec<Bytes>,
    /// The first error, after which decoding stopped.
    pub error: Option<FrameError>,
    /// Bytes left in the buffer at the end (after `decode_eof`).
    pub leftover: usize,
}

/// Feeds `wire` to `codec` in chunks of the sizes in `chunks` (cycled; 0 is
/// read as 1), decoding all it can after each chunk, then calls `decode_eof`.
///
/// Checks the bounded-buffering contract on the way: whenever `decode`
/// returns `Ok(None)`, fewer than `max_buffered()` bytes are buffered (so a
/// caller capping its buffer there never deadlocks), and decoding never
/// grows the buffer's capacity.
pub fn feed<C: Codec<Error = FrameError>>(codec: &mut C, wire: &[u8], chunks: &[usize]) -> Outcome {
    let mut src = BytesMut::new();
    let mut frames = Vec::new();
    let mut rest = wire;
    let mut sizes = chunks.iter().copied().cycle();
    while !rest.is_empty() {
        let n = sizes.next().unwrap_or(rest.len()).clamp(1, rest.len());
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        src.extend_from_slice(chunk);
        loop {
            let capacity = src.capacity();
            let decoded = codec.decode(&mut src);
            assert!(src.capacity() <= capacity, "decode grew the buffer");
            match decoded {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => {
                    assert!(
                        src.len() < codec.max_buffered(),
                        "waiting with {} bytes buffered, max_buffered {}",
                        src.len(),
                        codec.max_buffered()
                    );
                    break;
                }
                Err(e) => {
                    return Outcome {
                        frames,
                        error: Some(e),
                        leftover: src.len(),
                    };
                }
            }
        }
    }
    loop {
        match codec.decode_eof(&mut src) {
            Ok(Some(frame)) => frames.push(frame),
            Ok(None) => break,
            Err(e) => {
                return Outcome {
                    frames,
                    error: Some(e),
                    leftover: src.len(),
                };
            }
        }
    }
    Outcome {
        frames,
        error: None,
        leftover: src.len(),
    }
}

/// Encodes every message into one buffer.
pub fn encode_all<C: Codec<Error = FrameError>>(codec: &mut C, msgs: &[Vec<u8>]) -> BytesMut {
    let mut wire = BytesMut::new();
    for msg in msgs {
        codec.encode(msg, &mut wire).expect("encodable message");
    }
    wire
}

/// Chunk sizes: one byte at a time, or random small sizes.
pub fn chunking() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        1 => Just(vec![1]),
        1 => Just(vec![usize::MAX]),
        4 => prop::collection::vec(1usize..=19, 1..6),
    ]
}

/// A list of messages, empty ones included.
pub fn messages(max_len: usize) -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 0..=max_len), 0..8)
}

/// Frames as plain vectors, for comparisons.
pub fn as_vecs(frames: &[Bytes]) -> Vec<Vec<u8>> {
    frames.iter().map(|f| f.to_vec()).collect()
}
