//! A netstrata codec inside a tokio program: `netstrata::frame::LengthDelimited`
//! as a tokio-util codec in `Framed`, talking to a netstrata peer.
//!
//! ```text
//! cargo run --example tokio_codec --features tokio-util,tokio
//! ```
//!
//! A tokio client (`Framed<TcpStream, LengthDelimited>`) sends 100 messages
//! to an echo server built with netstrata's blocking driver on a thread,
//! checks the echoes, and ends cleanly. It does the same again with
//! netstrata's own `ConnectionStream` in place of `Framed`: the same codec
//! under a `Stream` + `Sink`, with a stack of layers between the codec and
//! the socket (empty here, to match the server; TLS or zstd go there).
//! Then it asks for a message larger than its codec accepts and shows the
//! typed `FrameError` reaching tokio code inside an `io::Error`.
//!
//! The codecs implement tokio-util's `Decoder` and `Encoder` behind the
//! facade's `tokio-util` feature. In your own `Cargo.toml` (netstrata is
//! not on crates.io: a path to a checkout):
//!
//! ```toml
//! netstrata = { path = "../netstrata", features = ["tokio-util", "tokio"] }
//! ```
//!
//! What to look at: nothing changes on the tokio side but the codec type;
//! the same codec value frames for `Framed` and for a netstrata
//! `Connection`, and both ends agree byte for byte (the default is
//! tokio-util's `LengthDelimitedCodec::new()` wire format).

use std::io;
use std::net::TcpListener;
use std::thread;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use netstrata::frame::{FrameError, LengthDelimited};
use netstrata::tokio::ConnectionStream;
use netstrata::{Blocking, Connection, Stack};
use tokio::io::AsyncWriteExt;
use tokio_util::codec::Framed;

/// The netstrata side: echoes every frame until the client's end; `BIG n`
/// answers with an n-byte frame and ends the server.
fn echo_server(listener: TcpListener) -> netstrata::Result<()> {
    loop {
        let (stream, _) = listener.accept()?;
        let mut conn = Blocking::new(
            stream,
            Connection::new(Stack::new(()), LengthDelimited::new()),
        );
        while let Some(msg) = conn.recv()? {
            if let Some(n) = msg.strip_prefix(b"BIG ") {
                let n = std::str::from_utf8(n)
                    .ok()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                conn.send(&vec![b'x'; n])?;
                // The client hangs up on the oversized frame, likely before
                // it is all written: a reset here is the expected outcome.
                let _ = conn.flush();
                return Ok(());
            }
            conn.send(&msg)?;
        }
        conn.shutdown()?;
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let server = thread::spawn(move || echo_server(listener));

    let stream = tokio::net::TcpStream::connect(addr).await?;
    let mut framed = Framed::new(stream, LengthDelimited::new());
    let sent: Vec<Bytes> = (0..100)
        .map(|i| Bytes::from(format!("message {i} from tokio")))
        .collect();
    for msg in &sent {
        framed.feed(msg.clone()).await?; // buffered; one flush below
    }
    // The codec encodes both `Bytes` and `&[u8]`: name the item to flush.
    SinkExt::<Bytes>::flush(&mut framed).await?;
    for msg in &sent {
        let echo = framed.next().await.ok_or("the server hung up")??;
        if echo != *msg {
            return Err(format!("echo {echo:?} differs from {msg:?}").into());
        }
    }
    println!("tokio client: 100 messages echoed by the netstrata server, all intact");
    framed.get_mut().shutdown().await?; // FIN: a clean end for the server
    if framed.next().await.is_some() {
        return Err("a frame after the server's end".into());
    }
    println!("tokio client: both sides ended cleanly");

    // The same with netstrata's ConnectionStream: the codec, and a stack
    // of layers under it (none here: the server's stack is empty too).
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let mut conn = ConnectionStream::new(stream, Stack::new(()), LengthDelimited::new());
    for msg in &sent {
        conn.feed(msg.clone()).await?;
    }
    conn.flush().await?; // one item type, so no annotation
    for msg in &sent {
        let echo = conn.next().await.ok_or("the server hung up")??;
        if echo != *msg {
            return Err(format!("echo {echo:?} differs from {msg:?}").into());
        }
    }
    conn.close().await?; // the stack's end, then FIN
    if conn.next().await.is_some() {
        return Err("a frame after the server's end".into());
    }
    println!("tokio client: the same 100 messages through ConnectionStream, all intact");

    // Limits travel too: a codec that accepts at most 1 KiB per frame.
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let small = LengthDelimited::builder()
        .max_frame_length(1024)
        .new_codec();
    let mut framed = Framed::new(stream, small);
    framed.send(Bytes::from_static(b"BIG 100000")).await?;
    let err: io::Error = match framed.next().await {
        Some(Err(e)) => e,
        other => return Err(format!("expected an oversize error, got {other:?}").into()),
    };
    let frame_error = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<FrameError>())
        .ok_or("the io::Error carries no FrameError")?;
    println!(
        "tokio client: a 100000-byte frame refused: io::Error of kind {:?} carrying \
         {frame_error:?} (peer's fault: {})",
        err.kind(),
        frame_error.is_peer_fault()
    );
    drop(framed);
    server.join().map_err(|_| "server panicked")??;
    Ok(())
}
