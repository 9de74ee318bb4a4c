//! A chat server: line framing, and every line broadcast to every other
//! connected client. The classic real-time example, on the reactor.
//!
//! ```text
//! cargo run --example chat --features reactor                       # demo: three clients talk
//! cargo run --example chat --features reactor -- server 127.0.0.1:7000
//! nc 127.0.0.1 7000                                                 # in two or more terminals
//! ```
//!
//! The protocol is text lines (`\n` or `\r\n`, at most 1 KiB): the first
//! line a client sends is its name, every later line goes to everyone
//! else as `name: line`, `/quit` leaves. Joins and leaves are announced
//! to all.
//!
//! With no arguments, alice, bob and carol connect (blocking clients on
//! threads), wait until all three are in, say one line each, read the
//! others' lines and leave; then each one's transcript is printed. The run
//! fails if anyone misses a line.
//!
//! What to look at: the room, a registry of connections shared by the
//! handlers of one event loop. A handler answers its own connection with
//! `Context::send` and reaches the others through the loop's `Handle` and
//! their `ConnId`s.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use netstrata::frame::Lines;
use netstrata::reactor::{
    CloseReason, ConnId, Context, EventLoop, Handle, HandleError, Handler, LoopConfig,
};
use netstrata::{Blocking, Connection, ConnectionStats, Stack};

type Plain = Stack<()>;

/// The longest line a client may send; a longer one ends its connection
/// with a typed error instead of growing a buffer.
const MAX_LINE: usize = 1024;
const MAX_NAME: usize = 32;

fn connection() -> Connection<Plain, Lines> {
    Connection::new(Stack::new(()), Lines::new().with_max_length(MAX_LINE))
}

/// Everyone in the chat, by connection. All handlers run on the loop's one
/// thread; the mutex is only there because the handler factory given to
/// `EventLoop::listen` must be `Send + Sync`.
struct Room {
    members: Mutex<HashMap<ConnId, String>>,
    /// The loop's handle: how one connection's handler sends to another.
    event_loop: Handle,
}

impl Room {
    /// Sends `line` to every member but `except`; returns how many got it.
    fn broadcast(&self, except: Option<ConnId>, line: &str) -> usize {
        let line = Bytes::copy_from_slice(line.as_bytes());
        let members = self.members.lock().expect("room lock");
        let mut sent = 0;
        for &id in members.keys().filter(|&&id| Some(id) != except) {
            // The loop hands it to the member's handler on its next turn,
            // which sends it; a member too slow to take it (send buffer
            // full) is disconnected rather than shown a chat with gaps.
            match self.event_loop.send(id, line.clone()) {
                Ok(()) => sent += 1,
                // The loop has more queued than it may hold (16 MiB by
                // default; the room outpaces it): this member would miss
                // the line, so it is dropped too (aborts have a budget of
                // their own, which the lines cannot use up).
                Err(HandleError::Full { .. }) => {
                    let _ = self.event_loop.abort(id);
                }
                // The loop has stopped: no one can be reached anyway.
                Err(_) => {}
            }
        }
        sent
    }
}

/// One client's connection.
struct Member {
    room: Arc<Room>,
    peer: SocketAddr,
    /// Set once the client has picked its name.
    joined: Option<(ConnId, String)>,
}

impl Member {
    fn join(&mut self, cx: &mut Context<'_>, line: &[u8]) {
        let name = match std::str::from_utf8(line).map(str::trim) {
            Ok(name) if !name.is_empty() && name.len() <= MAX_NAME && !name.starts_with('*') => {
                name
            }
            _ => {
                let _ = cx.send(format!("pick a name of 1 to {MAX_NAME} characters").as_bytes());
                return;
            }
        };
        let online = {
            let mut members = self.room.members.lock().expect("room lock");
            if members.values().any(|n| n == name) {
                drop(members);
                let _ = cx.send(format!("{name} is taken; pick another").as_bytes());
                return;
            }
            members.insert(cx.id(), name.to_owned());
            members.len()
        };
        println!("server: {name} joined from {}", self.peer);
        self.room
            .broadcast(None, &format!("* {name} joined ({online} online)"));
        self.joined = Some((cx.id(), name.to_owned()));
    }
}

impl Handler for Member {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        let _ = cx.send(b"welcome to netstrata chat; your name?");
    }

    fn on_message(&mut self, cx: &mut Context<'_>, line: Bytes) {
        let Some((_, name)) = &self.joined else {
            return self.join(cx, &line);
        };
        if &line[..] == b"/quit" {
            // Orderly: the peer reads what is queued, then our end.
            return cx.close();
        }
        let text = String::from_utf8_lossy(&line);
        self.room
            .broadcast(Some(cx.id()), &format!("{name}: {text}"));
    }

    fn on_close(&mut self, reason: &CloseReason, _: &ConnectionStats) {
        let Some((id, name)) = self.joined.take() else {
            return;
        };
        let online = {
            let mut members = self.room.members.lock().expect("room lock");
            members.remove(&id);
            members.len()
        };
        println!("server: {name} left ({reason:?})");
        self.room
            .broadcast(None, &format!("* {name} left ({online} online)"));
    }
}

/// Runs the chat on its own event loop thread; returns its address and
/// handle once it listens.
fn start_server(
    addr: SocketAddr,
) -> std::io::Result<(SocketAddr, Handle, thread::JoinHandle<std::io::Result<()>>)> {
    let (tx, rx) = mpsc::sync_channel(1);
    let thread = thread::spawn(move || {
        let mut event_loop = EventLoop::new(LoopConfig::new())?;
        let room = Arc::new(Room {
            members: Mutex::default(),
            event_loop: event_loop.handle(),
        });
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        event_loop.listen(listener, connection, move |peer| Member {
            room: Arc::clone(&room),
            peer,
            joined: None,
        })?;
        let _ = tx.send((addr, event_loop.handle()));
        event_loop.run()
    });
    match rx.recv() {
        Ok((addr, handle)) => Ok((addr, handle, thread)),
        Err(_) => Err(thread
            .join()
            .map_err(|_| std::io::Error::other("chat loop panicked"))?
            .err()
            .unwrap_or_else(|| std::io::Error::other("chat loop ended early"))),
    }
}

/// A scripted client: joins as `name`, waits for `everyone` to be online,
/// says `line`, reads until it has seen a line from each other member, and
/// leaves. Returns everything it received.
fn scripted_client(
    addr: SocketAddr,
    name: &str,
    line: &str,
    everyone: &[&str],
) -> Result<Vec<String>, String> {
    let fail = |e: netstrata::Error| format!("{name}: {e}");
    let stream = TcpStream::connect(addr).map_err(|e| format!("{name}: {e}"))?;
    // A missed line would otherwise block the demo forever.
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut client = Blocking::new(stream, connection());
    let mut transcript = Vec::new();
    let mut next = |client: &mut Blocking<TcpStream, Plain, Lines>| -> Result<String, String> {
        let msg = client.recv().map_err(fail)?;
        let msg = msg.ok_or_else(|| format!("{name}: the server ended the chat"))?;
        let text = String::from_utf8_lossy(&msg).into_owned();
        transcript.push(text.clone());
        Ok(text)
    };
    next(&mut client)?; // welcome
    client.send(name.as_bytes()).map_err(fail)?;
    let all_in = format!("({} online)", everyone.len());
    while !next(&mut client)?.ends_with(&all_in) {}
    client.send(line.as_bytes()).map_err(fail)?;
    client.flush().map_err(fail)?;
    let mut unheard: Vec<String> = everyone
        .iter()
        .filter(|&&n| n != name)
        .map(|n| format!("{n}: "))
        .collect();
    while !unheard.is_empty() {
        let text = next(&mut client)?;
        unheard.retain(|prefix| !text.starts_with(prefix.as_str()));
    }
    client.send(b"/quit").map_err(fail)?;
    // Whatever is still queued for us (others leaving), then the server's
    // clean end.
    while let Some(msg) = client.recv().map_err(fail)? {
        transcript.push(String::from_utf8_lossy(&msg).into_owned());
    }
    client.shutdown().map_err(fail)?;
    Ok(transcript)
}

fn demo() -> Result<(), Box<dyn std::error::Error>> {
    let (addr, handle, server) = start_server("127.0.0.1:0".parse()?)?;
    println!("server: chat on {addr}");
    let script = [
        ("alice", "hi all, is the build green?"),
        ("bob", "green here"),
        ("carol", "same, shipping it"),
    ];
    let everyone: Vec<&'static str> = script.iter().map(|(n, _)| *n).collect();
    let clients: Vec<_> = script
        .iter()
        .map(|&(name, line)| {
            let everyone = everyone.clone();
            thread::spawn(move || (name, scripted_client(addr, name, line, &everyone)))
        })
        .collect();
    let results: Vec<_> = clients.into_iter().map(thread::JoinHandle::join).collect();
    handle.shutdown(Duration::from_secs(1))?;
    server.join().map_err(|_| "chat loop panicked")??;
    let mut failed = false;
    for result in results {
        let (name, result) = result.map_err(|_| "client thread panicked")?;
        match result {
            Ok(lines) => {
                println!("\n{name} saw:");
                for line in lines {
                    println!("  {line}");
                }
            }
            Err(e) => {
                println!("\n{e}");
                failed = true;
            }
        }
    }
    if failed {
        return Err("a client missed a line".into());
    }
    println!("\nevery client saw every other client's line");
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None => demo(),
        Some("server") => {
            let addr = args.get(1).ok_or("server ADDR")?.parse()?;
            let (addr, _handle, server) = start_server(addr)?;
            println!(
                "chat on {addr}: connect with `nc {} {}`",
                addr.ip(),
                addr.port()
            );
            server.join().map_err(|_| "chat loop panicked")??;
            Ok(())
        }
        Some(other) => Err(format!("unknown mode {other:?}: use `server ADDR`").into()),
    }
}
