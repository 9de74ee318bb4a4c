//! The io_uring driver: buffers running out hold the peer back and lose
//! nothing, and a run of the suite with `NETSTRATA_DRIVER=uring` really
//! runs on io_uring. (The rest of the suite runs on both drivers: CI runs
//! it once with `NETSTRATA_DRIVER=uring`.)

// The server tests' helpers; these tests use a few of them.
#[allow(dead_code)]
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use netstrata_core::ConnectionStats;
use netstrata_reactor::{CloseReason, Context, Driver, EventLoop, Handler, LoopConfig};

use common::plain;

struct Echo;

impl Handler for Echo {
    fn on_message(&mut self, cx: &mut Context<'_>, msg: Bytes) {
        let _ = cx.send(&msg);
    }
}

/// Whether io_uring works here; outside CI a test without it says why and
/// passes, under CI it fails.
fn uring_available() -> bool {
    let event_loop: EventLoop<common::Plain, netstrata_frame::LengthDelimited, Echo> =
        EventLoop::new(LoopConfig::new().with_driver(Driver::Uring)).unwrap();
    if event_loop.driver() == Driver::Uring {
        return true;
    }
    netstrata_core::testing::cannot_run(
        "io_uring is unavailable (the loop's warning says why)",
        "CI machines have it",
    );
    false
}

const FRAMES: usize = 300;
const FRAME: usize = 1000;

/// Frame `i` of client `c`: its bytes say whose and which it is.
fn frame(c: usize, i: usize) -> Vec<u8> {
    (0..FRAME).map(|k| (c * 31 + i * 7 + k) as u8).collect()
}

/// Sends `FRAMES` frames on one thread while reading their echoes on this
/// one, and checks each byte.
fn echo_all(addr: SocketAddr, c: usize) {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let sending = thread::spawn(move || {
        for i in 0..FRAMES {
            writer.write_all(&(FRAME as u32).to_be_bytes()).unwrap();
            writer.write_all(&frame(c, i)).unwrap();
        }
    });
    let mut reader = stream;
    let mut got = vec![0; 4 + FRAME];
    for i in 0..FRAMES {
        reader.read_exact(&mut got).unwrap();
        assert_eq!(
            got[..4],
            (FRAME as u32).to_be_bytes(),
            "client {c} frame {i}"
        );
        assert!(got[4..] == frame(c, i), "client {c} frame {i} differs");
    }
    sending.join().unwrap();
}

#[test]
fn buffers_running_out_hold_the_peers_back_and_lose_nothing() {
    if !uring_available() {
        return;
    }
    // Two buffers of 512 bytes for eight connections sending 300 KB each:
    // a turn's receives take every buffer many times over.
    let config = LoopConfig::new()
        .with_driver(Driver::Uring)
        .with_uring_buffers(2, 512);
    let mut event_loop = EventLoop::new(config).unwrap();
    assert_eq!(event_loop.driver(), Driver::Uring);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    event_loop.listen(listener, plain, |_| Echo).unwrap();
    let handle = event_loop.handle();
    let serving = thread::spawn(move || {
        event_loop.run().unwrap();
        event_loop.uring_buffer_exhaustions()
    });
    let clients: Vec<_> = (0..8)
        .map(|c| thread::spawn(move || echo_all(addr, c)))
        .collect();
    for client in clients {
        client.join().unwrap();
    }
    handle.stop().unwrap();
    let exhausted = serving.join().unwrap();
    assert!(
        exhausted > 0,
        "the buffers never ran out: the test tested nothing"
    );
}

#[test]
fn the_driver_named_in_the_environment_is_the_one_the_loops_run_on() {
    // Guards the suite's second run: a silent fallback would test epoll twice.
    let named = Driver::from_env();
    let event_loop: EventLoop<common::Plain, netstrata_frame::LengthDelimited, Echo> =
        EventLoop::new(LoopConfig::new()).unwrap();
    match named {
        Driver::Uring if uring_available() => assert_eq!(event_loop.driver(), Driver::Uring),
        Driver::Uring => {}
        _ => assert_eq!(event_loop.driver(), Driver::Epoll),
    }
}

/// Sends 300 KB when it opens, and ticks every 50 ms of the loop's clock
/// (an application timer, which is not activity): `true` per tick, `false`
/// once the connection has closed.
struct Flood {
    ticks: mpsc::Sender<bool>,
}

const FLOOD: usize = 300_000;
const TICK: Duration = Duration::from_millis(50);

impl Handler for Flood {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        let _ = cx.send(&vec![b'x'; FLOOD]);
        cx.set_timer(TICK, 0);
    }
    fn on_message(&mut self, _: &mut Context<'_>, _: Bytes) {}
    fn on_timer(&mut self, cx: &mut Context<'_>, _: u64) {
        let _ = self.ticks.send(true);
        cx.set_timer(TICK, 0);
    }
    fn on_close(&mut self, _: &CloseReason, _: &ConnectionStats) {
        // No more ticks: the reader goes on to the end of the stream.
        let _ = self.ticks.send(false);
    }
}

#[test]
fn a_slow_reader_is_not_idle_and_gets_everything() {
    // On either driver (CI runs the suite on both): bytes leaving in part,
    // 16 KiB a tick of the server's, are activity, and the 400 ms idle
    // timeout must not cut the transfer.
    let config = LoopConfig::new()
        .with_idle_timeout(Duration::from_millis(400))
        .with_socket(netstrata_reactor::SocketOptions::new().with_send_buffer(32 * 1024));
    let mut event_loop = EventLoop::new(config).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (ticks, ticked) = mpsc::channel();
    event_loop
        .listen(listener, plain, move |_| Flood {
            ticks: ticks.clone(),
        })
        .unwrap();
    let handle = event_loop.handle();
    let serving = thread::spawn(move || event_loop.run());
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(16 * 1024).unwrap();
    socket.connect(&addr.into()).unwrap();
    let mut stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (mut got, mut buf, mut open) = (0, vec![0; 16 * 1024], true);
    while got < 4 + FLOOD {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => panic!("after {got} bytes: {e}"),
        }
        // The slow reader this test is about: one read per server tick.
        if open {
            open = ticked
                .recv_timeout(Duration::from_secs(10))
                .expect("the server's timer stopped");
        }
    }
    handle.stop().unwrap();
    serving.join().unwrap().unwrap();
    assert_eq!(got, 4 + FLOOD, "the idle timeout cut the transfer");
}
