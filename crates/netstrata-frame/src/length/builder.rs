//! Settings of a [`LengthDelimited`] codec.

use super::LengthDelimited;
use crate::Oversize;

/// What [`LengthDelimitedBuilder::max_frame_length`] bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum FrameLimit {
    /// The length field's value as read, before adjustment, and on encode the
    /// message length (tokio-util's rule). The limit is lowered, like
    /// tokio-util does, to the largest message the field can describe (the
    /// field's largest value plus the adjustment). The default.
    #[default]
    FieldValue,
    /// The whole frame on the wire, header included, and on encode the
    /// header plus the message (Netty's rule for `maxFrameLength`).
    WholeFrame,
}

/// Settings of a [`LengthDelimited`] codec; start from
/// [`LengthDelimited::builder`], end with [`LengthDelimitedBuilder::new_codec`].
///
/// # Frame layout and meaning of the settings
///
/// ```text
/// |<- offset ->|<- field ->|<------------- rest of the frame ------------->|
/// +------------+-----------+-----------------------------------------------+
/// | prefix     | length    | ...                                           |
/// +------------+-----------+-----------------------------------------------+
/// |<------ num_skip ------>|<------ length field value + adjustment ------>|
///                          (with the default num_skip = offset + field width)
/// ```
///
/// The rules are tokio-util's `length_delimited::Builder`'s, with the same
/// names and defaults:
///
/// - the decoder waits for `max(offset + width, num_skip)` header bytes and
///   reads the length field (`width` bytes, big or little endian, unsigned) at
///   `offset`;
/// - the frame returned is the `value + adjustment` bytes that follow the first
///   `num_skip` bytes of the frame, which are dropped. The whole frame on the
///   wire is therefore `num_skip + value + adjustment` bytes long;
/// - a frame that would end before the end of its own length field (or before
///   `num_skip`) is a [`FrameError::BadLength`](crate::FrameError::BadLength).
///   tokio-util returns such frames (and may then return empty frames without
///   consuming input, forever); this codec refuses them;
/// - the encoder writes `offset` zero bytes, the length field, then the
///   message, and picks the field value so that the decoder consumes exactly
///   that frame: `message length + offset + width - num_skip - adjustment`.
///   With the default `num_skip` this is `message length - adjustment`, as
///   tokio-util writes, and decoding gives the message back. (tokio-util's
///   encoder ignores `offset` and `num_skip`, so its frames only decode back
///   when both have their default values; for those settings the bytes are
///   identical.) A message is refused (caller misuse) when its frame would
///   not decode: above the limit, shorter than what `num_skip` drops, or with
///   a field value that is negative or too wide. With a negative adjustment
///   this can refuse messages tokio-util's encoder writes and its decoder
///   then rejects;
/// - the maximum frame length applies as set by
///   [`limit_applies_to`](Self::limit_applies_to), to the length field value
///   by default, like tokio-util.
///
/// | setting | default | setter |
/// |---|---|---|
/// | length field width | 4 bytes | [`length_field_length`](Self::length_field_length) |
/// | byte order | big endian | [`big_endian`](Self::big_endian), [`little_endian`](Self::little_endian) |
/// | bytes before the length field | 0 | [`length_field_offset`](Self::length_field_offset) |
/// | adjustment | 0 | [`length_adjustment`](Self::length_adjustment) |
/// | bytes dropped from decoded frames | offset + width | [`num_skip`](Self::num_skip) |
/// | max frame length | 8 MiB, of the field value | [`max_frame_length`](Self::max_frame_length), [`limit_applies_to`](Self::limit_applies_to) |
/// | oversized frames | error | [`on_oversize`](Self::on_oversize) |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct LengthDelimitedBuilder {
    pub(super) field_len: usize,
    pub(super) big_endian: bool,
    pub(super) field_offset: usize,
    pub(super) adjustment: i64,
    pub(super) num_skip: Option<usize>,
    pub(super) max_frame_len: usize,
    pub(super) limit: FrameLimit,
    pub(super) oversize: Oversize,
}

impl LengthDelimitedBuilder {
    /// The default settings: tokio-util's `LengthDelimitedCodec::new()`.
    pub fn new() -> Self {
        Self {
            field_len: 4,
            big_endian: true,
            field_offset: 0,
            adjustment: 0,
            num_skip: None,
            max_frame_len: LengthDelimited::DEFAULT_MAX_FRAME_LENGTH,
            limit: FrameLimit::FieldValue,
            oversize: Oversize::Error,
        }
    }

    /// Sets the width of the length field in bytes, 1 to 8 (default 4).
    ///
    /// # Panics
    ///
    /// If `width` is 0 or above 8.
    pub fn length_field_length(mut self, width: usize) -> Self {
        assert!(
            (1..=8).contains(&width),
            "length field width must be 1 to 8 bytes, got {width}"
        );
        self.field_len = width;
        self
    }

    /// Reads and writes the length field big endian (the default).
    pub fn big_endian(mut self) -> Self {
        self.big_endian = true;
        self
    }

    /// Reads and writes the length field little endian.
    pub fn little_endian(mut self) -> Self {
        self.big_endian = false;
        self
    }

    /// Sets the number of header bytes before the length field (default 0).
    /// The decoder does not interpret them; the encoder writes zeros.
    pub fn length_field_offset(mut self, offset: usize) -> Self {
        self.field_offset = offset;
        self
    }

    /// Sets the value added to the length field to get the number of bytes
    /// that follow the first `num_skip` bytes of the frame (default 0).
    ///
    /// A length field that counts the whole frame with a 4-byte header at
    /// offset 0 takes `-4`; one that counts only the payload while extra
    /// header bytes follow the field takes their number.
    pub fn length_adjustment(mut self, adjustment: i64) -> Self {
        self.adjustment = adjustment;
        self
    }

    /// Sets how many bytes to drop from the front of each decoded frame
    /// (default: the offset plus the field width, that is the whole header).
    /// `0` returns frames with their header.
    pub fn num_skip(mut self, num_skip: usize) -> Self {
        self.num_skip = Some(num_skip);
        self
    }

    /// Sets the maximum frame length (default 8 MiB); what it bounds is set
    /// by [`limit_applies_to`](Self::limit_applies_to). A larger frame is
    /// refused on decode (or skipped, see [`on_oversize`](Self::on_oversize))
    /// and a larger message on encode.
    pub fn max_frame_length(mut self, max: usize) -> Self {
        self.max_frame_len = max;
        self
    }

    /// Sets what the maximum frame length bounds (default
    /// [`FrameLimit::FieldValue`], as tokio-util).
    pub fn limit_applies_to(mut self, limit: FrameLimit) -> Self {
        self.limit = limit;
        self
    }

    /// Sets what the decoder does with an oversized frame (default
    /// [`Oversize::Error`]).
    pub fn on_oversize(mut self, oversize: Oversize) -> Self {
        self.oversize = oversize;
        self
    }

    /// Builds the codec.
    pub fn new_codec(self) -> LengthDelimited {
        LengthDelimited::from_builder(self)
    }

    /// Settings reading what Netty's
    /// `LengthFieldBasedFrameDecoder(maxFrameLength, lengthFieldOffset,
    /// lengthFieldLength, lengthAdjustment, initialBytesToStrip)` reads; see
    /// [`LengthDelimited::netty_decoder`].
    ///
    /// # Panics
    ///
    /// If `length_field_length` is not 1, 2, 3, 4 or 8 (Netty refuses them too).
    pub fn netty_decoder(
        max_frame_length: usize,
        length_field_offset: usize,
        length_field_length: usize,
        length_adjustment: i64,
        initial_bytes_to_strip: usize,
    ) -> Self {
        assert_netty_width(length_field_length);
        // Netty: frame = offset + width + value + adjustment, then strip.
        // Here: frame = num_skip + value + adjustment'.
        let end = i64::try_from(length_field_offset + length_field_length).unwrap_or(i64::MAX);
        let strip = i64::try_from(initial_bytes_to_strip).unwrap_or(i64::MAX);
        let adjustment = length_adjustment.saturating_add(end).saturating_sub(strip);
        Self::new()
            .length_field_offset(length_field_offset)
            .length_field_length(length_field_length)
            .length_adjustment(adjustment)
            .num_skip(initial_bytes_to_strip)
            .max_frame_length(max_frame_length)
            .limit_applies_to(FrameLimit::WholeFrame)
    }

    /// Settings writing what Netty's `LengthFieldPrepender(lengthFieldLength,
    /// lengthAdjustment, lengthIncludesLengthFieldLength)` writes; see
    /// [`LengthDelimited::netty_prepender`].
    ///
    /// # Panics
    ///
    /// If `length_field_length` is not 1, 2, 3, 4 or 8 (Netty refuses them too).
    pub fn netty_prepender(
        length_field_length: usize,
        length_adjustment: i64,
        length_includes_length_field_length: bool,
    ) -> Self {
        assert_netty_width(length_field_length);
        // Netty writes len + adjustment (+ width); this encoder writes
        // len - adjustment'.
        let width = if length_includes_length_field_length {
            length_field_length as i64
        } else {
            0
        };
        let adjustment = length_adjustment.saturating_add(width).saturating_neg();
        Self::new()
            .length_field_length(length_field_length)
            .length_adjustment(adjustment)
    }
}

impl Default for LengthDelimitedBuilder {
    fn default() -> Self {
        Self::new()
    }
}

fn assert_netty_width(width: usize) {
    assert!(
        matches!(width, 1 | 2 | 3 | 4 | 8),
        "Netty length field width must be 1, 2, 3, 4 or 8 bytes, got {width}"
    );
}
