//! Messages through zstd and back, over the virtual-clock harness.

mod common;

use common::{Rng, ZPair, conn, links, log_messages, mixed_messages, pair};
use netstrata_core::State;
use netstrata_core::testing::{Chunking, Link, Pair};
use netstrata_zstd::{Dictionary, ZstdConfig};
use proptest::prelude::*;

fn assert_clean(pair: &ZPair) {
    assert!(matches!(pair.errors(), (None, None)), "{:?}", pair.errors());
}

/// Both directions, every chunking, text, random, empty and large messages,
/// then an orderly close each way.
#[test]
fn every_chunking_delivers_every_message_both_ways() {
    for link in links() {
        let one_byte = link == Link::new().with_chunking(Chunking::Fixed(1));
        let msgs = mixed_messages(7, if one_byte { 30 } else { 200 });
        let mut pair = pair(link);
        pair.send_both(&msgs).unwrap();
        pair.drive();
        assert_eq!(pair.server.take_inbox(), msgs, "{link:?}");
        assert_eq!(pair.client.take_inbox(), msgs, "{link:?}");
        assert_clean(&pair);

        pair.client.conn.close();
        pair.drive();
        assert!(pair.server.conn.is_read_closed(), "{link:?}");
        assert_eq!(pair.client.conn.state(), State::Closing);
        pair.server.conn.close();
        pair.drive();
        assert_eq!(pair.client.conn.state(), State::Closed, "{link:?}");
        assert_eq!(pair.server.conn.state(), State::Closed);
        assert_clean(&pair);
        // Ended frames free their contexts.
        assert_eq!(pair.client.conn.stack().memory(), 0);
        assert_eq!(pair.server.conn.stack().memory(), 0);
    }
}

/// Each message arrives after its own flush: nothing waits for later data
/// to push it out.
#[test]
fn each_batch_is_decodable_on_arrival() {
    for link in links() {
        let mut pair = pair(link);
        for (i, m) in mixed_messages(3, 40).iter().enumerate() {
            pair.client.conn.send(m).unwrap();
            pair.drive();
            assert_eq!(
                pair.server.take_inbox(),
                std::slice::from_ref(m),
                "message {i} over {link:?}"
            );
        }
        assert_clean(&pair);
    }
}

/// Many writes in one batch become one flush: fewer wire bytes than the same
/// messages flushed one by one.
#[test]
fn a_batch_compresses_better_than_single_flushes() {
    let msgs = log_messages(1, 200);
    let wire = |batched: bool| {
        let mut pair = pair(Link::new());
        for m in &msgs {
            pair.client.conn.send(m).unwrap();
            if !batched {
                pair.drive();
            }
        }
        pair.drive();
        assert_eq!(pair.server.take_inbox(), msgs);
        pair.client.conn.stats().wire_out
    };
    let (batched, single) = (wire(true), wire(false));
    assert!(batched < single, "batched {batched} vs single {single}");
    let plain: usize = msgs.iter().map(|m| m.len() + 4).sum();
    assert!(batched * 4 < plain as u64, "{batched} of {plain}");
}

#[test]
fn levels_and_settings_round_trip() {
    let configs = [
        ZstdConfig::new().with_level(1),
        ZstdConfig::new().with_level(-5),
        ZstdConfig::new().with_level(19).with_window_log(12),
        ZstdConfig::new().with_checksum(true),
        ZstdConfig::new()
            .with_window_log(17)
            .with_max_window_log(17)
            .with_hash_log(16)
            .with_chain_log(15)
            .with_block_size(128 * 1024),
        ZstdConfig::new().with_block_size(1024).with_hash_log(6),
    ];
    let msgs = mixed_messages(5, 60);
    for config in configs {
        let link = Link::new().with_chunking(Chunking::Random { seed: 9, max: 500 });
        let mut pair = Pair::new(conn(config.clone()), conn(config.clone()), link);
        for m in &msgs {
            pair.client.conn.send(m).unwrap();
        }
        pair.client.conn.close();
        pair.drive();
        assert_eq!(pair.server.take_inbox(), msgs, "{config:?}");
        assert!(pair.server.conn.is_read_closed(), "{config:?}");
        assert_clean(&pair);
    }
}

#[test]
fn a_dictionary_on_both_sides_round_trips_and_helps_small_messages() {
    let samples = log_messages(11, 2000);
    let dict = Dictionary::train(&samples, 8 * 1024).unwrap();
    assert!(dict.id().is_some());
    assert!(dict.as_bytes().len() <= 8 * 1024);
    let with = ZstdConfig::new().with_dictionary(dict.clone());

    let msgs = log_messages(12, 50);
    let wire_bytes = |config: ZstdConfig| {
        let mut pair = Pair::new(
            conn(config.clone()),
            conn(config),
            Link::new().with_chunking(Chunking::Random { seed: 1, max: 64 }),
        );
        // One message per flush: the dictionary matters most at the start.
        for m in &msgs {
            pair.client.conn.send(m).unwrap();
            pair.drive();
        }
        pair.client.conn.close();
        pair.drive();
        assert_eq!(pair.server.take_inbox(), msgs);
        assert!(pair.server.conn.is_read_closed());
        assert_clean(&pair);
        pair.client.conn.stats().wire_out
    };
    let (plain, dictionary) = (wire_bytes(ZstdConfig::new()), wire_bytes(with));
    assert!(
        dictionary * 10 < plain * 8,
        "with dictionary {dictionary} bytes, without {plain}"
    );

    // A dictionary made from the same bytes interoperates too, and one level
    // per connection is prepared on demand.
    let again = Dictionary::new(dict.as_bytes()).unwrap();
    let mut pair = Pair::new(
        conn(ZstdConfig::new().with_level(7).with_dictionary(dict)),
        conn(ZstdConfig::new().with_dictionary(again)),
        Link::new(),
    );
    pair.client.conn.send(&msgs[0]).unwrap();
    pair.drive();
    assert_eq!(pair.server.take_inbox(), [msgs[0].clone()]);
    assert_clean(&pair);
}

/// A side that never writes still ends its frame on close (an empty frame),
/// so the peer sees a clean end.
#[test]
fn closing_without_writing_sends_an_empty_frame() {
    let mut pair = pair(Link::new().with_chunking(Chunking::Fixed(1)));
    assert_eq!(pair.client.conn.stack().encoder_memory(), 0);
    pair.client.conn.close();
    pair.drive();
    assert!(pair.server.conn.is_read_closed());
    assert!(pair.client.conn.is_write_closed());
    let sent = pair.client.conn.stats().wire_out;
    assert!((6..=16).contains(&sent), "{sent}");
    assert_clean(&pair);
}

/// Messages and a close in the same batch: the frame must not declare its
/// size (a single-segment frame would need a window as large as the content).
#[test]
fn send_then_close_in_one_batch() {
    let msgs = vec![common::log_text(1, 100_000), vec![7; 50_000]];
    let mut pair = pair(Link::new());
    for m in &msgs {
        pair.client.conn.send(m).unwrap();
    }
    pair.client.conn.close();
    pair.drive();
    assert_eq!(pair.server.take_inbox(), msgs);
    assert!(pair.server.conn.is_read_closed());
    assert_clean(&pair);
}

/// Small buffers everywhere: the layer's output and input must respect
/// every room it is given and still deliver everything in order.
#[test]
fn tiny_buffers_still_carry_everything() {
    let limits = netstrata_core::ConnectionConfig::new()
        .with_read_buffer(100)
        .with_write_buffer(100)
        .with_send_buffer(300);
    let mut pair = Pair::new(
        common::conn_with(ZstdConfig::new(), limits.clone()),
        common::conn_with(ZstdConfig::new(), limits),
        Link::new().with_window(1000),
    );
    let mut rng = Rng::new(5);
    let msgs: Vec<Vec<u8>> = (0..300)
        .map(|i| match i % 2 {
            0 => {
                let len = rng.below(250) as usize;
                rng.bytes(len)
            }
            _ => vec![b'a'; rng.below(250) as usize],
        })
        .collect();
    for m in &msgs {
        loop {
            match pair.client.conn.send(m) {
                Ok(()) => break,
                Err(netstrata_core::Error::SendBufferFull { .. }) => pair.drive(),
                Err(e) => panic!("{e}"),
            }
        }
    }
    pair.drive();
    assert_eq!(pair.server.take_inbox(), msgs);
    assert_clean(&pair);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    #[test]
    fn random_messages_and_chunking_round_trip(
        msgs in proptest::collection::vec(
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..600),
                (0usize..2000, any::<u8>()).prop_map(|(n, b)| vec![b; n]),
            ],
            0..30,
        ),
        seed in any::<u64>(),
        max in 1usize..200,
        flush_every in 1usize..8,
    ) {
        let link = Link::new().with_chunking(Chunking::Random { seed, max });
        let mut pair = pair(link);
        for (i, m) in msgs.iter().enumerate() {
            pair.client.conn.send(m).unwrap();
            if i % flush_every == 0 {
                pair.drive();
            }
        }
        pair.client.conn.close();
        pair.drive();
        prop_assert_eq!(pair.server.take_inbox(), msgs);
        prop_assert!(pair.server.conn.is_read_closed());
        prop_assert!(matches!(pair.errors(), (None, None)));
    }
}
