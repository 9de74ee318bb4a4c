//! A connection that fails on what the peer sent keeps what it had already
//! accepted: the messages decoded whole before the error, and the answers
//! sent to them (when the codec failed, the stack is sound and carries them).

use std::time::Instant;

use netstrata_core::layers::Checksummed;
use netstrata_core::testing::transmit_all;
use netstrata_core::{Connection, Error, RawCodec, Stack};
use netstrata_frame::{FrameError, LengthDelimited};

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

#[test]
fn a_cut_inside_a_frame_keeps_the_message_before_it_and_the_answer_to_it() {
    let now = Instant::now();
    let mut conn = Connection::new(Stack::new(()), LengthDelimited::new());
    let mut input = frame(b"ping");
    input.extend_from_slice(&[0, 0]); // two bytes of the next header
    conn.handle_input(now, &input).unwrap();
    conn.handle_input_eof(now).unwrap();

    assert_eq!(
        conn.poll_message(now).unwrap().as_deref(),
        Some(&b"ping"[..])
    );
    conn.send(b"pong").unwrap();
    let cut = conn.poll_message(now).unwrap_err();
    assert!(matches!(cut, Error::Truncated { .. }), "{cut:?}");
    assert!(
        conn.send(b"later").is_err(),
        "nothing is accepted after the error"
    );

    let (wire, error) = transmit_all(&mut conn, now);
    assert_eq!(
        wire,
        frame(b"pong"),
        "the answer sent before the error goes out"
    );
    assert!(matches!(error, Some(Error::Truncated { .. })), "{error:?}");
    assert_eq!(conn.stats().messages_in, 1);
}

#[test]
fn a_bad_header_after_two_messages_keeps_both_and_the_answers() {
    let now = Instant::now();
    let mut conn = Connection::new(Stack::new(()), LengthDelimited::new());
    let mut input = [frame(b"one"), frame(b"two")].concat();
    // Above the default limit of 8 MiB.
    input.extend_from_slice(&(8 * 1024 * 1024 + 1u32).to_be_bytes());
    conn.handle_input(now, &input).unwrap();

    for body in [&b"one"[..], b"two"] {
        let msg = conn.poll_message(now).unwrap().unwrap();
        assert_eq!(&msg[..], body);
        conn.send(&msg).unwrap();
    }
    let bad = conn.poll_message(now).unwrap_err();
    assert!(bad.downcast_ref::<FrameError>().is_some(), "{bad:?}");
    // Asked again, the same error: the bad header is not skipped.
    assert!(conn.poll_message(now).is_err());

    let (wire, error) = transmit_all(&mut conn, now);
    assert_eq!(wire, [frame(b"one"), frame(b"two")].concat());
    assert!(error.is_some());
}

#[test]
fn a_layer_that_fails_still_lets_the_messages_before_its_error_through() {
    let now = Instant::now();
    let mut sender = Connection::new(Stack::new((Checksummed::new(),)), RawCodec::new());
    sender.send(b"intact").unwrap();
    let (wire, _) = transmit_all(&mut sender, now);

    let mut conn = Connection::new(Stack::new((Checksummed::new(),)), RawCodec::new());
    conn.handle_input(now, &wire).unwrap();
    // No end record: the layer fails on the end of stream, with the record
    // before it already passed up.
    let cut = conn.handle_input_eof(now).unwrap_err();
    assert!(
        matches!(
            cut,
            Error::Truncated {
                layer: "checksummed",
                ..
            }
        ),
        "{cut:?}"
    );
    assert_eq!(
        conn.poll_message(now).unwrap().as_deref(),
        Some(&b"intact"[..])
    );
    let again = conn.poll_message(now).unwrap_err();
    assert!(matches!(again, Error::Truncated { .. }), "{again:?}");
    // The layer is dead: nothing more goes out through it.
    conn.send(b"answer").unwrap_err();
    assert_eq!(transmit_all(&mut conn, now).0, Vec::<u8>::new());
}

#[test]
fn the_blocking_driver_hands_over_the_messages_read_with_a_layer_s_error() {
    use std::io::Cursor;
    let now = Instant::now();
    let mut sender = Connection::new(Stack::new((Checksummed::new(),)), LengthDelimited::new());
    for body in [&b"one"[..], b"two"] {
        sender.send(body).unwrap();
    }
    sender.close();
    let (mut wire, _) = transmit_all(&mut sender, now);
    // A byte after the end record: the layer fails in the same read that
    // brings the two messages.
    wire.push(0);
    let conn = Connection::new(Stack::new((Checksummed::new(),)), LengthDelimited::new());
    let mut blocking = netstrata_core::Blocking::new(
        netstrata_core::Duplex::new(Cursor::new(wire), Vec::new()),
        conn,
    );
    assert_eq!(blocking.recv().unwrap().as_deref(), Some(&b"one"[..]));
    assert_eq!(blocking.recv().unwrap().as_deref(), Some(&b"two"[..]));
    let after = blocking.recv().unwrap_err();
    assert!(after.is_peer_fault(), "{after:?}");
    assert_eq!(after.layer(), Some("checksummed"));
}
