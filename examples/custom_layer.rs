//! Writing a layer from scratch and stacking it with netstrata's own.
//!
//! ```text
//! cargo run --example custom_layer --features testing,zstd
//! ```
//!
//! `Sequenced` cuts the byte stream into records, each with a sequence
//! number and a CRC-32, and ends the stream with an end record, so the
//! receiver detects corrupted, replayed, reordered or missing records and
//! tells a clean end from a cut connection. The stack, top first:
//!
//! ```text
//!   messages ─▶ LengthDelimited (codec) ─▶ Sequenced (this file) ─▶ Zstd ─▶ wire
//! ```
//!
//! The run drives two connections over `netstrata::testing::Pair` (a
//! virtual link: no sockets, no real time) with whole, one-byte and random
//! chunking and checks the same messages arrive each time; prints what each
//! layer did to the bytes; shows the reader's backpressure; then feeds the
//! layer a corrupted, a replayed and a cut stream and prints the typed
//! errors.
//!
//! What to look at, in `impl Layer for Sequenced`: consume what you can from
//! `input` and leave the rest (the caller offers it again); never append
//! more than `upper_room` upward (hold verified bytes and say `wants_read() ==
//! false` meanwhile, so the driver stops reading and the peer feels
//! backpressure); flush on `Flush::Batch`, end on `Flush::Finish`; fail
//! with an `Error` naming the layer (peer fault or caller misuse). Byte
//! counts come for free: the stack measures every layer.

use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use netstrata::frame::LengthDelimited;
use netstrata::testing::{Chunking, Link, Pair, Side};
use netstrata::zstd::Zstd;
use netstrata::{
    Connection, ConnectionConfig, Error, Flush, Inbound, Layer, Outbound, Result, Stack,
};

const NAME: &str = "sequenced";
/// `[u32 sequence][u16 length]`, big-endian.
const HEADER: usize = 6;
/// `[u32 CRC-32]` of the header and payload.
const TRAILER: usize = 4;

/// What a peer (or the caller) did wrong, as the layer's own type: reached
/// with `Error::downcast_ref::<SeqError>()`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SeqError {
    /// The CRC of record `seq` does not match its bytes.
    #[error("record {seq}: checksum mismatch")]
    Checksum {
        /// The record's sequence number.
        seq: u32,
    },
    /// A record arrived out of order, or again (a replay).
    #[error("expected record {expected}, got {got}")]
    OutOfOrder {
        /// The next sequence number.
        expected: u32,
        /// The one that arrived.
        got: u32,
    },
    /// A header announces more than this side accepts.
    #[error("record of {len} bytes exceeds the {max}-byte limit")]
    TooLong {
        /// Announced length.
        len: usize,
        /// This side's limit.
        max: usize,
    },
    /// Bytes after the end record.
    #[error("bytes after the end record")]
    AfterEnd,
    /// The application wrote after closing (caller misuse).
    #[error("write after the end record")]
    WriteAfterEnd,
}

/// CRC-32 (IEEE 802.3, as zlib and Ethernet), bit by bit: short rather than fast.
fn crc32(parts: &[&[u8]]) -> u32 {
    let mut crc = !0u32;
    for &byte in parts.iter().flat_map(|p| p.iter()) {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

/// Records with a sequence number and a CRC-32; see the file's header.
///
/// Bounded: it holds at most one record being received (`max_record` +
/// 10 bytes) and its verified payload until the layer above has room.
#[derive(Debug)]
pub struct Sequenced {
    max_record: usize,
    next_out: u32,
    write_closed: bool,
    next_in: u32,
    /// The record being received, header first.
    partial: BytesMut,
    /// Verified payload the layer above had no room for yet.
    verified: BytesMut,
    read_closed: bool,
    records_in: u64,
}

impl Sequenced {
    /// Default largest record payload (16 KiB).
    pub const DEFAULT_MAX_RECORD: usize = 16 * 1024;

    /// A layer with the default record limit, on both sides.
    pub fn new() -> Self {
        Self {
            max_record: Self::DEFAULT_MAX_RECORD,
            next_out: 0,
            write_closed: false,
            next_in: 0,
            partial: BytesMut::new(),
            verified: BytesMut::new(),
            read_closed: false,
            records_in: 0,
        }
    }

    /// Records sent, the end record included.
    pub fn records_out(&self) -> u32 {
        self.next_out
    }

    /// Data records received and verified.
    pub fn records_in(&self) -> u64 {
        self.records_in
    }

    fn write_record(&mut self, payload: &[u8], down: &mut BytesMut) {
        let header = [
            &self.next_out.to_be_bytes()[..],
            &(payload.len() as u16).to_be_bytes()[..],
        ]
        .concat();
        down.put_slice(&header);
        down.put_slice(payload);
        down.put_u32(crc32(&[&header, payload]));
        self.next_out = self.next_out.wrapping_add(1);
    }

    /// The length the header in `partial` announces, once it is complete
    /// and checked.
    fn announced_len(&self) -> Result<Option<usize>> {
        if self.partial.len() < HEADER {
            return Ok(None);
        }
        let seq = u32::from_be_bytes(self.partial[..4].try_into().expect("4 bytes"));
        let len = usize::from(u16::from_be_bytes([self.partial[4], self.partial[5]]));
        if seq != self.next_in {
            let expected = self.next_in;
            return Err(Error::peer(
                NAME,
                SeqError::OutOfOrder { expected, got: seq },
            ));
        }
        if len > self.max_record {
            let max = self.max_record;
            return Err(Error::peer(NAME, SeqError::TooLong { len, max }));
        }
        Ok(Some(len))
    }

    /// Checks the complete record in `partial`; keeps its payload.
    fn finish_record(&mut self, len: usize) -> Result<()> {
        let mut record = self.partial.split();
        let body = HEADER + len;
        let crc = u32::from_be_bytes(record[body..].try_into().expect("4 bytes"));
        if crc32(&[&record[..body]]) != crc {
            return Err(Error::peer(NAME, SeqError::Checksum { seq: self.next_in }));
        }
        self.next_in = self.next_in.wrapping_add(1);
        if len == 0 {
            self.read_closed = true;
        } else {
            record.advance(HEADER);
            record.truncate(len);
            self.verified = record;
            self.records_in += 1;
        }
        Ok(())
    }
}

impl Default for Sequenced {
    fn default() -> Self {
        Self::new()
    }
}

impl Layer for Sequenced {
    fn name(&self) -> &'static str {
        NAME
    }

    fn handle_inbound(&mut self, io: Inbound<'_>) -> Result<()> {
        let mut room = io.upper_room;
        loop {
            // Verified bytes go up first, never beyond the room above.
            let n = self.verified.len().min(room);
            io.upper.put_slice(&self.verified.split_to(n));
            room -= n;
            if !self.verified.is_empty() {
                // No room: take no more input (wants_read is false now).
                return Ok(());
            }
            if self.read_closed {
                if !io.input.is_empty() {
                    return Err(Error::peer(NAME, SeqError::AfterEnd));
                }
                return Ok(());
            }
            let want = match self.announced_len()? {
                None => HEADER,
                Some(len) => HEADER + len + TRAILER,
            };
            let take = (want - self.partial.len()).min(io.input.len());
            self.partial.put_slice(&io.input.split_to(take));
            if self.partial.len() < want {
                break;
            }
            if let Some(len) = self.announced_len()?
                && self.partial.len() == HEADER + len + TRAILER
            {
                self.finish_record(len)?;
            }
        }
        if io.input_ended {
            return Err(Error::Truncated {
                layer: NAME,
                detail: "transport ended before the end record",
            });
        }
        Ok(())
    }

    fn handle_outbound(&mut self, io: Outbound<'_>) -> Result<()> {
        if self.write_closed {
            return match io.input.is_empty() {
                true => Ok(()),
                false => Err(Error::misuse(NAME, SeqError::WriteAfterEnd)),
            };
        }
        // The whole batch is in `input`: many small writes become few records.
        let start = io.lower.len();
        while !io.input.is_empty() {
            let used = io.lower.len() - start;
            let room = io.lower_room.saturating_sub(used + HEADER + TRAILER);
            let n = io.input.len().min(self.max_record).min(room);
            if n == 0 {
                // The layer below is full: the rest stays in `input`.
                return Ok(());
            }
            let payload = io.input.split_to(n);
            self.write_record(&payload, io.lower);
        }
        if io.flush == Flush::Finish && io.input.is_empty() {
            // The end record: an empty payload. It may exceed the room by
            // its 10 bytes.
            self.write_record(&[], io.lower);
            self.write_closed = true;
        }
        Ok(())
    }

    fn wants_read(&self) -> bool {
        self.verified.is_empty()
    }

    fn is_read_closed(&self) -> bool {
        self.read_closed && self.verified.is_empty()
    }

    fn is_write_closed(&self) -> bool {
        self.write_closed
    }

    fn release_buffers(&mut self) {
        for buf in [&mut self.partial, &mut self.verified] {
            if buf.is_empty() {
                *buf = BytesMut::new();
            }
        }
    }
}

type Demo = Stack<(Sequenced, Zstd)>;

fn connection() -> Connection<Demo, LengthDelimited> {
    Connection::new(
        Stack::new((Sequenced::new(), Zstd::new())),
        LengthDelimited::new(),
    )
}

/// Messages that compress: log lines with a counter.
fn messages() -> Vec<Vec<u8>> {
    (0..300)
        .map(|i| format!("{i:05} GET /api/items?page={} 200 {} bytes", i % 17, i * 31).into_bytes())
        .collect()
}

/// Sends every message and closes; checks the server got them all and
/// saw a clean end. Returns the pair for its figures.
type DemoPair = Pair<Demo, LengthDelimited, Demo, LengthDelimited>;
fn exchange(link: Link) -> std::result::Result<DemoPair, String> {
    let mut pair = Pair::new(connection(), connection(), link);
    let sent = messages();
    for (i, msg) in sent.iter().enumerate() {
        pair.client.conn.send(msg).map_err(|e| e.to_string())?;
        if i % 50 == 49 {
            pair.drive(); // a batch per 50 messages
        }
    }
    pair.client.conn.close();
    pair.drive();
    if let (Some(e), _) | (_, Some(e)) = pair.errors() {
        return Err(e.to_string());
    }
    let got = pair.server.take_inbox();
    if got.len() != sent.len() || got.iter().zip(&sent).any(|(a, b)| a[..] != b[..]) {
        return Err(format!(
            "{} of {} messages arrived intact",
            got.len(),
            sent.len()
        ));
    }
    if !pair.server.conn.is_read_closed() {
        return Err("the server did not see the end record".into());
    }
    Ok(pair)
}

fn print_stats(pair: &DemoPair) {
    let client = pair.client.conn.stats();
    println!("  client's layers, top first (bytes written; × = out / in):");
    for layer in &client.layers {
        let b = layer.bytes;
        let ratio = b.outbound_expansion().unwrap_or(0.0);
        println!(
            "    {:<10} {:>7} in  {:>7} out  × {ratio:.3}",
            layer.name, b.outbound_in, b.outbound_out
        );
    }
    let (sequenced, _) = pair.client.conn.stack().layers();
    let (received, _) = pair.server.conn.stack().layers();
    println!(
        "  records: {} sent (end record included), {} verified by the server",
        sequenced.records_out(),
        received.records_in()
    );
}

/// Runs `wire` (bytes a client produced, possibly altered) into a fresh
/// server; returns the error it ends with.
fn feed(wire: &[u8]) -> Option<Error> {
    let mut server = Connection::new(Sequenced::new(), LengthDelimited::new());
    let now = std::time::Instant::now();
    let _ = server.handle_input(now, wire);
    while let Ok(Some(_)) = server.poll_message(now) {}
    server.error().cloned()
}

fn show(what: &str, err: Option<Error>) -> std::result::Result<(), String> {
    let err = err.ok_or_else(|| format!("{what}: no error"))?;
    let typed = err.downcast_ref::<SeqError>().map(|e| format!(" [{e:?}]"));
    println!(
        "  {what}: {err}{} (peer's fault: {})",
        typed.unwrap_or_default(),
        err.is_peer_fault()
    );
    Ok(())
}

/// A client's wire bytes for `msgs`, one record per message.
fn client_wire(msgs: &[&[u8]]) -> Vec<u8> {
    let mut client = Connection::new(Sequenced::new(), LengthDelimited::new());
    let now = std::time::Instant::now();
    let mut wire = Vec::new();
    for msg in msgs {
        client.send(msg).expect("a small message fits");
        while let Ok(Some(out)) = client.poll_transmit(now) {
            let n = out.len();
            wire.extend_from_slice(out);
            client.advance_transmit(n);
        }
    }
    wire
}

fn main() -> std::result::Result<(), String> {
    println!("300 log lines, client → server, stack: frames → sequenced → zstd");
    let links = [
        ("whole segments", Link::new()),
        (
            "one byte at a time",
            Link::new().with_chunking(Chunking::Fixed(1)),
        ),
        (
            "random segments, 20 ms latency, 1 MB/s",
            Link::new()
                .with_chunking(Chunking::Random { seed: 7, max: 1500 })
                .with_latency(Duration::from_millis(20))
                .with_bandwidth(1_000_000),
        ),
    ];
    let mut last = None;
    for (name, link) in links {
        let pair = exchange(link)?;
        println!(
            "  {name}: all 300 arrived, clean end, {:.1} ms virtual time",
            pair.elapsed().as_secs_f64() * 1e3
        );
        last = Some(pair);
    }
    if let Some(pair) = &last {
        print_stats(pair);
    }

    println!("\nbackpressure: the server's application stops reading");
    // Messages here are 64 KiB: a 256 KiB message buffer is plenty (the
    // default is what the codec's largest frame, 8 MiB, needs).
    let config = ConnectionConfig::new().with_message_buffer(256 * 1024);
    let server = Connection::with_config(
        Stack::new((Sequenced::new(), Zstd::new())),
        LengthDelimited::new(),
        config,
    );
    let mut pair = Pair::new(connection(), server, Link::new().with_window(64 * 1024));
    pair.server.reading = false;
    // Incompressible, so that zstd does not make it small.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let big: Vec<u8> = (0..64 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let mut queued = 0;
    while pair.client.conn.send(&big).is_ok() {
        queued += 1;
        pair.drive();
    }
    let waiting = pair.in_flight(Side::Server);
    let held = pair.server.conn.buffered_capacity();
    println!(
        "  the client's send buffer filled after {queued} × 64 KiB: {waiting} bytes wait on \
         the link, the server's connection buffers hold {} KiB",
        held / 1024
    );
    pair.server.reading = true;
    pair.drive();
    let got = pair.server.take_inbox().len();
    println!("  reading again: {got} messages arrive");
    if got != queued {
        return Err(format!("{got} of {queued} messages after backpressure"));
    }

    println!("\nwhat the receiver does with a bad stream (typed errors):");
    let wire = client_wire(&[b"pay alice 10", b"pay bob 20"]);
    let mut corrupt = wire.clone();
    corrupt[HEADER + 6] ^= 0x20; // a bit of the first payload
    show("a flipped bit", feed(&corrupt))?;
    let first = HEADER + 4 + 12 + TRAILER; // frame header + "pay alice 10"
    let replayed = [&wire[..first], &wire[..first]].concat();
    show("a replayed record", feed(&replayed))?;
    let mut pair = Pair::new(
        Connection::new(Sequenced::new(), LengthDelimited::new()),
        Connection::new(Sequenced::new(), LengthDelimited::new()),
        Link::new(),
    );
    pair.client
        .conn
        .send(b"half a conversation")
        .map_err(|e| e.to_string())?;
    pair.drive();
    pair.end_transport(Side::Client); // FIN without the end record
    pair.drive();
    show("a cut connection", pair.server.conn.error().cloned())?;
    Ok(())
}
