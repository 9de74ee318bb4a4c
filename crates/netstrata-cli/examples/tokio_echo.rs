//! Baseline for the echo comparison: tokio with 2 worker threads and
//! tokio-util's `LengthDelimitedCodec` (the default wire profile).
//!
//! `cargo run --release -p netstrata-cli --example tokio_echo -- 127.0.0.1:7001`

use futures::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7001".into());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = TcpListener::bind(&addr).await?;
        println!("tokio echo listening on {}", listener.local_addr()?);
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            tokio::spawn(async move {
                let mut framed = Framed::new(stream, LengthDelimitedCodec::new());
                while let Some(Ok(frame)) = framed.next().await {
                    // feed + flush when the read side has nothing more ready:
                    // tokio-util's batching, like a careful tokio server.
                    if framed.feed(frame.freeze()).await.is_err() {
                        return;
                    }
                    if framed.read_buffer().is_empty()
                        && SinkExt::<bytes::Bytes>::flush(&mut framed).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    })
}
