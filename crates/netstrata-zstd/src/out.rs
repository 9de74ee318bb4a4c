//! zstd writing straight into a caller's `BytesMut`.

use bytes::{Bytes, BytesMut};
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
/// Safe code can only hand zstd initialised memory, or a `Vec`'s spare
/// capacity. An empty buffer is turned into a `Vec` and back, which moves no
/// bytes, and zstd writes into its capacity; otherwise `want` bytes are
/// zeroed first, so callers size `want` from what zstd can produce (a
/// compress bound, an expansion estimate), not from the room they have.
pub(crate) fn write<P: Produce>(
    buf: &mut BytesMut,
    want: usize,
    max: usize,
    call: P,
) -> Written<P::Output> {
    debug_assert!(want <= max);
    if buf.is_empty() {
        let mut vec = Vec::from(std::mem::take(buf));
        vec.reserve_exact(want);
        let offered = vec.capacity();
        if offered <= max {
            let mut dst = OutBuffer::around(&mut vec);
            let result = call.produce(&mut dst);
            let len = dst.pos();
            *buf = into_bytes_mut(vec);
            return Written {
                result,
                len,
                offered,
            };
        }
        // More capacity than room: zstd must not see it.
        *buf = into_bytes_mut(vec);
    }
    let start = buf.len();
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

/// The allocation of `vec` as a `BytesMut`, without copying (through
/// `Bytes`, which takes a `Vec` and gives a unique buffer back as is).
fn into_bytes_mut(vec: Vec<u8>) -> BytesMut {
    BytesMut::from(Bytes::from(vec))
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
    fn an_empty_buffer_is_written_in_place_and_a_full_one_after_its_bytes() {
        let mut buf = BytesMut::with_capacity(64);
        let ptr = buf.as_ptr();
        let w = write(&mut buf, 16, 100, Fill(7));
        assert_eq!((w.len, w.offered), (64, 64));
        assert_eq!(buf.as_ptr(), ptr, "the same allocation, no copy");
        assert_eq!(&buf[..], &[7; 64][..]);

        let w = write(&mut buf, 16, 100, Fill(9));
        assert_eq!((w.len, w.offered), (16, 16));
        assert_eq!(buf.len(), 80);
        assert_eq!(&buf[64..], &[9; 16][..]);

        // More capacity than allowed: zstd sees only what it may fill.
        let mut big = BytesMut::with_capacity(4096);
        let w = write(&mut big, 10, 20, Fill(1));
        assert_eq!((w.len, w.offered), (10, 10));
        assert_eq!(&big[..], &[1; 10][..]);
    }
}
