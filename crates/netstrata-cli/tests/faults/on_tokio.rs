//! A cell on tokio: both ends are netstrata-tokio `ConnectionStream`s over
//! tokio `TcpStream`s, the server an echo with a read timeout (the
//! application's idle timeout: tokio's streams have none of their own).

use std::io;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use netstrata_cli::fault::{FaultConfig, FaultProxy};
use netstrata_core::{DynStack, Error};
use netstrata_tokio::{ConnectionStream, StackError};
use tokio::net::{TcpListener, TcpStream};

use crate::stacks::{self, Side, StackKind};
use crate::{COUNT, End, IDLE_TIMEOUT, Observed, message};

/// The error's end: the stack's typed error inside the `io::Error`, or the
/// socket's.
fn end(e: &io::Error) -> End {
    let stack = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<StackError>());
    match stack.map(StackError::error) {
        Some(Error::Truncated { layer, .. }) => End::Truncated(layer),
        Some(Error::PeerMisbehaved { layer, .. }) => End::Peer(layer),
        Some(Error::Io(inner)) if inner.kind() == io::ErrorKind::ConnectionReset => End::Reset,
        Some(other) => End::Other(other.to_string()),
        None if e.kind() == io::ErrorKind::ConnectionReset => End::Reset,
        None => End::Other(e.to_string()),
    }
}

fn stream(
    tcp: TcpStream,
    kind: StackKind,
    side: Side,
    shaped: bool,
) -> ConnectionStream<TcpStream, DynStack, stacks::Framing> {
    ConnectionStream::new(
        tcp,
        DynStack::new(stacks::layers(kind, side, shaped)),
        stacks::framing(kind),
    )
}

/// Echoes until the peer's end, an error or `IDLE_TIMEOUT` without a
/// message; returns how it ended and how many messages came.
async fn echo(listener: TcpListener, kind: StackKind, shaped: bool) -> (End, usize) {
    let (tcp, _) = listener.accept().await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let mut conn = stream(tcp, kind, Side::Server, shaped);
    let mut got = 0;
    loop {
        match tokio::time::timeout(IDLE_TIMEOUT, conn.next()).await {
            // Dropped without an orderly end, as the reactor's idle close.
            Err(_) => return (End::Idle, got),
            Ok(None) => {
                return match conn.close().await {
                    Ok(()) => (End::Clean, got),
                    Err(e) => (end(&e), got),
                };
            }
            Ok(Some(Err(e))) => return (end(&e), got),
            Ok(Some(Ok(msg))) => {
                got += 1;
                if let Err(e) = conn.send(msg).await {
                    return (end(&e), got);
                }
            }
        }
    }
}

/// Sends the messages one at a time, each after the last one's echo;
/// returns the echoes and how the connection ended.
async fn client(addr: std::net::SocketAddr, kind: StackKind, shaped: bool) -> (Vec<Bytes>, End) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let mut conn = stream(tcp, kind, Side::Client, shaped);
    let mut received = Vec::new();
    for i in 0..COUNT {
        if let Err(e) = conn.send(Bytes::from(message(i))).await {
            return (received, end(&e));
        }
        match conn.next().await {
            Some(Ok(msg)) => received.push(msg),
            Some(Err(e)) => return (received, end(&e)),
            None => return (received, End::Clean),
        }
    }
    if let Err(e) = conn.close().await {
        return (received, end(&e));
    }
    match conn.next().await {
        None => (received, End::Clean),
        Some(Err(e)) => (received, end(&e)),
        Some(Ok(_)) => (received, End::Other("a message after the last echo".into())),
    }
}

/// Runs one exchange of `kind` through a fault proxy with `faults`.
pub fn exchange(kind: StackKind, shaped: bool, faults: FaultConfig) -> Observed {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (received, client_end, (server_end, server_got), proxy) = runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let localhost = "127.0.0.1:0".parse().unwrap();
        let proxy = FaultProxy::start(localhost, listener.local_addr().unwrap(), faults).unwrap();
        let server = tokio::spawn(echo(listener, kind, shaped));
        let limit = Duration::from_secs(20);
        let (received, client_end) =
            tokio::time::timeout(limit, client(proxy.local_addr(), kind, shaped))
                .await
                .expect("the client never ended");
        let server = tokio::time::timeout(limit, server)
            .await
            .expect("the server's connection never ended")
            .unwrap();
        (received, client_end, server, proxy)
    });
    let record = proxy.wait_finished(1, Duration::from_secs(20)).pop();
    Observed {
        received,
        client: client_end,
        server: server_end,
        server_got,
        proxy: record.expect("the proxy's connection never ended"),
    }
}
