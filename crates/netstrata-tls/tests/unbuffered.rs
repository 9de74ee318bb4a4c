//! Records are processed in the caller's input buffer: what a partial
//! record leaves there does not hold up the other direction.

mod common;

use std::time::Instant;

use bytes::BytesMut;
use common::{client_config, direct, server_config};
use netstrata_core::{Flush, Layer};
use netstrata_tls::Tls;

#[test]
fn writes_go_out_while_a_partial_record_waits_in_the_input() {
    let now = Instant::now();
    let mut client = Tls::client(client_config(), "localhost").unwrap();
    let mut server = Tls::server(server_config()).unwrap();
    direct::handshake(&mut client, &mut server, now);
    let hello = || BytesMut::from(&b"hello"[..]);
    let mut input = direct::outbound(&mut client, now, &mut hello(), Flush::Batch);
    let len = input.len();
    let (up, _) = direct::inbound(&mut server, now, &mut input, usize::MAX).unwrap();
    assert_eq!(&up[..], b"hello");
    for cut in 1..len {
        let record = direct::outbound(&mut client, now, &mut hello(), Flush::Batch);
        input.extend_from_slice(&record[..cut]);
        let (up, _) = direct::inbound(&mut server, now, &mut input, usize::MAX).unwrap();
        assert!(up.is_empty(), "cut at {cut}");
        assert_eq!(input.len(), cut, "a partial record stays with the caller");
        check_reply(&mut server, &mut client, now, cut as u32);
        input.extend_from_slice(&record[cut..]);
        let (up, _) = direct::inbound(&mut server, now, &mut input, usize::MAX).unwrap();
        assert_eq!(&up[..], b"hello", "cut at {cut}");
        assert!(input.is_empty());
    }
}

/// The server writes while part of a record waits in its input; the
/// client reads the reply.
fn check_reply(server: &mut Tls, client: &mut Tls, now: Instant, n: u32) {
    let reply = n.to_be_bytes();
    let mut wire = direct::outbound(server, now, &mut BytesMut::from(&reply[..]), Flush::Batch);
    assert!(!wire.is_empty(), "the write is not held up");
    let (up, _) = direct::inbound(client, now, &mut wire, usize::MAX).unwrap();
    assert_eq!(&up[..], &reply[..]);
}

#[test]
fn held_plaintext_is_released_once_delivered() {
    let now = Instant::now();
    let mut client = Tls::client(client_config(), "localhost").unwrap();
    let mut server = Tls::server(server_config()).unwrap();
    direct::handshake(&mut client, &mut server, now);
    let data = vec![5u8; 10_000];
    let mut wire = direct::outbound(
        &mut client,
        now,
        &mut BytesMut::from(&data[..]),
        Flush::Batch,
    );
    let (up, _) = direct::inbound(&mut server, now, &mut wire, 100).unwrap();
    assert_eq!(up.len(), 100);
    assert_eq!(server.buffered_plaintext(), 10_000 - 100);
    assert!(!server.wants_read());
    server.release_buffers();
    assert_eq!(
        server.buffered_plaintext(),
        10_000 - 100,
        "held data is kept"
    );
    let (up, _) = direct::inbound(&mut server, now, &mut wire, usize::MAX).unwrap();
    assert_eq!(up.len(), 10_000 - 100);
    assert_eq!(server.buffered_plaintext(), 0);
    assert!(server.wants_read());
}
