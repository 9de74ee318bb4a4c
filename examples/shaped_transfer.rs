//! A file transfer held to a configured rate by the shaping layer, with a
//! progress bar.
//!
//! ```text
//! cargo run --example shaped_transfer --features shape
//! cargo run --example shaped_transfer --features shape -- --mib 32 --rate 10MB
//! ```
//!
//! The client sends 8 MiB (generated in memory) to a server thread over TCP
//! loopback, in 64 KiB messages, through a `Shaper` limited to 4 MB/s; the
//! server checks the bytes and answers with their count and checksum. Then
//! it prints the achieved rate next to the configured one: payload rate,
//! the rate on the wire (frame headers included) as the shaper counted it,
//! and the peak over its measuring window.
//!
//! What to look at: the shaper is a layer like any other. It buffers
//! nothing of its own: writes beyond the budget wait in the connection's
//! bounded send buffer, and the driver (`Blocking::flush`) sleeps until the
//! instant the shaper names through `poll_timeout`. Its `ShaperHandle`
//! reads the traffic figures (and could change the rate) from any thread.

use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use netstrata::frame::LengthDelimited;
use netstrata::shape::{Limit, ShapeConfig, Shaper};
use netstrata::{Blocking, Connection, Stack};

type Error = Box<dyn std::error::Error + Send + Sync>;

const CHUNK: usize = 64 * 1024;

struct Args {
    bytes: usize,
    rate: u64,
}

/// `4MB` → 4 000 000, `512K` → 512 000, `1000` → 1000.
fn parse_rate(s: &str) -> Option<u64> {
    let (digits, scale) = match s.to_ascii_uppercase() {
        u if u.ends_with("MB") || u.ends_with('M') => {
            (u.trim_end_matches(['M', 'B']).to_owned(), 1_000_000)
        }
        u if u.ends_with("KB") || u.ends_with('K') => {
            (u.trim_end_matches(['K', 'B']).to_owned(), 1_000)
        }
        u => (u, 1),
    };
    digits.parse::<u64>().ok()?.checked_mul(scale)
}

fn args() -> Result<Args, String> {
    let mut args = Args {
        bytes: 8 << 20,
        rate: 4_000_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--mib" => args.bytes = value.parse::<usize>().map_err(|e| e.to_string())? << 20,
            "--rate" => args.rate = parse_rate(&value).ok_or("--rate: like 4MB, 512K or 1000")?,
            _ => return Err(format!("unknown flag {flag} (try --mib, --rate)")),
        }
    }
    Ok(args)
}

/// FNV-1a: a checksum both ends compute; not for security.
fn fnv1a(hash: u64, data: &[u8]) -> u64 {
    data.iter().fold(hash, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// The file: pseudo-random, so that nothing along the way could shrink it.
fn file(len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// Receives until the client's end; answers `"<bytes> <checksum>"`.
fn receive(stream: TcpStream) -> Result<(), Error> {
    let mut conn = Blocking::new(
        stream,
        Connection::new(Stack::new(()), LengthDelimited::new()),
    );
    let (mut bytes, mut sum) = (0u64, FNV_START);
    while let Some(chunk) = conn.recv()? {
        bytes += chunk.len() as u64;
        sum = fnv1a(sum, &chunk);
    }
    conn.send(format!("{bytes} {sum:016x}").as_bytes())?;
    conn.shutdown()?;
    Ok(())
}

fn main() -> Result<(), Error> {
    let args = args()?;
    let data = file(args.bytes);
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let server = thread::spawn(move || receive(listener.accept()?.0));

    // The default burst is 50 ms of the rate: the first 200 kB leave at once.
    let limit = Limit::per_second(args.rate)?;
    let shaper = Shaper::new(ShapeConfig::new().with_outbound(limit));
    let traffic = shaper.handle();
    let stream = TcpStream::connect(addr)?;
    let mut conn = Blocking::new(stream, Connection::new(shaper, LengthDelimited::new()));

    println!(
        "sending {} MiB at {:.1} MB/s (burst {} kB) to {addr}",
        args.bytes >> 20,
        args.rate as f64 / 1e6,
        limit.burst() / 1000
    );
    // Drawn on stderr when it is a terminal, hidden otherwise (CI, pipes).
    let bar = ProgressBar::new(data.len() as u64).with_style(ProgressStyle::with_template(
        "{bar:40} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
    )?);
    let start = Instant::now();
    for chunk in data.chunks(CHUNK) {
        conn.send(chunk)?;
        // Onto the socket as the budget allows: sleeps between grants.
        conn.flush()?;
        bar.inc(chunk.len() as u64);
    }
    conn.shutdown()?;
    let answer = conn.recv()?.ok_or("the receiver ended without an answer")?;
    let elapsed = start.elapsed();
    bar.finish_and_clear();
    server.join().map_err(|_| "receiver panicked")??;

    let expected = format!("{} {:016x}", data.len(), fnv1a(FNV_START, &data));
    if answer[..] != *expected.as_bytes() {
        return Err(format!(
            "receiver got {:?}, sent {expected:?}",
            String::from_utf8_lossy(&answer)
        )
        .into());
    }
    let secs = elapsed.as_secs_f64();
    let stats = traffic.stats(Instant::now()).outbound;
    let ideal = (stats.total_bytes.saturating_sub(limit.burst())) as f64 / args.rate as f64;
    println!(
        "received intact ({} bytes, checksum matches) in {secs:.2} s",
        data.len()
    );
    println!(
        "  payload rate  {:>6.2} MB/s",
        data.len() as f64 / secs / 1e6
    );
    println!(
        "  wire rate     {:>6.2} MB/s  ({} bytes through the shaper, frame headers included)",
        stats.total_bytes as f64 / secs / 1e6,
        stats.total_bytes
    );
    println!("  configured    {:>6.2} MB/s", args.rate as f64 / 1e6);
    println!(
        "  peak          {:>6.2} MB/s  over the shaper's measuring window",
        stats.peak_throughput as f64 / 1e6
    );
    println!(
        "  a perfect token bucket takes {ideal:.2} s (burst at once, then the rate); \
         this run took {:.1}% of that",
        secs / ideal * 100.0
    );
    Ok(())
}
