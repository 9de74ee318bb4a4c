//! Frames prefixed by a LEB128 varint length.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use netstrata_core::Codec;

use crate::oversize::Discard;
use crate::{FrameError, Oversize};

/// The longest LEB128 encoding of a `u64`.
const MAX_VARINT_LEN: usize = 10;

/// Frames prefixed by their payload length as an unsigned LEB128 varint (the
/// protobuf "length-delimited" framing): 7 bits per byte, least significant
/// group first, high bit set on every byte but the last.
///
/// Decoding accepts non-minimal encodings (`0x80 0x00` is 0) up to 10 bytes;
/// a longer prefix is [`FrameError::VarintTooLong`], a value above `u64::MAX`
/// [`FrameError::VarintOverflow`]. Neither can be skipped, as the frame's end
/// is unknown. A length above the maximum frame length (default 8 MiB) is
/// [`FrameError::FrameTooLong`], or skipped with [`Oversize::Skip`].
///
/// ```
/// use bytes::BytesMut;
/// use netstrata_core::Codec;
/// use netstrata_frame::Varint;
///
/// let mut codec = Varint::new();
/// let mut wire = BytesMut::new();
/// codec.encode(&[7; 300], &mut wire)?;
/// assert_eq!(&wire[..2], &[0xac, 0x02]); // 300
/// assert_eq!(codec.decode(&mut wire)?.unwrap().len(), 300);
/// # Ok::<(), netstrata_frame::FrameError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Varint {
    max_frame_len: usize,
    oversize: Oversize,
    discard: Discard,
}

impl Varint {
    /// The default maximum frame length (payload, prefix excluded): 8 MiB.
    pub const DEFAULT_MAX_FRAME_LENGTH: usize = 8 * 1024 * 1024;

    /// A varint codec with an 8 MiB maximum frame length that fails on
    /// oversized frames.
    pub fn new() -> Self {
        Self {
            max_frame_len: Self::DEFAULT_MAX_FRAME_LENGTH,
            oversize: Oversize::Error,
            discard: Discard::default(),
        }
    }

    /// Sets the maximum payload length (default 8 MiB), on decode and encode.
    #[must_use]
    pub fn with_max_frame_length(mut self, max: usize) -> Self {
        self.max_frame_len = max;
        self
    }

    /// Sets what the decoder does with an oversized frame (default
    /// [`Oversize::Error`]).
    #[must_use]
    pub fn with_oversize(mut self, oversize: Oversize) -> Self {
        self.oversize = oversize;
        self
    }

    /// The maximum payload length.
    pub fn max_frame_length(&self) -> usize {
        self.max_frame_len
    }

    /// Number of oversized frames skipped so far (with [`Oversize::Skip`]).
    pub fn skipped_frames(&self) -> u64 {
        self.discard.skipped()
    }
}

impl Default for Varint {
    fn default() -> Self {
        Self::new()
    }
}

impl Varint {
    /// Appends the prefix of a frame for a message of `len` bytes,
    /// reserving room for `body` more bytes after it; refuses a message
    /// above the maximum.
    #[inline]
    fn encode_header(&self, len: usize, dst: &mut BytesMut, body: usize) -> Result<(), FrameError> {
        if len > self.max_frame_len {
            return Err(FrameError::MessageTooLong {
                len,
                max: self.max_frame_len,
            });
        }
        dst.reserve(MAX_VARINT_LEN.saturating_add(body));
        let mut value = len as u64;
        while value >= 0x80 {
            dst.put_u8((value as u8) | 0x80);
            value >>= 7;
        }
        dst.put_u8(value as u8);
        Ok(())
    }
}

impl Codec for Varint {
    type Error = FrameError;

    fn name(&self) -> &'static str {
        "varint"
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        let frame = self.decode(src)?;
        self.discard.check_eof()?;
        Ok(frame)
    }

    #[inline]
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        loop {
            if !self.discard.drain(src) {
                return Ok(None);
            }
            let Some((len, prefix)) = read_varint(src)? else {
                return Ok(None);
            };
            let frame_len = usize::try_from(len)
                .ok()
                .filter(|len| *len <= self.max_frame_len)
                .and_then(|len| len.checked_add(prefix));
            let Some(frame_len) = frame_len else {
                match self.oversize {
                    Oversize::Error => {
                        return Err(FrameError::FrameTooLong {
                            len,
                            max: self.max_frame_len as u64,
                        });
                    }
                    Oversize::Skip => {
                        self.discard.start(len.saturating_add(prefix as u64), src);
                        continue;
                    }
                }
            };
            if src.len() < frame_len {
                return Ok(None);
            }
            let mut frame = src.split_to(frame_len);
            frame.advance(prefix);
            return Ok(Some(frame.freeze()));
        }
    }

    fn encode(&mut self, msg: &[u8], dst: &mut BytesMut) -> Result<(), FrameError> {
        self.encode_header(msg.len(), dst, msg.len())?;
        dst.extend_from_slice(msg);
        Ok(())
    }

    /// A frame is the varint prefix, then the message unchanged.
    fn encode_prefix(&mut self, len: usize, dst: &mut BytesMut) -> Option<Result<(), FrameError>> {
        Some(self.encode_header(len, dst, 0))
    }

    /// The maximum payload plus the longest prefix accepted (10 bytes, as
    /// non-minimal prefixes are accepted).
    fn max_buffered(&self) -> usize {
        self.max_frame_len.saturating_add(MAX_VARINT_LEN)
    }
}

/// Reads a LEB128 `u64` from the front of `src`: the value and the number of
/// bytes it takes, or `None` if `src` ends inside it.
#[inline]
fn read_varint(src: &[u8]) -> Result<Option<(u64, usize)>, FrameError> {
    let mut value = 0u64;
    for (i, &byte) in src.iter().take(MAX_VARINT_LEN).enumerate() {
        let bits = u64::from(byte & 0x7f);
        if i == MAX_VARINT_LEN - 1 {
            if byte & 0x80 != 0 {
                return Err(FrameError::VarintTooLong);
            }
            // The tenth byte holds bit 63 only.
            if bits > 1 {
                return Err(FrameError::VarintOverflow);
            }
        }
        value |= bits << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some((value, i + 1)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_boundary_values() {
        assert_eq!(read_varint(&[0x00]), Ok(Some((0, 1))));
        assert_eq!(read_varint(&[0x80, 0x00]), Ok(Some((0, 2))));
        assert_eq!(read_varint(&[0xac, 0x02]), Ok(Some((300, 2))));
        assert_eq!(read_varint(&[0xff, 0xff]), Ok(None));
        let max = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(read_varint(&max), Ok(Some((u64::MAX, 10))));
    }
}
