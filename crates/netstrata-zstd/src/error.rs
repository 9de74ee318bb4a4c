//! The crate's one error type, and how zstd's error codes map onto it.

use zstd::zstd_safe::{self, ErrorCode, zstd_sys::ZSTD_ErrorCode};

/// What went wrong in a zstd layer or while preparing a dictionary.
///
/// Inside a connection it is the `source` of a core error naming the layer
/// `"zstd"`: decoding faults are [`netstrata_core::Error::PeerMisbehaved`]
/// (find this type with `err.downcast_ref::<ZstdError>()`), a stream cut
/// inside the frame is [`netstrata_core::Error::Truncated`], and the
/// caller's faults ([`ZstdError::WriteAfterEnd`], a setting zstd refuses)
/// are [`netstrata_core::Error::Misuse`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ZstdError {
    /// The inbound stream does not begin with the zstd frame magic number
    /// (legacy and skippable frames included: one standard frame is expected).
    #[error("the stream does not begin with a zstd frame")]
    NotZstd,
    /// The frame asks for a window above the decoder's limit
    /// ([`crate::ZstdConfig::with_max_window_log`]).
    #[error("the frame needs a window above the limit of {limit} bytes")]
    WindowTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The frame was compressed with a dictionary this side does not have
    /// (or with another one).
    #[error("the frame needs a dictionary this side does not have")]
    DictionaryMismatch,
    /// The content checksum at the end of the frame does not match.
    #[error("content checksum mismatch at the end of the frame")]
    ChecksumMismatch,
    /// The compressed data is malformed.
    #[error("corrupt zstd data: {reason}")]
    Corrupt {
        /// zstd's description.
        reason: &'static str,
    },
    /// Bytes followed the end of the frame. A connection carries one frame
    /// per direction, so they are refused rather than ignored.
    #[error("{bytes} bytes after the end of the zstd frame")]
    TrailingData {
        /// How many bytes were waiting after the end.
        bytes: usize,
    },
    /// zstd could not allocate a context or its buffers.
    #[error("zstd could not allocate memory")]
    OutOfMemory,
    /// The caller wrote after the frame was ended by [`netstrata_core::Flush::Finish`].
    #[error("write after the end of the zstd frame")]
    WriteAfterEnd,
    /// zstd refused a setting, or failed while compressing.
    #[error("zstd refused the configuration or failed to compress: {reason}")]
    Compressor {
        /// zstd's description.
        reason: &'static str,
    },
    /// A dictionary could not be loaded or trained.
    #[error("dictionary: {reason}")]
    Dictionary {
        /// What failed.
        reason: String,
    },
}

const fn code(e: ZSTD_ErrorCode) -> usize {
    e as usize
}

const PREFIX_UNKNOWN: usize = code(ZSTD_ErrorCode::ZSTD_error_prefix_unknown);
const WINDOW_TOO_LARGE: usize = code(ZSTD_ErrorCode::ZSTD_error_frameParameter_windowTooLarge);
const CHECKSUM_WRONG: usize = code(ZSTD_ErrorCode::ZSTD_error_checksum_wrong);
const DICTIONARY_WRONG: usize = code(ZSTD_ErrorCode::ZSTD_error_dictionary_wrong);
const DICTIONARY_CORRUPTED: usize = code(ZSTD_ErrorCode::ZSTD_error_dictionary_corrupted);
const MEMORY_ALLOCATION: usize = code(ZSTD_ErrorCode::ZSTD_error_memory_allocation);

impl ZstdError {
    /// Maps an error code of the decoder; `limit` is its window limit in bytes.
    pub(crate) fn decoding(error: ErrorCode, limit: usize) -> Self {
        // zstd returns `-(enum value)` as a size_t; values below 100 are stable.
        match 0usize.wrapping_sub(error) {
            PREFIX_UNKNOWN => Self::NotZstd,
            WINDOW_TOO_LARGE => Self::WindowTooLarge { limit },
            CHECKSUM_WRONG => Self::ChecksumMismatch,
            DICTIONARY_WRONG | DICTIONARY_CORRUPTED => Self::DictionaryMismatch,
            MEMORY_ALLOCATION => Self::OutOfMemory,
            _ => Self::Corrupt {
                reason: zstd_safe::get_error_name(error),
            },
        }
    }

    /// Maps an error code of the encoder or of a parameter setting.
    pub(crate) fn compressing(error: ErrorCode) -> Self {
        match 0usize.wrapping_sub(error) {
            MEMORY_ALLOCATION => Self::OutOfMemory,
            _ => Self::Compressor {
                reason: zstd_safe::get_error_name(error),
            },
        }
    }

    /// Whether the peer caused the error (as opposed to the caller or the
    /// local machine).
    pub fn is_peer_fault(&self) -> bool {
        matches!(
            self,
            Self::NotZstd
                | Self::WindowTooLarge { .. }
                | Self::DictionaryMismatch
                | Self::ChecksumMismatch
                | Self::Corrupt { .. }
                | Self::TrailingData { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zstd_codes_map_to_variants() {
        let neg = |c: usize| 0usize.wrapping_sub(c);
        assert_eq!(
            ZstdError::decoding(neg(WINDOW_TOO_LARGE), 1 << 15),
            ZstdError::WindowTooLarge { limit: 1 << 15 }
        );
        assert_eq!(
            ZstdError::decoding(neg(CHECKSUM_WRONG), 0),
            ZstdError::ChecksumMismatch
        );
        assert_eq!(
            ZstdError::decoding(neg(DICTIONARY_WRONG), 0),
            ZstdError::DictionaryMismatch
        );
        let corrupt = ZstdError::decoding(neg(20), 0);
        assert!(matches!(corrupt, ZstdError::Corrupt { .. }), "{corrupt}");
        assert!(corrupt.is_peer_fault());
        assert!(!ZstdError::WriteAfterEnd.is_peer_fault());
    }
}
