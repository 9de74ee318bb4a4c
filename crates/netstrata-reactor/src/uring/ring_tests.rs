//! The ring on its own, as the loop uses it.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use super::{Op, Ring};

/// A connection closes while its send is in flight and has gone out
/// in part; the next socket gets its number: the rest of the send must
/// not go to it.
#[test]
fn a_closed_connections_send_never_reaches_the_next_socket() {
    let Ok(mut ring) = Ring::new(4, 4096, true, None) else {
        assert!(std::env::var_os("CI").is_none(), "io_uring is unavailable");
        eprintln!("SKIP: io_uring is unavailable here");
        return;
    };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let _a_client = TcpStream::connect(addr).unwrap();
    let (a, _) = listener.accept().unwrap();
    a.set_nonblocking(true).unwrap();
    let a_fd = a.as_raw_fd();
    // More than the socket takes: it goes out in part.
    let mut big = Some(vec![b'A'; 32 << 20].into());
    let slot = ring
        .send(a_fd, Op::recv(1, 1), || big.take())
        .unwrap()
        .unwrap();
    ring.submit_and_wait(Some(Duration::ZERO)).unwrap();
    let mut b_client = TcpStream::connect(addr).unwrap();
    // The loop closes connection A.
    ring.cancel(Op::Send { slot: slot as u32 }).unwrap();
    ring.close_later(OwnedFd::from(a), Some(slot));
    ring.submit_and_wait(Some(Duration::ZERO)).unwrap();
    let (b, _) = listener.accept().unwrap();
    assert_eq!(
        b.as_raw_fd(),
        a_fd,
        "B did not get A's number: nothing tested"
    );
    let mut done = Vec::new();
    ring.complete(&mut done, |_, _| {});
    for completion in &done {
        if let Op::Send { slot } = completion.op {
            ring.sent(slot as usize, completion.result);
        }
    }
    ring.submit_and_wait(Some(Duration::ZERO)).unwrap();
    b_client
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0; 64];
    let got = b_client.read(&mut buf);
    assert!(!matches!(got, Ok(n) if n > 0), "B got A's bytes");
    drop(b);
}
