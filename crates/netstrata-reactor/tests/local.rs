//! What a handler reaches of its own loop: pausing and resuming reads,
//! connecting out, sending to another connection of the loop, boxed
//! handlers, and what became of a send.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::sync::{Mutex, mpsc};
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use netstrata_core::{Blocking, Connection, ConnectionStats, Stack};
use netstrata_frame::LengthDelimited;
use netstrata_reactor::{
    CloseReason, ConnId, Context, EventLoop, Handle, Handler, LoopConfig, Sent, Server,
    ServerConfig,
};

type Plain = Stack<()>;
type Conn = Connection<Plain, LengthDelimited>;

fn plain() -> Conn {
    Connection::new(Stack::new(()), LengthDelimited::new())
}

fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn client(addr: SocketAddr) -> Blocking<TcpStream, Plain, LengthDelimited> {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    Blocking::new(stream, plain())
}

/// Runs a loop of `Box<dyn Handler>` on its own thread, listening with
/// `make` for each accepted connection's handler.
fn boxed_loop(
    config: LoopConfig,
    make: impl Fn(SocketAddr) -> Box<dyn Handler> + Send + Sync + 'static,
) -> (SocketAddr, Handle, thread::JoinHandle<io::Result<()>>) {
    let (tx, rx) = mpsc::channel();
    let thread = thread::spawn(move || {
        let mut event_loop: EventLoop<Plain, LengthDelimited, Box<dyn Handler>> =
            EventLoop::new(config)?;
        let listener = std::net::TcpListener::bind(localhost())?;
        let addr = listener.local_addr()?;
        event_loop.listen(listener, plain, make)?;
        tx.send((addr, event_loop.handle())).unwrap();
        event_loop.run()
    });
    let (addr, handle) = rx.recv().unwrap();
    (addr, handle, thread)
}

/// Echoes every message.
struct Echo;

impl Handler for Echo {
    fn on_message(&mut self, cx: &mut Context<'_>, msg: Bytes) {
        cx.send(&msg).unwrap();
    }
}

/// The client side of a proxy on the loop: connects to the backend from
/// `on_open` and passes messages across with loop-local sends, pausing its
/// reads while the backend's queue is above the high watermark.
struct Front {
    backend: SocketAddr,
    back: Option<ConnId>,
    closed: mpsc::Sender<String>,
}

/// The backend side: passes replies back to its front, and resumes the
/// front's reads once its own queue has drained.
struct Back {
    front: ConnId,
}

impl Handler for Front {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        let back: Box<dyn Handler> = Box::new(Back { front: cx.id() });
        match cx.connect(self.backend, plain(), back) {
            Ok(id) => self.back = Some(id),
            Err(e) => panic!("connect from a handler: {e}"),
        }
    }

    fn on_message(&mut self, cx: &mut Context<'_>, msg: Bytes) {
        let back = self.back.expect("connected in on_open");
        let sent = cx.local(back).map(|mut b| b.send(&msg));
        match sent {
            Some(Ok(Sent::Queued)) => {}
            // Not connected yet or slow: its stack holds the message;
            // stop reading until it drains.
            Some(Ok(Sent::HighWatermark)) => cx.pause_reading(),
            other => panic!("backend gone: {other:?}"),
        }
    }

    fn on_peer_closed(&mut self, cx: &mut Context<'_>) {
        if let Some(mut back) = self.back.and_then(|id| cx.local(id)) {
            back.close();
        }
    }

    fn on_close(&mut self, reason: &CloseReason, _: &ConnectionStats) {
        let _ = self.closed.send(format!("front: {reason:?}"));
    }
}

impl Handler for Back {
    fn on_message(&mut self, cx: &mut Context<'_>, msg: Bytes) {
        if let Some(mut front) = cx.local(self.front) {
            front.send(&msg).unwrap();
        }
    }

    fn on_writable(&mut self, cx: &mut Context<'_>) {
        if let Some(mut front) = cx.local(self.front) {
            front.resume_reading();
        }
    }

    fn on_peer_closed(&mut self, cx: &mut Context<'_>) {
        if let Some(mut front) = cx.local(self.front) {
            front.close();
        }
    }
}

/// A proxy written with the handler API alone: one loop of boxed handlers,
/// an outgoing connection opened from `on_open`, messages passed between
/// the two connections without a `Handle`, reads paused while the other
/// side is above its high watermark (low marks, so that it happens). Every
/// message makes the round trip in order, and half-closes pass through.
#[test]
fn a_proxy_on_one_loop_with_local_sends_and_paused_reads() {
    let backend = Server::bind(
        localhost(),
        ServerConfig::new().with_threads(1),
        plain,
        |_| Echo,
    )
    .unwrap();
    let backend_addr = backend.local_addr();
    let (tx, closed) = mpsc::channel();
    let tx = Mutex::new(tx);
    let config = LoopConfig::new().with_watermarks(1024, 4096);
    let (addr, handle, thread) = boxed_loop(config, move |_| {
        Box::new(Front {
            backend: backend_addr,
            back: None,
            closed: tx.lock().unwrap().clone(),
        })
    });

    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let msgs: Vec<Vec<u8>> = (0..2000u32)
        .map(|i| [&i.to_be_bytes()[..], &[i as u8; 500][..]].concat())
        .collect();
    // Written from another thread while this one reads: a million bytes
    // each way would fill both directions' socket buffers otherwise.
    let writer = {
        let stream = stream.try_clone().unwrap();
        let msgs = msgs.clone();
        thread::spawn(move || {
            let mut out = Blocking::new(stream, plain());
            for m in &msgs {
                out.send(m).unwrap();
            }
            out.shutdown().unwrap();
        })
    };
    let mut conn = Blocking::new(stream, plain());
    for (i, m) in msgs.iter().enumerate() {
        let got = conn
            .recv()
            .unwrap()
            .unwrap_or_else(|| panic!("ended at {i}"));
        assert_eq!(&got[..], &m[..], "message {i}");
    }
    assert!(conn.recv().unwrap().is_none(), "the half-close came back");
    writer.join().unwrap();
    assert_eq!(
        closed.recv_timeout(Duration::from_secs(10)).unwrap(),
        "front: Clean"
    );
    handle.stop().unwrap();
    thread.join().unwrap().unwrap();
    backend.stop().unwrap();
}

/// Pauses on the first message and resumes from a timer, reporting how
/// many messages it had when the timer fired.
struct Pauser {
    got: Vec<Bytes>,
    report: mpsc::Sender<usize>,
}

impl Handler for Pauser {
    fn on_message(&mut self, cx: &mut Context<'_>, msg: Bytes) {
        if self.got.is_empty() {
            cx.pause_reading();
            cx.set_timer(Duration::from_millis(20), 0);
        }
        self.got.push(msg.clone());
        cx.send(&msg).unwrap();
    }

    fn on_timer(&mut self, cx: &mut Context<'_>, _: u64) {
        let _ = self.report.send(self.got.len());
        cx.resume_reading();
    }
}

/// A paused connection gets no message, even with more already read and
/// decoded; once resumed, the rest arrive in order.
#[test]
fn a_paused_connection_gets_no_message_until_resumed() {
    let (tx, reports) = mpsc::channel();
    let tx = Mutex::new(tx);
    let (addr, handle, thread) = boxed_loop(LoopConfig::new(), move |_| {
        Box::new(Pauser {
            got: Vec::new(),
            report: tx.lock().unwrap().clone(),
        })
    });
    let mut conn = client(addr);
    for i in 0..10u8 {
        conn.send(&[i; 10]).unwrap();
    }
    conn.flush().unwrap();
    assert_eq!(reports.recv_timeout(Duration::from_secs(10)).unwrap(), 1);
    for i in 0..10u8 {
        assert_eq!(&conn.recv().unwrap().unwrap()[..], [i; 10]);
    }
    handle.stop().unwrap();
    thread.join().unwrap().unwrap();
}

/// Reports what became of sends after its own close, and of a connect
/// with types the loop does not drive.
struct Misuse {
    report: mpsc::Sender<String>,
}

impl Handler for Misuse {
    fn on_message(&mut self, cx: &mut Context<'_>, _: Bytes) {
        let first = cx.send(b"one").unwrap();
        cx.close();
        let after = cx.send(b"two").unwrap();
        // A plain `Echo` is not the loop's handler type, `Box<dyn Handler>`.
        let wrong = cx.connect(cx.peer_addr(), plain(), Echo).unwrap_err();
        let _ = self
            .report
            .send(format!("{first:?} {after:?} {:?}", wrong.kind()));
    }
}

#[test]
fn sends_after_close_say_closed_and_a_connect_of_other_types_is_refused() {
    let (tx, reports) = mpsc::channel();
    let tx = Mutex::new(tx);
    let (addr, handle, thread) = boxed_loop(LoopConfig::new(), move |_| {
        Box::new(Misuse {
            report: tx.lock().unwrap().clone(),
        })
    });
    let mut conn = client(addr);
    conn.send(b"go").unwrap();
    conn.flush().unwrap();
    assert_eq!(
        reports.recv_timeout(Duration::from_secs(10)).unwrap(),
        "Queued Closed InvalidInput"
    );
    assert_eq!(&conn.recv().unwrap().unwrap()[..], b"one");
    assert!(
        conn.recv().unwrap().is_none(),
        "closed after the first send"
    );
    handle.stop().unwrap();
    thread.join().unwrap().unwrap();
}
