//! Every close is logged with its connection, peer and reason, and a flood
//! of failing connections gets at most one warning a second per reason.
//! (A test binary of its own: it installs the process's log subscriber.)

#[path = "common/log.rs"]
mod log;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::Bytes;
use netstrata_core::{Blocking, Connection, Stack};
use netstrata_frame::LengthDelimited;
use netstrata_reactor::{CloseKind, Context, Handler, Server, ServerConfig};

use log::Captured;

struct Echo;

impl Handler for Echo {
    fn on_message(&mut self, cx: &mut Context<'_>, msg: Bytes) {
        cx.send(&msg).unwrap();
    }
}

fn plain() -> Connection<Stack<()>, LengthDelimited> {
    Connection::new(Stack::new(()), LengthDelimited::new())
}

/// Connects, sends a length header announcing 4 GiB (above the codec's
/// 8 MiB limit), and reads until the server closes. Returns our address.
fn refused_client(addr: SocketAddr) -> SocketAddr {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let _ = stream.write_all(&[0xFF; 4]);
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    stream.local_addr().unwrap()
}

#[test]
fn closes_are_logged_with_id_and_peer_and_warnings_are_rate_limited() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter("netstrata_reactor=debug")
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let server = Server::bind(
        "127.0.0.1:0".parse().unwrap(),
        ServerConfig::new().with_threads(2),
        plain,
        |_| Echo,
    )
    .unwrap();
    let addr = server.local_addr();
    let closes = server.close_counts();

    // A clean exchange.
    let stream = TcpStream::connect(addr).unwrap();
    let clean_peer = stream.local_addr().unwrap();
    let mut client = Blocking::new(stream, plain());
    client.send(b"hello").unwrap();
    client.flush().unwrap();
    assert_eq!(client.recv().unwrap().as_deref(), Some(&b"hello"[..]));
    client.shutdown().unwrap();
    assert!(client.recv().unwrap().is_none());

    // 1,000 clients that each send an impossible length header.
    const REFUSED: usize = 1000;
    let started = Instant::now();
    let first_refused = refused_client(addr);
    for _ in 1..REFUSED {
        refused_client(addr);
    }
    let elapsed = started.elapsed();
    server.shutdown(Duration::from_secs(10)).unwrap();

    let kind = CloseKind::PeerMisbehaved("length-delimited");
    assert_eq!(closes.get(kind), REFUSED as u64, "{:?}", closes.snapshot());
    assert_eq!(closes.get(CloseKind::Clean), 1, "{:?}", closes.snapshot());

    let lines = captured.lines();
    let clean = lines
        .iter()
        .find(|l| l.contains(&format!("from {clean_peer} closed: clean")))
        .unwrap_or_else(|| panic!("no line for the clean close in {lines:#?}"));
    assert!(
        clean.contains("DEBUG") && clean.contains("conn "),
        "{clean}"
    );

    let reason = "closed: length-delimited: peer misbehaved:";
    let debug: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("DEBUG") && l.contains(reason))
        .collect();
    assert_eq!(
        debug.len(),
        REFUSED,
        "one debug line per refused connection"
    );
    assert!(
        debug
            .iter()
            .any(|l| l.contains(&format!("from {first_refused} closed:"))),
        "the peer is named"
    );
    assert!(
        debug
            .iter()
            .all(|l| l.contains("conn ") && l.contains("layer=\"length-delimited\""))
    );

    // At most one warning per second of the flood (the first one at once).
    let warns = lines
        .iter()
        .filter(|l| l.contains("WARN") && l.contains(reason))
        .count();
    let allowed = 1 + elapsed.as_secs() as usize;
    assert!(
        (1..=allowed).contains(&warns),
        "{warns} warnings for {REFUSED} refusals in {elapsed:?}"
    );
}
