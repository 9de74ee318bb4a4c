//! Two connections back to back on the virtual clock.

mod common;

use std::time::Duration;

use common::{Hello, Tiny};
use netstrata::layers::{Checksummed, PassThrough, Xor};
use netstrata::{Connection, ConnectionConfig, Error, LayerExt, RawCodec, Stack, State};
use netstrata_core::testing::{Chunking, Link, Pair, Side};
use proptest::prelude::*;

fn links() -> Vec<Link> {
    vec![
        Link::new(),
        Link::new().with_chunking(Chunking::Fixed(1)),
        Link::new().with_chunking(Chunking::Fixed(7)),
        Link::new().with_chunking(Chunking::Random { seed: 42, max: 300 }),
        Link::new()
            .with_latency(Duration::from_millis(20))
            .with_bandwidth(100_000),
    ]
}

fn messages(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| vec![i as u8; i % 200]).collect()
}

#[test]
fn static_and_dynamic_stacks_deliver_every_message_under_every_chunking() {
    for link in links() {
        let mut pair = Pair::new(
            Connection::new(common::static3(), Tiny),
            Connection::new(common::dynamic3(), Tiny),
            link,
        );
        let msgs = messages(300);
        pair.send_both(&msgs).unwrap();
        pair.drive();
        assert_eq!(pair.server.take_inbox(), msgs, "{link:?}");
        assert_eq!(pair.client.take_inbox(), msgs, "{link:?}");
        assert!(matches!(pair.errors(), (None, None)), "{:?}", pair.errors());

        // Orderly close, both ways: end records, FIN, Closed.
        pair.client.conn.close();
        pair.drive();
        assert_eq!(pair.client.conn.state(), State::Closing);
        assert!(pair.server.conn.is_read_closed());
        pair.server.conn.close();
        pair.drive();
        assert_eq!(pair.client.conn.state(), State::Closed, "{link:?}");
        assert_eq!(pair.server.conn.state(), State::Closed);
        assert!(matches!(pair.errors(), (None, None)), "{:?}", pair.errors());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn random_messages_round_trip(
        msgs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..255), 0..40),
        seed in any::<u64>(),
        max in 1usize..64,
    ) {
        let link = Link::new().with_chunking(Chunking::Random { seed, max });
        let mut pair = Pair::new(
            Connection::new(common::static3(), Tiny),
            Connection::new(common::dynamic3(), Tiny),
            link,
        );
        for m in &msgs {
            pair.client.conn.send(m).unwrap();
        }
        pair.client.conn.close();
        pair.drive();
        prop_assert_eq!(pair.server.take_inbox(), msgs);
        prop_assert!(pair.server.conn.is_read_closed());
    }
}

#[test]
fn end_of_transport_without_end_record_is_truncation() {
    let mut pair = Pair::new(
        Connection::new(Checksummed::new(), Tiny),
        Connection::new(Checksummed::new(), Tiny),
        Link::new(),
    );
    pair.client.conn.send(b"delivered").unwrap();
    pair.drive();
    pair.end_transport(Side::Client);
    pair.drive();
    // What arrived before the cut was delivered; then the error.
    assert_eq!(pair.server.take_inbox(), [b"delivered".to_vec()]);
    let err = pair.server.conn.error().expect("truncation");
    assert!(
        matches!(
            err,
            Error::Truncated {
                layer: "checksummed",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(pair.server.conn.state(), State::Closed);
}

#[test]
fn without_an_end_marker_eof_is_a_clean_end_but_a_partial_message_is_not() {
    let mut pair = Pair::new(
        Connection::new(PassThrough::new(), Tiny),
        Connection::new(PassThrough::new(), Tiny),
        Link::new(),
    );
    pair.client.conn.send(b"whole").unwrap();
    pair.drive();
    pair.end_transport(Side::Client);
    pair.drive();
    assert!(pair.server.conn.is_read_closed());
    assert!(pair.server.conn.error().is_none());

    let mut pair = Pair::new(
        Connection::new(PassThrough::new(), Tiny),
        Connection::new(PassThrough::new(), Tiny),
        Link::new(),
    );
    pair.inject(Side::Server, &[10, 1, 2, 3]);
    pair.end_transport(Side::Client);
    pair.drive();
    let err = pair.server.conn.error().expect("partial message");
    assert!(
        matches!(err, Error::Truncated { layer: "tiny", .. }),
        "{err}"
    );
}

#[test]
fn a_slow_reader_gets_backpressure_not_unbounded_buffers() {
    let small = ConnectionConfig::new()
        .with_read_buffer(1024)
        .with_send_buffer(4096)
        .with_write_buffer(1024);
    let mut pair = Pair::new(
        Connection::with_config(common::static3(), Tiny, small.clone()),
        Connection::with_config(common::static3(), Tiny, small),
        Link::new().with_window(8 * 1024),
    );
    pair.server.reading = false;
    let msg = [9u8; 200];
    let mut sent = 0;
    for _ in 0..10_000 {
        match pair.client.conn.send(&msg) {
            Ok(()) => sent += 1,
            Err(Error::SendBufferFull { .. }) => break,
            Err(e) => panic!("{e}"),
        }
        pair.drive();
    }
    assert!(sent < 10_000, "the sender never felt backpressure");
    assert!(pair.in_flight(Side::Server) <= 8 * 1024);
    assert!(!pair.server.conn.wants_read());
    // The reader catches up: everything arrives, in order.
    pair.server.reading = true;
    pair.drive();
    assert_eq!(pair.server.take_inbox().len(), sent);
}

#[test]
fn held_writes_go_out_after_the_handshake() {
    let link = Link::new().with_latency(Duration::from_millis(300));
    let mut pair = Pair::new(
        Connection::new(
            Hello::new(Duration::from_secs(10)).stack(Xor::new(*b"k")),
            Tiny,
        ),
        Connection::new(
            Hello::new(Duration::from_secs(10)).stack(Xor::new(*b"k")),
            Tiny,
        ),
        link,
    );
    pair.client.conn.send(b"early").unwrap();
    assert_eq!(pair.client.conn.state(), State::Handshaking);
    pair.drive();
    assert_eq!(pair.server.take_inbox(), [b"early".to_vec()]);
    assert_eq!(pair.client.conn.state(), State::Open);
    // Hello crossed, then the held message: two one-way delays.
    assert_eq!(pair.elapsed(), Duration::from_millis(600));
}

/// The responder's answer is produced by inbound work inside a stack and
/// must pass down through the layers below it (here an XOR layer and the
/// record layer) before anything else.
#[test]
fn answers_to_inbound_work_travel_down_the_stack() {
    for link in links() {
        let stack = |hello| Stack::new((hello, Xor::new(*b"q"), Checksummed::new()));
        let mut pair = Pair::new(
            Connection::new(stack(Hello::new(Duration::from_secs(5))), Tiny),
            Connection::new(stack(Hello::responder(Duration::from_secs(5))), Tiny),
            link,
        );
        pair.client.conn.send(b"ping").unwrap();
        pair.server.conn.send(b"early pong").unwrap();
        pair.drive();
        assert_eq!(pair.server.take_inbox(), [b"ping".to_vec()], "{link:?}");
        assert_eq!(pair.client.take_inbox(), [b"early pong".to_vec()]);
        // The server's hello was counted as outbound bytes of every layer below it.
        let layers = pair.server.conn.stats().layers;
        assert!(layers[1].bytes.outbound_out > layers[0].bytes.outbound_in);
        assert!(matches!(pair.errors(), (None, None)), "{:?}", pair.errors());
    }
}

#[test]
fn handshake_timeout_fires_on_the_virtual_clock() {
    let mut pair = Pair::new(
        Connection::new(Hello::new(Duration::from_secs(10)), Tiny),
        // This peer never says hello.
        Connection::new(PassThrough::new(), Tiny),
        Link::new().with_latency(Duration::from_millis(5)),
    );
    pair.client.conn.send(b"x").unwrap();
    pair.drive_for(Duration::from_millis(9_999));
    assert!(pair.client.conn.error().is_none());
    assert_eq!(pair.client.conn.state(), State::Handshaking);
    pair.drive_for(Duration::from_millis(1));
    let err = pair.client.conn.error().expect("timed out");
    assert!(
        matches!(err, Error::TimedOut { layer: "hello", .. }),
        "{err}"
    );
    assert_eq!(pair.elapsed(), Duration::from_secs(10));
}

#[test]
fn garbage_closes_only_that_connection_with_a_typed_error() {
    let mut pair = Pair::new(
        Connection::new(common::static3(), Tiny),
        Connection::new(common::static3(), Tiny),
        Link::new(),
    );
    pair.client.conn.send(b"fine").unwrap();
    pair.drive();
    pair.inject(Side::Server, b"\x00\x00garbage-after-end");
    pair.drive();
    assert_eq!(pair.server.take_inbox(), [b"fine".to_vec()]);
    let err = pair.server.conn.error().expect("peer misbehaved").clone();
    assert!(err.is_peer_fault());
    assert_eq!(err.layer(), Some("checksummed"));
    // Sticky: every later call reports the same error.
    let again = pair.server.conn.send(b"x").unwrap_err();
    assert_eq!(again.to_string(), err.to_string());
}

#[test]
fn raw_codec_carries_a_byte_stream() {
    let mut pair = Pair::new(
        Connection::new(Xor::new(*b"xyz"), RawCodec::new()),
        Connection::new(Xor::new(*b"xyz"), RawCodec::new()),
        Link::new().with_chunking(Chunking::Fixed(3)),
    );
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
    for chunk in data.chunks(10_000) {
        pair.client.conn.send(chunk).unwrap();
        pair.drive();
    }
    assert_eq!(pair.server.received(), data);
}

/// After traffic, an idle connection can give back all its buffer memory.
#[test]
fn idle_connections_release_their_buffers() {
    let mut pair = Pair::new(
        Connection::new(common::static3(), Tiny),
        Connection::new(common::dynamic3(), Tiny),
        Link::new().with_chunking(Chunking::Fixed(100)),
    );
    for _ in 0..100 {
        pair.client.conn.send(&[1; 200]).unwrap();
    }
    pair.drive();
    assert_eq!(pair.server.take_inbox().len(), 100);
    assert!(pair.client.conn.buffered_capacity() > 0);
    assert_eq!(pair.client.conn.queued(), 0);
    pair.client.conn.release_buffers();
    assert_eq!(pair.client.conn.buffered_capacity(), 0);
    pair.server.conn.release_buffers();
    assert_eq!(pair.server.conn.buffered_capacity(), 0);
    // And they still work.
    pair.client.conn.send(b"again").unwrap();
    pair.drive();
    assert_eq!(pair.server.take_inbox(), [b"again".to_vec()]);
}
