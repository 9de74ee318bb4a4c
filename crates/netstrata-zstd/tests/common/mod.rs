//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use netstrata_core::testing::{Chunking, Link, Pair};
use netstrata_core::{Connection, ConnectionConfig};
use netstrata_frame::LengthDelimited;
use netstrata_zstd::{Zstd, ZstdConfig};

/// A connection of the kind most tests use: zstd under length-delimited frames.
pub type ZConn = Connection<Zstd, LengthDelimited>;
/// A pair of them.
pub type ZPair = Pair<Zstd, LengthDelimited, Zstd, LengthDelimited>;

/// xorshift64*: deterministic and dependency-free.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// One JSON-like log line (ends with a newline), varied the way service
/// logs are: a few services and paths, random ids, skewed status codes.
pub fn log_line(rng: &mut Rng, ts: &mut u64) -> String {
    const LEVELS: [&str; 6] = ["INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"];
    const SERVICES: [&str; 5] = ["api-gateway", "auth", "billing", "search", "orders"];
    const METHODS: [&str; 5] = ["GET", "GET", "POST", "PUT", "DELETE"];
    const PATHS: [&str; 5] = [
        "/api/v1/users",
        "/api/v1/orders",
        "/api/v2/search",
        "/health",
        "/api/v1/cart/items",
    ];
    const STATUS: [u16; 9] = [200, 200, 200, 201, 204, 304, 400, 404, 500];
    *ts += rng.below(50);
    let a = rng.next();
    let id = rng.next();
    let pick = |shift: u32, n: usize| ((a >> shift) as usize) % n;
    format!(
        "{{\"ts\":{ts},\"level\":\"{}\",\"service\":\"{}\",\"host\":\"web-{:02}\",\
         \"req_id\":\"{id:016x}\",\"method\":\"{}\",\"path\":\"{}/{}\",\"status\":{},\
         \"latency_ms\":{}.{},\"bytes\":{}}}\n",
        LEVELS[pick(0, 6)],
        SERVICES[pick(8, 5)],
        pick(16, 32),
        METHODS[pick(24, 5)],
        PATHS[pick(32, 5)],
        pick(40, 100_000),
        STATUS[pick(20, 9)],
        pick(44, 900),
        pick(50, 10),
        pick(28, 65_536),
    )
}

/// About `len` bytes of log lines.
pub fn log_text(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut ts = 1_717_243_200_000;
    let mut text = String::with_capacity(len + 300);
    while text.len() < len {
        text.push_str(&log_line(&mut rng, &mut ts));
    }
    text.into_bytes()
}

/// `n` log lines, one per message.
pub fn log_messages(seed: u64, n: usize) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(seed);
    let mut ts = 1_717_243_200_000;
    (0..n)
        .map(|_| log_line(&mut rng, &mut ts).into_bytes())
        .collect()
}

/// Messages of every kind: text, random, empty, one byte, and a few larger
/// than a zstd block.
pub fn mixed_messages(seed: u64, n: usize) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(seed);
    let text = log_text(seed, 64 * 1024);
    (0..n)
        .map(|i| match i % 6 {
            0 => Vec::new(),
            1 => vec![rng.next() as u8],
            2 => {
                let len = rng.below(3000) as usize;
                let at = rng.below((text.len() - len) as u64) as usize;
                text[at..at + len].to_vec()
            }
            3 => {
                let len = rng.below(3000) as usize;
                rng.bytes(len)
            }
            4 if i % 24 == 4 => text[..40_000].to_vec(),
            5 if i % 24 == 11 => rng.bytes(40_000),
            _ => {
                let len = rng.below(64) as usize;
                rng.bytes(len)
            }
        })
        .collect()
}

/// The links of the round-trip tests: whole segments, one byte at a time,
/// 7 bytes, random cuts, and a slow link with latency.
pub fn links() -> Vec<Link> {
    vec![
        Link::new(),
        Link::new().with_chunking(Chunking::Fixed(1)),
        Link::new().with_chunking(Chunking::Fixed(7)),
        Link::new().with_chunking(Chunking::Random { seed: 42, max: 300 }),
        Link::new()
            .with_latency(Duration::from_millis(20))
            .with_bandwidth(1_000_000),
    ]
}

pub fn conn(config: ZstdConfig) -> ZConn {
    Connection::new(Zstd::with_config(config), LengthDelimited::new())
}

pub fn conn_with(config: ZstdConfig, limits: ConnectionConfig) -> ZConn {
    Connection::with_config(Zstd::with_config(config), LengthDelimited::new(), limits)
}

pub fn pair(link: Link) -> ZPair {
    Pair::new(conn(ZstdConfig::new()), conn(ZstdConfig::new()), link)
}

/// The start of a zstd frame: magic number and a frame header asking for a
/// window of `2^window_log` bytes (no checksum, no dictionary, no size).
pub fn frame_header(window_log: u32) -> Vec<u8> {
    assert!((10..=41).contains(&window_log));
    let mut h = 0xFD2F_B528_u32.to_le_bytes().to_vec();
    h.push(0x00); // descriptor: not single segment, no checksum, no dict id
    h.push(((window_log - 10) as u8) << 3); // window descriptor, mantissa 0
    h
}

/// A zstd block header: `size` (for RLE blocks, the regenerated size),
/// `kind` 0 raw, 1 RLE, 2 compressed, 3 reserved.
pub fn block_header(size: usize, kind: u8, last: bool) -> [u8; 3] {
    let v = ((size as u32) << 3) | (u32::from(kind) << 1) | u32::from(last);
    let b = v.to_le_bytes();
    [b[0], b[1], b[2]]
}

/// A compression bomb, built by hand: a frame with a 32 KiB window holding
/// `messages` length-delimited messages of `mib` MiB of zeros each, as raw
/// 4-byte headers and RLE blocks of 32 KiB (4 bytes on the wire for 32 KiB
/// of output). The last block ends the frame.
pub fn zero_bomb(messages: usize, mib: usize) -> Vec<u8> {
    const BLOCK: usize = 32 * 1024;
    let mut f = frame_header(15);
    for m in 0..messages {
        f.extend_from_slice(&block_header(4, 0, false));
        f.extend_from_slice(&((mib << 20) as u32).to_be_bytes());
        let blocks = (mib << 20) / BLOCK;
        for b in 0..blocks {
            let last = m + 1 == messages && b + 1 == blocks;
            f.extend_from_slice(&block_header(BLOCK, 1, last));
            f.push(0);
        }
    }
    f
}

/// What the `zstd` crate's streaming encoder writes for `parts` at `level`
/// (and `window_log`, if given; else zstd picks, 2^21 at level 3 on a
/// stream): one frame with no content size, a flush after each part.
pub fn zstd_stream(level: i32, window_log: Option<u32>, parts: &[&[u8]]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), level).unwrap();
    if let Some(log) = window_log {
        encoder
            .set_parameter(zstd::zstd_safe::CParameter::WindowLog(log))
            .unwrap();
    }
    for part in parts {
        encoder.write_all(part).unwrap();
        encoder.flush().unwrap();
    }
    encoder.finish().unwrap()
}

/// A skippable frame carrying `data` (magic 0x184D2A53).
pub fn skippable_frame(data: &[u8]) -> Vec<u8> {
    let mut f = 0x184D_2A53_u32.to_le_bytes().to_vec();
    f.extend_from_slice(&(data.len() as u32).to_le_bytes());
    f.extend_from_slice(data);
    f
}
