//! The crate's one error type, and how zstd's error codes map onto it.

use std::fmt;

use zstd::zstd_safe::{self, ErrorCode, zstd_sys::ZSTD_ErrorCode};

/// What went wrong in a zstd layer or while preparing a dictionary.
///
/// Inside a connection it is the `source` of a core error naming the layer
/// `"zstd"` (find it with `err.downcast_ref::<ZstdError>()`): what the peer
/// sent wrong is [`netstrata_core::Error::PeerMisbehaved`], a frame this
/// process has no memory for ([`ZstdError::BudgetExhausted`],
/// [`ZstdError::OutOfMemory`]) is [`netstrata_core::Error::LocalLimit`], the
/// caller's faults ([`ZstdError::WriteAfterEnd`], a setting zstd refuses)
/// are [`netstrata_core::Error::Misuse`], and a stream cut inside a frame
/// is [`netstrata_core::Error::Truncated`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ZstdError {
    /// Bytes that do not begin a zstd frame or a skippable frame, at the
    /// start of the stream or between two frames.
    #[error("bytes that are not a zstd frame")]
    NotZstd,
    /// A frame in a legacy format (zstd before v0.8, 2016), which this
    /// decoder does not read.
    #[error("legacy zstd frame (magic number {magic:#010x}, a format before v0.8): not supported")]
    LegacyFrame {
        /// The frame's magic number.
        magic: u32,
    },
    /// The frame asks for a window above the decoder's limit
    /// ([`crate::ZstdConfig::with_max_window_log`]). Refused before
    /// anything is allocated for it.
    #[error("peer window {} exceeds the limit {}", Size(*window), Size(*limit as u64))]
    WindowTooLarge {
        /// The window the frame header asks for, in bytes.
        window: u64,
        /// The limit, in bytes.
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
        /// What is wrong.
        reason: &'static str,
    },
    /// The decoders' shared memory budget ([`crate::DecoderBudget`]) cannot
    /// cover the window this frame needs: a limit of this process, not a
    /// fault of the peer.
    #[error(
        "decoder memory budget used up: the frame needs {} more, {} of {} is free",
        Size(*needed as u64),
        Size(*available as u64),
        Size(*capacity as u64)
    )]
    BudgetExhausted {
        /// Bytes the frame's context needs beyond what it already holds.
        needed: usize,
        /// Bytes of the budget still free.
        available: usize,
        /// The budget's capacity.
        capacity: usize,
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

/// A byte count as people read it: `16 MiB (2^24)`, `2.5 MiB`, `700 bytes`.
struct Size(u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
        let bytes = self.0;
        let k = (1..UNITS.len())
            .rev()
            .find(|&k| bytes >= 1 << (10 * k))
            .unwrap_or(0);
        let scaled = bytes as f64 / (1u64 << (10 * k)) as f64;
        if scaled.fract() == 0.0 {
            write!(f, "{scaled} {}", UNITS[k])?;
        } else {
            write!(f, "{scaled:.1} {}", UNITS[k])?;
        }
        if bytes.is_power_of_two() && k > 0 {
            write!(f, " (2^{})", bytes.trailing_zeros())?;
        }
        Ok(())
    }
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
    /// Maps an error code of the decoder decoding a frame whose header
    /// asked for `window` bytes; `limit` is its window limit.
    pub(crate) fn decoding(error: ErrorCode, window: u64, limit: usize) -> Self {
        // zstd returns `-(enum value)` as a size_t; values below 100 are stable.
        match 0usize.wrapping_sub(error) {
            PREFIX_UNKNOWN => Self::NotZstd,
            WINDOW_TOO_LARGE => Self::WindowTooLarge { window, limit },
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
                | Self::LegacyFrame { .. }
                | Self::WindowTooLarge { .. }
                | Self::DictionaryMismatch
                | Self::ChecksumMismatch
                | Self::Corrupt { .. }
        )
    }

    /// Whether a limit of this process refused the work: the decoders'
    /// budget, or memory zstd could not get.
    pub fn is_local_limit(&self) -> bool {
        matches!(self, Self::BudgetExhausted { .. } | Self::OutOfMemory)
    }

    /// The core error of a zstd layer failing with `self`.
    pub(crate) fn into_core(self, layer: &'static str) -> netstrata_core::Error {
        if self.is_peer_fault() {
            netstrata_core::Error::peer(layer, self)
        } else if self.is_local_limit() {
            netstrata_core::Error::local_limit(layer, self)
        } else {
            netstrata_core::Error::misuse(layer, self)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zstd_codes_map_to_variants() {
        let neg = |c: usize| 0usize.wrapping_sub(c);
        assert_eq!(
            ZstdError::decoding(neg(WINDOW_TOO_LARGE), 1 << 16, 1 << 15),
            ZstdError::WindowTooLarge {
                window: 1 << 16,
                limit: 1 << 15
            }
        );
        assert_eq!(
            ZstdError::decoding(neg(CHECKSUM_WRONG), 0, 0),
            ZstdError::ChecksumMismatch
        );
        assert_eq!(
            ZstdError::decoding(neg(DICTIONARY_WRONG), 0, 0),
            ZstdError::DictionaryMismatch
        );
        let corrupt = ZstdError::decoding(neg(20), 0, 0);
        assert!(matches!(corrupt, ZstdError::Corrupt { .. }), "{corrupt}");
        assert!(corrupt.is_peer_fault());
        assert!(!ZstdError::WriteAfterEnd.is_peer_fault());
    }

    #[test]
    fn errors_say_sizes_as_people_read_them() {
        let window = ZstdError::WindowTooLarge {
            window: 1 << 24,
            limit: 1 << 23,
        };
        assert_eq!(
            window.to_string(),
            "peer window 16 MiB (2^24) exceeds the limit 8 MiB (2^23)"
        );
        let odd = ZstdError::WindowTooLarge {
            window: 5 << 19,
            limit: 1 << 15,
        };
        assert_eq!(
            odd.to_string(),
            "peer window 2.5 MiB exceeds the limit 32 KiB (2^15)"
        );
        let budget = ZstdError::BudgetExhausted {
            needed: 8_877_864,
            available: 700,
            capacity: 1 << 30,
        };
        assert_eq!(
            budget.to_string(),
            "decoder memory budget used up: the frame needs 8.5 MiB more, 700 bytes of 1 GiB (2^30) is free"
        );
        assert!(budget.is_local_limit() && !budget.is_peer_fault());
        let core = budget.into_core("zstd");
        assert!(matches!(
            core,
            netstrata_core::Error::LocalLimit { layer: "zstd", .. }
        ));
    }
}
