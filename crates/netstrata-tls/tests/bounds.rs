//! Buffers stay bounded, room is honoured, writes are batched into records.

mod common;

use std::time::Instant;

use bytes::BytesMut;
use common::{client_config, direct, pair_with, server_config, small_buffers};
use netstrata_core::testing::{Link, Pair};
use netstrata_core::{Connection, Error, Flush, Layer, Outbound};
use netstrata_frame::LengthDelimited;
use netstrata_tls::Tls;

fn handshaken() -> (Tls, Tls, Instant) {
    let now = Instant::now();
    let mut client = Tls::client(client_config(), "localhost").unwrap();
    let mut server = Tls::server(server_config()).unwrap();
    direct::handshake(&mut client, &mut server, now);
    (client, server, now)
}

#[test]
fn a_flooding_peer_meets_backpressure_and_buffers_stay_bounded() {
    let client = Connection::with_config(
        Tls::client(client_config(), "localhost").unwrap(),
        LengthDelimited::new(),
        small_buffers(),
    );
    let server = Connection::with_config(
        Tls::server(server_config()).unwrap(),
        LengthDelimited::new(),
        small_buffers(),
    );
    let window = 32 * 1024;
    let mut pair = Pair::new(client, server, Link::new().with_window(window));
    pair.drive(); // handshake
    pair.server.reading = false;

    let msg = vec![0xab; 1000];
    let mut sent = 0;
    let mut refused = 0;
    for _ in 0..400 {
        match pair.client.conn.send(&msg) {
            Ok(()) => sent += 1,
            Err(Error::SendBufferFull { .. }) => refused += 1,
            Err(e) => panic!("{e}"),
        }
        pair.drive();
    }
    // 400 kB offered; the whole path holds well under that.
    assert!(
        refused > 200,
        "the sender must feel backpressure ({sent} sent)"
    );

    let tls = pair.server.conn.stack();
    assert!(!tls.wants_read(), "plaintext waits: rustls takes no more");
    assert!(!pair.server.conn.wants_read());
    assert!(tls.buffered_plaintext() > 0);
    assert!(tls.buffered_plaintext() <= Tls::MAX_BUFFERED_PLAINTEXT);
    // The connection's own buffers stay within their limits (capacity may
    // round up, never to the size of the flood).
    let capacity = pair.server.conn.buffered_capacity();
    assert!(capacity <= 4 * 4096 * 2, "{capacity} bytes buffered");
    assert!(pair.in_flight(netstrata_core::testing::Side::Server) <= window);

    // Reading again drains it all, in order.
    pair.server.reading = true;
    pair.drive();
    let got = pair.server.take_inbox();
    assert_eq!(got.len(), sent);
    assert!(got.iter().all(|m| m[..] == msg[..]));
    assert!(matches!(pair.errors(), (None, None)), "{:?}", pair.errors());
}

#[test]
fn plaintext_goes_up_strictly_within_the_room() {
    let (mut client, mut server, now) = handshaken();
    let data: Vec<u8> = (0..40_000u32).map(|i| i as u8).collect();
    let mut wire = direct::outbound(
        &mut server,
        now,
        &mut BytesMut::from(&data[..]),
        Flush::Batch,
    );
    let mut got = Vec::new();
    for room in [1, 0, 7, 1, 16_385].into_iter().cycle() {
        let (up, owed) = direct::inbound(&mut client, now, &mut wire, room).unwrap();
        assert!(up.len() <= room, "{} bytes with room {room}", up.len());
        assert!(owed.is_empty());
        if client.buffered_plaintext() > 0 {
            assert!(!client.wants_read(), "no ciphertext while plaintext waits");
        }
        got.extend_from_slice(&up);
        if got.len() == data.len() {
            break;
        }
    }
    assert_eq!(got, data);
    assert!(wire.is_empty());
}

#[test]
fn many_small_writes_in_one_batch_become_few_records() {
    let (mut client, _server, now) = handshaken();
    let mut input = BytesMut::new();
    for i in 0..1000u32 {
        input.extend_from_slice(&i.to_be_bytes());
        input.extend_from_slice(b"0123456789");
    }
    // One batch: everything, as one record.
    let wire = direct::outbound(&mut client, now, &mut input, Flush::Batch);
    assert!(input.is_empty());
    assert_eq!(direct::record_lengths(&wire), [14_000 + 17]);

    // A larger batch: full 16 KiB records, then the rest.
    let mut big = BytesMut::from(&vec![1u8; 40_000][..]);
    let wire = direct::outbound(&mut client, now, &mut big, Flush::Batch);
    assert!(big.is_empty());
    assert_eq!(
        direct::record_lengths(&wire),
        [16_401, 16_401, 40_000 - 32_768 + 17]
    );
}

#[test]
fn output_honours_the_room_within_one_record_overhead() {
    let (mut client, _server, now) = handshaken();
    let mut input = BytesMut::from(&vec![7u8; 100_000][..]);
    for room in [1, 30, 100, 5000, 17_000, 70_000] {
        let mut down = BytesMut::new();
        client
            .handle_outbound(
                Outbound::new(now, &mut input, Flush::Batch, &mut down).with_lower_room(room),
            )
            .unwrap();
        assert!(!down.is_empty());
        // One byte in a TLS 1.3 record (22 bytes overhead) when the room is tiny.
        assert!(
            down.len() <= room.max(1 + 22),
            "{} for room {room}",
            down.len()
        );
    }
}

#[test]
fn writes_before_the_handshake_are_held_in_the_callers_buffer() {
    let now = Instant::now();
    let mut client = Tls::client(client_config(), "localhost").unwrap();
    let mut input = BytesMut::from(&b"early data"[..]);
    let hello = direct::outbound(&mut client, now, &mut input, Flush::Batch);
    assert_eq!(&input[..], b"early data", "not consumed while handshaking");
    assert_eq!(
        direct::record_lengths(&hello).len(),
        1,
        "the ClientHello alone"
    );

    // Over the harness: everything sent early arrives once the handshake is done.
    let mut pair = pair_with(client_config(), server_config(), Link::new());
    for i in 0..100u8 {
        pair.client.conn.send(&[i; 100]).unwrap();
    }
    assert_eq!(pair.client.conn.send_queued(), 100 * 104);
    pair.drive();
    assert_eq!(pair.server.take_inbox().len(), 100);
}

#[test]
fn writes_after_close_notify_are_misuse() {
    let (mut client, _server, now) = handshaken();
    direct::outbound(&mut client, now, &mut BytesMut::new(), Flush::Finish);
    assert!(client.is_write_closed());
    let err = client
        .handle_outbound(
            Outbound::new(
                now,
                &mut BytesMut::from(&b"late"[..]),
                Flush::Batch,
                &mut BytesMut::new(),
            )
            .with_lower_room(100),
        )
        .unwrap_err();
    assert!(matches!(err, Error::Misuse { layer: "tls", .. }), "{err}");
    assert!(!err.is_peer_fault());
}
