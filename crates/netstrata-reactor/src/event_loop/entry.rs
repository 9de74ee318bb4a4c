//! One connection of a loop, and the states it moves through.
//!
//! A connection's state is four small enums, each for one question the
//! loop asks of it:
//!
//! - [`Phase`]: is it connecting, open, or asked to go?
//! - [`SocketIn`]: may its socket have bytes to read (edge-triggered
//!   readiness arrives once), and has the peer's FIN been seen?
//! - [`Reading`]: does the application take its messages, or has it paused
//!   them, or been told the peer is done?
//! - [`Writing`]: is its queue below the high watermark, above it (an
//!   `on_writable` is owed), or has the FIN gone out?

use std::net::SocketAddr;
use std::time::Instant;

use mio::net::TcpStream;
use netstrata_core::Connection;

use super::accept::Seat;
use crate::{CloseReason, ConnId};

/// Where a connection is in the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// A non-blocking connect is under way.
    Connecting,
    /// Established; `on_open` has run.
    Open,
    /// The application aborted it during a callback: the loop drops it
    /// (with a reset) once the callback has returned.
    Aborting,
}

/// What the loop knows of the socket's read side. Readiness is
/// edge-triggered: an edge comes once, so the loop remembers it here until
/// a read says the socket is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SocketIn {
    /// Empty as of the last read: wait for an edge.
    Waiting,
    /// May hold bytes.
    Ready,
    /// The peer's FIN (or an error) was seen: read until the end of stream,
    /// even after a short read, since no further edge will come.
    Finishing,
    /// The end of stream was read.
    Ended,
}

impl SocketIn {
    /// What an event says on top of what was known.
    pub(super) fn on_event(self, readable: bool, ended: bool) -> Self {
        match self {
            Self::Ended | Self::Finishing => self,
            _ if ended => Self::Finishing,
            _ if readable => Self::Ready,
            _ => self,
        }
    }

    /// Whether a read may return bytes.
    pub(super) fn may_read(self) -> bool {
        matches!(self, Self::Ready | Self::Finishing)
    }

    /// After a read of `n` bytes of `asked`: a stream socket returns less
    /// than asked only when its queue is empty, so the `read` that would
    /// say `WouldBlock` is skipped — unless the FIN was seen, when the loop
    /// reads on to the end.
    pub(super) fn after_read(self, n: usize, asked: usize) -> Self {
        match self {
            Self::Finishing => self,
            _ if n == asked => Self::Ready,
            _ => Self::Waiting,
        }
    }
}

/// Whether the application takes the connection's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reading {
    /// Messages are read and delivered.
    Open,
    /// The application paused reading (`Context::pause_reading`): the
    /// socket is not read and no message is delivered; the peer feels TCP
    /// backpressure.
    Paused,
    /// The peer ended its stream and `on_peer_closed` has run.
    PeerClosed,
}

/// The write side, as the loop and the application see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Writing {
    /// Below the high watermark.
    Open,
    /// A send reached the high watermark: `on_writable` is owed once the
    /// queue falls to the low mark.
    AboveHigh,
    /// The stack ended its stream and the FIN was sent.
    Shut,
}

/// Who opened the connection.
#[derive(Debug)]
pub(super) enum Origin {
    /// A listener accepted it (the peer is a client of ours); its seat
    /// counts it against the server's limit and its loop's load until the
    /// entry goes. Only such closes may warn (see `closes`).
    Accepted(#[expect(dead_code, reason = "held for its drop, which gives the seat back")] Seat),
    /// We connected out.
    Connected,
}

pub(super) struct Entry<S, C, H> {
    pub(super) id: ConnId,
    pub(super) socket: TcpStream,
    pub(super) peer: SocketAddr,
    pub(super) conn: Connection<S, C>,
    /// Out of the entry while one of its callbacks runs (see
    /// `Connections::callback`).
    pub(super) handler: Option<H>,
    pub(super) origin: Origin,
    pub(super) phase: Phase,
    pub(super) socket_in: SocketIn,
    pub(super) reading: Reading,
    pub(super) writing: Writing,
    /// Bytes the next read asks for (see `read::next_read_size`).
    pub(super) read_size: usize,
    /// The layer deadline a timer is registered for.
    pub(super) layer_deadline: Option<Instant>,
    pub(super) last_activity: Instant,
    /// Already in the list of connections to process this turn.
    pub(super) scheduled: bool,
    /// Its receive and send on the io_uring driver.
    pub(super) ring_io: super::ring::RingIo,
    /// Its layers were handshaking when it opened (TLS): a fact kept for
    /// the loop's handshake figures, which count how such openings ended.
    #[cfg(feature = "metrics")]
    pub(super) opened_handshaking: bool,
}

impl<S, C, H> Entry<S, C, H> {
    /// Whether the loop should read the socket now.
    pub(super) fn reads(&self) -> bool
    where
        S: netstrata_core::Layer,
        C: netstrata_core::Codec,
    {
        self.socket_in.may_read() && self.reading != Reading::Paused && self.conn.wants_read()
    }

    /// Why an aborted connection ends: the connection's own error if it had
    /// already failed (its handler, given the messages decoded before the
    /// error, gave up on a connection that could send no more: the error
    /// is still the reason), else the abort.
    pub(super) fn abort_reason(&self) -> CloseReason
    where
        S: netstrata_core::Layer,
        C: netstrata_core::Codec,
    {
        match self.conn.error() {
            Some(e) => CloseReason::Error(e.clone()),
            None => CloseReason::Aborted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SocketIn;

    #[test]
    fn a_fin_keeps_the_loop_reading_to_the_end() {
        let s = SocketIn::Waiting.on_event(true, true);
        assert_eq!(s, SocketIn::Finishing);
        // A short read does not stop it: no further edge will come.
        assert_eq!(s.after_read(10, 4096), SocketIn::Finishing);
        assert!(s.may_read());
        // Later events change nothing, and neither does the end once read.
        assert_eq!(SocketIn::Ended.on_event(true, true), SocketIn::Ended);
        assert!(!SocketIn::Ended.may_read());
    }

    #[test]
    fn a_short_read_waits_for_the_next_edge() {
        let s = SocketIn::Waiting.on_event(true, false);
        assert_eq!(s, SocketIn::Ready);
        assert_eq!(s.after_read(4096, 4096), SocketIn::Ready);
        assert_eq!(s.after_read(100, 4096), SocketIn::Waiting);
        assert_eq!(SocketIn::Waiting.on_event(false, false), SocketIn::Waiting);
    }
}
