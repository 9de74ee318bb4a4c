//! The ring on its own, as the loop uses it.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use super::{Op, Ring, Sent};

/// A ring as a loop on one thread has it; `None` (the test passes, saying
/// why) where io_uring is unavailable, except under CI, where it fails.
fn ring() -> Option<Ring> {
    match Ring::new(4, 4096, true, None) {
        Ok(ring) => Some(ring),
        Err(e) => {
            let why = format!("io_uring is unavailable: {e}");
            netstrata_core::testing::cannot_run(&why, "CI machines have it");
            None
        }
    }
}

/// A connection closes while its send is in flight and has gone out
/// in part; the next socket gets its number: the rest of the send must
/// not go to it.
#[test]
fn a_closed_connections_send_never_reaches_the_next_socket() {
    let Some(mut ring) = ring() else {
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

/// A send of many runs that the socket takes in parts comes out whole and
/// in order: the iovecs are rebuilt after each partial send.
#[test]
fn partial_sends_of_many_runs_arrive_whole_and_in_order() {
    let Some(mut ring) = ring() else {
        return;
    };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (a, _) = listener.accept().unwrap();
    a.set_nonblocking(true).unwrap();
    // 16 runs of odd sizes, 8 MB in all: far more than the socket takes.
    let mut expected = Vec::new();
    let mut runs: Vec<bytes::Bytes> = (0..16)
        .map(|i| {
            let run: Vec<u8> = (0..300_001 + i * 77_777)
                .map(|j| (j * 31 + i * 7) as u8)
                .collect();
            expected.extend_from_slice(&run);
            run.into()
        })
        .collect();
    runs.reverse();
    let slot = ring
        .send(a.as_raw_fd(), Op::recv(1, 1), || runs.pop())
        .unwrap()
        .unwrap();
    assert!(runs.is_empty());
    let total = expected.len();
    let reader = std::thread::spawn(move || {
        let (mut got, mut buf) = (Vec::new(), vec![0; 50_000]);
        while got.len() < total {
            let n = client.read(&mut buf).unwrap();
            assert!(n > 0, "the end before all bytes came");
            got.extend_from_slice(&buf[..n]);
        }
        got
    });
    let (mut done, mut partly) = (Vec::new(), 0);
    'sending: loop {
        ring.submit_and_wait(Some(Duration::from_secs(10))).unwrap();
        done.clear();
        ring.complete(&mut done, |_, _| {});
        for completion in &done {
            if let Op::Send { slot: s } = completion.op {
                assert_eq!(s as usize, slot);
                match ring.sent(slot, completion.result) {
                    Sent::Partly { .. } => partly += 1,
                    Sent::Done { .. } => break 'sending,
                    _ => panic!("the send failed: {}", completion.result),
                }
            }
        }
    }
    let got = reader.join().unwrap();
    assert!(partly > 0, "never sent in part: nothing tested");
    assert!(got == expected, "bytes differ or out of order");
    drop(a);
}
