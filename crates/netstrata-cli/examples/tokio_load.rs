//! A load client on tokio, for measuring servers with a client written the
//! way a tokio user writes one (the benches also use `netstrata bench`):
//! tokio-util's `Framed` with `LengthDelimitedCodec` on a multi-threaded
//! runtime, `--conns` connections each keeping `--depth` frames of `--size`
//! bytes in flight (closed loop), every echo checked against what was sent,
//! each round trip recorded in an HDR histogram. Writes are batched as a
//! careful tokio client batches them: frames are fed as echoes arrive and
//! flushed when the read buffer holds no further whole frame.
//!
//! `--ca FILE`: over TLS (tokio-rustls, aws-lc-rs, TLS 1.3, server name
//! `localhost`), trusting the CA certificate in FILE.
//!
//! Prints one JSON line: `{"messages", "secs", "msgs_per_sec", "p50_us",
//! "p90_us", "p99_us", "p999_us", "max_us", "errors"}`.
//!
//! `cargo run --release -p netstrata-cli --example tokio_load -- 127.0.0.1:7000 [--conns 16] [--depth 16] [--size 64] [--secs 3] [--workers 1] [--ca FILE]`

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

/// The flags, with their defaults.
struct Options {
    addr: SocketAddr,
    conns: usize,
    depth: usize,
    size: usize,
    secs: f64,
    workers: usize,
    /// `--ca`: TLS, trusting this CA.
    tls: Option<tokio_rustls::TlsConnector>,
}

fn options() -> Result<Options, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr = args
        .first()
        .ok_or("usage: tokio_load ADDR [--conns N] [--depth N] [--size BYTES] [--secs S] [--workers N]")?
        .parse()
        .map_err(|e| format!("ADDR: {e}"))?;
    let flag = |name: &str, default: f64| -> Result<f64, String> {
        match args.iter().position(|a| a == name) {
            None => Ok(default),
            Some(i) => args
                .get(i + 1)
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|v| *v > 0.0)
                .ok_or(format!("{name} takes a number above 0")),
        }
    };
    let options = Options {
        addr,
        conns: flag("--conns", 16.0)? as usize,
        depth: flag("--depth", 16.0)? as usize,
        size: flag("--size", 64.0)? as usize,
        secs: flag("--secs", 3.0)?,
        workers: flag("--workers", 1.0)? as usize,
        tls: match args.iter().position(|a| a == "--ca") {
            None => None,
            Some(i) => Some(connector(args.get(i + 1).ok_or("--ca takes a file")?)?),
        },
    };
    if options.size < 8 {
        return Err("--size must be at least 8 (each frame starts with a sequence number)".into());
    }
    Ok(options)
}

/// A TLS 1.3 client on aws-lc-rs trusting the CA certificate in `ca`.
fn connector(ca: &str) -> Result<tokio_rustls::TlsConnector, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| format!("{ca}: {e}"))? {
        roots
            .add(cert.map_err(|e| format!("{ca}: {e}"))?)
            .map_err(|e| format!("{ca}: {e}"))?;
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(std::sync::Arc::new(
        config,
    )))
}

/// Frame `seq`: its sequence number, then bytes that follow from it.
fn frame(seq: u64, size: usize) -> Bytes {
    let mut b = BytesMut::with_capacity(size);
    b.put_u64(seq);
    b.extend(body(seq, size));
    b.freeze()
}

/// The bytes of frame `seq` after its sequence number.
fn body(seq: u64, size: usize) -> impl Iterator<Item = u8> {
    (8..size).map(move |i| (seq as usize).wrapping_mul(31).wrapping_add(i) as u8)
}

/// Whether `echo` is frame `seq` (checked in place: no frame is built).
fn is_frame(echo: &[u8], seq: u64, size: usize) -> bool {
    echo.len() == size
        && echo[..8] == seq.to_be_bytes()
        && echo[8..].iter().copied().eq(body(seq, size))
}

/// What one connection measured.
struct Outcome {
    histogram: Histogram<u64>,
    errors: u64,
}

/// One connection, over TLS with `--ca`.
async fn connection(o: &Options, end: Instant) -> io::Result<Outcome> {
    let stream = TcpStream::connect(o.addr).await?;
    stream.set_nodelay(true)?;
    match &o.tls {
        None => exchange(stream, o, end).await,
        Some(tls) => {
            let name =
                rustls::pki_types::ServerName::try_from("localhost").map_err(io::Error::other)?;
            exchange(tls.connect(name, stream).await?, o, end).await
        }
    }
}

/// `depth` frames in flight until `end`, then the frames still in flight
/// come back and the connection ends in order.
async fn exchange<IO: AsyncRead + AsyncWrite + Unpin>(
    io: IO,
    o: &Options,
    end: Instant,
) -> io::Result<Outcome> {
    let mut framed = Framed::new(io, LengthDelimitedCodec::new());
    let mut histogram = Histogram::new(3).map_err(io::Error::other)?;
    let mut errors = 0;
    let mut in_flight: VecDeque<(u64, Instant)> = VecDeque::with_capacity(o.depth);
    let mut next = 0u64;
    for _ in 0..o.depth {
        framed.feed(frame(next, o.size)).await?;
        in_flight.push_back((next, Instant::now()));
        next += 1;
    }
    SinkExt::<Bytes>::flush(&mut framed).await?;
    while let Some((seq, sent)) = in_flight.pop_front() {
        let echo = framed
            .next()
            .await
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "the server ended"))??;
        let now = Instant::now();
        if !is_frame(&echo, seq, o.size) {
            errors += 1;
        }
        // Auto-resizing: recording cannot fail.
        let _ = histogram.record(now.duration_since(sent).as_micros() as u64);
        if now < end {
            framed.feed(frame(next, o.size)).await?;
            in_flight.push_back((next, now));
            next += 1;
        }
        if framed.read_buffer().is_empty() {
            SinkExt::<Bytes>::flush(&mut framed).await?;
        }
    }
    SinkExt::<Bytes>::close(&mut framed).await?;
    Ok(Outcome { histogram, errors })
}

fn main() -> io::Result<()> {
    let o = match options() {
        Ok(o) => o,
        Err(message) => {
            eprintln!("tokio_load: {message}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(o.workers)
        .enable_all()
        .build()?;
    let o = std::sync::Arc::new(o);
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(o.secs);
    let outcomes = runtime.block_on(async {
        let tasks: Vec<_> = (0..o.conns)
            .map(|_| {
                let o = o.clone();
                tokio::spawn(async move { connection(&o, end).await })
            })
            .collect();
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(task.await.map_err(io::Error::other)?);
        }
        Ok::<_, io::Error>(outcomes)
    })?;
    let secs = start.elapsed().as_secs_f64();
    let mut histogram = Histogram::<u64>::new(3).map_err(io::Error::other)?;
    let mut errors = 0;
    for outcome in outcomes {
        match outcome {
            Ok(c) => {
                histogram.add(&c.histogram).map_err(io::Error::other)?;
                errors += c.errors;
            }
            Err(_) => errors += 1,
        }
    }
    let q = |p: f64| histogram.value_at_quantile(p);
    let line = serde_json::json!({
        "messages": histogram.len(),
        "secs": secs,
        "msgs_per_sec": histogram.len() as f64 / secs,
        "p50_us": q(0.5),
        "p90_us": q(0.9),
        "p99_us": q(0.99),
        "p999_us": q(0.999),
        "max_us": histogram.max(),
        "errors": errors,
    });
    println!("{line}");
    Ok(())
}
