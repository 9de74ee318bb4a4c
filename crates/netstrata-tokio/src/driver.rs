//! What both streams share: a [`Connection`] driven by a tokio byte stream.
//! Transport reads go up the stack, the stack's wire bytes go out, its
//! deadline is a tokio timer, and the tasks reading and writing hear of
//! what the other side moved.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker, ready};
use std::time::Instant;

use bytes::{BufMut, Bytes};
use netstrata_core::{Codec, Connection, Layer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Sleep;
use tokio_util::io::poll_read_buf;

use crate::error::to_io;

/// The most a transport read asks for at once.
const READ_CHUNK: usize = 64 * 1024;

/// A connection (stack and codec) over a tokio transport.
pub(crate) struct Driver<IO, S: Layer, C: Codec> {
    pub(crate) io: IO,
    pub(crate) conn: Connection<S, C>,
    /// The time of this poll: read once per poll, given to the stack.
    now: Instant,
    /// The transport reached its end (and the stack was told).
    io_eof: bool,
    /// The transport's write half was shut down.
    io_shut: bool,
    /// The timer armed for the stack's next deadline.
    sleep: Option<(Instant, Pin<Box<Sleep>>)>,
    /// The tasks waiting to read and to write (two with `tokio::io::split`).
    tasks: Arc<Tasks>,
    /// Wakes both of them: the waker the transport and the timer are
    /// polled with (the layers hold one that also marks their wake).
    io_waker: Waker,
    /// Bytes moved through the transport so far, in and out, and the
    /// stack's deadlines run: what one side did that the other side's task
    /// must hear of.
    moved: (u64, u64),
    deadlines_run: u64,
}

/// The tasks waiting on a stream: one reading, one writing. What the
/// stream waits on (the transport, its timer, the stack's layers) holds a
/// waker that wakes both: a transport keeps one waker per direction and a
/// timer one in all, and the half that polled them last need not be the
/// half that waits (a read half that polled the transport's write side on
/// its way to the end of the stream, a write half's flush that polled the
/// timer of a read paused by a shaper). Each side also wakes the other
/// when it moved bytes the other waits for.
#[derive(Debug, Default)]
struct Tasks {
    reader: Mutex<Option<Waker>>,
    writer: Mutex<Option<Waker>>,
    /// A layer woke us (a shaper's limit changed from another thread): the
    /// connection must be told before its next pass.
    layers_woke: AtomicBool,
}

impl Tasks {
    /// The slot of the task waiting on `side`, and the other side's.
    fn slots(&self, side: Side) -> (&Mutex<Option<Waker>>, &Mutex<Option<Waker>>) {
        match side {
            Side::Read => (&self.reader, &self.writer),
            Side::Write => (&self.writer, &self.reader),
        }
    }

    fn set(slot: &Mutex<Option<Waker>>, waker: &Waker) {
        let mut slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
        if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *slot = Some(waker.clone());
        }
    }

    fn wake(slot: &Mutex<Option<Waker>>) {
        let waker = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl Tasks {
    fn wake_both(&self) {
        Self::wake(&self.reader);
        Self::wake(&self.writer);
    }
}

/// The waker the stack's layers hold: it marks that a layer woke.
impl Wake for Tasks {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.layers_woke.store(true, Ordering::Release);
        self.wake_both();
    }
}

/// The waker the transport and the timer are polled with.
struct IoWake(Arc<Tasks>);

impl Wake for IoWake {
    fn wake(self: Arc<Self>) {
        self.0.wake_both();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.wake_both();
    }
}

/// Which side of the stream a poll serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Read,
    Write,
}

impl<IO, S: Layer, C: Codec> std::fmt::Debug for Driver<IO, S, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("state", &self.conn.state())
            .field("io_eof", &self.io_eof)
            .field("io_shut", &self.io_shut)
            .finish_non_exhaustive()
    }
}

impl<IO, S, C> Driver<IO, S, C>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    S: Layer + Unpin,
    C: Codec + Unpin,
{
    pub(crate) fn new(io: IO, mut conn: Connection<S, C>) -> Self {
        let tasks = Arc::new(Tasks::default());
        conn.set_waker(Waker::from(Arc::clone(&tasks)));
        let io_waker = Waker::from(Arc::new(IoWake(Arc::clone(&tasks))));
        Self {
            io,
            conn,
            now: Instant::now(),
            io_eof: false,
            io_shut: false,
            sleep: None,
            tasks,
            io_waker,
            moved: (0, 0),
            deadlines_run: 0,
        }
    }

    /// Runs `poll` for `side` as this task: notes it as the task waiting
    /// on that side, tells the connection if a layer woke it, and, if the
    /// poll moved bytes through the transport or ran a deadline of the
    /// stack, wakes the other side's task, which may wait for them (bytes
    /// this poll read, room it made, a shaper's budget back): neither the
    /// transport nor the timer, dropped when its deadline ran, will tell it.
    pub(crate) fn on_side<T>(
        &mut self,
        cx: &mut Context<'_>,
        side: Side,
        poll: impl FnOnce(&mut Self) -> Poll<T>,
    ) -> Poll<T> {
        Tasks::set(self.tasks.slots(side).0, cx.waker());
        self.now = Instant::now();
        if self.tasks.layers_woke.swap(false, Ordering::Acquire) {
            self.conn.handle_wake();
        }
        let before = (self.moved, self.deadlines_run);
        let result = poll(self);
        if (self.moved, self.deadlines_run) != before {
            Tasks::wake(self.tasks.slots(side).1);
        }
        result
    }

    /// Runs the stack's deadline if it has passed, else arms a timer for it.
    /// `Ok(true)` if a deadline had passed and ran: the stack may have more
    /// to send or read now.
    ///
    /// The timer wakes the stream's tasks (see [`Tasks`]).
    pub(crate) fn poll_deadline(&mut self) -> io::Result<bool> {
        let mut ran = false;
        loop {
            let Some(at) = self.conn.poll_timeout() else {
                self.sleep = None;
                return Ok(ran);
            };
            if at > self.now {
                let sleep = match &mut self.sleep {
                    Some((armed, sleep)) if *armed == at => sleep,
                    slot => {
                        let deadline = tokio::time::Instant::from_std(at);
                        &mut slot
                            .insert((at, Box::pin(tokio::time::sleep_until(deadline))))
                            .1
                    }
                };
                if sleep
                    .as_mut()
                    .poll(&mut Context::from_waker(&self.io_waker))
                    .is_pending()
                {
                    return Ok(ran);
                }
            }
            self.sleep = None;
            self.now = Instant::now();
            self.conn.handle_timeout(self.now).map_err(to_io)?;
            self.deadlines_run += 1;
            ran = true;
        }
    }

    /// Writes the wire bytes the stack has for the transport. `Ready` once
    /// it has none left, `Pending` while the transport takes no more.
    pub(crate) fn poll_transmit(&mut self) -> Poll<io::Result<()>> {
        let cx = &mut Context::from_waker(&self.io_waker);
        loop {
            let out = match self.conn.poll_transmit(self.now) {
                Ok(Some(out)) => out,
                Ok(None) => return Poll::Ready(Ok(())),
                Err(e) => return Poll::Ready(Err(to_io(e))),
            };
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, out))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.conn.advance_transmit(n);
            self.moved.1 += n as u64;
        }
    }

    /// Starts what the stack has for the transport on its way without
    /// waiting for it; only an error stops the caller.
    pub(crate) fn start_transmit(&mut self) -> io::Result<()> {
        match self.poll_transmit() {
            Poll::Ready(Err(e)) => Err(e),
            _ => Ok(()),
        }
    }

    /// Reads the transport once into the stack, if the stack has room.
    /// `Ready(Ok(true))` if something happened (bytes, or the end).
    fn poll_input(&mut self) -> Poll<io::Result<bool>> {
        if self.io_eof || !self.conn.wants_read() {
            return Poll::Ready(Ok(false));
        }
        let room = self.conn.read_room().min(READ_CHUNK);
        if room == 0 {
            return Poll::Ready(Ok(false));
        }
        // Straight into the connection's input buffer: no copy of ours.
        let (io, now) = (&mut self.io, self.now);
        let cx = &mut Context::from_waker(&self.io_waker);
        let read = self.conn.read_with(now, |buf, _| {
            buf.reserve(room);
            let mut limited = (&mut *buf).limit(room);
            match poll_read_buf(Pin::new(io), cx, &mut limited) {
                Poll::Ready(Ok(_)) => Ok(()),
                Poll::Ready(Err(e)) => Err(Some(e)),
                Poll::Pending => Err(None),
            }
        });
        // An error of the stack's stays with the connection: the next
        // `poll_message` hands over the messages decoded before it, then it.
        let Ok(read) = read else {
            return Poll::Ready(Ok(true));
        };
        match read {
            Ok(0) => {
                self.io_eof = true;
                self.moved.0 += 1;
                let _ = self.conn.handle_input_eof(now);
            }
            Ok(n) => self.moved.0 += n as u64,
            Err(Some(e)) => return Poll::Ready(Err(e)),
            Err(None) => return Poll::Pending,
        }
        Poll::Ready(Ok(true))
    }

    /// The next message from the peer, reading the transport until one is
    /// whole; `None` once the peer's stream has ended cleanly. A message is
    /// taken from the connection only when it is returned, so dropping the
    /// poll loses nothing.
    ///
    /// When the stack fails on what the peer sent, what it still owes the
    /// peer (a TLS alert saying why) is written first, as far as the
    /// transport takes it now, as the reactor does: the peer learns why
    /// instead of seeing a truncated stream.
    pub(crate) fn poll_message(&mut self) -> Poll<io::Result<Option<Bytes>>> {
        let result = self.poll_message_inner();
        if let Poll::Ready(Err(_)) = &result {
            let _ = self.poll_transmit();
        }
        result
    }

    fn poll_message_inner(&mut self) -> Poll<io::Result<Option<Bytes>>> {
        loop {
            self.poll_deadline()?;
            // What the stack owes the peer (handshake messages, answers)
            // goes out before waiting for more of it; its error waits until
            // the messages decoded before it are taken.
            let transmitted = self.start_transmit();
            if let Some(message) = self.conn.poll_message(self.now).map_err(to_io)? {
                return Poll::Ready(Ok(Some(message)));
            }
            transmitted?;
            if self.conn.is_read_closed() {
                return Poll::Ready(Ok(None));
            }
            match self.poll_input()? {
                Poll::Ready(true) => continue,
                Poll::Ready(false) if self.io_eof => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the transport ended and the stack did not",
                    )));
                }
                // Paused by a layer (a shaper) or a full stack, or waiting
                // for the transport: the layers' waker, the transport or the
                // timer wakes the task. The transmit above may have set a
                // new deadline: arm its timer first.
                _ if self.poll_deadline()? => continue,
                _ => return Poll::Pending,
            }
        }
    }

    /// How many more bytes the stack's send buffer takes now, waiting
    /// (while the transport drains it) until that is at least one.
    pub(crate) fn poll_send_room(&mut self) -> Poll<io::Result<usize>> {
        self.poll_deadline()?;
        loop {
            let room = self
                .conn
                .config()
                .send_buffer()
                .saturating_sub(self.conn.send_queued());
            if room > 0 {
                return Poll::Ready(Ok(room));
            }
            ready!(self.poll_drain())?;
        }
    }

    /// Drives the stack until the transport has taken everything it had
    /// to send, reading input as the handshake needs.
    fn poll_drain(&mut self) -> Poll<io::Result<()>> {
        self.poll_until(|conn| conn.queued() == 0)
    }

    /// Runs deadlines, transmits and reads input until the transport has
    /// taken what the stack had for it and `done` holds. While a layer
    /// holds bytes for its peer (a handshake under way) or waits for a
    /// deadline (a shaper), the peer's answer or the timer lets it go on.
    fn poll_until(&mut self, done: impl Fn(&Connection<S, C>) -> bool) -> Poll<io::Result<()>> {
        loop {
            self.poll_deadline()?;
            let sent = self.poll_transmit()?;
            if sent.is_ready() && done(&self.conn) {
                return Poll::Ready(Ok(()));
            }
            if self.poll_input()? == Poll::Ready(true) {
                continue;
            }
            // Sending or reading may have set a new deadline (a shaper
            // out of budget after a grant): arm its timer before waiting.
            if !self.poll_deadline()? {
                return Poll::Pending;
            }
        }
    }

    /// Everything sent is through the stack and taken by the transport,
    /// and the transport flushed.
    pub(crate) fn poll_flush(&mut self) -> Poll<io::Result<()>> {
        ready!(self.poll_drain())?;
        let cx = &mut Context::from_waker(&self.io_waker);
        Pin::new(&mut self.io).poll_flush(cx)
    }

    /// Ends the stack's stream (TLS `close_notify`, the end of a zstd
    /// frame), writes it, then shuts the transport's write half.
    pub(crate) fn poll_shutdown(&mut self) -> Poll<io::Result<()>> {
        self.conn.close();
        ready!(self.poll_until(Connection::is_write_closed))?;
        if !self.io_shut {
            let cx = &mut Context::from_waker(&self.io_waker);
            ready!(Pin::new(&mut self.io).poll_shutdown(cx))?;
            self.io_shut = true;
        }
        Poll::Ready(Ok(()))
    }
}
