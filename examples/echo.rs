//! Echo server and client, both on the reactor (the mio event loop): the
//! smallest program that serves many connections.
//!
//! ```text
//! cargo run --example echo --features reactor                        # both, on loopback
//! cargo run --example echo --features reactor -- server 127.0.0.1:7000
//! cargo run --example echo --features reactor -- client 127.0.0.1:7000 hello world
//! ```
//!
//! With no arguments it starts a server on a free loopback port, connects a
//! client that sends a few messages, prints each echo with its round trip,
//! and stops. `server ADDR` serves until Ctrl-C; `client ADDR [MSG...]`
//! talks to any server of the default wire profile (4-byte big-endian
//! lengths), `netstrata echo-server` included, and `netstrata bench` can
//! load this server.
//!
//! What to look at: a [`Handler`] per connection, built by the server for
//! each accept (`Echo`) or handed to [`EventLoop::connect`] (`Client`);
//! `Context::send` queues, and everything sent in one loop turn leaves in
//! one write.

use std::cell::Cell;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use netstrata::frame::LengthDelimited;
use netstrata::reactor::{
    CloseReason, Context, EventLoop, Handler, LoopConfig, Sent, Server, ServerConfig,
};
use netstrata::{Connection, ConnectionStats, Stack};

/// No layers: frames straight onto TCP. Any stack works the same way.
type Plain = Stack<()>;

fn connection() -> Connection<Plain, LengthDelimited> {
    Connection::new(Stack::new(()), LengthDelimited::new())
}

/// Server side: sends every message back.
struct Echo {
    peer: SocketAddr,
}

impl Handler for Echo {
    fn on_open(&mut self, _: &mut Context<'_>) {
        println!("server: {} connected", self.peer);
    }

    fn on_message(&mut self, cx: &mut Context<'_>, msg: Bytes) {
        match cx.send(&msg) {
            // The peer sends faster than it reads its echoes: read no more
            // of it until the queue has drained (`on_writable`).
            Ok(Sent::HighWatermark) => cx.pause_reading(),
            Ok(_) => {}
            // Only past the send buffer, which pausing keeps us below.
            Err(_) => cx.abort(),
        }
    }

    fn on_writable(&mut self, cx: &mut Context<'_>) {
        cx.resume_reading();
    }

    fn on_close(&mut self, reason: &CloseReason, stats: &ConnectionStats) {
        println!(
            "server: {} gone ({reason:?}): {} messages echoed, {} bytes in, {} out",
            self.peer, stats.messages_out, stats.wire_in, stats.wire_out
        );
    }
}

/// Client side: sends its messages, checks each echo, then closes.
struct Client {
    /// Messages sent and not yet echoed, with when they left.
    waiting: VecDeque<(Bytes, Instant)>,
    to_send: Vec<Bytes>,
    /// Set when the connection ends: whether every echo came back.
    outcome: Rc<Cell<Option<bool>>>,
}

impl Handler for Client {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        println!("client: connected to {}", cx.peer_addr());
        for msg in self.to_send.drain(..) {
            // A handful of small messages stays far below the watermark.
            let _ = cx.send(&msg);
            self.waiting.push_back((msg, cx.now()));
        }
    }

    fn on_message(&mut self, cx: &mut Context<'_>, msg: Bytes) {
        let Some((sent, at)) = self.waiting.pop_front() else {
            println!("client: unexpected message {msg:?}");
            return cx.abort();
        };
        if msg != sent {
            println!("client: echo {msg:?} differs from {sent:?}");
            return cx.abort();
        }
        // Loop time (taken once per turn), so echoes of one turn share it.
        let rtt = cx.now().saturating_duration_since(at);
        println!(
            "client: echo {:?} after {} µs",
            String::from_utf8_lossy(&msg),
            rtt.as_micros()
        );
        if self.waiting.is_empty() {
            cx.close();
        }
    }

    fn on_close(&mut self, reason: &CloseReason, stats: &ConnectionStats) {
        let ok = matches!(reason, CloseReason::Clean) && self.waiting.is_empty();
        println!(
            "client: closed ({reason:?}): {} sent, {} echoed",
            stats.messages_out, stats.messages_in
        );
        self.outcome.set(Some(ok));
    }
}

/// Connects, sends `messages`, waits for every echo and the clean close.
fn run_client(addr: SocketAddr, messages: Vec<Bytes>) -> Result<(), Box<dyn std::error::Error>> {
    let mut event_loop = EventLoop::new(LoopConfig::new())?;
    let outcome = Rc::default();
    let client = Client {
        waiting: VecDeque::new(),
        to_send: messages,
        outcome: Rc::clone(&outcome),
    };
    event_loop.connect(addr, connection(), client)?;
    // Embedding the loop: turn it until the one connection is gone.
    let deadline = Instant::now() + Duration::from_secs(10);
    while event_loop.connections() > 0 && Instant::now() < deadline {
        event_loop.turn(Some(Duration::from_millis(100)))?;
    }
    match outcome.get() {
        Some(true) => Ok(()),
        Some(false) => Err("the exchange failed".into()),
        None => Err("no answer within 10 s".into()),
    }
}

fn serve(addr: SocketAddr) -> std::io::Result<Server> {
    // One loop is plenty here; the default is one per core.
    let config = ServerConfig::new().with_threads(1);
    let server = Server::bind(addr, config, connection, |peer| Echo { peer })?;
    println!("server: listening on {}", server.local_addr());
    Ok(server)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let words = |from: usize| -> Vec<Bytes> {
        let given: Vec<Bytes> = args[from..]
            .iter()
            .map(|s| Bytes::from(s.clone()))
            .collect();
        if given.is_empty() {
            ["hello", "from", "the", "reactor"]
                .map(Bytes::from)
                .to_vec()
        } else {
            given
        }
    };
    match args.first().map(String::as_str) {
        None => {
            let server = serve("127.0.0.1:0".parse()?)?;
            let result = run_client(server.local_addr(), words(0));
            // Graceful: close what is open, in order, within a second.
            server.shutdown(Duration::from_secs(1))?;
            result
        }
        Some("server") => {
            let addr = args.get(1).ok_or("server ADDR")?.parse()?;
            serve(addr)?.join()?;
            Ok(())
        }
        Some("client") => {
            let addr = args.get(1).ok_or("client ADDR [MSG...]")?.parse()?;
            run_client(addr, words(2))
        }
        Some(other) => {
            Err(format!("unknown mode {other:?}: use server ADDR or client ADDR").into())
        }
    }
}
