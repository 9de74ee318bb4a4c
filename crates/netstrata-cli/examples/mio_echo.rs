//! The limit for the echo comparison: a minimal hand-written mio echo that
//! writes back every byte it reads (for length-delimited frames, echoing the
//! bytes verbatim is echoing the frames), one read and one write per ready
//! socket. One thread by default; with a thread count, that many threads,
//! each with its own `SO_REUSEPORT` listener on the address, as the
//! netstrata server's loops have (the limit for that many event loops).
//!
//! `cargo run --release -p netstrata-cli --example mio_echo -- 127.0.0.1:7002 [THREADS]`

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::thread;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use netstrata_reactor::SocketOptions;

const LISTENER: Token = Token(usize::MAX);

struct Conn {
    stream: TcpStream,
    pending: Vec<u8>,
}

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:7002".into());
    let threads: usize = match args.next() {
        Some(n) => n.parse().map_err(io::Error::other)?,
        None => 1,
    };
    let addr: SocketAddr = addr.parse().map_err(io::Error::other)?;
    let listeners = (0..threads.max(1))
        .map(|_| reuse_port_listener(addr))
        .collect::<io::Result<Vec<_>>>()?;
    println!("mio echo listening on {}", listeners[0].local_addr()?);
    let mut listeners = listeners.into_iter();
    let first = listeners.next().expect("one listener at least");
    let workers: Vec<_> = listeners
        .map(|listener| thread::spawn(move || serve(listener)))
        .collect();
    serve(first)?;
    for worker in workers {
        worker
            .join()
            .map_err(|_| io::Error::other("worker panicked"))??;
    }
    Ok(())
}

/// A non-blocking listener with `SO_REUSEPORT`, bound as netstrata's loops
/// bind theirs (the listener setup only; the echo itself is mio alone).
fn reuse_port_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    Ok(TcpListener::from_std(SocketOptions::new().listener(addr)?))
}

/// One event loop: accepts from `listener` and echoes what it accepted.
fn serve(mut listener: TcpListener) -> io::Result<()> {
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut events = Events::with_capacity(1024);
    let mut conns: HashMap<usize, Conn> = HashMap::new();
    let mut next = 0;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        poll.poll(&mut events, None)?;
        for event in &events {
            if event.token() == LISTENER {
                while let Ok((mut stream, _)) = listener.accept() {
                    stream.set_nodelay(true)?;
                    poll.registry().register(
                        &mut stream,
                        Token(next),
                        Interest::READABLE | Interest::WRITABLE,
                    )?;
                    conns.insert(
                        next,
                        Conn {
                            stream,
                            pending: Vec::new(),
                        },
                    );
                    next += 1;
                }
                continue;
            }
            let id = event.token().0;
            let Some(conn) = conns.get_mut(&id) else {
                continue;
            };
            let mut closed = false;
            loop {
                match conn.stream.read(&mut buf) {
                    Ok(0) => {
                        closed = true;
                        break;
                    }
                    Ok(n) => conn.pending.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        closed = true;
                        break;
                    }
                }
            }
            while !conn.pending.is_empty() {
                match conn.stream.write(&conn.pending) {
                    Ok(n) => {
                        conn.pending.drain(..n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        closed = true;
                        break;
                    }
                }
            }
            if closed && let Some(mut conn) = conns.remove(&id) {
                let _ = conn.stream.flush();
                let _ = poll.registry().deregister(&mut conn.stream);
            }
        }
    }
}
