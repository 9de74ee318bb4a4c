//! Interop with tokio-rustls over loopback TCP: length-delimited frames
//! (tokio-util's `LengthDelimitedCodec` on their side, netstrata-frame's
//! `LengthDelimited` on ours) both ways, and a clean close both ways.

mod common;

use std::net::TcpListener as StdListener;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use common::{client_config, server_config};
use futures_util::{SinkExt, StreamExt};
use netstrata_core::{Blocking, Connection};
use netstrata_frame::LengthDelimited;
use netstrata_tls::Tls;
use netstrata_tls::rustls::pki_types::ServerName;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

const LIMIT: Duration = Duration::from_secs(20);

fn frames() -> Vec<Vec<u8>> {
    (0..50).map(|i| vec![i as u8; i * 37 % 5000]).collect()
}

#[tokio::test]
async fn tokio_rustls_client_against_our_server() {
    let listener = StdListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Our server: echo every frame reversed until the client's close_notify.
    let server = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let tls = Tls::server(server_config()).unwrap();
        let mut conn = Blocking::new(stream, Connection::new(tls, LengthDelimited::new()));
        let mut count = 0;
        while let Some(frame) = conn.recv().unwrap() {
            let mut reply = frame.to_vec();
            reply.reverse();
            conn.send(&reply).unwrap();
            count += 1;
        }
        conn.shutdown().unwrap();
        count
    });

    let connector = TlsConnector::from(client_config());
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    let mut framed = Framed::new(tls, LengthDelimitedCodec::new());
    for f in frames() {
        framed.send(Bytes::from(f.clone())).await.unwrap();
        let reply = tokio::time::timeout(LIMIT, framed.next())
            .await
            .expect("a reply in time")
            .expect("not the end")
            .unwrap();
        let mut expected = f;
        expected.reverse();
        assert_eq!(reply, expected);
    }
    // close_notify and FIN; then our server's close_notify is a clean end.
    SinkExt::<Bytes>::close(&mut framed).await.unwrap();
    let end = tokio::time::timeout(LIMIT, framed.next()).await.unwrap();
    assert!(end.is_none(), "{end:?}");
    assert_eq!(server.join().unwrap(), frames().len());
}

#[tokio::test]
async fn our_client_against_a_tokio_rustls_server() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = thread::spawn(move || {
        let stream = std::net::TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(LIMIT)).unwrap();
        let tls = Tls::client(client_config(), "localhost").unwrap();
        let mut conn = Blocking::new(stream, Connection::new(tls, LengthDelimited::new()));
        // Everything in one batch: written before the handshake, held, sent
        // once it completes (`flush` reads to finish the handshake).
        for f in frames() {
            conn.send(&f).unwrap();
        }
        conn.flush().unwrap();
        let mut replies = Vec::new();
        while replies.len() < frames().len() {
            replies.push(conn.recv().unwrap().expect("a reply").to_vec());
        }
        conn.shutdown().unwrap();
        // The server's close_notify: a clean end.
        assert!(conn.recv().unwrap().is_none());
        replies
    });

    let acceptor = TlsAcceptor::from(Arc::clone(&server_config()));
    let (tcp, _) = listener.accept().await.unwrap();
    let tls = acceptor.accept(tcp).await.unwrap();
    let mut framed = Framed::new(tls, LengthDelimitedCodec::new());
    let mut count = 0;
    loop {
        let next = tokio::time::timeout(LIMIT, framed.next()).await.unwrap();
        let Some(frame) = next else { break };
        let frame = frame.expect("no truncation: our client sent close_notify");
        framed.send(frame.freeze()).await.unwrap();
        count += 1;
    }
    assert_eq!(count, frames().len());
    SinkExt::<Bytes>::close(&mut framed).await.unwrap();
    assert_eq!(client.join().unwrap(), frames());
}
