//! `Connection::send_bytes`: a large message queued by reference on a stack
//! that passes bytes through goes out as the same bytes, in the same order,
//! with the same figures, as if it had been copied by `send`; on any other
//! stack, or with a codec that cannot frame it as prefix + body, it is
//! copied.

use std::fmt;
use std::io::IoSlice;
use std::time::Instant;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use netstrata_core::layers::{PassThrough, Xor};
use netstrata_core::{
    BoxedLayer, Codec, Connection, ConnectionConfig, DynStack, Error, Layer, RawCodec, Stack,
};
use proptest::prelude::*;

/// Frames of a 4-byte big-endian length, then the message; at most `MAX`.
#[derive(Debug, Clone, Default)]
struct Prefixed;

/// A length above [`Prefixed::MAX`].
#[derive(Debug)]
struct TooLong(usize);

impl fmt::Display for TooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bytes is too long", self.0)
    }
}

impl std::error::Error for TooLong {}

impl Prefixed {
    const MAX: usize = 1 << 20;
}

impl Codec for Prefixed {
    type Error = TooLong;

    fn name(&self) -> &'static str {
        "prefixed"
    }

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, TooLong> {
        let Some(head) = src.get(..4) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes(head.try_into().expect("4 bytes")) as usize;
        if len > Self::MAX {
            return Err(TooLong(len));
        }
        if src.len() < 4 + len {
            return Ok(None);
        }
        src.advance(4);
        Ok(Some(src.split_to(len).freeze()))
    }

    fn encode(&mut self, msg: &[u8], dst: &mut BytesMut) -> Result<(), TooLong> {
        self.encode_prefix(msg.len(), dst).expect("always")?;
        dst.extend_from_slice(msg);
        Ok(())
    }

    fn encode_prefix(&mut self, len: usize, dst: &mut BytesMut) -> Option<Result<(), TooLong>> {
        if len > Self::MAX {
            return Some(Err(TooLong(len)));
        }
        dst.put_u32(len as u32);
        Some(Ok(()))
    }

    fn max_buffered(&self) -> usize {
        Self::MAX + 4
    }
}

/// [`Prefixed`] without `encode_prefix`: the codec's default, "cannot".
#[derive(Debug, Clone, Default)]
struct NoPrefix(Prefixed);

impl Codec for NoPrefix {
    type Error = TooLong;

    fn name(&self) -> &'static str {
        "no-prefix"
    }

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, TooLong> {
        self.0.decode(src)
    }

    fn encode(&mut self, msg: &[u8], dst: &mut BytesMut) -> Result<(), TooLong> {
        self.0.encode(msg, dst)
    }

    fn max_buffered(&self) -> usize {
        self.0.max_buffered()
    }
}

/// Message `seq` of `len` bytes: every message differs from the others, so
/// any reordering or loss shows.
fn message(seq: usize, len: usize) -> Bytes {
    (0..len)
        .map(|i| (seq.wrapping_mul(31) ^ i.wrapping_mul(7)) as u8)
        .collect::<Vec<u8>>()
        .into()
}

/// `slices` for a write through `take_transmit`.
const TAKE: usize = 5;

/// One write of at most `limit` bytes of what `conn` has to transmit,
/// through `poll_transmit_vectored` with `slices` slices, through
/// `poll_transmit` when `slices` is 0, or `take_transmit` when it is
/// [`TAKE`]. Appends what was written to `wire` and returns how much that
/// was (0: nothing to write).
fn write_once<S: Layer, C: Codec>(
    conn: &mut Connection<S, C>,
    now: Instant,
    limit: usize,
    slices: usize,
    wire: &mut Vec<u8>,
) -> Result<usize, Error> {
    if slices == TAKE {
        let Some(run) = conn.take_transmit(now, limit)? else {
            return Ok(0);
        };
        assert!(
            !run.is_empty() && run.len() <= limit,
            "{} of {limit}",
            run.len()
        );
        wire.extend_from_slice(&run);
        return Ok(run.len());
    }
    let written = if slices == 0 {
        match conn.poll_transmit(now)? {
            None => 0,
            Some(bytes) => {
                assert!(!bytes.is_empty(), "an empty run to write");
                let n = bytes.len().min(limit);
                wire.extend_from_slice(&bytes[..n]);
                n
            }
        }
    } else {
        let mut out = vec![IoSlice::new(&[]); slices];
        let filled = conn.poll_transmit_vectored(now, &mut out)?;
        assert!(filled <= slices);
        let mut left = limit;
        for slice in &out[..filled] {
            assert!(!slice.is_empty(), "an empty slice to write");
            let n = slice.len().min(left);
            wire.extend_from_slice(&slice[..n]);
            left -= n;
        }
        limit - left
    };
    conn.advance_transmit(written);
    Ok(written)
}

/// Transmits all `conn` has, in writes of the sizes in `limits` (cycled).
fn transmit_all<S: Layer, C: Codec>(
    conn: &mut Connection<S, C>,
    now: Instant,
    limits: &[usize],
    slices: usize,
) -> Vec<u8> {
    let mut wire = Vec::new();
    for &limit in limits.iter().cycle() {
        if write_once(conn, now, limit.max(1), slices, &mut wire).unwrap() == 0 {
            break;
        }
    }
    wire
}

/// Whether one of the slices `conn` would transmit now is `msg`'s own memory.
fn transmits_from<S: Layer, C: Codec>(conn: &mut Connection<S, C>, msg: &Bytes) -> bool {
    let mut out = [IoSlice::new(&[]); 16];
    let filled = conn
        .poll_transmit_vectored(Instant::now(), &mut out)
        .unwrap();
    out[..filled]
        .iter()
        .any(|s| s.as_ptr() == msg.as_ptr() && s.len() == msg.len())
}

fn plain<C: Codec>(codec: C) -> Connection<Stack<()>, C> {
    Connection::new(Stack::new(()), codec)
}

#[test]
fn a_large_message_is_transmitted_from_its_own_memory() {
    let big = message(1, 16 * 1024);
    let small = message(2, 100);
    let mut conn = plain(Prefixed);
    conn.send_bytes(big.clone()).unwrap();
    conn.send_bytes(small.clone()).unwrap();
    assert!(transmits_from(&mut conn, &big));
    assert!(
        !transmits_from(&mut conn, &small),
        "a small message is copied"
    );
    assert_eq!(conn.queued(), 2 * 4 + big.len() + small.len());

    // The threshold: 4 KiB.
    let (at, below) = (message(3, 4096), message(4, 4095));
    conn.send_bytes(at.clone()).unwrap();
    conn.send_bytes(below.clone()).unwrap();
    assert!(transmits_from(&mut conn, &at));
    assert!(!transmits_from(&mut conn, &below));

    let mut dynamic = Connection::new(DynStack::new(Vec::new()), RawCodec::new());
    dynamic.send_bytes(big.clone()).unwrap();
    assert!(transmits_from(&mut dynamic, &big), "an empty dynamic stack");

    let mut pass = Connection::new(PassThrough::new(), Prefixed);
    pass.send_bytes(big.clone()).unwrap();
    assert!(transmits_from(&mut pass, &big), "a pass-through layer");
}

#[test]
fn take_transmit_hands_over_a_message_queued_by_reference_without_a_copy() {
    let (now, big) = (Instant::now(), message(1, 16 * 1024));
    let mut conn = plain(Prefixed);
    conn.send(b"hi").unwrap();
    conn.send_bytes(big.clone()).unwrap();
    let (mut wire, mut own_memory) = (Vec::new(), false);
    while let Some(run) = conn.take_transmit(now, usize::MAX).unwrap() {
        own_memory |= run.as_ptr() == big.as_ptr() && run.len() == big.len();
        wire.extend_from_slice(&run);
    }
    assert!(own_memory, "the message was copied");
    let mut expected = vec![0, 0, 0, 2, b'h', b'i', 0, 0, 0x40, 0];
    expected.extend_from_slice(&big);
    assert_eq!(wire, expected);
    assert_eq!(conn.queued(), 0);
    assert_eq!(conn.stats().wire_out, expected.len() as u64);
}

#[test]
fn a_layered_stack_or_a_codec_without_prefix_copies_the_message() {
    let big = message(1, 16 * 1024);
    let layers: Vec<BoxedLayer> = vec![Box::new(PassThrough::new())];
    let mut layered = Connection::new(DynStack::new(layers), Prefixed);
    layered.send_bytes(big.clone()).unwrap();
    assert!(!transmits_from(&mut layered, &big));

    let mut no_prefix = plain(NoPrefix::default());
    no_prefix.send_bytes(big.clone()).unwrap();
    assert!(!transmits_from(&mut no_prefix, &big));

    let mut reference = plain(Prefixed);
    reference.send(&big).unwrap();
    let expected = transmit_all(&mut reference, Instant::now(), &[usize::MAX], 0);
    for wire in [
        transmit_all(&mut layered, Instant::now(), &[usize::MAX], 4),
        transmit_all(&mut no_prefix, Instant::now(), &[usize::MAX], TAKE),
    ] {
        assert_eq!(wire, expected);
    }
}

/// Small copied messages and large ones by reference, interleaved, written
/// in odd-sized pieces that end inside the prefix, the message and the
/// copied bytes around it, then a close: the bytes, the figures and the
/// end are those of `send` alone.
#[test]
fn interleaved_sends_close_and_odd_writes_match_send_alone() {
    let now = Instant::now();
    let lens = [10, 5000, 3, 16 * 1024, 16 * 1024, 700, 4096, 4095, 1];
    for slices in [0, 1, 2, 3, 16] {
        let mut conn = plain(Prefixed);
        let mut reference = plain(Prefixed);
        let mut wire = Vec::new();
        for (seq, &len) in lens.iter().enumerate() {
            let msg = message(seq, len);
            conn.send_bytes(msg.clone()).unwrap();
            reference.send(&msg).unwrap();
            if seq % 3 == 2 {
                // Part of what is queued goes out between sends.
                write_once(&mut conn, now, 1 + seq * 997, slices, &mut wire).unwrap();
            }
        }
        conn.close();
        reference.close();
        assert!(!conn.is_write_closed());
        while write_once(&mut conn, now, 1237, slices, &mut wire).unwrap() > 0 {
            assert_eq!(conn.is_write_closed(), conn.queued() == 0);
        }
        assert!(conn.is_write_closed(), "ended once all was written");
        let expected = transmit_all(&mut reference, now, &[usize::MAX], 0);
        assert!(reference.is_write_closed());
        assert_eq!(wire, expected, "{slices} slices");
        assert_eq!(conn.stats(), reference.stats());
        assert_eq!(conn.stats().messages_out, lens.len() as u64);
        assert_eq!(conn.stats().wire_out, expected.len() as u64);
        assert_eq!(conn.queued(), 0);
        assert!(conn.send_bytes(message(0, 8192)).is_err(), "after close");
    }
}

/// A pass-through layer as the whole stack reports its own figures: the
/// bytes that skipped its calls are counted as having crossed it.
#[test]
fn a_pass_through_layer_counts_what_skipped_it() {
    let now = Instant::now();
    let mut conn = Connection::new(PassThrough::new(), RawCodec::new());
    let mut reference = Connection::new(PassThrough::new(), RawCodec::new());
    for (seq, len) in [(0, 20), (1, 9000), (2, 30)] {
        let msg = message(seq, len);
        conn.send_bytes(msg.clone()).unwrap();
        reference.send(&msg).unwrap();
    }
    let wire = transmit_all(&mut conn, now, &[333], 2);
    assert_eq!(wire, transmit_all(&mut reference, now, &[usize::MAX], 0));
    let stats = conn.stats();
    assert_eq!(stats, reference.stats());
    assert_eq!(stats.layers[0].bytes.outbound_in, 9050);
    assert_eq!(stats.layers[0].bytes.outbound_out, 9050);
}

#[test]
fn a_message_the_codec_refuses_leaves_nothing_behind() {
    let now = Instant::now();
    let mut conn = plain(Prefixed);
    conn.send(b"first").unwrap();
    let queued = conn.queued();
    let err = conn
        .send_bytes(message(0, Prefixed::MAX + 1))
        .expect_err("too long");
    assert!(
        matches!(
            err,
            Error::Misuse {
                layer: "prefixed",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(conn.queued(), queued);
    conn.send_bytes(message(1, 8000)).unwrap();
    let mut reference = plain(Prefixed);
    reference.send(b"first").unwrap();
    reference.send(&message(1, 8000)).unwrap();
    assert_eq!(
        transmit_all(&mut conn, now, &[100], 3),
        transmit_all(&mut reference, now, &[usize::MAX], 0)
    );
    assert_eq!(conn.stats().messages_out, 2);
}

/// Bytes queued by reference take the write buffer's room, so copied
/// messages behind them wait above the stack; beyond that room they count
/// against the send buffer, which refuses more until some are written.
#[test]
fn the_write_and_send_buffers_bound_what_is_queued_by_reference() {
    let now = Instant::now();
    let config = ConnectionConfig::new()
        .with_write_buffer(8 * 1024)
        .with_send_buffer(32 * 1024);
    let mut conn = Connection::with_config(Stack::new(()), Prefixed, config);
    let frame = 4 + 16 * 1024;
    conn.send_bytes(message(0, 16 * 1024)).unwrap();
    conn.send(b"small").unwrap();
    let mut wire = Vec::new();
    // The chain fills the write buffer: the small message waits above.
    let mut out = [IoSlice::new(&[]); 16];
    let filled = conn.poll_transmit_vectored(now, &mut out).unwrap();
    let ready: usize = out[..filled].iter().map(|s| s.len()).sum();
    assert_eq!(ready, frame);
    assert_eq!(conn.send_queued(), 9 + (frame - 8 * 1024));

    let mut accepted = 1;
    let err = loop {
        match conn.send_bytes(message(accepted, 16 * 1024)) {
            Ok(()) => accepted += 1,
            Err(e) => break e,
        }
        assert!(accepted < 10, "the send buffer bounds the chain");
    };
    assert!(matches!(err, Error::SendBufferFull { limit, .. } if limit == 32 * 1024));
    assert!(conn.queued() <= 32 * 1024 + 8 * 1024 + frame);
    assert!(conn.send(b"x").is_err(), "full for copies too");

    // Writing frees the room again.
    write_once(&mut conn, now, 3 * frame, 16, &mut wire).unwrap();
    conn.send_bytes(message(99, 16 * 1024)).unwrap();
    let rest = transmit_all(&mut conn, now, &[5000], 3);
    wire.extend_from_slice(&rest);
    assert_eq!(wire.len() as u64, conn.stats().wire_out);
    assert_eq!(wire.len(), (accepted + 1) * frame + 9);
    // The small message went out right after the first large one.
    assert_eq!(&wire[frame..frame + 9], b"\0\0\0\x05small");
}

/// After the codec fails on the peer's input, what was sent before, by
/// reference or not, still reaches the peer, in order; then the error.
#[test]
fn a_decoding_error_still_transmits_what_was_queued_by_reference() {
    let now = Instant::now();
    let mut conn = plain(Prefixed);
    let mut reference = plain(Prefixed);
    for (seq, len) in [(0, 50), (1, 12_000), (2, 60)] {
        let msg = message(seq, len);
        conn.send_bytes(msg.clone()).unwrap();
        reference.send(&msg).unwrap();
    }
    conn.handle_input(now, &[0xff; 8]).unwrap();
    assert!(conn.poll_message(now).is_err());
    assert!(conn.send_bytes(message(3, 9000)).is_err());
    let mut wire = Vec::new();
    let err = loop {
        match write_once(&mut conn, now, 1001, 2, &mut wire) {
            Ok(0) => panic!("the error must follow the bytes"),
            Ok(_) => {}
            Err(e) => break e,
        }
    };
    assert!(
        matches!(
            err,
            Error::PeerMisbehaved {
                layer: "prefixed",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(wire, transmit_all(&mut reference, now, &[usize::MAX], 0));
    assert!(conn.poll_transmit(now).is_err());
}

#[derive(Debug, Clone)]
enum Op {
    Send(usize),
    SendBytes(usize),
    /// One write of at most `limit` bytes through `slices` slices (0:
    /// `poll_transmit`, [`TAKE`]: `take_transmit`).
    Write {
        limit: usize,
        slices: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0usize..300).prop_map(Op::Send),
        prop_oneof![0usize..300, 4000usize..4200, 16_000usize..16_500].prop_map(Op::SendBytes),
        (1usize..40_000, 0usize..=TAKE).prop_map(|(limit, slices)| Op::Write { limit, slices }),
    ]
}

/// The stacks the property runs on: none (by reference), a pass-through
/// member and an XOR member (both copied).
fn layers(kind: u8) -> Vec<BoxedLayer> {
    match kind {
        0 => Vec::new(),
        1 => vec![Box::new(PassThrough::new())],
        _ => vec![Box::new(Xor::new(*b"k3y"))],
    }
}

/// Runs `ops` on a connection with `config`, and the same messages through
/// `send` alone on a reference connection, then closes both (if `close`)
/// and transmits the rest: same bytes, same figures, and the queue counts
/// every byte not yet written all along.
fn check_interleaving<C: Codec + Clone>(
    codec: C,
    kind: u8,
    config: ConnectionConfig,
    ops: &[Op],
    close: bool,
    last_writes: &[usize],
) -> Result<(), TestCaseError> {
    let now = Instant::now();
    let mut conn = Connection::with_config(DynStack::new(layers(kind)), codec.clone(), config);
    let mut reference = Connection::new(DynStack::new(layers(kind)), codec.clone());
    let mut encoder = codec;
    let (mut wire, mut encoded) = (Vec::new(), 0);
    for (seq, op) in ops.iter().enumerate() {
        let sent = match *op {
            Op::Send(len) => Some((message(seq, len), conn.send(&message(seq, len)))),
            Op::SendBytes(len) => Some((message(seq, len), conn.send_bytes(message(seq, len)))),
            Op::Write { limit, slices } => {
                write_once(&mut conn, now, limit, slices, &mut wire).unwrap();
                None
            }
        };
        match sent {
            Some((msg, Ok(()))) => {
                reference.send(&msg).unwrap();
                let mut frame = BytesMut::new();
                encoder.encode(&msg, &mut frame).unwrap();
                encoded += frame.len();
            }
            Some((_, Err(e))) => prop_assert!(matches!(e, Error::SendBufferFull { .. }), "{e}"),
            None => {}
        }
        prop_assert_eq!(conn.queued() + wire.len(), encoded);
        prop_assert_eq!(conn.stats().wire_out, wire.len() as u64);
    }
    if close {
        conn.close();
        reference.close();
    }
    wire.extend_from_slice(&transmit_all(&mut conn, now, last_writes, 3));
    let expected = transmit_all(&mut reference, now, &[usize::MAX], 0);
    prop_assert_eq!(&wire, &expected);
    prop_assert_eq!(conn.stats(), reference.stats());
    prop_assert_eq!(conn.queued(), 0);
    prop_assert_eq!(conn.is_write_closed(), close);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_interleaving_transmits_what_send_alone_does(
        kind in 0u8..3,
        framed in any::<bool>(),
        write_buffer in prop_oneof![1usize..64, 1000usize..20_000, Just(64 * 1024)],
        send_buffer in prop_oneof![1usize..20_000, Just(1 << 20)],
        ops in prop::collection::vec(op(), 0..40),
        close in any::<bool>(),
        last_writes in prop::collection::vec(1usize..9000, 1..4),
    ) {
        let config = ConnectionConfig::new()
            .with_write_buffer(write_buffer)
            .with_send_buffer(send_buffer);
        if framed {
            check_interleaving(Prefixed, kind, config, &ops, close, &last_writes)?;
        } else {
            check_interleaving(RawCodec::new(), kind, config, &ops, close, &last_writes)?;
        }
    }
}
