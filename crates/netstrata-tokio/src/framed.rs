//! [`ConnectionStream`]: a stack and a codec over a tokio byte stream, as a
//! `Stream` of messages and a `Sink` for them.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use futures_sink::Sink;
use netstrata_core::{BoxedLayer, Codec, Connection, ConnectionConfig, DynStack, Layer};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::driver::{Driver, Side};
use crate::error::to_io;

/// A stack of netstrata layers and a codec over a tokio byte stream: a
/// [`Stream`] of the peer's messages and a [`Sink`] of one's own, in the
/// shape of tokio-util's `Framed`, with every layer under the codec.
///
/// ```
/// use bytes::Bytes;
/// use futures_util::{SinkExt, StreamExt};
/// use netstrata_core::Stack;
/// use netstrata_core::layers::Xor;
/// use netstrata_frame::LengthDelimited;
/// use netstrata_tokio::ConnectionStream;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let (a, b) = tokio::io::duplex(64);
/// let stack = || Stack::new((Xor::new(*b"key"),));
/// let mut a = ConnectionStream::new(a, stack(), LengthDelimited::new());
/// let mut b = ConnectionStream::new(b, stack(), LengthDelimited::new());
/// a.send(Bytes::from_static(b"hello")).await?;
/// a.close().await?;
/// assert_eq!(b.next().await.transpose()?.as_deref(), Some(&b"hello"[..]));
/// assert!(b.next().await.is_none(), "a clean end");
/// # Ok(()) }
/// ```
///
/// - **`next()` is cancel safe.** A message leaves the connection only when
///   it is returned, so a `select!` that drops a pending `next()` loses
///   nothing.
/// - **Bounded.** [`poll_ready`](Sink::poll_ready) waits while the stack's
///   send buffer is full ([`ConnectionConfig`], 1 MiB by default); reads
///   take from the transport only what the stack and codec have room for
///   (the codec's largest message).
/// - **Errors** are `io::Error`s as [`LayeredStream`](crate::LayeredStream)'s
///   are: a [`StackError`](crate::StackError) inside, the layer's or the
///   codec's error as the source. A message the codec cannot frame (too
///   long) fails its `send` with `InvalidInput` and leaves the connection
///   usable; a peer's bad frame is `InvalidData` and ends it.
/// - **`close()`** ends the stack's stream (TLS `close_notify`, the end of
///   a zstd frame) after everything sent, then the transport's write half.
///   Messages from the peer can still be read.
pub struct ConnectionStream<IO, S: Layer, C: Codec> {
    driver: Driver<IO, S, C>,
}

impl<IO, S: Layer, C: Codec> std::fmt::Debug for ConnectionStream<IO, S, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionStream")
            .field("driver", &self.driver)
            .finish()
    }
}

impl<IO, S, C> ConnectionStream<IO, S, C>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    S: Layer + Unpin,
    C: Codec + Unpin,
{
    /// `stack` and `codec` over `io`, with the default buffer bounds.
    pub fn new(io: IO, stack: S, codec: C) -> Self {
        Self::with_config(io, stack, codec, ConnectionConfig::new())
    }

    /// `stack` and `codec` over `io`, with `config`'s buffer bounds.
    pub fn with_config(io: IO, stack: S, codec: C, config: ConnectionConfig) -> Self {
        Self::from_parts(io, Connection::with_config(stack, codec, config))
    }

    /// A connection (a stack, a codec and whatever they hold) over `io`:
    /// one taken apart by [`into_parts`](Self::into_parts), or driven by
    /// other means until now.
    pub fn from_parts(io: IO, connection: Connection<S, C>) -> Self {
        Self {
            driver: Driver::new(io, connection),
        }
    }

    /// The transport and the connection, with every byte either way that
    /// the connection holds: messages received and not yet taken, bytes
    /// inside the stack, messages sent and not yet written. Put back
    /// together with [`from_parts`](Self::from_parts), or drive the
    /// connection by other means.
    pub fn into_parts(self) -> (IO, Connection<S, C>) {
        (self.driver.io, self.driver.conn)
    }

    /// The connection: its stack, codec, state and figures.
    pub fn connection(&self) -> &Connection<S, C> {
        &self.driver.conn
    }

    /// The stack, mutably (to change a layer's settings).
    pub fn stack_mut(&mut self) -> &mut S {
        self.driver.conn.stack_mut()
    }

    /// The transport.
    pub fn get_ref(&self) -> &IO {
        &self.driver.io
    }
}

impl<IO, C> ConnectionStream<IO, DynStack, C>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    C: Codec + Unpin,
{
    /// Inserts `layer` at boundary `index` (0 is the top, the stack's
    /// `len()` the bottom) of the live stack, between messages: STARTTLS on
    /// tokio. Messages sent before leave as they were, ahead of anything
    /// the new layer sends; bytes received behind the last message taken go
    /// to a layer inserted at the top; see [`Connection::insert_layer`].
    /// Insert below other layers only where the peer cannot have sent
    /// upgraded bytes yet (after the request and its answer).
    pub fn insert_layer(&mut self, index: usize, layer: BoxedLayer) -> io::Result<()> {
        self.driver.conn.insert_layer(index, layer).map_err(to_io)
    }
}

impl<IO, S, C> Stream for ConnectionStream<IO, S, C>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    S: Layer + Unpin,
    C: Codec + Unpin,
{
    type Item = io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let driver = &mut self.get_mut().driver;
        driver
            .on_side(cx, Side::Read, Driver::poll_message)
            .map(Result::transpose)
    }
}

/// A `Sink` of one item type, so that `close()` and `flush()` need no
/// annotation; `Bytes::from` takes a `Vec<u8>` or a `String` without a copy.
impl<IO, S, C> Sink<Bytes> for ConnectionStream<IO, S, C>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    S: Layer + Unpin,
    C: Codec + Unpin,
{
    type Error = io::Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let driver = &mut self.get_mut().driver;
        driver
            .on_side(cx, Side::Write, Driver::poll_send_room)
            .map_ok(drop)
    }

    fn start_send(self: Pin<&mut Self>, message: Bytes) -> io::Result<()> {
        self.get_mut().driver.conn.send(&message).map_err(to_io)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let driver = &mut self.get_mut().driver;
        driver.on_side(cx, Side::Write, Driver::poll_flush)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let driver = &mut self.get_mut().driver;
        driver.on_side(cx, Side::Write, Driver::poll_shutdown)
    }
}
