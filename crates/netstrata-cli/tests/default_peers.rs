//! Peers nobody here wrote, at their defaults, against the server people
//! run (`netstrata echo-server --zstd`, or `echo::serve` with the same
//! stack): the `zstd` command-line tool, async-compression over tokio, the
//! `zstd` crate's stream encoder, and the whole profile from tokio
//! (tokio-rustls + async-compression + tokio-util). Every byte is checked;
//! a window above the limit and a frame the decoder budget cannot cover are
//! refused with their reason, and only that connection ends.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use netstrata_cli::echo;
use netstrata_cli::stack::StackOptions;
use netstrata_core::testing::{external_tool, run_piped};
use netstrata_reactor::CloseKind;
use netstrata_zstd::{DecoderBudget, ZstdConfig};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

/// Bounds every blocking read and every async test, so a bug fails the test
/// instead of hanging it.
const TIMEOUT: Duration = Duration::from_secs(20);

/// `count` messages of varied sizes (1 B to about 20 KiB) and contents:
/// log-like text with the message's number in it, and some incompressible bytes.
fn messages(seed: u64, count: usize) -> Vec<Vec<u8>> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..count)
        .map(|i| {
            let size = 1 + (next() % 20_000) as usize;
            if i % 7 == 3 {
                (0..size).map(|_| next() as u8).collect()
            } else {
                let line = format!(
                    "{{\"seq\":{i},\"conn\":{seed},\"msg\":\"request done\",\"status\":200}}\n"
                );
                line.bytes().cycle().take(size).collect()
            }
        })
        .collect()
}

/// `msgs` as the default framing puts them on the wire: a 4-byte
/// big-endian length before each.
fn length_delimited(msgs: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in msgs {
        out.extend_from_slice(&(m.len() as u32).to_be_bytes());
        out.extend_from_slice(m);
    }
    out
}

/// Runs `zstd args` with `input` piped in (so, as on a stream, it does not
/// know the size and declares the window of its level).
fn zstd_cli(args: &[&str], input: &[u8]) -> Vec<u8> {
    run_piped("zstd", args, input)
}

/// Sends `wire` on a new connection to `addr`, ends the write side, and
/// returns all the server sent back until it closed (or what arrived
/// before a reset).
fn exchange(addr: SocketAddr, wire: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut reader = stream.try_clone().unwrap();
    let reply = thread::spawn(move || {
        let mut got = Vec::new();
        let _ = reader.read_to_end(&mut got);
        got
    });
    // A refused connection may be reset while we still write.
    if stream.write_all(wire).is_ok() {
        let _ = stream.shutdown(Shutdown::Write);
    }
    reply.join().unwrap()
}

/// The `netstrata` binary serving echoes, killed when dropped.
struct EchoServer {
    child: Child,
    addr: SocketAddr,
    stderr: Receiver<String>,
}

impl EchoServer {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_netstrata"))
            .args(["echo-server", "--addr", "127.0.0.1:0", "--threads", "2"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        let addr = first
            .split_whitespace()
            .nth(4)
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {first:?}"));
        let (tx, stderr) = mpsc::channel();
        let err = BufReader::new(child.stderr.take().unwrap());
        thread::spawn(move || {
            for line in err.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Self {
            child,
            addr,
            stderr,
        }
    }

    /// The first stderr line that contains every one of `needles`.
    fn wait_for_line(&self, needles: &[&str]) -> String {
        loop {
            let line = self
                .stderr
                .recv_timeout(TIMEOUT)
                .unwrap_or_else(|_| panic!("no log line with {needles:?}"));
            if needles.iter().all(|n| line.contains(n)) {
                return line;
            }
        }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_zstd_cli_at_its_levels_talks_to_the_echo_server() {
    if !external_tool("zstd", &[]) {
        return;
    }
    let server = EchoServer::start(&["--zstd", "-v"]);
    let msgs = messages(1, 60);
    let plain = length_delimited(&msgs);
    // Piped, level 3 declares a 2 MiB window, level 19 and --long=23 8 MiB.
    for args in [&["-3"][..], &["-19"], &["--long=23"]] {
        let wire = zstd_cli(&[args, &["-c"]].concat(), &plain);
        let reply = exchange(server.addr, &wire);
        let echoed = zstd_cli(&["-d", "-c"], &reply);
        assert!(echoed == plain, "zstd {args:?}: the echo differs");
    }
    // Each clean close is logged at debug with its id and peer.
    server.wait_for_line(&["DEBUG", "conn ", "from 127.0.0.1:", "closed: clean"]);

    // A 16 MiB window is refused, and the log says with what and why.
    let wire = zstd_cli(&["--long=24", "-c"], &plain);
    let reply = exchange(server.addr, &wire);
    assert!(reply.len() < 64, "nothing is echoed: {} bytes", reply.len());
    let line = server.wait_for_line(&[
        "WARN",
        "from 127.0.0.1:",
        "closed: zstd: peer misbehaved: peer window 16 MiB (2^24) exceeds the limit 8 MiB (2^23)",
    ]);
    assert!(line.contains("conn "), "{line}");

    // The server still serves after the refusal.
    let wire = zstd_cli(&["-3", "-c"], &plain);
    assert!(zstd_cli(&["-d", "-c"], &exchange(server.addr, &wire)) == plain);
}

#[test]
fn the_window_limit_and_budget_are_flags() {
    if !external_tool("zstd", &[]) {
        return;
    }
    // With the limit at 2^20, level 3's 2 MiB window is refused.
    let server = EchoServer::start(&["--zstd", "--zstd-max-window-log", "20"]);
    let wire = zstd_cli(&["-3", "-c"], &length_delimited(&messages(2, 5)));
    exchange(server.addr, &wire);
    server.wait_for_line(&["peer window 2 MiB (2^21) exceeds the limit 1 MiB (2^20)"]);
    drop(server);

    // A 1 MiB budget cannot hold a 2 MiB window's decoder.
    let server = EchoServer::start(&["--zstd", "--zstd-memory-budget", "1MiB"]);
    exchange(server.addr, &wire);
    server.wait_for_line(&["closed: zstd: local limit:"]);
}

fn zstd_stack(config: ZstdConfig) -> StackOptions {
    StackOptions {
        zstd: Some(config),
        ..StackOptions::default()
    }
}

#[test]
fn async_compression_at_its_defaults_on_many_connections() {
    const CONNS: u64 = 24;
    let server = echo::serve(
        "127.0.0.1:0".parse().unwrap(),
        2,
        zstd_stack(ZstdConfig::new()),
    )
    .unwrap();
    let addr = server.local_addr();
    let closes = server.close_counts();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let clients = (0..CONNS).map(|seed| {
            tokio::spawn(async move {
                let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
                let (r, w) = stream.into_split();
                // Defaults: level 3, and a 2 MiB window on a stream.
                let encoder = async_compression::tokio::write::ZstdEncoder::new(w);
                let mut tx = FramedWrite::new(encoder, LengthDelimitedCodec::new());
                let decoder = async_compression::tokio::bufread::ZstdDecoder::new(
                    tokio::io::BufReader::new(r),
                );
                let mut rx = FramedRead::new(decoder, LengthDelimitedCodec::new());
                for m in messages(seed, 80) {
                    // `send` flushes the encoder: a zstd block per message.
                    tx.send(Bytes::from(m.clone())).await.unwrap();
                    let echo = rx.next().await.expect("an echo").unwrap();
                    assert!(echo[..] == m[..], "conn {seed}: echo differs");
                }
                SinkExt::<Bytes>::close(&mut tx).await.unwrap();
                assert!(rx.next().await.is_none(), "a clean end after ours");
            })
        });
        let all = futures::future::join_all(clients);
        for joined in tokio::time::timeout(TIMEOUT, all).await.expect("timed out") {
            joined.unwrap();
        }
    });
    server.shutdown(TIMEOUT).unwrap();
    assert_eq!(
        closes.get(CloseKind::Clean),
        CONNS,
        "{:?}",
        closes.snapshot()
    );
    assert_eq!(closes.total(), CONNS);
}

/// A client of the `zstd` crate's default stream encoder (level 0 = 3, a
/// 2 MiB window on a stream), flushed after each message; reads the echoes
/// with its stream decoder, checks each, and calls `after_first` once the
/// first echo is in. Returns the number of messages echoed.
fn zstd_crate_client(
    addr: SocketAddr,
    seed: u64,
    after_first: impl FnOnce(),
) -> std::io::Result<usize> {
    let stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    let mut encoder = zstd::stream::write::Encoder::new(stream.try_clone()?, 0)?;
    let mut decoder = zstd::stream::read::Decoder::new(stream.try_clone()?)?;
    let msgs = messages(seed, 40);
    let mut after_first = Some(after_first);
    for (i, m) in msgs.iter().enumerate() {
        encoder.write_all(&(m.len() as u32).to_be_bytes())?;
        encoder.write_all(m)?;
        encoder.flush()?;
        let mut len = [0; 4];
        decoder.read_exact(&mut len)?;
        let mut echo = vec![0; u32::from_be_bytes(len) as usize];
        decoder.read_exact(&mut echo)?;
        assert!(echo == *m, "conn {seed}: echo {i} differs");
        if let Some(f) = after_first.take() {
            f();
        }
    }
    encoder.finish()?;
    stream.shutdown(Shutdown::Write)?;
    let mut rest = Vec::new();
    decoder.read_to_end(&mut rest)?;
    assert!(rest.is_empty(), "nothing after the echoes");
    Ok(msgs.len())
}

#[test]
fn the_zstd_crate_s_default_encoder_on_many_connections() {
    let server = echo::serve(
        "127.0.0.1:0".parse().unwrap(),
        2,
        zstd_stack(ZstdConfig::new()),
    )
    .unwrap();
    let addr = server.local_addr();
    let clients: Vec<_> = (0..16)
        .map(|seed| thread::spawn(move || zstd_crate_client(addr, seed, || {})))
        .collect();
    for client in clients {
        assert_eq!(client.join().unwrap().unwrap(), 40);
    }
    let closes = server.close_counts();
    server.shutdown(TIMEOUT).unwrap();
    assert_eq!(closes.get(CloseKind::Clean), 16, "{:?}", closes.snapshot());
}

#[test]
fn a_connection_the_budget_cannot_cover_is_refused_and_the_others_finish() {
    // Room for two level-3 peers' decoders (about 2.5 MB each), not three.
    let budget = DecoderBudget::new(6_000_000);
    let config = ZstdConfig::new().with_decoder_budget(budget.clone());
    let server = echo::serve("127.0.0.1:0".parse().unwrap(), 2, zstd_stack(config)).unwrap();
    let addr = server.local_addr();
    let closes = server.close_counts();

    // Two clients exchange one message each, so their decoders are
    // reserved, then wait.
    let mut holders = Vec::new();
    for seed in 0..2 {
        let (first, first_done) = mpsc::channel();
        let (go, wait) = mpsc::channel::<()>();
        let client = thread::spawn(move || {
            zstd_crate_client(addr, seed, move || {
                first.send(()).unwrap();
                let _ = wait.recv();
            })
        });
        first_done.recv_timeout(TIMEOUT).expect("first echo");
        holders.push((client, go));
    }
    assert!(
        budget.in_use() > 5_000_000,
        "two reservations: {}",
        budget.in_use()
    );

    // A third does not fit: refused with the typed local-limit error.
    let refused = zstd_crate_client(addr, 9, || {});
    assert!(refused.is_err(), "the third connection is closed");

    // The first two finish their exchanges intact.
    for (client, go) in holders {
        go.send(()).unwrap();
        assert_eq!(client.join().unwrap().unwrap(), 40);
    }
    server.shutdown(TIMEOUT).unwrap();
    assert_eq!(budget.refused(), 1);
    assert_eq!(budget.in_use(), 0, "every reservation returned");
    assert_eq!(
        closes.get(CloseKind::LocalLimit("zstd")),
        1,
        "{:?}",
        closes.snapshot()
    );
    assert_eq!(closes.get(CloseKind::Clean), 2, "{:?}", closes.snapshot());
}

/// The whole default profile from tokio, every piece at its defaults:
/// tokio-rustls (TLS 1.3, rustls' defaults), async-compression's zstd on
/// each half of the TLS stream, tokio-util's `LengthDelimitedCodec`,
/// against the server with TLS and zstd.
#[test]
fn tokio_rustls_with_async_compression_against_tls_and_zstd() {
    let ca = netstrata_tls::dev_certs::DevCa::new().unwrap();
    let leaf = ca.issue(&["localhost"]).unwrap();
    let server_tls = netstrata_tls::ServerOptions::new()
        .with_identity(leaf.identity())
        .build()
        .unwrap();
    // What a tokio-rustls user writes: rustls' defaults, our CA trusted.
    // (With every feature on, rustls has both providers compiled in and
    // wants one named for the process, as such an application would.)
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let config = Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(ca.roots())
            .with_no_client_auth(),
    );
    let stack = StackOptions {
        tls: Some(netstrata_cli::stack::TlsSide::Server(server_tls)),
        ..zstd_stack(ZstdConfig::new())
    };
    let server = echo::serve("127.0.0.1:0".parse().unwrap(), 2, stack).unwrap();
    let addr = server.local_addr();
    let closes = server.close_counts();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let clients = (0..8u64).map(|seed| {
            let connector = tokio_rustls::TlsConnector::from(config.clone());
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            tokio::spawn(async move {
                let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
                let tls = connector.connect(name, tcp).await.unwrap();
                let (r, w) = tokio::io::split(tls);
                let encoder = async_compression::tokio::write::ZstdEncoder::new(w);
                let mut tx = FramedWrite::new(encoder, LengthDelimitedCodec::new());
                let decoder = async_compression::tokio::bufread::ZstdDecoder::new(
                    tokio::io::BufReader::new(r),
                );
                let mut rx = FramedRead::new(decoder, LengthDelimitedCodec::new());
                for m in messages(seed, 40) {
                    tx.send(Bytes::from(m.clone())).await.unwrap();
                    let echo = rx.next().await.expect("an echo").unwrap();
                    assert!(echo[..] == m[..], "conn {seed}: echo differs");
                }
                // Ends the zstd frame, then close_notify and FIN.
                SinkExt::<Bytes>::close(&mut tx).await.unwrap();
                assert!(rx.next().await.is_none(), "a clean end after ours");
            })
        });
        let all = futures::future::join_all(clients);
        for joined in tokio::time::timeout(TIMEOUT, all).await.expect("timed out") {
            joined.unwrap();
        }
    });
    server.shutdown(TIMEOUT).unwrap();
    assert_eq!(closes.get(CloseKind::Clean), 8, "{:?}", closes.snapshot());
}

#[test]
fn a_zstd_peer_that_sends_megabytes_before_reading_gets_every_echo() {
    // 400 compressible 16 KiB messages are about 6.5 MB decoded but a few
    // kB on the wire: the server reads them in a turn or two and decodes
    // far more echoes than its send buffer (1 MiB) holds. It must pause
    // reading at the high watermark rather than give up on the peer.
    const COUNT: usize = 400;
    let stack = zstd_stack(ZstdConfig::default());
    let server = echo::serve("127.0.0.1:0".parse().unwrap(), 1, stack.clone()).unwrap();
    let stream = TcpStream::connect(server.local_addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    // A client send buffer that takes them all: one flush, one burst.
    let conn = netstrata_core::Connection::with_config(
        netstrata_core::DynStack::new(vec![Box::new(netstrata_zstd::Zstd::new())]),
        netstrata_frame::LengthDelimited::new(),
        netstrata_core::ConnectionConfig::default().with_send_buffer(16 << 20),
    );
    let mut client = netstrata_core::Blocking::new(stream, conn);
    let body = |i: usize| {
        let mut msg = format!("message {i:05} ").into_bytes();
        msg.resize(16 * 1024, b'x');
        msg
    };
    for i in 0..COUNT {
        client.send(&body(i)).unwrap();
    }
    client.flush().unwrap();
    for i in 0..COUNT {
        let echo = client.recv().unwrap().expect("an echo, not the end");
        assert!(echo[..] == body(i)[..], "echo {i} differs");
    }
    server.stop().unwrap();
}
