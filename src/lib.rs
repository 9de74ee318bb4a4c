//! netstrata: layered, sans-IO networking.
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
//!
//! `full` turns on every one of them.
//!
//! ```text
//!   app messages → frame → [your layers, zstd, tls, shape] → transport
//! ```
//!
//! Start with [`prelude`], the crate docs of [`netstrata_core`] for the
//! layer contract, and `docs/architecture.md` in the repository.
#![forbid(unsafe_code)]

pub use netstrata_core::{
    Blocking, BoxedLayer, ByteCounters, Codec, Connection, ConnectionConfig, ConnectionStats,
    Duplex, DynStack, Edge, Error, Flush, Inbound, Layer, LayerExt, LayerStats, Layers, Outbound,
    RawCodec, Result, Source, Stack, State, Transport, layers, transfer,
};

#[cfg(feature = "testing")]
pub use netstrata_core::testing;

#[cfg(feature = "frame")]
pub use netstrata_frame as frame;

#[cfg(feature = "reactor")]
pub use netstrata_reactor as reactor;
#[cfg(feature = "shape")]
pub use netstrata_shape as shape;
#[cfg(feature = "tls")]
pub use netstrata_tls as tls;
#[cfg(feature = "zstd")]
pub use netstrata_zstd as zstd;

/// The names most programs need.
pub mod prelude {
    pub use netstrata_core::{
        Blocking, Codec, Connection, DynStack, Error, Flush, Inbound, Layer, LayerExt, Outbound,
        Stack, State,
    };
    #[cfg(feature = "frame")]
    pub use netstrata_frame::{LengthDelimited, Lines};
}

/// Compiles the README's example as a doc test.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// Compiles and runs `docs/guide-write-a-layer.md` as a doc test.
#[doc = include_str!("../docs/guide-write-a-layer.md")]
#[cfg(all(doctest, feature = "testing"))]
pub struct GuideWriteALayer;

/// Compiles and runs `docs/guide-custom-stack.md` as a doc test.
#[doc = include_str!("../docs/guide-custom-stack.md")]
#[cfg(all(doctest, feature = "full", feature = "testing"))]
pub struct GuideCustomStack;

/// Checks the bytes shown in `docs/wire.md`.
#[doc = include_str!("../docs/wire.md")]
#[cfg(all(doctest, feature = "frame", feature = "zstd", feature = "tls"))]
pub struct WireProfile;

/// Checks the defaults listed in `docs/security.md`.
#[doc = include_str!("../docs/security.md")]
#[cfg(all(doctest, feature = "full"))]
pub struct SecurityDefaults;
