//! The crate's one error type.

use std::io;

/// Why a codec refused to decode or encode.
///
/// Decoding errors are the peer's fault ([`FrameError::is_peer_fault`] is
/// true): the bytes on the wire break the framing rules or a limit. Encoding
/// errors are the caller's: the message cannot be framed with the codec's
/// settings, nothing was written, and the codec stays usable.
///
/// A decoding error leaves the offending bytes in the input buffer, so calling
/// `decode` again returns the same error: the error sticks until the caller
/// drops the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// Decode: the peer announced a frame above the maximum frame length.
    ///
    /// `len` and `max` are in the units the limit is configured in (for
    /// [`LengthDelimited`](crate::LengthDelimited), see
    /// [`FrameLimit`](crate::FrameLimit)).
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    FrameTooLong {
        /// The announced length.
        len: u64,
        /// The configured maximum.
        max: u64,
    },
    /// Decode: the length field, after adjustment, gives a frame that ends
    /// before its own header does (a negative or too small length).
    #[error(
        "length field {field} with adjustment {adjustment} gives a frame shorter than its header"
    )]
    BadLength {
        /// The length field's value as read.
        field: u64,
        /// The configured length adjustment.
        adjustment: i64,
    },
    /// Decode: a LEB128 length prefix longer than 10 bytes.
    #[error("varint length prefix longer than 10 bytes")]
    VarintTooLong,
    /// Decode: a LEB128 length prefix whose value does not fit in 64 bits.
    #[error("varint length prefix overflows 64 bits")]
    VarintOverflow,
    /// Decode: the stream ended inside an oversized frame that was being
    /// skipped ([`Oversize::Skip`](crate::Oversize::Skip)): the peer's stream
    /// was cut short.
    #[error("stream ended {missing} bytes short of the end of a skipped frame")]
    EndInSkippedFrame {
        /// Bytes of the skipped frame that never came.
        missing: u64,
    },
    /// Decode: no delimiter within the maximum line (or record) length.
    #[error("no delimiter within {max} bytes")]
    LineTooLong {
        /// The configured maximum length, delimiter excluded.
        max: usize,
    },
    /// Encode: the message is longer than the codec accepts.
    #[error("message of {len} bytes exceeds the maximum of {max}")]
    MessageTooLong {
        /// The message length.
        len: usize,
        /// The largest message the codec frames.
        max: usize,
    },
    /// Encode: the length field value for this message, after adjustment, is
    /// negative or does not fit in the field.
    #[error("length of a {len}-byte message is not representable in a {width}-byte length field")]
    LengthNotRepresentable {
        /// The message length.
        len: usize,
        /// The length field width in bytes.
        width: usize,
    },
    /// Encode: the message is shorter than the bytes the decoder drops from
    /// each frame (a `num_skip` beyond the header), so the frame would not
    /// decode.
    #[error("message of {len} bytes is shorter than the {min} bytes a frame needs")]
    MessageTooShort {
        /// The message length.
        len: usize,
        /// The shortest message the codec frames.
        min: usize,
    },
    /// Encode: the message contains the delimiter (or ends so that the
    /// appended delimiter would be found early), so it would not decode back
    /// as one message.
    #[error("message contains the delimiter")]
    MessageContainsDelimiter,
}

impl FrameError {
    /// Whether the peer caused the error (decoding), as opposed to the caller
    /// (encoding).
    pub fn is_peer_fault(&self) -> bool {
        match self {
            Self::FrameTooLong { .. }
            | Self::EndInSkippedFrame { .. }
            | Self::BadLength { .. }
            | Self::VarintTooLong
            | Self::VarintOverflow
            | Self::LineTooLong { .. } => true,
            Self::MessageTooLong { .. }
            | Self::MessageTooShort { .. }
            | Self::LengthNotRepresentable { .. }
            | Self::MessageContainsDelimiter => false,
        }
    }
}

/// Peer faults become [`io::ErrorKind::InvalidData`], caller misuse
/// [`io::ErrorKind::InvalidInput`]; the [`FrameError`] stays reachable
/// through [`io::Error::get_ref`].
impl From<FrameError> for io::Error {
    fn from(e: FrameError) -> Self {
        let kind = if e.is_peer_fault() {
            io::ErrorKind::InvalidData
        } else {
            io::ErrorKind::InvalidInput
        };
        Self::new(kind, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_kind_separates_peer_from_caller() {
        let peer: io::Error = FrameError::VarintOverflow.into();
        assert_eq!(peer.kind(), io::ErrorKind::InvalidData);
        let misuse: io::Error = FrameError::MessageTooLong { len: 2, max: 1 }.into();
        assert_eq!(misuse.kind(), io::ErrorKind::InvalidInput);
        let inner = misuse
            .get_ref()
            .and_then(|e| e.downcast_ref::<FrameError>());
        assert_eq!(inner, Some(&FrameError::MessageTooLong { len: 2, max: 1 }));
    }
}
