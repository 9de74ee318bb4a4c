//! Ending a connection: its last bytes, the socket, the counts and log
//! line of `closes`, and the handler's `on_close`.

use std::time::Instant;

use netstrata_core::{Codec, Layer};

use super::connections::Connections;
use super::entry::{Origin, Phase};
use crate::{CloseReason, Handler, closes, socket};

impl<S: Layer + 'static, C: Codec + 'static, H: Handler> Connections<S, C, H> {
    /// Ends connection `token` with `reason` after writing what its stack
    /// still owes the peer when a layer failed (a TLS alert saying why), as
    /// far as the socket takes it now.
    pub(super) fn end(&mut self, token: usize, now: Instant, reason: CloseReason) {
        if let CloseReason::Error(_) = reason {
            // The stack's error is the reason either way.
            let _ = self.write(token, now);
        }
        self.close(token, reason);
    }

    /// Removes connection `token` at once: an abort resets the peer; the
    /// close is counted and logged, and its handler told.
    pub(super) fn close(&mut self, token: usize, reason: CloseReason) {
        if !self.slab.contains(token) {
            return;
        }
        self.forget_ring(token);
        let mut entry = self.slab.remove(token);
        // On io_uring only a connect in progress is on epoll.
        if (self.ring.is_none() || entry.phase == Phase::Connecting)
            && let Err(e) = self.registry.deregister(&mut entry.socket)
        {
            tracing::debug!(error = %e, "deregister");
        }
        if matches!(reason, CloseReason::Aborted) {
            socket::reset_on_close(&entry.socket);
        }
        // An accepted connection gives its seat back before its handler
        // hears of the close: a count read then no longer holds it.
        let origin = std::mem::replace(&mut entry.origin, Origin::Connected);
        let accepted = matches!(origin, Origin::Accepted(_));
        drop(origin);
        closes::record(&self.closes, entry.id, entry.peer, accepted, &reason);
        let stats = entry.conn.stats();
        #[cfg(feature = "metrics")]
        self.figures.closed(
            &stats,
            entry.opened_handshaking,
            entry.conn.stack().is_handshaking(),
        );
        if let Some(handler) = entry.handler.as_mut() {
            handler.on_close(&reason, &stats);
        }
        if let Some(ring) = self.ring.as_mut() {
            ring.close_later(entry.socket.into(), entry.ring_io.send_slot());
        }
    }

    /// Removes every connection with `reason` (the loop stops).
    pub(super) fn close_all(&mut self, reason: CloseReason) {
        let tokens: Vec<usize> = self.slab.iter().map(|(t, _)| t).collect();
        for token in tokens {
            self.close(token, reason.clone());
        }
    }
}
