//! Datagrams queued to send, and sending them in as few system calls as
//! the kernel allows: runs of same-size datagrams to one peer leave in one
//! `sendmsg` with `UDP_SEGMENT`, others together by `sendmmsg`.

use std::io;
use std::net::SocketAddr;

use super::DatagramContext;
use super::wire::UdpIo;
use crate::socket::SEND_MANY;

/// Datagrams queued at most; past it, `send_to` drops.
const QUEUE_LIMIT: usize = 1024;
/// Bytes queued at most (past it, `send_to` drops), and what the queue's
/// buffer keeps of its capacity once empty.
const QUEUE_BYTES: usize = 4 * 1024 * 1024;
const KEEP_BYTES: usize = 256 * 1024;
/// Bytes queued that make `send_to` send at once: a full GSO batch.
const FLUSH_AT: usize = 64 * 1024;
/// Send failures kept for the handler between its callbacks; more are
/// counted and logged only.
const FAILURES_KEPT: usize = 1024;

/// What waits to be sent: the datagrams' bytes back to back, and for each
/// its peer and length.
#[derive(Default)]
pub(crate) struct Outbox {
    bytes: Vec<u8>,
    datagrams: Vec<(SocketAddr, usize)>,
    /// How many leading datagrams (and bytes) have left already.
    sent_datagrams: usize,
    sent_bytes: usize,
    /// Refused datagrams the handler has not been told of yet.
    pub(crate) failed: Vec<(SocketAddr, io::Error)>,
    pub(crate) counters: Counts,
    /// Segmentation learnt not to work: off for good after `EIO` (a device
    /// without it), and the largest segment that still may be sent after
    /// `EINVAL` or `EMSGSIZE` for a larger one (a path MTU below
    /// Ethernet's).
    no_segments: bool,
    segment_cap: Option<usize>,
    /// The socket's buffer was full at the last try: `send_to` queues
    /// without trying again until the loop sees the socket again.
    blocked: bool,
}

/// The sending half of [`super::DatagramCounters`].
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Counts {
    pub(crate) sent: u64,
    pub(crate) sent_bytes: u64,
    pub(crate) dropped: u64,
    pub(crate) failed: u64,
    pub(crate) calls: u64,
}

impl Outbox {
    /// Datagrams waiting.
    pub(crate) fn len(&self) -> usize {
        self.datagrams.len() - self.sent_datagrams
    }

    /// Queues `data` for `to`; false if the queue is full and it was
    /// dropped. Sends at once when a full batch waits.
    pub(crate) fn push(&mut self, io: &UdpIo, data: &[u8], to: SocketAddr) -> bool {
        if self.full(data.len()) && !self.blocked {
            self.flush(io);
        }
        if self.full(data.len()) {
            self.counters.dropped += 1;
            return false;
        }
        self.bytes.extend_from_slice(data);
        self.datagrams.push((to, data.len()));
        if self.bytes.len() - self.sent_bytes >= FLUSH_AT && !self.blocked {
            self.flush(io);
        }
        true
    }

    /// Whether `len` more bytes would pass a bound (one datagram always
    /// fits an empty queue).
    fn full(&self, len: usize) -> bool {
        let bytes = self.bytes.len() - self.sent_bytes;
        self.len() >= QUEUE_LIMIT || (self.len() > 0 && bytes + len > QUEUE_BYTES)
    }

    /// Whether datagrams wait for room in the socket's buffer.
    pub(crate) fn is_blocked(&self) -> bool {
        self.blocked && self.len() > 0
    }

    /// The loop sees the socket again (an event): `send_to` may try it.
    pub(crate) fn retry(&mut self) {
        self.blocked = false;
    }

    /// Sends what waits until done or the socket's buffer is full: runs
    /// of same-size datagrams to one peer in one segmented send each,
    /// single datagrams (to many peers, or of many sizes) together by
    /// `sendmmsg`.
    pub(crate) fn flush(&mut self, io: &UdpIo) {
        let max_segments = if self.no_segments {
            1
        } else {
            io.max_segments()
        };
        while self.sent_datagrams < self.datagrams.len() {
            let (to, count, size, len) = self.run_at(self.sent_datagrams, max_segments);
            let sent_on = match count {
                1 => self.send_singles(io, max_segments),
                _ => self.send_run(io, to, count, size, len),
            };
            if !sent_on {
                self.blocked = true;
                break;
            }
        }
        self.compact();
    }

    /// Sends the run of `count` datagrams of `size` bytes (`len` in all)
    /// to `to` in one call; false if the socket is full.
    fn send_run(
        &mut self,
        io: &UdpIo,
        to: SocketAddr,
        count: usize,
        size: usize,
        len: usize,
    ) -> bool {
        let data = &self.bytes[self.sent_bytes..self.sent_bytes + len];
        self.counters.calls += 1;
        match io.send(data, to, Some(size)) {
            Ok(()) => self.sent(count, len),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            // One datagram of a batch may be the cause: send them one at
            // a time so that each has its own result. Then learn what the
            // failure says of segmentation.
            Err(e) => {
                let sent = self.counters.sent;
                let sent_on = self.send_singly(io, count);
                self.learn(io, &e, size, self.counters.sent > sent);
                return sent_on;
            }
        }
        true
    }

    /// What a segmented send that failed with `error` for segments of
    /// `size` says: `EIO`, that the device cannot segment (off for good);
    /// `EINVAL` or `EMSGSIZE` where the datagrams then went one by one,
    /// that `size` is above the path MTU (no segments that large from now
    /// on). Other failures were the datagrams' own.
    fn learn(&mut self, io: &UdpIo, error: &io::Error, size: usize, singles_went: bool) {
        let local = io.socket.local_addr().ok();
        match error.raw_os_error() {
            Some(libc::EIO) if !self.no_segments => {
                self.no_segments = true;
                tracing::warn!(error = %error, ?local, "UDP segmentation offload failed; sending datagrams one by one");
            }
            Some(libc::EINVAL | libc::EMSGSIZE) if singles_went => {
                self.segment_cap = Some(size - 1);
                tracing::debug!(error = %error, ?local, size, "UDP segments of this size refused; smaller ones only");
            }
            _ => {}
        }
    }

    /// Sends the single datagrams that wait first (up to the next run),
    /// as many per call as `sendmmsg` takes (one per call for a socket
    /// that moves one datagram per call); false if the socket is full.
    fn send_singles(&mut self, io: &UdpIo, max_segments: usize) -> bool {
        let mut batch: [(SocketAddr, &[u8]); SEND_MANY] = [(self.datagrams[0].0, &[]); SEND_MANY];
        let limit = io.send_many_limit();
        let (mut n, mut at, mut offset) = (0, self.sent_datagrams, self.sent_bytes);
        while n < limit && at < self.datagrams.len() {
            let (to, count, _, len) = self.run_at(at, max_segments);
            if count > 1 {
                break;
            }
            batch[n] = (to, &self.bytes[offset..offset + len]);
            (n, at, offset) = (n + 1, at + 1, offset + len);
        }
        self.counters.calls += 1;
        match io.send_many(&batch[..n]) {
            // The kernel takes at least one of a non-empty batch or says
            // why not; nothing taken is treated as a full socket.
            Ok(0) => return false,
            Ok(k) => {
                let len = batch[..k].iter().map(|d| d.1.len()).sum();
                self.sent(k, len);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(e) => {
                let (to, data) = batch[0];
                let len = data.len();
                self.refused(to, e, len);
            }
        }
        true
    }

    /// The run of datagrams from datagram `first` that one send may
    /// carry: same peer, same size (the last may be shorter), at most
    /// `max_segments` and what one IP packet holds. Returns the peer, the
    /// count, the segment size and the bytes.
    fn run_at(&self, first: usize, max_segments: usize) -> (SocketAddr, usize, usize, usize) {
        let waiting = &self.datagrams[first..];
        let (to, size) = waiting[0];
        let (mut count, mut len) = (1, size);
        // An empty datagram cannot be a segment (the kernel would send
        // nothing for it).
        let cap = self.segment_cap.unwrap_or(usize::MAX);
        if size == 0 || size > segment_limit(to).min(cap) {
            return (to, count, size, len);
        }
        for &(peer, n) in &waiting[1..] {
            if count == max_segments || peer != to || n > size || n == 0 {
                break;
            }
            if len + n > DatagramContext::MAX_DATAGRAM {
                break;
            }
            count += 1;
            len += n;
            if n < size {
                break;
            }
        }
        (to, count, size, len)
    }

    /// Sends the next `count` datagrams one call each; false if the socket
    /// filled up first.
    fn send_singly(&mut self, io: &UdpIo, count: usize) -> bool {
        for _ in 0..count {
            let (to, len) = self.datagrams[self.sent_datagrams];
            let data = &self.bytes[self.sent_bytes..self.sent_bytes + len];
            self.counters.calls += 1;
            match io.send(data, to, None) {
                Ok(()) => self.sent(1, len),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) => self.refused(to, e, len),
            }
        }
        true
    }

    fn sent(&mut self, count: usize, len: usize) {
        self.sent_datagrams += count;
        self.sent_bytes += len;
        self.counters.sent += count as u64;
        self.counters.sent_bytes += len as u64;
    }

    fn refused(&mut self, to: SocketAddr, error: io::Error, len: usize) {
        self.sent_datagrams += 1;
        self.sent_bytes += len;
        self.counters.failed += 1;
        if self.failed.len() < FAILURES_KEPT {
            self.failed.push((to, error));
        } else {
            tracing::debug!(%to, error = %error, "udp send failed (not reported: too many at once)");
        }
    }

    /// Forgets what has left.
    fn compact(&mut self) {
        if self.sent_datagrams == self.datagrams.len() {
            self.bytes.clear();
            self.datagrams.clear();
            // A burst's buffer is not kept for ever.
            self.bytes.shrink_to(KEEP_BYTES);
        } else {
            self.bytes.drain(..self.sent_bytes);
            self.datagrams.drain(..self.sent_datagrams);
        }
        self.sent_datagrams = 0;
        self.sent_bytes = 0;
    }
}

/// The largest datagram sent in a segmented batch: what one Ethernet frame
/// (MTU 1 500) carries unfragmented. The kernel refuses a segment larger
/// than the path's MTU (each refusal costs a failed call), and larger
/// datagrams would be fragmented anyway, so they leave on their own.
fn segment_limit(to: SocketAddr) -> usize {
    match to {
        SocketAddr::V4(_) => 1500 - 20 - 8,
        SocketAddr::V6(_) => 1500 - 40 - 8,
    }
}
