//! Baseline for the zstd echo comparison: `tokio_echo` with length-delimited
//! frames above async-compression's zstd streams (one zstd frame each way,
//! flushed when the echo loop flushes, as netstrata's layer flushes per
//! write batch).
//!
//! Encoder: the level given (default 3) and window log 15, zstd's defaults
//! otherwise; a larger window would be refused by a netstrata peer at its
//! default decoder limit of 2^15. Decoder: window limit 2^15, like
//! netstrata's default.
//!
//! `cargo run --release -p netstrata-cli --example tokio_zstd_echo -- 127.0.0.1:7004 [LEVEL]`

mod common;

use std::io;

use async_compression::Level;
use async_compression::tokio::bufread::ZstdDecoder;
use async_compression::tokio::write::ZstdEncoder;
use async_compression::zstd::{CParameter, DParameter};
use tokio::io::BufReader;

/// Window log of both directions, netstrata's default.
const WINDOW_LOG: u32 = 15;

fn main() -> io::Result<()> {
    let level: i32 = match std::env::args().nth(2) {
        Some(l) => l
            .parse()
            .map_err(|_| io::Error::other(format!("not a zstd level: {l}")))?,
        None => 3,
    };
    common::serve(
        "tokio zstd echo",
        "127.0.0.1:7004",
        move |stream| async move {
            let (read, write) = stream.into_split();
            let decoder = ZstdDecoder::with_params(
                BufReader::new(read),
                &[DParameter::window_log_max(WINDOW_LOG)],
            );
            let encoder = ZstdEncoder::with_quality_and_params(
                write,
                Level::Precise(level),
                &[CParameter::window_log(WINDOW_LOG)],
            );
            Ok(tokio::io::join(decoder, encoder))
        },
    )
}
