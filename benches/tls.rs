//! The TLS layer against rustls driven directly, in memory, same run.
//!
//! - bulk: a batch of writes (4 x 16 KiB, or 64 x 64 B) encrypted by a
//!   client and decrypted by a server. Raw rustls writes each message with
//!   `writer()` (one record per 64-byte write) and, as a second baseline,
//!   the whole batch at once; ours runs the `Tls` layer directly
//!   (`handle_outbound` then `handle_inbound`) and through a `Connection`
//!   with length-delimited framing.
//! - handshakes: a full TLS 1.3 handshake (no resumption) between two
//!   in-memory peers, raw rustls vs two `Tls` layers.
//! - memory: bytes allocated per idle connection after the handshake
//!   (counting global allocator: Rust heap only) and resident memory per
//!   connection (from /proc, which also sees aws-lc's C heap).
//!
//! `cargo bench --bench tls`

#[path = "support/link.rs"]
mod link;
#[path = "support/ratio.rs"]
mod ratio;

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group};
use link::Link;
use netstrata::{Connection, Flush, Inbound, Layer, Outbound};
use netstrata_frame::LengthDelimited;
use netstrata_tls::dev_certs::DevCa;
use netstrata_tls::rustls::{self, ClientConfig, ClientConnection, ServerConfig, ServerConnection};
use netstrata_tls::{ClientOptions, ServerOptions, Tls};

/// Counts live heap bytes, to measure memory per connection.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call forwards to the system allocator with the caller's
// layout unchanged; the counter has no effect on allocation.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded as received.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded as received.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: forwarded as received.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

struct Configs {
    client: Arc<ClientConfig>,
    server: Arc<ServerConfig>,
}

fn configs() -> Configs {
    let ca = DevCa::new().unwrap();
    let leaf = ca.issue(&["localhost"]).unwrap();
    Configs {
        // Full handshakes every time: no resumption, as for a new client.
        client: ClientOptions::new(ca.roots())
            .with_resumption(false)
            .build()
            .unwrap(),
        server: ServerOptions::new()
            .with_identity(leaf.identity())
            .build()
            .unwrap(),
    }
}

// ---- raw rustls ----

fn raw_pair(c: &Configs) -> (rustls::Connection, rustls::Connection) {
    let name = "localhost".try_into().unwrap();
    let mut client: rustls::Connection = ClientConnection::new(c.client.clone(), name)
        .unwrap()
        .into();
    let mut server: rustls::Connection = ServerConnection::new(c.server.clone()).unwrap().into();
    let mut wire = Vec::new();
    while client.is_handshaking() || server.is_handshaking() || client.wants_write() {
        raw_pump(&mut client, &mut server, &mut wire);
        raw_pump(&mut server, &mut client, &mut wire);
    }
    (client, server)
}

/// Moves every pending record from `from` to `to` and processes it.
fn raw_pump(from: &mut rustls::Connection, to: &mut rustls::Connection, wire: &mut Vec<u8>) {
    wire.clear();
    while from.wants_write() {
        from.write_tls(wire).unwrap();
    }
    let mut rd = &wire[..];
    while !rd.is_empty() {
        to.read_tls(&mut rd).unwrap();
        to.process_new_packets().unwrap();
    }
}

struct RawBulk {
    client: rustls::Connection,
    server: rustls::Connection,
    wire: Vec<u8>,
    buf: Vec<u8>,
    msg: Vec<u8>,
    batch: usize,
    /// Gather the batch into one buffer and write it at once (few records),
    /// as the layer does; otherwise one `writer()` call (record) per message.
    coalesce: bool,
    gathered: Vec<u8>,
}

impl RawBulk {
    fn new(c: &Configs, size: usize, batch: usize, coalesce: bool) -> Self {
        let (mut client, server) = raw_pair(c);
        // A whole batch of records fits (rustls' default is 64 KiB).
        client.set_buffer_limit(None);
        Self {
            client,
            server,
            wire: Vec::with_capacity(size * batch * 2),
            buf: vec![0; 32 * 1024],
            msg: vec![0x5a; size],
            batch,
            coalesce,
            gathered: Vec::with_capacity(size * batch),
        }
    }

    fn round(&mut self) {
        if self.coalesce {
            self.gathered.clear();
            for _ in 0..self.batch {
                self.gathered.extend_from_slice(&self.msg);
            }
            self.client.writer().write_all(&self.gathered).unwrap();
        } else {
            for _ in 0..self.batch {
                self.client.writer().write_all(&self.msg).unwrap();
            }
        }
        self.wire.clear();
        while self.client.wants_write() {
            self.client.write_tls(&mut self.wire).unwrap();
        }
        let mut rd = &self.wire[..];
        let mut got = 0;
        while !rd.is_empty() {
            self.server.read_tls(&mut rd).unwrap();
            self.server.process_new_packets().unwrap();
            while let Ok(n) = self.server.reader().read(&mut self.buf) {
                if n == 0 {
                    break;
                }
                got += n;
            }
        }
        assert_eq!(
            got,
            self.msg.len() * self.batch,
            "coalesce {}",
            self.coalesce
        );
    }
}

// ---- ours ----

fn layer_pair(c: &Configs) -> (Tls, Tls) {
    let now = Instant::now();
    let mut client = Tls::client(c.client.clone(), "localhost").unwrap();
    let mut server = Tls::server(c.server.clone()).unwrap();
    let (mut c2s, mut s2c, mut up) = (BytesMut::new(), BytesMut::new(), BytesMut::new());
    while client.is_handshaking() || server.is_handshaking() || !c2s.is_empty() {
        out(&mut client, now, &mut BytesMut::new(), &mut c2s);
        inb(&mut server, now, &mut c2s, &mut up, &mut s2c);
        out(&mut server, now, &mut BytesMut::new(), &mut s2c);
        inb(&mut client, now, &mut s2c, &mut up, &mut c2s);
    }
    (client, server)
}

fn out(tls: &mut Tls, now: Instant, input: &mut BytesMut, down: &mut BytesMut) {
    tls.handle_outbound(Outbound::new(now, input, Flush::Batch, down))
        .unwrap();
}

fn inb(tls: &mut Tls, now: Instant, input: &mut BytesMut, up: &mut BytesMut, down: &mut BytesMut) {
    tls.handle_inbound(Inbound::new(now, input, up, down))
        .unwrap();
}

struct LayerBulk {
    client: Tls,
    server: Tls,
    input: BytesMut,
    wire: BytesMut,
    up: BytesMut,
    owed: BytesMut,
    msg: Vec<u8>,
    batch: usize,
    now: Instant,
}

impl LayerBulk {
    fn new(c: &Configs, size: usize, batch: usize) -> Self {
        let (client, server) = layer_pair(c);
        Self {
            client,
            server,
            input: BytesMut::with_capacity(size * batch),
            wire: BytesMut::with_capacity(size * batch * 2),
            up: BytesMut::with_capacity(size * batch),
            owed: BytesMut::new(),
            msg: vec![0x5a; size],
            batch,
            now: Instant::now(),
        }
    }

    fn round(&mut self) {
        for _ in 0..self.batch {
            self.input.extend_from_slice(&self.msg);
        }
        out(&mut self.client, self.now, &mut self.input, &mut self.wire);
        inb(
            &mut self.server,
            self.now,
            &mut self.wire,
            &mut self.up,
            &mut self.owed,
        );
        assert_eq!(self.up.len(), self.msg.len() * self.batch);
        black_box(&self.up);
        self.up.clear();
    }
}

/// Whole connections: TLS under the length-delimited codec.
type ConnBulk = Link<Tls, Tls>;

fn conn_bulk(c: &Configs, size: usize, batch: usize) -> ConnBulk {
    let (client, server) = layer_pair(c);
    Link::new(client, server, size, batch)
}

/// Batches fit the connection's default 64 KiB buffers with their record
/// overhead (as in `benches/stack.rs`; see docs/benchmarks.md on batches
/// one byte over them).
const CASES: [(usize, usize, &str); 2] = [(16 * 1024, 3, "16KiB x 3"), (64, 64, "64B x 64")];

fn bench(c: &mut Criterion) {
    let cfg = configs();
    for (size, batch, label) in CASES {
        let mut g = c.benchmark_group(format!("tls bulk/{label}"));
        g.throughput(Throughput::Bytes((size * batch) as u64));
        let mut r = RawBulk::new(&cfg, size, batch, false);
        g.bench_function("raw rustls, write per message", |b| b.iter(|| r.round()));
        let mut r = RawBulk::new(&cfg, size, batch, true);
        g.bench_function("raw rustls, one write per batch", |b| b.iter(|| r.round()));
        let mut l = LayerBulk::new(&cfg, size, batch);
        g.bench_function("Tls layer", |b| b.iter(|| l.round()));
        let mut l = conn_bulk(&cfg, size, batch);
        g.bench_function("Connection<Tls, LengthDelimited>", |b| b.iter(|| l.round()));
        g.finish();
    }
    let mut g = c.benchmark_group("tls handshake");
    g.throughput(Throughput::Elements(1));
    g.bench_function("raw rustls", |b| b.iter(|| black_box(raw_pair(&cfg))));
    g.bench_function("Tls layers", |b| b.iter(|| black_box(layer_pair(&cfg))));
    g.finish();
}

fn ratios() {
    let cfg = configs();
    for (size, batch, label) in CASES {
        let mut raw = RawBulk::new(&cfg, size, batch, false);
        let mut coalesced = RawBulk::new(&cfg, size, batch, true);
        let mut layer = LayerBulk::new(&cfg, size, batch);
        let mut conn = conn_bulk(&cfg, size, batch);
        let medians = ratio::compare(
            &format!("tls bulk, {label}, baseline: raw rustls, write per message"),
            "batch",
            &mut [
                ("raw rustls, write per message", Box::new(|| raw.round())),
                (
                    "raw rustls, one write per batch",
                    Box::new(|| coalesced.round()),
                ),
                ("Tls layer", Box::new(|| layer.round())),
                (
                    "Connection<Tls, LengthDelimited>",
                    Box::new(|| conn.round()),
                ),
            ],
            31,
            200,
        );
        let bytes = (size * batch) as f64;
        for (name, m) in ["raw/msg", "raw/batch", "layer", "connection"]
            .iter()
            .zip(&medians)
        {
            println!("  {name:<12} {:>8.0} MiB/s", bytes / m * 1e9 / 1048576.0);
        }
        println!(
            "  Tls layer vs raw rustls with one write per batch: ratio {:.3}",
            medians[1] / medians[2]
        );
    }
    let medians = ratio::compare(
        "tls full handshakes, baseline: raw rustls",
        "handshake",
        &mut [
            ("raw rustls", Box::new(|| drop(black_box(raw_pair(&cfg))))),
            ("Tls layers", Box::new(|| drop(black_box(layer_pair(&cfg))))),
        ],
        31,
        20,
    );
    for m in medians {
        println!("  {:>8.0} handshakes/s", 1e9 / m);
    }
}

/// Resident memory of the process, from /proc (Linux only; 0 elsewhere).
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

const MEMORY_VARIANTS: [&str; 3] = [
    "raw rustls",
    "Tls layer",
    "Connection<Tls, LengthDelimited>",
];

/// Memory per idle connection (one side) after the handshake: each variant
/// in a fresh process, so resident memory is not hidden by heap freed
/// earlier in this one.
fn memory() {
    println!("\nmemory per idle connection after the handshake ({MEMORY_PAIRS} pairs, per side)");
    for variant in MEMORY_VARIANTS {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .env("NETSTRATA_TLS_MEMORY", variant)
            .output()
            .unwrap();
        print!("{}", String::from_utf8_lossy(&out.stdout));
    }
}

const MEMORY_PAIRS: usize = 2000;

fn memory_variant(variant: &str) {
    let cfg = configs();
    fn measure<T>(name: &str, make: impl Fn() -> T) {
        let _warm = make();
        let (heap, res) = (LIVE.load(Ordering::Relaxed), rss());
        let pairs: Vec<T> = (0..MEMORY_PAIRS).map(|_| make()).collect();
        let sides = (2 * MEMORY_PAIRS) as f64;
        let heap = (LIVE.load(Ordering::Relaxed) - heap) as f64 / sides;
        let res = rss().saturating_sub(res) as f64 / sides;
        println!("  {name:<36} Rust heap {heap:>7.0} B   resident {res:>7.0} B");
        drop(black_box(pairs));
    }
    match variant {
        "raw rustls" => return measure(variant, || raw_pair(&cfg)),
        "Tls layer" => {}
        _ => {
            return measure(variant, || {
                let (client, server) = layer_pair(&cfg);
                let now = Instant::now();
                let mut a = Connection::new(client, LengthDelimited::new());
                let mut b = Connection::new(server, LengthDelimited::new());
                a.send(b"ping").unwrap();
                let wire = a.poll_transmit(now).unwrap().unwrap().to_vec();
                a.advance_transmit(wire.len());
                b.handle_input(now, &wire).unwrap();
                assert!(b.poll_message(now).unwrap().is_some());
                (a, b)
            });
        }
    }
    measure(variant, || layer_pair(&cfg));
    // What one idle layer holds, by part.
    let (client, server) = layer_pair(&cfg);
    let before = LIVE.load(Ordering::Relaxed);
    drop(client);
    let client = before - LIVE.load(Ordering::Relaxed);
    let before = LIVE.load(Ordering::Relaxed);
    drop(server);
    let server = before - LIVE.load(Ordering::Relaxed);
    println!(
        "  one idle Tls layer frees on drop: client {client} B, server {server} B (Tls struct {} B inline)",
        size_of::<Tls>()
    );
}

criterion_group!(benches, bench);

fn main() {
    if let Ok(variant) = std::env::var("NETSTRATA_TLS_MEMORY") {
        return memory_variant(&variant);
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
    if !std::env::args().any(|a| a == "--list" || a == "--test") {
        ratios();
        memory();
    }
}
