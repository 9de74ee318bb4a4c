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
