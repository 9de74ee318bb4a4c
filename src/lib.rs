//! netstrata: layered, sans-IO networking.
//!
//! A **layer** is a bidirectional byte transform (framing, TLS, compression,
//! shaping, or one you write) that never touches a socket or a clock and
//! works on bounded, caller-owned buffers. Layers compose into **stacks**,
//! static ([`Stack`]) or built at run time ([`DynStack`], changeable on a
//! live connection); a stack plus a framing [`Codec`] is a [`Connection`],
//! which a driver runs over a transport: [`Blocking`] over any
//! `Read + Write`, the `reactor` event loop, or `testing::Pair` on a virtual
//! clock.
//!
//! ```text
//!   app messages ─▶ frame ─▶ [your layers, zstd, tls, shape] ─▶ driver ─▶ TCP
//!   app messages ◀─ frame ◀─ [      the same, in reverse    ] ◀─ driver ◀─ TCP
//! ```
//!
//! This facade re-exports the workspace crates, one Cargo feature per layer
//! crate:
//!
//! | module / item        | crate             | feature           |
//! |----------------------|-------------------|-------------------|
//! | [`Layer`], [`Stack`], [`Connection`], [`Blocking`], [`layers`] | `netstrata-core` | always |
//! | `testing`            | `netstrata-core`  | `testing`         |
//! | `frame`              | `netstrata-frame` | `frame` (default) |
//! | `tls`                | `netstrata-tls`   | `tls`             |
//! | `zstd`               | `netstrata-zstd`  | `zstd`            |
//! | `shape`              | `netstrata-shape` | `shape`           |
//! | `reactor`            | `netstrata-reactor` | `reactor`       |
//! | `tls::dev_certs`     | `netstrata-tls`   | `dev-certs`       |
//! | tokio-util `Decoder`/`Encoder` on the `frame` codecs | `netstrata-frame` | `tokio-util` |
//! | `tokio` (`LayeredStream`, `ConnectionStream`) | `netstrata-tokio` | `tokio` |
//!
//! `full` turns on the layer crates and the reactor (not `testing`,
//! `dev-certs`, `tokio-util` or `tokio`: the runtime is yours to choose).
//! A feature only adds a module; it never changes what the others do.
//!
//! It adds no code of its own: no serialization of messages (a codec frames bytes; what is inside is
//! yours), no certificate store (TLS trusts the roots you give it).
//!
//! # Example
//!
//! Two connections with the same stack, in memory: the bytes one transmits
//! are the bytes the other takes.
//!
//! ```
//! use std::time::Instant;
//! use netstrata::frame::LengthDelimited;
//! use netstrata::layers::{PassThrough, Xor};
//! use netstrata::{Connection, Stack};
//!
//! # fn main() -> netstrata::Result<()> {
//! let now = Instant::now();
//! let stack = || Stack::new((Xor::new(*b"not security"), PassThrough::named("wire")));
//! let mut a = Connection::new(stack(), LengthDelimited::new());
//! let mut b = Connection::new(stack(), LengthDelimited::new());
//!
//! a.send(b"hello")?;
//! a.send(b"world")?;
//! let wire = a.poll_transmit(now)?.expect("one batch").to_vec();
//! a.advance_transmit(wire.len());
//! assert_eq!(wire.len(), 2 * (4 + 5)); // two 4-byte lengths, two payloads
//!
//! b.handle_input(now, &wire)?;
//! assert_eq!(b.poll_message(now)?.as_deref(), Some(&b"hello"[..]));
//! assert_eq!(b.poll_message(now)?.as_deref(), Some(&b"world"[..]));
//! assert_eq!(b.stats().layers[1].bytes.inbound_in, 18);
//! # Ok(()) }
//! ```
//!
//! # Where to read next
//!
//! In the repository: `docs/architecture.md` (crates and the layer
//! contract), `docs/guide-custom-stack.md` (compose, configure and run
//! stacks), `docs/guide-write-a-layer.md` (your own layer, tested),
//! `docs/wire.md` (the bytes, and interop with tokio and Netty peers),
//! `docs/security.md` (threat model and limits), `docs/benchmarks.md`,
//! `docs/reliability.md` (what each stack detects of cuts, resets and
//! corruption). Here:
//! [`prelude`], and the crate docs of [`netstrata_core`] for the contract.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub use netstrata_core::{
    Blocking, BoxedLayer, ByteCounters, Codec, Connection, ConnectionConfig, ConnectionStats,
    Duplex, DynStack, Error, Flush, Inbound, Layer, LayerExt, LayerStats, Layers, Outbound,
    RawCodec, Result, Source, Stack, StackBuffers, State, StickyError, Transport, layers, transfer,
};

#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub use netstrata_core::testing;

#[cfg(feature = "frame")]
#[cfg_attr(docsrs, doc(cfg(feature = "frame")))]
pub use netstrata_frame as frame;

#[cfg(feature = "reactor")]
#[cfg_attr(docsrs, doc(cfg(feature = "reactor")))]
pub use netstrata_reactor as reactor;
#[cfg(feature = "shape")]
#[cfg_attr(docsrs, doc(cfg(feature = "shape")))]
pub use netstrata_shape as shape;
#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub use netstrata_tls as tls;
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use netstrata_tokio as tokio;
#[cfg(feature = "zstd")]
#[cfg_attr(docsrs, doc(cfg(feature = "zstd")))]
pub use netstrata_zstd as zstd;

/// The names most programs need.
pub mod prelude {
    pub use netstrata_core::{
        Blocking, Codec, Connection, DynStack, Error, Flush, Inbound, Layer, LayerExt, Outbound,
        Stack, State,
    };
    #[cfg(feature = "frame")]
    #[cfg_attr(docsrs, doc(cfg(feature = "frame")))]
    pub use netstrata_frame::{LengthDelimited, Lines};
}

/// Runs the README's example as a doc test (against an echo server it
/// starts in hidden lines).
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// Compiles and runs `docs/guide-write-a-layer.md` as a doc test.
#[doc = include_str!("../docs/guide-write-a-layer.md")]
#[cfg(all(doctest, feature = "testing"))]
pub struct GuideWriteALayer;

/// Compiles and runs `docs/guide-custom-stack.md` as a doc test.
#[doc = include_str!("../docs/guide-custom-stack.md")]
#[cfg(all(doctest, feature = "full", feature = "testing", feature = "tokio"))]
pub struct GuideCustomStack;

/// Checks the bytes shown in `docs/wire.md`.
#[doc = include_str!("../docs/wire.md")]
#[cfg(all(doctest, feature = "frame", feature = "zstd", feature = "tls"))]
pub struct WireProfile;

/// Checks the defaults listed in `docs/security.md`.
#[doc = include_str!("../docs/security.md")]
#[cfg(all(doctest, feature = "full"))]
pub struct SecurityDefaults;
