//! Wire bytes queued by reference: the front of the outbound queue.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes};

/// Wire bytes waiting for transmission ahead of the connection's
/// `wire_out` buffer, as shared [`Bytes`] rather than copies: a large
/// message queued by [`send_bytes`](super::Connection::send_bytes) and the
/// wire bytes produced before it. Every byte here goes out before any byte
/// of `wire_out`.
#[derive(Debug, Default)]
pub(super) struct Chain {
    parts: VecDeque<Bytes>,
    /// The sum of the parts' lengths.
    len: usize,
}

impl Chain {
    /// Bytes waiting.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Queues `bytes` behind the parts already waiting.
    pub(super) fn push(&mut self, bytes: Bytes) {
        if !bytes.is_empty() {
            self.len += bytes.len();
            self.parts.push_back(bytes);
        }
    }

    /// The first part, if any.
    pub(super) fn front(&self) -> Option<&[u8]> {
        self.parts.front().map(|b| &b[..])
    }

    /// Fills `out` with the parts, in order, as far as it reaches; returns
    /// how many slices it filled.
    pub(super) fn slices<'a>(&'a self, out: &mut [IoSlice<'a>]) -> usize {
        let mut filled = 0;
        for (slot, part) in out.iter_mut().zip(&self.parts) {
            *slot = IoSlice::new(part);
            filled += 1;
        }
        filled
    }

    /// Takes the first part, or its first `max` bytes.
    pub(super) fn take_front(&mut self, max: usize) -> Option<Bytes> {
        let front = self.parts.front_mut().filter(|_| max > 0)?;
        let run = if front.len() <= max {
            self.parts.pop_front()?
        } else {
            front.split_to(max)
        };
        self.len -= run.len();
        Some(run)
    }

    /// Consumes up to `n` bytes from the front; returns how many of the `n`
    /// lie beyond the chain (to be taken from what follows it).
    pub(super) fn advance(&mut self, mut n: usize) -> usize {
        while n > 0 {
            let Some(front) = self.parts.front_mut() else {
                break;
            };
            if n < front.len() {
                front.advance(n);
                self.len -= n;
                return 0;
            }
            n -= front.len();
            self.len -= front.len();
            self.parts.pop_front();
        }
        n
    }

    /// Frees the queue's memory if it is empty.
    pub(super) fn release_if_empty(&mut self) {
        if self.parts.is_empty() && self.parts.capacity() > 0 {
            self.parts = VecDeque::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advances_across_parts_and_reports_the_rest() {
        let mut chain = Chain::default();
        chain.push(Bytes::from_static(b"abc"));
        chain.push(Bytes::new());
        chain.push(Bytes::from_static(b"defgh"));
        assert_eq!(chain.len(), 8);
        assert_eq!(chain.advance(2), 0);
        assert_eq!(chain.front(), Some(&b"c"[..]));
        assert_eq!(chain.advance(3), 0);
        assert_eq!(chain.front(), Some(&b"fgh"[..]));
        let mut out = [IoSlice::new(&[]); 4];
        assert_eq!(chain.slices(&mut out), 1);
        assert_eq!(&out[0][..], b"fgh");
        assert_eq!(chain.advance(7), 4);
        assert_eq!(chain.len(), 0);
        assert_eq!(chain.front(), None);
    }

    #[test]
    fn fills_no_more_slices_than_given() {
        let mut chain = Chain::default();
        for part in [&b"a"[..], b"b", b"c"] {
            chain.push(Bytes::from_static(part));
        }
        let mut out = [IoSlice::new(&[]); 2];
        assert_eq!(chain.slices(&mut out), 2);
        assert_eq!([&out[0][..], &out[1][..]], [b"a", b"b"]);
    }
}
