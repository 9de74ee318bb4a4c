//! Connections with the default wire profile's framing (4-byte big-endian
//! lengths, 8 MiB maximum) over stacks, on the harness.

mod common;

use netstrata::Connection;
use netstrata::frame::{FrameError, LengthDelimited, Lines};
use netstrata_core::testing::{Chunking, Link, Pair, Side};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn length_delimited_messages_through_static_and_dynamic_stacks(
        msgs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..2000), 0..30),
        seed in any::<u64>(),
        max in 1usize..3000,
    ) {
        let link = Link::new().with_chunking(Chunking::Random { seed, max });
        let mut pair = Pair::new(
            Connection::new(common::static3(), LengthDelimited::new()),
            Connection::new(common::dynamic3(), LengthDelimited::new()),
            link,
        );
        pair.send_both(&msgs).unwrap();
        pair.client.conn.close();
        pair.server.conn.close();
        pair.drive();
        prop_assert_eq!(pair.server.take_inbox(), msgs.clone());
        prop_assert_eq!(pair.client.take_inbox(), msgs);
        prop_assert!(pair.server.conn.is_read_closed() && pair.client.conn.is_read_closed());
    }
}

#[test]
fn lines_one_byte_at_a_time() {
    let mut pair = Pair::new(
        Connection::new(common::static3(), Lines::new()),
        Connection::new(common::static3(), Lines::new()),
        Link::new().with_chunking(Chunking::Fixed(1)),
    );
    for line in ["PING", "", "hello world"] {
        pair.client.conn.send(line.as_bytes()).unwrap();
    }
    pair.drive();
    let got: Vec<_> = pair
        .server
        .take_inbox()
        .iter()
        .map(|b| b.to_vec())
        .collect();
    assert_eq!(got, [b"PING".to_vec(), vec![], b"hello world".to_vec()]);
}

/// A 4-byte header announcing 8 MiB costs nothing until the bytes come.
#[test]
fn an_announced_frame_reserves_nothing() {
    let mut pair = Pair::new(
        Connection::new(common::static3(), LengthDelimited::new()),
        Connection::new(
            netstrata::layers::PassThrough::new(),
            LengthDelimited::new(),
        ),
        Link::new(),
    );
    pair.inject(Side::Server, &(8u32 * 1024 * 1024).to_be_bytes());
    pair.inject(Side::Server, &[0; 100]);
    pair.drive();
    assert!(pair.server.conn.error().is_none());
    assert!(pair.server.take_inbox().is_empty());
    // The message buffer holds 104 bytes; its capacity stays far below 8 MiB.
    let stats = pair.server.conn.stats();
    assert_eq!(stats.wire_in, 104);
    assert!(
        pair.server.conn.buffered_capacity() < 64 * 1024,
        "{}",
        pair.server.conn.buffered_capacity()
    );
}

/// An oversized frame closes that connection with a typed error naming the
/// codec, after delivering what came before it; another connection carries on.
#[test]
fn an_oversized_frame_closes_only_its_connection() {
    // The client may send 16 MiB frames; the server accepts 8 MiB.
    let big = LengthDelimited::builder()
        .max_frame_length(16 << 20)
        .new_codec();
    let mut huge = Pair::new(
        Connection::new(common::static3(), big),
        Connection::new(common::static3(), LengthDelimited::new()),
        Link::new(),
    );
    let mut other = Pair::new(
        Connection::new(common::static3(), LengthDelimited::new()),
        Connection::new(common::static3(), LengthDelimited::new()),
        Link::new(),
    );
    huge.client.conn.send(b"accepted first").unwrap();
    huge.client.conn.send(&vec![0; 9 << 20]).unwrap();
    other.client.conn.send(b"hello").unwrap();
    huge.drive();
    other.drive();
    let err = huge.server.conn.error().expect("oversized frame");
    assert!(err.is_peer_fault());
    assert_eq!(err.layer(), Some("length-delimited"));
    assert!(matches!(
        err.downcast_ref::<FrameError>(),
        Some(FrameError::FrameTooLong { .. })
    ));
    assert_eq!(huge.server.take_inbox(), [b"accepted first".to_vec()]);
    assert_eq!(other.server.take_inbox(), [b"hello".to_vec()]);
    assert!(matches!(other.errors(), (None, None)));
}

#[test]
fn a_driver_reads_straight_into_the_connection_buffer() {
    use std::time::Instant;

    use netstrata::ConnectionConfig;

    let now = Instant::now();
    let config = ConnectionConfig::new().with_read_buffer(64);
    let stack = netstrata::layers::PassThrough::new();
    let mut conn = Connection::with_config(stack, LengthDelimited::new(), config);
    let wire = [&5u32.to_be_bytes()[..], b"hello"].concat();

    // The room offered is the read buffer's; what `read` appends is taken.
    let taken = conn.read_with(now, |buf, room| {
        assert_eq!(room, 64);
        buf.extend_from_slice(&wire[..3]);
        Ok::<_, std::io::Error>(())
    });
    assert_eq!(taken.unwrap().unwrap(), 3);
    // A transport error comes back as the inner error, nothing taken.
    let failed = conn.read_with(now, |_, _| Err(std::io::ErrorKind::WouldBlock));
    assert_eq!(failed.unwrap().unwrap_err(), std::io::ErrorKind::WouldBlock);
    assert_eq!(conn.stats().wire_in, 3);
    let taken = conn.read_with(now, |buf, _| {
        buf.extend_from_slice(&wire[3..]);
        Ok::<_, std::io::Error>(())
    });
    assert_eq!(taken.unwrap().unwrap(), wire.len() - 3);
    assert_eq!(
        conn.poll_message(now).unwrap().as_deref(),
        Some(&b"hello"[..])
    );
    assert_eq!(conn.stats().wire_in, wire.len() as u64);

    // After end of stream, no more input: the connection's error, and
    // `read` is not called.
    conn.handle_input_eof(now).unwrap();
    let late = conn.read_with(now, |_, _| -> Result<(), ()> {
        panic!("read after the end")
    });
    assert!(late.is_err());
}
