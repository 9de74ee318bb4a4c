//! Hostile and broken input: bombs, oversized windows, corruption,
//! truncation, bytes after the end, wrong dictionaries.

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
    let mut wire = Vec::new();
    while let Some(bytes) = c.poll_transmit(now).unwrap() {
        wire.extend_from_slice(bytes);
        let n = bytes.len();
        c.advance_transmit(n);
    }
    wire
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
    // Frames asking for 64 KiB, 2 MiB and 2 GiB of window.
    for log in [16, 21, 31] {
        let mut wire = frame_header(log);
        wire.extend_from_slice(&block_header(1, 1, true));
        wire.push(0);
        for link in [Link::new(), Link::new().with_chunking(Chunking::Fixed(1))] {
            let pair = feed(ZstdConfig::new(), &wire, link, false);
            let err = server_error(&pair);
            assert_eq!(
                zstd_error(&err),
                &ZstdError::WindowTooLarge { limit: 32 * 1024 },
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
    assert!(matches!(zstd_error(&err), ZstdError::WindowTooLarge { .. }));
}

/// zstd's own defaults (a 2 MiB window at level 3 on a stream) are refused
/// by the default limit and accepted once the limit allows them.
#[test]
fn a_standard_level_3_stream_needs_a_raised_limit() {
    use zstd::stream::raw::{Encoder, Operation, OutBuffer};
    let text = common::log_text(2, 20_000);
    let mut framed = (text.len() as u32).to_be_bytes().to_vec();
    framed.extend_from_slice(&text);
    let mut encoder = Encoder::new(3).unwrap();
    let mut wire = Vec::with_capacity(framed.len() + 1024);
    {
        let mut out = OutBuffer::around(&mut wire);
        let mut input = zstd::stream::raw::InBuffer::around(&framed);
        encoder.run(&mut input, &mut out).unwrap();
        while encoder.finish(&mut out, true).unwrap() != 0 {}
    }

    let pair = feed(ZstdConfig::new(), &wire, Link::new(), true);
    let err = server_error(&pair);
    assert!(matches!(zstd_error(&err), ZstdError::WindowTooLarge { .. }));

    let mut pair = feed(
        ZstdConfig::new().with_max_window_log(21),
        &wire,
        Link::new().with_chunking(Chunking::Fixed(100)),
        true,
    );
    assert_eq!(pair.server.take_inbox(), [text]);
    assert!(pair.server.conn.is_read_closed());
    assert!(pair.server.conn.error().is_none());
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
        assert!(c.stack().decoder_memory() <= 256 * 1024);
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
    let legacy_v07 = 0xFD2F_B527_u32.to_le_bytes();
    let skippable = 0x184D_2A50_u32.to_le_bytes();
    for wire in [
        &b"GET / HTTP/1.1\r\n"[..],
        &legacy_v07,
        &skippable,
        &[0x28, 0xB5, 0x00],
    ] {
        let pair = feed(
            ZstdConfig::new(),
            wire,
            Link::new().with_chunking(Chunking::Fixed(1)),
            false,
        );
        let err = server_error(&pair);
        assert_eq!(zstd_error(&err), &ZstdError::NotZstd, "{wire:?}");
    }
}

#[test]
fn the_transport_ending_inside_the_frame_is_truncation() {
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
    truncated(&pair, "transport ended inside the zstd frame");

    // Before any byte, and inside the magic number.
    let pair = feed(ZstdConfig::new(), b"", Link::new(), true);
    truncated(&pair, "transport ended before the zstd frame began");
    let pair = feed(ZstdConfig::new(), &[0x28, 0xB5], Link::new(), true);
    truncated(&pair, "transport ended before the zstd frame began");

    // Inside a block, at every cut of a real stream.
    let wire = capture(ZstdConfig::new(), &[&common::log_text(5, 3000)], true);
    for cut in 4..wire.len() {
        let pair = feed(ZstdConfig::new(), &wire[..cut], Link::new(), true);
        truncated(&pair, "transport ended inside the zstd frame");
    }
    // The whole stream is a clean end.
    let pair = feed(ZstdConfig::new(), &wire, Link::new(), true);
    assert!(pair.server.conn.is_read_closed());
    assert!(pair.server.conn.error().is_none());
}

#[test]
fn bytes_after_the_end_of_the_frame_are_refused() {
    let wire = capture(ZstdConfig::new(), &[b"last words"], true);
    for link in [Link::new(), Link::new().with_chunking(Chunking::Fixed(1))] {
        // After the end a connection reads no more: later bytes stay unread.
        let mut pair = feed(ZstdConfig::new(), &wire, link, false);
        assert_eq!(pair.server.take_inbox(), [b"last words".to_vec()]);
        pair.inject(Side::Server, b"more");
        pair.drive();
        assert!(pair.server.conn.is_read_closed());
        assert!(!pair.server.conn.wants_read());
        assert!(pair.server.conn.error().is_none());

        // In the same read as the end: the error comes first, and like any
        // error it ends the connection with what it had not yet delivered.
        let mut both = wire.clone();
        both.extend_from_slice(b"more");
        let pair = feed(ZstdConfig::new(), &both, link, false);
        let err = server_error(&pair);
        assert!(
            matches!(zstd_error(&err), ZstdError::TrailingData { .. }),
            "{err}"
        );
    }
}

/// The layer itself, under a driver that keeps feeding it after the end.
#[test]
fn the_layer_refuses_input_after_its_frame() {
    use bytes::BytesMut;
    use netstrata_core::Inbound;
    let wire = capture(ZstdConfig::new(), &[b"x"], true);
    let mut z = Zstd::new();
    let (mut up, mut down) = (BytesMut::new(), BytesMut::new());
    let mut call = |z: &mut Zstd, bytes: &[u8]| {
        z.handle_inbound(Inbound {
            now: std::time::Instant::now(),
            input: &mut BytesMut::from(bytes),
            input_ended: false,
            up: &mut up,
            up_room: 1024,
            down: &mut down,
        })
    };
    call(&mut z, &wire).unwrap();
    assert!(z.is_read_closed());
    call(&mut z, b"").unwrap();
    let err = call(&mut z, b"more").unwrap_err();
    assert_eq!(zstd_error(&err), &ZstdError::TrailingData { bytes: 4 });
    assert!(!z.is_read_closed());
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
    z.handle_outbound(Outbound {
        now,
        input: &mut input,
        flush: Flush::Finish,
        down: &mut down,
        down_room: 1 << 20,
    })
    .unwrap();
    assert!(z.is_write_closed());
    let mut more = BytesMut::from(&b"x"[..]);
    let err = z
        .handle_outbound(Outbound {
            now,
            input: &mut more,
            flush: Flush::Batch,
            down: &mut down,
            down_room: 1 << 20,
        })
        .unwrap_err();
    assert!(matches!(err, Error::Misuse { layer: "zstd", .. }), "{err}");
    assert_eq!(
        err.downcast_ref::<ZstdError>(),
        Some(&ZstdError::WriteAfterEnd)
    );
}
