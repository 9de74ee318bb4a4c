//! Driving rustls' unbuffered API: records are decrypted in place in the
//! caller's input buffer and encoded straight into the caller's output
//! buffer, so a connection keeps no I/O buffer of its own between calls.

use std::fmt;

use bytes::{Buf, BytesMut};
use netstrata_core::Flush;
use rustls::CommonState;
use rustls::client::UnbufferedClientConnection;
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncryptError, InsufficientSizeError, UnbufferedStatus,
    WriteTraffic,
};

/// Largest plaintext of one TLS record.
pub(crate) const MAX_RECORD: usize = 16 * 1024;
/// Most bytes a record adds to its plaintext (TLS 1.2 AES-GCM: 5 header,
/// 8 explicit nonce, 16 tag; TLS 1.3 adds 22).
pub(crate) const RECORD_OVERHEAD: usize = 29;
/// Room first offered for an alert or a `close_notify`; a smaller record
/// than any suite produces, retried at the size rustls asks for.
const ALERT_GUESS: usize = 64;

/// A client or server connection of rustls' unbuffered API, as
/// [`Tls::new`](crate::Tls::new) takes it.
pub enum UnbufferedConnection {
    /// A client.
    Client(UnbufferedClientConnection),
    /// A server.
    Server(UnbufferedServerConnection),
}

impl From<UnbufferedClientConnection> for UnbufferedConnection {
    fn from(conn: UnbufferedClientConnection) -> Self {
        Self::Client(conn)
    }
}

impl From<UnbufferedServerConnection> for UnbufferedConnection {
    fn from(conn: UnbufferedServerConnection) -> Self {
        Self::Server(conn)
    }
}

// rustls' unbuffered connections are not `Debug`; which side it is is what
// a reader needs.
impl fmt::Debug for UnbufferedConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Client(_) => f.write_str("UnbufferedConnection::Client(..)"),
            Self::Server(_) => f.write_str("UnbufferedConnection::Server(..)"),
        }
    }
}

impl UnbufferedConnection {
    /// The state both sides share: version, suite, ALPN, certificates.
    pub(crate) fn common(&self) -> &CommonState {
        match self {
            Self::Client(c) => c,
            Self::Server(s) => s,
        }
    }

    /// One `process_tls_records` step over `incoming`, handled by `handler`.
    /// Returns how many bytes to discard from the front of `incoming`.
    pub(crate) fn process<H: Handler>(
        &mut self,
        incoming: &mut [u8],
        handler: &mut H,
    ) -> (usize, Step) {
        match self {
            Self::Client(c) => {
                let UnbufferedStatus { discard, state } = c.process_tls_records(incoming);
                (discard, handler.handle(state))
            }
            Self::Server(s) => {
                let UnbufferedStatus { discard, state } = s.process_tls_records(incoming);
                (discard, handler.handle(state))
            }
        }
    }
}

/// What a step asks of its caller next.
#[derive(Debug)]
pub(crate) enum Step {
    /// Call again.
    Continue,
    /// Plaintext of an application record went up (or was held).
    Delivered,
    /// Nothing more can happen without more input, or the call's work is done.
    Idle,
    /// The peer's `close_notify` arrived (both ends closed included).
    PeerClosed,
    /// The connection failed; an alert for the peer may be queued.
    Failed(rustls::Error),
}

/// Handles the state of one step, for client and server alike.
pub(crate) trait Handler {
    fn handle<Data>(&mut self, state: Result<ConnectionState<'_, '_, Data>, rustls::Error>)
    -> Step;
}

/// Inbound work: plaintext up within `room`, the rest of a record into
/// `held`; handshake records and alerts down.
pub(crate) struct Receive<'a> {
    pub(crate) up: &'a mut BytesMut,
    pub(crate) room: usize,
    pub(crate) held: &'a mut BytesMut,
    pub(crate) down: &'a mut BytesMut,
    /// Bytes of input to discard beyond the status' own count.
    pub(crate) extra_discard: usize,
}

impl Handler for Receive<'_> {
    fn handle<Data>(
        &mut self,
        state: Result<ConnectionState<'_, '_, Data>, rustls::Error>,
    ) -> Step {
        match state {
            Err(e) => Step::Failed(e),
            Ok(ConnectionState::ReadTraffic(mut traffic)) => {
                // rustls yields one record per step; all of it is taken, so
                // rustls keeps no plaintext and an outbound step never meets
                // this state.
                while let Some(record) = traffic.next_record() {
                    let record = match record {
                        Ok(record) => record,
                        Err(e) => return Step::Failed(e),
                    };
                    self.extra_discard += record.discard;
                    let n = record.payload.len().min(self.room);
                    self.up.extend_from_slice(&record.payload[..n]);
                    self.held.extend_from_slice(&record.payload[n..]);
                    self.room -= n;
                }
                Step::Delivered
            }
            Ok(state) => common_step(state, self.down),
        }
    }
}

/// Outbound work: records of `input` into `down`, then maybe `close_notify`.
pub(crate) struct Send<'a> {
    pub(crate) input: &'a mut BytesMut,
    pub(crate) flush: Flush,
    pub(crate) down: &'a mut BytesMut,
    pub(crate) down_room: usize,
    /// `down`'s length when the call began: `down_room` counts from there.
    pub(crate) start: usize,
    pub(crate) buffer_limit: usize,
    /// Application data may go out (the handshake is complete).
    pub(crate) may_write: bool,
    /// Set once `close_notify` is written.
    pub(crate) closed: bool,
}

impl Handler for Send<'_> {
    fn handle<Data>(
        &mut self,
        state: Result<ConnectionState<'_, '_, Data>, rustls::Error>,
    ) -> Step {
        match state {
            Ok(ConnectionState::WriteTraffic(mut traffic)) if self.may_write => {
                match self.write(&mut traffic) {
                    Ok(()) => Step::Idle,
                    Err(e) => Step::Failed(e),
                }
            }
            // Plaintext is never left with rustls (see `Receive`).
            Ok(ConnectionState::ReadTraffic(_)) => Step::Idle,
            Err(e) => Step::Failed(e),
            Ok(state) => common_step(state, self.down),
        }
    }
}

impl Send<'_> {
    fn write<Data>(&mut self, traffic: &mut WriteTraffic<'_, Data>) -> Result<(), rustls::Error> {
        while !self.input.is_empty() {
            let room = self.down_room.saturating_sub(self.down.len() - self.start);
            let mut n = self
                .input
                .len()
                .min(self.buffer_limit)
                .min(plain_fits(room));
            if n == 0 && room > 0 && self.down.len() == self.start {
                // A room too small for any record: one small record, so
                // the stream still moves.
                n = 1;
            }
            if n == 0 {
                break;
            }
            let plain = &self.input[..n];
            let guess = n + n.div_ceil(MAX_RECORD) * RECORD_OVERHEAD;
            append(self.down, guess, |out| {
                traffic.encrypt(plain, out).map_err(encrypt_error)
            })?;
            self.input.advance(n);
        }
        if self.flush == Flush::Finish && self.input.is_empty() {
            append(self.down, ALERT_GUESS, |out| {
                traffic.queue_close_notify(out).map_err(encrypt_error)
            })?;
            self.closed = true;
        }
        Ok(())
    }
}

/// Only the records rustls owes the peer (handshake, alerts) go down;
/// used to send the alert queued by a failure.
pub(crate) struct Owed<'a> {
    pub(crate) down: &'a mut BytesMut,
}

impl Handler for Owed<'_> {
    fn handle<Data>(
        &mut self,
        state: Result<ConnectionState<'_, '_, Data>, rustls::Error>,
    ) -> Step {
        match state {
            Ok(
                state @ (ConnectionState::EncodeTlsData(_) | ConnectionState::TransmitTlsData(_)),
            ) => common_step(state, self.down),
            _ => Step::Idle,
        }
    }
}

/// The states both directions handle alike.
fn common_step<Data>(state: ConnectionState<'_, '_, Data>, down: &mut BytesMut) -> Step {
    match state {
        ConnectionState::EncodeTlsData(mut data) => {
            let encoded = append(down, ALERT_GUESS, |out| match data.encode(out) {
                Ok(n) => Ok(n),
                Err(EncodeError::InsufficientSize(InsufficientSizeError { required_size })) => {
                    Err(Grow::To(required_size))
                }
                // Cannot happen: each state is encoded once.
                Err(EncodeError::AlreadyEncoded) => Ok(0),
            });
            match encoded {
                Ok(()) => Step::Continue,
                Err(e) => Step::Failed(e),
            }
        }
        // The records are in `down` already: the caller sends them.
        ConnectionState::TransmitTlsData(data) => {
            data.done();
            Step::Continue
        }
        ConnectionState::PeerClosed | ConnectionState::Closed => Step::PeerClosed,
        ConnectionState::BlockedHandshake | ConnectionState::WriteTraffic(_) => Step::Idle,
        ConnectionState::ReadEarlyData(_) => Step::Failed(rustls::Error::General(
            "early data is not supported by this layer".into(),
        )),
        _ => Step::Failed(rustls::Error::General(
            "unexpected state of the rustls connection".into(),
        )),
    }
}

/// Why writing into a slice failed.
enum Grow {
    /// The slice must be this long.
    To(usize),
    Fatal(rustls::Error),
}

fn encrypt_error(e: EncryptError) -> Grow {
    match e {
        EncryptError::InsufficientSize(InsufficientSizeError { required_size }) => {
            Grow::To(required_size)
        }
        EncryptError::EncryptExhausted => Grow::Fatal(rustls::Error::EncryptError),
    }
}

/// Appends what `write` puts into a slice of `down`, offering `guess` bytes
/// first and then as many as it asks for.
fn append(
    down: &mut BytesMut,
    guess: usize,
    mut write: impl FnMut(&mut [u8]) -> Result<usize, Grow>,
) -> Result<(), rustls::Error> {
    let start = down.len();
    let mut len = guess;
    loop {
        down.resize(start + len, 0);
        match write(&mut down[start..]) {
            Ok(n) => {
                down.truncate(start + n);
                return Ok(());
            }
            Err(Grow::To(required)) if required > len => len = required,
            Err(Grow::To(_)) => {
                down.truncate(start);
                return Err(rustls::Error::General(
                    "rustls asked for no more room than it had".into(),
                ));
            }
            Err(Grow::Fatal(e)) => {
                down.truncate(start);
                return Err(e);
            }
        }
    }
}

/// The most plaintext whose records fit `room` bytes.
pub(crate) fn plain_fits(room: usize) -> usize {
    let records = room.div_ceil(MAX_RECORD + RECORD_OVERHEAD);
    room.saturating_sub(records * RECORD_OVERHEAD)
}

/// Whether `input` holds at most the start of one record.
///
/// After a step that needed more input, what is left is the rest of a
/// partial record, or complete records rustls keeps there while a
/// handshake message spanning several records is incomplete. In the
/// second case its next step must see the same buffer again; in the
/// first it may be given an empty one (as outbound steps are).
pub(crate) fn at_most_partial_record(input: &[u8]) -> bool {
    match input {
        [_, _, _, hi, lo, ..] => 5 + usize::from(u16::from_be_bytes([*hi, *lo])) > input.len(),
        _ => true,
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

    #[test]
    fn a_complete_record_is_more_than_a_partial_one() {
        assert!(at_most_partial_record(&[]));
        assert!(at_most_partial_record(&[23, 3, 3, 0]));
        assert!(at_most_partial_record(&[23, 3, 3, 0, 2, 9]));
        assert!(!at_most_partial_record(&[23, 3, 3, 0, 2, 9, 9]));
        assert!(!at_most_partial_record(&[23, 3, 3, 0, 0, 1]));
    }
}
