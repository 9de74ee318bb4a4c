//! Where a UDP socket receives: slots that one system call fills with
//! many datagrams (coalesced by `UDP_GRO`, or one per slot by `recvmmsg`),
//! split back into datagrams for the handler.

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;

use quinn_udp::RecvMeta;

use super::wire::UdpIo;
use crate::socket::Datagram;

/// Bytes one coalesced receive fills at most: the kernel ends a `UDP_GRO`
/// batch before 64 KiB.
const GRO_SLOT: usize = 64 * 1024;
/// Slots of a coalescing socket: 16 x 64 KiB per call, 1 MiB. A peer
/// that does not segment fills one slot per datagram, so fewer slots would
/// mean fewer datagrams per call.
const GRO_SLOTS: usize = 16;
/// Bytes of slots of a socket without `UDP_GRO` (one datagram per slot):
/// 16 slots with the default datagram buffer, as with GRO.
const MMSG_BYTES: usize = 1024 * 1024;
/// Slots per call at most (quinn-udp's `recvmmsg` batch).
const MAX_SLOTS: usize = 32;

/// A socket's receive slots and what the last receive put in them.
pub(crate) struct Inbox {
    buf: Box<[u8]>,
    slot: usize,
    slots: usize,
    /// The largest datagram handed over.
    limit: usize,
    metas: Vec<RecvMeta>,
    filled: Vec<Filled>,
}

/// One slot's content: `len` bytes from `from`, datagrams of `stride`
/// bytes each (the last may be shorter), or one datagram that did not fit.
#[derive(Debug, Clone, Copy)]
struct Filled {
    from: SocketAddr,
    len: usize,
    stride: usize,
    cut: bool,
}

/// A datagram received, or one dropped for being larger than the limit.
#[derive(Debug)]
pub(crate) enum Received<'a> {
    Whole(&'a [u8], SocketAddr),
    Truncated(SocketAddr),
}

impl Inbox {
    /// Slots for `io` that hand over datagrams of at most `limit` bytes.
    /// A slot without `UDP_GRO` is one byte larger than `limit`, so that a
    /// datagram it cuts is one that was too large.
    pub(crate) fn new(io: &UdpIo, limit: usize) -> Self {
        let (slot, slots) = if io.gro() {
            (GRO_SLOT, GRO_SLOTS)
        } else if io.batched() {
            let slot = (limit + 1).min(GRO_SLOT);
            (slot, (MMSG_BYTES / slot).clamp(1, MAX_SLOTS))
        } else {
            (limit, 1)
        };
        Self {
            buf: vec![0; slot * slots].into_boxed_slice(),
            slot,
            slots,
            limit,
            metas: vec![RecvMeta::default(); slots],
            filled: Vec::with_capacity(slots),
        }
    }

    /// The largest datagram handed over.
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// Receives what one system call gives.
    pub(crate) fn recv(&mut self, io: &UdpIo) -> io::Result<()> {
        self.filled.clear();
        if !io.batched() {
            let (len, from, cut) = match io.recv_one(&mut self.buf)? {
                Datagram::Whole(n, from) => (n, from, false),
                Datagram::Truncated(from) => (0, from, true),
            };
            let stride = len;
            self.filled.push(Filled {
                from,
                len,
                stride,
                cut,
            });
            return Ok(());
        }
        let mut chunks = self.buf.chunks_mut(self.slot);
        let mut bufs: [IoSliceMut<'_>; MAX_SLOTS] =
            std::array::from_fn(|_| IoSliceMut::new(chunks.next().unwrap_or_default()));
        let n = io.recv_batch(&mut bufs[..self.slots], &mut self.metas)?;
        let limit = self.limit;
        self.filled.extend(self.metas[..n].iter().map(|m| Filled {
            from: m.addr,
            len: m.len,
            stride: m.stride,
            // Without GRO, a slot is `limit + 1` bytes: filling it past
            // `limit` means the datagram was larger.
            cut: m.stride == m.len && m.len > limit,
        }));
        Ok(())
    }

    /// The datagrams of the last receive, in order.
    pub(crate) fn datagrams(&self) -> impl Iterator<Item = Received<'_>> {
        self.filled.iter().enumerate().flat_map(move |(i, f)| {
            let start = i * self.slot;
            let bytes = &self.buf[start..start + f.len];
            // An empty datagram is one datagram; `chunks` would yield none.
            let pieces = match f.len {
                0 => Pieces::One(std::iter::once(bytes)),
                _ => Pieces::Many(bytes.chunks(f.stride.max(1))),
            };
            let limit = self.limit;
            let cut = f.cut;
            let from = f.from;
            pieces.map(move |d| match cut || d.len() > limit {
                true => Received::Truncated(from),
                false => Received::Whole(d, from),
            })
        })
    }
}

/// The datagrams of one slot.
enum Pieces<'a> {
    One(std::iter::Once<&'a [u8]>),
    Many(std::slice::Chunks<'a, u8>),
}

impl<'a> Iterator for Pieces<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        match self {
            Pieces::One(one) => one.next(),
            Pieces::Many(many) => many.next(),
        }
    }
}
