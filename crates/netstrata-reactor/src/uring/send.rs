//! A send in flight: the runs of wire bytes it carries (shared `Bytes`,
//! never copied), and the `msghdr` and `iovec`s the kernel reads them
//! through until the send completes. Each lives in a `Box` that stays put
//! while the ring's slab of sends grows; boxes are reused, so sending
//! allocates nothing once the loop has warmed up.

use std::os::fd::RawFd;

use bytes::{Buf, Bytes};

use super::Op;

/// Most runs one send carries (a message queued by reference takes two:
/// the bytes before it with its prefix, then the message).
pub(super) const RUNS: usize = 16;

pub(super) struct Outgoing {
    /// `runs[first..count]` are still to send, the first maybe in part.
    runs: [Bytes; RUNS],
    first: usize,
    count: usize,
    iov: [libc::iovec; RUNS],
    msg: libc::msghdr,
    pub(super) fd: RawFd,
    pub(super) owner: Op,
    /// Its connection closed: the rest is never sent. (Its number may
    /// name another socket by then: only the submitted send holds the
    /// closed one.)
    pub(super) orphaned: bool,
}

// SAFETY: the raw pointers in `iov` and `msg` point only into this value's
// own `runs` and `iov`, which move with it (boxed); nothing else shares
// them, so the value may go to another thread as its `Bytes` may.
#[allow(unsafe_code)]
unsafe impl Send for Outgoing {}

impl Outgoing {
    /// An empty send, boxed: the kernel's pointers into it stay valid.
    pub(super) fn new() -> Box<Self> {
        let iov = libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        };
        Box::new(Self {
            runs: Default::default(),
            first: 0,
            count: 0,
            iov: [iov; RUNS],
            msg: empty_msghdr(),
            fd: -1,
            owner: Op::Cancel,
            orphaned: false,
        })
    }

    /// Adds `run`; `false` (and nothing added) once it holds [`RUNS`].
    pub(super) fn push(&mut self, run: Bytes) -> bool {
        if self.count == RUNS {
            return false;
        }
        self.runs[self.count] = run;
        self.count += 1;
        true
    }

    /// Bytes still to send.
    pub(super) fn len(&self) -> usize {
        self.runs[self.first..self.count]
            .iter()
            .map(Bytes::len)
            .sum()
    }

    /// Whether it holds nothing to send.
    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Runs it can still take.
    pub(super) fn room(&self) -> usize {
        RUNS - self.count
    }

    /// The kernel took `n` bytes: the rest is what is left to send.
    pub(super) fn advance(&mut self, mut n: usize) {
        while n > 0 && self.first < self.count {
            let run = &mut self.runs[self.first];
            if n < run.len() {
                run.advance(n);
                return;
            }
            n -= run.len();
            *run = Bytes::new();
            self.first += 1;
        }
    }

    /// Empties it for reuse (its runs' memory goes back to their owners).
    pub(super) fn clear(&mut self) {
        for run in &mut self.runs[..self.count] {
            *run = Bytes::new();
        }
        (self.first, self.count, self.orphaned) = (0, 0, false);
    }

    /// The header of a `sendmsg` of what is left, pointing into this
    /// value: valid while it stays boxed and unchanged.
    pub(super) fn header(&mut self) -> *const libc::msghdr {
        let left = &self.runs[self.first..self.count];
        for (iov, run) in self.iov.iter_mut().zip(left) {
            iov.iov_base = run.as_ptr().cast_mut().cast();
            iov.iov_len = run.len();
        }
        self.msg.msg_iov = self.iov.as_mut_ptr();
        self.msg.msg_iovlen = left.len() as _;
        &raw const self.msg
    }
}

/// A `msghdr` with no address, no control message and no buffers.
#[allow(unsafe_code)]
fn empty_msghdr() -> libc::msghdr {
    // SAFETY: an all-zero `msghdr` is a valid value (null pointers and zero
    // lengths); `header` points it at the buffers before each send.
    unsafe { std::mem::zeroed() }
}
