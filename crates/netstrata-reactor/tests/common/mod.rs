//! What the server tests share: a plain connection, a blocking client, and
//! many clients pipelining at once.

use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use netstrata_core::{Blocking, Connection, Stack};
use netstrata_frame::LengthDelimited;
use netstrata_reactor::CloseReason;

pub(crate) type Plain = Stack<()>;

pub(crate) fn plain() -> Connection<Plain, LengthDelimited> {
    Connection::new(Stack::new(()), LengthDelimited::new())
}

pub(crate) fn client(addr: SocketAddr) -> Blocking<TcpStream, Plain, LengthDelimited> {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    Blocking::new(stream, plain())
}

/// 40 clients at once, each sending 100 frames before reading their
/// echoes, then ending its stream and getting a clean end back; the server
/// reports 40 clean closes on `closed`.
pub(crate) fn pipelined_clients_close_cleanly(
    addr: SocketAddr,
    closed: &mpsc::Receiver<CloseReason>,
) {
    let clients: Vec<_> = (0..40u8)
        .map(|c| {
            thread::spawn(move || {
                let mut conn = client(addr);
                for i in 0..100u8 {
                    conn.send(&[c ^ i; 50]).unwrap();
                }
                conn.flush().unwrap();
                for i in 0..100u8 {
                    assert_eq!(&conn.recv().unwrap().unwrap()[..], [c ^ i; 50]);
                }
                conn.shutdown().unwrap();
                assert!(conn.recv().unwrap().is_none(), "clean end from the server");
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    for _ in 0..40 {
        let reason = closed.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(matches!(reason, CloseReason::Clean), "{reason:?}");
    }
}

/// Messages a client has in flight when a graceful shutdown begins.
const IN_FLIGHT: u32 = 200;

/// Sends numbers 0..200 and waits for the first echo: the server has them,
/// and the rest of the echoes may still be in flight.
pub(crate) fn numbers_in_flight(conn: &mut Blocking<TcpStream, Plain, LengthDelimited>) {
    for i in 0..IN_FLIGHT {
        conn.send(&i.to_be_bytes()).unwrap();
    }
    conn.flush().unwrap();
    assert_eq!(&conn.recv().unwrap().unwrap()[..], 0u32.to_be_bytes());
}

/// After [`numbers_in_flight`] and a graceful shutdown: every other echo
/// arrives, then the server's clean end; the client ends its side.
pub(crate) fn drained(conn: &mut Blocking<TcpStream, Plain, LengthDelimited>) {
    for i in 1..IN_FLIGHT {
        assert_eq!(&conn.recv().unwrap().unwrap()[..], i.to_be_bytes());
    }
    assert!(
        conn.recv().unwrap().is_none(),
        "clean end from the draining server"
    );
    conn.shutdown().unwrap();
}
