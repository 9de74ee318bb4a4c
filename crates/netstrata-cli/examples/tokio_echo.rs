//! Baseline for the echo comparison: tokio with 2 worker threads (or
//! `--workers N`) and tokio-util's `LengthDelimitedCodec` (the default wire
//! profile).
//!
//! `cargo run --release -p netstrata-cli --example tokio_echo -- 127.0.0.1:7001 [--workers N]`

mod common;

fn main() -> std::io::Result<()> {
    common::serve("tokio echo", "127.0.0.1:7001", |stream| async move {
        Ok(stream)
    })
}
