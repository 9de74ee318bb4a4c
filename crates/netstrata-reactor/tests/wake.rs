//! A limit raised from another thread takes effect at once on a connection
//! that waits for budget: the shaper wakes the loop through the waker the
//! loop gave the connection, instead of the loop sleeping until the
//! deadline set for the old limit.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::sync::{Mutex, mpsc};
use std::time::Duration;

use bytes::Bytes;
use netstrata_core::{Connection, Stack};
use netstrata_frame::LengthDelimited;
use netstrata_reactor::{Context, Handler, Server, ServerConfig};
use netstrata_shape::{Direction, Limit, ShapeConfig, Shaper, ShaperHandle};

const FRAMES: usize = 20;
const FRAME: usize = 1000;
const BURST: u64 = 5000;

/// Sends `FRAMES` frames as soon as the connection opens.
struct Sender;

impl Handler for Sender {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        for _ in 0..FRAMES {
            cx.send(&[7; FRAME]).unwrap();
        }
    }
    fn on_message(&mut self, _: &mut Context<'_>, _: Bytes) {}
}

#[test]
fn raising_a_limit_from_another_thread_wakes_a_waiting_connection() {
    // 1 B/s after a 5000-byte burst: the next grant of the old limit
    // (MIN_GRANT, 16 bytes) is 16 s away, past the client's read timeout.
    let limit = Limit::new(1, BURST).unwrap();
    let (handles_tx, handles) = mpsc::channel::<ShaperHandle>();
    let handles_tx = Mutex::new(handles_tx);
    let server = Server::bind(
        "127.0.0.1:0".parse::<SocketAddr>().unwrap(),
        ServerConfig::new().with_threads(1),
        move || {
            let shaper = Shaper::new(ShapeConfig::new().with_outbound(limit));
            handles_tx.lock().unwrap().send(shaper.handle()).unwrap();
            Connection::new(Stack::new((shaper,)), LengthDelimited::new())
        },
        |_| Sender,
    )
    .unwrap();
    let connect = || {
        let stream = TcpStream::connect(server.local_addr()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
    };
    let mut stream = connect();
    let total = FRAMES * (FRAME + 4);
    let mut got = vec![0u8; total];
    // The burst arrives, then the shaper waits for budget.
    stream.read_exact(&mut got[..BURST as usize]).unwrap();
    let handle = handles.recv_timeout(Duration::from_secs(5)).unwrap();
    // Wait until the loop is past the turn that handles the socket events
    // of the burst (a new socket's writable readiness comes with the next
    // poll), so that only the waker can make it look at the connection
    // again. A second connection's burst is written in a later turn than
    // the first's, and a third connection, opened once that burst has
    // arrived, is accepted in a turn after that one.
    let mut second = connect();
    second.read_exact(&mut [0; BURST as usize]).unwrap();
    let _third = connect();
    for _ in 0..2 {
        handles.recv_timeout(Duration::from_secs(5)).unwrap();
    }
    handle.set_limit(Direction::Outbound, None);
    stream
        .read_exact(&mut got[BURST as usize..])
        .expect("the rest arrives once the limit is lifted, not at the old deadline");
    for frame in got.chunks(FRAME + 4) {
        assert_eq!(&frame[..4], &(FRAME as u32).to_be_bytes());
        assert!(frame[4..].iter().all(|&b| b == 7));
    }
    server.stop().unwrap();
}
