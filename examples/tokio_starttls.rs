//! STARTTLS on tokio: a line protocol that switches to TLS between two
//! lines, client and server both tokio tasks.
//!
//! ```text
//! cargo run --example tokio_starttls --features tokio,dev-certs
//! ```
//!
//! The same SMTP-like exchange as the `starttls` example, over TCP
//! loopback, with each end a `netstrata::tokio::ConnectionStream` — a
//! `Stream` + `Sink` of lines over a `DynStack` that starts empty:
//!
//! ```text
//!   S: 220 ready            C: EHLO example       S: 250 STARTTLS
//!   C: STARTTLS             S: 220 go ahead       ── both insert a Tls layer ──
//!   C: MAIL secret-1 ...    S: 250 ok ...         (TLS 1.3, lines inside records)
//! ```
//!
//! The certificates come from a throw-away development CA (the facade's
//! `dev-certs` feature); the client verifies the server's chain for
//! `localhost`. Each end prints its layers at the end: none before the
//! switch, `tls` after it, with the bytes it carried.
//!
//! What to look at: `insert_layer(0, ..)` on both ends, the server's right
//! after its `220 go ahead` has been sent (and flushed: `send` flushes),
//! the client's right after it read that line; nothing sent or received
//! is lost or reordered across the switch.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use netstrata::DynStack;
use netstrata::frame::Lines;
use netstrata::tls::dev_certs::DevCa;
use netstrata::tls::rustls::{ClientConfig, ServerConfig};
use netstrata::tls::{ClientOptions, ServerOptions, Tls};
use netstrata::tokio::ConnectionStream;
use tokio::net::{TcpListener, TcpStream};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;
type LineConn = ConnectionStream<TcpStream, DynStack, Lines>;

fn plain(stream: TcpStream) -> LineConn {
    ConnectionStream::new(stream, DynStack::new(vec![]), Lines::new())
}

async fn say(conn: &mut LineConn, line: &str) -> Result<()> {
    Ok(conn.send(Bytes::from(line.to_owned())).await?)
}

/// Reads the next line, failing if the peer ended or sent something else.
async fn expect(conn: &mut LineConn, prefix: &str) -> Result<String> {
    let line = conn.next().await.ok_or("the peer hung up")??;
    let line = String::from_utf8(line.to_vec())?;
    if !line.starts_with(prefix) {
        return Err(format!("expected {prefix:?}, got {line:?}").into());
    }
    Ok(line)
}

async fn serve(stream: TcpStream, config: Arc<ServerConfig>) -> Result<()> {
    let mut conn = plain(stream);
    say(&mut conn, "220 ready").await?;
    println!("server: < {}", expect(&mut conn, "EHLO ").await?);
    say(&mut conn, "250 STARTTLS").await?;
    expect(&mut conn, "STARTTLS").await?;
    say(&mut conn, "220 go ahead").await?;
    // The answer has left in clear; everything after goes through TLS,
    // whose handshake runs as the client's records are read.
    conn.insert_layer(0, Box::new(Tls::server(config)?))?;
    while let Some(line) = conn.next().await {
        let line = line?;
        println!("server: < {} (over TLS)", String::from_utf8_lossy(&line));
        say(&mut conn, &format!("250 ok: {} bytes", line.len())).await?;
    }
    conn.close().await?;
    for layer in conn.connection().stats().layers {
        println!(
            "server: layer {}: {} bytes in from the wire, {} out to it",
            layer.name, layer.bytes.inbound_in, layer.bytes.outbound_out
        );
    }
    Ok(())
}

async fn client(stream: TcpStream, config: Arc<ClientConfig>, mails: &[&str]) -> Result<()> {
    let mut conn = plain(stream);
    println!("client: > {}", expect(&mut conn, "220 ").await?);
    say(&mut conn, "EHLO example").await?;
    expect(&mut conn, "250 STARTTLS").await?;
    say(&mut conn, "STARTTLS").await?;
    expect(&mut conn, "220 go ahead").await?;
    conn.insert_layer(0, Box::new(Tls::client(config, "localhost")?))?;
    for mail in mails {
        conn.feed(Bytes::from(mail.to_string())).await?;
    }
    SinkExt::flush(&mut conn).await?;
    for _ in mails {
        println!(
            "client: > {} (over TLS)",
            expect(&mut conn, "250 ok").await?
        );
    }
    let stats = conn.connection().stats();
    let names: Vec<_> = stats.layers.iter().map(|layer| layer.name).collect();
    println!("client: layers now {names:?}");
    conn.close().await?;
    if conn.next().await.is_some() {
        return Err("a line after the server's end".into());
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let ca = DevCa::new()?;
    let leaf = ca.issue(&["localhost"])?;
    let server_config = ServerOptions::new()
        .with_identity(leaf.identity())
        .build()?;
    let client_config = ClientOptions::new(ca.roots()).build()?;

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await?;
        serve(stream, server_config).await
    });
    let mails = ["MAIL secret-1", "MAIL secret-2", "MAIL secret-3"];
    client(TcpStream::connect(addr).await?, client_config, &mails).await?;
    server.await??;
    println!(
        "both ends closed cleanly; {} mails sent over TLS",
        mails.len()
    );
    Ok(())
}
