//! Frames prefixed by a fixed-width length field.

mod builder;

pub use builder::{FrameLimit, LengthDelimitedBuilder};

use std::ops::RangeInclusive;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use netstrata_core::Codec;

use crate::oversize::Discard;
use crate::{FrameError, Oversize};

/// Frames with a fixed-width length field: tokio-util's
/// `LengthDelimitedCodec` and Netty's
/// `LengthFieldBasedFrameDecoder`/`LengthFieldPrepender`, sans-IO.
///
/// [`LengthDelimited::new`] is the default wire profile: a 4-byte big-endian
/// length of the payload, payload only in decoded frames, 8 MiB maximum;
/// byte-compatible with tokio-util's `LengthDelimitedCodec::new()`. Other
/// layouts are set with [`LengthDelimited::builder`] (the rules are on
/// [`LengthDelimitedBuilder`]) or the Netty presets.
///
/// Decoding never reserves memory: the buffer grows only by what the caller
/// appends, and a frame is returned as a zero-copy slice of it. A header
/// announcing more than the maximum is refused (or skipped) before any byte of
/// the frame is buffered.
///
/// ```
/// use bytes::BytesMut;
/// use netstrata_core::Codec;
/// use netstrata_frame::LengthDelimited;
///
/// // 2-byte little-endian length that counts itself.
/// let mut codec = LengthDelimited::builder()
///     .length_field_length(2)
///     .little_endian()
///     .length_adjustment(-2)
///     .new_codec();
/// let mut wire = BytesMut::new();
/// codec.encode(b"hi", &mut wire)?;
/// assert_eq!(&wire[..], b"\x04\x00hi");
/// assert_eq!(&codec.decode(&mut wire)?.unwrap()[..], b"hi");
/// # Ok::<(), netstrata_frame::FrameError>(())
/// ```
#[derive(Debug, Clone)]
pub struct LengthDelimited {
    settings: LengthDelimitedBuilder,
    /// Start and end of the length field within the header.
    field_start: usize,
    field_end: usize,
    /// Bytes needed before the header can be read: `max(field_end, num_skip)`.
    head_len: usize,
    num_skip: usize,
    /// Whole frame length on the wire = field value + `base`.
    base: i128,
    /// Largest whole frame accepted on decode.
    max_whole: i128,
    /// The limit in the configured unit (after tokio-util's clipping).
    max: usize,
    /// Largest message accepted on encode.
    max_message: usize,
    /// Message lengths the encoder frames: the frame decodes (within the
    /// limit, not shorter than the header) and the field value is in range.
    encodable: RangeInclusive<usize>,
    /// Field value = message length + `value_offset` (mod 2^64).
    value_offset: u64,
    /// The default layout's field (4 bytes, big endian, at offset 0), which
    /// has its own fast path.
    u32_be_at_0: bool,
    discard: Discard,
}

impl LengthDelimited {
    /// The default maximum frame length: 8 MiB.
    pub const DEFAULT_MAX_FRAME_LENGTH: usize = 8 * 1024 * 1024;

    /// The default codec: 4-byte big-endian length of the payload, frames
    /// without header, at most 8 MiB, oversized frames are an error.
    pub fn new() -> Self {
        LengthDelimitedBuilder::new().new_codec()
    }

    /// Settings to start from (the defaults of [`LengthDelimited::new`]).
    pub fn builder() -> LengthDelimitedBuilder {
        LengthDelimitedBuilder::new()
    }

    /// The settings of this codec, to derive another one.
    pub fn to_builder(&self) -> LengthDelimitedBuilder {
        self.settings
    }

    /// Reads what Netty's `LengthFieldBasedFrameDecoder(maxFrameLength,
    /// lengthFieldOffset, lengthFieldLength, lengthAdjustment,
    /// initialBytesToStrip)` reads (big endian, like Netty's default).
    ///
    /// Netty's rules: the frame on the wire is `lengthFieldOffset +
    /// lengthFieldLength + value + lengthAdjustment` bytes long (by default the
    /// length field counts only the bytes after it); `maxFrameLength` bounds
    /// that whole frame, header included ([`FrameLimit::WholeFrame`]); the
    /// first `initialBytesToStrip` bytes are dropped from the returned frame.
    /// A frame shorter than `lengthFieldOffset + lengthFieldLength` or than
    /// `initialBytesToStrip` is a [`FrameError::BadLength`].
    ///
    /// Differences: Netty skips an oversized frame and reports it, this codec
    /// fails by default (use `.to_builder().on_oversize(Oversize::Skip)`, or
    /// [`LengthDelimitedBuilder::netty_decoder`]); Netty reads an 8-byte field
    /// as signed, so a value of 2^63 or more is "negative" there and too long
    /// here. The encoder of this codec writes frames this decoder reads back
    /// (see [`LengthDelimitedBuilder`]).
    ///
    /// # Panics
    ///
    /// If `length_field_length` is not 1, 2, 3, 4 or 8.
    pub fn netty_decoder(
        max_frame_length: usize,
        length_field_offset: usize,
        length_field_length: usize,
        length_adjustment: i64,
        initial_bytes_to_strip: usize,
    ) -> Self {
        LengthDelimitedBuilder::netty_decoder(
            max_frame_length,
            length_field_offset,
            length_field_length,
            length_adjustment,
            initial_bytes_to_strip,
        )
        .new_codec()
    }

    /// Writes what Netty's `LengthFieldPrepender(lengthFieldLength,
    /// lengthAdjustment, lengthIncludesLengthFieldLength)` writes (big endian,
    /// like Netty's default): a length field holding `message length +
    /// lengthAdjustment`, plus `lengthFieldLength` if
    /// `length_includes_length_field_length`, then the message.
    ///
    /// A negative value or one the field cannot hold is a
    /// [`FrameError::LengthNotRepresentable`] or a
    /// [`FrameError::MessageTooLong`], as Netty refuses them. Unlike Netty's
    /// prepender, the codec also bounds messages by the default maximum frame
    /// length (8 MiB; change it with `.to_builder().max_frame_length(..)`).
    /// Its decoder reads such frames back and returns the messages.
    ///
    /// # Panics
    ///
    /// If `length_field_length` is not 1, 2, 3, 4 or 8.
    pub fn netty_prepender(
        length_field_length: usize,
        length_adjustment: i64,
        length_includes_length_field_length: bool,
    ) -> Self {
        LengthDelimitedBuilder::netty_prepender(
            length_field_length,
            length_adjustment,
            length_includes_length_field_length,
        )
        .new_codec()
    }

    /// The maximum frame length in force, in the unit of
    /// [`LengthDelimitedBuilder::limit_applies_to`]. With
    /// [`FrameLimit::FieldValue`] this may be below the configured value, when
    /// the field cannot describe larger frames.
    pub fn max_frame_length(&self) -> usize {
        self.max
    }

    /// Number of oversized frames skipped so far (with [`Oversize::Skip`]).
    pub fn skipped_frames(&self) -> u64 {
        self.discard.skipped()
    }

    fn from_builder(settings: LengthDelimitedBuilder) -> Self {
        let width = settings.field_len;
        let field_start = settings.field_offset;
        let field_end = field_start.saturating_add(width);
        let num_skip = settings.num_skip.unwrap_or(field_end);
        let head_len = field_end.max(num_skip);
        let base = num_skip as i128 + i128::from(settings.adjustment);
        let max_field = u64::MAX >> (64 - 8 * width as u32);
        let (max, max_whole) = match settings.limit {
            FrameLimit::FieldValue => {
                // tokio-util lowers the limit to what the field can describe.
                let describable = max_field.saturating_add_signed(settings.adjustment);
                let max = settings
                    .max_frame_len
                    .min(usize::try_from(describable).unwrap_or(usize::MAX));
                (max, max as i128 + base)
            }
            FrameLimit::WholeFrame => (settings.max_frame_len, settings.max_frame_len as i128),
        };
        // An encoded frame is `field_end + len` bytes long and its field holds
        // `len + offset`.
        let offset = field_end as i128 - base;
        let mut longest = max_whole - field_end as i128;
        if settings.limit == FrameLimit::FieldValue {
            // tokio-util also bounds the message itself.
            longest = longest.min(max as i128);
        }
        let max_message = usize::try_from(longest.max(0)).unwrap_or(usize::MAX);
        let shortest = ((head_len - field_end) as i128).max(-offset);
        let longest = longest.min(i128::from(max_field) - offset);
        // `longest` is at most `max`; negative means nothing is encodable.
        let encodable = match (usize::try_from(shortest), usize::try_from(longest)) {
            (Ok(lo), Ok(hi)) => lo..=hi,
            _ => RangeInclusive::new(1, 0),
        };
        Self {
            settings,
            field_start,
            field_end,
            head_len,
            num_skip,
            base,
            max_whole,
            max,
            max_message,
            encodable,
            value_offset: offset as u64,
            u32_be_at_0: field_start == 0 && width == 4 && settings.big_endian,
            discard: Discard::default(),
        }
    }

    /// Why a message of `len` bytes, outside [`Self::encodable`], is refused.
    #[cold]
    fn encode_error(&self, len: usize) -> FrameError {
        let whole = len as i128 + self.field_end as i128;
        if len > self.max_message || whole > self.max_whole {
            FrameError::MessageTooLong {
                len,
                max: self.max_message,
            }
        } else if whole < self.head_len as i128 {
            FrameError::MessageTooShort {
                len,
                min: self.head_len - self.field_end,
            }
        } else {
            FrameError::LengthNotRepresentable {
                len,
                width: self.settings.field_len,
            }
        }
    }

    /// The oversize error for a frame whose field holds `field`.
    fn too_long(&self, field: u64, whole: i128) -> FrameError {
        let len = match self.settings.limit {
            FrameLimit::FieldValue => field,
            FrameLimit::WholeFrame => u64::try_from(whole).unwrap_or(u64::MAX),
        };
        FrameError::FrameTooLong {
            len,
            max: self.max as u64,
        }
    }
}

impl Default for LengthDelimited {
    fn default() -> Self {
        Self::new()
    }
}

impl Codec for LengthDelimited {
    type Error = FrameError;

    fn name(&self) -> &'static str {
        "length-delimited"
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        let frame = self.decode(src)?;
        self.discard.check_eof()?;
        Ok(frame)
    }

    #[inline]
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        loop {
            if !self.discard.drain(src) || src.len() < self.head_len {
                return Ok(None);
            }
            let Some(field) = src.get(self.field_start..self.field_end) else {
                return Ok(None);
            };
            let field = match <[u8; 4]>::try_from(field) {
                Ok(bytes) if self.u32_be_at_0 => u64::from(u32::from_be_bytes(bytes)),
                _ => read_uint(field, self.settings.big_endian),
            };
            let whole = i128::from(field) + self.base;
            if whole < self.head_len as i128 {
                return Err(FrameError::BadLength {
                    field,
                    adjustment: self.settings.adjustment,
                });
            }
            let frame_len = match usize::try_from(whole) {
                Ok(len) if whole <= self.max_whole => len,
                _ => match self.settings.oversize {
                    Oversize::Error => return Err(self.too_long(field, whole)),
                    Oversize::Skip => {
                        let len = u64::try_from(whole).unwrap_or(u64::MAX);
                        self.discard.start(len, src);
                        continue;
                    }
                },
            };
            if src.len() < frame_len {
                return Ok(None);
            }
            let mut frame = src.split_to(frame_len);
            frame.advance(self.num_skip);
            return Ok(Some(frame.freeze()));
        }
    }

    #[inline]
    fn encode(&mut self, msg: &[u8], dst: &mut BytesMut) -> Result<(), FrameError> {
        self.encode_header(msg.len(), dst, msg.len())?;
        dst.extend_from_slice(msg);
        Ok(())
    }

    /// Every layout frames a message as its header, then the message
    /// unchanged: the offset, the adjustment and `num_skip` only change
    /// the value in the length field.
    fn encode_prefix(&mut self, len: usize, dst: &mut BytesMut) -> Option<Result<(), FrameError>> {
        Some(self.encode_header(len, dst, 0))
    }

    fn max_buffered(&self) -> usize {
        let max_whole = usize::try_from(self.max_whole.max(0)).unwrap_or(usize::MAX);
        max_whole.max(self.head_len)
    }
}

impl LengthDelimited {
    /// Appends the header of a frame for a message of `len` bytes (the
    /// offset's zero bytes, then the length field), reserving room for
    /// `body` more bytes after it; refuses a message it cannot frame.
    #[inline]
    fn encode_header(&self, len: usize, dst: &mut BytesMut, body: usize) -> Result<(), FrameError> {
        if len < *self.encodable.start() || len > *self.encodable.end() {
            return Err(self.encode_error(len));
        }
        // In range, so the true value fits: wrapping arithmetic gives it.
        let value = (len as u64).wrapping_add(self.value_offset);
        dst.reserve(self.field_end.saturating_add(body));
        if self.u32_be_at_0 {
            dst.put_u32(value as u32);
        } else {
            dst.put_bytes(0, self.field_start);
            write_uint(
                dst,
                value,
                self.settings.field_len,
                self.settings.big_endian,
            );
        }
        Ok(())
    }
}

/// Reads an unsigned integer of 1 to 8 bytes.
#[inline]
fn read_uint(bytes: &[u8], big_endian: bool) -> u64 {
    if let Ok(b) = <[u8; 4]>::try_from(bytes) {
        return u64::from(if big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        });
    }
    let n = bytes.len().min(8);
    let mut buf = [0u8; 8];
    if big_endian {
        buf[8 - n..].copy_from_slice(&bytes[..n]);
        u64::from_be_bytes(buf)
    } else {
        buf[..n].copy_from_slice(&bytes[..n]);
        u64::from_le_bytes(buf)
    }
}

/// Appends the low `width` bytes (1 to 8) of `value`.
#[inline]
fn write_uint(dst: &mut BytesMut, value: u64, width: usize, big_endian: bool) {
    // Fixed-size writes for the common widths; `value` fits `width` bytes.
    match (width, big_endian) {
        (4, true) => dst.put_u32(value as u32),
        (4, false) => dst.put_u32_le(value as u32),
        (2, true) => dst.put_u16(value as u16),
        (2, false) => dst.put_u16_le(value as u16),
        (1, _) => dst.put_u8(value as u8),
        (8, true) => dst.put_u64(value),
        (8, false) => dst.put_u64_le(value),
        (_, true) => dst.extend_from_slice(&value.to_be_bytes()[8 - width.min(8)..]),
        (_, false) => dst.extend_from_slice(&value.to_le_bytes()[..width.min(8)]),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The encoder's precomputed range of lengths agrees with checking each
    /// condition for the message at hand.
    fn encodable_by_definition(codec: &LengthDelimited, len: usize) -> bool {
        let whole = len as i128 + codec.field_end as i128;
        let value = whole - codec.base;
        len <= codec.max_message
            && whole <= codec.max_whole
            && whole >= codec.head_len as i128
            && value >= 0
            && value <= i128::from(u64::MAX >> (64 - 8 * codec.settings.field_len as u32))
    }

    proptest! {
        #[test]
        fn encodable_range_matches_definition(
            width in 1usize..=8,
            offset in prop_oneof![0usize..4, Just(usize::MAX - 8)],
            adjustment in prop_oneof![-300i64..300, any::<i64>()],
            num_skip in prop::option::of(prop_oneof![0usize..12, any::<usize>()]),
            max in prop_oneof![0usize..600, any::<usize>()],
            whole_frame in any::<bool>(),
            lens in prop::collection::vec(prop_oneof![0usize..600, any::<usize>()], 1..20),
        ) {
            let mut b = LengthDelimited::builder()
                .length_field_length(width)
                .length_field_offset(offset)
                .length_adjustment(adjustment)
                .max_frame_length(max);
            if let Some(n) = num_skip {
                b = b.num_skip(n);
            }
            if whole_frame {
                b = b.limit_applies_to(FrameLimit::WholeFrame);
            }
            let codec = b.new_codec();
            for len in lens {
                prop_assert_eq!(
                    codec.encodable.contains(&len),
                    encodable_by_definition(&codec, len),
                    "len {}", len
                );
                if codec.encodable.contains(&len) {
                    let value = len as i128 + codec.field_end as i128 - codec.base;
                    prop_assert_eq!(i128::from((len as u64).wrapping_add(codec.value_offset)), value);
                }
            }
        }
    }

    #[test]
    fn reads_and_writes_every_width() {
        for width in 1..=8 {
            for big_endian in [true, false] {
                let value = u64::MAX >> (64 - 8 * width as u32);
                let mut dst = BytesMut::new();
                write_uint(&mut dst, value - 1, width, big_endian);
                assert_eq!(dst.len(), width);
                assert_eq!(read_uint(&dst, big_endian), value - 1);
            }
        }
        assert_eq!(read_uint(&[1, 2], true), 0x0102);
        assert_eq!(read_uint(&[1, 2], false), 0x0201);
    }
}
