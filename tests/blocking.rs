//! The blocking driver over real transports: TCP on loopback and a Unix
//! socket pair.

mod common;

use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::thread;
use std::time::Duration;

use common::Tiny;
use netstrata::layers::Checksummed;
use netstrata::{Blocking, Connection, Duplex, Error, Transport};

/// Echoes every message until the peer ends cleanly, then ends too.
fn echo<T: Transport>(io: T) -> netstrata::Result<u64> {
    let mut server = Blocking::new(io, Connection::new(common::static3(), Tiny));
    let mut n = 0;
    while let Some(msg) = server.recv()? {
        server.send(&msg)?;
        server.flush()?;
        n += 1;
    }
    server.shutdown()?;
    Ok(n)
}

fn exchange<T: Transport>(io: T) -> netstrata::Result<()> {
    let mut client = Blocking::new(io, Connection::new(common::static3(), Tiny));
    // Pipelined: many messages per flush.
    for round in 0..20u8 {
        for i in 0..50u8 {
            client.send(&[round ^ i; 100])?;
        }
        client.flush()?;
        for i in 0..50u8 {
            let msg = client.recv()?.expect("an echo");
            assert_eq!(&msg[..], [round ^ i; 100]);
        }
    }
    client.shutdown()?;
    assert!(
        client.recv()?.is_none(),
        "clean end after the server's end record"
    );
    let stats = client.connection().stats();
    assert_eq!(stats.messages_in, 1000);
    assert_eq!(stats.layers[1].name, "checksummed");
    Ok(())
}

#[test]
fn tcp_loopback_echo() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream.set_nodelay(true).unwrap();
        echo(stream)
    });
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_nodelay(true).unwrap();
    exchange(stream).unwrap();
    assert_eq!(server.join().unwrap().unwrap(), 1000);
}

#[test]
fn unix_socket_pair_echo() {
    let (a, b) = UnixStream::pair().unwrap();
    let server = thread::spawn(move || echo(b));
    exchange(a).unwrap();
    assert_eq!(server.join().unwrap().unwrap(), 1000);
}

/// Two OS pipes, one each way: shutting down a side's write direction
/// closes its pipe, which the other side reads as end of stream.
#[test]
fn os_pipes_echo() {
    let (from_client, to_server) = std::io::pipe().unwrap();
    let (from_server, to_client) = std::io::pipe().unwrap();
    let server = thread::spawn(move || echo(Duplex::new(from_client, to_client)));
    exchange(Duplex::new(from_server, to_server)).unwrap();
    assert_eq!(server.join().unwrap().unwrap(), 1000);
}

#[test]
fn a_reset_mid_stream_is_truncation_not_a_clean_end() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        // One valid record, then close without the end record.
        std::io::Write::write_all(&mut s, &[0, 3, 2, b'h', b'i']).unwrap();
    });
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut client = Blocking::new(stream, Connection::new(Checksummed::new(), Tiny));
    assert_eq!(&client.recv().unwrap().unwrap()[..], b"hi");
    let err = client.recv().unwrap_err();
    assert!(
        matches!(
            err,
            Error::Truncated {
                layer: "checksummed",
                ..
            }
        ),
        "{err}"
    );
    peer.join().unwrap();
}
