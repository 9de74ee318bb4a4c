//! netstrata-core: the layer contract (work in progress).
#![forbid(unsafe_code)]

mod codec;
mod error;
mod layer;

pub use codec::{Codec, RawCodec};
pub use error::{Error, Result, Source};
pub use layer::{ByteCounters, Flush, Inbound, Layer, LayerStats, Outbound};
