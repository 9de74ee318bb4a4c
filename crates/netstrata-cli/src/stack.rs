//! Stack assembly for every subcommand, in one place: flags in, a
//! [`Connection`] out.

use netstrata_core::{BoxedLayer, Connection, DynStack};
use netstrata_frame::LengthDelimited;

/// The layers a subcommand's flags ask for. Today: none (the default wire
/// profile's framing only); TLS, zstd and shaping flags come with their
/// layer crates.
#[derive(Debug, Clone, Default)]
pub struct StackOptions {}

impl StackOptions {
    /// A connection with these layers over the default wire profile's
    /// framing: 4-byte big-endian lengths, 8 MiB maximum.
    pub fn connection(&self) -> Connection<DynStack, LengthDelimited> {
        let layers: Vec<BoxedLayer> = Vec::new();
        Connection::new(DynStack::new(layers), LengthDelimited::new())
    }

    /// A short description for reports ("plain").
    pub fn describe(&self) -> String {
        "plain".to_string()
    }
}
