//! zstd writing straight into a caller's `BytesMut`.

use bytes::BytesMut;
use zstd::zstd_safe::{OutBuffer, WriteBuf};

/// One call into zstd that writes into an output buffer of any kind.
pub(crate) trait Produce {
    /// What the call returns.
    type Output;
    /// Makes the call, writing into `dst`.
    fn produce<C: WriteBuf + ?Sized>(self, dst: &mut OutBuffer<'_, C>) -> Self::Output;
}

/// What [`write`] did.
pub(crate) struct Written<R> {
    /// The call's result.
    pub(crate) result: R,
    /// Bytes appended to the buffer.
    pub(crate) len: usize,
    /// Bytes zstd was offered: when `len` reaches it, zstd may have more.
    pub(crate) offered: usize,
}

/// Lets zstd append at least `want` and at most `max` bytes to `buf`
/// (`want <= max`), writing in place: no copy of ours in between.
///
/// Safe code can only hand zstd initialised memory, so `want` bytes are
/// zeroed first: callers size `want` from what zstd can produce (a
/// compress bound, an expansion estimate), not from the room they have.
/// An emptied buffer gets its allocation back when the bytes split off it
/// have all been dropped (`BytesMut::reserve` reclaims it), so a stream in
/// steady state allocates nothing here.
pub(crate) fn write<P: Produce>(
    buf: &mut BytesMut,
    want: usize,
    max: usize,
    call: P,
) -> Written<P::Output> {
    debug_assert!(want <= max);
    let start = buf.len();
    buf.reserve(want);
    buf.resize(start + want, 0);
    let mut dst = OutBuffer::around(&mut buf[start..]);
    let result = call.produce(&mut dst);
    let len = dst.pos();
    buf.truncate(start + len);
    Written {
        result,
        len,
        offered: want,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fill(u8);

    impl Produce for Fill {
        type Output = ();
        fn produce<C: WriteBuf + ?Sized>(self, dst: &mut OutBuffer<'_, C>) {
            let n = dst.capacity() - dst.pos();
            // Through zstd-safe's own safe path: decompress n bytes of RLE.
            let mut frame = 0xFD2F_B528_u32.to_le_bytes().to_vec();
            frame.extend_from_slice(&[0x20, n as u8]); // single segment, 1-byte size
            let block = ((n as u32) << 3) | (1 << 1) | 1;
            frame.extend_from_slice(&block.to_le_bytes()[..3]);
            frame.push(self.0);
            let mut dctx = zstd::zstd_safe::DCtx::create();
            let mut src = zstd::zstd_safe::InBuffer::around(&frame);
            dctx.decompress_stream(dst, &mut src).unwrap();
        }
    }

    #[test]
    fn written_in_place_and_an_emptied_buffer_gets_its_allocation_back() {
        let mut buf = BytesMut::with_capacity(64);
        let ptr = buf.as_ptr();
        let w = write(&mut buf, 16, 100, Fill(7));
        assert_eq!((w.len, w.offered), (16, 16));
        assert_eq!(buf.as_ptr(), ptr, "the same allocation, no copy");
        assert_eq!(&buf[..], &[7; 16][..]);

        let w = write(&mut buf, 16, 100, Fill(9));
        assert_eq!((w.len, w.offered), (16, 16));
        assert_eq!(&buf[16..], &[9; 16][..]);

        // Everything taken up the stack and dropped there: the next write
        // reuses the allocation instead of making a new one.
        drop(buf.split().freeze());
        let w = write(&mut buf, 16, 100, Fill(3));
        assert_eq!(w.len, 16);
        let within = ptr..ptr.wrapping_add(64);
        assert!(
            within.contains(&buf.as_ptr()),
            "the first allocation, reused"
        );
        assert_eq!(&buf[..], &[3; 16][..]);
    }
}
