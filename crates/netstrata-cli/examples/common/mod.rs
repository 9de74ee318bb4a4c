//! What the tokio baselines share: a multi-threaded runtime (2 workers, or
//! `--workers N` after the positional arguments), an accept loop, and
//! the echo loop over tokio-util's `LengthDelimitedCodec`. Each baseline
//! only says how an accepted TCP stream becomes its byte stream (as is, TLS,
//! zstd), so the three differ in nothing else.

use std::future::Future;
use std::io;

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

/// Serves `addr` (the first argument, or `default_addr`) with 2 worker
/// threads (`--workers N`: N); every accepted stream goes through `wrap`,
/// then echoes frames.
/// Prints "`name` listening on ADDR" once bound (the bench waits for it).
pub(crate) fn serve<W, F, S>(name: &str, default_addr: &str, wrap: W) -> io::Result<()>
where
    W: Fn(TcpStream) -> F + Clone + Send + 'static,
    F: Future<Output = io::Result<S>> + Send + 'static,
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| default_addr.into());
    let args: Vec<String> = std::env::args().collect();
    let workers = match args.iter().position(|a| a == "--workers") {
        Some(i) => args
            .get(i + 1)
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|&n| n > 0)
            .ok_or_else(|| io::Error::other("--workers takes a number above 0"))?,
        None => 2,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = TcpListener::bind(&addr).await?;
        println!("{name} listening on {}", listener.local_addr()?);
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            let wrap = wrap.clone();
            tokio::spawn(async move {
                if let Ok(stream) = wrap(stream).await {
                    echo(stream).await;
                }
            });
        }
    })
}

/// Echoes length-delimited frames until the peer ends its stream, then ends
/// ours in order (TLS close_notify, the end of the zstd frame, FIN).
async fn echo<S: AsyncRead + AsyncWrite + Unpin>(stream: S) {
    let mut framed = Framed::new(stream, LengthDelimitedCodec::new());
    loop {
        let frame = match framed.next().await {
            Some(Ok(frame)) => frame,
            Some(Err(_)) => return,
            None => break,
        };
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
    let _ = SinkExt::<bytes::Bytes>::close(&mut framed).await;
}
