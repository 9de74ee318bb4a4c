//! Framing codecs for netstrata: they cut the byte stream at the top of a
//! stack into messages, and frame messages for sending.
//!
//! ```text
//!            encode(msg)                          decode(&mut buf)
//! message ───────────────► [len|msg] ─── wire ───► BytesMut ───────► Bytes (zero-copy slice)
//!                          [msg\n]                  (caller-owned,      or Ok(None): need more
//!                                                    grows only as
//!                                                    bytes arrive)
//! ```
//!
//! Codecs, all implementing [`netstrata_core::Codec`]:
//!
//! - [`LengthDelimited`]: fixed-width length field (1 to 8 bytes, either byte
//!   order, at an offset, with adjustment and header stripping). The default
//!   is byte-compatible with tokio-util's `LengthDelimitedCodec::new()`;
//!   presets mirror Netty's `LengthFieldBasedFrameDecoder` and
//!   `LengthFieldPrepender`.
//! - [`Varint`]: LEB128 length prefix.
//! - [`Lines`] and [`Delimited`]: frames ended by `\n` (or `\r\n`) or by any
//!   byte string.
//!
//! What they guarantee:
//!
//! - Decoded frames are [`bytes::Bytes`] slices of the input buffer, not
//!   copies. `decode` returns `Ok(None)` until a whole frame is buffered, and
//!   gives the same frames for any chunking of the input.
//! - Bounded memory: decoding never reserves buffer space, whatever a header
//!   claims; the caller never needs more than [`Codec::max_buffered`] bytes
//!   buffered. Every limit has a default and a setter.
//! - An oversized frame is a typed error ([`FrameError`]) or, when configured
//!   ([`Oversize::Skip`]), dropped as its bytes arrive.
//! - No input makes a decoder panic. Errors say whether the peer
//!   ([`FrameError::is_peer_fault`]) or the caller is at fault.
//!
//! What they do not do: I/O, buffering of their own beyond a few bytes of
//! state, message encoding (serde, protobuf), text decoding (lines are bytes).
//!
//! # Features
//!
//! - `tokio-util` (off by default): every codec also implements tokio-util's
//!   `Decoder<Item = Bytes, Error = io::Error>`, `Encoder<Bytes>` and
//!   `Encoder<&[u8]>`, for `FramedRead`, `FramedWrite` and `Framed`. A
//!   [`FrameError`] becomes an `io::Error` of kind `InvalidData` (peer fault)
//!   or `InvalidInput` (caller misuse) carrying the `FrameError`; as with
//!   tokio-util's codecs, bytes left at the end of the stream are an error.
//!
//! # Example
//!
//! ```
//! use bytes::BytesMut;
//! use netstrata_core::Codec;
//! use netstrata_frame::LengthDelimited;
//!
//! let mut codec = LengthDelimited::new();
//! let mut wire = BytesMut::new();
//! codec.encode(b"hello", &mut wire)?;
//! codec.encode(b"", &mut wire)?;
//! assert_eq!(&wire[..], b"\0\0\0\x05hello\0\0\0\0");
//!
//! // The bytes arrive in chunks of 3; frames come out as soon as complete.
//! let mut inbox = BytesMut::new();
//! let mut frames = Vec::new();
//! for chunk in wire.chunks(3) {
//!     inbox.extend_from_slice(chunk);
//!     while let Some(frame) = codec.decode(&mut inbox)? {
//!         frames.push(frame);
//!     }
//! }
//! assert_eq!(frames, [&b"hello"[..], &b""[..]]);
//! assert!(inbox.is_empty());
//! # Ok::<(), netstrata_frame::FrameError>(())
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod delimited;
mod error;
mod length;
mod oversize;
mod varint;

#[cfg(feature = "tokio-util")]
mod tokio;

pub use delimited::{DEFAULT_MAX_LINE_LENGTH, Delimited, Lines};
pub use error::FrameError;
pub use length::{FrameLimit, LengthDelimited, LengthDelimitedBuilder};
pub use oversize::Oversize;
pub use varint::Varint;

pub use netstrata_core::Codec;

// Every codec and error crosses threads with its connection.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<LengthDelimited>();
    send_sync::<LengthDelimitedBuilder>();
    send_sync::<Varint>();
    send_sync::<Lines>();
    send_sync::<Delimited>();
    send_sync::<FrameError>();
};

/// Runs the crate README's example as a doc test.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
