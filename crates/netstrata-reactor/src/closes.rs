//! Why connections closed: the log line every close writes, the warnings a
//! flood of failing connections is allowed, and the counts by reason.
//!
//! ```text
//!  remove(conn) ──▶ debug  "conn 17 from 127.0.0.1:5555 closed: <reason>"   every close
//!               ├─▶ warn   same line + "(N more since)"  an error close, ≤ 1/s per kind, process-wide
//!               └─▶ CloseCounts[kind] += 1                shared by a server's loops
//! ```

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use netstrata_core::Error;

use crate::{CloseReason, ConnId};

/// What kind of close a [`CloseReason`] is, without its details: the key
/// the counts and the rate limit of warnings go by. Errors keep the layer
/// that raised them, so `zstd: peer misbehaved` and `tls: peer misbehaved`
/// are counted apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseKind {
    /// Both sides ended cleanly.
    Clean,
    /// The peer sent what the layer refuses ([`Error::PeerMisbehaved`]).
    PeerMisbehaved(&'static str),
    /// The stream ended inside a unit of the layer ([`Error::Truncated`]).
    Truncated(&'static str),
    /// A layer's deadline passed ([`Error::TimedOut`]).
    TimedOut(&'static str),
    /// A limit of this process refused the work ([`Error::LocalLimit`]).
    LocalLimit(&'static str),
    /// The application or a layer broke a contract ([`Error::Misuse`]).
    Misuse(&'static str),
    /// The socket failed.
    Io(io::ErrorKind),
    /// No bytes moved for the idle timeout.
    IdleTimeout,
    /// A connect did not complete in time.
    ConnectTimeout,
    /// The application aborted it.
    Aborted,
    /// The loop stopped or its shutdown grace passed.
    Shutdown,
    /// An error of another kind (a send buffer refusal, a transport error
    /// reported through the stack).
    Other,
}

impl CloseKind {
    /// Whether this kind of close says something went wrong, so it may be
    /// worth a warning: errors of the stack and of the socket, except the
    /// peer simply going away (reset, broken pipe), which servers see all
    /// day and log at `debug` only.
    pub fn is_failure(&self) -> bool {
        match self {
            Self::Clean | Self::IdleTimeout | Self::Aborted | Self::Shutdown => false,
            Self::Io(kind) => !matches!(
                kind,
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::UnexpectedEof
            ),
            _ => true,
        }
    }

    /// The layer named by an error close.
    pub fn layer(&self) -> Option<&'static str> {
        match self {
            Self::PeerMisbehaved(layer)
            | Self::Truncated(layer)
            | Self::TimedOut(layer)
            | Self::LocalLimit(layer)
            | Self::Misuse(layer) => Some(layer),
            _ => None,
        }
    }
}

impl fmt::Display for CloseKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Clean => f.write_str("clean"),
            Self::PeerMisbehaved(layer) => write!(f, "{layer}: peer misbehaved"),
            Self::Truncated(layer) => write!(f, "{layer}: stream truncated"),
            Self::TimedOut(layer) => write!(f, "{layer}: timed out"),
            Self::LocalLimit(layer) => write!(f, "{layer}: local limit"),
            Self::Misuse(layer) => write!(f, "{layer}: caller misuse"),
            Self::Io(kind) => write!(f, "i/o: {kind}"),
            Self::IdleTimeout => f.write_str("idle timeout"),
            Self::ConnectTimeout => f.write_str("connect timeout"),
            Self::Aborted => f.write_str("aborted"),
            Self::Shutdown => f.write_str("shutdown"),
            Self::Other => f.write_str("other error"),
        }
    }
}

impl CloseReason {
    /// The kind of close, for counting and filtering.
    pub fn kind(&self) -> CloseKind {
        match self {
            Self::Clean => CloseKind::Clean,
            Self::Error(e) => match e {
                Error::PeerMisbehaved { layer, .. } => CloseKind::PeerMisbehaved(layer),
                Error::Truncated { layer, .. } => CloseKind::Truncated(layer),
                Error::TimedOut { layer, .. } => CloseKind::TimedOut(layer),
                Error::LocalLimit { layer, .. } => CloseKind::LocalLimit(layer),
                Error::Misuse { layer, .. } => CloseKind::Misuse(layer),
                Error::Io(e) => CloseKind::Io(e.kind()),
                _ => CloseKind::Other,
            },
            Self::Io(kind) => CloseKind::Io(*kind),
            Self::IdleTimeout => CloseKind::IdleTimeout,
            Self::ConnectTimeout => CloseKind::ConnectTimeout,
            Self::Aborted => CloseKind::Aborted,
            Self::Shutdown => CloseKind::Shutdown,
        }
    }
}

impl fmt::Display for CloseReason {
    /// The error's own words for an error close (`zstd: peer misbehaved:
    /// peer window 16 MiB (2^24) exceeds the limit 8 MiB (2^23)`), else the kind.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Error(e) => e.fmt(f),
            other => other.kind().fmt(f),
        }
    }
}

/// Closes counted by [`CloseKind`], shared by the loops of a
/// [`crate::Server`] (or one [`crate::EventLoop`]); clones share the counts.
#[derive(Debug, Clone, Default)]
pub struct CloseCounts {
    counts: Arc<Mutex<HashMap<CloseKind, u64>>>,
}

impl CloseCounts {
    /// Counts one close.
    pub(crate) fn add(&self, kind: CloseKind) {
        *self.lock().entry(kind).or_default() += 1;
    }

    /// Closes of `kind` so far.
    pub fn get(&self, kind: CloseKind) -> u64 {
        self.lock().get(&kind).copied().unwrap_or(0)
    }

    /// All closes so far.
    pub fn total(&self) -> u64 {
        self.lock().values().sum()
    }

    /// Every kind seen with its count, most frequent first (ties by name).
    pub fn snapshot(&self) -> Vec<(CloseKind, u64)> {
        let mut all: Vec<(CloseKind, u64)> = self.lock().iter().map(|(k, n)| (*k, *n)).collect();
        all.sort_by(|a, b| {
            b.1.cmp(&a.1)
                .then_with(|| a.0.to_string().cmp(&b.0.to_string()))
        });
        all
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CloseKind, u64>> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// At most one warning per this interval per kind, process-wide.
const WARN_EVERY: Duration = Duration::from_secs(1);

/// When each kind last warned, and how many of it were not warned since.
#[derive(Default)]
struct WarnLimiter {
    kinds: HashMap<CloseKind, (Instant, u64)>,
}

impl WarnLimiter {
    /// `Some(suppressed)` if a close of `kind` at `now` may warn, with the
    /// number of closes of that kind not warned since the last warning.
    fn admit(&mut self, kind: CloseKind, now: Instant) -> Option<u64> {
        match self.kinds.get_mut(&kind) {
            Some((last, suppressed)) if now.duration_since(*last) < WARN_EVERY => {
                *suppressed += 1;
                None
            }
            Some((last, suppressed)) => {
                *last = now;
                Some(std::mem::take(suppressed))
            }
            None => {
                self.kinds.insert(kind, (now, 0));
                Some(0)
            }
        }
    }
}

fn warn_limiter() -> &'static Mutex<WarnLimiter> {
    static LIMITER: OnceLock<Mutex<WarnLimiter>> = OnceLock::new();
    LIMITER.get_or_init(Mutex::default)
}

/// Logs the close of connection `id` from `peer` and counts it; only a
/// connection a listener `accepted` may warn (the application that
/// connected out is told in `on_close` and decides itself).
pub(crate) fn record(
    counts: &CloseCounts,
    id: ConnId,
    peer: SocketAddr,
    accepted: bool,
    reason: &CloseReason,
) {
    let kind = reason.kind();
    counts.add(kind);
    let layer = kind.layer().unwrap_or("-");
    tracing::debug!(conn = id.number(), %peer, layer, kind = %kind, "{id} from {peer} closed: {reason}");
    if !accepted || !kind.is_failure() || !tracing::enabled!(tracing::Level::WARN) {
        return;
    }
    let admitted = warn_limiter()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .admit(kind, Instant::now());
    match admitted {
        Some(0) => {
            tracing::warn!(conn = id.number(), %peer, layer, kind = %kind, "{id} from {peer} closed: {reason}");
        }
        Some(suppressed) => tracing::warn!(
            conn = id.number(), %peer, layer, kind = %kind, suppressed,
            "{id} from {peer} closed: {reason} ({suppressed} more closed for this reason since the last warning, not shown)"
        ),
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_warning_per_kind_per_interval_with_the_rest_counted() {
        let mut limiter = WarnLimiter::default();
        let t0 = Instant::now();
        let zstd = CloseKind::PeerMisbehaved("zstd");
        let tls = CloseKind::PeerMisbehaved("tls");
        assert_eq!(limiter.admit(zstd, t0), Some(0));
        assert_eq!(limiter.admit(tls, t0), Some(0), "kinds are limited apart");
        for i in 1..1000 {
            assert_eq!(limiter.admit(zstd, t0 + Duration::from_micros(i)), None);
        }
        assert_eq!(limiter.admit(zstd, t0 + WARN_EVERY), Some(999));
        assert_eq!(limiter.admit(zstd, t0 + WARN_EVERY), None);
        assert_eq!(limiter.admit(tls, t0 + 3 * WARN_EVERY), Some(0));
    }

    #[test]
    fn reasons_read_as_the_error_says_and_kinds_by_layer() {
        let e = Error::peer(
            "zstd",
            io::Error::other("peer window 16 MiB (2^24) exceeds the limit 8 MiB (2^23)"),
        );
        let reason = CloseReason::Error(e);
        assert_eq!(reason.kind(), CloseKind::PeerMisbehaved("zstd"));
        assert_eq!(
            reason.to_string(),
            "zstd: peer misbehaved: peer window 16 MiB (2^24) exceeds the limit 8 MiB (2^23)"
        );
        assert_eq!(
            CloseReason::Io(io::ErrorKind::ConnectionReset).to_string(),
            "i/o: connection reset"
        );
        assert!(
            !CloseReason::Io(io::ErrorKind::ConnectionReset)
                .kind()
                .is_failure()
        );
        assert!(
            CloseReason::Io(io::ErrorKind::PermissionDenied)
                .kind()
                .is_failure()
        );
        assert!(!CloseReason::Clean.kind().is_failure());
        assert_eq!(reason.kind().layer(), Some("zstd"));
    }

    #[test]
    fn counts_are_shared_by_clones_and_sorted_by_frequency() {
        let counts = CloseCounts::default();
        let other = counts.clone();
        counts.add(CloseKind::Clean);
        other.add(CloseKind::Truncated("frame"));
        other.add(CloseKind::Truncated("frame"));
        assert_eq!(counts.total(), 3);
        assert_eq!(counts.get(CloseKind::Truncated("frame")), 2);
        assert_eq!(
            counts.snapshot(),
            [(CloseKind::Truncated("frame"), 2), (CloseKind::Clean, 1)]
        );
    }
}
