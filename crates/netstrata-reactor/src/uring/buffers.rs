//! The ring of provided receive buffers (`IORING_REGISTER_PBUF_RING`,
//! Linux 5.19): the kernel picks a buffer for each receive, names it in the
//! completion, and owns it until it is given back. All the unsafe code of
//! memory the kernel writes while the loop reads other parts of it is here.

// Every function here hands memory to the kernel, reads what it wrote, or
// frees it: each `unsafe` block says why it holds.
#![allow(unsafe_code)]

use std::alloc::{self, Layout};
use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::IoUring;
use io_uring::types::BufRingEntry;

/// The ring's entries must start on a page.
const PAGE: usize = 4096;

/// The entries and the buffers: the kernel takes entries from its head,
/// buffers go back at the tail, published at once for several.
///
/// The memory is freed on drop only when the owner says the kernel can no
/// longer write it ([`Buffers::free`]); otherwise it is leaked.
pub(super) struct Buffers {
    /// `count` entries on a page; the first's last field is the tail.
    entries: NonNull<BufRingEntry>,
    /// `count` buffers of `len` bytes, buffer id `b` at `b * len`.
    memory: NonNull<u8>,
    count: usize,
    len: usize,
    /// The tail as far as buffers were given back (not yet published).
    tail: u16,
    /// The tail the kernel has seen.
    published: u16,
}

// SAFETY: the entries and buffers are owned by this value alone (and lent
// to the kernel, which does not care which thread owns them); moving it to
// another thread moves that ownership, as a `Box` would.
unsafe impl Send for Buffers {}

impl Buffers {
    /// Allocates `count` (a power of two, at most 32 768) buffers of `len`
    /// bytes, registers them with `ring` as buffer group `group`, and gives
    /// the kernel every one.
    pub(super) fn register(
        ring: &IoUring,
        group: u16,
        count: usize,
        len: usize,
    ) -> io::Result<Self> {
        debug_assert!(count.is_power_of_two() && count <= 1 << 15);
        let entries_layout = Self::entries_layout(count)?;
        let memory_layout = Self::memory_layout(count, len)?;
        // SAFETY: neither layout has size zero (count and len are at least 1).
        let entries = unsafe { alloc::alloc_zeroed(entries_layout) }.cast::<BufRingEntry>();
        let entries = NonNull::new(entries).ok_or(io::ErrorKind::OutOfMemory)?;
        // SAFETY: as above.
        let memory = NonNull::new(unsafe { alloc::alloc(memory_layout) });
        let Some(memory) = memory else {
            // SAFETY: allocated just above with this layout, never shared.
            unsafe { alloc::dealloc(entries.as_ptr().cast(), entries_layout) };
            return Err(io::ErrorKind::OutOfMemory.into());
        };
        let mut buffers = Self {
            entries,
            memory,
            count,
            len,
            tail: 0,
            published: 0,
        };
        // SAFETY: `entries` is `count` zeroed entries on a page boundary,
        // valid until `free` (which unregisters them first) or forever.
        let registered = unsafe {
            ring.submitter().register_buf_ring_with_flags(
                entries.as_ptr() as u64,
                count as u16,
                group,
                0,
            )
        };
        if let Err(e) = registered {
            // SAFETY: the kernel refused the ring: it never saw the memory.
            unsafe { buffers.dealloc() };
            return Err(e);
        }
        for b in 0..count as u16 {
            buffers.give_back(b);
        }
        buffers.publish();
        Ok(buffers)
    }

    fn entries_layout(count: usize) -> io::Result<Layout> {
        Layout::from_size_align(count * size_of::<BufRingEntry>(), PAGE).map_err(io::Error::other)
    }

    fn memory_layout(count: usize, len: usize) -> io::Result<Layout> {
        let size = count.checked_mul(len).ok_or(io::ErrorKind::OutOfMemory)?;
        Layout::from_size_align(size, 64).map_err(io::Error::other)
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
    pub(super) unsafe fn take(&mut self, b: u16, len: usize, f: impl FnOnce(&[u8])) {
        if usize::from(b) >= self.count {
            return;
        }
        let start = usize::from(b) * self.len;
        // SAFETY: `b < count` and `len` is kept within the buffer, so the
        // range is within the allocation; the kernel has finished writing
        // it and does not write it again before `give_back` below (the
        // caller's promise).
        let bytes = unsafe {
            std::slice::from_raw_parts(self.memory.as_ptr().add(start), len.min(self.len))
        };
        f(bytes);
        self.give_back(b);
    }

    /// Adds buffer `b` (`b < count`, one the kernel does not have) at the
    /// tail.
    fn give_back(&mut self, b: u16) {
        let slot = usize::from(self.tail) & (self.count - 1);
        // SAFETY: `slot < count`, within the allocation. The kernel reads
        // only entries before the published tail, and this one is at or
        // after it: each buffer is given back once per time the kernel took
        // it, so at most `count` entries are ever its. The setters write
        // the entry's address, length and id, not its last field (the first
        // entry's is the tail).
        let entry = unsafe { &mut *self.entries.as_ptr().add(slot) };
        entry.set_addr(self.memory.as_ptr() as u64 + (usize::from(b) * self.len) as u64);
        entry.set_len(self.len as u32);
        entry.set_bid(b);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Lets the kernel see the buffers given back so far.
    pub(super) fn publish(&mut self) {
        if self.published == self.tail {
            return;
        }
        // SAFETY: the tail is the first entry's last field (the kernel's
        // `struct io_uring_buf_ring`), a `u16` in our allocation, aligned
        // for it; the kernel only reads it, and only we write it.
        let tail =
            unsafe { AtomicU16::from_ptr(BufRingEntry::tail(self.entries.as_ptr()).cast_mut()) };
        // Release: the entries written before are seen with the tail.
        tail.store(self.tail, Ordering::Release);
        self.published = self.tail;
    }

    /// Unregisters the buffers from `ring` as group `group` and frees them.
    ///
    /// # Safety
    ///
    /// No receive of the ring is in flight: none can be writing a buffer.
    pub(super) unsafe fn free(mut self, ring: &IoUring, group: u16) {
        if ring.submitter().unregister_buf_ring(group).is_ok() {
            // SAFETY: unregistered, and no receive in flight (the caller's
            // promise): the kernel neither holds nor will pick a buffer.
            unsafe { self.dealloc() };
        }
        // Else leaked: the kernel may still have them.
    }

    /// Frees the memory.
    ///
    /// # Safety
    ///
    /// The kernel does not have the entries or the buffers.
    unsafe fn dealloc(&mut self) {
        if let (Ok(entries), Ok(memory)) = (
            Self::entries_layout(self.count),
            Self::memory_layout(self.count, self.len),
        ) {
            // SAFETY: allocated in `register` with these layouts; the
            // caller promises the kernel is done with them, and the owner
            // is dropped after this, and its drop frees nothing.
            unsafe {
                alloc::dealloc(self.entries.as_ptr().cast(), entries);
                alloc::dealloc(self.memory.as_ptr(), memory);
            }
        }
    }
}
