//! `netstrata tunnel`: two tunnels back to back (plain → stack → plain)
//! carrying real TCP traffic.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use netstrata_cli::demo::dev_tls;
use netstrata_cli::stack::{RateOptions, StackOptions, TlsSide};
use netstrata_cli::tunnel::{StackSide, Tunnel, TunnelOptions};
use netstrata_shape::Limit;
use netstrata_zstd::ZstdConfig;

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// The far tunnel (stack → plain, in front of `target`) and the near one
/// (plain → stack, where clients connect), with TLS, zstd and, if
/// `rate`, shaping on both ends of the stack side.
fn tunnel_pair(target: SocketAddr, rate: Option<u64>) -> (Tunnel, Tunnel) {
    let (server_tls, client_tls) = dev_tls().unwrap();
    let stack = |tls: TlsSide| StackOptions {
        zstd: Some(ZstdConfig::new()),
        tls: Some(tls),
        rate: rate.map(|r| {
            RateOptions::new(
                Some(Limit::per_second(r).unwrap()),
                None,
                Duration::from_secs(1),
            )
        }),
    };
    let far = Tunnel::start(TunnelOptions {
        listen: any_port(),
        connect: target,
        stack_side: StackSide::Listen,
        stack: stack(server_tls),
        log: true,
    })
    .unwrap();
    let near = Tunnel::start(TunnelOptions {
        listen: any_port(),
        connect: far.local_addr(),
        stack_side: StackSide::Connect,
        stack: stack(client_tls),
        log: true,
    })
    .unwrap();
    (far, near)
}

/// A plain tunnel in front of `target`.
fn plain_tunnel(target: SocketAddr) -> Tunnel {
    Tunnel::start(TunnelOptions {
        listen: any_port(),
        connect: target,
        stack_side: StackSide::Connect,
        stack: StackOptions::default(),
        log: true,
    })
    .unwrap()
}

/// Bytes that compress a little but not to nothing.
fn body(len: usize) -> Vec<u8> {
    let mut x: u32 = 12345;
    (0..len)
        .map(|i| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            if i % 3 == 0 {
                (x >> 24) as u8
            } else {
                b'a' + (i % 26) as u8
            }
        })
        .collect()
}

/// A target that sends `data` to its one client, then ends its stream and
/// reads until the client's end.
struct SendingTarget {
    addr: SocketAddr,
    thread: thread::JoinHandle<()>,
    /// Bytes written so far.
    written: Arc<AtomicUsize>,
}

fn sending_target(data: Vec<u8>) -> SendingTarget {
    let target = TcpListener::bind(any_port()).unwrap();
    let addr = target.local_addr().unwrap();
    let written = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&written);
    let thread = thread::spawn(move || {
        let (mut s, _) = target.accept().unwrap();
        for chunk in data.chunks(64 * 1024) {
            s.write_all(chunk).unwrap();
            counter.fetch_add(chunk.len(), Ordering::Release);
        }
        s.shutdown(Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
    });
    SendingTarget {
        addr,
        thread,
        written,
    }
}

/// Whether the target's end of a connection to it is probing a zero window
/// (timer 4 in `/proc/net/tcp`): its peer has stopped reading and its
/// receive buffer is full.
fn zero_window_toward(target: SocketAddr) -> bool {
    let port = format!(":{:04X}", target.port());
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table.lines().skip(1).any(|line| {
        // "sl local rem st tx_queue:rx_queue tr:when ..."; 01 is ESTABLISHED.
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields[1].ends_with(&port) && fields[3] == "01" && fields[5].starts_with("04:")
    })
}

/// A client of `tunnel` whose reads give up after `secs`, so that a hang
/// fails the test.
fn client_of(tunnel: &Tunnel, secs: u64) -> TcpStream {
    let client = TcpStream::connect(tunnel.local_addr()).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(secs)))
        .unwrap();
    client
}

/// The tunnel ended `client`'s connection: end of stream or a reset,
/// either way no bytes and no hang.
fn assert_closed(client: &mut TcpStream) {
    let mut buf = [0; 16];
    match client.read(&mut buf) {
        Ok(n) => assert_eq!(n, 0),
        Err(e) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
            ),
            "{e}"
        ),
    }
}

/// Each way a different stream; each side half-closes after sending and
/// must still receive everything the other sends after that.
#[test]
fn bytes_both_ways_and_half_close_through_two_tunnels() {
    let (up, down) = (body(300_000), body(700_000));
    let target = TcpListener::bind(any_port()).unwrap();
    let target_addr = target.local_addr().unwrap();
    let (up2, down2) = (up.clone(), down.clone());
    let server = thread::spawn(move || {
        let (mut s, _) = target.accept().unwrap();
        // Read the client's whole stream (it half-closes) before answering:
        // the answer crosses the tunnels after the client's FIN did.
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        assert!(got == up2, "upstream differs ({} bytes)", got.len());
        s.write_all(&down2).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
    });
    let (far, near) = tunnel_pair(target_addr, None);
    let mut client = client_of(&near, 20);
    client.write_all(&up).unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    let mut got = Vec::new();
    client.read_to_end(&mut got).unwrap();
    assert!(got == down, "downstream differs ({} bytes)", got.len());
    server.join().unwrap();
    near.stop().unwrap();
    far.stop().unwrap();
}

/// A shaped stack side: more bytes than the tunnel's window cross, so
/// backpressure held the rest in the sockets, and never faster than the
/// shaper allows (a bucket passes at most `burst + rate × t`).
#[test]
fn shaped_transfer_completes_no_faster_than_the_rate() {
    // Incompressible: the wire carries at least the body.
    let data: Vec<u8> =
        netstrata_cli::load::payload(netstrata_cli::load::Payload::Random, 1_000_000);
    let target = sending_target(data.clone());
    let rate = 4_000_000;
    let (far, near) = tunnel_pair(target.addr, Some(rate));
    let start = Instant::now();
    let mut client = client_of(&near, 20);
    let mut got = Vec::new();
    client.read_to_end(&mut got).unwrap();
    let took = start.elapsed();
    assert!(got == data, "body differs ({} bytes)", got.len());
    client.shutdown(Shutdown::Write).unwrap();
    target.thread.join().unwrap();
    // The default burst is 50 ms of the rate: 0.2 s at the least.
    let burst = rate / 20;
    let least = Duration::from_secs_f64((data.len() as u64 - burst) as f64 / rate as f64);
    assert!(took >= least, "{took:?} < {least:?}");
    near.stop().unwrap();
    far.stop().unwrap();
}

/// A target that refuses: the client's connection is closed, not left
/// hanging, and the tunnel goes on serving.
#[test]
fn an_unreachable_target_closes_the_client() {
    let closed = TcpListener::bind(any_port()).unwrap();
    let dead = closed.local_addr().unwrap();
    drop(closed);
    let tunnel = plain_tunnel(dead);
    for _ in 0..2 {
        let mut client = client_of(&tunnel, 10);
        let _ = client.write_all(b"hello");
        assert_closed(&mut client);
    }
    tunnel.stop().unwrap();
}

/// A tiny HTTP/1.1 server: one response with `body`, then close.
fn http_server(body: Vec<u8>) -> (SocketAddr, thread::JoinHandle<()>) {
    let listener = TcpListener::bind(any_port()).unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut request = Vec::new();
        let mut buf = [0; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "request cut short");
            request.extend_from_slice(&buf[..n]);
        }
        assert!(request.starts_with(b"GET /body HTTP/1.1\r\n"));
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(&body).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let _ = s.read_to_end(&mut request);
    });
    (addr, handle)
}

/// `curl` through plain → tls+zstd+shape → plain, against a local HTTP
/// server: the 1 MiB body arrives byte for byte.
#[test]
fn curl_through_two_tunnels() {
    if !netstrata_core::testing::external_tool("curl", &[]) {
        return;
    }
    let data = body(1024 * 1024);
    let (http, server) = http_server(data.clone());
    let (far, near) = tunnel_pair(http, Some(4_000_000));
    let out = std::env::temp_dir().join(format!("netstrata-curl-{}.bin", std::process::id()));
    let status = Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "30", "-o"])
        .arg(&out)
        .arg(format!("http://{}/body", near.local_addr()))
        .status()
        .unwrap();
    assert!(status.success(), "curl: {status}");
    let got = std::fs::read(&out).unwrap();
    let _ = std::fs::remove_file(&out);
    assert!(got == data, "body differs ({} bytes)", got.len());
    server.join().unwrap();
    near.stop().unwrap();
    far.stop().unwrap();
}

/// A client that stops reading until the tunnel's window and the sockets'
/// buffers are full, then reads everything: the tunnel has no timer to
/// look again, so the stream resumes only because draining the client side
/// wakes the target side. Every byte arrives, in order.
#[test]
fn a_slow_reader_gets_every_byte_once_it_reads_again() {
    // Well beyond the window plus what loopback sockets buffer.
    let data = body(24 * 1024 * 1024);
    let target = sending_target(data.clone());
    let tunnel = plain_tunnel(target.addr);
    let mut client = client_of(&tunnel, 20);
    let mut got = vec![0; 1000];
    client.read_exact(&mut got).unwrap();
    let mut stalled_at = 0;
    for _ in 0..3 {
        // Full: the tunnel has stopped reading from the target, which
        // wrote more since the last time it was.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let written = target.written.load(Ordering::Acquire);
            if written > stalled_at && zero_window_toward(target.addr) {
                stalled_at = written;
                break;
            }
            assert!(Instant::now() < deadline, "the tunnel never filled up");
            thread::yield_now();
        }
        let mut chunk = vec![0; 4 * 1024 * 1024];
        client.read_exact(&mut chunk).unwrap();
        got.extend_from_slice(&chunk);
    }
    client.read_to_end(&mut got).unwrap();
    assert!(got == data, "body differs ({} bytes)", got.len());
    client.shutdown(Shutdown::Write).unwrap();
    target.thread.join().unwrap();
    tunnel.stop().unwrap();
}

/// The target resets its connection: the tunnel aborts the client's, which
/// ends at once instead of waiting for bytes that will not come.
#[test]
fn a_reset_target_aborts_the_client_side() {
    let target = TcpListener::bind(any_port()).unwrap();
    let target_addr = target.local_addr().unwrap();
    let server = thread::spawn(move || {
        let (s, _) = target.accept().unwrap();
        // Closing with received bytes unread makes the kernel send a reset.
        let mut buf = [0; 1];
        assert_eq!(s.peek(&mut buf).unwrap(), 1, "no bytes came through");
        drop(s);
    });
    let tunnel = plain_tunnel(target_addr);
    let mut client = client_of(&tunnel, 10);
    client.write_all(b"hello").unwrap();
    server.join().unwrap();
    assert_closed(&mut client);
    tunnel.stop().unwrap();
}
