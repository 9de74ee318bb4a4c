//! A loop's figures through the `metrics` facade (feature `metrics`):
//! gathered from the counters connections already keep, and published on a
//! timer ([`LoopConfig::with_metrics_every`](crate::LoopConfig::with_metrics_every),
//! 1 s by default) — never per message, so a loop pays nothing per message
//! for them.
//!
//! The names and labels are listed in the crate's docs ("Metrics").
//!
//! Counters are totals since the loop started (live connections plus those
//! closed); closes are counted per server, shared by its loops.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use netstrata_core::{ByteCounters, Codec, ConnectionStats, Layer};

use super::connections::Connections;
use crate::Handler;

/// Numbers the loops of the process, for the `loop` label.
static NEXT_LOOP: AtomicUsize = AtomicUsize::new(0);

/// What a loop publishes besides what its live connections hold: the
/// totals of connections already closed.
#[derive(Debug)]
pub(super) struct Figures {
    label: String,
    opened: u64,
    closed: Totals,
    /// Connections that opened with their layers handshaking and closed
    /// after the handshake completed ...
    handshakes_completed: u64,
    /// ... or before it did (an error, its timeout, the peer gone).
    handshakes_failed: u64,
}

/// Sums of connections' figures.
#[derive(Debug, Default)]
struct Totals {
    messages_in: u64,
    messages_out: u64,
    wire_in: u64,
    wire_out: u64,
    layers: HashMap<&'static str, ByteCounters>,
}

impl Totals {
    fn add(&mut self, stats: &ConnectionStats) {
        self.messages_in += stats.messages_in;
        self.messages_out += stats.messages_out;
        self.wire_in += stats.wire_in;
        self.wire_out += stats.wire_out;
        for layer in &stats.layers {
            let sum = self.layers.entry(layer.name).or_default();
            sum.inbound_in += layer.bytes.inbound_in;
            sum.inbound_out += layer.bytes.inbound_out;
            sum.outbound_in += layer.bytes.outbound_in;
            sum.outbound_out += layer.bytes.outbound_out;
        }
    }
}

impl Figures {
    pub(super) fn new() -> Self {
        Self {
            label: NEXT_LOOP.fetch_add(1, Ordering::Relaxed).to_string(),
            opened: 0,
            closed: Totals::default(),
            handshakes_completed: 0,
            handshakes_failed: 0,
        }
    }

    pub(super) fn opened(&mut self) {
        self.opened += 1;
    }

    /// A connection closed with these final figures; `opened_handshaking`:
    /// its layers were handshaking when it opened, `still_handshaking`:
    /// they had not finished.
    pub(super) fn closed(
        &mut self,
        stats: &ConnectionStats,
        opened_handshaking: bool,
        still_handshaking: bool,
    ) {
        self.closed.add(stats);
        match (opened_handshaking, still_handshaking) {
            (true, false) => self.handshakes_completed += 1,
            (true, true) => self.handshakes_failed += 1,
            (false, _) => {}
        }
    }
}

impl<S: Layer + 'static, C: Codec + 'static, H: Handler> Connections<S, C, H> {
    /// Publishes the loop's figures to the installed `metrics` recorder.
    pub(super) fn publish_figures(&self) {
        let figures = &self.figures;
        let mut totals = Totals::default();
        let mut handshakes_completed = figures.handshakes_completed;
        for (_, entry) in &self.slab {
            totals.add(&entry.conn.stats());
            if entry.opened_handshaking && !entry.conn.stack().is_handshaking() {
                handshakes_completed += 1;
            }
        }
        let closed = &figures.closed;
        let label = figures.label.clone();
        metrics::gauge!("netstrata_connections_open", "loop" => label.clone())
            .set(self.slab.len() as f64);
        metrics::counter!("netstrata_connections_opened_total", "loop" => label.clone())
            .absolute(figures.opened);
        for (direction, live, gone) in [
            ("in", totals.messages_in, closed.messages_in),
            ("out", totals.messages_out, closed.messages_out),
        ] {
            metrics::counter!("netstrata_messages_total", "loop" => label.clone(), "direction" => direction)
                .absolute(live + gone);
        }
        for (direction, live, gone) in [
            ("in", totals.wire_in, closed.wire_in),
            ("out", totals.wire_out, closed.wire_out),
        ] {
            metrics::counter!("netstrata_wire_bytes_total", "loop" => label.clone(), "direction" => direction)
                .absolute(live + gone);
        }
        let mut names: Vec<&'static str> = totals.layers.keys().copied().collect();
        names.extend(
            closed
                .layers
                .keys()
                .filter(|n| !totals.layers.contains_key(*n)),
        );
        for name in names {
            let live = totals.layers.get(name).copied().unwrap_or_default();
            let gone = closed.layers.get(name).copied().unwrap_or_default();
            for (direction, side, live, gone) in [
                ("inbound", "lower", live.inbound_in, gone.inbound_in),
                ("inbound", "upper", live.inbound_out, gone.inbound_out),
                ("outbound", "upper", live.outbound_in, gone.outbound_in),
                ("outbound", "lower", live.outbound_out, gone.outbound_out),
            ] {
                metrics::counter!(
                    "netstrata_layer_bytes_total",
                    "loop" => label.clone(),
                    "layer" => name,
                    "direction" => direction,
                    "side" => side,
                )
                .absolute(live + gone);
            }
        }
        for (outcome, n) in [
            ("completed", handshakes_completed),
            ("failed", figures.handshakes_failed),
        ] {
            metrics::counter!("netstrata_handshakes_total", "loop" => label.clone(), "outcome" => outcome)
                .absolute(n);
        }
        for (kind, n) in self.closes.snapshot() {
            metrics::counter!("netstrata_connections_closed_total", "reason" => kind.to_string())
                .absolute(n);
        }
    }
}
