//! [`LayeredStream`]: a stack of netstrata layers over a tokio byte stream.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker, ready};
use std::time::Instant;

use bytes::{Buf, Bytes};
use netstrata_core::{Connection, ConnectionConfig, Layer, RawCodec};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use crate::error::to_io;

/// The most a transport read asks for at once.
const READ_CHUNK: usize = 16 * 1024;

/// A stack of netstrata layers (`S`: a [`Stack`](netstrata_core::Stack) or a
/// [`DynStack`](netstrata_core::DynStack)) over any tokio byte stream `IO`:
/// what is written to it goes down the stack onto `IO`; what is read from it
/// came up the stack from `IO`. TLS, zstd, shaping — any layer — on tokio,
/// under hyper or a protocol of one's own.
///
/// - **Bounded.** Writes are taken while the stack's send buffer has room
///   (1 MiB by default, [`ConnectionConfig`]); then `poll_write` waits for
///   the transport. Reads take from the transport only what the stack has
///   room for.
/// - **Deadlines.** A layer's deadline (a TLS handshake timeout, a shaper's
///   next budget) arms a tokio timer; a layer that wakes from another thread
///   (a shaper whose limit changed) wakes the task.
/// - **Shutdown.** `poll_shutdown` ends the stack's stream (TLS
///   `close_notify`, the end of a zstd frame), writes it, then shuts the
///   transport's write half.
/// - **Errors** are `io::Error`s whose inner error ([`io::Error::get_ref`])
///   is the [`netstrata_core::Error`], and whose
///   [`source`](std::error::Error::source) is the layer's own error; kinds:
///   a cut stream `UnexpectedEof`, a peer's bad bytes `InvalidData`, a
///   deadline `TimedOut`, a local memory limit `QuotaExceeded`.
///
/// The handshake of a layer such as TLS runs as the stream is read: a
/// client writes, flushes, then reads the answer, and the reads drive it.
/// Bytes written before the handshake completes are held by the layer and
/// leave when it does.
///
/// With [`tokio::io::split`], reading and writing can run in two tasks.
pub struct LayeredStream<IO, S: Layer> {
    io: IO,
    conn: Connection<S, RawCodec>,
    /// Bytes that came up the stack and were not read yet.
    pending: Bytes,
    /// Where transport reads land before they go up the stack.
    buf: Box<[u8]>,
    /// The transport reached its end (and the stack was told).
    io_eof: bool,
    /// The transport's write half was shut down.
    io_shut: bool,
    /// The timer armed for the stack's next deadline.
    sleep: Option<(Instant, Pin<Box<Sleep>>)>,
    /// The tasks waiting to read and to write (two with `tokio::io::split`).
    tasks: Arc<Tasks>,
    /// Wakes both of them: the waker the transport, the timer and the
    /// layers are given.
    waker: Waker,
    /// Bytes moved through the transport so far, in and out: what one side
    /// did that the other side's task must hear of.
    moved: (u64, u64),
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

impl Wake for Tasks {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        Self::wake(&self.reader);
        Self::wake(&self.writer);
    }
}

/// Which side of the stream a poll serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Read,
    Write,
}

impl<IO, S: Layer> std::fmt::Debug for LayeredStream<IO, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LayeredStream")
            .field("state", &self.conn.state())
            .field("pending", &self.pending.len())
            .field("io_eof", &self.io_eof)
            .field("io_shut", &self.io_shut)
            .finish_non_exhaustive()
    }
}

impl<IO, S> LayeredStream<IO, S>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    S: Layer + Unpin,
{
    /// `stack` over `io`, with the default buffer bounds.
    pub fn new(io: IO, stack: S) -> Self {
        Self::with_config(io, stack, ConnectionConfig::new())
    }

    /// `stack` over `io`, with `config`'s buffer bounds.
    pub fn with_config(io: IO, stack: S, config: ConnectionConfig) -> Self {
        let tasks = Arc::new(Tasks::default());
        let waker = Waker::from(Arc::clone(&tasks));
        let mut conn = Connection::with_config(stack, RawCodec::new(), config);
        conn.set_waker(waker.clone());
        Self {
            io,
            conn,
            pending: Bytes::new(),
            buf: vec![0; READ_CHUNK].into_boxed_slice(),
            io_eof: false,
            io_shut: false,
            sleep: None,
            tasks,
            waker,
            moved: (0, 0),
        }
    }

    /// The stack, e.g. to read what TLS negotiated.
    pub fn stack(&self) -> &S {
        self.conn.stack()
    }

    /// The stack, mutably (to change a layer's settings).
    pub fn stack_mut(&mut self) -> &mut S {
        self.conn.stack_mut()
    }

    /// The connection's figures: bytes per layer each way.
    pub fn stats(&self) -> netstrata_core::ConnectionStats {
        self.conn.stats()
    }

    /// The transport.
    pub fn get_ref(&self) -> &IO {
        &self.io
    }

    /// The transport and the bytes already read from the stack and not yet
    /// read from this stream, for going on without the stack.
    pub fn into_parts(self) -> (IO, Bytes) {
        (self.io, self.pending)
    }

    /// Runs `poll` for `side` as this task: notes it as the task waiting
    /// on that side, and, if the poll moved bytes through the transport,
    /// wakes the other side's task, which may wait for them (bytes this
    /// poll read, room this poll made): the transport will not tell it.
    fn on_side<T>(
        &mut self,
        cx: &mut Context<'_>,
        side: Side,
        poll: impl FnOnce(&mut Self) -> Poll<T>,
    ) -> Poll<T> {
        Tasks::set(self.tasks.slots(side).0, cx.waker());
        let before = self.moved;
        let result = poll(self);
        if self.moved != before {
            Tasks::wake(self.tasks.slots(side).1);
        }
        result
    }

    /// Runs the stack's deadline if it has passed, else arms a timer for it
    /// (which wakes the stream's tasks). `Ok(true)` if a deadline had
    /// passed and ran: the stack may have more to send or read now.
    fn poll_deadline(&mut self) -> io::Result<bool> {
        let mut ran = false;
        loop {
            let Some(at) = self.conn.poll_timeout() else {
                self.sleep = None;
                return Ok(ran);
            };
            let now = Instant::now();
            if at > now {
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
                    .poll(&mut Context::from_waker(&self.waker))
                    .is_pending()
                {
                    return Ok(ran);
                }
            }
            self.sleep = None;
            self.conn.handle_timeout(Instant::now()).map_err(to_io)?;
            ran = true;
        }
    }

    /// Writes the wire bytes the stack has for the transport. `Ready` once
    /// it has none left, `Pending` while the transport takes no more.
    fn poll_transmit(&mut self) -> Poll<io::Result<()>> {
        let cx = &mut Context::from_waker(&self.waker);
        loop {
            let out = match self.conn.poll_transmit(Instant::now()) {
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

    /// Reads the transport once into the stack, if the stack has room.
    /// `Ready(Ok(true))` if something happened (bytes, or the end).
    fn poll_input(&mut self) -> Poll<io::Result<bool>> {
        if self.io_eof || !self.conn.wants_read() {
            return Poll::Ready(Ok(false));
        }
        let room = self.conn.read_room().min(self.buf.len());
        if room == 0 {
            return Poll::Ready(Ok(false));
        }
        let mut buf = ReadBuf::new(&mut self.buf[..room]);
        let cx = &mut Context::from_waker(&self.waker);
        ready!(Pin::new(&mut self.io).poll_read(cx, &mut buf))?;
        let now = Instant::now();
        let n = buf.filled().len();
        self.moved.0 += n as u64 + 1;
        if n == 0 {
            self.io_eof = true;
            self.conn.handle_input_eof(now).map_err(to_io)?;
        } else {
            let taken = self.conn.handle_input(now, &self.buf[..n]).map_err(to_io)?;
            debug_assert_eq!(taken, n, "read no more than the room");
        }
        Poll::Ready(Ok(true))
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
    fn poll_until(
        &mut self,
        done: impl Fn(&Connection<S, RawCodec>) -> bool,
    ) -> Poll<io::Result<()>> {
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
}

impl<IO, S> AsyncRead for LayeredStream<IO, S>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    S: Layer + Unpin,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.get_mut()
            .on_side(cx, Side::Read, |this| this.poll_read_inner(buf))
    }
}

impl<IO, S> LayeredStream<IO, S>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    S: Layer + Unpin,
{
    fn poll_read_inner(&mut self, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self;
        loop {
            if !this.pending.is_empty() {
                let n = this.pending.len().min(buf.remaining());
                buf.put_slice(&this.pending[..n]);
                this.pending.advance(n);
                return Poll::Ready(Ok(()));
            }
            this.poll_deadline()?;
            // What the stack owes the peer (handshake messages, answers)
            // goes out before waiting for more of it.
            if let Poll::Ready(Err(e)) = this.poll_transmit() {
                return Poll::Ready(Err(e));
            }
            match this.conn.poll_message(Instant::now()) {
                Ok(Some(bytes)) => {
                    this.pending = bytes;
                    continue;
                }
                Ok(None) => {}
                Err(e) => return Poll::Ready(Err(to_io(e))),
            }
            if this.conn.is_read_closed() {
                return Poll::Ready(Ok(()));
            }
            match this.poll_input()? {
                Poll::Ready(true) => continue,
                Poll::Ready(false) if this.io_eof => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the transport ended and the stack did not",
                    )));
                }
                // Paused by a layer (a shaper) or a full stack, or waiting
                // for the transport: the layers' waker, the transport or the
                // timer wakes the task. The transmit above may have set a
                // new deadline: arm its timer first.
                _ if this.poll_deadline()? => continue,
                _ => return Poll::Pending,
            }
        }
    }
}

impl<IO, S> AsyncWrite for LayeredStream<IO, S>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    S: Layer + Unpin,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .on_side(cx, Side::Write, |this| this.poll_write_inner(data))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut()
            .on_side(cx, Side::Write, Self::poll_flush_inner)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut()
            .on_side(cx, Side::Write, Self::poll_shutdown_inner)
    }
}

impl<IO, S> LayeredStream<IO, S>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    S: Layer + Unpin,
{
    fn poll_write_inner(&mut self, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self;
        this.poll_deadline()?;
        loop {
            let room = this
                .conn
                .config()
                .send_buffer()
                .saturating_sub(this.conn.send_queued());
            if room > 0 || data.is_empty() {
                let n = data.len().min(room);
                if n > 0 {
                    this.conn.send(&data[..n]).map_err(to_io)?;
                }
                // Start it on its way; the rest goes on the next call.
                if let Poll::Ready(Err(e)) = this.poll_transmit() {
                    return Poll::Ready(Err(e));
                }
                return Poll::Ready(Ok(n));
            }
            // The send buffer is full: wait until the transport takes some.
            ready!(this.poll_drain())?;
        }
    }

    fn poll_flush_inner(&mut self) -> Poll<io::Result<()>> {
        ready!(self.poll_drain())?;
        let cx = &mut Context::from_waker(&self.waker);
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown_inner(&mut self) -> Poll<io::Result<()>> {
        let this = self;
        this.conn.close();
        ready!(this.poll_until(Connection::is_write_closed))?;
        if !this.io_shut {
            let cx = &mut Context::from_waker(&this.waker);
            ready!(Pin::new(&mut this.io).poll_shutdown(cx))?;
            this.io_shut = true;
        }
        Poll::Ready(Ok(()))
    }
}
