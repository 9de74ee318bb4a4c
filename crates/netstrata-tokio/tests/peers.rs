//! `LayeredStream` against the peers a tokio user already has:
//! tokio-rustls and async-compression at their defaults, over in-memory
//! pipes with tiny buffers (every read and write short). Every byte is
//! checked.

mod common;

use std::io;

use common::{client_config, server_config, stack_error};
use netstrata_core::{Error, Stack};
use netstrata_tls::Tls;
use netstrata_tokio::LayeredStream;
use netstrata_zstd::Zstd;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

/// 300 KiB of bytes that do not repeat in short runs.
fn body() -> Vec<u8> {
    (0..300 * 1024u32)
        .map(|i| (i * 7 + i / 251) as u8)
        .collect()
}

/// Writes `data` to `w` and shuts it down, in a task of its own, while
/// reading all of `r`.
async fn send_and_read<W, R>(mut w: W, mut r: R, data: Vec<u8>) -> io::Result<Vec<u8>>
where
    W: AsyncWrite + Unpin + Send + 'static,
    R: AsyncRead + Unpin,
{
    let writer = tokio::spawn(async move {
        w.write_all(&data).await?;
        w.shutdown().await?;
        Ok::<_, io::Error>(())
    });
    let mut got = Vec::new();
    r.read_to_end(&mut got).await?;
    writer.await.unwrap()?;
    Ok(got)
}

#[tokio::test]
async fn tls_client_against_a_tokio_rustls_server() {
    let (a, b) = tokio::io::duplex(61);
    let acceptor = tokio_rustls::TlsAcceptor::from(server_config());
    let server = tokio::spawn(async move {
        // The tokio-rustls server echoes until our end, then ends too.
        let tls = acceptor.accept(b).await?;
        let (mut r, mut w) = tokio::io::split(tls);
        tokio::io::copy(&mut r, &mut w).await?;
        w.shutdown().await?;
        Ok::<_, io::Error>(())
    });
    let stack = Stack::new((Tls::client(client_config(), "localhost").unwrap(),));
    let (r, w) = tokio::io::split(LayeredStream::new(a, stack));
    let got = send_and_read(w, r, body()).await.unwrap();
    assert!(got == body(), "{} of {} bytes", got.len(), body().len());
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_tokio_rustls_client_against_the_tls_server() {
    let (a, b) = tokio::io::duplex(61);
    let server = tokio::spawn(async move {
        let stack = Stack::new((Tls::server(server_config()).unwrap(),));
        let (mut r, mut w) = tokio::io::split(LayeredStream::new(b, stack));
        tokio::io::copy(&mut r, &mut w).await?;
        w.shutdown().await?;
        Ok::<_, io::Error>(())
    });
    let connector = tokio_rustls::TlsConnector::from(client_config());
    let name = "localhost".try_into().unwrap();
    let tls = connector.connect(name, a).await.unwrap();
    let (r, w) = tokio::io::split(tls);
    let got = send_and_read(w, r, body()).await.unwrap();
    assert!(got == body(), "{} of {} bytes", got.len(), body().len());
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn zstd_to_and_from_async_compression_at_its_defaults() {
    // Ours compresses, async-compression's default decoder reads it.
    let (a, b) = tokio::io::duplex(61);
    let ours = LayeredStream::new(a, Stack::new((Zstd::new(),)));
    let (_, w) = tokio::io::split(ours);
    let theirs = async_compression::tokio::bufread::ZstdDecoder::new(BufReader::new(b));
    let got = send_and_read(w, theirs, body()).await.unwrap();
    assert!(got == body(), "{} of {} bytes", got.len(), body().len());

    // async-compression's default encoder (a 2 MiB window) writes, ours reads.
    let (a, b) = tokio::io::duplex(61);
    let theirs = async_compression::tokio::write::ZstdEncoder::new(a);
    let ours = LayeredStream::new(b, Stack::new((Zstd::new(),)));
    let got = send_and_read(theirs, ours, body()).await.unwrap();
    assert!(got == body(), "{} of {} bytes", got.len(), body().len());
}

#[tokio::test]
async fn a_tls_stream_cut_without_close_notify_is_an_unexpected_eof() {
    let (a, b) = tokio::io::duplex(1024);
    let acceptor = tokio_rustls::TlsAcceptor::from(server_config());
    let server = tokio::spawn(async move {
        let mut tls = acceptor.accept(b).await?;
        tls.write_all(b"partial answer").await?;
        tls.flush().await?;
        // Dropped without close_notify: the transport just ends.
        Ok::<_, io::Error>(())
    });
    let stack = Stack::new((Tls::client(client_config(), "localhost").unwrap(),));
    let mut ours = LayeredStream::new(a, stack);
    ours.write_all(b"hello").await.unwrap();
    ours.flush().await.unwrap();
    let mut got = Vec::new();
    let e = ours.read_to_end(&mut got).await.unwrap_err();
    server.await.unwrap().unwrap();
    assert_eq!(got, b"partial answer", "what came before the cut arrives");
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
    let inner = stack_error(&e);
    assert!(
        matches!(inner, Some(Error::Truncated { layer: "tls", .. })),
        "{inner:?}"
    );
}

#[tokio::test]
async fn a_handshake_the_peer_never_starts_ends_at_its_timeout_as_timed_out() {
    // The peer connects and says nothing: the server's TLS layer gives up
    // at its handshake deadline, which the stream's tokio timer fires.
    let (a, silent_peer) = tokio::io::duplex(1024);
    let timeout = std::time::Duration::from_millis(100);
    let tls = Tls::server(server_config())
        .unwrap()
        .with_handshake_timeout(timeout);
    let mut ours = LayeredStream::new(a, Stack::new((tls,)));
    let started = std::time::Instant::now();
    let mut got = Vec::new();
    let e = tokio::time::timeout(timeout * 50, ours.read_to_end(&mut got))
        .await
        .expect("the handshake deadline fired")
        .unwrap_err();
    assert!(started.elapsed() >= timeout, "not before its deadline");
    assert!(got.is_empty());
    assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
    let inner = stack_error(&e);
    assert!(
        matches!(inner, Some(Error::TimedOut { layer: "tls", .. })),
        "{inner:?}"
    );
    drop(silent_peer);
}

#[tokio::test]
async fn a_peer_that_does_not_speak_tls_is_invalid_data_with_the_layers_error() {
    let (a, mut b) = tokio::io::duplex(1024);
    let peer = tokio::spawn(async move {
        b.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await?;
        let mut sink = Vec::new();
        let _ = b.read_to_end(&mut sink).await;
        Ok::<_, io::Error>(())
    });
    let stack = Stack::new((Tls::client(client_config(), "localhost").unwrap(),));
    let mut ours = LayeredStream::new(a, stack);
    ours.write_all(b"hello").await.unwrap();
    let mut got = Vec::new();
    let e = ours.read_to_end(&mut got).await.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
    let source = std::error::Error::source(&e).expect("the layer's error");
    assert!(
        source.downcast_ref::<netstrata_tls::TlsError>().is_some(),
        "{source:?}"
    );
    drop(ours);
    peer.await.unwrap().unwrap();
}
