//! The crate's one error type.

use std::path::PathBuf;

use netstrata_core::Error;
use rustls::{AlertDescription, CertificateError};

use crate::NAME;

/// Why TLS failed: the peer's fault, or ours.
///
/// Inside a stack it travels as the `source` of a core
/// [`Error::PeerMisbehaved`] or [`Error::Misuse`] naming the layer `"tls"`;
/// get it back with `err.downcast_ref::<TlsError>()`. A transport that ends
/// without `close_notify` is a core [`Error::Truncated`] and a handshake that
/// does not finish in time a core [`Error::TimedOut`], not a `TlsError`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The peer sent a fatal alert (it rejected our certificate, found no
    /// common version or cipher suite, could not decrypt our records).
    #[error("peer sent fatal alert: {0:?}")]
    AlertReceived(AlertDescription),
    /// The peer's certificate failed verification: expired, not valid for
    /// the name, signed by an unknown issuer, revoked.
    #[error("peer certificate rejected: {0}")]
    BadCertificate(CertificateError),
    /// The peer did not present a certificate where one is required (mTLS).
    #[error("peer presented no certificate")]
    NoCertificate,
    /// The peer does not speak TLS: its first bytes are no TLS record
    /// (a plain-text client on a TLS port).
    #[error("peer does not speak TLS: first bytes {}", show(.first_bytes))]
    NotTls {
        /// Up to 8 of the first bytes the peer sent.
        first_bytes: Vec<u8>,
    },
    /// Any other protocol failure, as rustls reports it (garbage in a
    /// record, bad MAC, unexpected message, no common ALPN protocol).
    #[error("TLS protocol error: {0}")]
    Protocol(rustls::Error),
    /// Application bytes were written after `close_notify`.
    #[error("write after close_notify")]
    WriteAfterClose,
    /// A configuration rustls refused (a key that does not match its
    /// certificate, no usable protocol version).
    #[error("bad TLS configuration: {0}")]
    Config(rustls::Error),
    /// The client certificate verifier could not be built.
    #[error("bad client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// No trusted root could be loaded from the platform's store (or the
    /// `SSL_CERT_FILE` / `SSL_CERT_DIR` it names): what the loader said.
    #[error("no trusted root could be loaded from the platform: {0}")]
    NoNativeRoots(String),
    /// The name to connect to is neither a DNS name nor an IP address.
    #[error("invalid server name {0:?}")]
    InvalidServerName(String),
    /// A PEM file could not be read or parsed.
    #[error("{}: {source}", .path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// Why.
        source: rustls_pki_types::pem::Error,
    },
    /// A PEM file held nothing of the kind asked for.
    #[error("{}: no {what} found", .path.display())]
    PemEmpty {
        /// The file.
        path: PathBuf,
        /// What was looked for (`"certificate"`, `"private key"`).
        what: &'static str,
    },
    /// A development certificate could not be generated.
    #[cfg(feature = "dev-certs")]
    #[cfg_attr(docsrs, doc(cfg(feature = "dev-certs")))]
    #[error("generating a development certificate: {0}")]
    DevCert(#[from] rcgen::Error),
}

impl TlsError {
    /// Sorts a rustls error from record processing into a variant.
    /// `first_bytes` are the first bytes the peer sent, to recognise a
    /// peer that does not speak TLS at all.
    pub(crate) fn from_rustls(e: rustls::Error, first_bytes: &[u8]) -> Self {
        match e {
            rustls::Error::AlertReceived(alert) => Self::AlertReceived(alert),
            rustls::Error::InvalidCertificate(reason) => Self::BadCertificate(reason),
            rustls::Error::NoCertificatesPresented => Self::NoCertificate,
            _ if !looks_like_tls(first_bytes) => Self::NotTls {
                first_bytes: first_bytes.to_vec(),
            },
            e => Self::Protocol(e),
        }
    }

    /// The alert the peer sent, if that is what failed.
    pub fn alert(&self) -> Option<AlertDescription> {
        match self {
            Self::AlertReceived(alert) => Some(*alert),
            _ => None,
        }
    }

    /// Whether the error is ours (configuration, API use) rather than the peer's.
    pub fn is_local(&self) -> bool {
        match self {
            Self::Protocol(e) => is_local(e),
            Self::WriteAfterClose
            | Self::Config(_)
            | Self::Verifier(_)
            | Self::NoNativeRoots(_)
            | Self::InvalidServerName(_)
            | Self::Pem { .. }
            | Self::PemEmpty { .. } => true,
            #[cfg(feature = "dev-certs")]
            Self::DevCert(_) => true,
            Self::AlertReceived(_)
            | Self::BadCertificate(_)
            | Self::NoCertificate
            | Self::NotTls { .. } => false,
        }
    }

    /// The core error carrying this one: [`Error::Misuse`] for our own
    /// faults, [`Error::PeerMisbehaved`] for the peer's.
    pub(crate) fn into_core(self) -> Error {
        match self.is_local() {
            true => Error::misuse(NAME, self),
            false => Error::peer(NAME, self),
        }
    }
}

/// rustls errors that come from our side (configuration, time, randomness),
/// not from what the peer sent.
fn is_local(e: &rustls::Error) -> bool {
    matches!(
        e,
        rustls::Error::General(_)
            | rustls::Error::FailedToGetCurrentTime
            | rustls::Error::FailedToGetRandomBytes
            | rustls::Error::EncryptError
            | rustls::Error::HandshakeNotComplete
            | rustls::Error::InconsistentKeys(_)
            | rustls::Error::Other(_)
    )
}

/// A TLS record starts with a content type (20..=24) and major version 3.
/// Too few bytes to tell count as TLS.
fn looks_like_tls(first: &[u8]) -> bool {
    match first {
        [kind, ..] if !(20..=24).contains(kind) => false,
        [_, major, ..] => *major == 3,
        _ => true,
    }
}

/// Bytes as text when they are printable (`"GET / HT"`), else as hex.
fn show(bytes: &[u8]) -> String {
    match bytes.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        true => format!("{:?}", String::from_utf8_lossy(bytes)),
        false => format!("{bytes:02x?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_not_tls_but_a_handshake_record_is() {
        assert!(!looks_like_tls(b"GET / HTTP/1.1"));
        assert!(!looks_like_tls(&[22, 0x47]));
        assert!(looks_like_tls(&[22, 3, 1]));
        assert!(looks_like_tls(&[]));
        let e = TlsError::from_rustls(rustls::Error::DecryptError, b"GET / HT");
        assert_eq!(
            e.to_string(),
            "peer does not speak TLS: first bytes \"GET / HT\""
        );
        assert!(!e.is_local());
    }

    #[test]
    fn alerts_and_certificates_get_their_own_variants() {
        let e = TlsError::from_rustls(
            rustls::Error::AlertReceived(AlertDescription::BadCertificate),
            &[21, 3, 3],
        );
        assert_eq!(e.alert(), Some(AlertDescription::BadCertificate));
        let e = TlsError::from_rustls(
            rustls::Error::InvalidCertificate(CertificateError::Expired),
            &[22, 3, 3],
        );
        assert!(matches!(
            e,
            TlsError::BadCertificate(CertificateError::Expired)
        ));
        assert!(matches!(
            TlsError::WriteAfterClose.into_core(),
            Error::Misuse { layer: "tls", .. }
        ));
    }
}
