//! Inserting and removing layers on live connections: nothing lost or reordered.

mod common;

use common::Tiny;
use netstrata::layers::{Checksummed, Xor};
use netstrata::{Connection, DynStack, Layer};
use netstrata_core::testing::{Chunking, Link, Pair};

fn plain() -> Connection<DynStack, Tiny> {
    Connection::new(DynStack::new(vec![]), Tiny)
}

fn links() -> [Link; 3] {
    [
        Link::new(),
        Link::new().with_chunking(Chunking::Fixed(1)),
        Link::new().with_chunking(Chunking::Random { seed: 7, max: 5 }),
    ]
}

/// Takes one message from `conn` (the test reads by hand to act between messages).
fn next<L: Layer>(conn: &mut Connection<L, Tiny>, now: std::time::Instant) -> Vec<u8> {
    conn.poll_message(now).unwrap().expect("a message").to_vec()
}

/// STARTTLS-style: request, answer, then both sides insert the new layer at
/// the bottom; the answer was written before the insertion and still goes
/// out plain.
#[test]
fn starttls_style_upgrade_at_the_bottom() {
    for link in links() {
        let mut pair = Pair::new(plain(), plain(), link);
        pair.server.reading = false;
        pair.client.reading = false;
        pair.client.conn.send(b"hello").unwrap();
        pair.client.conn.send(b"STARTXOR").unwrap();
        pair.drive();
        let now = pair.now();
        assert_eq!(next(&mut pair.server.conn, now), b"hello");
        assert_eq!(next(&mut pair.server.conn, now), b"STARTXOR");
        pair.server.conn.send(b"GO").unwrap();
        let bottom = pair.server.conn.stack().len();
        pair.server
            .conn
            .insert_layer(bottom, Box::new(Xor::new(*b"key")))
            .unwrap();
        pair.drive();
        assert_eq!(next(&mut pair.client.conn, now), b"GO");
        pair.client
            .conn
            .insert_layer(0, Box::new(Xor::new(*b"key")))
            .unwrap();
        pair.client.conn.send(b"secret").unwrap();
        pair.server.conn.send(b"reply").unwrap();
        pair.drive();
        assert_eq!(next(&mut pair.server.conn, now), b"secret");
        assert_eq!(next(&mut pair.client.conn, now), b"reply");
        assert!(pair.server.conn.stats().layers[0].bytes.inbound_in > 0);
    }
}

/// Negotiated after a hello, with the peer pipelining: the client sends its
/// hello and, without waiting, upgraded messages. The server reads them all
/// at once, decodes the hello, and inserts the layer at the top: the bytes
/// it had already read past the hello go to the new layer.
#[test]
fn pipelined_bytes_after_the_hello_go_to_the_new_layer() {
    for link in links() {
        let mut pair = Pair::new(plain(), plain(), link);
        pair.server.reading = false;
        pair.client.conn.send(b"hello: compress=xor").unwrap();
        pair.client
            .conn
            .insert_layer(0, Box::new(Checksummed::new()))
            .unwrap();
        pair.client
            .conn
            .insert_layer(0, Box::new(Xor::new(*b"k2")))
            .unwrap();
        for i in 0..20u8 {
            pair.client.conn.send(&[i; 30]).unwrap();
        }
        pair.drive();
        let now = pair.now();
        assert_eq!(next(&mut pair.server.conn, now), b"hello: compress=xor");
        pair.server
            .conn
            .insert_layer(0, Box::new(Checksummed::new()))
            .unwrap();
        pair.server
            .conn
            .insert_layer(0, Box::new(Xor::new(*b"k2")))
            .unwrap();
        for i in 0..20u8 {
            assert_eq!(next(&mut pair.server.conn, now), [i; 30]);
        }
        // The upgraded stream also ends cleanly.
        pair.client.conn.close();
        pair.drive();
        assert!(pair.server.conn.poll_message(now).unwrap().is_none());
        assert!(
            pair.server.conn.is_read_closed(),
            "{:?}",
            pair.server.conn.error()
        );
    }
}

/// Downgrade at a sync point: the sender removes the layer after its last
/// message under it; the receiver removes it after reading that message and
/// before the sender writes anything plain (inbound bytes are processed as
/// they arrive, so bytes a removed layer already transformed cannot be
/// taken back).
#[test]
fn removing_a_layer_at_a_sync_point() {
    for link in links() {
        let mut pair = Pair::new(plain(), plain(), link);
        pair.server.reading = false;
        pair.client
            .conn
            .insert_layer(0, Box::new(Xor::new(*b"abc")))
            .unwrap();
        pair.server
            .conn
            .insert_layer(0, Box::new(Xor::new(*b"abc")))
            .unwrap();
        pair.client.conn.send(b"under xor").unwrap();
        // Queued but not yet transmitted: removal flushes it through the layer first.
        pair.client.conn.send(b"last under xor").unwrap();
        let now = pair.now();
        pair.client.conn.remove_layer(0, now).unwrap();
        pair.drive();
        assert_eq!(next(&mut pair.server.conn, now), b"under xor");
        assert_eq!(next(&mut pair.server.conn, now), b"last under xor");
        pair.server.conn.remove_layer(0, now).unwrap();
        pair.client.conn.send(b"plain").unwrap();
        pair.drive();
        assert_eq!(next(&mut pair.server.conn, now), b"plain");
        assert!(pair.server.conn.stack().is_empty());
    }
}

/// Removing a layer in the middle merges the buffers around it in order.
#[test]
fn removing_a_middle_layer() {
    let stack = || {
        DynStack::new(vec![
            Box::new(Xor::new(*b"top")),
            Box::new(Xor::new(*b"mid")),
            Box::new(Xor::new(*b"bottom")),
        ])
    };
    let mut pair = Pair::new(
        Connection::new(stack(), Tiny),
        Connection::new(stack(), Tiny),
        Link::new().with_chunking(Chunking::Fixed(2)),
    );
    pair.client.conn.send(b"three layers").unwrap();
    pair.drive();
    let now = pair.now();
    pair.client.conn.remove_layer(1, now).unwrap();
    pair.server.conn.remove_layer(1, now).unwrap();
    pair.client.conn.send(b"two layers").unwrap();
    pair.drive();
    assert_eq!(
        pair.server.take_inbox(),
        [b"three layers".to_vec(), b"two layers".to_vec()]
    );
    let names: Vec<_> = pair
        .server
        .conn
        .stats()
        .layers
        .iter()
        .map(|l| l.name)
        .collect();
    assert_eq!(names, ["xor", "xor"]);
}

#[test]
fn out_of_range_boundaries_are_misuse() {
    let mut conn = plain();
    let err = conn.insert_layer(2, Box::new(Xor::new(*b"k"))).unwrap_err();
    assert!(matches!(err, netstrata::Error::Misuse { .. }));
    assert!(conn.remove_layer(0, std::time::Instant::now()).is_err());
    // Misuse does not kill the connection.
    conn.send(b"still fine").unwrap();
}
