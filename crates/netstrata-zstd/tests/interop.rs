//! Interop with zstd implementations nobody here wrote, over loopback TCP:
//! async-compression (tokio) with tokio-util's length-delimited frames, and
//! the `zstd` command-line tool.

mod common;

use std::net::{TcpListener, TcpStream};

use std::thread;
use std::time::{Duration, Instant};

use async_compression::Level;
use async_compression::tokio::bufread::ZstdDecoder;
use async_compression::tokio::write::ZstdEncoder;
use async_compression::zstd::CParameter;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use netstrata_core::{Blocking, Connection, Error};
use netstrata_frame::LengthDelimited;
use netstrata_zstd::{Dictionary, Zstd, ZstdConfig, ZstdError};
use tokio::io::BufReader;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

/// Bounds every blocking read and every async test, so a bug fails the test
/// instead of hanging it.
const TIMEOUT: Duration = Duration::from_secs(10);

fn messages() -> Vec<Vec<u8>> {
    let mut msgs = common::log_messages(1, 40);
    msgs.extend(common::mixed_messages(2, 30));
    msgs.push(common::log_text(3, 100_000));
    msgs
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .unwrap()
}

fn blocking(stream: TcpStream, config: ZstdConfig) -> Blocking<TcpStream, Zstd, LengthDelimited> {
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let conn = Connection::new(Zstd::with_config(config), LengthDelimited::new());
    Blocking::new(stream, conn)
}

/// Our server echoes every message, then ends its frame after the client's.
fn echo_server(listener: TcpListener, config: ZstdConfig) -> netstrata_core::Result<Vec<Vec<u8>>> {
    let (stream, _) = listener.accept()?;
    let mut conn = blocking(stream, config);
    let mut got = Vec::new();
    // `recv` flushes the echo before it waits for the next message.
    while let Some(msg) = conn.recv()? {
        conn.send(&msg)?;
        got.push(msg.to_vec());
    }
    conn.shutdown()?;
    Ok(got)
}

/// async-compression's encoder: at its defaults (level 3, a 2 MiB window
/// on a stream), or with the window `window_log` asks for.
fn encoder<W: tokio::io::AsyncWrite>(w: W, window_log: Option<u32>) -> ZstdEncoder<W> {
    match window_log {
        Some(log) => {
            ZstdEncoder::with_quality_and_params(w, Level::Default, &[CParameter::window_log(log)])
        }
        None => ZstdEncoder::new(w),
    }
}

#[test]
fn async_compression_client_with_our_server() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = thread::spawn(move || echo_server(listener, ZstdConfig::new()));
    let msgs = messages();
    let sent = msgs.clone();
    runtime().block_on(async move {
        tokio::time::timeout(TIMEOUT, async move {
            let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (r, w) = stream.into_split();
            let mut tx = FramedWrite::new(encoder(w, None), LengthDelimitedCodec::new());
            let mut rx = FramedRead::new(
                ZstdDecoder::new(BufReader::new(r)),
                LengthDelimitedCodec::new(),
            );
            for m in &sent {
                // `send` flushes the zstd encoder: the message is decodable
                // as soon as it arrives, and so is the echo.
                tx.send(Bytes::copy_from_slice(m)).await.unwrap();
                let echo = rx.next().await.expect("an echo").unwrap();
                assert_eq!(&echo[..], &m[..]);
            }
            // Ends the zstd frame, then shuts down the write side.
            SinkExt::<Bytes>::close(&mut tx).await.unwrap();
            assert!(
                rx.next().await.is_none(),
                "our server ends its frame cleanly"
            );
        })
        .await
        .expect("timed out");
    });
    assert_eq!(server.join().unwrap().unwrap(), msgs);
}

#[test]
fn our_client_with_an_async_compression_server() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = thread::spawn(move || {
        runtime().block_on(async move {
            tokio::time::timeout(TIMEOUT, async move {
                let (stream, _) = listener.accept().unwrap();
                stream.set_nonblocking(true).unwrap();
                let stream = tokio::net::TcpStream::from_std(stream).unwrap();
                let (r, w) = stream.into_split();
                let mut rx = FramedRead::new(
                    ZstdDecoder::new(BufReader::new(r)),
                    LengthDelimitedCodec::new(),
                );
                let mut tx = FramedWrite::new(encoder(w, None), LengthDelimitedCodec::new());
                let mut got = Vec::new();
                while let Some(msg) = rx.next().await {
                    let msg = msg.unwrap();
                    tx.send(msg.clone().freeze()).await.unwrap();
                    got.push(msg.to_vec());
                }
                SinkExt::<Bytes>::close(&mut tx).await.unwrap();
                got
            })
            .await
            .expect("timed out")
        })
    });
    let mut conn = blocking(TcpStream::connect(addr).unwrap(), ZstdConfig::new());
    let msgs = messages();
    for m in &msgs {
        conn.send(m).unwrap();
        // `recv` flushes (one zstd block) before it waits for the echo.
        let echo = conn.recv().unwrap().expect("an echo");
        assert_eq!(&echo[..], &m[..]);
    }
    conn.shutdown().unwrap();
    assert!(conn.recv().unwrap().is_none(), "the server ended its frame");
    assert!(conn.connection().is_read_closed());
    assert_eq!(server.join().unwrap(), msgs);
}

/// A window above our limit is refused with a typed error that names both,
/// before anything is allocated for it: async-compression told to use
/// 16 MiB against our default limit (8 MiB), and at its defaults (2 MiB)
/// against a limit lowered to 1 MiB.
#[test]
fn a_window_above_our_limit_is_refused_with_both_sizes() {
    for (window_log, limit_log) in [(Some(24), None), (None, Some(20))] {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let config = match limit_log {
            Some(log) => ZstdConfig::new().with_max_window_log(log),
            None => ZstdConfig::new(),
        };
        let limit = config.max_window();
        let server = thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut conn = blocking(stream, config);
            let first = conn.recv();
            (first, conn.connection().stack().decoder_memory())
        });
        runtime().block_on(async move {
            let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let mut tx = FramedWrite::new(encoder(stream, window_log), LengthDelimitedCodec::new());
            tx.send(Bytes::from_static(b"hello")).await.unwrap();
            // The server may already have closed: only the sending matters.
            let _ = SinkExt::<Bytes>::close(&mut tx).await;
        });
        let (first, memory) = server.join().unwrap();
        let err = first.expect_err("refused");
        assert!(
            matches!(err, Error::PeerMisbehaved { layer: "zstd", .. }),
            "{err}"
        );
        let window = 1 << window_log.unwrap_or(21);
        assert_eq!(
            err.downcast_ref::<ZstdError>(),
            Some(&ZstdError::WindowTooLarge { window, limit })
        );
        assert_eq!(memory, 0, "nothing allocated for the refused window");
    }
}

/// Runs the `zstd` CLI with `args` on `input` (piped: the CLI does not
/// know the size, as with a stream); `None` (after saying why) if the tool
/// is not installed, which fails the test under CI.
fn zstd_cli(args: &[&str], input: &[u8]) -> Option<Vec<u8>> {
    netstrata_core::testing::external_tool("zstd", &[])
        .then(|| netstrata_core::testing::run_piped("zstd", args, input))
}

/// What one side of a connection puts on the wire: `msgs` in batches of 5,
/// then an orderly close.
fn capture(config: ZstdConfig, msgs: &[Vec<u8>]) -> Vec<u8> {
    let now = Instant::now();
    let mut conn = Connection::new(Zstd::with_config(config), LengthDelimited::new());
    let mut wire = Vec::new();
    let mut drain = |conn: &mut Connection<Zstd, LengthDelimited>| {
        while let Some(bytes) = conn.poll_transmit(now).unwrap() {
            wire.extend_from_slice(bytes);
            let n = bytes.len();
            conn.advance_transmit(n);
        }
    };
    for batch in msgs.chunks(5) {
        for m in batch {
            conn.send(m).unwrap();
        }
        drain(&mut conn);
    }
    conn.close();
    drain(&mut conn);
    assert!(conn.is_write_closed());
    wire
}

fn length_delimited(msgs: &[Vec<u8>]) -> Vec<u8> {
    msgs.iter()
        .flat_map(|m| {
            (m.len() as u32)
                .to_be_bytes()
                .into_iter()
                .chain(m.iter().copied())
        })
        .collect()
}

#[test]
fn the_zstd_cli_decodes_a_captured_direction() {
    let msgs = messages();
    let expected = length_delimited(&msgs);
    for config in [
        ZstdConfig::new(),
        ZstdConfig::new().with_checksum(true).with_level(9),
    ] {
        let wire = capture(config, &msgs);
        let Some(plain) = zstd_cli(&["-d", "-c"], &wire) else {
            return;
        };
        assert_eq!(plain, expected);
    }

    // With a dictionary: the CLI reads the same bytes with -D.
    let dict = Dictionary::train(&common::log_messages(4, 1000), 8192).unwrap();
    let path = std::env::temp_dir().join(format!("netstrata-zstd-dict-{}", std::process::id()));
    std::fs::write(&path, dict.as_bytes()).unwrap();
    let wire = capture(ZstdConfig::new().with_dictionary(dict), &msgs);
    let plain = zstd_cli(&["-d", "-c", "-D", path.to_str().unwrap()], &wire);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(plain.expect("zstd ran above"), expected);
}

/// Decodes `wire` on a default connection fed 1000 bytes at a time; the
/// messages, or the error.
fn decode(wire: &[u8]) -> netstrata_core::Result<Vec<Vec<u8>>> {
    let now = Instant::now();
    let mut conn = Connection::new(Zstd::new(), LengthDelimited::new());
    let mut got = Vec::new();
    for chunk in wire.chunks(1000) {
        let mut chunk = chunk;
        while !chunk.is_empty() {
            let n = conn.handle_input(now, chunk)?;
            chunk = &chunk[n..];
            while let Some(m) = conn.poll_message(now)? {
                got.push(m.to_vec());
            }
        }
    }
    conn.handle_input_eof(now)?;
    while let Some(m) = conn.poll_message(now)? {
        got.push(m.to_vec());
    }
    assert!(conn.is_read_closed());
    Ok(got)
}

/// The CLI at its defaults, on a stream: `-3` declares 2 MiB, `-19` and
/// `--long=23` 8 MiB, all within our default limit; `--long=24` is refused
/// with both sizes named.
#[test]
fn we_decode_what_the_zstd_cli_compresses_at_its_defaults() {
    let msgs = messages();
    let plain = length_delimited(&msgs);
    for args in [
        &["-3"][..],
        &["-19"],
        &["--long=23"],
        &["-1", "--zstd=wlog=10"],
    ] {
        let args = [args, &["-c"]].concat();
        let Some(wire) = zstd_cli(&args, &plain) else {
            return;
        };
        assert_eq!(decode(&wire).expect("decoded"), msgs, "zstd {args:?}");
    }
    let wire = zstd_cli(&["--long=24", "-c"], &plain).expect("zstd ran above");
    let err = decode(&wire).expect_err("refused");
    assert_eq!(
        err.downcast_ref::<ZstdError>(),
        Some(&ZstdError::WindowTooLarge {
            window: 1 << 24,
            limit: 1 << 23
        })
    );
}

/// `zstd -d` reads a stream of frames; so do we: files compressed apart
/// and concatenated (`cat a.zst b.zst`) decode as one stream.
#[test]
fn concatenated_zstd_cli_outputs_decode_as_one_stream() {
    let msgs = messages();
    let mut wire = Vec::new();
    for part in msgs.chunks(7) {
        let Some(frame) = zstd_cli(&["-c", "-5"], &length_delimited(part)) else {
            return;
        };
        wire.extend_from_slice(&frame);
    }
    assert_eq!(decode(&wire).expect("decoded"), msgs);
}
