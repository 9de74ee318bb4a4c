//! The one error type of the contract.

use std::io;
use std::sync::Arc;

/// The cause behind an [`Error`], shared so that a sticky error can be
/// returned again on every later call.
pub type Source = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// Why a layer, a codec or a connection failed.
///
/// Every variant that comes from a layer or codec names it (`layer`), and the
/// variants separate what the peer did wrong ([`Error::PeerMisbehaved`],
/// [`Error::Truncated`], [`Error::TimedOut`]) from what the caller did wrong
/// ([`Error::Misuse`]) and from a limit of this process that refused work
/// the peer may legitimately ask for ([`Error::LocalLimit`]). A connection keeps the first protocol error it meets
/// and returns it again on every later call; [`Error::SendBufferFull`] is the
/// only variant that is not sticky.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The peer sent bytes the layer cannot accept (bad header, bad record,
    /// oversized frame, corrupt compressed data, failed handshake).
    #[error("{layer}: peer misbehaved: {source}")]
    PeerMisbehaved {
        /// The layer or codec that rejected the input.
        layer: &'static str,
        /// What was wrong, as the layer's own error type.
        source: Source,
    },
    /// The byte stream ended where the layer's protocol says it cannot end
    /// (no TLS `close_notify`, a zstd frame or a length-delimited frame cut short).
    #[error("{layer}: stream truncated: {detail}")]
    Truncated {
        /// The layer or codec that saw the early end.
        layer: &'static str,
        /// Where the stream was cut.
        detail: &'static str,
    },
    /// A deadline the layer set through `poll_timeout` passed (handshake timeout).
    #[error("{layer}: timed out: {what}")]
    TimedOut {
        /// The layer whose deadline passed.
        layer: &'static str,
        /// Which deadline.
        what: &'static str,
    },
    /// The caller broke the contract (wrote after shutdown, bad configuration).
    #[error("{layer}: caller misuse: {source}")]
    Misuse {
        /// The layer, codec or component that refused the call.
        layer: &'static str,
        /// What was wrong.
        source: Source,
    },
    /// The send buffer is at its limit; the message was not queued. Transmit
    /// what is pending and try again. Not sticky.
    #[error("send buffer full ({queued} bytes queued, limit {limit})")]
    SendBufferFull {
        /// Bytes waiting to go through the stack
        /// ([`crate::Connection::send_queued`]).
        queued: usize,
        /// The configured limit ([`crate::ConnectionConfig::send_buffer`]).
        limit: usize,
    },
    /// A limit of this process, not a fault of the peer, refused the work:
    /// a memory budget shared by many connections is used up (zstd's
    /// decoder budget). The same peer may succeed later, or elsewhere.
    #[error("{layer}: local limit: {source}")]
    LocalLimit {
        /// The layer whose limit refused.
        layer: &'static str,
        /// Which limit, and by how much.
        source: Source,
    },
    /// An I/O error from the transport (blocking driver, reactor).
    #[error("i/o: {0}")]
    Io(Arc<io::Error>),
}

impl Error {
    /// A [`Error::PeerMisbehaved`] naming `layer`.
    pub fn peer(
        layer: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::PeerMisbehaved {
            layer,
            source: Arc::from(source.into()),
        }
    }

    /// A [`Error::Misuse`] naming `layer`.
    pub fn misuse(
        layer: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::Misuse {
            layer,
            source: Arc::from(source.into()),
        }
    }

    /// A [`Error::LocalLimit`] naming `layer`.
    pub fn local_limit(
        layer: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::LocalLimit {
            layer,
            source: Arc::from(source.into()),
        }
    }

    /// The layer or codec the error names, if any.
    pub fn layer(&self) -> Option<&'static str> {
        match self {
            Self::PeerMisbehaved { layer, .. }
            | Self::Truncated { layer, .. }
            | Self::TimedOut { layer, .. }
            | Self::Misuse { layer, .. }
            | Self::LocalLimit { layer, .. } => Some(layer),
            Self::SendBufferFull { .. } | Self::Io(_) => None,
        }
    }

    /// Whether the peer (not the caller, not the transport) caused the error.
    pub fn is_peer_fault(&self) -> bool {
        matches!(
            self,
            Self::PeerMisbehaved { .. } | Self::Truncated { .. } | Self::TimedOut { .. }
        )
    }

    /// The layer's own error, if it is of type `E`
    /// (`err.downcast_ref::<FrameError>()`).
    pub fn downcast_ref<E: std::error::Error + 'static>(&self) -> Option<&E> {
        match self {
            Self::PeerMisbehaved { source, .. }
            | Self::Misuse { source, .. }
            | Self::LocalLimit { source, .. } => source.downcast_ref::<E>(),
            _ => None,
        }
    }

    /// Whether a connection should keep this error and fail every later call with it.
    pub(crate) fn is_sticky(&self) -> bool {
        !matches!(self, Self::SendBufferFull { .. })
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Self::Io(Arc::new(e))
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        let kind = match &e {
            Error::PeerMisbehaved { .. } => io::ErrorKind::InvalidData,
            Error::Truncated { .. } => io::ErrorKind::UnexpectedEof,
            Error::TimedOut { .. } => io::ErrorKind::TimedOut,
            Error::Misuse { .. } => io::ErrorKind::InvalidInput,
            Error::LocalLimit { .. } => io::ErrorKind::QuotaExceeded,
            Error::SendBufferFull { .. } => io::ErrorKind::WouldBlock,
            Error::Io(inner) => inner.kind(),
        };
        Self::new(kind, e)
    }
}

/// Result of the contract's fallible calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_conversion_keeps_kind_and_message() {
        let e = Error::Truncated {
            layer: "tls",
            detail: "no close_notify",
        };
        let io: io::Error = e.into();
        assert_eq!(io.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(io.to_string(), "tls: stream truncated: no close_notify");
    }

    #[test]
    fn downcast_finds_the_layer_error() {
        let e = Error::peer("frame", io::Error::other("bad"));
        assert!(e.downcast_ref::<io::Error>().is_some());
        assert!(e.is_peer_fault());
        assert_eq!(e.layer(), Some("frame"));
        assert!(!Error::misuse("x", "y").is_peer_fault());
        let limit = Error::local_limit("zstd", io::Error::other("budget"));
        assert!(!limit.is_peer_fault());
        assert_eq!(limit.layer(), Some("zstd"));
        assert!(limit.downcast_ref::<io::Error>().is_some());
        let io: io::Error = limit.into();
        assert_eq!(io.kind(), io::ErrorKind::QuotaExceeded);
    }
}
