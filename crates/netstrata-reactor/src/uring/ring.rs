//! The ring itself (Linux with the `uring` feature).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use bytes::Bytes;
use io_uring::types::{Fd, SubmitArgs, Timespec};
use io_uring::{IoUring, Probe, cqueue, opcode, squeue};
use slab::Slab;

use super::buffers::Buffers;
use super::send::Outgoing;
use super::{Completion, Op, Sent};

/// The buffer group of the ring's receive buffers.
const GROUP: u16 = 0;
/// Submission queue entries (the completion queue has twice as many, and
/// the kernel keeps completions that overflow it).
const ENTRIES: u32 = 4096;
/// How long dropping a ring waits for its cancelled operations to end
/// before leaking the memory they may still use.
const DRAIN_ON_DROP: Duration = Duration::from_secs(1);

/// A loop's ring.
pub(crate) struct Ring {
    ring: IoUring,
    /// A ring set up for one thread starts disabled: nothing reaches the
    /// kernel before the first submission enables it.
    enabled: bool,
    buffers: Option<Buffers>,
    sends: Slab<Box<Outgoing>>,
    /// Emptied sends, for reuse.
    #[expect(
        clippy::vec_box,
        reason = "each box moves into `sends`, where the kernel's pointers into it must stay valid"
    )]
    spare: Vec<Box<Outgoing>>,
    /// Operations the kernel holds: each submission adds one, each final
    /// completion (no `MORE` flag) takes one.
    in_flight: usize,
    /// Receives that found no buffer, since the loop began.
    exhausted: u64,
    /// Descriptors closed by the loop that queued entries may name: the
    /// kernel looks a descriptor up when an entry is submitted, so they
    /// close after the next submission (a number reused by then would
    /// send to another socket).
    closing: Vec<OwnedFd>,
}

impl Ring {
    /// Sets up a ring with `count` receive buffers of `len` bytes, or says
    /// why io_uring is unavailable. `fails_with` makes it fail as the
    /// kernel would with that errno.
    ///
    /// With `one_thread`, the ring belongs to the thread of its first
    /// submission and runs the kernel's completion work only when that
    /// thread asks for completions (`DEFER_TASKRUN`), instead of being
    /// interrupted for each (docs/benchmarks.md measures both). Without
    /// it, any thread may take the loop's turns.
    pub(crate) fn new(
        count: usize,
        len: usize,
        one_thread: bool,
        fails_with: Option<i32>,
    ) -> io::Result<Self> {
        if let Some(errno) = fails_with {
            return Err(io::Error::from_raw_os_error(errno));
        }
        check_kernel()?;
        let mut builder = IoUring::builder();
        builder.setup_cqsize(ENTRIES * 2);
        if one_thread {
            // Enabled by the first submission, whose thread owns the ring.
            builder
                .setup_single_issuer()
                .setup_defer_taskrun()
                .setup_r_disabled();
        }
        let ring = builder.build(ENTRIES)?;
        if !ring.params().is_feature_ext_arg() || !ring.params().is_feature_nodrop() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the kernel's io_uring lacks timed waits or keeping overflowing completions",
            ));
        }
        let mut probe = Probe::new();
        ring.submitter().register_probe(&mut probe)?;
        let needed = [
            (opcode::PollAdd::CODE, "poll"),
            (opcode::AcceptMulti::CODE, "accept"),
            (opcode::RecvMulti::CODE, "recv"),
            (opcode::SendMsg::CODE, "sendmsg"),
            (opcode::AsyncCancel::CODE, "cancel"),
        ];
        if let Some((_, name)) = needed.iter().find(|(code, _)| !probe.is_supported(*code)) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("the kernel's io_uring has no {name} operation"),
            ));
        }
        let count = count.next_power_of_two().min(1 << 15);
        let buffers = Buffers::register(&ring, GROUP, count, len)?;
        Ok(Self {
            ring,
            enabled: !one_thread,
            buffers: Some(buffers),
            sends: Slab::new(),
            spare: Vec::new(),
            in_flight: 0,
            exhausted: 0,
            closing: Vec::new(),
        })
    }

    /// The ring's descriptor: readable while completions wait.
    pub(crate) fn fd(&self) -> RawFd {
        self.ring.as_raw_fd()
    }

    /// Receives that found every buffer taken (each then waited for the
    /// next turn), since the loop began.
    pub(crate) fn exhausted(&self) -> u64 {
        self.exhausted
    }

    /// Queues `entry` for the next submission, submitting what is queued
    /// first if the queue is full.
    #[allow(unsafe_code)]
    fn push(&mut self, entry: squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: each entry pushed refers only to descriptors and to
            // memory that outlive the operation: the epoll, listener and
            // connection descriptors are closed only after their operations
            // are cancelled and the kernel holds its own reference until
            // they end; send buffers live in `sends` until their completion
            // (see `send`); receive buffers live until `Drop`, which waits
            // for every operation to end first.
            if unsafe { self.ring.submission().push(&entry) }.is_ok() {
                self.in_flight += 1;
                return Ok(());
            }
            self.enable()?;
            self.ring.submit().map_err(owned_elsewhere)?;
            self.close_submitted();
        }
    }

    /// Closes the descriptors held for entries that are now submitted.
    fn close_submitted(&mut self) {
        if self.ring.submission().is_empty() {
            self.closing.clear();
        }
    }

    /// Enables a ring set up for one thread: the calling thread owns it.
    fn enable(&mut self) -> io::Result<()> {
        if !self.enabled {
            self.ring.submitter().register_enable_rings()?;
            self.enabled = true;
        }
        Ok(())
    }

    /// Closes `fd`, a closing connection's socket, once the entries
    /// queued that name it are submitted; `send`, the slot of its send in
    /// flight, will not send the rest (the number may name another socket
    /// by then).
    pub(crate) fn close_later(&mut self, fd: OwnedFd, send: Option<usize>) {
        if let Some(send) = send.and_then(|slot| self.sends.get_mut(slot)) {
            send.orphaned = true;
        }
        self.closing.push(fd);
    }

    /// Polls `epoll` (the loop's mio descriptor) for readability, again
    /// after each event.
    pub(crate) fn poll_epoll(&mut self, epoll: RawFd) -> io::Result<()> {
        let entry = opcode::PollAdd::new(Fd(epoll), libc::POLLIN as u32)
            .multi(true)
            .build()
            .user_data(Op::Epoll.encode());
        self.push(entry)
    }

    /// Accepts connections on `listener` until cancelled or failed.
    pub(crate) fn accept(&mut self, listener: RawFd, index: usize) -> io::Result<()> {
        let entry = opcode::AcceptMulti::new(Fd(listener))
            .flags(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
            .build()
            .user_data(
                Op::Accept {
                    index: index as u32,
                }
                .encode(),
            );
        self.push(entry)
    }

    /// Receives on connection socket `fd` into the ring's buffers until
    /// cancelled, ended, failed or out of buffers; completions name `op`.
    pub(crate) fn recv(&mut self, fd: RawFd, op: Op) -> io::Result<()> {
        let entry = opcode::RecvMulti::new(Fd(fd), GROUP)
            .build()
            .user_data(op.encode());
        self.push(entry)
    }

    /// Cancels the operations whose completions name `op`.
    pub(crate) fn cancel(&mut self, op: Op) -> io::Result<()> {
        let entry = opcode::AsyncCancel::new(op.encode())
            .build()
            .user_data(Op::Cancel.encode());
        self.push(entry)
    }

    /// Sends up to [`RUNS`](super::send::RUNS) runs of wire bytes that `next`
    /// hands over (each call given the runs it may still add), until it
    /// says `None`, on socket `fd` for `owner` (a connection's `Recv` op,
    /// naming it). Returns the slot whose completion reports the send;
    /// `None` when `next` had nothing.
    pub(crate) fn send(
        &mut self,
        fd: RawFd,
        owner: Op,
        mut next: impl FnMut() -> Option<Bytes>,
    ) -> io::Result<Option<usize>> {
        let mut out = self.spare.pop().unwrap_or_else(Outgoing::new);
        while out.room() > 0
            && let Some(run) = next()
        {
            out.push(run);
        }
        if out.is_empty() {
            out.clear();
            self.spare.push(out);
            return Ok(None);
        }
        (out.fd, out.owner) = (fd, owner);
        let slot = self.sends.insert(out);
        match self.submit_send(slot) {
            Ok(()) => Ok(Some(slot)),
            Err(e) => {
                self.finish_send(slot);
                Err(e)
            }
        }
    }

    /// Submits the unsent rest of send `slot`.
    fn submit_send(&mut self, slot: usize) -> io::Result<()> {
        let send = &mut self.sends[slot];
        let fd = send.fd;
        // The header and the buffers it names stay valid until the
        // completion: the send stays boxed in `sends`, unchanged, until
        // then, and the memory of its `Bytes` does not move.
        let entry = opcode::SendMsg::new(Fd(fd), send.header())
            .flags(libc::MSG_NOSIGNAL as u32)
            .build()
            .user_data(Op::Send { slot: slot as u32 }.encode());
        self.push(entry)
    }

    /// Empties send `slot` for reuse.
    fn finish_send(&mut self, slot: usize) {
        let mut out = self.sends.remove(slot);
        out.clear();
        if self.spare.len() < 1024 {
            self.spare.push(out);
        }
    }

    /// What the completion of send `slot` with `result` means.
    pub(crate) fn sent(&mut self, slot: usize, result: i32) -> Sent {
        let Some(send) = self.sends.get_mut(slot) else {
            return Sent::Orphaned;
        };
        let owner = send.owner;
        if send.orphaned {
            self.finish_send(slot);
            return Sent::Orphaned;
        }
        let outcome = match usize::try_from(result) {
            Ok(n) if n > 0 && n < send.len() => {
                send.advance(n);
                match self.submit_send(slot) {
                    Ok(()) => return Sent::Partly { owner },
                    Err(e) => Sent::Failed {
                        owner,
                        errno: e.raw_os_error().unwrap_or(libc::EIO),
                    },
                }
            }
            Ok(n) if n > 0 => Sent::Done { owner },
            // Nothing taken of a send that was not empty: the peer is gone.
            Ok(_) => Sent::Failed {
                owner,
                errno: libc::EPIPE,
            },
            Err(_) => Sent::Failed {
                owner,
                errno: -result,
            },
        };
        self.finish_send(slot);
        outcome
    }

    /// Submits what is queued and waits for a completion at most `wait`
    /// (`None`: until one comes; zero: not at all).
    pub(crate) fn submit_and_wait(&mut self, wait: Option<Duration>) -> io::Result<()> {
        if let Some(buffers) = self.buffers.as_mut() {
            buffers.publish();
        }
        self.enable()?;
        if !self.closing.is_empty() && wait != Some(Duration::ZERO) {
            // Submit before waiting: the sockets close now, not after it.
            self.ring.submit().map_err(owned_elsewhere)?;
            self.close_submitted();
        }
        let submitter = self.ring.submitter();
        let result = match wait {
            // A wait of zero still asks for completions: on a ring owned
            // by its thread, that is what runs the kernel's deferred work,
            // cancellations included, which lets go of closed sockets. A
            // loop driven by `turn` may take no further turn to do it.
            Some(Duration::ZERO) => {
                let ts = Timespec::new();
                submitter.submit_with_args(1, &SubmitArgs::new().timespec(&ts))
            }
            Some(wait) => {
                let ts = Timespec::from(wait);
                submitter.submit_with_args(1, &SubmitArgs::new().timespec(&ts))
            }
            None => submitter.submit_and_wait(1),
        };
        match result {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY)
                ) => {}
            Err(e) => return Err(owned_elsewhere(e)),
        }
        self.close_submitted();
        Ok(())
    }

    /// Takes the completions that wait. Bytes a receive got are handed to
    /// `received` with its op (the buffer goes back to the kernel at once);
    /// each completion goes to `out`.
    #[allow(unsafe_code)]
    pub(crate) fn complete(
        &mut self,
        out: &mut Vec<Completion>,
        mut received: impl FnMut(Op, &[u8]),
    ) {
        let Self {
            ring,
            buffers,
            in_flight,
            exhausted,
            ..
        } = self;
        for cqe in ring.completion() {
            let flags = cqe.flags();
            let op = Op::decode(cqe.user_data());
            let more = cqueue::more(flags);
            if !more {
                *in_flight = in_flight.saturating_sub(1);
            }
            let result = cqe.result();
            if result == -libc::ENOBUFS {
                *exhausted += 1;
            }
            if let (Some(b), Some(buffers)) = (cqueue::buffer_select(flags), buffers.as_mut()) {
                let len = usize::try_from(result).unwrap_or(0);
                // SAFETY: the completion names buffer `b` of the group: the
                // kernel filled it and gave it to us, once.
                unsafe { buffers.take(b, len, |bytes| received(op, bytes)) };
            }
            let stream = match op {
                Op::Accept { .. } if result >= 0 => {
                    // SAFETY: an accept's result is a new descriptor the
                    // kernel gave us alone, taken here once.
                    Some(unsafe { std::net::TcpStream::from_raw_fd(result) })
                }
                _ => None,
            };
            out.push(Completion {
                op,
                result,
                more,
                stream,
            });
        }
    }
}

impl Drop for Ring {
    /// Cancels everything and waits (a while) for the kernel to let go of
    /// the buffers before freeing them; leaks them if it does not.
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        if !self.enabled {
            // Nothing was ever submitted: the kernel holds nothing.
            self.in_flight = 0;
        }
        let all = opcode::AsyncCancel2::new(io_uring::types::CancelBuilder::any())
            .build()
            .user_data(Op::Cancel.encode());
        if self.enabled {
            let _ = self.push(all);
        }
        let deadline = std::time::Instant::now() + DRAIN_ON_DROP;
        let mut done = Vec::new();
        // The cancellation itself is in flight too.
        while self.in_flight > 0 {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() || self.submit_and_wait(Some(left)).is_err() {
                break;
            }
            done.clear();
            self.complete(&mut done, |_, _| {});
        }
        if self.in_flight > 0 {
            tracing::warn!(
                operations = self.in_flight,
                "io_uring operations did not end; leaking their buffers"
            );
            std::mem::forget(std::mem::take(&mut self.sends));
            return;
        }
        if let Some(buffers) = self.buffers.take() {
            // SAFETY: no operation is in flight, receives included.
            unsafe { buffers.free(&self.ring, GROUP) };
        }
    }
}

/// Says what `EEXIST` from a submission means: the ring is another
/// thread's.
fn owned_elsewhere(e: io::Error) -> io::Error {
    if e.raw_os_error() != Some(libc::EEXIST) {
        return e;
    }
    io::Error::other(
        "an io_uring loop runs on the thread of its first turn \
         (Server::bind_shared sets its loops up for turns on any thread)",
    )
}

/// Multishot receives need Linux 6.0.
fn check_kernel() -> io::Result<()> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")?;
    let release = release.trim();
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    if (major, minor) < (6, 0) {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("multishot receives need Linux 6.0; this is {release}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
#[path = "ring_tests.rs"]
mod tests;
