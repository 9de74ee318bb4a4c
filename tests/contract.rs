//! The layer contract, checked on each demo layer alone: chunking does not
//! matter, the upward room is honoured, ends are clean or truncated.

mod common;

use bytes::BytesMut;
use common::{feed_inbound, feed_outbound, split_at};
use netstrata::layers::{Checksummed, PassThrough, Xor};
use netstrata::{DynStack, Error, Flush, Inbound, Layer, Stack};
use netstrata_core::testing::Conformance;
use proptest::prelude::*;

fn wire_of<L: Layer>(mut layer: L, data: &[u8]) -> Vec<u8> {
    feed_outbound(&mut layer, &[data.to_vec()], Flush::Batch)
}

type MakeLayer = fn() -> Box<dyn Layer + Send>;

fn layers() -> Vec<(&'static str, MakeLayer)> {
    vec![
        ("pass-through", || Box::new(PassThrough::new())),
        ("xor", || Box::new(Xor::new(*b"abc"))),
        ("checksummed", || Box::new(Checksummed::new())),
        ("static stack", || Box::new(common::static3())),
        ("dynamic stack", || Box::new(common::dynamic3())),
        ("empty stack", || Box::new(DynStack::new(vec![]))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Inbound output is the same for every split of the input and every
    /// sequence of upward rooms, and equals what was sent.
    #[test]
    fn inbound_ignores_chunking_and_room(
        data in proptest::collection::vec(any::<u8>(), 0..3000),
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
        rooms in proptest::collection::vec(1usize..700, 1..8),
    ) {
        for (name, make) in layers() {
            let wire = wire_of(make(), &data);
            let whole = feed_inbound(&mut make(), std::slice::from_ref(&wire), &[usize::MAX]);
            prop_assert_eq!(&whole, &data, "{} round trip", name);
            let chunked = feed_inbound(&mut make(), &split_at(&wire, &cuts), &rooms);
            prop_assert_eq!(&chunked, &data, "{} chunked", name);
        }
    }

    /// Byte at a time, room of one byte at a time.
    #[test]
    fn inbound_byte_at_a_time(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        for (name, make) in layers() {
            let wire = wire_of(make(), &data);
            let bytes: Vec<Vec<u8>> = wire.iter().map(|b| vec![*b]).collect();
            let out = feed_inbound(&mut make(), &bytes, &[1]);
            prop_assert_eq!(&out, &data, "{}", name);
        }
    }

    /// Outbound of the stateless layers is byte-identical for any chunking;
    /// the record layer's output decodes to the same bytes.
    #[test]
    fn outbound_ignores_chunking(
        data in proptest::collection::vec(any::<u8>(), 0..3000),
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
    ) {
        let chunks = split_at(&data, &cuts);
        prop_assert_eq!(
            feed_outbound(&mut Xor::new(*b"abc"), &chunks, Flush::Batch),
            wire_of(Xor::new(*b"abc"), &data)
        );
        let wire = feed_outbound(&mut Checksummed::new(), &chunks, Flush::Batch);
        prop_assert_eq!(feed_inbound(&mut Checksummed::new(), &[wire], &[usize::MAX]), data.clone());
    }
}

fn inbound_err<L: Layer>(layer: &mut L, wire: &[u8], ended: bool) -> Error {
    let now = std::time::Instant::now();
    let (mut input, mut up, mut down) = (BytesMut::from(wire), BytesMut::new(), BytesMut::new());
    layer
        .handle_inbound(Inbound::new(now, &mut input, &mut up, &mut down).with_input_ended(ended))
        .expect_err("must fail")
}

#[test]
fn checksummed_tells_truncation_from_a_clean_end() {
    let wire = wire_of(Checksummed::new(), b"some payload");
    // Cut anywhere before the end: truncation.
    for cut in 0..wire.len() {
        let e = inbound_err(&mut Checksummed::new(), &wire[..cut], true);
        assert!(
            matches!(
                e,
                Error::Truncated {
                    layer: "checksummed",
                    ..
                }
            ),
            "cut {cut}: {e}"
        );
    }
    // Whole: clean end.
    let mut layer = Checksummed::new();
    assert_eq!(feed_inbound(&mut layer, &[wire], &[64]), b"some payload");
    assert!(layer.is_read_closed());
}

#[test]
fn checksummed_rejects_corruption_and_trailing_bytes() {
    let mut wire = wire_of(Checksummed::new(), b"payload");
    let mut corrupt = wire.clone();
    corrupt[3] ^= 1;
    let e = inbound_err(&mut Checksummed::new(), &corrupt, false);
    assert!(
        e.is_peer_fault() && e.to_string().contains("checksum"),
        "{e}"
    );
    wire.push(0);
    let e = inbound_err(&mut Checksummed::new(), &wire, false);
    assert!(e.to_string().contains("after the end"), "{e}");
}

#[test]
fn writes_after_finish_are_misuse() {
    for (name, make) in layers() {
        let mut layer = make();
        feed_outbound(&mut layer, &[b"x".to_vec()], Flush::Batch);
        let mut input = BytesMut::from(&b"late"[..]);
        let err = layer
            .handle_outbound(
                netstrata::Outbound::new(
                    std::time::Instant::now(),
                    &mut input,
                    Flush::Batch,
                    &mut BytesMut::new(),
                )
                .with_lower_room(1024),
            )
            .expect_err(name);
        assert!(matches!(err, Error::Misuse { .. }), "{name}: {err}");
    }
}

#[test]
fn stacks_count_every_layer() {
    let mut stack = common::static3();
    let data = vec![7u8; 1000];
    let wire = feed_outbound(&mut stack, std::slice::from_ref(&data), Flush::Batch);
    let mut stats = Vec::new();
    stack.collect_stats(&Default::default(), &mut stats);
    let names: Vec<_> = stats.iter().map(|s| s.name).collect();
    assert_eq!(names, ["xor", "checksummed", "pass-through"]);
    assert_eq!(stats[0].bytes.outbound_in, 1000);
    assert_eq!(stats[0].bytes.outbound_out, 1000);
    // One record header plus the 10-byte end record.
    assert_eq!(stats[1].bytes.outbound_out, 1000 + 2 + 10);
    assert_eq!(stats[2].bytes.outbound_out as usize, wire.len());
}

#[test]
fn a_stack_keeps_its_first_error() {
    let mut stack = Stack::new((PassThrough::new(), Checksummed::new()));
    let e1 = inbound_err(&mut stack, &[0, 0, 1, 2, 3, 4, 5, 6, 7, 8], false);
    // Valid input afterwards still gets the first error.
    let e2 = inbound_err(&mut stack, &wire_of(Checksummed::new(), b"ok"), false);
    assert_eq!(e1.to_string(), e2.to_string());
    assert_eq!(stack.error().map(ToString::to_string), Some(e1.to_string()));
}

/// Refuses any input or any deadline, answering with an alert toward the
/// wire first, as TLS does.
#[derive(Debug)]
struct Refuses {
    deadline: std::time::Instant,
}

impl Layer for Refuses {
    fn name(&self) -> &'static str {
        "refuses"
    }

    fn handle_inbound(&mut self, io: Inbound<'_>) -> netstrata::Result<()> {
        io.lower.extend_from_slice(b"alert: bad input");
        Err(Error::peer("refuses", "bad input"))
    }

    fn handle_outbound(&mut self, io: netstrata::Outbound<'_>) -> netstrata::Result<()> {
        netstrata::transfer(io.input, io.lower, io.lower_room);
        Ok(())
    }

    fn poll_timeout(&self) -> Option<std::time::Instant> {
        Some(self.deadline)
    }

    fn handle_timeout(
        &mut self,
        _: std::time::Instant,
        lower: &mut BytesMut,
    ) -> netstrata::Result<()> {
        lower.extend_from_slice(b"alert: too slow");
        Err(Error::TimedOut {
            layer: "refuses",
            what: "deadline",
        })
    }

    fn is_read_closed(&self) -> bool {
        false
    }

    fn is_write_closed(&self) -> bool {
        false
    }
}

/// A layer that fails above others still gets its alert to the wire: the
/// fault matrix found TLS's alert lost under a shaper.
#[test]
fn a_failing_layer_above_others_still_sends_its_alert() {
    let now = std::time::Instant::now();
    let refuses = || Refuses { deadline: now };
    let stacks: Vec<(&str, Box<dyn Layer + Send>)> = vec![
        (
            "static",
            Box::new(Stack::new((refuses(), PassThrough::new(), Xor::new(*b"k")))),
        ),
        (
            "dynamic",
            Box::new(DynStack::new(vec![
                Box::new(refuses()),
                Box::new(PassThrough::new()),
            ])),
        ),
    ];
    for (name, mut stack) in stacks {
        let (mut input, mut up, mut down) =
            (BytesMut::from(&b"x"[..]), BytesMut::new(), BytesMut::new());
        stack
            .handle_inbound(Inbound::new(now, &mut input, &mut up, &mut down))
            .expect_err("refused");
        let mut alert = down.to_vec();
        if name == "static" {
            Xor::new(*b"k")
                .handle_inbound(Inbound::new(
                    now,
                    &mut BytesMut::from(&alert[..]),
                    &mut up,
                    &mut BytesMut::new(),
                ))
                .unwrap();
            alert = up.split().to_vec();
        }
        assert_eq!(alert, b"alert: bad input", "{name}");
    }
    let mut stack = DynStack::new(vec![Box::new(refuses()), Box::new(PassThrough::new())]);
    let mut down = BytesMut::new();
    stack.handle_timeout(now, &mut down).expect_err("timed out");
    assert_eq!(&down[..], b"alert: too slow");
}

#[test]
fn stack_signals_backpressure_when_the_bottom_joint_is_full() {
    let mut stack = Stack::new((PassThrough::new(), PassThrough::new())).with_buffer_limit(100);
    let now = std::time::Instant::now();
    let mut input = BytesMut::from(&[1u8; 500][..]);
    let (mut up, mut down) = (BytesMut::new(), BytesMut::new());
    stack
        .handle_inbound(Inbound::new(now, &mut input, &mut up, &mut down).with_upper_room(0))
        .unwrap();
    // Nothing may go up; the joint fills to its limit and reading stops.
    assert!(up.is_empty());
    assert_eq!(input.len(), 400);
    assert!(!stack.wants_read());
}

/// The exported suite on every demo layer and on stacks of them. The
/// pass-through layer moves a whole batch at once when nothing waits below
/// (a buffer swap: its room is soft without a bound), and the checksummed
/// layer's end record (10 bytes) may exceed the room.
#[test]
fn every_demo_layer_and_stack_passes_the_conformance_suite() {
    Conformance::new(|_| Xor::new(*b"abc")).run();
    Conformance::new(|_| Checksummed::new())
        .with_lower_slack(10)
        .run();
    Conformance::new(|_| PassThrough::new())
        .with_lower_slack(usize::MAX)
        .run();
    Conformance::new(|_| Stack::new((Xor::new(*b"abc"), Checksummed::new())))
        .with_lower_slack(10)
        .run();
    Conformance::new(|_| common::static3())
        .with_lower_slack(usize::MAX)
        .run();
    Conformance::new(|_| common::dynamic3())
        .with_lower_slack(usize::MAX)
        .run();
    Conformance::new(|_| DynStack::new(vec![]))
        .with_lower_slack(usize::MAX)
        .run();
}

/// A pass-through that breaks the contract as it is told to, to show the
/// suite catches each break.
struct Broken {
    ignores_room: bool,
    forgets_errors: bool,
    write_closed: bool,
    read_closed: bool,
}

impl Layer for Broken {
    fn name(&self) -> &'static str {
        "broken"
    }

    fn handle_inbound(&mut self, io: Inbound<'_>) -> netstrata::Result<()> {
        let room = if self.ignores_room {
            usize::MAX
        } else {
            io.upper_room
        };
        netstrata::transfer(io.input, io.upper, room);
        self.read_closed = io.input_ended && io.input.is_empty();
        Ok(())
    }

    fn handle_outbound(&mut self, io: netstrata::Outbound<'_>) -> netstrata::Result<()> {
        if self.write_closed && !io.input.is_empty() {
            if self.forgets_errors {
                self.write_closed = false;
            }
            return Err(Error::misuse("broken", "write after shutdown"));
        }
        netstrata::transfer(io.input, io.lower, io.lower_room);
        self.write_closed |= io.flush == Flush::Finish && io.input.is_empty();
        Ok(())
    }

    fn is_read_closed(&self) -> bool {
        self.read_closed
    }

    fn is_write_closed(&self) -> bool {
        self.write_closed
    }
}

fn broken(ignores_room: bool, forgets_errors: bool) -> Broken {
    Broken {
        ignores_room,
        forgets_errors,
        write_closed: false,
        read_closed: false,
    }
}

#[test]
#[should_panic(expected = "broken (rule 4): handle_inbound appended")]
fn the_suite_catches_a_layer_that_ignores_the_room() {
    Conformance::new(|_| broken(true, false)).run();
}

#[test]
#[should_panic(expected = "broken (rule 7)")]
fn the_suite_catches_an_error_that_does_not_stick() {
    Conformance::new(|_| broken(false, true)).run();
}
