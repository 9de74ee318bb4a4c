//! The limit for the echo comparisons: a minimal hand-written mio echo that
//! writes back every byte it reads (for length-delimited frames, echoing the
//! bytes verbatim is echoing the frames), reading until the socket is empty
//! and then writing once. One thread by default; with a thread count, that
//! many threads, each with its own `SO_REUSEPORT` listener on the address,
//! as the netstrata server's loops have (the limit for that many event
//! loops).
//!
//! With `--tls CERT KEY` the bytes pass through rustls (its buffered
//! `ServerConnection`, configured as `tokio_tls_echo` configures it), and
//! with `--zstd LEVEL` through zstd's streaming API (the zstd crate's raw
//! decoder and a `CCtx`, with netstrata's default window, table and block
//! sizes; one zstd frame each way, each batch of reads compressed and
//! flushed in one call). Either way it is the
//! library alone with nothing between it and mio: no framing, no layers.
//!
//! `cargo run --release -p netstrata-cli --example mio_echo -- 127.0.0.1:7002 [THREADS] [--tls CERT.pem KEY.pem | --zstd LEVEL]`

#[path = "common/tls.rs"]
mod tls;

use std::collections::HashMap;
use std::io::{self, BufRead, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use netstrata_reactor::SocketOptions;
use netstrata_zstd::ZstdConfig;
use zstd::stream::raw::{CParameter, DParameter, Decoder, InBuffer, Operation, OutBuffer};
use zstd::zstd_safe::CCtx;
use zstd::zstd_safe::zstd_sys::ZSTD_EndDirective;

const LISTENER: Token = Token(usize::MAX);

/// What the echo does between the socket and the bytes it echoes.
#[derive(Clone)]
enum Mode {
    Plain,
    Tls(Arc<rustls::ServerConfig>),
    Zstd(i32),
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr = args.first().map_or("127.0.0.1:7002", String::as_str);
    let threads: usize = match args.get(1).filter(|a| !a.starts_with("--")) {
        Some(n) => n.parse().map_err(io::Error::other)?,
        None => 1,
    };
    let flag = args.iter().position(|a| a.starts_with("--"));
    let mode = match flag.map(|i| (args[i].as_str(), &args[i + 1..])) {
        None => Mode::Plain,
        Some(("--tls", [cert, key, ..])) => Mode::Tls(Arc::new(tls::server_config(cert, key)?)),
        Some(("--zstd", [level, ..])) => Mode::Zstd(level.parse().map_err(io::Error::other)?),
        Some(_) => {
            return Err(io::Error::other(
                "usage: mio_echo ADDR [THREADS] [--tls CERT.pem KEY.pem | --zstd LEVEL]",
            ));
        }
    };
    let addr: SocketAddr = addr.parse().map_err(io::Error::other)?;
    let listeners = (0..threads.max(1))
        .map(|_| reuse_port_listener(addr))
        .collect::<io::Result<Vec<_>>>()?;
    println!("mio echo listening on {}", listeners[0].local_addr()?);
    let mut listeners = listeners.into_iter();
    let first = listeners.next().expect("one listener at least");
    let workers: Vec<_> = listeners
        .map(|listener| {
            let mode = mode.clone();
            thread::spawn(move || serve(listener, mode))
        })
        .collect();
    serve(first, mode)?;
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

/// One connection's echo.
trait Echo {
    /// One read from the socket into `buf` (which the echo may use);
    /// returns what the socket gave, 0 at its end.
    fn read(&mut self, stream: &mut TcpStream, buf: &mut [u8]) -> io::Result<usize>;
    /// Writes what the reads so far owe the peer, as far as the socket
    /// takes it; the rest waits for the next event.
    fn write(&mut self, stream: &mut TcpStream) -> io::Result<()>;
    /// The peer ended its stream: the next write ends ours in order (TLS
    /// close_notify, the end of the zstd frame).
    fn end(&mut self) {}
    /// Whether everything owed to the peer was written.
    fn is_done(&self) -> bool;
}

/// Bytes back as they came.
#[derive(Default)]
struct Plain {
    pending: Vec<u8>,
}

impl Echo for Plain {
    fn read(&mut self, stream: &mut TcpStream, buf: &mut [u8]) -> io::Result<usize> {
        let n = stream.read(buf)?;
        self.pending.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn write(&mut self, stream: &mut TcpStream) -> io::Result<()> {
        write_out(stream, &mut self.pending)
    }

    fn is_done(&self) -> bool {
        self.pending.is_empty()
    }
}

/// Writes the front of `pending` until it is empty or the socket is full.
fn write_out(stream: &mut TcpStream, pending: &mut Vec<u8>) -> io::Result<()> {
    while !pending.is_empty() {
        match stream.write(pending) {
            Ok(n) => {
                pending.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Plaintext back through the same TLS connection: records are read from
/// the socket and written to it by rustls itself, and a batch of reads
/// goes back as one write (a few records).
struct Tls {
    conn: rustls::ServerConnection,
    plain: Vec<u8>,
}

impl Echo for Tls {
    fn read(&mut self, stream: &mut TcpStream, _: &mut [u8]) -> io::Result<usize> {
        let n = self.conn.read_tls(stream)?;
        let state = self.conn.process_new_packets().map_err(io::Error::other)?;
        if state.peer_has_closed() {
            self.conn.send_close_notify();
        }
        let mut reader = self.conn.reader();
        loop {
            match reader.fill_buf() {
                Ok([]) => break,
                Ok(bytes) => {
                    let len = bytes.len();
                    self.plain.extend_from_slice(bytes);
                    reader.consume(len);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    fn write(&mut self, stream: &mut TcpStream) -> io::Result<()> {
        if !self.plain.is_empty() {
            self.conn.writer().write_all(&self.plain)?;
            self.plain.clear();
        }
        while self.conn.wants_write() {
            match self.conn.write_tls(stream) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn end(&mut self) {
        self.conn.send_close_notify();
    }

    fn is_done(&self) -> bool {
        !self.conn.wants_write()
    }
}

/// Decompressed bytes back, compressed again: one zstd frame each way,
/// flushed (end of block) after each batch of reads, the batch handed to
/// zstd in one `ZSTD_compressStream2` call as netstrata's layer does.
struct Zstd {
    decoder: Decoder<'static>,
    encoder: CCtx<'static>,
    plain: Vec<u8>,
    pending: Vec<u8>,
    ending: bool,
}

impl Zstd {
    fn new(level: i32) -> io::Result<Self> {
        let config = ZstdConfig::new().with_level(level);
        let mut encoder = CCtx::create();
        for param in [
            CParameter::CompressionLevel(level),
            CParameter::WindowLog(config.window_log()),
            CParameter::HashLog(config.hash_log()),
            CParameter::ChainLog(config.chain_log()),
            CParameter::MaxBlockSize(config.block_size()),
            CParameter::ChecksumFlag(config.checksum()),
        ] {
            encoder.set_parameter(param).map_err(zstd_error)?;
        }
        let mut decoder = Decoder::new()?;
        decoder.set_parameter(DParameter::WindowLogMax(config.max_window_log()))?;
        Ok(Self {
            decoder,
            encoder,
            plain: Vec::new(),
            pending: Vec::new(),
            ending: false,
        })
    }
}

/// Compresses `data` into `pending`, then flushes or ends the frame (`op`)
/// completely.
fn compress(
    encoder: &mut CCtx<'_>,
    pending: &mut Vec<u8>,
    data: &[u8],
    op: ZSTD_EndDirective,
) -> io::Result<()> {
    let mut input = InBuffer::around(data);
    loop {
        pending.reserve(zstd::zstd_safe::compress_bound(data.len() - input.pos) + 64);
        let len = pending.len();
        let mut output = OutBuffer::around_pos(pending, len);
        let left = encoder
            .compress_stream2(&mut output, &mut input, op)
            .map_err(zstd_error)?;
        if left == 0 && input.pos == data.len() {
            return Ok(());
        }
    }
}

fn zstd_error(code: usize) -> io::Error {
    io::Error::other(zstd::zstd_safe::get_error_name(code))
}

impl Echo for Zstd {
    fn read(&mut self, stream: &mut TcpStream, buf: &mut [u8]) -> io::Result<usize> {
        let n = stream.read(buf)?;
        let mut input = InBuffer::around(&buf[..n]);
        loop {
            // zstd writes into the spare capacity: nothing is zeroed.
            self.plain.reserve(64 * 1024);
            let len = self.plain.len();
            let mut output = OutBuffer::around_pos(&mut self.plain, len);
            self.decoder.run(&mut input, &mut output)?;
            let full = output.pos() == output.capacity();
            if input.pos == n && !full {
                return Ok(n);
            }
        }
    }

    fn write(&mut self, stream: &mut TcpStream) -> io::Result<()> {
        if !self.plain.is_empty() {
            let op = ZSTD_EndDirective::ZSTD_e_flush;
            compress(&mut self.encoder, &mut self.pending, &self.plain, op)?;
            self.plain.clear();
        }
        if self.ending {
            let op = ZSTD_EndDirective::ZSTD_e_end;
            compress(&mut self.encoder, &mut self.pending, &[], op)?;
            self.ending = false;
        }
        write_out(stream, &mut self.pending)
    }

    fn end(&mut self) {
        self.ending = true;
    }

    fn is_done(&self) -> bool {
        self.pending.is_empty()
    }
}

struct PeerConn {
    stream: TcpStream,
    echo: Box<dyn Echo>,
    /// The peer ended its stream.
    ended: bool,
}

/// One event loop: accepts from `listener` and echoes what it accepted.
fn serve(mut listener: TcpListener, mode: Mode) -> io::Result<()> {
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut events = Events::with_capacity(1024);
    let mut conns: HashMap<usize, PeerConn> = HashMap::new();
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
                    let echo: Box<dyn Echo> = match &mode {
                        Mode::Plain => Box::new(Plain::default()),
                        Mode::Tls(config) => {
                            let mut conn = rustls::ServerConnection::new(config.clone())
                                .map_err(io::Error::other)?;
                            // The client bounds what is in flight; a full
                            // buffer would fail `write_all`.
                            conn.set_buffer_limit(None);
                            Box::new(Tls {
                                conn,
                                plain: Vec::new(),
                            })
                        }
                        Mode::Zstd(level) => Box::new(Zstd::new(*level)?),
                    };
                    conns.insert(
                        next,
                        PeerConn {
                            stream,
                            echo,
                            ended: false,
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
            let mut failed = false;
            while !conn.ended {
                match conn.echo.read(&mut conn.stream, &mut buf) {
                    Ok(0) => {
                        conn.ended = true;
                        conn.echo.end();
                    }
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        failed = true;
                        break;
                    }
                }
            }
            failed |= conn.echo.write(&mut conn.stream).is_err();
            // Once the peer has ended, stay until all it is owed is written.
            if (failed || (conn.ended && conn.echo.is_done()))
                && let Some(mut conn) = conns.remove(&id)
            {
                let _ = poll.registry().deregister(&mut conn.stream);
            }
        }
    }
}
