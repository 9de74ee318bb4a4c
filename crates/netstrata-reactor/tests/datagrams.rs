//! UDP sockets receive into a buffer of their own: a datagram larger than
//! it is dropped and reported, never handed over cut short.

use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use netstrata_core::Stack;
use netstrata_frame::LengthDelimited;
use netstrata_reactor::{DatagramContext, DatagramHandler, EventLoop, Handler, LoopConfig};

/// Echoes each datagram; answers a dropped one with how many the socket
/// has dropped.
struct Echo;

impl DatagramHandler for Echo {
    fn on_datagram(&mut self, cx: &mut DatagramContext<'_>, data: &[u8], from: SocketAddr) {
        cx.send_to(data, from).unwrap();
    }

    fn on_truncated(&mut self, cx: &mut DatagramContext<'_>, from: SocketAddr) {
        let said = format!("dropped {}", cx.truncated());
        cx.send_to(said.as_bytes(), from).unwrap();
    }
}

/// No connection handler runs on this loop.
struct NoConnections;

impl Handler for NoConnections {
    fn on_message(&mut self, _: &mut netstrata_reactor::Context<'_>, _: bytes::Bytes) {}
}

#[test]
fn a_datagram_larger_than_the_buffer_is_reported_not_cut() {
    // TCP reads of 512 bytes at most must not limit datagrams (they once
    // shared that buffer); datagrams of up to 1500 bytes fit.
    let config = LoopConfig::new()
        .with_read_chunk(512)
        .with_datagram_buffer(1500);
    let (tx, rx) = mpsc::channel();
    let thread = thread::spawn(move || {
        let mut event_loop: EventLoop<Stack<()>, LengthDelimited, NoConnections> =
            EventLoop::new(config)?;
        let addr = event_loop.bind_udp(UdpSocket::bind("127.0.0.1:0")?, Echo)?;
        tx.send((addr, event_loop.handle())).unwrap();
        event_loop.run()
    });
    let (addr, handle) = rx.recv().unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = vec![0; 4096];
    let mut exchange = |msg: &[u8]| {
        client.send_to(msg, addr).unwrap();
        let (n, _) = client.recv_from(&mut buf).unwrap();
        buf[..n].to_vec()
    };
    let fits: Vec<u8> = (0..1500).map(|i| i as u8).collect();
    assert_eq!(exchange(&fits[..1000]), &fits[..1000], "above read_chunk");
    assert_eq!(exchange(&fits), fits, "exactly the buffer");
    assert_eq!(exchange(&[9; 1501]), b"dropped 1");
    assert_eq!(exchange(&[9; 3000]), b"dropped 2");
    assert_eq!(exchange(b"small"), b"small", "the socket goes on");
    handle.stop().unwrap();
    thread.join().unwrap().unwrap();
}
