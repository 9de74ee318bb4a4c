//! A stack whose top layer ends before its lower layers do (found by the
//! `dyn_stack_ops` fuzz target): the connection's read side ends with the
//! top, and a later inbound pass must not tell the lower layers that their
//! input ended, which it has not.

use std::time::Instant;

use netstrata_core::layers::Checksummed;
use netstrata_core::{BoxedLayer, Connection, DynStack, RawCodec};

fn two_checksummed() -> Connection<DynStack, RawCodec> {
    let layers: Vec<BoxedLayer> = vec![Box::new(Checksummed::new()), Box::new(Checksummed::new())];
    Connection::new(DynStack::new(layers), RawCodec::new())
}

#[test]
fn an_inbound_pass_after_the_top_ended_is_not_a_truncation() {
    let now = Instant::now();
    let mut a = two_checksummed();
    a.close();
    let mut wire = Vec::new();
    while let Some(bytes) = a.poll_transmit(now).unwrap() {
        let n = bytes.len();
        wire.extend_from_slice(bytes);
        a.advance_transmit(n);
    }
    // The lower layer's record holding the upper layer's end record (2 + 10
    // bytes), then the lower layer's own end record and part of its checksum.
    let mut b = two_checksummed();
    b.handle_input(now, &wire[..16]).unwrap();
    assert_eq!(b.poll_message(now).unwrap(), None);
    assert!(b.is_read_closed(), "the top layer ended cleanly");
    // Any change through `stack_mut` asks for a new inbound pass.
    let _ = b.stack_mut();
    assert_eq!(b.poll_message(now).unwrap(), None);
    assert!(b.error().is_none(), "{:?}", b.error());
    assert!(b.is_read_closed());
}
