//! netstrata-core: the layer contract, stacks, `Connection`, a blocking
//! driver and a deterministic test harness.
//!
//! A **layer** ([`Layer`]) is a sans-IO, bidirectional byte transform
//! between its lower side (toward the wire) and its upper side (toward the
//! application): TLS, compression, shaping, or one you write. Layers work on
//! caller-owned [`bytes::BytesMut`] buffers, never touch a socket and never
//! read a clock. A **stack** ([`Stack`], [`DynStack`]) composes layers and is
//! itself a layer. A [`Connection`] is a stack plus a [`Codec`] that cuts the
//! top of the stack into messages. Drivers move bytes between a connection
//! and a transport: [`Blocking`] over any `Read + Write`, the
//! `netstrata-reactor` event loop, and `testing::Pair` (feature `testing`)
//! on a virtual clock.
//!
//! ```text
//!   application      send(msg) │        ▲ poll_message()
//!                              ▼        │
//!   Codec              encode ─┤        ├─ decode        (netstrata-frame)
//!   Stack  ┌──────────────────────────────────────┐
//!          │ layer 0   handle_outbound  handle_inbound │  e.g. zstd
//!          │ layer 1        ▼               ▲         │  e.g. tls
//!          │ layer 2        ▼               ▲         │  e.g. shape
//!          └──────────────────────────────────────┘
//!   driver       poll_transmit() │        ▲ handle_input()
//!                                ▼        │
//!   transport                   TCP, pipe, virtual link
//! ```
//!
//! This crate does no I/O of its own beyond [`Blocking`], which reads and
//! writes the transport you give it. It has no framing codecs (see
//! `netstrata-frame`; [`RawCodec`] passes bytes unframed), and no event loop
//! (see `netstrata-reactor`).
//!
//! # The layer contract
//!
//! Every layer is sans-IO (time comes in as `now`, deadlines go out through
//! `poll_timeout`), works on caller-owned buffers, gives the same output for
//! any chunking of its input, is bounded (strict upward room, `wants_read`
//! backpressure), flushes on [`Flush::Batch`], shuts down in order on
//! [`Flush::Finish`] and tells a clean end from truncation, fails with a
//! typed [`Error`] naming it, and is counted by the stack around it. The
//! [`Layer`] documentation states each point and the calling order.
//!
//! # Example
//!
//! A stack of two layers, used over an in-memory link by two connections:
//!
//! ```
//! use std::time::Instant;
//! use netstrata_core::layers::{PassThrough, Xor};
//! use netstrata_core::{Connection, LayerExt, RawCodec};
//!
//! # fn main() -> netstrata_core::Result<()> {
//! let now = Instant::now();
//! let mut a = Connection::new(Xor::new(*b"secret").stack(PassThrough::new()), RawCodec::new());
//! let mut b = Connection::new(Xor::new(*b"secret").stack(PassThrough::new()), RawCodec::new());
//!
//! a.send(b"hello, ")?;
//! a.send(b"world")?;
//! // One flush for the whole batch; the wire bytes are XORed.
//! let wire = a.poll_transmit(now)?.expect("bytes to send").to_vec();
//! a.advance_transmit(wire.len());
//! assert_ne!(&wire[..], b"hello, world");
//!
//! b.handle_input(now, &wire)?;
//! let msg = b.poll_message(now)?.expect("a message");
//! assert_eq!(&msg[..], b"hello, world");
//!
//! // Per-layer byte counters.
//! let stats = a.stats();
//! assert_eq!(stats.layers[0].name, "xor");
//! assert_eq!(stats.layers[0].bytes.outbound_in, 12);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod blocking;
mod codec;
mod connection;
mod error;
mod layer;
pub mod layers;
mod stack;
mod sticky;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;

pub use blocking::{Blocking, Duplex, Transport};
pub use codec::{Codec, RawCodec};
pub use connection::{Connection, ConnectionConfig, ConnectionStats, State};
pub use error::{Error, Result, Source};
pub use layer::{ByteCounters, Flush, Inbound, Layer, LayerStats, Outbound};
pub use stack::{BoxedLayer, DynStack, LayerExt, Layers, Stack, StackBuffers, transfer};
pub use sticky::StickyError;

// The public types cross threads: a connection is built on one thread and
// driven on another. Stacks of boxed layers (`DynStack`, `BoxedLayer`) are
// `Send` but not `Sync`: a layer is driven by one thread at a time, so
// `Layer` does not ask for `Sync`.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    use layers::{Checksummed, PassThrough, Xor};
    send_sync::<Connection<Stack<(Xor, Checksummed, PassThrough)>, RawCodec>>();
    send_sync::<ConnectionConfig>();
    send_sync::<ConnectionStats>();
    send_sync::<LayerStats>();
    send_sync::<Error>();
    send_sync::<StickyError>();
    send_sync::<Blocking<std::net::TcpStream, Stack<()>, RawCodec>>();
    send::<DynStack>();
    send::<Connection<DynStack, RawCodec>>();
};

/// Runs the crate README's example as a doc test.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
