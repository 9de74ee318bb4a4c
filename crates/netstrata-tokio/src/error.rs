//! netstrata errors as the `io::Error`s a tokio user expects.

use std::{fmt, io};

use netstrata_core::Error;

/// What a [`LayeredStream`](crate::LayeredStream) carries inside the
/// `io::Error`s it returns ([`io::Error::get_ref`]): the stack's
/// [`netstrata_core::Error`], whose layer and kind say what happened. Its
/// [`source`](std::error::Error::source) is the layer's own error (a
/// `netstrata_tls::TlsError`, a `netstrata_zstd::ZstdError`, ...), so
/// `io_error.source()` downcasts to it.
#[derive(Debug, Clone)]
pub struct StackError(Error);

impl StackError {
    /// The stack's error.
    pub fn error(&self) -> &Error {
        &self.0
    }

    /// The stack's error, owned.
    pub fn into_error(self) -> Error {
        self.0
    }
}

impl fmt::Display for StackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for StackError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.0 {
            Error::PeerMisbehaved { source, .. }
            | Error::Misuse { source, .. }
            | Error::LocalLimit { source, .. } => Some(&**source),
            Error::Io(e) => Some(&**e),
            _ => None,
        }
    }
}

/// `e` as an `io::Error` of the kind a tokio user expects, carrying `e`.
pub(crate) fn to_io(e: Error) -> io::Error {
    let kind = match &e {
        Error::Truncated { .. } => io::ErrorKind::UnexpectedEof,
        Error::PeerMisbehaved { .. } => io::ErrorKind::InvalidData,
        Error::TimedOut { .. } => io::ErrorKind::TimedOut,
        Error::LocalLimit { .. } => io::ErrorKind::QuotaExceeded,
        Error::Misuse { .. } => io::ErrorKind::InvalidInput,
        Error::SendBufferFull { .. } => io::ErrorKind::WouldBlock,
        Error::Io(inner) => inner.kind(),
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, StackError(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("bad magic")]
    struct BadMagic;

    #[test]
    fn kinds_follow_what_went_wrong_and_the_layers_error_is_the_source() {
        let cut = to_io(Error::Truncated {
            layer: "tls",
            detail: "no close_notify",
        });
        assert_eq!(cut.kind(), io::ErrorKind::UnexpectedEof);
        let inner = cut.get_ref().and_then(|e| e.downcast_ref::<StackError>());
        assert!(matches!(
            inner.map(StackError::error),
            Some(Error::Truncated { layer: "tls", .. })
        ));
        let bad = to_io(Error::peer("zstd", BadMagic));
        assert_eq!(bad.kind(), io::ErrorKind::InvalidData);
        assert_eq!(bad.to_string(), "zstd: peer misbehaved: bad magic");
        let source = std::error::Error::source(&bad).expect("the layer's error");
        assert!(source.downcast_ref::<BadMagic>().is_some());
    }
}
