//! Hostile and broken input: bombs, oversized windows, corruption,
//! truncation, bytes that are not frames, wrong dictionaries.

mod common;

use common::{ZPair, block_header, conn, conn_with, frame_header, pair, zero_bomb};
use netstrata_core::testing::{Chunking, Link, Pair, Side};
use netstrata_core::{Connection, ConnectionConfig, Error, Layer, State};
use netstrata_frame::LengthDelimited;
use netstrata_zstd::{Dictionary, Zstd, ZstdConfig, ZstdError};

fn zstd_error(err: &Error) -> &ZstdError {
    assert!(
        matches!(err, Error::PeerMisbehaved { layer: "zstd", .. }),
        "{err}"
    );
    err.downcast_ref::<ZstdError>().expect("a ZstdError source")
}

/// A server whose application does not read: messages stay in the
/// connection and backpressure builds toward the sender.
fn slow_reader(message_buffer: usize) -> ZPair {
    let limits = ConnectionConfig::new().with_message_buffer(message_buffer);
    let mut pair = Pair::new(
        conn(ZstdConfig::new()),
        conn_with(ZstdConfig::new(), limits),
        Link::new(),
    );
    pair.server.reading = false;
    pair
}

/// 1 GiB of zeros in 138 KB of zstd: the reader's memory stays at the room
/// it offers plus the decoder's window, and the bomb decodes only as fast as
/// the application takes messages.
#[test]
fn a_gigabyte_bomb_costs_bounded_memory_and_flows_at_the_readers_pace() {
    const MIB: usize = 1 << 20;
    const MESSAGES: usize = 1024;
    let bomb = zero_bomb(MESSAGES, 1);
    assert!(bomb.len() < 150_000);
    let room = 2 * MIB + 64;
    let mut pair = slow_reader(room);
    pair.inject(Side::Server, &bomb);
    pair.end_transport(Side::Client);
    pair.drive();

    let bound = |pair: &ZPair, taken: usize| {
        let conn = &pair.server.conn;
        let zstd = conn.stats().layers[0].bytes;
        // Decoded: what the application took plus at most the room.
        let decoded = zstd.inbound_out as usize;
        assert!(
            decoded <= taken * (MIB + 4) + room,
            "{decoded} after {taken}"
        );
        // Buffers: the room (with BytesMut's growth) and the read buffer.
        let held = conn.buffered_capacity();
        assert!(held <= 2 * room + 2 * 64 * 1024, "buffers hold {held}");
        // The decoder: its 32 KiB window, never the bomb's size.
        let memory = conn.stack().decoder_memory();
        assert!(memory <= 256 * 1024, "decoder holds {memory}");
    };
    bound(&pair, 0);
    // Stalled on the room: the driver was told to stop reading.
    assert!(!pair.server.conn.wants_read());
    assert!(!pair.server.conn.stack().wants_read());
    let mut taken = 0;
    while taken < MESSAGES {
        for _ in 0..3 {
            let now = pair.now();
            match pair.server.conn.poll_message(now).unwrap() {
                Some(msg) => {
                    assert_eq!(msg.len(), MIB);
                    assert!(msg[..64] == [0; 64] && msg[MIB - 64..] == [0; 64]);
                    taken += 1;
                }
                None => break,
            }
        }
        pair.drive();
        bound(&pair, taken);
    }
    assert!(pair.server.conn.poll_message(pair.now()).unwrap().is_none());
    assert!(pair.server.conn.is_read_closed());
    let decoded = pair.server.conn.stats().layers[0].bytes.inbound_out;
    assert_eq!(decoded, (MESSAGES * (MIB + 4)) as u64);
    assert!(pair.server.conn.error().is_none());
}

/// The wire bytes of one side that sends `msgs` in one batch (and closes).
fn capture(config: ZstdConfig, msgs: &[&[u8]], close: bool) -> Vec<u8> {
    let now = std::time::Instant::now();
    let mut c = conn(config);
    for m in msgs {
        c.send(m).unwrap();
    }
    if close {
        c.close();
    }
    netstrata_core::testing::transmit_ok(&mut c, now)
}

/// Feeds `wire` to a fresh default server over `link`, optionally followed
/// by the end of the transport; returns the pair after driving.
fn feed(server: ZstdConfig, wire: &[u8], link: Link, eof: bool) -> ZPair {
    let mut pair = Pair::new(conn(ZstdConfig::new()), conn(server), link);
    pair.inject(Side::Server, wire);
    if eof {
        pair.end_transport(Side::Client);
    }
    pair.drive();
    pair
}

fn server_error(pair: &ZPair) -> Error {
    let err = pair.server.conn.error().expect("the server failed").clone();
    assert_eq!(pair.server.conn.state(), State::Closed);
    // The failed direction freed its context.
    assert_eq!(pair.server.conn.stack().decoder_memory(), 0);
    err
}

#[test]
fn a_window_above_the_limit_is_refused_before_anything_is_allocated() {
    // Frames asking for 16 MiB, 128 MiB and 2 GiB of window, against the
    // default limit (8 MiB); and 64 KiB against a limit lowered to 32 KiB.
    let lowered = ZstdConfig::new().with_max_window_log(15);
    for (log, config) in [
        (24, ZstdConfig::new()),
        (27, ZstdConfig::new()),
        (31, ZstdConfig::new()),
        (16, lowered),
    ] {
        let limit = config.max_window();
        let mut wire = frame_header(log);
        wire.extend_from_slice(&block_header(1, 1, true));
        wire.push(0);
        for link in [Link::new(), Link::new().with_chunking(Chunking::Fixed(1))] {
            let pair = feed(config.clone(), &wire, link, false);
            let err = server_error(&pair);
            assert_eq!(
                zstd_error(&err),
                &ZstdError::WindowTooLarge {
                    window: 1 << log,
                    limit
                },
                "window log {log}"
            );
            assert!(err.is_peer_fault());
        }
    }
    // Refused at the header, before any block: nothing sized by the window
    // was allocated.
    let pair = feed(ZstdConfig::new(), &frame_header(31), Link::new(), false);
    let err = server_error(&pair);
    assert!(matches!(zstd_error(&err), ZstdError::WindowTooLarge { .. }));

    // A single-segment frame whose declared size (1 GiB) is its window.
    let mut wire = 0xFD2F_B528_u32.to_le_bytes().to_vec();
    wire.push(0xE0); // 8-byte content size, single segment
    wire.extend_from_slice(&(1u64 << 30).to_le_bytes());
    wire.extend_from_slice(&block_header(1 << 17, 1, true));
    wire.push(0);
    let pair = feed(ZstdConfig::new(), &wire, Link::new(), false);
    let err = server_error(&pair);
    assert_eq!(
        zstd_error(&err),
        &ZstdError::WindowTooLarge {
            window: 1 << 30,
            limit: 1 << 23
        }
    );
    assert_eq!(
        err.to_string(),
        "zstd: peer misbehaved: peer window 1 GiB (2^30) exceeds the limit 8 MiB (2^23)"
    );
}

/// zstd's own defaults (a 2 MiB window at level 3 on a stream) are within
/// the default limit, and refused by a limit lowered below them.
#[test]
fn a_standard_level_3_stream_is_accepted_at_the_default_limit() {
    let text = common::log_text(2, 20_000);
    let mut framed = (text.len() as u32).to_be_bytes().to_vec();
    framed.extend_from_slice(&text);
    let wire = common::zstd_stream(3, None, &[&framed]);

    let mut pair = feed(
        ZstdConfig::new(),
        &wire,
        Link::new().with_chunking(Chunking::Fixed(100)),
        true,
    );
    assert_eq!(pair.server.take_inbox(), [text]);
    assert!(pair.server.conn.is_read_closed());
    assert!(pair.server.conn.error().is_none());

    let pair = feed(
        ZstdConfig::new().with_max_window_log(20),
        &wire,
        Link::new(),
        true,
    );
    let err = server_error(&pair);
    assert_eq!(
        zstd_error(&err),
        &ZstdError::WindowTooLarge {
            window: 1 << 21,
            limit: 1 << 20
        }
    );
}

#[test]
fn a_larger_window_works_when_both_sides_agree() {
    let config = ZstdConfig::new()
        .with_window_log(20)
        .with_max_window_log(20);
    let text = common::log_text(3, 300_000);
    let mut pair = Pair::new(conn(config.clone()), conn(config), Link::new());
    pair.client.conn.send(&text).unwrap();
    pair.client.conn.close();
    pair.drive();
    assert_eq!(pair.server.take_inbox(), [text]);
    assert!(pair.server.conn.is_read_closed());
}

#[test]
fn corrupt_data_mid_stream_fails_that_connection_after_what_came_before() {
    // Two connections sharing a dictionary; only the one fed junk fails.
    let dict = Dictionary::train(&common::log_messages(31, 1000), 4096).unwrap();
    let config = ZstdConfig::new().with_dictionary(dict);
    let mut other = Pair::new(conn(config.clone()), conn(config.clone()), Link::new());
    let mut pair = Pair::new(conn(config.clone()), conn(config), Link::new());
    pair.client.conn.send(b"fine").unwrap();
    pair.drive();
    // A block of the reserved type 3 where the next block should start.
    let mut junk = block_header(10, 3, false).to_vec();
    junk.extend_from_slice(&[0x55; 10]);
    pair.inject(Side::Server, &junk);
    pair.drive();
    assert_eq!(pair.server.take_inbox(), [b"fine".to_vec()]);
    let err = server_error(&pair);
    assert!(
        matches!(zstd_error(&err), ZstdError::Corrupt { .. }),
        "{err}"
    );
    // Sticky: later calls fail the same way.
    let again = pair.server.conn.send(b"x").unwrap_err();
    assert_eq!(again.to_string(), err.to_string());

    for m in common::log_messages(32, 20) {
        other.client.conn.send(&m).unwrap();
        other.drive();
        assert_eq!(other.server.take_inbox(), [m]);
    }
    assert!(matches!(other.errors(), (None, None)));
}

/// Random damage to a real stream: an error or garbage, never a panic, and
/// never more output than the room allows.
#[test]
fn damaged_streams_never_panic() {
    let msgs = common::log_messages(4, 100);
    let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
    let wire = capture(ZstdConfig::new().with_checksum(true), &refs, true);
    let mut rng = common::Rng::new(99);
    let limits = ConnectionConfig::new().with_message_buffer(64 * 1024);
    for round in 0..200 {
        let mut bad = wire.clone();
        for _ in 0..1 + round % 4 {
            let at = rng.below(bad.len() as u64) as usize;
            bad[at] ^= 1 << rng.below(8);
        }
        if round % 5 == 0 {
            bad.truncate(rng.below(bad.len() as u64) as usize);
        }
        let mut c = Connection::with_config(Zstd::new(), LengthDelimited::new(), limits.clone());
        let now = std::time::Instant::now();
        let mut fed = 0;
        let mut failed = false;
        while fed < bad.len() && !failed {
            match c.handle_input(now, &bad[fed..]) {
                Ok(n) => fed += n,
                Err(_) => failed = true,
            }
            loop {
                match c.poll_message(now) {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => {
                        failed = true;
                        break;
                    }
                }
            }
            if !failed && c.read_room() == 0 {
                break;
            }
        }
        assert!(c.buffered_capacity() <= 4 * 64 * 1024 + 1024);
        // A flipped bit may ask for another window, up to the limit; zstd
        // never holds more than the budget covers.
        let zstd = c.stack();
        assert!(zstd.decoder_memory() <= zstd.decoder_reserved());
        assert!(zstd.decoder_reserved() <= (1 << 23) + 500 * 1024);
    }
}

#[test]
fn the_checksum_is_checked_at_the_end_of_the_frame() {
    let wire = capture(ZstdConfig::new().with_checksum(true), &[b"hello"], true);
    let mut pair = feed(ZstdConfig::new(), &wire, Link::new(), true);
    assert_eq!(pair.server.take_inbox(), [b"hello".to_vec()]);
    assert!(pair.server.conn.is_read_closed());

    // The message arrives first; the checksum fails when the frame ends.
    let (body, sum) = wire.split_at(wire.len() - 4);
    let mut pair = feed(ZstdConfig::new(), body, Link::new(), false);
    assert_eq!(pair.server.take_inbox(), [b"hello".to_vec()]);
    let bad: Vec<u8> = sum.iter().map(|b| b ^ 0xFF).collect();
    pair.inject(Side::Server, &bad);
    pair.drive();
    let err = server_error(&pair);
    assert_eq!(zstd_error(&err), &ZstdError::ChecksumMismatch);
}

#[test]
fn what_is_not_a_zstd_frame_is_refused_at_the_first_wrong_byte() {
    for (wire, expected) in [
        (&b"GET / HTTP/1.1\r\n"[..], ZstdError::NotZstd),
        (&[0x28, 0xB5, 0x00][..], ZstdError::NotZstd),
        (&[0x50, 0x2A, 0x4D, 0x19][..], ZstdError::NotZstd),
        (
            &0xFD2F_B527_u32.to_le_bytes()[..],
            ZstdError::LegacyFrame { magic: 0xFD2F_B527 },
        ),
        (
            &0x1EB5_2FFD_u32.to_le_bytes()[..],
            ZstdError::LegacyFrame { magic: 0x1EB5_2FFD },
        ),
    ] {
        let pair = feed(
            ZstdConfig::new(),
            wire,
            Link::new().with_chunking(Chunking::Fixed(1)),
            false,
        );
        let err = server_error(&pair);
        assert_eq!(zstd_error(&err), &expected, "{wire:x?}");
    }
}

#[test]
fn the_transport_ending_inside_a_frame_is_truncation() {
    let truncated = |pair: &ZPair, detail: &str| {
        let err = server_error(pair);
        match err {
            Error::Truncated {
                layer: "zstd",
                detail: d,
            } => assert_eq!(d, detail),
            other => panic!("{other}"),
        }
    };
    // After a delivered message.
    let mut pair = pair(Link::new());
    pair.client.conn.send(b"delivered").unwrap();
    pair.drive();
    pair.end_transport(Side::Client);
    pair.drive();
    assert_eq!(pair.server.take_inbox(), [b"delivered".to_vec()]);
    truncated(&pair, "transport ended inside a zstd frame");

    // Before any byte, inside the magic number, inside a header.
    let pair = feed(ZstdConfig::new(), b"", Link::new(), true);
    truncated(&pair, "transport ended before the first zstd frame");
    for header in [
        &[0x28, 0xB5][..],
        &frame_header(15)[..4],
        &frame_header(15)[..5],
    ] {
        let pair = feed(ZstdConfig::new(), header, Link::new(), true);
        truncated(&pair, "transport ended inside a zstd frame header");
    }
    // Inside a skippable frame.
    let skippable = common::skippable_frame(b"meta data");
    let pair = feed(ZstdConfig::new(), &skippable[..10], Link::new(), true);
    truncated(&pair, "transport ended inside a skippable frame");

    // Inside a block, at every cut of a real stream, and of a second frame.
    let wire = capture(ZstdConfig::new(), &[&common::log_text(5, 3000)], true);
    let mut two = wire.clone();
    two.extend_from_slice(&wire);
    for cut in (6..wire.len()).chain(wire.len() + 6..two.len()) {
        let pair = feed(ZstdConfig::new(), &two[..cut], Link::new(), true);
        truncated(&pair, "transport ended inside a zstd frame");
    }
    // At a frame boundary, the end is clean.
    for whole in [&wire[..], &two[..]] {
        let pair = feed(ZstdConfig::new(), whole, Link::new(), true);
        assert!(pair.server.conn.is_read_closed());
        assert!(pair.server.conn.error().is_none());
    }
}

/// As `zstd -d` reads `cat a.zst b.zst`: frames one after another decode
/// in order (several of ours, one per message from a zstd encoder, a
/// skippable frame between them); garbage or a legacy frame between frames
/// fails after the messages before it.
#[test]
fn concatenated_and_skippable_frames_decode_and_garbage_between_them_is_refused() {
    let ours = capture(ZstdConfig::new(), &[b"first"], true);
    let framed = |m: &[u8]| {
        let mut f = (m.len() as u32).to_be_bytes().to_vec();
        f.extend_from_slice(m);
        f
    };
    // One frame per message, with a content size (single segment), as
    // Netty's encoder and `zstd` on files write them.
    let theirs = [
        zstd::bulk::compress(&framed(b"second"), 3).unwrap(),
        common::zstd_stream(19, None, &[&framed(b"third")]),
    ];
    let mut wire = ours.clone();
    wire.extend_from_slice(&common::skippable_frame(b"a note to skip"));
    wire.extend_from_slice(&common::skippable_frame(b""));
    for frame in &theirs {
        wire.extend_from_slice(frame);
    }
    wire.extend_from_slice(&ours);
    let expected = [&b"first"[..], b"second", b"third", b"first"].map(<[u8]>::to_vec);
    for link in [
        Link::new(),
        Link::new().with_chunking(Chunking::Fixed(1)),
        Link::new().with_chunking(Chunking::Fixed(7)),
    ] {
        let mut pair = feed(ZstdConfig::new(), &wire, link, true);
        assert_eq!(pair.server.take_inbox(), expected);
        assert!(pair.server.conn.is_read_closed());
        assert!(pair.server.conn.error().is_none());
        assert_eq!(
            pair.server.conn.stack().decoder_memory(),
            0,
            "freed at the end"
        );
    }

    for (between, expected) in [
        (&b"junk"[..], ZstdError::NotZstd),
        (&[0u8; 4][..], ZstdError::NotZstd),
        (
            &0xFD2F_B526_u32.to_le_bytes()[..],
            ZstdError::LegacyFrame { magic: 0xFD2F_B526 },
        ),
    ] {
        let mut bad = between.to_vec();
        bad.extend_from_slice(&ours);
        for link in [Link::new(), Link::new().with_chunking(Chunking::Fixed(1))] {
            let mut pair = feed(ZstdConfig::new(), &ours, link, false);
            assert_eq!(pair.server.take_inbox(), [b"first".to_vec()]);
            pair.inject(Side::Server, &bad);
            pair.drive();
            assert!(pair.server.take_inbox().is_empty());
            let err = server_error(&pair);
            assert_eq!(zstd_error(&err), &expected);
        }
    }
}

/// The layer itself: after a frame it reads the next, and its stream ends
/// only where its input ends.
#[test]
fn the_layer_ends_its_stream_where_its_input_ends() {
    use bytes::BytesMut;
    use netstrata_core::Inbound;
    let wire = capture(ZstdConfig::new(), &[b"x"], true);
    let mut z = Zstd::new();
    let (mut up, mut down) = (BytesMut::new(), BytesMut::new());
    let mut call = |z: &mut Zstd, bytes: &[u8], input_ended: bool| {
        z.handle_inbound(
            Inbound::new(
                std::time::Instant::now(),
                &mut BytesMut::from(bytes),
                &mut up,
                &mut down,
            )
            .with_upper_room(1024)
            .with_input_ended(input_ended),
        )
    };
    call(&mut z, &wire, false).unwrap();
    assert!(!z.is_read_closed(), "another frame may follow");
    call(&mut z, &wire, false).unwrap();
    call(&mut z, b"", true).unwrap();
    assert!(z.is_read_closed());
    assert_eq!(
        up.len(),
        2 * 5,
        "two messages of 1 byte with 4-byte headers"
    );
    assert_eq!(z.decoder_memory(), 0);
}

#[test]
fn a_missing_or_different_dictionary_is_a_typed_error() {
    let samples = common::log_messages(21, 1000);
    let dict = Dictionary::train(&samples, 4096).unwrap();
    let other = Dictionary::train(&common::log_messages(22, 1000)[..], 2048).unwrap();
    assert_ne!(dict.id(), other.id());
    let wire = capture(
        ZstdConfig::new().with_dictionary(dict),
        &[&samples[0]],
        false,
    );
    for server in [ZstdConfig::new(), ZstdConfig::new().with_dictionary(other)] {
        let pair = feed(server, &wire, Link::new(), false);
        let err = server_error(&pair);
        assert_eq!(zstd_error(&err), &ZstdError::DictionaryMismatch);
    }
}

#[test]
fn writing_after_the_end_is_the_callers_fault() {
    use bytes::BytesMut;
    use netstrata_core::{Flush, Outbound};
    let mut z = Zstd::new();
    let now = std::time::Instant::now();
    let mut down = BytesMut::new();
    let mut input = BytesMut::from(&b"bye"[..]);
    z.handle_outbound(
        Outbound::new(now, &mut input, Flush::Finish, &mut down).with_lower_room(1 << 20),
    )
    .unwrap();
    assert!(z.is_write_closed());
    let mut more = BytesMut::from(&b"x"[..]);
    let err = z
        .handle_outbound(
            Outbound::new(now, &mut more, Flush::Batch, &mut down).with_lower_room(1 << 20),
        )
        .unwrap_err();
    assert!(matches!(err, Error::Misuse { layer: "zstd", .. }), "{err}");
    assert_eq!(
        err.downcast_ref::<ZstdError>(),
        Some(&ZstdError::WriteAfterEnd)
    );
}
