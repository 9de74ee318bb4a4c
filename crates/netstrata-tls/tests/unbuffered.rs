//! Records are processed in the caller's input buffer: what a partial
//! record leaves there does not hold up the other direction.

mod common;

use std::time::Instant;

use bytes::BytesMut;
use common::{client_config, direct, server_config};
use netstrata_core::{Flush, Layer};
use netstrata_tls::Tls;
use netstrata_tls::rustls::ProtocolVersion;

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

/// Handshake messages and session tickets split over many small records
/// make rustls keep parts of a message in the input buffer between calls;
/// the other direction still works and nothing is lost, at any chunking.
#[test]
fn handshake_messages_over_many_records() {
    let mut server = (*common::server_options().with_tls12(true).build().unwrap()).clone();
    server.max_fragment_size = Some(64);
    let server = std::sync::Arc::new(server);
    for link in common::links() {
        for tls12 in [false, true] {
            let client = match tls12 {
                true => common::tls12_only_client(),
                false => client_config(),
            };
            let mut pair = common::pair_with(client, server.clone(), link);
            let messages = common::messages(20, 3);
            let exchange = |pair: &mut common::TlsPair| {
                pair.send_both(&messages).unwrap();
                pair.drive();
                assert_eq!(pair.server.take_inbox(), messages, "{link:?}");
                assert_eq!(pair.client.take_inbox(), messages, "{link:?}");
            };
            exchange(&mut pair);
            let version = pair.client.conn.stack().protocol_version();
            assert_eq!(version == Some(ProtocolVersion::TLSv1_2), tls12);
            // Again, with the server's session tickets (TLS 1.3) out of the way.
            exchange(&mut pair);
            assert!(matches!(pair.errors(), (None, None)), "{:?}", pair.errors());
        }
    }
}

/// The client writes while a session ticket split over several records
/// arrives a byte at a time: part of the ticket message waits in the
/// client's input, writes are held until it is whole, and nothing is lost.
#[test]
fn writes_while_a_split_session_ticket_arrives() {
    let now = Instant::now();
    let mut config = (*server_config()).clone();
    config.max_fragment_size = Some(64);
    let mut client = Tls::client(client_config(), "localhost").unwrap();
    let mut server = Tls::server(std::sync::Arc::new(config)).unwrap();
    let hello = direct::outbound(&mut client, now, &mut BytesMut::new(), Flush::Batch);
    let (_, flight) = direct::inbound(&mut server, now, &mut hello.clone(), usize::MAX).unwrap();
    let (_, finished) = direct::inbound(&mut client, now, &mut flight.clone(), usize::MAX).unwrap();
    assert!(!client.is_handshaking());
    let (_, tickets) =
        direct::inbound(&mut server, now, &mut finished.clone(), usize::MAX).unwrap();
    assert!(
        direct::record_lengths(&tickets).len() > 2,
        "tickets over several records"
    );

    let (mut input, mut c2s, mut sent) = (BytesMut::new(), BytesMut::new(), Vec::new());
    let mut held_back = 0;
    for (i, byte) in tickets.iter().enumerate() {
        input.extend_from_slice(&[*byte]);
        let (up, _) = direct::inbound(&mut client, now, &mut input, usize::MAX).unwrap();
        assert!(up.is_empty());
        let mut plain = BytesMut::from(&[i as u8][..]);
        let wire = direct::outbound(&mut client, now, &mut plain, Flush::Batch);
        if wire.is_empty() {
            held_back += 1;
            assert_eq!(plain.len(), 1, "held in the caller's buffer");
        } else {
            sent.push(i as u8);
            c2s.extend_from_slice(&wire);
        }
    }
    assert!(input.is_empty());
    assert!(held_back > 0, "some writes met a partial ticket message");
    assert!(!sent.is_empty());
    let (up, _) = direct::inbound(&mut server, now, &mut c2s, usize::MAX).unwrap();
    assert_eq!(&up[..], &sent[..]);
}
