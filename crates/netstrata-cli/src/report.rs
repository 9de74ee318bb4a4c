//! Figures summed over connections, and how the tool prints them.

use std::fmt::Write as _;
use std::time::Duration;

use netstrata_core::{ByteCounters, ConnectionStats, LayerStats};
use netstrata_shape::{Limit, TrafficStats};

/// One side's connections, summed: per layer (top first) and on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StackTotals {
    /// Connections added.
    pub connections: u64,
    /// Each layer's counters, summed by position in the stack.
    pub layers: Vec<LayerStats>,
    /// Messages received.
    pub messages_in: u64,
    /// Messages sent.
    pub messages_out: u64,
    /// Bytes read from sockets.
    pub wire_in: u64,
    /// Bytes written to sockets.
    pub wire_out: u64,
}

impl StackTotals {
    /// Adds one connection's final figures.
    pub fn add(&mut self, stats: &ConnectionStats) {
        self.connections += 1;
        self.messages_in += stats.messages_in;
        self.messages_out += stats.messages_out;
        self.wire_in += stats.wire_in;
        self.wire_out += stats.wire_out;
        self.add_layers(&stats.layers);
    }

    /// Adds another set of totals (another loop's connections).
    pub fn merge(&mut self, other: &Self) {
        self.connections += other.connections;
        self.messages_in += other.messages_in;
        self.messages_out += other.messages_out;
        self.wire_in += other.wire_in;
        self.wire_out += other.wire_out;
        self.add_layers(&other.layers);
    }

    fn add_layers(&mut self, layers: &[LayerStats]) {
        for (i, layer) in layers.iter().enumerate() {
            match self.layers.get_mut(i) {
                Some(sum) if sum.name == layer.name => {
                    let (s, b) = (&mut sum.bytes, &layer.bytes);
                    s.inbound_in += b.inbound_in;
                    s.inbound_out += b.inbound_out;
                    s.outbound_in += b.outbound_in;
                    s.outbound_out += b.outbound_out;
                }
                // Every connection of a side has the same stack.
                Some(_) => {}
                None => self.layers.push(*layer),
            }
        }
    }

    /// The counters of the layer called `name`.
    pub fn layer(&self, name: &str) -> Option<&ByteCounters> {
        self.layers
            .iter()
            .find(|l| l.name == name)
            .map(|l| &l.bytes)
    }
}

/// `1234567` → `"1.23 MB"`.
pub fn bytes(n: u64) -> String {
    let n = n as f64;
    match n {
        n if n >= 1e9 => format!("{:.2} GB", n / 1e9),
        n if n >= 1e6 => format!("{:.2} MB", n / 1e6),
        n if n >= 1e3 => format!("{:.1} kB", n / 1e3),
        n => format!("{n:.0} B"),
    }
}

/// Bytes per second, as [`bytes()`] with `/s`.
pub fn rate(per_second: f64) -> String {
    format!("{}/s", bytes(per_second.max(0.0).round() as u64))
}

fn ratio(to: u64, from: u64) -> String {
    match from {
        0 => "-".into(),
        _ => format!("{:.3}", to as f64 / from as f64),
    }
}

/// What a layer's ratio means, for the table's last column.
fn note(name: &str, b: &ByteCounters) -> String {
    match (name, b.outbound_expansion()) {
        ("zstd", Some(x)) => format!("compressed to {:.1}%", x * 100.0),
        ("tls", Some(x)) => format!(
            "TLS overhead {:+.2}% (handshake included)",
            (x - 1.0) * 100.0
        ),
        ("shape", _) => "shaped, see below".into(),
        _ => String::new(),
    }
}

/// The per-layer table of both sides: for every layer, bytes from above
/// and to below on the way out, from below and to above on the way in.
/// `payload` is the application bytes each side sent, above the framing.
pub fn layer_table(sides: &[(&str, &StackTotals, u64)]) -> String {
    let mut rows = vec![
        [
            "layer",
            "side",
            "out: from app",
            "to wire",
            "ratio",
            "in: from wire",
            "to app",
            "ratio",
            "",
        ]
        .map(String::from),
    ];
    let mut names: Vec<&str> = vec!["frame"];
    if let Some((_, totals, _)) = sides.first() {
        names.extend(totals.layers.iter().map(|l| l.name));
    }
    names.push("tcp");
    for name in names {
        for (side, totals, payload) in sides {
            let (b, extra) = match name {
                // Above the top layer: payload in, framed bytes out.
                "frame" => {
                    let top = totals.layers.first().map(|l| l.bytes);
                    let framed_out = top.map_or(totals.wire_out, |t| t.outbound_in);
                    let framed_in = top.map_or(totals.wire_in, |t| t.inbound_out);
                    let b = ByteCounters {
                        outbound_in: *payload,
                        outbound_out: framed_out,
                        inbound_in: framed_in,
                        inbound_out: received_payload(sides, side),
                    };
                    (b, "4-byte length before each message".to_string())
                }
                "tcp" => {
                    let b = ByteCounters {
                        outbound_in: totals.wire_out,
                        outbound_out: totals.wire_out,
                        inbound_in: totals.wire_in,
                        inbound_out: totals.wire_in,
                    };
                    (b, format!("{} connections", totals.connections))
                }
                name => match totals.layer(name) {
                    Some(b) => (*b, note(name, b)),
                    None => continue,
                },
            };
            rows.push([
                name.to_string(),
                side.to_string(),
                bytes(b.outbound_in),
                bytes(b.outbound_out),
                ratio(b.outbound_out, b.outbound_in),
                bytes(b.inbound_in),
                bytes(b.inbound_out),
                ratio(b.inbound_in, b.inbound_out),
                extra,
            ]);
        }
    }
    render(&rows)
}

/// Payload a side received: what the other side sent.
fn received_payload(sides: &[(&str, &StackTotals, u64)], side: &str) -> u64 {
    sides
        .iter()
        .find(|(s, _, _)| *s != side)
        .map_or(0, |(_, _, payload)| *payload)
}

/// Left-aligned columns, two spaces apart.
pub fn render<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (cell, w) in row.iter().zip(widths) {
            let _ = write!(line, "{cell:<w$}  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The shaper's figures: configured against achieved rate per connection
/// (over the measured `elapsed`), and the global counters' current and
/// peak throughput (over their window) and totals.
pub fn shaping_lines(
    configured: Option<Limit>,
    wire_out: u64,
    conns: usize,
    elapsed: Duration,
    traffic: Option<&TrafficStats>,
) -> Vec<String> {
    let mut lines = Vec::new();
    let per_conn = wire_out as f64 / elapsed.as_secs_f64().max(1e-9) / conns.max(1) as f64;
    match configured {
        Some(limit) => lines.push(format!(
            "shaped: configured {} per connection each way (burst {}), achieved {} ({:+.2}%, the burst included)",
            rate(limit.rate() as f64),
            bytes(limit.burst()),
            rate(per_conn),
            (per_conn / limit.rate() as f64 - 1.0) * 100.0
        )),
        None => lines.push(format!(
            "not limited per connection: {} per connection on the wire",
            rate(per_conn)
        )),
    }
    if let Some(t) = traffic {
        for (dir, d) in [("out", &t.outbound), ("in", &t.inbound)] {
            lines.push(format!(
                "traffic {dir:>3} (all connections): total {}, current {}, peak {}",
                bytes(d.total_bytes),
                rate(d.throughput as f64),
                rate(d.peak_throughput as f64)
            ));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(name: &'static str, n: u64) -> ConnectionStats {
        let bytes = ByteCounters {
            inbound_in: n,
            inbound_out: 2 * n,
            outbound_in: 3 * n,
            outbound_out: 4 * n,
        };
        let mut stats = ConnectionStats::default();
        stats.layers = vec![LayerStats::new(name, bytes)];
        stats.messages_in = 1;
        stats.messages_out = 2;
        stats.wire_in = n;
        stats.wire_out = 4 * n;
        stats
    }

    #[test]
    fn totals_sum_by_layer() {
        let mut t = StackTotals::default();
        t.add(&stats("zstd", 10));
        t.add(&stats("zstd", 5));
        assert_eq!(t.connections, 2);
        assert_eq!(t.layer("zstd").unwrap().outbound_out, 60);
        assert_eq!(t.wire_in, 15);
        let table = layer_table(&[("client", &t, 30), ("server", &t, 30)]);
        let lines: Vec<&str> = table.lines().collect();
        // Header, then frame, zstd and tcp rows for each side.
        assert_eq!(lines.len(), 7, "{table}");
        assert!(lines[3].starts_with("zstd   client  45 B"), "{table}");
        assert!(table.contains("compressed to 133.3%"), "{table}");
    }

    #[test]
    fn units() {
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1_234_567), "1.23 MB");
        assert_eq!(rate(2_500.0), "2.5 kB/s");
    }
}
