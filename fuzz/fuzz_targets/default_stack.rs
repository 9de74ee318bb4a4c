//! The default stack (frame + zstd + TLS, as `netstrata --tls --zstd`
//! assembles it in crates/netstrata-cli/src/stack.rs) on the receiving
//! side, an honest peer on the other, and a fuzzer-chosen wire between.
//!
//! The input is a script (see `Op`): what the peer sends (messages; raw
//! bytes injected above its TLS, as they are or wrapped in a zstd raw
//! block so that they reach the receiver's frame decoder; an orderly
//! close), how the wire bytes toward the receiver are cut (the size of
//! each delivery, an early end) and damaged (a bit flipped, bytes inserted,
//! the stream cut at an offset). The peer is netstrata's own client: a
//! frame + zstd connection whose wire bytes go into a TLS connection, so
//! that bytes can be injected between the two. TLS runs on a provider
//! seeded from the input (seeded_tls.rs): a script replays byte for byte.
//!
//! Invariants, checked after every step and at the end:
//! - nothing panics;
//! - every message delivered before the first injection is the message
//!   sent at its place: delivered messages are a prefix of those sent,
//!   intact and in order;
//! - with no damage and no injection, at the end every sent message has
//!   arrived, and the receiver either ended cleanly (the peer closed) or
//!   reports TLS truncation (the wire ended without `close_notify`);
//! - every error is typed as the peer's doing (`PeerMisbehaved` or
//!   `Truncated`, `LocalLimit` only after an injection), and with wire
//!   damage but no injection it comes from TLS: no corruption gets past
//!   the record layer's integrity check.
#![no_main]

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use netstrata_core::{BoxedLayer, Connection, DynStack, Error, RawCodec, Stack};
use netstrata_frame::LengthDelimited;
use netstrata_tls::Tls;
use netstrata_zstd::{Zstd, ZstdConfig};

#[path = "common.rs"]
mod common;
#[path = "seeded_tls.rs"]
mod seeded_tls;
use common::Script;

/// The receiving side, as the tool builds a `--tls --zstd` server:
/// `DynStack[zstd, tls]` under 4-byte length-delimited frames.
type Receiver = Connection<DynStack, LengthDelimited>;

/// The honest peer: frames and zstd above, TLS below, joined by hand.
struct Peer {
    upper: Connection<Stack<(Zstd,)>, LengthDelimited>,
    tls: Connection<Stack<(Tls,)>, RawCodec>,
    /// Bytes for `tls` that it has not taken yet (its send buffer was full).
    carry: BytesMut,
    /// The zstd frame has begun (its header is out) and not ended.
    frame_open: bool,
    closed: bool,
}

impl Peer {
    /// Moves what `upper` produced into `tls`, then `tls`'s wire bytes to `wire`.
    fn flush(&mut self, now: Instant, wire: &mut Vec<u8>) {
        while let Ok(Some(bytes)) = self.upper.poll_transmit(now) {
            let n = bytes.len();
            self.carry.extend_from_slice(bytes);
            self.upper.advance_transmit(n);
            self.frame_open = !self.closed;
        }
        if !self.carry.is_empty() && self.tls.send(&self.carry).is_ok() {
            self.carry.clear();
        }
        if self.closed && self.carry.is_empty() && self.upper.is_write_closed() {
            self.tls.close();
        }
        while let Ok(Some(bytes)) = self.tls.poll_transmit(now) {
            let n = bytes.len();
            wire.extend_from_slice(bytes);
            self.tls.advance_transmit(n);
        }
    }
}

/// What the script can do, one byte each plus its arguments.
#[derive(Debug)]
enum Op {
    /// The peer sends a message (an application send, not yet flushed).
    Send(Bytes),
    /// The peer's batch ends: everything goes through its stack to the wire.
    Flush,
    /// Raw bytes from the peer above its TLS: as they are, or (`framed`)
    /// wrapped in a zstd raw block so that the receiver's frame decoder
    /// sees them as decompressed bytes.
    Inject { bytes: Vec<u8>, framed: bool },
    /// Up to `n` wire bytes reach the receiver.
    Deliver(usize),
    /// A bit of the undelivered wire bytes flips.
    Flip { offset: usize, bit: u8 },
    /// Bytes appear in the undelivered wire bytes.
    Insert { offset: usize, bytes: Vec<u8> },
    /// The wire is cut at an offset of the undelivered bytes: nothing after
    /// it arrives, and the receiver sees the end of the stream.
    Cut(usize),
    /// The peer closes in order (zstd end of frame, TLS `close_notify`).
    Close,
}

fn next_op(script: &mut Script<'_>) -> Op {
    match script.byte() % 10 {
        0 | 1 => {
            let len = usize::from(script.u16()) % 4096;
            let pattern = script.bytes(8).to_vec();
            // Compressible (a repeated pattern) or not (the script's bytes).
            let msg = if script.byte() & 1 == 0 && !pattern.is_empty() {
                pattern.iter().copied().cycle().take(len).collect()
            } else {
                script.bytes(len).to_vec()
            };
            Op::Send(Bytes::from(msg))
        }
        2 | 3 => Op::Flush,
        4 => {
            let framed = script.byte() & 1 == 1;
            let len = usize::from(script.byte());
            Op::Inject {
                bytes: script.bytes(len).to_vec(),
                framed,
            }
        }
        5 | 6 => Op::Deliver(usize::from(script.u16()) + 1),
        7 => Op::Flip {
            offset: usize::from(script.u16()),
            bit: script.byte() % 8,
        },
        8 => {
            let offset = usize::from(script.u16());
            let len = usize::from(script.byte() % 16) + 1;
            Op::Insert {
                offset,
                bytes: script.bytes(len).to_vec(),
            }
        }
        _ => match script.byte() % 3 {
            0 => Op::Cut(usize::from(script.u16())),
            _ => Op::Close,
        },
    }
}

/// A zstd raw block (RFC 8878 §3.1.1.2) holding `payload`; `frame` wraps it
/// in a whole frame of its own (magic, a 16 KiB window, the block last).
fn zstd_raw(payload: &[u8], frame: bool) -> Vec<u8> {
    let mut out = Vec::new();
    if frame {
        out.extend_from_slice(&[0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x20]);
    }
    let header = (payload.len() as u32) << 3 | u32::from(frame);
    out.extend_from_slice(&header.to_le_bytes()[..3]);
    out.extend_from_slice(payload);
    out
}

/// What the run did to the stream, which says what the receiver may do.
#[derive(Debug, Default)]
struct Faults {
    /// Messages sent before the first injection (all of them if none).
    honest: Option<usize>,
    damaged: bool,
    cut: bool,
}

struct Run {
    now: Instant,
    peer: Peer,
    receiver: Receiver,
    /// Wire bytes on their way to the receiver.
    wire: Vec<u8>,
    sent: Vec<Bytes>,
    delivered: Vec<Bytes>,
    faults: Faults,
    /// The receiver has been told the stream ended.
    ended: bool,
}

impl Run {
    /// Gives the receiver up to `n` wire bytes, as far as it takes them,
    /// takes its messages, and carries its answers (undamaged) to the peer.
    fn deliver(&mut self, mut n: usize) {
        loop {
            let mut progressed = self.take_messages();
            if n > 0 && !self.wire.is_empty() && self.receiver.wants_read() {
                let len = n.min(self.wire.len()).min(self.receiver.read_room());
                match self.receiver.handle_input(self.now, &self.wire[..len]) {
                    Ok(taken) => {
                        self.wire.drain(..taken);
                        n -= taken;
                        progressed |= taken > 0;
                    }
                    Err(_) => n = 0,
                }
            }
            progressed |= self.take_messages();
            progressed |= self.answer();
            if !progressed {
                return;
            }
        }
    }

    fn take_messages(&mut self) -> bool {
        let mut progressed = false;
        while let Ok(Some(msg)) = self.receiver.poll_message(self.now) {
            self.delivered.push(msg);
            progressed = true;
        }
        self.check_prefix();
        progressed
    }

    /// The receiver's bytes (handshake, alerts) to the peer's TLS.
    fn answer(&mut self) -> bool {
        let mut back = Vec::new();
        while let Ok(Some(bytes)) = self.receiver.poll_transmit(self.now) {
            let n = bytes.len();
            back.extend_from_slice(bytes);
            self.receiver.advance_transmit(n);
        }
        if back.is_empty() {
            return false;
        }
        let _ = self.peer.tls.handle_input(self.now, &back);
        // The peer may now send what its handshake held.
        self.peer.flush(self.now, &mut self.wire);
        true
    }

    fn check_prefix(&self) {
        let honest = self.faults.honest.unwrap_or(self.sent.len());
        for (i, msg) in self.delivered.iter().enumerate().take(honest) {
            assert_eq!(msg, &self.sent[i], "message {i} arrived changed");
        }
        if self.faults.honest.is_none() {
            assert!(self.delivered.len() <= self.sent.len(), "a message from nowhere");
        }
    }

    fn check_error(&self) {
        let Some(error) = self.receiver.error() else {
            return;
        };
        let injected = self.faults.honest.is_some();
        match error {
            Error::PeerMisbehaved { layer, .. } | Error::Truncated { layer, .. } => {
                if !injected {
                    assert_eq!(*layer, "tls", "an error past TLS without injection: {error}");
                }
            }
            Error::LocalLimit { .. } if injected => {}
            other => panic!("not the peer's doing: {other:?}"),
        }
        // Before the end of the stream, an honest stream has no error at
        // all; after it, only the truncation checked at the end.
        assert!(
            self.faults.damaged || self.faults.cut || injected || self.ended,
            "an honest stream failed: {error}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let mut script = Script::new(data);
    seeded_tls::reseed(u64::from(script.u32()));
    let configs = seeded_tls::configs();
    let now = Instant::now();
    let layers: Vec<BoxedLayer> = vec![
        Box::new(Zstd::with_config(ZstdConfig::new())),
        Box::new(Tls::server(configs.server.clone()).expect("server")),
    ];
    let receiver = Connection::new(DynStack::new(layers), LengthDelimited::new());
    let peer = Peer {
        upper: Connection::new(Stack::new((Zstd::new(),)), LengthDelimited::new()),
        tls: Connection::new(
            Stack::new((Tls::client(configs.client.clone(), "localhost").expect("client"),)),
            RawCodec::new(),
        ),
        carry: BytesMut::new(),
        frame_open: false,
        closed: false,
    };
    let mut run = Run {
        now,
        peer,
        receiver,
        wire: Vec::new(),
        sent: Vec::new(),
        delivered: Vec::new(),
        faults: Faults::default(),
        ended: false,
    };
    // The client's hello.
    run.peer.flush(now, &mut run.wire);
    for _ in 0..64 {
        if script.is_empty() {
            break;
        }
        match next_op(&mut script) {
            Op::Send(msg) => {
                if !run.peer.closed && run.peer.upper.send(&msg).is_ok() {
                    run.sent.push(msg);
                }
            }
            Op::Flush => run.peer.flush(now, &mut run.wire),
            Op::Inject { bytes, framed } => {
                if run.peer.closed {
                    continue;
                }
                // Everything sent so far goes first.
                run.peer.flush(now, &mut run.wire);
                run.faults.honest.get_or_insert(run.sent.len());
                let bytes = match framed {
                    true => zstd_raw(&bytes, !run.peer.frame_open),
                    false => bytes,
                };
                run.peer.carry.extend_from_slice(&bytes);
                run.peer.flush(now, &mut run.wire);
            }
            Op::Deliver(n) => run.deliver(n),
            Op::Flip { offset, bit } => {
                if !run.wire.is_empty() {
                    let i = offset % run.wire.len();
                    run.wire[i] ^= 1 << bit;
                    run.faults.damaged = true;
                }
            }
            Op::Insert { offset, bytes } => {
                let i = offset % (run.wire.len() + 1);
                run.wire.splice(i..i, bytes);
                run.faults.damaged = true;
            }
            Op::Cut(offset) => {
                run.wire.truncate(offset % (run.wire.len() + 1));
                run.faults.cut = true;
                break;
            }
            Op::Close => {
                run.peer.closed = true;
                run.peer.upper.close();
                run.peer.flush(now, &mut run.wire);
            }
        }
        run.check_error();
    }
    // The rest of the conversation, then the end of the stream.
    if !run.faults.cut {
        loop {
            run.peer.flush(now, &mut run.wire);
            if run.wire.is_empty() {
                break;
            }
            run.deliver(usize::MAX);
            if run.receiver.error().is_some() || !run.receiver.wants_read() {
                break;
            }
        }
    } else {
        run.deliver(usize::MAX);
    }
    run.take_messages();
    let _ = run.receiver.handle_input_eof(now);
    run.ended = true;
    run.take_messages();
    run.check_error();
    if std::env::var_os("NETSTRATA_FUZZ_TRACE").is_some() {
        eprintln!(
            "sent {}, delivered {}, faults {:?}, error {:?}",
            run.sent.len(),
            run.delivered.len(),
            run.faults,
            run.receiver.error()
        );
    }
    let clean = run.faults.honest.is_none() && !run.faults.damaged && !run.faults.cut;
    if clean {
        assert_eq!(run.delivered, run.sent, "an honest stream lost messages");
        match run.receiver.error() {
            None => assert!(run.peer.closed && run.receiver.is_read_closed()),
            Some(Error::Truncated { layer: "tls", .. }) => assert!(!run.peer.closed),
            Some(other) => panic!("an honest stream failed: {other}"),
        }
    }
});
