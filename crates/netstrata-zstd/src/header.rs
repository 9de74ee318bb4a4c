//! Frame headers, read before zstd sees a frame (RFC 8878 §3.1): what a
//! frame will cost is known before anything is allocated for it.
//!
//! ```text
//!  zstd frame       magic 28 B5 2F FD │ descriptor │ window? │ dict id 0-4 │ size 0-8 │ blocks…
//!  skippable frame  magic 5? 2A 4D 18 │ length (4 bytes LE) │ that many bytes of user data
//!  legacy frame     magic 2? B5 2F FD (v0.2-v0.7) or FD 2F B5 1E (v0.1): refused
//! ```

use crate::ZstdError;

/// The zstd frame magic number, as it appears on the wire.
const MAGIC: [u8; 4] = 0xFD2F_B528_u32.to_le_bytes();
/// The last three bytes of every skippable frame's magic number (the
/// first is 0x50 to 0x5F).
const SKIPPABLE_TAIL: [u8; 3] = [0x2A, 0x4D, 0x18];
/// The magic number of v0.1 frames; v0.2 to v0.7 share the zstd magic's
/// last three bytes, with 0x22 to 0x27 first.
const LEGACY_V01: [u8; 4] = 0x1EB5_2FFD_u32.to_le_bytes();
/// The smallest window zstd uses, whatever a header says (2^10).
const MIN_WINDOW: u64 = 1 << 10;
/// A skippable frame's header: magic number and length.
pub(crate) const SKIPPABLE_HEADER: usize = 8;

/// What a frame header announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Header {
    /// A zstd frame that needs a window of `window` bytes. The header is
    /// left in the input: zstd reads it again.
    Frame {
        /// The window (for a single-segment frame, its content size, at
        /// least 1 KiB).
        window: u64,
    },
    /// A skippable frame: its 8-byte header, then `len` bytes of user data
    /// that decode to nothing.
    Skippable {
        /// Bytes of user data after the header.
        len: u32,
    },
}

/// Whether `bytes` (1 to 4 of them) can begin a magic number of any kind.
fn may_be_magic(bytes: &[u8]) -> bool {
    let zstd_tail = |b: &[u8]| MAGIC[1..].starts_with(b);
    match bytes.split_first() {
        None => true,
        Some((0x22..=0x28, rest)) => zstd_tail(rest),
        Some((0x50..=0x5F, rest)) => SKIPPABLE_TAIL.starts_with(rest),
        Some(_) => LEGACY_V01.starts_with(bytes),
    }
}

/// Reads the frame header at the front of `bytes`: `Ok(None)` while it is
/// incomplete, an error as soon as the bytes cannot begin a frame this
/// decoder accepts.
pub(crate) fn parse(bytes: &[u8]) -> Result<Option<Header>, ZstdError> {
    let have = bytes.len().min(MAGIC.len());
    if !may_be_magic(&bytes[..have]) {
        return Err(ZstdError::NotZstd);
    }
    let Some((&magic, rest)) = bytes.split_first_chunk::<4>() else {
        return Ok(None);
    };
    if magic != MAGIC {
        if SKIPPABLE_TAIL == magic[1..] {
            return Ok(rest.first_chunk::<4>().map(|len| Header::Skippable {
                len: u32::from_le_bytes(*len),
            }));
        }
        return Err(ZstdError::LegacyFrame {
            magic: u32::from_le_bytes(magic),
        });
    }
    let Some((&descriptor, rest)) = rest.split_first() else {
        return Ok(None);
    };
    if descriptor & 0x08 != 0 {
        return Err(ZstdError::Corrupt {
            reason: "reserved bit set in the frame header descriptor",
        });
    }
    let single_segment = descriptor & 0x20 != 0;
    let dictionary_id_len = [0, 1, 2, 4][usize::from(descriptor & 0x03)];
    let content_size_len = match descriptor >> 6 {
        0 if single_segment => 1,
        0 => 0,
        1 => 2,
        2 => 4,
        _ => 8,
    };
    let window_len = usize::from(!single_segment);
    let need = window_len + dictionary_id_len + content_size_len;
    let Some(fields) = rest.get(..need) else {
        return Ok(None);
    };
    let window = if single_segment {
        let field = &fields[dictionary_id_len..];
        let mut size = [0u8; 8];
        size[..content_size_len].copy_from_slice(field);
        let size = u64::from_le_bytes(size);
        // A 2-byte field counts from 256 (RFC 8878 §3.1.1.1.4).
        if content_size_len == 2 {
            size + 256
        } else {
            size
        }
    } else {
        let exponent = u32::from(fields[0] >> 3);
        let mantissa = u64::from(fields[0] & 0x07);
        let base = 1u64 << (10 + exponent);
        base + (base / 8) * mantissa
    };
    Ok(Some(Header::Frame {
        window: window.max(MIN_WINDOW),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(descriptor: u8, fields: &[u8]) -> Vec<u8> {
        let mut bytes = MAGIC.to_vec();
        bytes.push(descriptor);
        bytes.extend_from_slice(fields);
        bytes
    }

    /// The whole header is needed; every shorter prefix asks for more.
    fn complete(bytes: &[u8]) -> Header {
        for cut in 0..bytes.len() {
            assert_eq!(parse(&bytes[..cut]), Ok(None), "{:x?}", &bytes[..cut]);
        }
        let mut longer = bytes.to_vec();
        longer.extend_from_slice(b"block bytes follow");
        assert_eq!(parse(&longer), parse(bytes));
        parse(bytes).unwrap().expect("a complete header")
    }

    #[test]
    fn windows_from_the_window_descriptor() {
        // Exponent 11, mantissa 0: 2^21, what `zstd -3` declares on a stream.
        assert_eq!(
            complete(&frame(0x00, &[0x58])),
            Header::Frame { window: 1 << 21 }
        );
        assert_eq!(
            complete(&frame(0x04, &[0x68])),
            Header::Frame { window: 1 << 23 }
        );
        // Exponent 0, mantissa 7: 1 KiB + 7/8 KiB.
        assert_eq!(
            complete(&frame(0x00, &[0x07])),
            Header::Frame { window: 1920 }
        );
        // The largest a descriptor can say: 2^41 * 15/8.
        assert_eq!(
            complete(&frame(0x00, &[0xFF])),
            Header::Frame {
                window: (1 << 41) + 7 * (1 << 38)
            }
        );
        // A 4-byte dictionary id and a 2-byte content size do not change it.
        let header = frame(0x43, &[0x50, 1, 2, 3, 4, 9, 9]);
        assert_eq!(complete(&header), Header::Frame { window: 1 << 20 });
    }

    #[test]
    fn a_single_segment_frame_s_window_is_its_content_size() {
        assert_eq!(
            complete(&frame(0x20, &[100])),
            Header::Frame { window: 1024 }
        );
        // A 2-byte size counts from 256.
        assert_eq!(
            complete(&frame(0x60, &[0xFF, 0xFF])),
            Header::Frame {
                window: 65_535 + 256
            }
        );
        let big = (1u64 << 30).to_le_bytes();
        assert_eq!(
            complete(&frame(0xE0, &big)),
            Header::Frame { window: 1 << 30 }
        );
        // With a 1-byte dictionary id before the size.
        let four = (70_000u32).to_le_bytes();
        assert_eq!(
            complete(&frame(0xA1, &[7, four[0], four[1], four[2], four[3]])),
            Header::Frame { window: 70_000 }
        );
    }

    #[test]
    fn skippable_frames_say_how_much_to_skip() {
        for first in 0x50..=0x5F {
            let mut bytes = vec![first, 0x2A, 0x4D, 0x18];
            bytes.extend_from_slice(&300u32.to_le_bytes());
            assert_eq!(complete(&bytes), Header::Skippable { len: 300 });
        }
    }

    #[test]
    fn legacy_frames_and_other_bytes_are_refused_as_soon_as_they_can_be() {
        for legacy in [0xFD2F_B522_u32, 0xFD2F_B527, 0x1EB5_2FFD] {
            let bytes = legacy.to_le_bytes();
            assert_eq!(parse(&bytes[..3]), Ok(None));
            assert_eq!(parse(&bytes), Err(ZstdError::LegacyFrame { magic: legacy }));
        }
        assert_eq!(parse(b"G"), Err(ZstdError::NotZstd));
        assert_eq!(parse(&[0x28, 0xB5, 0x00]), Err(ZstdError::NotZstd));
        assert_eq!(parse(&[0x50, 0x2A, 0x4E]), Err(ZstdError::NotZstd));
        assert!(matches!(
            parse(&frame(0x08, &[0x58])),
            Err(ZstdError::Corrupt { .. })
        ));
    }
}
