//! A ring of provided receive buffers for io_uring
//! (`IORING_REGISTER_PBUF_RING`, Linux 5.19): the kernel picks a buffer for
//! each receive, says which in the completion, and owns it until it is
//! given back. All the unsafe code of the buffers' memory, which the kernel
//! writes while we read other parts of it, is here.

use std::alloc::{self, Layout};
use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::IoUring;
use io_uring::types::BufRingEntry;

/// Buffers in the ring (a power of two). An echo that gives every buffer
/// back in the turn it got it needs them only for one turn's receives: one
/// per connection with data, here at most 16.
const BUFFERS: usize = 64;
/// Bytes per buffer: as much as one mio read takes (64 KiB), so a
/// receive takes what a read would. With 16 KiB buffers a 16 KiB message
/// took two receives and the echo cost 1.13x the mio echo's CPU per
/// message; with 64 KiB, 0.96x. Few, large buffers: the kernel cycles
/// through all of them in order, so fewer means fewer cold cache lines.
const BUFFER_LEN: usize = 64 * 1024;
/// The ring's entries must start on a page.
const PAGE: usize = 4096;

/// The ring and its buffers: the kernel takes entries from its head, and
/// buffers go back at the tail, published at once for several.
///
/// Its memory is never freed: the kernel may write into the buffers as
/// long as the ring exists, and the process ends before it does.
pub(crate) struct BufRing {
    /// `BUFFERS` entries on a page; the first's last field is the tail.
    entries: NonNull<BufRingEntry>,
    /// `BUFFERS` buffers of `BUFFER_LEN` bytes, buffer id `b` at
    /// `b * BUFFER_LEN`.
    memory: NonNull<u8>,
    /// The tail as far as buffers were given back (not yet published).
    tail: u16,
}

impl BufRing {
    /// Allocates the ring and the buffers, registers them with `ring`
    /// as buffer group `group`, and gives the kernel every buffer.
    pub(crate) fn register(ring: &IoUring, group: u16) -> io::Result<Self> {
        let layout = Layout::from_size_align(BUFFERS * size_of::<BufRingEntry>(), PAGE)
            .map_err(io::Error::other)?;
        // SAFETY: the layout's size is not zero.
        let entries = unsafe { alloc::alloc_zeroed(layout) }.cast::<BufRingEntry>();
        let entries = NonNull::new(entries).ok_or(io::ErrorKind::OutOfMemory)?;
        let memory = Box::leak(vec![0u8; BUFFERS * BUFFER_LEN].into_boxed_slice());
        let memory = NonNull::from(memory).cast::<u8>();
        // SAFETY: `entries` is `BUFFERS` zeroed entries on a page
        // boundary, never freed, so valid for as long as the ring.
        unsafe {
            ring.submitter().register_buf_ring_with_flags(
                entries.as_ptr() as u64,
                BUFFERS as u16,
                group,
                0,
            )?;
        }
        let mut ring = Self {
            entries,
            memory,
            tail: 0,
        };
        for b in 0..BUFFERS as u16 {
            ring.give_back(b);
        }
        ring.publish();
        Ok(ring)
    }

    /// Hands `f` the first `len` bytes of buffer `b`, which a receive
    /// completion says the kernel filled, then gives the buffer back (the
    /// kernel sees it after [`publish`](Self::publish)).
    ///
    /// # Safety
    ///
    /// `b` is the buffer id of a completion of a receive from this ring's
    /// group, and each such completion's buffer is taken once: the kernel
    /// is done with the buffer and does not have it.
    pub(crate) unsafe fn take(&mut self, b: u16, len: usize, f: impl FnOnce(&[u8])) {
        if usize::from(b) >= BUFFERS {
            return;
        }
        let start = usize::from(b) * BUFFER_LEN;
        // SAFETY: `b < BUFFERS` and `len` is kept within the buffer, so the
        // range is within the allocation; the kernel has finished writing
        // it and does not write it again before `give_back` below (the
        // caller's promise).
        let bytes = unsafe {
            std::slice::from_raw_parts(self.memory.as_ptr().add(start), len.min(BUFFER_LEN))
        };
        f(bytes);
        self.give_back(b);
    }

    /// Adds buffer `b` (`b < BUFFERS`, one the kernel does not have) at
    /// the tail.
    fn give_back(&mut self, b: u16) {
        let slot = usize::from(self.tail) & (BUFFERS - 1);
        // SAFETY: `slot < BUFFERS`, within the allocation. The kernel
        // reads only entries before the published tail, and this one is
        // at or after it: each buffer is given back once per time the
        // kernel took it, so at most `BUFFERS` entries are ever its.
        // The setters write the entry's address, length and id, not
        // its last field (the first entry's is the tail).
        let entry = unsafe { &mut *self.entries.as_ptr().add(slot) };
        entry.set_addr(self.memory.as_ptr() as u64 + (usize::from(b) * BUFFER_LEN) as u64);
        entry.set_len(BUFFER_LEN as u32);
        entry.set_bid(b);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Lets the kernel see the buffers given back so far.
    pub(crate) fn publish(&self) {
        // SAFETY: the tail is the first entry's last field (the kernel's
        // `struct io_uring_buf_ring`), a `u16` in our allocation, aligned
        // for it; the kernel only reads it, and only we write it.
        let tail =
            unsafe { AtomicU16::from_ptr(BufRingEntry::tail(self.entries.as_ptr()).cast_mut()) };
        // Release: the entries written before are seen with the tail.
        tail.store(self.tail, Ordering::Release);
    }
}
