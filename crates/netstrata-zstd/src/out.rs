//! zstd writing straight into a caller's `BytesMut`.

use bytes::BytesMut;
use zstd::zstd_safe::OutBuffer;

/// Lends zstd `len` bytes at the end of `buf` and keeps the ones it wrote.
/// Returns `f`'s result and how many bytes were written.
///
/// zstd writes into the caller's buffer directly, with no copy of ours in
/// between. Safe code can only hand it initialised memory, so the `len`
/// bytes are zeroed first; callers size `len` from what zstd can produce
/// (a compress bound, an expansion estimate) rather than from the room they
/// were given, so the zeroing stays proportional to the output.
pub(crate) fn write<R>(
    buf: &mut BytesMut,
    len: usize,
    f: impl FnOnce(&mut OutBuffer<'_, [u8]>) -> R,
) -> (R, usize) {
    let start = buf.len();
    buf.resize(start + len, 0);
    let mut dst = OutBuffer::around(&mut buf[start..]);
    let result = f(&mut dst);
    let written = dst.pos();
    buf.truncate(start + written);
    (result, written)
}
