//! Framed messages through a stack over a real `TcpStream`, with the
//! blocking driver: a server thread echoes, the client pipelines batches and
//! measures, then both print what crossed each layer.
//!
//! ```text
//! cargo run --release --example pipe_demo [-- --size BYTES --batch N --secs S]
//! ```
//!
//! Stack on both sides, top first: `xor` (obfuscation, not security) →
//! `checksummed` (records, end record, checksum) → `pass-through` (counts
//! what goes on the wire), framed with 4-byte big-endian lengths.

use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use netstrata::frame::LengthDelimited;
use netstrata::layers::{Checksummed, PassThrough, Xor};
use netstrata::{Blocking, Connection, ConnectionStats, Stack};

type DemoStack = Stack<(Xor, Checksummed, PassThrough)>;

fn stack() -> DemoStack {
    Stack::new((
        Xor::new(*b"not-a-secret"),
        Checksummed::new(),
        PassThrough::named("wire"),
    ))
}

struct Args {
    size: usize,
    batch: usize,
    secs: f64,
}

fn args() -> Result<Args, String> {
    let mut args = Args {
        size: 64,
        batch: 32,
        secs: 2.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = || format!("{flag}: not a number: {value}");
        match flag.as_str() {
            "--size" => args.size = value.parse().map_err(|_| bad())?,
            "--batch" => args.batch = value.parse::<usize>().map_err(|_| bad())?.max(1),
            "--secs" => args.secs = value.parse().map_err(|_| bad())?,
            _ => return Err(format!("unknown flag {flag} (try --size, --batch, --secs)")),
        }
    }
    Ok(args)
}

fn serve(stream: TcpStream) -> netstrata::Result<ConnectionStats> {
    stream.set_nodelay(true)?;
    let mut server = Blocking::new(stream, Connection::new(stack(), LengthDelimited::new()));
    // `recv` transmits what was sent before it blocks, so the echoes of a
    // whole batch leave in one flush.
    while let Some(msg) = server.recv()? {
        server.send(&msg)?;
    }
    server.shutdown()?;
    Ok(server.connection().stats())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = args()?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let server = thread::spawn(move || serve(listener.accept()?.0));

    let stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    let mut client = Blocking::new(stream, Connection::new(stack(), LengthDelimited::new()));
    let payload: Vec<u8> = (0..args.size).map(|i| (i % 251) as u8).collect();
    let mut rtts = Vec::new();
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(args.secs);
    while Instant::now() < until {
        let sent = Instant::now();
        for _ in 0..args.batch {
            client.send(&payload)?;
        }
        client.flush()?;
        for _ in 0..args.batch {
            let echo = client.recv()?.ok_or("server ended early")?;
            if echo[..] != payload[..] {
                return Err("echo differs from what was sent".into());
            }
        }
        rtts.push(sent.elapsed());
    }
    let elapsed = start.elapsed();
    client.shutdown()?;
    if client.recv()?.is_some() {
        return Err("unexpected message after the server's end".into());
    }
    let server_stats = server.join().map_err(|_| "server thread panicked")??;
    let stats = client.connection().stats();

    let msgs = stats.messages_in as f64;
    rtts.sort();
    let pct = |p: f64| rtts[((rtts.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e6;
    println!(
        "netstrata pipe_demo: {} B messages, batches of {}, {:.1} s over TCP loopback",
        args.size,
        args.batch,
        elapsed.as_secs_f64()
    );
    println!(
        "  echoed {} messages: {:.0} msgs/s each way, {:.1} MB/s of payload",
        stats.messages_in,
        msgs / elapsed.as_secs_f64(),
        msgs * args.size as f64 / elapsed.as_secs_f64() / 1e6
    );
    println!(
        "  batch round trip: p50 {:.0} µs  p99 {:.0} µs  p99.9 {:.0} µs  max {:.0} µs",
        pct(0.5),
        pct(0.99),
        pct(0.999),
        pct(1.0)
    );
    for (side, s) in [("client", &stats), ("server", &server_stats)] {
        println!(
            "\n  {side}: {} messages in, {} out; {} wire bytes in, {} out",
            s.messages_in, s.messages_out, s.wire_in, s.wire_out
        );
        println!(
            "    {:<14} {:>14} {:>14} {:>14} {:>14} {:>9}",
            "layer", "app→layer", "layer→wire", "wire→layer", "layer→app", "out ×"
        );
        for l in &s.layers {
            let b = l.bytes;
            let x = b
                .outbound_expansion()
                .map_or("-".into(), |x| format!("{x:.4}"));
            println!(
                "    {:<14} {:>14} {:>14} {:>14} {:>14} {:>9}",
                l.name, b.outbound_in, b.outbound_out, b.inbound_in, b.inbound_out, x
            );
        }
    }
    Ok(())
}
