//! netstrata-tokio: netstrata stacks on tokio.
//!
//! [`LayeredStream`] puts any stack of netstrata layers — TLS, zstd,
//! shaping, layers of one's own, a static [`Stack`](netstrata_core::Stack)
//! or a [`DynStack`](netstrata_core::DynStack) — over any tokio byte stream
//! and is itself an `AsyncRead + AsyncWrite`: the same layers as on
//! netstrata's reactor, on the runtime a tokio program already has.
//! [`ConnectionStream`] adds a codec on top: a `Stream` and `Sink` of
//! messages, as tokio-util's `Framed` is. On a
//! [`DynStack`](netstrata_core::DynStack), both take a layer into the live
//! stack between messages (`insert_layer`: STARTTLS).
//!
//! ```
//! use netstrata_core::Stack;
//! use netstrata_core::layers::Xor;
//! use netstrata_tokio::LayeredStream;
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! // Two ends of an in-memory pipe, each under the same one-layer stack.
//! let (a, b) = tokio::io::duplex(64);
//! let mut a = LayeredStream::new(a, Stack::new((Xor::new(*b"key"),)));
//! let mut b = LayeredStream::new(b, Stack::new((Xor::new(*b"key"),)));
//! a.write_all(b"hello").await?;
//! a.shutdown().await?;
//! let mut got = Vec::new();
//! b.read_to_end(&mut got).await?;
//! assert_eq!(got, b"hello");
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod driver;
mod error;
mod framed;
mod stream;

pub use error::StackError;
pub use framed::ConnectionStream;
pub use stream::LayeredStream;

// A stream moves to whichever thread runs its task.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<StackError>();
    send_sync::<LayeredStream<tokio::net::TcpStream, netstrata_core::Stack<()>>>();
    // A `DynStack`'s boxed layers are `Send`, not `Sync`: so are its streams.
    fn send<T: Send>() {}
    send::<LayeredStream<tokio::net::TcpStream, netstrata_core::DynStack>>();
    send::<
        ConnectionStream<tokio::net::TcpStream, netstrata_core::DynStack, netstrata_core::RawCodec>,
    >();
};

/// Runs the crate README's example as a doc test.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
