//! The layer: a rustls connection between caller-owned buffers.

use std::io::{self, BufRead, IoSlice, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use netstrata_core::{Error, Flush, Inbound, Layer, Outbound, Result};
use rustls::client::ClientConnection;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::server::ServerConnection;
use rustls::{ClientConfig, HandshakeKind, ProtocolVersion, ServerConfig, SupportedCipherSuite};

use crate::{NAME, TlsError};

/// Largest plaintext of one TLS record.
const MAX_RECORD: usize = 16 * 1024;
/// Most bytes a record adds to its plaintext (TLS 1.2 AES-GCM: 5 header,
/// 8 explicit nonce, 16 tag; TLS 1.3 adds 22).
const RECORD_OVERHEAD: usize = 29;
/// How many of the peer's first bytes are kept to recognise a non-TLS peer.
const PREFIX: usize = 8;

/// One direction's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Open,
    /// Inbound: the peer's `close_notify` arrived and all plaintext before
    /// it went up. Outbound: our `close_notify` is written.
    Closed,
}

/// The handshake deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    /// No call yet: the clock starts at the first one.
    Unstarted,
    At(Instant),
    /// The timeout reaches beyond the clock's range.
    Never,
}

/// A TLS client or server as a [`Layer`]: ciphertext below, plaintext above.
///
/// # Methods, by kind
/// - construction: [`client`](Self::client), [`server`](Self::server),
///   [`new`](Self::new), then settings
///   [`with_handshake_timeout`](Self::with_handshake_timeout),
///   [`with_buffer_limit`](Self::with_buffer_limit);
/// - getters (after the handshake): [`protocol_version`](Self::protocol_version),
///   [`cipher_suite`](Self::cipher_suite), [`alpn_protocol`](Self::alpn_protocol),
///   [`server_name`](Self::server_name),
///   [`peer_certificates`](Self::peer_certificates),
///   [`handshake_kind`](Self::handshake_kind), [`connection`](Self::connection);
/// - limits: [`handshake_timeout`](Self::handshake_timeout),
///   [`buffer_limit`](Self::buffer_limit),
///   [`buffered_plaintext`](Self::buffered_plaintext);
/// - the [`Layer`] calls, driven by a stack or a `Connection`.
///
/// # Behaviour
/// - **Handshake.** Starts on the first call; the client's first outbound
///   call emits its ClientHello. Application bytes written meanwhile are not
///   consumed: they wait in the caller's buffer (bounded by the connection's
///   send buffer) and go out as soon as the handshake completes.
/// - **Handshake timeout.** A deadline of [`handshake_timeout`](Self::handshake_timeout)
///   (default 10 s) from the `now` of the first call; if the handshake is
///   not done by then, [`Layer::handle_timeout`] fails with
///   [`Error::TimedOut`].
/// - **Writes.** All input of a call is encrypted at once, so a batch of
///   small messages becomes records of up to 16 KiB. With [`Flush::Hold`]
///   only whole 16 KiB records are written. Output honours `down_room`
///   except for at most one record's overhead (29 bytes) and the handshake
///   messages and alerts the layer owes the peer.
/// - **Shutdown.** [`Flush::Finish`] (once the handshake is done and all
///   input is written) sends `close_notify`. The peer's `close_notify` is a
///   clean end ([`Layer::is_read_closed`]); a transport end without it is
///   [`Error::Truncated`].
///
/// # Drivers
/// With [`netstrata_core::Blocking`], `flush()` reads while the handshake is
/// under way, so writes held for it go out once it completes;
/// `handshake()` runs it alone, to check the peer before sending anything.
///
/// # Memory bounds
/// Per connection, rustls holds at most, at any time:
/// - received ciphertext: one record buffer of 18,437 bytes (rustls' fixed
///   limit; while a large handshake message is being reassembled, up to
///   64 KiB);
/// - received plaintext: what that buffer decrypts to, at most 18,437
///   bytes: the layer hands ciphertext to rustls only once all earlier
///   plaintext went up, and reports [`Layer::wants_read`] `false` until
///   then, so a flooding peer meets TCP backpressure;
/// - outgoing records: emptied into `down` on every call, so nothing is
///   held between calls; within one call at most
///   [`buffer_limit`](Self::buffer_limit) plaintext bytes are encrypted.
///
/// Plaintext goes up strictly within `up_room`. Measured after the
/// handshake, an idle layer holds about 7 KB of heap (`benches/tls.rs`),
/// nearly all of it rustls' own state (its record read buffer alone keeps
/// at least 4 KiB between reads).
pub struct Tls {
    conn: rustls::Connection,
    /// The name a client asked for (a server reads its SNI from rustls).
    server_name: Option<String>,
    read: End,
    write: End,
    failed: Option<Error>,
    handshake_timeout: Duration,
    timer: Timer,
    buffer_limit: usize,
    /// Plaintext rustls decrypted and the layer has not yet sent up.
    plaintext: usize,
    /// The peer's first bytes.
    prefix: [u8; PREFIX],
    prefix_len: usize,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field(
                "client",
                &matches!(self.conn, rustls::Connection::Client(_)),
            )
            .field("handshaking", &self.conn.is_handshaking())
            .field("read", &self.read)
            .field("write", &self.write)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Default handshake timeout (10 s).
    pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default bound of plaintext encrypted per step and of rustls' send
    /// buffers (32 KiB).
    pub const DEFAULT_BUFFER_LIMIT: usize = 32 * 1024;
    /// The most received plaintext rustls holds for this layer (one record
    /// buffer's worth, 18,437 bytes; see *Memory bounds*).
    pub const MAX_BUFFERED_PLAINTEXT: usize = 16 * 1024 + 2048 + 5;

    /// A client that will verify the server's certificate for `server_name`
    /// (a DNS name, sent as SNI, or an IP address).
    ///
    /// Connections made from the same `config` share its session cache, so
    /// a second connection to the same server resumes the first one's session.
    pub fn client(config: Arc<ClientConfig>, server_name: &str) -> Result<Self, TlsError> {
        let name = ServerName::try_from(server_name.to_owned())
            .map_err(|_| TlsError::InvalidServerName(server_name.to_owned()))?;
        let conn = ClientConnection::new(config, name).map_err(TlsError::Config)?;
        let mut tls = Self::new(conn.into());
        tls.server_name = Some(server_name.to_owned());
        Ok(tls)
    }

    /// A server.
    pub fn server(config: Arc<ServerConfig>) -> Result<Self, TlsError> {
        let conn = ServerConnection::new(config).map_err(TlsError::Config)?;
        Ok(Self::new(conn.into()))
    }

    /// A layer over a rustls connection built by hand (one that was not
    /// used yet).
    pub fn new(mut conn: rustls::Connection) -> Self {
        conn.set_buffer_limit(Some(Self::DEFAULT_BUFFER_LIMIT));
        Self {
            conn,
            server_name: None,
            read: End::Open,
            write: End::Open,
            failed: None,
            handshake_timeout: Self::DEFAULT_HANDSHAKE_TIMEOUT,
            timer: Timer::Unstarted,
            buffer_limit: Self::DEFAULT_BUFFER_LIMIT,
            plaintext: 0,
            prefix: [0; PREFIX],
            prefix_len: 0,
        }
    }

    /// Sets how long the handshake may take from the first call.
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Sets the bound of plaintext encrypted per step and of rustls' send
    /// buffers (at least one record, 16 KiB).
    pub fn with_buffer_limit(mut self, bytes: usize) -> Self {
        self.buffer_limit = bytes.max(MAX_RECORD);
        self.conn.set_buffer_limit(Some(self.buffer_limit));
        self
    }

    // ---- getters ----

    /// The negotiated protocol version (`TLSv1_3`, `TLSv1_2`).
    pub fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.conn.protocol_version()
    }

    /// The negotiated cipher suite.
    pub fn cipher_suite(&self) -> Option<SupportedCipherSuite> {
        self.conn.negotiated_cipher_suite()
    }

    /// The negotiated ALPN protocol, if both sides offered one in common.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.conn.alpn_protocol()
    }

    /// On a server, the name the client asked for (SNI); on a client, the
    /// name it connects to.
    pub fn server_name(&self) -> Option<&str> {
        match &self.conn {
            rustls::Connection::Server(s) => s.server_name(),
            rustls::Connection::Client(_) => self.server_name.as_deref(),
        }
    }

    /// The peer's certificate chain, end entity first: always on a client
    /// after the handshake, on a server only with client authentication.
    pub fn peer_certificates(&self) -> Option<&[CertificateDer<'static>]> {
        self.conn.peer_certificates()
    }

    /// Whether the handshake was full or resumed a session.
    pub fn handshake_kind(&self) -> Option<HandshakeKind> {
        self.conn.handshake_kind()
    }

    /// The rustls connection, for what this layer does not expose.
    pub fn connection(&self) -> &rustls::Connection {
        &self.conn
    }

    /// The handshake timeout.
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// The bound of plaintext encrypted per step and of rustls' send buffers.
    pub fn buffer_limit(&self) -> usize {
        self.buffer_limit
    }

    /// Received plaintext rustls holds that has not gone up yet (at most
    /// [`MAX_BUFFERED_PLAINTEXT`](Self::MAX_BUFFERED_PLAINTEXT)).
    pub fn buffered_plaintext(&self) -> usize {
        self.plaintext
    }

    // ---- internals ----

    fn check(&self) -> Result<()> {
        self.failed.as_ref().map_or(Ok(()), |e| Err(e.clone()))
    }

    /// Keeps the first error: the layer is dead after it.
    fn keep(&mut self, result: Result<()>) -> Result<()> {
        if let Err(e) = &result {
            self.failed.get_or_insert_with(|| e.clone());
        }
        result
    }

    fn start(&mut self, now: Instant) {
        if self.timer == Timer::Unstarted {
            self.timer = now
                .checked_add(self.handshake_timeout)
                .map_or(Timer::Never, Timer::At);
        }
    }

    fn remember_prefix(&mut self, input: &[u8]) {
        let n = (PREFIX - self.prefix_len).min(input.len());
        self.prefix[self.prefix_len..self.prefix_len + n].copy_from_slice(&input[..n]);
        self.prefix_len += n;
    }

    /// Moves every record rustls has to send into `down`.
    fn drain(&mut self, down: &mut BytesMut) {
        while self.conn.wants_write() {
            // Appending to a `BytesMut` cannot fail.
            let _ = self.conn.write_tls(&mut Appender(down));
        }
    }

    /// Sends plaintext up, at most `room` bytes; notes a clean end.
    fn deliver(&mut self, up: &mut BytesMut, room: usize) -> usize {
        let mut sent = 0;
        while sent < room {
            let mut reader = self.conn.reader();
            let chunk = match reader.fill_buf() {
                Ok([]) => {
                    // The peer's close_notify, with all plaintext before it delivered.
                    self.read = End::Closed;
                    break;
                }
                Ok(chunk) => chunk,
                // `WouldBlock`: nothing decrypted yet.
                Err(_) => break,
            };
            let n = chunk.len().min(room - sent);
            up.extend_from_slice(&chunk[..n]);
            reader.consume(n);
            sent += n;
        }
        self.plaintext = self.plaintext.saturating_sub(sent);
        sent
    }

    /// Hands ciphertext to rustls while it takes it, and processes it.
    fn absorb(&mut self, input: &mut BytesMut, down: &mut BytesMut) -> Result<usize> {
        if self.prefix_len < PREFIX {
            self.remember_prefix(input);
        }
        let n = match self.conn.read_tls(&mut &input[..]) {
            Ok(n) => n,
            Err(e) => {
                let e = rustls::Error::General(format!("reading records: {e}"));
                return Err(TlsError::Protocol(e).into_core());
            }
        };
        input.advance(n);
        let processed = self.conn.process_new_packets();
        // An alert for the peer is queued even when processing failed.
        self.drain(down);
        match processed {
            Ok(state) => {
                self.plaintext = state.plaintext_bytes_to_read();
                Ok(n)
            }
            Err(e) => Err(TlsError::from_rustls(e, &self.prefix[..self.prefix_len]).into_core()),
        }
    }

    fn inbound(&mut self, io: Inbound<'_>) -> Result<()> {
        let mut room = io.up_room;
        loop {
            let sent = self.deliver(io.up, room);
            room -= sent;
            if self.read == End::Closed {
                // "Any data received after a closure alert ... MUST be ignored."
                io.input.clear();
                break;
            }
            let took = match !io.input.is_empty() && self.conn.wants_read() {
                true => self.absorb(io.input, io.down)?,
                false => 0,
            };
            if sent == 0 && took == 0 {
                break;
            }
        }
        self.drain(io.down);
        if self.read == End::Open && io.input_ended && io.input.is_empty() && self.plaintext == 0 {
            let detail = match self.conn.is_handshaking() {
                true => "transport ended during the handshake",
                false => "transport ended without close_notify",
            };
            return Err(Error::Truncated {
                layer: NAME,
                detail,
            });
        }
        Ok(())
    }

    fn outbound(&mut self, io: Outbound<'_>) -> Result<()> {
        if self.write == End::Closed {
            return match io.input.is_empty() {
                true => Ok(()),
                false => Err(TlsError::WriteAfterClose.into_core()),
            };
        }
        if !self.conn.is_handshaking() {
            let start = io.down.len();
            while !io.input.is_empty() {
                let room = io.down_room.saturating_sub(io.down.len() - start);
                let mut n = io.input.len().min(self.buffer_limit).min(plain_fits(room));
                if n == 0 && room > 0 && io.down.len() == start {
                    // A room too small for any record: one small record, so
                    // the stream still moves.
                    n = 1;
                }
                if io.flush == Flush::Hold {
                    // Only whole records; small writes wait for the batch's end.
                    n -= n % MAX_RECORD;
                }
                if n == 0 {
                    break;
                }
                let took = match self.conn.writer().write(&io.input[..n]) {
                    Ok(took) => took,
                    Err(e) => {
                        let e = rustls::Error::General(format!("encrypting: {e}"));
                        return Err(TlsError::Protocol(e).into_core());
                    }
                };
                io.input.advance(took);
                self.drain(io.down);
                if took == 0 {
                    break;
                }
            }
            if io.flush == Flush::Finish && io.input.is_empty() {
                self.conn.send_close_notify();
                self.write = End::Closed;
            }
        }
        self.drain(io.down);
        Ok(())
    }
}

/// The most plaintext whose records fit `room` bytes.
fn plain_fits(room: usize) -> usize {
    let records = room.div_ceil(MAX_RECORD + RECORD_OVERHEAD);
    room.saturating_sub(records * RECORD_OVERHEAD)
}

impl Layer for Tls {
    fn name(&self) -> &'static str {
        NAME
    }

    fn handle_inbound(&mut self, io: Inbound<'_>) -> Result<()> {
        self.check()?;
        self.start(io.now);
        let result = self.inbound(io);
        self.keep(result)
    }

    fn handle_outbound(&mut self, io: Outbound<'_>) -> Result<()> {
        self.check()?;
        self.start(io.now);
        let result = self.outbound(io);
        self.keep(result)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match self.timer {
            Timer::At(at) if self.failed.is_none() && self.conn.is_handshaking() => Some(at),
            _ => None,
        }
    }

    fn handle_timeout(&mut self, now: Instant, _down: &mut BytesMut) -> Result<()> {
        self.check()?;
        self.start(now);
        match self.poll_timeout() {
            Some(at) if now >= at => self.keep(Err(Error::TimedOut {
                layer: NAME,
                what: "handshake not complete",
            })),
            _ => Ok(()),
        }
    }

    fn wants_read(&self) -> bool {
        self.failed.is_none() && (self.read == End::Closed || self.conn.wants_read())
    }

    fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    fn is_read_closed(&self) -> bool {
        self.read == End::Closed
    }

    fn is_write_closed(&self) -> bool {
        self.write == End::Closed
    }
}

/// `io::Write` into a `BytesMut`, taking every slice of a vectored write at
/// once (rustls writes queued records that way).
struct Appender<'a>(&'a mut BytesMut);

impl Write for Appender<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let total = bufs.iter().map(|b| b.len()).sum();
        self.0.reserve(total);
        for b in bufs {
            self.0.extend_from_slice(b);
        }
        Ok(total)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_fits_the_room_with_record_overhead() {
        assert_eq!(plain_fits(0), 0);
        assert_eq!(plain_fits(10), 0);
        assert_eq!(plain_fits(100), 71);
        let room = 64 * 1024;
        let n = plain_fits(room);
        assert!(n + n.div_ceil(MAX_RECORD) * RECORD_OVERHEAD <= room);
    }
}
