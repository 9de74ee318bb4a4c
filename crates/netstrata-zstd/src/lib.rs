//! netstrata-zstd: a sans-IO streaming zstd layer for netstrata stacks.
//!
//! [`Zstd`] implements [`netstrata_core::Layer`]. Our encoder writes each
//! direction of a connection as one standard zstd frame, with the
//! compression context kept across messages, so later messages compress
//! against earlier ones. Every write batch ([`netstrata_core::Flush::Batch`])
//! ends a zstd block, so the peer decodes each message as soon as it
//! arrives; an orderly close ([`netstrata_core::Flush::Finish`]) ends the
//! frame. The decoder reads what `zstd -d` reads: any number of frames in a
//! row, skippable frames skipped, so it talks to the zstd CLI,
//! async-compression and the `zstd` crate at their defaults.
//!
//! ```text
//!          layer above (frame codec, application)
//!      outbound bytes │                   ▲ decoded bytes, never more than
//!                     ▼                   │ the room above (strict)
//!   ┌─ Zstd ─────────────────────┬─────────────────────────────────────┐
//!   │ encoder: made on 1st write │ decoder: per frame header            │
//!   │  a batch gathered in blocks│  header read before libzstd sees it  │
//!   │  Batch  end the block      │  window ≤ 1 << max_window_log        │
//!   │  Finish end the frame      │  memory reserved from the budget     │
//!   │                            │  frames in a row, skippable skipped  │
//!   └────────────────────────────┴─────────────────────────────────────┘
//!      one zstd frame │                   ▲ zstd frames until the
//!                     ▼                   │ transport ends
//!          layer below (tls, shape) or the transport
//! ```
//!
//! What it guarantees:
//!
//! - **Bounded against hostile input.** The decoder reads each frame's
//!   header itself and refuses a window above its limit (default 8 MiB,
//!   2^23, the limit HTTP's zstd content coding sets; zstd's own is
//!   128 MiB) before libzstd allocates anything. It writes decoded bytes
//!   into an output buffer no larger than the room the layer above has
//!   left. A gigabyte of compressed zeros costs the window and that room,
//!   and flows at the reader's pace; while the room is used up the layer
//!   reports `wants_read() == false`, so the driver stops reading and the
//!   peer feels TCP backpressure.
//! - **Bounded across connections.** Before a frame is decoded, the memory
//!   its context will take is reserved from a [`DecoderBudget`] shared by
//!   the connections of the process (1 GiB by default, or one of your
//!   own); a frame the budget cannot cover ends that connection with
//!   [`netstrata_core::Error::LocalLimit`], and the reservation is returned
//!   when the connection closes.
//! - **Small per connection.** Our own peers use a 32 KiB window: at the
//!   defaults both directions together take under 512 KiB (467 KiB
//!   measured), against about 3.5 MiB for zstd's level-3 defaults, for a
//!   compression ratio within a few percent of theirs on log-like
//!   messages; a direction allocates nothing until used. [`ZstdConfig`] has
//!   the figures and every limit's default and setter.
//! - **Typed errors.** Corrupt data, a window above the limit, a legacy
//!   (pre-v0.8) frame, bytes that are not a frame or a wrong dictionary are
//!   [`netstrata_core::Error::PeerMisbehaved`] with a [`ZstdError`] as
//!   source, and end only that connection; the transport ending inside a
//!   frame is [`netstrata_core::Error::Truncated`], and ending between
//!   frames is a clean end.
//! - **Dictionaries** ([`Dictionary`], trained from samples with
//!   [`Dictionary::train`]) are prepared once and shared by all connections.
//!
//! What it does not do: I/O, framing of messages (put a codec such as
//! `netstrata_frame::LengthDelimited` above it), negotiation of compression
//! with the peer (insert the layer into a live `DynStack` once both sides
//! agree), writing several frames per direction, zstd's multithreaded mode.
//!
//! # Example
//!
//! Two connections, length-delimited messages over zstd:
//!
//! ```
//! use std::time::Instant;
//! use netstrata_core::Connection;
//! use netstrata_frame::LengthDelimited;
//! use netstrata_zstd::{Zstd, ZstdConfig};
//!
//! # fn main() -> netstrata_core::Result<()> {
//! let now = Instant::now();
//! let mut client = Connection::new(Zstd::new(), LengthDelimited::new());
//! let config = ZstdConfig::new().with_level(6);
//! let mut server = Connection::new(Zstd::with_config(config), LengthDelimited::new());
//!
//! let line = br#"{"level":"info","path":"/api/v1/users","status":200,"ms":3}"#;
//! for _ in 0..100 {
//!     client.send(line)?;
//! }
//! // One batch, one zstd block, decodable on arrival.
//! let wire = client.poll_transmit(now)?.expect("compressed bytes").to_vec();
//! client.advance_transmit(wire.len());
//! assert!(wire.len() * 20 < 100 * line.len());
//!
//! server.handle_input(now, &wire)?;
//! let mut received = 0;
//! while let Some(msg) = server.poll_message(now)? {
//!     assert_eq!(&msg[..], line);
//!     received += 1;
//! }
//! assert_eq!(received, 100);
//!
//! // The stack counts bytes on both sides of the layer.
//! let zstd = client.stats().layers[0];
//! assert_eq!(zstd.name, "zstd");
//! assert!(zstd.bytes.outbound_expansion().unwrap() < 0.05);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod budget;
mod config;
mod decoder;
mod dictionary;
mod encoder;
mod error;
mod header;
mod layer;
mod out;

pub use budget::DecoderBudget;
pub use config::ZstdConfig;
pub use dictionary::Dictionary;
pub use error::ZstdError;
pub use layer::Zstd;

// The layer moves with its connection between threads; dictionaries and
// the budget are shared by connections on many threads.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Zstd>();
    send_sync::<ZstdConfig>();
    send_sync::<Dictionary>();
    send_sync::<DecoderBudget>();
    send_sync::<ZstdError>();
};

/// Runs the crate README's example as a doc test.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
