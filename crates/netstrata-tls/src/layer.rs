//! The layer: a rustls connection between caller-owned buffers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use netstrata_core::{Error, Inbound, Layer, Outbound, Result, StickyError};
use rustls::client::UnbufferedClientConnection;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::server::UnbufferedServerConnection;
use rustls::{
    ClientConfig, CommonState, HandshakeKind, ProtocolVersion, ServerConfig, SupportedCipherSuite,
};

use crate::engine::{self, MAX_RECORD, Owed, Receive, Send, Step, UnbufferedConnection};
use crate::sni::{self, Sniffed};
use crate::{NAME, TlsError};

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
///   small messages becomes records of up to 16 KiB. Output honours
///   `lower_room` except for at most one
///   record's overhead (29 bytes) and the handshake messages and alerts the
///   layer owes the peer.
/// - **Shutdown.** [`Flush::Finish`](netstrata_core::Flush::Finish) (once
///   the handshake is done and all input is written) sends `close_notify`.
///   The peer's `close_notify` is a clean end ([`Layer::is_read_closed`]);
///   a transport end without it is
///   [`Error::Truncated`].
///
/// # Drivers
/// With [`netstrata_core::Blocking`], `flush()` reads while the handshake is
/// under way, so writes held for it go out once it completes;
/// `handshake()` runs it alone, to check the peer before sending anything.
///
/// # Memory bounds
/// The layer drives rustls' unbuffered API: records are decrypted in place
/// in the caller's input buffer and encoded straight into `down`. Per
/// connection it holds, at any time:
/// - received ciphertext: none of its own; records wait in the caller's
///   (bounded) input buffer until they are processed, and while a
///   handshake message spanning several records is incomplete its records
///   stay there too, so that buffer's limit must exceed the largest
///   handshake message expected (a certificate chain; rustls refuses
///   messages over 64 KiB), or the handshake stalls until its timeout;
/// - received plaintext: the part of one record (at most 16 KiB) that did
///   not fit `upper_room`; the layer processes no more input until it went
///   up, and reports [`Layer::wants_read`] `false` until then, so a
///   flooding peer meets TCP backpressure;
/// - outgoing records: written into `down` as they are made, so nothing is
///   held between calls; each step encrypts at most
///   [`buffer_limit`](Self::buffer_limit) plaintext bytes.
///
/// Plaintext goes up strictly within `upper_room`. After the handshake an
/// idle layer holds no I/O buffer, only rustls' connection state
/// (`benches/tls.rs` prints the figure); [`Layer::release_buffers`] frees
/// held plaintext's allocation once it went up.
///
/// # Writes during an incomplete handshake message
/// While rustls keeps part of a handshake message in the input buffer
/// (the peer sent a post-handshake message, such as a session ticket, over
/// several records), outbound calls write nothing: they cannot see that
/// buffer. Writes go on once the rest of the message arrives.
pub struct Tls {
    conn: UnbufferedConnection,
    /// On a client, the name it connects to; on a server, the SNI read
    /// from the ClientHello.
    server_name: Option<String>,
    /// A server that has not seen the ClientHello's first record yet.
    sni_pending: bool,
    read: End,
    write: End,
    failed: StickyError,
    handshake_timeout: Duration,
    timer: Timer,
    buffer_limit: usize,
    /// Decrypted plaintext that did not fit `upper_room` (part of one record).
    held: BytesMut,
    /// rustls holds no part of a handshake message in the input buffer, so
    /// it may be driven with an empty one (as outbound calls do).
    aligned: bool,
    /// The peer's first bytes.
    prefix: [u8; PREFIX],
    prefix_len: usize,
    /// Input was discarded: `prefix` is final.
    prefix_kept: bool,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field(
                "client",
                &matches!(self.conn, UnbufferedConnection::Client(_)),
            )
            .field("handshaking", &self.is_handshaking())
            .field("read", &self.read)
            .field("write", &self.write)
            .field("failed", &self.failed.error())
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Default handshake timeout (10 s).
    pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default bound of plaintext encrypted per step (32 KiB).
    pub const DEFAULT_BUFFER_LIMIT: usize = 32 * 1024;
    /// The most received plaintext the layer holds (part of one record,
    /// below this bound; see *Memory bounds*).
    pub const MAX_BUFFERED_PLAINTEXT: usize = 16 * 1024 + 2048 + 5;

    /// A client that will verify the server's certificate for `server_name`
    /// (a DNS name, sent as SNI, or an IP address).
    ///
    /// Connections made from the same `config` share its session cache, so
    /// a second connection to the same server resumes the first one's session.
    pub fn client(config: Arc<ClientConfig>, server_name: &str) -> Result<Self, TlsError> {
        let name = ServerName::try_from(server_name.to_owned())
            .map_err(|_| TlsError::InvalidServerName(server_name.to_owned()))?;
        let conn = UnbufferedClientConnection::new(config, name).map_err(TlsError::Config)?;
        let mut tls = Self::new(conn);
        tls.server_name = Some(server_name.to_owned());
        Ok(tls)
    }

    /// A server.
    pub fn server(config: Arc<ServerConfig>) -> Result<Self, TlsError> {
        let conn = UnbufferedServerConnection::new(config).map_err(TlsError::Config)?;
        Ok(Self::new(conn))
    }

    /// A layer over an unbuffered rustls connection built by hand (one
    /// that was not used yet).
    pub fn new(conn: impl Into<UnbufferedConnection>) -> Self {
        let conn = conn.into();
        Self {
            sni_pending: matches!(conn, UnbufferedConnection::Server(_)),
            conn,
            server_name: None,
            read: End::Open,
            write: End::Open,
            failed: StickyError::new(),
            handshake_timeout: Self::DEFAULT_HANDSHAKE_TIMEOUT,
            timer: Timer::Unstarted,
            buffer_limit: Self::DEFAULT_BUFFER_LIMIT,
            held: BytesMut::new(),
            aligned: true,
            prefix: [0; PREFIX],
            prefix_len: 0,
            prefix_kept: false,
        }
    }

    /// Sets how long the handshake may take from the first call.
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Sets the bound of plaintext encrypted per step (at least one
    /// record, 16 KiB).
    pub fn with_buffer_limit(mut self, bytes: usize) -> Self {
        self.buffer_limit = bytes.max(MAX_RECORD);
        self
    }

    // ---- getters ----

    /// The negotiated protocol version (`TLSv1_3`, `TLSv1_2`).
    pub fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.conn.common().protocol_version()
    }

    /// The negotiated cipher suite.
    pub fn cipher_suite(&self) -> Option<SupportedCipherSuite> {
        self.conn.common().negotiated_cipher_suite()
    }

    /// The negotiated ALPN protocol, if both sides offered one in common.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.conn.common().alpn_protocol()
    }

    /// On a server, the name the client asked for (SNI); on a client, the
    /// name it connects to.
    pub fn server_name(&self) -> Option<&str> {
        self.server_name.as_deref()
    }

    /// The peer's certificate chain, end entity first: always on a client
    /// after the handshake, on a server only with client authentication.
    pub fn peer_certificates(&self) -> Option<&[CertificateDer<'static>]> {
        self.conn.common().peer_certificates()
    }

    /// Whether the handshake was full or resumed a session.
    pub fn handshake_kind(&self) -> Option<HandshakeKind> {
        self.conn.common().handshake_kind()
    }

    /// The rustls connection state, for what this layer does not expose.
    pub fn connection(&self) -> &CommonState {
        self.conn.common()
    }

    /// The handshake timeout.
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// The bound of plaintext encrypted per step.
    pub fn buffer_limit(&self) -> usize {
        self.buffer_limit
    }

    /// Received plaintext the layer holds that has not gone up yet (at
    /// most [`MAX_BUFFERED_PLAINTEXT`](Self::MAX_BUFFERED_PLAINTEXT)).
    pub fn buffered_plaintext(&self) -> usize {
        self.held.len()
    }

    // ---- internals ----

    /// Starts the handshake clock at the first call.
    fn start(&mut self, now: Instant) -> &mut Self {
        if self.timer == Timer::Unstarted {
            self.timer = now
                .checked_add(self.handshake_timeout)
                .map_or(Timer::Never, Timer::At);
        }
        self
    }

    /// Keeps the stream's first bytes: until rustls discards any input,
    /// they are at the front of `input`.
    fn remember_prefix(&mut self, input: &[u8]) {
        let n = PREFIX.min(input.len());
        self.prefix[..n].copy_from_slice(&input[..n]);
        self.prefix_len = n;
    }

    /// Sends held plaintext up, at most `room` bytes; returns what is left
    /// of the room.
    fn deliver_held(&mut self, up: &mut BytesMut, room: usize) -> usize {
        let n = self.held.len().min(room);
        up.extend_from_slice(&self.held[..n]);
        self.held.advance(n);
        if self.held.is_empty() {
            // Free the record's worth of memory: an idle layer holds none.
            self.held = BytesMut::new();
        }
        room - n
    }

    /// Sends the alert rustls queued when it failed, then names the failure.
    fn fail(&mut self, e: rustls::Error, down: &mut BytesMut) -> Error {
        // Queued records come out before any input is looked at, so an
        // empty buffer serves; processing input again would fail again.
        while self.conn.common().wants_write() {
            let (_, step) = self.conn.process(&mut [], &mut Owed { down });
            if !matches!(step, Step::Continue) {
                break;
            }
        }
        TlsError::from_rustls(e, &self.prefix[..self.prefix_len]).into_core()
    }

    fn inbound(&mut self, io: Inbound<'_>) -> Result<()> {
        let mut room = self.deliver_held(io.upper, io.upper_room);
        let mut needs_input = false;
        while self.held.is_empty() && self.read == End::Open {
            if !self.prefix_kept {
                self.remember_prefix(io.input);
            }
            if self.sni_pending
                && let Sniffed::Done(name) = sni::sniff(io.input)
            {
                self.server_name = name;
                self.sni_pending = false;
            }
            let mut receive = Receive {
                up: io.upper,
                room,
                held: &mut self.held,
                down: io.lower,
                extra_discard: 0,
            };
            let (discard, step) = self.conn.process(&mut io.input[..], &mut receive);
            room = receive.room;
            let discard = discard + receive.extra_discard;
            io.input.advance(discard.min(io.input.len()));
            self.prefix_kept |= discard > 0;
            match step {
                Step::Continue => {}
                // Application data cannot interleave with a handshake
                // message, so rustls holds no part of one in the input.
                Step::Delivered => self.aligned = true,
                Step::Idle => {
                    self.aligned = engine::at_most_partial_record(io.input);
                    needs_input = true;
                    break;
                }
                Step::PeerClosed => self.read = End::Closed,
                Step::Failed(e) => return Err(self.fail(e, io.lower)),
            }
        }
        if self.read == End::Closed {
            // "Any data received after a closure alert ... MUST be ignored."
            io.input.clear();
            self.aligned = true;
            return Ok(());
        }
        if io.input_ended && needs_input && self.held.is_empty() {
            let detail = match self.is_handshaking() {
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
        if !self.aligned {
            // rustls holds part of a handshake message in the input buffer,
            // which this call does not see: writes wait for the message's
            // rest (the peer is sending it).
            return Ok(());
        }
        let mut send = Send {
            start: io.lower.len(),
            input: io.input,
            flush: io.flush,
            down: io.lower,
            down_room: io.lower_room,
            buffer_limit: self.buffer_limit,
            may_write: !self.conn.common().is_handshaking(),
            closed: false,
        };
        loop {
            // Nothing is deframed from an empty buffer, so nothing to discard.
            let (_, step) = self.conn.process(&mut [], &mut send);
            match step {
                Step::Continue | Step::Delivered => {}
                Step::Idle => break,
                // Edge-triggered: sending may go on after it.
                Step::PeerClosed if self.read == End::Open => self.read = End::Closed,
                Step::PeerClosed => break,
                Step::Failed(e) => return Err(self.fail(e, send.down)),
            }
        }
        if send.closed {
            self.write = End::Closed;
        }
        Ok(())
    }
}

impl Layer for Tls {
    fn name(&self) -> &'static str {
        NAME
    }

    fn handle_inbound(&mut self, io: Inbound<'_>) -> Result<()> {
        StickyError::guard(self, |t| &mut t.failed, |t| t.start(io.now).inbound(io))
    }

    fn handle_outbound(&mut self, io: Outbound<'_>) -> Result<()> {
        StickyError::guard(self, |t| &mut t.failed, |t| t.start(io.now).outbound(io))
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match self.timer {
            Timer::At(at) if !self.failed.has_failed() && self.is_handshaking() => Some(at),
            _ => None,
        }
    }

    fn handle_timeout(&mut self, now: Instant, _down: &mut BytesMut) -> Result<()> {
        self.failed.check()?;
        self.start(now);
        match self.poll_timeout() {
            Some(at) if now >= at => Err(self.failed.fail(Error::TimedOut {
                layer: NAME,
                what: "handshake not complete",
            })),
            _ => Ok(()),
        }
    }

    fn wants_read(&self) -> bool {
        !self.failed.has_failed() && (self.read == End::Closed || self.held.is_empty())
    }

    fn is_handshaking(&self) -> bool {
        self.conn.common().is_handshaking()
    }

    fn is_read_closed(&self) -> bool {
        self.read == End::Closed
    }

    fn is_write_closed(&self) -> bool {
        self.write == End::Closed
    }

    fn release_buffers(&mut self) {
        if self.held.is_empty() {
            self.held = BytesMut::new();
        }
    }
}
