//! UDP sockets, with batched system calls (the default: GSO, GRO or
//! `recvmmsg`) and without: every test runs both ways. Handlers see one
//! call per datagram, boundaries kept, either way.

#[path = "common/udp.rs"]
mod udp;

use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::time::Duration;

use netstrata_reactor::{DatagramContext, DatagramHandler, DatagramIo, LoopConfig};
use udp::Served;

/// Every way of moving datagrams.
const WAYS: [DatagramIo; 3] = [DatagramIo::Offload, DatagramIo::Batch, DatagramIo::Single];

/// Echoes each datagram; answers a dropped one with how many the socket
/// has dropped, and `stats` with its counters. On `hold`, waits for the
/// test's word (so that what the test sends meanwhile waits in the
/// socket's buffer for one batch).
#[derive(Default)]
struct Echo {
    gate: Option<mpsc::Receiver<()>>,
}

impl DatagramHandler for Echo {
    fn on_datagram(&mut self, cx: &mut DatagramContext<'_>, data: &[u8], from: SocketAddr) {
        if data == b"hold" {
            self.gate.as_ref().unwrap().recv().unwrap();
            return;
        }
        if data == b"empties" {
            for d in [&b""[..], b"", b"", b"abcdefghij", b""] {
                cx.send_to(d, from).unwrap();
            }
            return;
        }
        if data == b"stats" {
            let c = cx.counters();
            let said = format!(
                "{} {} {} {} {} {}",
                c.received, c.sent, c.truncated, c.failed, c.receive_calls, c.send_calls
            );
            cx.send_to(said.as_bytes(), from).unwrap();
            return;
        }
        assert!(cx.send_to(data, from).unwrap(), "the queue has room");
    }

    fn on_truncated(&mut self, cx: &mut DatagramContext<'_>, from: SocketAddr) {
        let said = format!("dropped {}", cx.truncated());
        cx.send_to(said.as_bytes(), from).unwrap();
    }
}

/// An [`Echo`] that holds on `hold` until the returned sender's word.
fn holding(way: DatagramIo) -> (Served, mpsc::Sender<()>) {
    let (open, gate) = mpsc::channel();
    let echo = Echo { gate: Some(gate) };
    let config = LoopConfig::new().with_datagram_io(way);
    (Served::start(config, echo), open)
}

/// A client socket whose reads give up after 10 s.
fn client() -> UdpSocket {
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    client
}

/// The next datagram `client` receives, and from where.
fn receive(client: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = vec![0; 70_000];
    let (n, from) = client.recv_from(&mut buf).unwrap();
    buf.truncate(n);
    (buf, from)
}

#[test]
fn a_datagram_larger_than_the_buffer_is_reported_not_cut() {
    for way in WAYS {
        // TCP reads of 512 bytes at most must not limit datagrams (they
        // once shared that buffer); datagrams of up to 1500 bytes fit.
        let config = LoopConfig::new()
            .with_read_chunk(512)
            .with_datagram_buffer(1500)
            .with_datagram_io(way);
        let server = Served::start(config, Echo::default());
        let client = client();
        let exchange = |msg: &[u8]| {
            client.send_to(msg, server.addr).unwrap();
            receive(&client).0
        };
        let fits: Vec<u8> = (0..1500).map(|i| i as u8).collect();
        assert_eq!(exchange(&fits[..1000]), &fits[..1000], "{way:?}");
        assert_eq!(exchange(&fits), fits, "exactly the buffer, {way:?}");
        assert_eq!(exchange(&[9; 1501]), b"dropped 1", "{way:?}");
        assert_eq!(exchange(&[9; 3000]), b"dropped 2", "{way:?}");
        assert_eq!(exchange(&[9; 65_000]), b"dropped 3", "{way:?}");
        assert_eq!(exchange(b"small"), b"small", "the socket goes on");
        assert_eq!(exchange(b""), b"", "an empty datagram is a datagram");
        server.stop();
    }
}

/// Datagram `i` of a burst: its number, then bytes of a size that varies
/// (mostly 1 200, which batches; some shorter, some empty of payload).
fn numbered(i: u32) -> Vec<u8> {
    let len = match i % 7 {
        3 => 300,
        5 => 0,
        _ => 1196,
    };
    [&i.to_be_bytes()[..], &vec![i as u8; len]].concat()
}

#[test]
fn bursts_come_back_whole_and_in_order() {
    for way in WAYS {
        let (server, open) = holding(way);
        let client = client();
        // Windows of 64 (well within loopback's socket buffers, which
        // drop what overflows them), sent while the handler holds: the
        // server finds them waiting, receives them in batches and sends
        // its echoes in batches.
        for window in 0..40u32 {
            let sent: Vec<Vec<u8>> = (0..64).map(|i| numbered(window * 64 + i)).collect();
            client.send_to(b"hold", server.addr).unwrap();
            for msg in &sent {
                client.send_to(msg, server.addr).unwrap();
            }
            open.send(()).unwrap();
            for msg in &sent {
                let (got, from) = receive(&client);
                assert_eq!(from, server.addr);
                assert_eq!(got.len(), msg.len(), "{way:?}");
                assert_eq!(&got, msg, "{way:?}");
            }
        }
        client.send_to(b"stats", server.addr).unwrap();
        let stats = String::from_utf8(receive(&client).0).unwrap();
        let n: Vec<u64> = stats.split(' ').map(|v| v.parse().unwrap()).collect();
        assert_eq!(
            n[..4],
            [2601, 2560, 0, 0],
            "received, sent, truncated, failed"
        );
        let (receive_calls, send_calls) = (n[4], n[5]);
        println!("{way:?}: {receive_calls} receive calls, {send_calls} send calls");
        if way != DatagramIo::Single {
            // Batching is what it is for: 16 datagrams per receive call
            // once the handler lets go, and the echoes leave in runs of
            // same-size datagrams (five of seven in a row are 1 200 bytes)
            // or 32 per `sendmmsg`.
            assert!(receive_calls <= 40 * 6, "{stats}");
            assert!(send_calls <= 2560 / 2, "{stats}");
        } else {
            assert_eq!((receive_calls, send_calls), (2601, 2560), "one call each");
        }
        server.stop();
    }
}

#[test]
fn peers_sharing_a_batch_each_get_their_own() {
    for way in WAYS {
        let (server, open) = holding(way);
        let peers: Vec<UdpSocket> = (0..8).map(|_| client()).collect();
        // Each window, every peer in turn sends one datagram, four times
        // around, while the handler holds: the echoes alternate peers, so
        // no two in a row can share a segmented send, and leave together
        // by `sendmmsg` instead.
        for window in 0..20u32 {
            peers[0].send_to(b"hold", server.addr).unwrap();
            for i in 0..32 {
                let msg = numbered(window * 32 + i);
                peers[i as usize % 8].send_to(&msg, server.addr).unwrap();
            }
            open.send(()).unwrap();
            for i in 0..32 {
                let got = receive(&peers[i as usize % 8]).0;
                assert_eq!(got, numbered(window * 32 + i), "{way:?}");
            }
        }
        peers[0].send_to(b"stats", server.addr).unwrap();
        let stats = String::from_utf8(receive(&peers[0]).0).unwrap();
        let n: Vec<u64> = stats.split(' ').map(|v| v.parse().unwrap()).collect();
        assert_eq!(n[..4], [661, 640, 0, 0], "{stats}");
        println!("{way:?}: {stats}");
        if way != DatagramIo::Single {
            // At most two `sendmmsg` per window (the echoes of the batch
            // `hold` came in, then the rest).
            assert!(n[5] <= 40, "{stats}");
        } else {
            assert_eq!(n[5], 640, "{stats}");
        }
        server.stop();
    }
}

/// Sends each datagram back, to a destination this IPv4 socket cannot
/// reach, and back again; says what failed.
struct WithABadPeer {
    peer: Option<SocketAddr>,
}

impl DatagramHandler for WithABadPeer {
    fn on_datagram(&mut self, cx: &mut DatagramContext<'_>, data: &[u8], from: SocketAddr) {
        let too_big = vec![0; DatagramContext::MAX_DATAGRAM + 1];
        let refused = cx.send_to(&too_big, from).unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::InvalidInput);
        let port_zero = SocketAddr::new(from.ip(), 0);
        let refused = cx.send_to(data, port_zero).unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::InvalidInput);
        cx.send_to(data, from).unwrap();
        cx.send_to(data, "[::1]:9".parse().unwrap()).unwrap();
        cx.send_to(data, from).unwrap();
        self.peer = Some(from);
    }

    fn on_send_failed(&mut self, cx: &mut DatagramContext<'_>, to: SocketAddr, _: &std::io::Error) {
        let said = format!("failed {to} {}", cx.counters().failed);
        cx.send_to(said.as_bytes(), self.peer.unwrap()).unwrap();
    }
}

#[test]
fn a_refused_datagram_fails_alone_and_is_reported() {
    for way in WAYS {
        let server = Served::start(
            LoopConfig::new().with_datagram_io(way),
            WithABadPeer { peer: None },
        );
        let client = client();
        for n in 1..=3 {
            client.send_to(b"hello", server.addr).unwrap();
            assert_eq!(receive(&client).0, b"hello", "{way:?}");
            assert_eq!(receive(&client).0, b"hello", "{way:?}");
            let said = format!("failed [::1]:9 {n}");
            assert_eq!(receive(&client).0, said.as_bytes(), "{way:?}");
        }
        server.stop();
    }
}

/// Sends `datagrams` (all `size` bytes but perhaps the last) to `to` in
/// one segmented send (GSO) where the kernel offers it.
fn send_segmented(
    state: &quinn_udp::UdpSocketState,
    socket: &UdpSocket,
    data: &[u8],
    size: usize,
    to: SocketAddr,
) {
    let transmit = quinn_udp::Transmit {
        destination: to,
        ecn: None,
        contents: data,
        segment_size: Some(size),
        src_ip: None,
    };
    state.try_send(socket.into(), &transmit).unwrap();
}

/// Receives datagrams until `count` have come, splitting coalesced reads
/// by their stride; each with the ECN bits of its TOS byte.
fn receive_split(
    state: &quinn_udp::UdpSocketState,
    socket: &UdpSocket,
    count: usize,
) -> Vec<(Vec<u8>, u8)> {
    let mut buf = vec![0; 64 * 1024];
    let mut got = Vec::new();
    while got.len() < count {
        let mut meta = [quinn_udp::RecvMeta::default()];
        let n = state
            .recv(
                socket.into(),
                &mut [std::io::IoSliceMut::new(&mut buf)],
                &mut meta,
            )
            .unwrap();
        assert_eq!(n, 1);
        got.extend(
            buf[..meta[0].len]
                .chunks(meta[0].stride)
                .map(|d| (d.to_vec(), meta[0].ecn.map_or(0, |e| e as u8))),
        );
    }
    got
}

#[test]
fn a_segmented_batch_is_handed_over_datagram_by_datagram() {
    for way in WAYS {
        let (server, open) = holding(way);
        let client = client();
        // Blocking reads with a timeout, which quinn-udp's state would
        // otherwise make non-blocking.
        let state = quinn_udp::UdpSocketState::new((&client).into()).unwrap();
        client.set_nonblocking(false).unwrap();
        let gso = state.max_gso_segments() > 1 && state.gro_segments() > 1;
        let sent: Vec<Vec<u8>> = (0..40u32)
            .map(|i| [&i.to_be_bytes()[..], &[i as u8; 1196]].concat())
            .collect();
        let mut last = sent[39].clone();
        last.truncate(700);
        let batch = [&sent[..39].concat()[..], &last].concat();
        client.send_to(b"hold", server.addr).unwrap();
        send_segmented(&state, &client, &batch, 1200, server.addr);
        open.send(()).unwrap();
        let got: Vec<Vec<u8>> = receive_split(&state, &client, 40)
            .into_iter()
            .map(|(d, _)| d)
            .collect();
        assert_eq!(got[..39], sent[..39], "{way:?}");
        assert_eq!(got[39], last, "the short last one, {way:?}");
        client.send_to(b"stats", server.addr).unwrap();
        let stats = String::from_utf8(receive_split(&state, &client, 1).remove(0).0).unwrap();
        let n: Vec<u64> = stats.split(' ').map(|v| v.parse().unwrap()).collect();
        assert_eq!(n[..4], [42, 40, 0, 0], "{stats}");
        println!("{way:?}, gso {gso}: {stats}");
        match way {
            // `hold`, the coalesced batch, `stats`; the echoes in one
            // segmented send (39 of 1 200 bytes and the short last one).
            DatagramIo::Offload if gso => assert!(n[4] <= 3 && n[5] <= 1, "{stats}"),
            // The kernel splits the batch for a socket without GRO: 16
            // datagrams per receive; the echoes, 32 per `sendmmsg`.
            DatagramIo::Batch => assert!(n[4] <= 6 && n[5] <= 2, "{stats}"),
            _ => {}
        }
        server.stop();
    }
}

#[test]
fn empty_datagrams_are_sent_as_datagrams() {
    for way in WAYS {
        let server = Served::start(LoopConfig::new().with_datagram_io(way), Echo::default());
        let client = client();
        client.send_to(b"empties", server.addr).unwrap();
        let got: Vec<Vec<u8>> = (0..5).map(|_| receive(&client).0).collect();
        let want: [&[u8]; 5] = [b"", b"", b"", b"abcdefghij", b""];
        assert_eq!(got, want, "{way:?}");
        server.stop();
    }
}

#[test]
fn the_socket_s_tos_byte_holds_on_every_send() {
    for way in WAYS {
        // DSCP EF with ECN's ECT(1): the client sees the ECN bits.
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket2::SockRef::from(&socket).set_tos_v4(0xb9).unwrap();
        let (open, gate) = mpsc::channel();
        let echo = Echo { gate: Some(gate) };
        let server = Served::start_on(socket, LoopConfig::new().with_datagram_io(way), echo);
        let client = client();
        let state = quinn_udp::UdpSocketState::new((&client).into()).unwrap();
        client.set_nonblocking(false).unwrap();
        // quinn-udp turned UDP_GRO on; off, each datagram comes with its
        // own TOS byte (a coalesced run is reported without one).
        let off: libc::c_int = 0;
        // SAFETY: `off` is a live `c_int` of the size given, which the
        // kernel only reads; the descriptor is the open client socket's.
        let rc = unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&client),
                libc::SOL_UDP,
                libc::UDP_GRO,
                (&off as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "UDP_GRO off");
        // Echoes that leave as a segmented run (same size, one peer) and
        // as single datagrams (sizes that differ).
        client.send_to(b"hold", server.addr).unwrap();
        for _ in 0..8 {
            client.send_to(&[1; 1000], server.addr).unwrap();
        }
        for n in [10, 20, 30] {
            client.send_to(&vec![2; n], server.addr).unwrap();
        }
        open.send(()).unwrap();
        let got = receive_split(&state, &client, 11);
        for (data, ecn) in got {
            let len = data.len();
            assert_eq!(ecn, 1, "{way:?}: the TOS byte of a {len}-byte echo");
        }
        server.stop();
    }
}
