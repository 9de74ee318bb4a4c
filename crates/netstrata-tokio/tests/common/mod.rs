//! Helpers shared by netstrata-tokio's integration tests: the stacks they
//! run (both sides), deterministic payloads and chunk sizes, captured zstd
//! wire bytes, and the error inside an `io::Error`.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::io;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use netstrata_core::{BoxedLayer, DynStack, Error};
use netstrata_shape::{Limit, ShapeConfig, Shaper};
use netstrata_tls::Tls;
use netstrata_tls::dev_certs::{DevCa, DevCert};
use netstrata_tls::rustls::{ClientConfig, ServerConfig};
use netstrata_tls::{ClientOptions, ServerOptions};
use netstrata_tokio::{LayeredStream, StackError};
use netstrata_zstd::Zstd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long any one test may take before it fails as a hang: far above
/// what each needs (well under a second), so it only ever fires on a hang.
pub const HANG: Duration = Duration::from_secs(10);

/// Runs `fut`, failing the test if it takes longer than [`HANG`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(HANG, fut).await {
        Ok(out) => out,
        Err(_) => panic!("{what}: still not done after {HANG:?} (a hang)"),
    }
}

struct Certs {
    ca: DevCa,
    leaf: DevCert,
}

fn certs() -> &'static Certs {
    static CERTS: OnceLock<Certs> = OnceLock::new();
    CERTS.get_or_init(|| {
        let ca = DevCa::new().unwrap();
        let leaf = ca.issue(&["localhost"]).unwrap();
        Certs { ca, leaf }
    })
}

pub fn server_config() -> Arc<ServerConfig> {
    static CONFIG: OnceLock<Arc<ServerConfig>> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        ServerOptions::new()
            .with_identity(certs().leaf.identity())
            .build()
            .unwrap()
    });
    Arc::clone(config)
}

pub fn client_config() -> Arc<ClientConfig> {
    static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    let config = CONFIG.get_or_init(|| ClientOptions::new(certs().ca.roots()).build().unwrap());
    Arc::clone(config)
}

/// Which end of a connection a stack is for (TLS differs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Client,
    Server,
}

/// The shaped stack's limit, each direction, both ends: 256 KiB/s after a
/// 16 KiB burst, so 64 KiB take at least 0.19 s.
pub const SHAPE_RATE: u64 = 256 * 1024;
pub const SHAPE_BURST: u64 = 16 * 1024;

/// The stacks the tests run, each the same on both ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Tls,
    Zstd,
    /// zstd above TLS: compress, then encrypt.
    ZstdTls,
    /// A shaper alone, limited to [`SHAPE_RATE`] each way.
    Shaped,
}

impl Kind {
    /// The layers of this stack for `end`, top first.
    pub fn stack(self, end: End) -> DynStack {
        let tls = || -> BoxedLayer {
            match end {
                End::Client => Box::new(Tls::client(client_config(), "localhost").unwrap()),
                End::Server => Box::new(Tls::server(server_config()).unwrap()),
            }
        };
        let layers: Vec<BoxedLayer> = match self {
            Self::Tls => vec![tls()],
            Self::Zstd => vec![Box::new(Zstd::new())],
            Self::ZstdTls => vec![Box::new(Zstd::new()), tls()],
            Self::Shaped => {
                let limit = Limit::new(SHAPE_RATE, SHAPE_BURST).unwrap();
                let config = ShapeConfig::new().with_inbound(limit).with_outbound(limit);
                vec![Box::new(Shaper::new(config))]
            }
        };
        DynStack::new(layers)
    }
}

/// A small deterministic generator (xorshift64*), so that payloads and
/// chunk sizes differ per connection and repeat across runs.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `lo..=hi`.
    pub fn between(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }
}

/// `len` bytes that belong to connection `seed` alone: lines of text that
/// name the connection and the offset (zstd has something to compress),
/// each followed by a run of pseudo-random bytes (and something it has
/// not). A byte out of place or from another connection shows.
pub fn payload(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(len + 128);
    while out.len() < len {
        let line = format!("connection {seed} at byte {}: ", out.len());
        out.extend_from_slice(line.as_bytes());
        for _ in 0..rng.between(0, 48) {
            out.push(rng.next() as u8);
        }
        out.push(b'\n');
    }
    out.truncate(len);
    out
}

/// Cuts `len` into chunks of varied sizes, from one byte to 20 000,
/// deterministic per `seed`.
pub fn chunk_sizes(seed: u64, len: usize) -> Vec<usize> {
    const SIZES: [usize; 8] = [1, 3, 17, 100, 1000, 1460, 4096, 20_000];
    let mut rng = Rng::new(seed ^ 0x00C0_FFEE);
    let mut sizes = Vec::new();
    let mut left = len;
    while left > 0 {
        let size = SIZES[rng.between(0, SIZES.len() - 1)].min(left);
        sizes.push(size);
        left -= size;
    }
    sizes
}

/// Where first bytes of `got` and `want` differ, for assertion messages.
pub fn first_difference(got: &[u8], want: &[u8]) -> String {
    match got.iter().zip(want).position(|(a, b)| a != b) {
        Some(i) => format!(
            "{} of {} bytes, first difference at byte {i}",
            got.len(),
            want.len()
        ),
        None => format!(
            "{} of {} bytes, equal as far as both go",
            got.len(),
            want.len()
        ),
    }
}

/// The stack's error inside an `io::Error` from a `LayeredStream`.
pub fn stack_error(e: &io::Error) -> Option<&Error> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<StackError>())
        .map(StackError::error)
}

/// What our zstd layer puts on the wire for `parts`, each written and
/// flushed in turn, then an orderly shutdown: one piece per part (the
/// frame's header and the part's blocks, ended by the flush) and a last
/// piece that ends the frame. Together they are one zstd frame.
pub async fn zstd_wire(parts: &[&[u8]]) -> Vec<Vec<u8>> {
    let (ours, mut wire) = tokio::io::duplex(1 << 20);
    let mut ours = LayeredStream::new(ours, DynStack::new(vec![Box::new(Zstd::new())]));
    let mut pieces = Vec::new();
    // After a flush, everything the layer wrote is in the pipe: one read
    // of a buffer larger than it takes it all.
    let mut buf = vec![0; 1 << 20];
    for part in parts {
        ours.write_all(part).await.unwrap();
        ours.flush().await.unwrap();
        let n = wire.read(&mut buf).await.unwrap();
        pieces.push(buf[..n].to_vec());
    }
    ours.shutdown().await.unwrap();
    let mut end = Vec::new();
    wire.read_to_end(&mut end).await.unwrap();
    pieces.push(end);
    pieces
}
