//! Operations on two live `DynStack` connections, kept consistent as a
//! real upgrade protocol keeps them (STARTTLS-style): sends, wire bytes
//! delivered in fuzzer-chosen chunks, reads, flushes, orderly closes, and
//! layers inserted into and removed from both stacks at any boundary.
//!
//! An upgrade (insert or remove at index `i`, the same layer on both ends)
//! runs as a request and an answer: the initiator stops sending; the
//! responder reads exactly what the initiator sent before, changes its
//! stack, and answers with everything it sends from then on under the new
//! stack; the initiator reads exactly up to that point (putting back any
//! read-ahead with `Connection::unread`) and changes its stack. Below the
//! top, and for removals, the responder waits for the initiator too (the
//! `DynStack::insert`/`remove` docs: bytes already past the boundary
//! cannot be taken back).
//!
//! Invariants:
//! - nothing panics, and an honest run never fails: no error on either end;
//! - bytes are conserved: each end reads a prefix of what the other sent,
//!   and once everything is delivered, all of it, in order;
//! - after both ends close and everything is delivered, both read sides
//!   end cleanly;
//! - misuse (an index past the stack, a send after close) returns a typed
//!   `Misuse` error, changes nothing and does not end the connection.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use netstrata_core::layers::{Checksummed, PassThrough, Xor};
use netstrata_core::{BoxedLayer, Connection, DynStack, Error, RawCodec};
use netstrata_zstd::Zstd;

#[path = "common.rs"]
mod common;
use common::Script;

const MAX_LAYERS: usize = 6;

/// A layer both ends can make alike.
#[derive(Debug, Clone, Copy)]
enum Kind {
    PassThrough,
    Xor(u8),
    Checksummed,
    Zstd,
}

impl Kind {
    fn from(b: u8) -> Self {
        match b % 4 {
            0 => Self::PassThrough,
            1 => Self::Xor(b),
            2 => Self::Checksummed,
            _ => Self::Zstd,
        }
    }

    fn layer(self) -> BoxedLayer {
        match self {
            Self::PassThrough => Box::new(PassThrough::new()),
            Self::Xor(key) => Box::new(Xor::new([key, 0x5a, key.rotate_left(3)])),
            Self::Checksummed => Box::new(Checksummed::new()),
            Self::Zstd => Box::new(Zstd::new()),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Change {
    Insert(usize, Kind),
    Remove(usize),
}

/// Where an upgrade is.
#[derive(Debug, Clone, Copy)]
enum Upgrade {
    Idle,
    /// `initiator` asked after sending `boundary` bytes and waits.
    Requested {
        initiator: usize,
        change: Change,
        boundary: u64,
    },
    /// The responder changed its stack after sending `boundary` bytes.
    Answered {
        initiator: usize,
        change: Change,
        boundary: u64,
    },
}

struct End {
    conn: Connection<DynStack, RawCodec>,
    sent: Vec<u8>,
    received: Vec<u8>,
    /// Wire bytes on their way to the other end.
    wire: Vec<u8>,
    /// The end of stream was passed to the other end.
    eof_sent: bool,
}

impl End {
    fn new(layers: &[Kind]) -> Self {
        Self {
            conn: Connection::new(
                DynStack::new(layers.iter().map(|k| k.layer()).collect()),
                RawCodec::new(),
            ),
            sent: Vec::new(),
            received: Vec::new(),
            wire: Vec::new(),
            eof_sent: false,
        }
    }

    fn transmit(&mut self, now: Instant) -> bool {
        // Ending the stream may produce no byte (no layer with an end marker).
        let mut progressed = false;
        let was_closed = self.conn.is_write_closed();
        while let Ok(Some(bytes)) = self.conn.poll_transmit(now) {
            let n = bytes.len();
            self.wire.extend_from_slice(bytes);
            self.conn.advance_transmit(n);
            progressed = true;
        }
        progressed || was_closed != self.conn.is_write_closed()
    }

    /// Reads at most `limit` bytes, putting back what lies beyond.
    fn read(&mut self, now: Instant, limit: u64) -> bool {
        let mut left = limit;
        let mut progressed = false;
        while left > 0 {
            let msg = match self.conn.poll_message(now) {
                Ok(Some(msg)) => msg,
                Ok(None) => break,
                Err(e) => panic!("read failed: {e}"),
            };
            let take = usize::try_from(left).unwrap_or(usize::MAX).min(msg.len());
            self.received.extend_from_slice(&msg[..take]);
            self.conn.unread(&msg[take..]);
            left -= take as u64;
            progressed |= take > 0;
        }
        progressed
    }

    /// Changes the stack as a protocol would: below the top, bytes sent
    /// before the change must be transmitted first; the stack refuses the
    /// change (misuse, nothing changed) while they wait.
    fn apply(&mut self, now: Instant, change: Change) {
        let attempt = |conn: &mut Connection<DynStack, RawCodec>| match change {
            Change::Insert(index, kind) => conn.insert_layer(index, kind.layer()),
            Change::Remove(index) => conn.remove_layer(index, now).map(drop),
        };
        let below_top = match change {
            Change::Insert(index, _) => index > 0 && self.conn.stack().len() > 0,
            Change::Remove(index) => index > 0,
        };
        if below_top && self.conn.send_queued() > 0 {
            let layers = self.conn.stack().len();
            expect_misuse(attempt(&mut self.conn), "a change above unsent bytes");
            assert_eq!(self.conn.stack().len(), layers, "a refused change changed the stack");
            self.transmit(now);
        }
        attempt(&mut self.conn).unwrap_or_else(|e| panic!("{change:?} failed: {e}"));
    }
}

struct Run {
    now: Instant,
    ends: [End; 2],
    /// The layers both stacks have, top first, once no upgrade is under way.
    layers: Vec<Kind>,
    upgrade: Upgrade,
}

impl Run {
    /// Gives end `to` up to `n` of the bytes on their way to it.
    fn deliver(&mut self, to: usize, n: usize) -> bool {
        let [a, b] = &mut self.ends;
        let (from, dest) = if to == 0 { (b, a) } else { (a, b) };
        let len = n
            .min(from.wire.len())
            .min(dest.conn.read_room());
        if len > 0 && dest.conn.wants_read() {
            let taken = dest
                .conn
                .handle_input(self.now, &from.wire[..len])
                .unwrap_or_else(|e| panic!("input failed: {e}"));
            from.wire.drain(..taken);
            return taken > 0;
        }
        if from.wire.is_empty() && from.conn.is_write_closed() && !from.eof_sent {
            from.eof_sent = true;
            dest.conn
                .handle_input_eof(self.now)
                .unwrap_or_else(|e| panic!("end of stream failed: {e}"));
            return true;
        }
        false
    }

    /// How much end `i` may read now without reading past a switch of the
    /// other end's stack that it has not made yet.
    fn read_limit(&self, i: usize) -> u64 {
        match self.upgrade {
            Upgrade::Answered {
                initiator,
                boundary,
                ..
            } if initiator == i => boundary - self.ends[i].received.len() as u64,
            _ => u64::MAX,
        }
    }

    fn read(&mut self, i: usize) -> bool {
        let limit = self.read_limit(i);
        let progressed = self.ends[i].read(self.now, limit);
        let other = &self.ends[1 - i];
        assert!(
            other.sent.starts_with(&self.ends[i].received),
            "end {i} read bytes that were not sent"
        );
        progressed | self.advance_upgrade()
    }

    /// Whether end `i` may send now.
    fn may_send(&self, i: usize) -> bool {
        match self.upgrade {
            Upgrade::Idle => true,
            Upgrade::Requested { initiator, .. } => initiator != i,
            // Inserted at the top, the responder's new bytes are read
            // through `unread`; anywhere else it waits for the initiator.
            Upgrade::Answered {
                initiator, change, ..
            } => initiator != i && matches!(change, Change::Insert(0, _)),
        }
    }

    /// Moves an upgrade on when its side has read what it must.
    fn advance_upgrade(&mut self) -> bool {
        match self.upgrade {
            Upgrade::Idle => false,
            Upgrade::Requested {
                initiator,
                change,
                boundary,
            } => {
                let responder = 1 - initiator;
                if self.ends[responder].received.len() as u64 != boundary {
                    return false;
                }
                self.ends[responder].apply(self.now, change);
                self.upgrade = Upgrade::Answered {
                    initiator,
                    change,
                    boundary: self.ends[responder].sent.len() as u64,
                };
                true
            }
            Upgrade::Answered {
                initiator,
                change,
                boundary,
            } => {
                if (self.ends[initiator].received.len() as u64) < boundary {
                    return false;
                }
                self.ends[initiator].apply(self.now, change);
                match change {
                    Change::Insert(index, kind) => self.layers.insert(index, kind),
                    Change::Remove(index) => drop(self.layers.remove(index)),
                }
                self.upgrade = Upgrade::Idle;
                true
            }
        }
    }

    /// Runs until nothing moves: everything sent is delivered and read.
    fn settle(&mut self) {
        for _ in 0..10_000 {
            let mut progressed = false;
            for i in 0..2 {
                progressed |= self.ends[i].transmit(self.now);
                progressed |= self.deliver(i, usize::MAX);
                progressed |= self.read(i);
            }
            if !progressed {
                return;
            }
        }
        panic!("no settled state");
    }
}

fn expect_misuse(result: netstrata_core::Result<()>, what: &str) {
    match result {
        Err(Error::Misuse { .. }) => {}
        other => panic!("{what}: expected misuse, got {other:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut script = Script::new(data);
    // Set to see the operations of a crash input as it replays.
    let trace = std::env::var_os("NETSTRATA_FUZZ_TRACE").is_some();
    let now = Instant::now();
    let initial: Vec<Kind> = (0..script.byte() % 3).map(|_| Kind::from(script.byte())).collect();
    let mut run = Run {
        now,
        ends: [End::new(&initial), End::new(&initial)],
        layers: initial,
        upgrade: Upgrade::Idle,
    };
    for _ in 0..128 {
        if script.is_empty() {
            break;
        }
        let op = script.byte();
        let i = usize::from(op >> 7);
        if trace {
            eprintln!("op {} on end {i}, layers {:?}, upgrade {:?}", op % 12, run.layers, run.upgrade);
        }
        match op % 12 {
            0 | 1 => {
                let len = usize::from(script.byte()) * 4;
                let msg = script.bytes(len).to_vec();
                let may_send = run.may_send(i);
                let end = &mut run.ends[i];
                if !end.conn.is_write_open() {
                    expect_misuse(end.conn.send(&msg), "send after close");
                } else if may_send {
                    end.conn.send(&msg).expect("send");
                    end.sent.extend_from_slice(&msg);
                }
            }
            2 | 3 => {
                run.ends[i].transmit(now);
            }
            4 | 5 => {
                let n = usize::from(script.u16()) % 4096 + 1;
                run.deliver(i, n);
            }
            6 => {
                run.read(i);
            }
            7 | 8 => {
                // An upgrade: both ends open, none under way.
                let open = run.ends.iter().all(|e| e.conn.is_write_open());
                if !matches!(run.upgrade, Upgrade::Idle) || !open {
                    continue;
                }
                let n = run.layers.len();
                let change = if op % 12 == 7 && n < MAX_LAYERS {
                    Change::Insert(usize::from(script.byte()) % (n + 1), Kind::from(script.byte()))
                } else if n > 0 {
                    Change::Remove(usize::from(script.byte()) % n)
                } else {
                    continue;
                };
                let end = &mut run.ends[i];
                end.transmit(now);
                run.upgrade = Upgrade::Requested {
                    initiator: i,
                    change,
                    boundary: end.sent.len() as u64,
                };
                run.advance_upgrade();
            }
            9 => {
                // Misuse: an index past the stack changes nothing.
                let end = &mut run.ends[i];
                let n = end.conn.stack().len();
                let past = n + 1 + usize::from(script.byte());
                let stats = end.conn.stats().layers.len();
                let inserted = end.conn.insert_layer(past, Box::new(PassThrough::new()));
                expect_misuse(inserted, "insert past the bottom");
                expect_misuse(end.conn.remove_layer(n + usize::from(script.byte()), now).map(drop), "remove past the bottom");
                assert_eq!(end.conn.stats().layers.len(), stats);
                assert!(end.conn.error().is_none(), "misuse ended the connection");
            }
            10 => {
                if matches!(run.upgrade, Upgrade::Idle) {
                    run.ends[i].conn.close();
                }
            }
            _ => {
                // A burst of deliveries both ways, in pieces.
                let n = usize::from(script.byte()) + 1;
                for _ in 0..8 {
                    run.deliver(0, n);
                    run.deliver(1, n);
                }
            }
        }
        for end in &run.ends {
            assert!(end.conn.error().is_none(), "an honest run failed: {:?}", end.conn.error());
        }
    }
    // Everything sent arrives, in order; then both ends close.
    run.settle();
    for i in 0..2 {
        assert_eq!(run.ends[i].received, run.ends[1 - i].sent, "end {i} lost bytes");
    }
    assert!(matches!(run.upgrade, Upgrade::Idle), "an upgrade did not complete");
    {
        for end in &mut run.ends {
            end.conn.close();
        }
        run.settle();
        for (i, end) in run.ends.iter().enumerate() {
            assert!(end.conn.error().is_none(), "end {i} failed: {:?}", end.conn.error());
            assert!(end.conn.is_read_closed(), "end {i} did not end cleanly");
        }
    }
});
