//! Changing a live stack below its top: bytes written before the change
//! cross the stack as it was, or the change is refused (found by the
//! `dyn_stack_ops` fuzz target: a message sent but not yet transmitted
//! went through a layer inserted below the top, which the peer did not
//! have yet for it).

use std::time::Instant;

use netstrata_core::layers::Xor;
use netstrata_core::{Connection, DynStack, Error, RawCodec};

fn xor_conn(keys: &[&[u8]]) -> Connection<DynStack, RawCodec> {
    let layers = keys
        .iter()
        .map(|k| Box::new(Xor::new(*k)) as netstrata_core::BoxedLayer)
        .collect();
    Connection::new(DynStack::new(layers), RawCodec::new())
}

/// Everything `conn` has to transmit now.
fn transmit(conn: &mut Connection<DynStack, RawCodec>, now: Instant) -> Vec<u8> {
    let mut wire = Vec::new();
    while let Some(bytes) = conn.poll_transmit(now).unwrap() {
        let n = bytes.len();
        wire.extend_from_slice(bytes);
        conn.advance_transmit(n);
    }
    wire
}

fn read(conn: &mut Connection<DynStack, RawCodec>, now: Instant, wire: &[u8]) -> Vec<u8> {
    conn.handle_input(now, wire).unwrap();
    let mut got = Vec::new();
    while let Some(msg) = conn.poll_message(now).unwrap() {
        got.extend_from_slice(&msg);
    }
    got
}

fn assert_misuse(result: netstrata_core::Result<()>) {
    assert!(
        matches!(result, Err(Error::Misuse { .. })),
        "expected misuse, got {result:?}"
    );
}

#[test]
fn an_insert_below_the_top_waits_for_bytes_written_before_it() {
    let now = Instant::now();
    let mut a = xor_conn(&[b"one"]);
    let mut b = xor_conn(&[b"one"]);
    a.send(b"before").unwrap();
    // "before" still waits above the boundary: it would be encoded by the
    // new layer, which `b` adds only after reading it.
    assert_misuse(a.insert_layer(1, Box::new(Xor::new(*b"two"))));
    assert_eq!(a.stack().len(), 1, "a refused insert changed the stack");
    assert!(a.error().is_none(), "misuse ended the connection");
    let first = transmit(&mut a, now);
    a.insert_layer(1, Box::new(Xor::new(*b"two"))).unwrap();
    a.send(b"after").unwrap();
    let second = transmit(&mut a, now);

    assert_eq!(read(&mut b, now, &first), b"before");
    b.insert_layer(1, Box::new(Xor::new(*b"two"))).unwrap();
    assert_eq!(read(&mut b, now, &second), b"after");
}

#[test]
fn a_removal_below_the_top_waits_for_bytes_written_before_it() {
    let now = Instant::now();
    let mut a = xor_conn(&[b"one", b"two"]);
    let mut b = xor_conn(&[b"one", b"two"]);
    a.send(b"before").unwrap();
    // "before" would skip the removed layer, which `b` still has for it.
    assert_misuse(a.remove_layer(1, now).map(drop));
    assert_eq!(a.stack().len(), 2, "a refused removal changed the stack");
    let first = transmit(&mut a, now);
    a.remove_layer(1, now).unwrap();
    a.send(b"after").unwrap();
    let second = transmit(&mut a, now);

    assert_eq!(read(&mut b, now, &first), b"before");
    b.remove_layer(1, now).unwrap();
    assert_eq!(read(&mut b, now, &second), b"after");
}

#[test]
fn at_the_top_bytes_written_before_go_below_the_new_layer() {
    let now = Instant::now();
    let mut a = xor_conn(&[b"one"]);
    let mut b = xor_conn(&[b"one"]);
    a.send(b"before").unwrap();
    a.insert_layer(0, Box::new(Xor::new(*b"two"))).unwrap();
    a.send(b"after").unwrap();
    let wire = transmit(&mut a, now);
    b.handle_input(now, &wire).unwrap();
    let mut got = Vec::new();
    while let Some(msg) = b.poll_message(now).unwrap() {
        got.extend_from_slice(&msg);
    }
    // One read, then the reader puts back what follows its boundary.
    assert_eq!(&got[..6], b"before");
    b.unread(&got[6..]);
    b.insert_layer(0, Box::new(Xor::new(*b"two"))).unwrap();
    assert_eq!(b.poll_message(now).unwrap().unwrap(), &b"after"[..]);
}
