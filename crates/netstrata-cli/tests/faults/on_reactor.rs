//! A cell on the reactor: a netstrata-reactor echo server, the proxy, and
//! a client on an event loop of the test's own thread that sends the
//! numbered messages one at a time, each after the echo of the last.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use netstrata_cli::fault::{FaultConfig, FaultProxy};
use netstrata_core::{ConnectionStats, DynStack};
use netstrata_reactor::{
    CloseKind, CloseReason, Context, EventLoop, Handler, LoopConfig, Server, ServerConfig,
};

use crate::stacks::{self, Framing, Side, StackKind};
use crate::{COUNT, End, IDLE_TIMEOUT, Observed, message};

/// Echoes, counts, and reports its close.
struct Echo {
    got: usize,
    closed: mpsc::Sender<(End, usize)>,
}

impl Handler for Echo {
    fn on_message(&mut self, cx: &mut Context<'_>, msg: Bytes) {
        self.got += 1;
        if cx.send(&msg).is_err() {
            cx.abort();
        }
    }

    fn on_close(&mut self, reason: &CloseReason, _: &ConnectionStats) {
        let _ = self.closed.send((end(reason.kind()), self.got));
    }
}

/// What the client saw.
#[derive(Default)]
struct Log {
    received: Vec<Bytes>,
    end: Option<End>,
}

/// Sends message `i` once the echo of `i - 1` is back; closes after the last.
struct Client(Rc<RefCell<Log>>);

impl Handler for Client {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        let _ = cx.send(&message(0));
    }

    fn on_message(&mut self, cx: &mut Context<'_>, msg: Bytes) {
        let mut log = self.0.borrow_mut();
        log.received.push(msg);
        match log.received.len() {
            COUNT => cx.close(),
            next => {
                let _ = cx.send(&message(next));
            }
        }
    }

    fn on_close(&mut self, reason: &CloseReason, _: &ConnectionStats) {
        self.0.borrow_mut().end = Some(end(reason.kind()));
    }
}

/// The reactor's close kinds as the matrix's ends.
fn end(kind: CloseKind) -> End {
    match kind {
        CloseKind::Clean => End::Clean,
        CloseKind::Truncated(layer) => End::Truncated(layer),
        CloseKind::PeerMisbehaved(layer) => End::Peer(layer),
        CloseKind::Io(std::io::ErrorKind::ConnectionReset) => End::Reset,
        CloseKind::IdleTimeout => End::Idle,
        other => End::Other(other.to_string()),
    }
}

/// Runs one exchange of `kind` through a fault proxy with `faults`.
pub fn exchange(kind: StackKind, shaped: bool, faults: FaultConfig) -> Observed {
    let (closed, server_end) = mpsc::channel();
    let config = LoopConfig::new().with_idle_timeout(IDLE_TIMEOUT);
    let server = Server::bind(
        "127.0.0.1:0".parse().unwrap(),
        ServerConfig::new().with_threads(1).with_loop(config),
        move || stacks::connection(kind, Side::Server, shaped),
        move |_| Echo {
            got: 0,
            closed: closed.clone(),
        },
    )
    .unwrap();
    let localhost = "127.0.0.1:0".parse().unwrap();
    let proxy = FaultProxy::start(localhost, server.local_addr(), faults).unwrap();

    let log = Rc::new(RefCell::new(Log::default()));
    let mut client: EventLoop<DynStack, Framing, Client> =
        EventLoop::new(LoopConfig::new()).unwrap();
    client
        .connect(
            proxy.local_addr(),
            stacks::connection(kind, Side::Client, shaped),
            Client(Rc::clone(&log)),
        )
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while log.borrow().end.is_none() {
        assert!(Instant::now() < deadline, "the client never ended");
        client.turn(Some(Duration::from_millis(100))).unwrap();
    }
    let (server_end, server_got) = server_end
        .recv_timeout(Duration::from_secs(20))
        .expect("the server's connection never ended");
    server.stop().unwrap();
    let record = proxy.wait_finished(1, Duration::from_secs(20)).pop();
    let log = log.take();
    Observed {
        received: log.received,
        client: log.end.unwrap(),
        server: server_end,
        server_got,
        proxy: record.expect("the proxy's connection never ended"),
    }
}
