//! The layer on its own: exact bounds on both sides, batches, laziness, and in
//! stacks with other layers.

mod common;

use std::time::Instant;

use bytes::BytesMut;
use common::{Rng, log_text};
use netstrata_core::layers::{Checksummed, PassThrough, Xor};
use netstrata_core::testing::{Chunking, Link, Pair};
use netstrata_core::{BoxedLayer, Connection, DynStack, Flush, Inbound, Layer, Outbound, Stack};
use netstrata_frame::LengthDelimited;
use netstrata_zstd::{Zstd, ZstdConfig};

fn outbound(z: &mut Zstd, input: &mut BytesMut, flush: Flush, room: usize) -> BytesMut {
    let mut down = BytesMut::new();
    z.handle_outbound(Outbound::new(Instant::now(), input, flush, &mut down).with_lower_room(room))
        .unwrap();
    down
}

/// Runs `input` through `z` inbound with `room` bytes of room per call;
/// returns what came up.
fn inbound_all(z: &mut Zstd, input: &[u8], room: usize, ended: bool) -> Vec<u8> {
    let mut input = BytesMut::from(input);
    let mut out = Vec::new();
    loop {
        let mut up = BytesMut::new();
        z.handle_inbound(
            Inbound::new(Instant::now(), &mut input, &mut up, &mut BytesMut::new())
                .with_upper_room(room)
                .with_input_ended(ended),
        )
        .unwrap();
        assert!(up.len() <= room, "{} bytes up with room {room}", up.len());
        out.extend_from_slice(&up);
        if up.is_empty() {
            return out;
        }
    }
}

fn compress(data: &[u8], flush: Flush) -> Vec<u8> {
    let mut z = Zstd::new();
    outbound(&mut z, &mut BytesMut::from(data), flush, usize::MAX).to_vec()
}

#[test]
fn decoded_bytes_never_exceed_the_room_above() {
    let text = log_text(1, 50_000);
    let mut random = Rng::new(2).bytes(20_000);
    random.extend_from_slice(&[0; 300_000]);
    for data in [&text[..], &random[..]] {
        let wire = compress(data, Flush::Finish);
        for room in [1, 7, 100, 4096, 70_000] {
            let mut z = Zstd::new();
            let out = inbound_all(&mut z, &wire, room, true);
            assert_eq!(out, data, "room {room}");
            assert!(z.is_read_closed());
        }
    }
}

#[test]
fn encoded_bytes_never_exceed_the_room_below() {
    let text = log_text(3, 100_000);
    for room in [1, 5, 64, 1000, 40_000] {
        for flush in [Flush::Batch, Flush::Finish] {
            let mut z = Zstd::new();
            let mut input = BytesMut::from(&text[..]);
            let mut wire = Vec::new();
            for _ in 0..1_000_000 {
                let down = outbound(&mut z, &mut input, flush, room);
                assert!(down.len() <= room, "{} bytes with room {room}", down.len());
                wire.extend_from_slice(&down);
                if down.is_empty() && input.is_empty() {
                    break;
                }
            }
            assert!(input.is_empty());
            assert_eq!(z.is_write_closed(), flush == Flush::Finish);
            // The stream ends where the transport ends: cleanly after the
            // end of the frame.
            let mut peer = Zstd::new();
            let finished = flush == Flush::Finish;
            assert_eq!(
                inbound_all(&mut peer, &wire, usize::MAX, finished),
                text,
                "room {room}"
            );
            assert_eq!(peer.is_read_closed(), finished);
        }
    }
}

/// Each Batch ends a block the peer decodes on arrival; an empty Batch
/// with nothing pending writes nothing.
#[test]
fn each_batch_decodes_on_arrival_and_an_empty_batch_writes_nothing() {
    let mut z = Zstd::new();
    let mut wire = Vec::new();
    for i in 0..10u8 {
        let batch = outbound(
            &mut z,
            &mut BytesMut::from(&[i; 100][..]),
            Flush::Batch,
            1 << 20,
        );
        wire.extend_from_slice(&batch);
        let expected: Vec<u8> = (0..=i).flat_map(|i| [i; 100]).collect();
        assert_eq!(
            inbound_all(&mut Zstd::new(), &wire, 1 << 20, false),
            expected
        );
    }
    assert!(outbound(&mut z, &mut BytesMut::new(), Flush::Batch, 1 << 20).is_empty());
}

#[test]
fn contexts_are_made_on_first_use_and_freed_when_the_frame_ends() {
    let mut z = Zstd::new();
    assert_eq!(z.memory(), 0);
    // An empty batch allocates nothing.
    assert!(outbound(&mut z, &mut BytesMut::new(), Flush::Batch, 1024).is_empty());
    assert_eq!(z.memory(), 0);
    let wire = outbound(
        &mut z,
        &mut BytesMut::from(&b"hello"[..]),
        Flush::Batch,
        1024,
    );
    assert!(z.encoder_memory() > 0);
    assert_eq!(z.decoder_memory(), 0);

    let mut peer = Zstd::new();
    // Fewer bytes than the magic number: still nothing allocated.
    assert!(inbound_all(&mut peer, &wire[..3], 1024, false).is_empty());
    assert_eq!(peer.memory(), 0);
    assert_eq!(inbound_all(&mut peer, &wire, 1024, false), b"hello");
    assert!(peer.decoder_memory() > 0);
    assert_eq!(peer.encoder_memory(), 0);

    let end = outbound(&mut z, &mut BytesMut::new(), Flush::Finish, 1024);
    assert!(z.is_write_closed());
    assert_eq!(z.memory(), 0);
    assert!(inbound_all(&mut peer, &end, 1024, true).is_empty());
    assert!(peer.is_read_closed());
    assert_eq!(peer.memory(), 0);
}

/// While the room above keeps the decoder from delivering what it holds,
/// the layer asks not to be fed; once room returns, it asks again.
#[test]
fn wants_read_follows_the_room_above() {
    let wire = compress(&[1; 200_000], Flush::Batch);
    let mut z = Zstd::new();
    let mut input = BytesMut::from(&wire[..]);
    let mut up = BytesMut::new();
    let mut call = |z: &mut Zstd, up: &mut BytesMut, room: usize| {
        z.handle_inbound(
            Inbound::new(Instant::now(), &mut input, up, &mut BytesMut::new())
                .with_upper_room(room),
        )
        .unwrap();
    };
    call(&mut z, &mut up, 1000);
    assert_eq!(up.len(), 1000);
    assert!(!z.wants_read());
    let mut rest = 1000;
    while !z.wants_read() {
        up.clear();
        call(&mut z, &mut up, 50_000);
        rest += up.len();
    }
    assert_eq!(rest, 200_000);
}

/// Compression composes with other layers in any order, static or dynamic.
#[test]
fn zstd_inside_stacks() {
    let msgs = common::mixed_messages(8, 80);
    let link = Link::new().with_chunking(Chunking::Random { seed: 3, max: 1000 });

    // Compress, then a record layer with its own end marker below.
    let stack = || Stack::new((PassThrough::new(), Zstd::new(), Checksummed::new()));
    let mut pair = Pair::new(
        Connection::new(stack(), LengthDelimited::new()),
        Connection::new(stack(), LengthDelimited::new()),
        link,
    );
    for m in &msgs {
        pair.client.conn.send(m).unwrap();
    }
    pair.client.conn.close();
    pair.drive();
    assert_eq!(pair.server.take_inbox(), msgs);
    assert!(pair.server.conn.is_read_closed());
    let layers = pair.client.conn.stats().layers;
    assert_eq!(layers[1].name, "zstd");
    assert!(layers[1].bytes.outbound_out < layers[1].bytes.outbound_in);

    // Below an XOR "cipher", which is what compress-then-encrypt looks like.
    let dynamic = || {
        let layers: Vec<BoxedLayer> = vec![Box::new(Xor::new(*b"k")), Box::new(Zstd::new())];
        DynStack::new(layers)
    };
    let mut pair = Pair::new(
        Connection::new(dynamic(), LengthDelimited::new()),
        Connection::new(dynamic(), LengthDelimited::new()),
        link,
    );
    for m in &msgs {
        pair.client.conn.send(m).unwrap();
    }
    pair.drive();
    assert_eq!(pair.server.take_inbox(), msgs);
    assert!(matches!(pair.errors(), (None, None)), "{:?}", pair.errors());
}

/// Compression negotiated after a plain hello: both sides insert the layer
/// into their live stacks, then everything after is compressed.
#[test]
fn zstd_inserted_into_a_live_connection() {
    let plain = || Connection::new(DynStack::new(Vec::new()), LengthDelimited::new());
    let mut pair = Pair::new(plain(), plain(), Link::new());
    pair.client.conn.send(b"compress?").unwrap();
    pair.drive();
    assert_eq!(pair.server.take_inbox(), [b"compress?".to_vec()]);
    pair.server.conn.send(b"yes").unwrap();
    pair.drive();
    assert_eq!(pair.client.take_inbox(), [b"yes".to_vec()]);
    for side in [&mut pair.client.conn, &mut pair.server.conn] {
        side.insert_layer(0, Box::new(Zstd::new())).unwrap();
    }
    let text = log_text(4, 20_000);
    pair.client.conn.send(&text).unwrap();
    pair.server.conn.send(&text).unwrap();
    pair.drive();
    assert_eq!(pair.server.take_inbox(), std::slice::from_ref(&text));
    assert_eq!(pair.client.take_inbox(), std::slice::from_ref(&text));
    assert!(pair.client.conn.stats().wire_out < 15_000);
}

#[test]
fn settings_have_documented_defaults_and_checked_setters() {
    let c = ZstdConfig::default();
    assert_eq!(c.level(), 3);
    assert_eq!(c.window_log(), 15);
    assert_eq!(c.hash_log(), 14);
    assert_eq!(c.chain_log(), 13);
    assert_eq!(c.block_size(), 16 * 1024);
    assert!(!c.checksum());
    assert_eq!(c.max_window_log(), 23);
    assert_eq!(c.max_window(), 8 << 20);
    assert!(
        c.decoder_budget()
            .same(&netstrata_zstd::DecoderBudget::process())
    );
    assert!(c.dictionary().is_none());
    for bad in [
        || ZstdConfig::new().with_window_log(9),
        || ZstdConfig::new().with_max_window_log(32),
        || ZstdConfig::new().with_level(23),
        || ZstdConfig::new().with_block_size(512),
        || ZstdConfig::new().with_hash_log(31),
    ] {
        assert!(std::panic::catch_unwind(bad).is_err());
    }
}

/// The exported conformance suite, at the default level and at 19. Output
/// keeps the room below exactly, so no slack.
#[test]
fn the_layer_passes_the_conformance_suite() {
    netstrata_core::testing::check_layer(|_| Zstd::new());
    netstrata_core::testing::check_layer(|_| Zstd::with_config(ZstdConfig::new().with_level(19)));
}
