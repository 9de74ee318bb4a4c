//! [`LayeredStream`]: a stack of netstrata layers over a tokio byte stream.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use netstrata_core::{BoxedLayer, Connection, ConnectionConfig, DynStack, Layer, RawCodec};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::driver::{Driver, Side};

/// Written bytes gathered before they go down the stack without a flush.
const TRANSMIT_AT: usize = 64 * 1024;
use crate::error::to_io;

/// A stack of netstrata layers (`S`: a [`Stack`](netstrata_core::Stack) or a
/// [`DynStack`](netstrata_core::DynStack)) over any tokio byte stream `IO`:
/// what is written to it goes down the stack onto `IO`; what is read from it
/// came up the stack from `IO`. TLS, zstd, shaping — any layer — on tokio,
/// under hyper or a protocol of one's own.
///
/// - **Buffered, bounded.** Writes gather above the stack and go down it
///   when flushed (or shut down), or once 64 KiB have gathered: the writes
///   between two flushes leave as one pass through the stack (one TLS
///   record, one zstd block where they fit), so flush as with any buffered
///   writer. Writes are taken while the stack's send buffer has room (1 MiB
///   by default, [`ConnectionConfig`]); then `poll_write` waits for the
///   transport. Reads take from the transport only what the stack has room
///   for, straight into its input buffer.
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
    driver: Driver<IO, S, RawCodec>,
    /// Bytes that came up the stack and were not read yet.
    pending: Bytes,
}

impl<IO, S: Layer> std::fmt::Debug for LayeredStream<IO, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LayeredStream")
            .field("driver", &self.driver)
            .field("pending", &self.pending.len())
            .finish()
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
        let conn = Connection::with_config(stack, RawCodec::new(), config);
        Self {
            driver: Driver::new(io, conn),
            pending: Bytes::new(),
        }
    }

    /// The stack, e.g. to read what TLS negotiated.
    pub fn stack(&self) -> &S {
        self.driver.conn.stack()
    }

    /// The stack, mutably (to change a layer's settings).
    pub fn stack_mut(&mut self) -> &mut S {
        self.driver.conn.stack_mut()
    }

    /// The connection's figures: bytes per layer each way.
    pub fn stats(&self) -> netstrata_core::ConnectionStats {
        self.driver.conn.stats()
    }

    /// The transport.
    pub fn get_ref(&self) -> &IO {
        &self.driver.io
    }

    /// Gives `bytes` back to be read again, ahead of anything not read yet:
    /// what a reader above took and did not use (a `BufReader`'s read-ahead
    /// past a STARTTLS request). A layer then inserted at the top of the
    /// stack ([`insert_layer`](LayeredStream::insert_layer)) reads them.
    pub fn unread(&mut self, bytes: &[u8]) {
        self.driver.conn.unread(&self.pending);
        self.pending = Bytes::new();
        self.driver.conn.unread(bytes);
    }

    /// The transport and the bytes already read from the stack and not yet
    /// read from this stream, for going on without the stack.
    pub fn into_parts(self) -> (IO, Bytes) {
        (self.driver.io, self.pending)
    }
}

impl<IO> LayeredStream<IO, DynStack>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    /// Inserts `layer` at boundary `index` (0 is the top, the stack's
    /// `len()` the bottom) of the live stack: STARTTLS on tokio. Nothing
    /// written before is lost or reordered — it leaves as it was written,
    /// ahead of anything the new layer sends — and bytes read from the
    /// stack but not yet from this stream go to a layer inserted at the
    /// top, as [`Connection::insert_layer`] describes. Insert below other
    /// layers only where the peer cannot have sent upgraded bytes yet
    /// (after the request and its answer).
    pub fn insert_layer(&mut self, index: usize, layer: BoxedLayer) -> io::Result<()> {
        self.unread(&[]);
        self.driver.conn.insert_layer(index, layer).map_err(to_io)
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
        let this = self.get_mut();
        if this.pending.is_empty() {
            let next = this.driver.on_side(cx, Side::Read, Driver::poll_message);
            match ready!(next)? {
                Some(bytes) => this.pending = bytes,
                None => return Poll::Ready(Ok(())),
            }
        }
        let n = this.pending.len().min(buf.remaining());
        buf.put_slice(&this.pending[..n]);
        this.pending.advance(n);
        Poll::Ready(Ok(()))
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
        self.poll_write_vectored(cx, &[IoSlice::new(data)])
    }

    /// Takes as much of `data` as the stack's send buffer has room for, in
    /// one pass down the stack: the slices are copied into the stack's
    /// buffer whatever the transport, so vectored writes are always cheap.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.driver.on_side(cx, Side::Write, |driver| {
            let total: usize = data.iter().map(|s| s.len()).sum();
            if total == 0 {
                return Poll::Ready(Ok(0));
            }
            let mut room = ready!(driver.poll_send_room())?;
            let mut taken = 0;
            for slice in data {
                if room == 0 {
                    break;
                }
                let n = slice.len().min(room);
                if n > 0 {
                    driver.conn.send(&slice[..n]).map_err(to_io)?;
                }
                taken += n;
                room -= n;
            }
            // Like any buffered writer, it goes when flushed, or once
            // enough has gathered: writes between flushes leave together
            // (one TLS record, one zstd block, not one per write).
            if driver.conn.send_queued() >= TRANSMIT_AT {
                driver.start_transmit()?;
            }
            Poll::Ready(Ok(taken))
        })
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut()
            .driver
            .on_side(cx, Side::Write, Driver::poll_flush)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut()
            .driver
            .on_side(cx, Side::Write, Driver::poll_shutdown)
    }
}
