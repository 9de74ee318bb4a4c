//! Messages sent to a connection from other threads through a `Handle`:
//! none goes missing from a stream that goes on.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use netstrata_core::{Blocking, Connection, ConnectionConfig, ConnectionStats, Error, Stack};
use netstrata_frame::LengthDelimited;
use netstrata_reactor::{
    CloseReason, ConnId, Context, HandleError, Handler, LoopConfig, Server, ServerConfig,
    SocketOptions,
};

type Plain = Stack<()>;

const MESSAGE: usize = 16 * 1024;
const SEND_BUFFER: usize = 256 * 1024;

fn connection() -> Connection<Plain, LengthDelimited> {
    Connection::with_config(
        Stack::new(()),
        LengthDelimited::new(),
        ConnectionConfig::new().with_send_buffer(SEND_BUFFER),
    )
}

/// Reports its connection's id and how it ended; with `queue`, keeps what
/// the connection cannot take and sends it from `on_writable` instead of
/// letting the default end the connection.
struct Pushed {
    ids: mpsc::Sender<ConnId>,
    closed: mpsc::Sender<Closed>,
    queue: Option<VecDeque<Bytes>>,
    /// How many messages had to wait in `queue`.
    waited: usize,
    /// Told when the first message has to wait.
    first_wait: mpsc::Sender<()>,
}

impl Pushed {
    fn drain(&mut self, cx: &mut Context<'_>) {
        let Some(queue) = &mut self.queue else {
            return;
        };
        while let Some(msg) = queue.front() {
            match cx.send(msg) {
                Ok(sent) => {
                    queue.pop_front();
                    if !sent.keep_sending() {
                        return;
                    }
                }
                Err(Error::SendBufferFull { .. }) => return,
                Err(e) => panic!("{e}"),
            }
        }
    }
}

impl Handler for Pushed {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        let _ = self.ids.send(cx.id());
    }

    fn on_message(&mut self, _: &mut Context<'_>, _: Bytes) {}

    fn on_handle_send(&mut self, cx: &mut Context<'_>, msg: Bytes) -> Result<(), Error> {
        let Some(queue) = &mut self.queue else {
            return cx.send(&msg).map(drop);
        };
        queue.push_back(msg);
        if queue.len() > 1 {
            if self.waited == 0 {
                let _ = self.first_wait.send(());
            }
            self.waited += 1;
        }
        self.drain(cx);
        Ok(())
    }

    fn on_writable(&mut self, cx: &mut Context<'_>) {
        self.drain(cx);
    }

    fn on_close(&mut self, reason: &CloseReason, _: &ConnectionStats) {
        let _ = self.closed.send(Closed {
            reason: reason.clone(),
            waited: self.waited,
            unsent: self.queue.as_ref().map_or(0, VecDeque::len),
        });
    }
}

/// How a connection ended, and what its handler's queue saw.
#[derive(Debug)]
struct Closed {
    reason: CloseReason,
    waited: usize,
    unsent: usize,
}

/// A one-loop server on loopback with `config`, each connection's handler
/// made by `handler`.
fn one_loop<H: Handler>(
    config: LoopConfig,
    handler: impl Fn() -> H + Send + Sync + 'static,
) -> Server {
    let one = ServerConfig::new().with_threads(1).with_loop(config);
    let addr = "127.0.0.1:0".parse::<SocketAddr>().unwrap();
    Server::bind(addr, one, connection, move |_| handler()).unwrap()
}

/// A framed peer of `server` whose reads give up after 20 s.
fn peer(server: &Server) -> Blocking<TcpStream, Plain, LengthDelimited> {
    let stream = TcpStream::connect(server.local_addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    Blocking::new(stream, connection())
}

/// A one-loop server with small socket buffers, so a peer that does not
/// read fills the connection's send buffer after a few hundred KiB.
struct Pushing {
    server: Server,
    ids: mpsc::Receiver<ConnId>,
    closed: mpsc::Receiver<Closed>,
    first_wait: mpsc::Receiver<()>,
}

fn server(queue: bool) -> Pushing {
    let (ids_tx, ids) = mpsc::channel();
    let (closed_tx, closed) = mpsc::channel();
    let (first_wait_tx, first_wait) = mpsc::channel();
    let config = LoopConfig::new()
        .with_watermarks(64 * 1024, 128 * 1024)
        .with_socket(SocketOptions::new().with_send_buffer(64 * 1024));
    let server = one_loop(config, move || Pushed {
        ids: ids_tx.clone(),
        closed: closed_tx.clone(),
        queue: queue.then(VecDeque::new),
        waited: 0,
        first_wait: first_wait_tx.clone(),
    });
    Pushing {
        server,
        ids,
        closed,
        first_wait,
    }
}

fn numbered(i: u32) -> Bytes {
    let mut msg = vec![0; MESSAGE];
    msg[..4].copy_from_slice(&i.to_be_bytes());
    msg.into()
}

#[test]
fn a_peer_that_does_not_read_gets_a_reset_not_a_stream_with_a_gap() {
    let Pushing {
        server,
        ids,
        closed,
        ..
    } = server(false);
    let mut peer = TcpStream::connect(server.local_addr()).unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let id = ids.recv_timeout(Duration::from_secs(10)).unwrap();
    let handle = server.handles()[0].clone();
    // Push until the connection ends; the peer reads nothing meanwhile.
    // (While the loop's queue is full, only wait for the end.)
    let msg = numbered(0);
    let deadline = Instant::now() + Duration::from_secs(20);
    let reason = loop {
        match handle.send(id, msg.clone()) {
            Ok(()) | Err(HandleError::Full { .. }) => {}
            Err(e) => panic!("{e}"),
        }
        match closed.recv_timeout(Duration::from_micros(200)) {
            Ok(closed) => break closed.reason,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(e) => panic!("{e}"),
        }
        assert!(Instant::now() < deadline, "the connection never ended");
    };
    assert!(
        matches!(
            reason,
            CloseReason::Error(Error::SendBufferFull {
                limit: SEND_BUFFER,
                ..
            })
        ),
        "{reason:?}"
    );
    // What reached the peer's socket before the reset may be read; the
    // stream then ends with a reset, never with a clean end.
    let mut buf = vec![0; 64 * 1024];
    let end = loop {
        match peer.read(&mut buf) {
            Ok(0) => panic!("a clean end after a message was dropped"),
            Ok(_) => {}
            Err(e) => break e.kind(),
        }
    };
    assert_eq!(end, ErrorKind::ConnectionReset);
    server.stop().unwrap();
}

#[test]
fn a_handler_can_queue_what_the_connection_cannot_take() {
    let Pushing {
        server,
        ids,
        closed,
        first_wait,
    } = server(true);
    let mut peer = peer(&server);
    let id = ids.recv_timeout(Duration::from_secs(10)).unwrap();
    let handle = server.handles()[0].clone();
    // 8 MiB pushed at once while the peer does not read: far past the
    // connection's send buffer and the sockets'.
    let total = 512u32;
    for i in 0..total {
        handle.send(id, numbered(i)).unwrap();
    }
    // Not reading until the handler has had to queue one.
    first_wait
        .recv_timeout(Duration::from_secs(10))
        .expect("the handler's queue was never used");
    for i in 0..total {
        let msg = peer.recv().unwrap().expect("a message");
        assert_eq!(msg.len(), MESSAGE);
        assert_eq!(msg[..4], i.to_be_bytes(), "message {i}");
    }
    handle.close(id).unwrap();
    assert!(
        peer.recv().unwrap().is_none(),
        "clean end after all of them"
    );
    peer.shutdown().unwrap();
    let closed = closed.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(matches!(closed.reason, CloseReason::Clean), "{closed:?}");
    assert_eq!(closed.unsent, 0, "{closed:?}");
    assert!(closed.waited > 0, "the handler's queue was never used");
    server.stop().unwrap();
}

/// Blocks its loop in `on_message` until released: a loop that cannot keep
/// up with the threads sending to it.
struct Stalling {
    ids: mpsc::Sender<ConnId>,
    stalled: mpsc::Sender<()>,
    release: Arc<Mutex<mpsc::Receiver<()>>>,
}

impl Handler for Stalling {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        let _ = self.ids.send(cx.id());
    }

    fn on_message(&mut self, _: &mut Context<'_>, _: Bytes) {
        let _ = self.stalled.send(());
        let release = self.release.lock().unwrap();
        let _ = release.recv_timeout(Duration::from_secs(20));
    }
}

#[test]
fn a_loop_that_cannot_keep_up_refuses_commands_and_loses_none_it_took() {
    const LIMIT: usize = 256 * 1024;
    let (ids_tx, ids) = mpsc::channel();
    let (stalled_tx, stalled) = mpsc::channel();
    let (release, release_rx) = mpsc::channel();
    let release_rx = Arc::new(Mutex::new(release_rx));
    let config = LoopConfig::new().with_command_queue(LIMIT);
    let server = one_loop(config, move || Stalling {
        ids: ids_tx.clone(),
        stalled: stalled_tx.clone(),
        release: Arc::clone(&release_rx),
    });
    let mut peer = peer(&server);
    let id = ids.recv_timeout(Duration::from_secs(10)).unwrap();
    let mut other = self::peer(&server);
    let other_id = ids.recv_timeout(Duration::from_secs(10)).unwrap();
    peer.send(b"stall").unwrap();
    peer.flush().unwrap();
    stalled.recv_timeout(Duration::from_secs(10)).unwrap();

    // The loop is stuck in a handler: the queue fills, then refuses.
    let handle = server.handles()[0].clone();
    let mut taken = 0u32;
    let refused = loop {
        match handle.send(id, numbered(taken)) {
            Ok(()) => taken += 1,
            Err(e) => break e,
        }
        assert!(taken < 1000, "the queue took 1000 messages of 16 KiB");
    };
    assert_eq!(refused, HandleError::Full { limit: LIMIT });
    let cost = MESSAGE + 64;
    assert!(taken as usize * cost <= LIMIT + cost, "{taken} taken");
    assert!(taken as usize * cost > LIMIT - cost, "{taken} taken");

    // Aborts have a budget of their own, which the sends did not use: the
    // other connection can still be dropped. Only a flood is refused.
    const ENDING: usize = 65_536;
    let mut aborts = 0;
    let refused = loop {
        match handle.abort(other_id) {
            Ok(()) => aborts += 1,
            Err(e) => break e,
        }
        assert!(aborts <= ENDING, "{aborts} aborts queued");
    };
    assert_eq!(refused, HandleError::Full { limit: ENDING * 64 });
    assert_eq!(aborts, ENDING);
    assert_eq!(
        handle.stop(),
        Err(refused),
        "stop shares the aborts' budget"
    );

    // Once the loop runs again, the queue drains and takes commands again:
    // a send's budget is freed when the loop takes it, so once the last
    // message taken has arrived, the sends' budget is all free.
    release.send(()).unwrap();
    for i in 0..taken {
        let msg = peer.recv().unwrap().expect("a message");
        assert_eq!(msg[..4], i.to_be_bytes(), "message {i}");
    }
    handle.send(id, numbered(taken)).unwrap();
    handle.close(id).unwrap();
    let msg = peer.recv().unwrap().expect("a message");
    assert_eq!(msg[..4], taken.to_be_bytes(), "message {taken}");
    assert!(
        peer.recv().unwrap().is_none(),
        "clean end after all of them"
    );
    // The other connection was dropped with a reset, once.
    assert!(other.recv().is_err(), "a reset, not a clean end");
    peer.shutdown().unwrap();
    server.stop().unwrap();
}

/// Answers each message from a thread of its own, through the handle its
/// context lends: the reply names the message it answers.
struct Deferred;

impl Handler for Deferred {
    fn on_message(&mut self, cx: &mut Context<'_>, msg: Bytes) {
        let (handle, id) = (cx.handle(), cx.id());
        thread::spawn(move || {
            let reply = [b"done: ".as_slice(), &msg].concat();
            handle.send(id, reply.into()).unwrap();
        });
    }
}

#[test]
fn a_handler_answers_from_another_thread_through_its_loops_handle() {
    // Two loops: each connection's ids mean something to its own loop only.
    let two = ServerConfig::new().with_threads(2);
    let addr = "127.0.0.1:0".parse::<SocketAddr>().unwrap();
    let server = Server::bind(addr, two, connection, |_| Deferred).unwrap();
    let mut peers: Vec<_> = (0..8).map(|_| peer(&server)).collect();
    for round in 0..3 {
        for (i, peer) in peers.iter_mut().enumerate() {
            peer.send(format!("job {i}.{round}").as_bytes()).unwrap();
        }
        for (i, peer) in peers.iter_mut().enumerate() {
            let reply = peer.recv().unwrap().expect("a reply");
            assert_eq!(reply, format!("done: job {i}.{round}").as_bytes());
        }
    }
    server.stop().unwrap();
}
