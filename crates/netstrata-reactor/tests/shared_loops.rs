//! `Server::bind_shared`: event loops that the threads take turns to run.

use std::net::TcpStream;
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use netstrata_core::Blocking;
use netstrata_frame::LengthDelimited;
use netstrata_reactor::{CloseReason, ConnId, Context, Handler, LoopConfig, Server, ServerConfig};

mod common;
use common::{Plain, client, pipelined_clients_close_cleanly, plain};

fn exchange(conn: &mut Blocking<TcpStream, Plain, LengthDelimited>, msg: &[u8]) {
    conn.send(msg).unwrap();
    conn.flush().unwrap();
    assert_eq!(&conn.recv().unwrap().unwrap()[..], msg);
}

/// Echoes every message; a message `block` first waits for a go-ahead on
/// `gate`, holding its loop and the thread running it. Reports opens and
/// closes.
struct Echo {
    opened: mpsc::Sender<ConnId>,
    closed: mpsc::Sender<CloseReason>,
    gate: Arc<Mutex<mpsc::Receiver<()>>>,
    blocked: mpsc::Sender<()>,
}

impl Handler for Echo {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        let _ = self.opened.send(cx.id());
    }
    fn on_message(&mut self, cx: &mut Context<'_>, msg: Bytes) {
        if &msg[..] == b"block" {
            self.blocked.send(()).unwrap();
            self.gate.lock().unwrap().recv().unwrap();
        }
        cx.send(&msg).unwrap();
    }
    fn on_close(&mut self, reason: &CloseReason, _: &netstrata_core::ConnectionStats) {
        let _ = self.closed.send(reason.clone());
    }
}

struct Shared {
    server: Server,
    opened: mpsc::Receiver<ConnId>,
    closed: mpsc::Receiver<CloseReason>,
    go: mpsc::Sender<()>,
    blocked: mpsc::Receiver<()>,
}

fn shared_server(config: ServerConfig) -> Shared {
    let (opened_tx, opened) = mpsc::channel();
    let (closed_tx, closed) = mpsc::channel();
    let (go, gate) = mpsc::channel();
    let (blocked_tx, blocked) = mpsc::channel();
    let gate = Arc::new(Mutex::new(gate));
    let senders = Mutex::new((closed_tx, blocked_tx, opened_tx));
    let server = Server::bind_shared("127.0.0.1:0".parse().unwrap(), config, plain, move |_| {
        let senders = senders.lock().unwrap();
        Echo {
            opened: senders.2.clone(),
            closed: senders.0.clone(),
            gate: Arc::clone(&gate),
            blocked: senders.1.clone(),
        }
    })
    .unwrap();
    Shared {
        server,
        opened,
        closed,
        go,
        blocked,
    }
}

#[test]
fn many_connections_pipelined_frames_and_clean_close() {
    let s = shared_server(ServerConfig::new().with_threads(2).with_loops(4));
    pipelined_clients_close_cleanly(s.server.local_addr(), &s.closed);
    assert_eq!(s.server.handles().len(), 4);
    s.server.stop().unwrap();
}

/// The point of sharing: while one thread is held inside a loop (here a
/// handler that blocks), the other thread runs every other loop. With one
/// loop per thread, the connections of the held thread's loop would wait.
#[test]
fn a_held_thread_does_not_hold_up_the_other_loops() {
    let s = shared_server(ServerConfig::new().with_threads(2).with_loops(4));
    let addr = s.server.local_addr();
    let mut conns: Vec<_> = (0..4).map(|_| client(addr)).collect();
    for c in &mut conns {
        exchange(c, b"hello");
    }
    assert_eq!(s.server.connections_per_loop(), [1, 1, 1, 1]);
    let (held, others) = conns.split_first_mut().unwrap();
    held.send(b"block").unwrap();
    held.flush().unwrap();
    s.blocked.recv_timeout(Duration::from_secs(10)).unwrap();
    // More for the held loop: a thread that sees it must leave it to the
    // thread holding it rather than wait for it.
    held.send(b"after").unwrap();
    held.flush().unwrap();
    for round in 0..20u8 {
        for c in others.iter_mut() {
            exchange(c, &[round; 32]);
        }
    }
    s.go.send(()).unwrap();
    assert_eq!(&held.recv().unwrap().unwrap()[..], b"block");
    assert_eq!(&held.recv().unwrap().unwrap()[..], b"after");
    s.server.stop().unwrap();
}

/// Deadlines set during a turn reach the thread waiting in the outer
/// epoll: an idle connection is closed on time with no event to wake it.
#[test]
fn idle_timeout_closes_quiet_connections() {
    let config = ServerConfig::new()
        .with_threads(2)
        .with_loops(3)
        .with_loop(LoopConfig::new().with_idle_timeout(Duration::from_millis(200)));
    let s = shared_server(config);
    let mut conn = client(s.server.local_addr());
    exchange(&mut conn, b"one");
    let reason = s.closed.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(matches!(reason, CloseReason::IdleTimeout), "{reason:?}");
    assert!(
        conn.recv().unwrap().is_none(),
        "the server ended the stream"
    );
    s.server.stop().unwrap();
}

#[test]
fn graceful_shutdown_delivers_in_flight_data_and_ends_every_thread() {
    let s = shared_server(ServerConfig::new().with_threads(2).with_loops(4));
    let mut conns: Vec<_> = (0..4).map(|_| client(s.server.local_addr())).collect();
    for c in &mut conns {
        common::numbers_in_flight(c);
    }
    let server = s.server;
    let stopper = thread::spawn(move || server.shutdown(Duration::from_secs(5)));
    for c in &mut conns {
        common::drained(c);
    }
    stopper.join().unwrap().unwrap();
    for _ in 0..4 {
        let reason = s.closed.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(matches!(reason, CloseReason::Clean), "{reason:?}");
    }
}

#[test]
fn cross_thread_send_through_a_loop_s_handle() {
    let s = shared_server(ServerConfig::new().with_threads(1).with_loops(2));
    let mut conn = client(s.server.local_addr());
    exchange(&mut conn, b"first");
    let id = s.opened.recv_timeout(Duration::from_secs(10)).unwrap();
    let loops = s.server.connections_per_loop();
    let k = loops.iter().position(|&n| n == 1).unwrap();
    let handle = s.server.handles()[k].clone();
    thread::spawn(move || handle.send(id, Bytes::from_static(b"pushed")).unwrap())
        .join()
        .unwrap();
    assert_eq!(&conn.recv().unwrap().unwrap()[..], b"pushed");
    s.server.stop().unwrap();
}
