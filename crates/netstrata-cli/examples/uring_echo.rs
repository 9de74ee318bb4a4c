//! A floor for an io_uring driver: `mio_echo`'s plain mode on one thread,
//! written against io_uring directly, so the echo comparison can tell how
//! much less CPU per message a completion-based loop needs than mio's
//! readiness loop for the same work (every byte read is written back).
//!
//! One ring and one thread:
//! - one multishot accept on the listener, armed again when it ends;
//! - one multishot receive per connection drawing from a ring of provided
//!   buffers; each completion's bytes are copied to the connection's
//!   pending output and the buffer goes straight back to the ring (so
//!   buffers are only out between two turns of the loop). Armed again when
//!   it ends without an error (`ENOBUFS` included: buffers return each turn);
//! - at most one send in flight per connection, of everything pending when
//!   it is prepared; a partial send leaves the rest in front of what came
//!   since, sent next;
//! - each turn reaps every completion, then queues the new submissions and
//!   hands them to the kernel with one `io_uring_enter` that also waits
//!   for the next completion.
//!
//! A connection closes once the peer has ended and all it is owed was sent,
//! or after an error, and then only once no operation of it is in flight.
//!
//! Linux only (5.19 for multishot accept and buffer rings, 6.0 for multishot
//! receive, 6.1 for deferred task running); elsewhere it says so and exits.
//!
//! `cargo run --release -p netstrata-cli --example uring_echo -- 127.0.0.1:7002`

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("linux only");
    std::process::exit(1);
}

#[cfg(target_os = "linux")]
fn main() -> std::io::Result<()> {
    linux::main()
}

#[cfg(target_os = "linux")]
#[path = "common/buf_ring.rs"]
mod buf_ring;

#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::mem;
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

    use io_uring::types::Fd;
    use io_uring::{IoUring, cqueue, opcode, squeue};
    use netstrata_reactor::SocketOptions;

    use crate::buf_ring::BufRing;

    /// Submission queue entries; the completion queue has twice as many.
    const RING_ENTRIES: u32 = 4096;
    /// The provided-buffer ring's group id.
    const GROUP: u16 = 0;

    pub(super) fn main() -> io::Result<()> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let addr = match args.as_slice() {
            [] => "127.0.0.1:7002",
            [addr] => addr.as_str(),
            _ => return Err(io::Error::other("usage: uring_echo ADDR")),
        };
        let addr: SocketAddr = addr.parse().map_err(io::Error::other)?;
        let listener = SocketOptions::new().listener(addr)?;
        let mut echo = Echo::new(listener)?;
        println!("uring echo listening on {}", echo.listener.local_addr()?);
        let err = echo.run();
        // Operations may still be in flight on its buffers: leave them
        // allocated until the process ends instead of freeing them here.
        mem::forget(echo);
        Err(err)
    }

    /// What a completion is the end (or a part) of.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Op {
        Accept,
        Receive,
        Send,
        Cancel,
    }

    /// An operation's user data: the connection's slot and id (a slot is
    /// used again; its id is not, so a late completion finds no one), and
    /// the operation.
    fn user_data(op: Op, slot: usize, id: u32) -> u64 {
        (u64::from(id) << 32) | ((slot as u64) << 2) | op as u64
    }

    fn decode(user_data: u64) -> (Op, usize, u32) {
        let op = match user_data & 3 {
            0 => Op::Accept,
            1 => Op::Receive,
            2 => Op::Send,
            _ => Op::Cancel,
        };
        let slot = ((user_data & 0xffff_ffff) >> 2) as usize;
        (op, slot, (user_data >> 32) as u32)
    }

    /// A connection's multishot receive.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Receive {
        /// In flight.
        Armed,
        /// Ended without an error (no buffers, or the kernel's choice):
        /// to arm again.
        Stopped,
        /// In flight, cancelled: the connection failed.
        Cancelling,
        /// Ended for good: the peer ended its stream, or an error.
        Ended,
    }

    struct PeerConn {
        stream: TcpStream,
        id: u32,
        /// Bytes received and not yet handed to a send.
        pending: Vec<u8>,
        /// The bytes of the send in flight, or left by a partial one.
        sending: Vec<u8>,
        send_in_flight: bool,
        receive: Receive,
        /// A receive or send failed: nothing more is sent.
        failed: bool,
    }

    impl PeerConn {
        /// Whether the descriptor can close: nothing of it is in flight,
        /// and either it failed or the peer ended and has all it is owed.
        fn is_done(&self) -> bool {
            self.receive == Receive::Ended
                && !self.send_in_flight
                && (self.failed || (self.sending.is_empty() && self.pending.is_empty()))
        }
    }

    struct Echo {
        ring: IoUring,
        listener: TcpListener,
        state: State,
    }

    /// Everything but the ring, so completions can be handled while the
    /// completion queue is borrowed.
    struct State {
        buffers: BufRing,
        conns: Vec<Option<PeerConn>>,
        free: Vec<usize>,
        next_id: u32,
        /// Slots whose connection had completions this turn.
        touched: Vec<usize>,
        accepting: bool,
    }

    impl Echo {
        fn new(listener: TcpListener) -> io::Result<Self> {
            let ring = IoUring::builder()
                .setup_single_issuer()
                // Completions are run when we wait for them, not by
                // interrupting the loop.
                .setup_defer_taskrun()
                .build(RING_ENTRIES)?;
            let buffers = BufRing::register(&ring, GROUP)?;
            Ok(Self {
                ring,
                listener,
                state: State {
                    buffers,
                    conns: Vec::new(),
                    free: Vec::new(),
                    next_id: 0,
                    touched: Vec::new(),
                    accepting: false,
                },
            })
        }

        /// Runs the loop; returns only its error.
        fn run(&mut self) -> io::Error {
            let listener = self.listener.as_raw_fd();
            loop {
                for cqe in self.ring.completion() {
                    self.state.complete(&cqe);
                }
                if let Err(e) = self.state.queue(&mut self.ring, listener) {
                    return e;
                }
                match self.ring.submit_and_wait(1) {
                    Ok(_) => {}
                    // Interrupted, or completions to reap first.
                    Err(e)
                        if matches!(
                            e.raw_os_error(),
                            Some(libc::EINTR | libc::EAGAIN | libc::EBUSY)
                        ) => {}
                    Err(e) => return e,
                }
            }
        }
    }

    impl State {
        fn complete(&mut self, cqe: &cqueue::Entry) {
            let (op, slot, id) = decode(cqe.user_data());
            let (result, flags) = (cqe.result(), cqe.flags());
            match op {
                Op::Accept => {
                    if !cqueue::more(flags) {
                        self.accepting = false;
                    }
                    if result >= 0 {
                        self.accept(result);
                    }
                }
                Op::Receive => self.received(slot, id, result, flags),
                Op::Send => self.sent(slot, id, result),
                // The receive it cancelled completes too.
                Op::Cancel => {}
            }
        }

        fn accept(&mut self, fd: RawFd) {
            let stream = owned_stream(fd);
            if stream.set_nodelay(true).is_err() {
                return;
            }
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1);
            let conn = Some(PeerConn {
                stream,
                id,
                pending: Vec::new(),
                sending: Vec::new(),
                send_in_flight: false,
                receive: Receive::Stopped,
                failed: false,
            });
            let slot = match self.free.pop() {
                Some(slot) => {
                    self.conns[slot] = conn;
                    slot
                }
                None => {
                    self.conns.push(conn);
                    self.conns.len() - 1
                }
            };
            self.touched.push(slot);
        }

        fn received(&mut self, slot: usize, id: u32, result: i32, flags: u32) {
            let mut conn = conn(&mut self.conns, slot, id);
            if let Some(b) = cqueue::buffer_select(flags) {
                let len = usize::try_from(result).unwrap_or(0);
                let pending = conn.as_deref_mut().filter(|c| !c.failed);
                let copy = |bytes: &[u8]| {
                    if let Some(conn) = pending {
                        conn.pending.extend_from_slice(bytes);
                    }
                };
                // SAFETY: `b` is the buffer of this completion of a receive
                // from `GROUP`, and each completion is handled once.
                unsafe { self.buffers.take(b, len, copy) };
            }
            let Some(conn) = conn else {
                return;
            };
            if result < 0 && result != -libc::ENOBUFS {
                conn.failed = true;
            }
            if !cqueue::more(flags) {
                // Ended without an error, and not by the peer: arm again.
                let stopped = conn.receive == Receive::Armed && !conn.failed && result != 0;
                conn.receive = if stopped {
                    Receive::Stopped
                } else {
                    Receive::Ended
                };
            }
            self.touched.push(slot);
        }

        fn sent(&mut self, slot: usize, id: u32, result: i32) {
            let Some(conn) = conn(&mut self.conns, slot, id) else {
                return;
            };
            conn.send_in_flight = false;
            match usize::try_from(result) {
                Ok(len) if len > 0 => {
                    conn.sending.drain(..len.min(conn.sending.len()));
                }
                _ => conn.failed = true,
            }
            self.touched.push(slot);
        }

        /// Hands the buffers given back to the kernel and queues this
        /// turn's submissions: the accept if it ended, and for each
        /// connection with completions a send, a receive or a cancel;
        /// closes the connections that are done.
        fn queue(&mut self, ring: &mut IoUring, listener: RawFd) -> io::Result<()> {
            self.buffers.publish();
            if !self.accepting {
                push_accept(ring, listener)?;
                self.accepting = true;
            }
            for i in 0..self.touched.len() {
                let slot = self.touched[i];
                let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
                    continue;
                };
                if conn.failed {
                    match conn.receive {
                        Receive::Armed => {
                            push_cancel(ring, user_data(Op::Receive, slot, conn.id))?;
                            conn.receive = Receive::Cancelling;
                        }
                        Receive::Stopped => conn.receive = Receive::Ended,
                        Receive::Cancelling | Receive::Ended => {}
                    }
                } else {
                    if !conn.send_in_flight {
                        start_send(ring, conn, slot)?;
                    }
                    if conn.receive == Receive::Stopped {
                        arm_receive(ring, conn, slot)?;
                    }
                }
                if conn.is_done() {
                    // Dropping the stream closes the descriptor.
                    self.conns[slot] = None;
                    self.free.push(slot);
                }
            }
            self.touched.clear();
            Ok(())
        }
    }

    /// The connection in `slot` if it is still the one with `id`.
    fn conn(conns: &mut [Option<PeerConn>], slot: usize, id: u32) -> Option<&mut PeerConn> {
        conns
            .get_mut(slot)
            .and_then(Option::as_mut)
            .filter(|conn| conn.id == id)
    }

    /// The stream of a descriptor that accept just returned.
    fn owned_stream(fd: RawFd) -> TcpStream {
        // SAFETY: `fd` is a new descriptor the kernel created for this
        // accept completion: open, a TCP stream, and owned by nobody else.
        TcpStream::from(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    fn push_accept(ring: &mut IoUring, listener: RawFd) -> io::Result<()> {
        let entry = opcode::AcceptMulti::new(Fd(listener))
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(user_data(Op::Accept, 0, 0));
        // SAFETY: the accept names no memory (no peer address asked for);
        // the listener outlives the ring (the echo is never dropped).
        unsafe { push(ring, &entry) }
    }

    /// Arms `conn`'s multishot receive (it has none in flight).
    fn arm_receive(ring: &mut IoUring, conn: &mut PeerConn, slot: usize) -> io::Result<()> {
        let entry = opcode::RecvMulti::new(Fd(conn.stream.as_raw_fd()), GROUP)
            .build()
            .user_data(user_data(Op::Receive, slot, conn.id));
        // SAFETY: the receive writes only into buffers the kernel takes
        // from the registered ring, which are never freed (`BufRing`). The
        // descriptor is closed only once the receive has ended
        // (`PeerConn::is_done`).
        unsafe { push(ring, &entry)? };
        conn.receive = Receive::Armed;
        Ok(())
    }

    /// Sends all `conn` has pending, after what a partial send left (it has
    /// no send in flight).
    fn start_send(ring: &mut IoUring, conn: &mut PeerConn, slot: usize) -> io::Result<()> {
        if conn.sending.is_empty() {
            mem::swap(&mut conn.sending, &mut conn.pending);
        } else {
            conn.sending.append(&mut conn.pending);
        }
        if conn.sending.is_empty() {
            return Ok(());
        }
        let len = u32::try_from(conn.sending.len()).unwrap_or(u32::MAX);
        let entry = opcode::Send::new(Fd(conn.stream.as_raw_fd()), conn.sending.as_ptr(), len)
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(user_data(Op::Send, slot, conn.id));
        // SAFETY: the send reads `conn.sending`, which is changed only here
        // and in `State::sent`, and dropped only with the connection, none
        // of which happens while `send_in_flight` is set (from here to the
        // send's completion); its heap allocation stays put when the
        // connection moves in `conns`. The descriptor is closed only after
        // the completion (`PeerConn::is_done`).
        unsafe { push(ring, &entry)? };
        conn.send_in_flight = true;
        Ok(())
    }

    fn push_cancel(ring: &mut IoUring, target: u64) -> io::Result<()> {
        let entry = opcode::AsyncCancel::new(target)
            .build()
            .user_data(user_data(Op::Cancel, 0, 0));
        // SAFETY: a cancel names no memory, only the user data of the
        // operation to cancel (none if it has just ended).
        unsafe { push(ring, &entry) }
    }

    /// Queues `entry`, first submitting what is queued if the queue is full.
    ///
    /// # Safety
    ///
    /// The memory and descriptors `entry` names stay valid until its last
    /// completion.
    unsafe fn push(ring: &mut IoUring, entry: &squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: the caller's promise.
            if unsafe { ring.submission().push(entry) }.is_ok() {
                return Ok(());
            }
            ring.submit()?;
        }
    }
}
