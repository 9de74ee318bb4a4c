//! STARTTLS: a plain-text hello, then TLS inserted into the live
//! connection on both sides, then the same line protocol, encrypted.
//!
//! ```text
//! cargo run --example starttls --features dev-certs
//! ```
//!
//! An SMTP-like exchange between a server thread and a client over TCP
//! loopback, with the blocking driver and a `DynStack` that starts empty:
//!
//! ```text
//!   S: 220 ready            C: EHLO example       S: 250 STARTTLS
//!   C: STARTTLS             S: 220 go ahead       ── both insert a Tls layer ──
//!   C: MAIL secret-1 ...    S: 250 ok ...         (TLS 1.3, lines inside records)
//! ```
//!
//! The certificates come from a throw-away development CA
//! (`netstrata::tls::dev_certs`, the facade's `dev-certs` feature);
//! the client verifies the server's chain for `localhost` for real. The
//! client's transport is tapped: the run checks that its hello crossed the
//! wire in clear and its mail did not, and prints each side's layers.
//!
//! What to look at: `Connection::insert_layer` at the bottom of the stack
//! (toward the wire), done by the server right after it flushes its last
//! plain line, and by the client right after it reads it; nothing sent or
//! received is lost or reordered across the switch (see "Stacks" in
//! `docs/architecture.md` for where a layer may be inserted).

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use netstrata::frame::Lines;
use netstrata::tls::dev_certs::DevCa;
use netstrata::tls::rustls::{ClientConfig, ServerConfig};
use netstrata::tls::{ClientOptions, ServerOptions, Tls};
use netstrata::{Blocking, Connection, DynStack, Transport};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn plain() -> Connection<DynStack, Lines> {
    Connection::new(DynStack::new(vec![]), Lines::new())
}

/// Reads the next line, failing if the peer ended or sent something else.
fn expect<T: Transport>(conn: &mut Blocking<T, DynStack, Lines>, prefix: &str) -> Result<String> {
    let line = conn.recv()?.ok_or("the peer hung up")?;
    let line = String::from_utf8(line.to_vec())?;
    if !line.starts_with(prefix) {
        return Err(format!("expected {prefix:?}, got {line:?}").into());
    }
    Ok(line)
}

/// Inserts TLS below every layer there is: it sees only wire bytes.
fn insert_tls<T: Transport>(conn: &mut Blocking<T, DynStack, Lines>, tls: Tls) -> Result<()> {
    let conn = conn.connection_mut();
    let bottom = conn.stack().len();
    conn.insert_layer(bottom, Box::new(tls))?;
    Ok(())
}

fn serve(stream: TcpStream, config: Arc<ServerConfig>) -> Result<()> {
    let mut conn = Blocking::new(stream, plain());
    conn.send(b"220 ready")?;
    let hello = expect(&mut conn, "EHLO ")?;
    println!("server: < {hello}");
    conn.send(b"250 STARTTLS")?;
    expect(&mut conn, "STARTTLS")?;
    conn.send(b"220 go ahead")?;
    // The answer leaves plain; everything after goes through TLS.
    conn.flush()?;
    insert_tls(&mut conn, Tls::server(config)?)?;
    // `recv` runs the handshake as the client's records arrive.
    while let Some(line) = conn.recv()? {
        let line = String::from_utf8_lossy(&line);
        println!("server: < {line} (over TLS)");
        conn.send(format!("250 ok: {} bytes", line.len()).as_bytes())?;
    }
    conn.shutdown()?;
    print_layers("server", &conn);
    Ok(())
}

/// A TCP stream that keeps a copy of every byte written: what an observer
/// on the network sees from the client.
struct Tap {
    stream: TcpStream,
    written: Vec<u8>,
}

impl Read for Tap {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.read(buf)
    }
}

impl Write for Tap {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.stream.write(buf)?;
        self.written.extend_from_slice(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

impl Transport for Tap {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.stream.set_read_timeout(timeout)
    }
    fn shutdown_write(&mut self) -> io::Result<()> {
        self.stream.shutdown(std::net::Shutdown::Write)
    }
}

fn client(stream: TcpStream, config: Arc<ClientConfig>, mails: &[&str]) -> Result<Vec<u8>> {
    let tap = Tap {
        stream,
        written: Vec::new(),
    };
    let mut conn = Blocking::new(tap, plain());
    println!("client: > {}", expect(&mut conn, "220 ")?);
    conn.send(b"EHLO example")?;
    expect(&mut conn, "250 STARTTLS")?;
    conn.send(b"STARTTLS")?;
    expect(&mut conn, "220 go ahead")?;
    insert_tls(&mut conn, Tls::client(config, "localhost")?)?;
    conn.handshake()?;
    println!("client: TLS handshake done, server certificate verified for localhost");
    for mail in mails {
        conn.send(mail.as_bytes())?;
    }
    conn.flush()?;
    for _ in mails {
        println!("client: > {} (over TLS)", expect(&mut conn, "250 ok")?);
    }
    // close_notify, then FIN; the server answers with its own.
    conn.shutdown()?;
    if conn.recv()?.is_some() {
        return Err("a line after the server's end".into());
    }
    print_layers("client", &conn);
    let (tap, _) = conn.into_parts();
    Ok(tap.written)
}

fn print_layers<T: Transport>(side: &str, conn: &Blocking<T, DynStack, Lines>) {
    let stats = conn.connection().stats();
    for layer in stats.layers {
        let b = layer.bytes;
        println!(
            "{side}: layer {}: {} plaintext bytes out became {} on the wire; {} in became {}",
            layer.name, b.outbound_in, b.outbound_out, b.inbound_in, b.inbound_out
        );
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn main() -> Result<()> {
    let ca = DevCa::new()?;
    let server_config = ServerOptions::new()
        .with_identity(ca.issue(&["localhost"])?.identity())
        .build()?;
    let client_config = ClientOptions::new(ca.roots()).build()?;

    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let server = thread::spawn(move || serve(listener.accept()?.0, server_config));

    let mails = [
        "MAIL secret-1: the launch code is 0000",
        "MAIL secret-2: no, really",
    ];
    let stream = TcpStream::connect(addr)?;
    let written = client(stream, client_config, &mails)?;
    server.join().map_err(|_| "server thread panicked")??;

    // What an eavesdropper saw from the client.
    let hello_in_clear = contains(&written, b"EHLO example");
    let mail_in_clear = mails.iter().any(|m| contains(&written, m.as_bytes()));
    println!(
        "on the wire from the client: {} bytes; hello in clear: {hello_in_clear}; \
         mail in clear: {mail_in_clear}",
        written.len()
    );
    if !hello_in_clear || mail_in_clear {
        return Err("the upgrade did not happen where it should".into());
    }
    Ok(())
}
