//! `LayeredStream` against netstrata's own reactor over loopback TCP, the
//! same stack on both ends: tokio clients against a reactor echo server
//! (many connections at once, each its own bytes in chunks of varied
//! sizes), a reactor client against a tokio server, and a zstd frame cut
//! short, which both drivers must report as the same truncation. Every
//! byte is checked, and every connection must end cleanly both ways.

mod common;

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use netstrata_core::{Connection, ConnectionStats, DynStack, Error, RawCodec};
use netstrata_reactor::{
    CloseReason, Context, EventLoop, Handler, LoopConfig, Sent, Server, ServerConfig,
};
use netstrata_tokio::LayeredStream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Connections at once in the tokio-client tests.
const CONNS: u64 = 32;
/// Bytes each connection sends (and gets back).
const BYTES: usize = 64 * 1024;

fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// The reactor's side: echoes each chunk it reads, stops reading while
/// its echoes are above the high watermark, and reports how the
/// connection ended.
struct Echo {
    closed: mpsc::UnboundedSender<CloseReason>,
}

impl Handler for Echo {
    fn on_message(&mut self, cx: &mut Context<'_>, msg: Bytes) {
        match cx.send(&msg) {
            Ok(Sent::Queued) => {}
            Ok(Sent::HighWatermark) => cx.pause_reading(),
            Ok(Sent::Closed) | Err(_) => cx.abort(),
        }
    }

    fn on_writable(&mut self, cx: &mut Context<'_>) {
        cx.resume_reading();
    }

    fn on_close(&mut self, reason: &CloseReason, _: &ConnectionStats) {
        let _ = self.closed.send(reason.clone());
    }
}

/// A reactor echo server on two loops of its own, each accepted
/// connection under `kind`'s server stack; and how its connections end.
fn echo_server(kind: Kind) -> (Server, mpsc::UnboundedReceiver<CloseReason>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let server = Server::bind(
        localhost(),
        ServerConfig::new().with_threads(2),
        move || Connection::new(kind.stack(End::Server), RawCodec::new()),
        move |_| Echo { closed: tx.clone() },
    )
    .unwrap();
    (server, rx)
}

/// Waits for `n` closes and asserts each was clean.
async fn assert_clean_closes(closed: &mut mpsc::UnboundedReceiver<CloseReason>, n: u64) {
    for i in 0..n {
        let reason = closed.recv().await.expect("the server reports every close");
        assert!(
            matches!(reason, CloseReason::Clean),
            "close {i} of {n}: {reason:?}"
        );
    }
}

/// One tokio client: sends connection `seed`'s bytes in chunks of varied
/// sizes (flushing now and then) from a task of its own, shuts its side
/// down, and reads the echo to the end. Returns how long the sending took,
/// from the first write until the shutdown was done.
async fn echo_client(addr: SocketAddr, kind: Kind, seed: u64) -> Duration {
    let tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let (mut r, mut w) = tokio::io::split(LayeredStream::new(tcp, kind.stack(End::Client)));
    let data = payload(seed, BYTES);
    let sizes = chunk_sizes(seed, BYTES);
    let sent = data.clone();
    let writer = tokio::spawn(async move {
        let start = Instant::now();
        let mut at = 0;
        for (i, size) in sizes.into_iter().enumerate() {
            w.write_all(&sent[at..at + size]).await?;
            at += size;
            if i % 3 == 0 {
                w.flush().await?;
            }
        }
        // Ends the stack's streams (zstd's frame, TLS close_notify), then FIN.
        w.shutdown().await?;
        Ok::<_, io::Error>(start.elapsed())
    });
    let mut got = Vec::new();
    r.read_to_end(&mut got).await.unwrap_or_else(|e| {
        panic!(
            "connection {seed} ({kind:?}) failed after {}: {e}",
            first_difference(&got, &data)
        )
    });
    assert!(
        got == data,
        "connection {seed} ({kind:?}): {}",
        first_difference(&got, &data)
    );
    writer.await.unwrap().unwrap()
}

/// `CONNS` tokio clients at once against a reactor echo server of the same
/// stack; each connection then ends cleanly both ways (the server's
/// `on_peer_closed` closes its side in turn).
async fn tokio_clients_against_a_reactor_echo_server(kind: Kind) -> Vec<Duration> {
    let (server, mut closed) = echo_server(kind);
    let addr = server.local_addr();
    let clients: Vec<_> = (0..CONNS)
        .map(|seed| tokio::spawn(echo_client(addr, kind, seed)))
        .collect();
    let mut sending = Vec::new();
    for client in clients {
        sending.push(client.await.unwrap());
    }
    assert_clean_closes(&mut closed, CONNS).await;
    server.stop().unwrap();
    sending
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_clients_against_a_reactor_tls_echo_server() {
    within(
        "tls",
        tokio_clients_against_a_reactor_echo_server(Kind::Tls),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zstd_clients_against_a_reactor_zstd_echo_server() {
    within(
        "zstd",
        tokio_clients_against_a_reactor_echo_server(Kind::Zstd),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zstd_over_tls_clients_against_a_reactor_zstd_over_tls_echo_server() {
    let run = tokio_clients_against_a_reactor_echo_server(Kind::ZstdTls);
    within("zstd+tls", run).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shaped_clients_against_a_reactor_shaped_echo_server() {
    let sending = within(
        "shaped",
        tokio_clients_against_a_reactor_echo_server(Kind::Shaped),
    )
    .await;
    // Each client's own shaper held its writes to the rate after the burst
    // (a bound the token bucket guarantees, whatever the machine's speed).
    let least = Duration::from_secs_f64((BYTES as u64 - SHAPE_BURST) as f64 / SHAPE_RATE as f64);
    for (seed, took) in sending.iter().enumerate() {
        assert!(
            *took >= least,
            "connection {seed} sent {BYTES} bytes in {took:?}, less than the {least:?} its shaper allows"
        );
    }
}

/// The reactor's client side: sends connection `seed`'s bytes in chunks
/// from `on_open` (held by the stack until TLS is up), closes its side,
/// collects the echo, and reports it with how the connection ended.
struct Sender {
    seed: u64,
    got: Vec<u8>,
    done: mpsc::UnboundedSender<(u64, Vec<u8>, CloseReason)>,
}

impl Handler for Sender {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        let data = payload(self.seed, BYTES);
        let mut at = 0;
        for size in chunk_sizes(self.seed, BYTES) {
            // 64 KiB stays far below the 1 MiB high watermark.
            assert_eq!(cx.send(&data[at..at + size]).unwrap(), Sent::Queued);
            at += size;
        }
        cx.close();
    }

    fn on_message(&mut self, _: &mut Context<'_>, msg: Bytes) {
        self.got.extend_from_slice(&msg);
    }

    fn on_close(&mut self, reason: &CloseReason, _: &ConnectionStats) {
        let got = std::mem::take(&mut self.got);
        let _ = self.done.send((self.seed, got, reason.clone()));
    }
}

/// `conns` connections of a reactor client, on a loop of its own thread,
/// against a tokio server whose accepted connections are `LayeredStream`s
/// of `kind` that echo until the client's end and then end too.
async fn a_reactor_client_against_a_tokio_server(kind: Kind, conns: u64) {
    let listener = TcpListener::bind(localhost()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let mut echoes = Vec::new();
        for _ in 0..conns {
            let (tcp, _) = listener.accept().await?;
            echoes.push(tokio::spawn(async move {
                let stream = LayeredStream::new(tcp, kind.stack(End::Server));
                let (mut r, mut w) = tokio::io::split(stream);
                let echoed = tokio::io::copy(&mut r, &mut w).await?;
                w.shutdown().await?;
                Ok::<_, io::Error>(echoed)
            }));
        }
        for echo in echoes {
            assert_eq!(echo.await.unwrap()?, BYTES as u64);
        }
        Ok::<_, io::Error>(())
    });

    let (done, mut results) = mpsc::unbounded_channel();
    let client = tokio::task::spawn_blocking(move || {
        let mut event_loop: EventLoop<DynStack, RawCodec, Sender> =
            EventLoop::new(LoopConfig::new()).unwrap();
        for seed in 0..conns {
            let conn = Connection::new(kind.stack(End::Client), RawCodec::new());
            let sender = Sender {
                seed,
                got: Vec::new(),
                done: done.clone(),
            };
            event_loop.connect(addr, conn, sender).unwrap();
        }
        // The loop's own bound, so that the blocking thread always ends.
        let deadline = Instant::now() + HANG;
        while event_loop.connections() > 0 && Instant::now() < deadline {
            event_loop.turn(Some(Duration::from_millis(50))).unwrap();
        }
        event_loop.connections()
    });
    within(&format!("reactor client, {kind:?}"), async {
        assert_eq!(client.await.unwrap(), 0, "connections left open");
        for _ in 0..conns {
            let (seed, got, reason) = results.recv().await.unwrap();
            let data = payload(seed, BYTES);
            assert!(
                got == data,
                "connection {seed}: {}",
                first_difference(&got, &data)
            );
            assert!(
                matches!(reason, CloseReason::Clean),
                "connection {seed}: {reason:?}"
            );
        }
        server.await.unwrap().unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reactor_tls_client_against_tokio_tls_servers() {
    a_reactor_client_against_a_tokio_server(Kind::Tls, 8).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reactor_zstd_client_against_tokio_zstd_servers() {
    a_reactor_client_against_a_tokio_server(Kind::Zstd, 8).await;
}

/// A zstd frame cut after two complete blocks: the reactor's connection
/// closes with `Error::Truncated`, and a `LayeredStream` that reads the
/// same bytes then the end of its transport fails with that very error
/// inside an `UnexpectedEof`, after delivering both blocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zstd_frame_cut_short_is_the_same_truncation_on_tokio_as_on_the_reactor() {
    within("truncation", async {
        let pieces = zstd_wire(&[b"first block ", b"second block"]).await;
        let cut = [&pieces[0][..], &pieces[1][..]].concat();

        // The reactor: a raw client writes the cut frame, then its FIN.
        let (server, mut closed) = echo_server(Kind::Zstd);
        let mut raw = TcpStream::connect(server.local_addr()).await.unwrap();
        raw.write_all(&cut).await.unwrap();
        raw.shutdown().await.unwrap();
        let mut echoed = Vec::new();
        // The server aborts after the error: a reset or an end, either way.
        let _ = raw.read_to_end(&mut echoed).await;
        let reactor = match closed.recv().await.unwrap() {
            CloseReason::Error(e) => e,
            other => panic!("the reactor closed with {other:?}, not a truncation"),
        };
        server.stop().unwrap();

        // tokio: the same bytes, then the end of the transport.
        let (ours, mut wire) = tokio::io::duplex(1024);
        let mut ours = LayeredStream::new(
            ours,
            DynStack::new(vec![Box::new(netstrata_zstd::Zstd::new())]),
        );
        wire.write_all(&cut).await.unwrap();
        wire.shutdown().await.unwrap();
        let mut got = Vec::new();
        let e = ours.read_to_end(&mut got).await.unwrap_err();
        assert_eq!(
            got, b"first block second block",
            "the blocks before the cut"
        );
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
        let tokio = stack_error(&e).expect("the stack's error inside");

        assert!(
            matches!(
                reactor,
                Error::Truncated {
                    layer: "zstd",
                    detail: "transport ended inside a zstd frame"
                }
            ),
            "{reactor}"
        );
        assert_eq!(tokio.to_string(), reactor.to_string());
        assert!(matches!(tokio, Error::Truncated { layer: "zstd", .. }));
    })
    .await;
}
