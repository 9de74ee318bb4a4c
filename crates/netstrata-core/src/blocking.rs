//! A blocking driver for a [`Connection`] over any `Read + Write`.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::{Codec, Connection, Error, Layer, Result};

/// What [`Blocking`] needs from a transport beyond `Read + Write`.
///
/// Both methods have defaults that do nothing, so any `Read + Write` type
/// can opt in with an empty `impl Transport for MyType {}`; without a read
/// timeout, layer deadlines (a handshake timeout) are only checked between
/// reads.
pub trait Transport: Read + Write {
    /// Bounds the next reads by `timeout` (`None`: block indefinitely).
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let _ = timeout;
        Ok(())
    }

    /// Ends the write direction (TCP FIN) after an orderly close.
    fn shutdown_write(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Transport for TcpStream {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        Self::set_read_timeout(self, timeout)
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }
}

#[cfg(unix)]
impl Transport for std::os::unix::net::UnixStream {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        Self::set_read_timeout(self, timeout)
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }
}

/// A transport made of a separate reader and writer (the two ends of a pair
/// of pipes, a child process's stdout and stdin). Shutting down the write
/// side drops the writer, which closes it.
#[derive(Debug)]
pub struct Duplex<R, W> {
    reader: R,
    writer: Option<W>,
}

impl<R: Read, W: Write> Duplex<R, W> {
    /// Joins `reader` and `writer` into one transport.
    pub fn new(reader: R, writer: W) -> Self {
        Self {
            reader,
            writer: Some(writer),
        }
    }
}

impl<R: Read, W: Write> Read for Duplex<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reader.read(buf)
    }
}

impl<R: Read, W: Write> Write for Duplex<R, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.writer {
            Some(w) => w.write(buf),
            None => Err(io::ErrorKind::BrokenPipe.into()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer.as_mut().map_or(Ok(()), Write::flush)
    }
}

impl<R: Read, W: Write> Transport for Duplex<R, W> {
    fn shutdown_write(&mut self) -> io::Result<()> {
        if let Some(mut w) = self.writer.take() {
            w.flush()?;
        }
        Ok(())
    }
}

/// Drives a [`Connection`] over a blocking transport: one thread, one
/// connection, the system clock.
///
/// ```no_run
/// use std::net::TcpStream;
/// use netstrata_core::layers::PassThrough;
/// use netstrata_core::{Blocking, Connection, RawCodec};
///
/// # fn main() -> netstrata_core::Result<()> {
/// let stream = TcpStream::connect("127.0.0.1:7000")?;
/// let mut conn = Blocking::new(stream, Connection::new(PassThrough::new(), RawCodec::new()));
/// conn.send(b"hello")?;
/// conn.flush()?;
/// let reply = conn.recv()?;
/// conn.shutdown()?;
/// # let _ = reply; Ok(()) }
/// ```
#[derive(Debug)]
pub struct Blocking<T, S, C> {
    io: T,
    conn: Connection<S, C>,
    scratch: Box<[u8]>,
    /// The read timeout last set on the transport.
    read_timeout: Option<Duration>,
}

const NAME: &str = "blocking";

impl<T: Transport, S: Layer, C: Codec> Blocking<T, S, C> {
    /// Drives `conn` over `io`.
    pub fn new(io: T, conn: Connection<S, C>) -> Self {
        let scratch = vec![0; conn.config().read_buffer().min(64 * 1024)].into_boxed_slice();
        Self {
            io,
            conn,
            scratch,
            read_timeout: None,
        }
    }

    /// The connection.
    pub fn connection(&self) -> &Connection<S, C> {
        &self.conn
    }

    /// The connection, mutably.
    pub fn connection_mut(&mut self) -> &mut Connection<S, C> {
        &mut self.conn
    }

    /// The transport.
    pub fn transport(&self) -> &T {
        &self.io
    }

    /// Splits into transport and connection.
    pub fn into_parts(self) -> (T, Connection<S, C>) {
        (self.io, self.conn)
    }

    /// Queues `msg`; if the send buffer is full, flushes first.
    pub fn send(&mut self, msg: &[u8]) -> Result<()> {
        match self.conn.send(msg) {
            Err(Error::SendBufferFull { .. }) => {
                self.flush()?;
                self.conn.send(msg)
            }
            other => other,
        }
    }

    /// Flushes every queued message through the stack and writes it all to
    /// the transport: reads while a layer is handshaking (it holds messages
    /// until then) and waits out layer deadlines (shaping) as needed.
    pub fn flush(&mut self) -> Result<()> {
        loop {
            self.write_pending()?;
            if self.conn.send_queued() == 0 {
                break;
            }
            if self.conn.stack().is_handshaking() {
                self.read_once()?;
            } else {
                // The stack holds bytes back until a deadline (shaping budget).
                self.wait_for_deadline()?;
            }
        }
        self.io.flush()?;
        Ok(())
    }

    /// Writes what the connection has to transmit now. After an error it
    /// still writes what the stack produced before (an alert for the peer),
    /// then returns the error.
    fn write_pending(&mut self) -> Result<()> {
        while let Some(out) = self.conn.poll_transmit(Instant::now())? {
            let n = self.io.write(out)?;
            if n == 0 {
                return Err(io::Error::from(io::ErrorKind::WriteZero).into());
            }
            self.conn.advance_transmit(n);
        }
        Ok(())
    }

    /// Writes what the stack produced before failing (best effort), then
    /// returns the error.
    fn failed(&mut self, e: Error) -> Error {
        if self.conn.error().is_some() {
            let _ = self.write_pending();
            let _ = self.io.flush();
        }
        e
    }

    /// Sleeps until the next layer deadline and runs it; a misuse error if
    /// there is none (nothing could ever make progress).
    fn wait_for_deadline(&mut self) -> Result<()> {
        let Some(at) = self.conn.poll_timeout() else {
            return Err(Error::misuse(
                NAME,
                "no progress: the stack takes no input and sets no deadline",
            ));
        };
        std::thread::sleep(at.saturating_duration_since(Instant::now()));
        self.conn.handle_timeout(Instant::now())
    }

    /// Reads from the transport once (or waits for a deadline when the
    /// stack takes no input now).
    fn read_once(&mut self) -> Result<()> {
        if !self.conn.wants_read() {
            return self.wait_for_deadline();
        }
        let deadline = self.conn.poll_timeout();
        let timeout = deadline.map(|at| {
            at.saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1))
        });
        if timeout != self.read_timeout {
            self.io.set_read_timeout(timeout)?;
            self.read_timeout = timeout;
        }
        let room = self.conn.read_room().min(self.scratch.len());
        match self.io.read(&mut self.scratch[..room]) {
            Ok(0) => self.conn.handle_input_eof(Instant::now()),
            Ok(n) => self
                .conn
                .handle_input(Instant::now(), &self.scratch[..n])
                .map(drop),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) && deadline.is_some() =>
            {
                self.conn.handle_timeout(Instant::now())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Runs until no layer is handshaking (a TLS handshake), writing and
    /// reading as needed. Messages that arrive meanwhile stay queued for
    /// [`recv`](Self::recv).
    pub fn handshake(&mut self) -> Result<()> {
        self.handshake_inner().map_err(|e| self.failed(e))
    }

    fn handshake_inner(&mut self) -> Result<()> {
        while self.conn.stack().is_handshaking() {
            self.write_pending()?;
            if self.conn.is_read_closed() {
                return Err(Error::Truncated {
                    layer: NAME,
                    detail: "end of stream during handshake",
                });
            }
            self.read_once()?;
        }
        self.write_pending()
    }

    /// The next message, or `None` once the peer has ended its stream
    /// cleanly. Blocks until one arrives; before it blocks, it transmits
    /// everything sent so far (one flush for all answers to the messages
    /// already read, so an echo loop batches by itself).
    pub fn recv(&mut self) -> Result<Option<Bytes>> {
        self.recv_inner().map_err(|e| self.failed(e))
    }

    fn recv_inner(&mut self) -> Result<Option<Bytes>> {
        loop {
            if let Some(msg) = self.conn.poll_message(Instant::now())? {
                return Ok(Some(msg));
            }
            if self.conn.is_read_closed() {
                return Ok(None);
            }
            // Answers the stack owes the peer (handshake) go out before we wait.
            self.write_pending()?;
            if let Err(e) = self.read_once() {
                // The connection keeps an error of its stack's and returns
                // it once the messages decoded before it are taken.
                if self.conn.error().is_none() {
                    return Err(e);
                }
            }
        }
    }

    /// Orderly close of our direction: ends the stack's stream, writes it
    /// all and shuts down the transport's write side. The peer's messages
    /// can still be read with [`recv`](Self::recv) until it ends too.
    pub fn shutdown(&mut self) -> Result<()> {
        self.conn.close();
        loop {
            self.flush()?;
            if self.conn.is_write_closed() {
                break;
            }
            // Ending may wait on a deadline (shaping budget for close_notify).
            self.wait_for_deadline()?;
        }
        self.io.shutdown_write()?;
        Ok(())
    }
}
