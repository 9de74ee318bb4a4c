//! Stack assembly for every subcommand, in one place: flags in, a
//! [`Connection`] out.
//!
//! The order is the default wire profile's, top to bottom: frames, zstd,
//! TLS, shaping (compress before encrypting; shape what goes on the wire).

use std::sync::Arc;
use std::time::{Duration, Instant};

use netstrata_core::{BoxedLayer, Connection, DynStack, RawCodec};
use netstrata_frame::LengthDelimited;
use netstrata_shape::{GlobalLimiter, Limit, ShapeConfig, Shaper, TrafficStats};
use netstrata_tls::Tls;
use netstrata_zstd::{Zstd, ZstdConfig};

/// Which side of TLS a connection is on, with its configuration.
#[derive(Debug, Clone)]
pub enum TlsSide {
    /// Accepting side.
    Server(Arc<rustls::ServerConfig>),
    /// Connecting side, verifying the server as `server_name`.
    Client {
        /// The client configuration (trust roots, ALPN).
        config: Arc<rustls::ClientConfig>,
        /// The name the server's certificate must carry (SNI).
        server_name: String,
    },
}

/// Shaping of each connection, and optionally of all together.
#[derive(Debug, Clone)]
pub struct RateOptions {
    /// Per-connection limit, both directions.
    pub per_connection: Option<Limit>,
    /// A limiter shared by every connection of the process: fair shares of
    /// its limit if it has one; with none it only counts, which gives the
    /// tool its global traffic figures ([`StackOptions::traffic`]).
    pub global: Option<GlobalLimiter>,
    /// Window of the current-throughput figures of each connection's shaper
    /// (the global limiter has its own, set when it is made).
    pub window: Duration,
}

impl RateOptions {
    /// Shaping with a per-connection `limit` (or none), counted by a global
    /// limiter that limits to `global` (or only counts), throughput measured
    /// over `window`.
    pub fn new(per_connection: Option<Limit>, global: Option<Limit>, window: Duration) -> Self {
        let mut config = ShapeConfig::new().with_window(window);
        if let Some(limit) = global {
            config = config.with_inbound(limit).with_outbound(limit);
        }
        Self {
            per_connection,
            global: Some(GlobalLimiter::new(config)),
            window,
        }
    }
}

/// The layers a subcommand's flags ask for.
#[derive(Debug, Clone, Default)]
pub struct StackOptions {
    /// zstd with this configuration.
    pub zstd: Option<ZstdConfig>,
    /// TLS on this side.
    pub tls: Option<TlsSide>,
    /// Shaping.
    pub rate: Option<RateOptions>,
}

impl StackOptions {
    /// A connection with these layers over the default wire profile's
    /// framing: 4-byte big-endian lengths, 8 MiB maximum.
    ///
    /// # Errors
    /// A TLS client whose server name is not a valid DNS name or IP address.
    pub fn connection(&self) -> Result<Connection<DynStack, LengthDelimited>, String> {
        Ok(Connection::new(
            DynStack::new(self.layers()?),
            LengthDelimited::new(),
        ))
    }

    /// A connection of these layers and no framing: bytes in, bytes out
    /// (the tunnel's stack side; with no layer, its plain side).
    ///
    /// # Errors
    /// As [`connection`](Self::connection).
    pub fn raw_connection(&self) -> Result<Connection<DynStack, RawCodec>, String> {
        Ok(Connection::new(
            DynStack::new(self.layers()?),
            RawCodec::new(),
        ))
    }

    /// The global traffic figures at `now` (every connection made from
    /// these options), if shaping is on.
    pub fn traffic(&self, now: Instant) -> Option<TrafficStats> {
        let global = self.rate.as_ref()?.global.as_ref()?;
        Some(global.stats(now))
    }

    /// The layers, top first.
    fn layers(&self) -> Result<Vec<BoxedLayer>, String> {
        let mut layers: Vec<BoxedLayer> = Vec::new();
        if let Some(config) = &self.zstd {
            layers.push(Box::new(Zstd::with_config(config.clone())));
        }
        match &self.tls {
            Some(TlsSide::Server(config)) => {
                let tls = Tls::server(Arc::clone(config)).map_err(|e| e.to_string())?;
                layers.push(Box::new(tls));
            }
            Some(TlsSide::Client {
                config,
                server_name,
            }) => {
                let tls = Tls::client(Arc::clone(config), server_name)
                    .map_err(|e| format!("TLS server name {server_name:?}: {e}"))?;
                layers.push(Box::new(tls));
            }
            None => {}
        }
        if let Some(rate) = &self.rate {
            let mut config = ShapeConfig::new().with_window(rate.window);
            if let Some(limit) = rate.per_connection {
                config = config.with_inbound(limit).with_outbound(limit);
            }
            let mut shaper = Shaper::new(config);
            if let Some(global) = &rate.global {
                shaper = shaper.with_global(global);
            }
            layers.push(Box::new(shaper));
        }
        Ok(layers)
    }

    /// A short description for reports ("zstd+tls+shape", or "plain").
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(z) = &self.zstd {
            parts.push(format!("zstd(level {})", z.level()));
        }
        if self.tls.is_some() {
            parts.push("tls".to_string());
        }
        if let Some(rate) = &self.rate {
            let mut s = String::from("shape(");
            if let Some(l) = rate.per_connection {
                s.push_str(&format!("{} B/s per connection", l.rate()));
            }
            if let Some(g) = &rate.global {
                let total = g.limit(netstrata_shape::Direction::Outbound);
                if let Some(l) = total {
                    if rate.per_connection.is_some() {
                        s.push_str(", ");
                    }
                    s.push_str(&format!("{} B/s global", l.rate()));
                }
            }
            if s.len() == "shape(".len() {
                s.push_str("counting only");
            }
            s.push(')');
            parts.push(s);
        }
        if parts.is_empty() {
            "plain".to_string()
        } else {
            parts.join("+")
        }
    }
}

/// Parses a rate or size with an optional unit: `1000`, `10MB`, `512KiB`,
/// `1.5GB` (K/M/G are powers of 1000, Ki/Mi/Gi powers of 1024; a trailing
/// `B` or `/s` is allowed).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let t = t.strip_suffix("/s").unwrap_or(t);
    let t = t
        .strip_suffix('B')
        .or_else(|| t.strip_suffix('b'))
        .unwrap_or(t);
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("not a number of bytes: {text:?}"))?;
    let scale: f64 = match unit.to_ascii_lowercase().as_str() {
        "" => 1.0,
        "k" => 1e3,
        "m" => 1e6,
        "g" => 1e9,
        "ki" => 1024.0,
        "mi" => 1024.0 * 1024.0,
        "gi" => 1024.0 * 1024.0 * 1024.0,
        _ => {
            return Err(format!(
                "unknown unit in {text:?} (use K, M, G, Ki, Mi or Gi)"
            ));
        }
    };
    let bytes = value * scale;
    if !(1.0..1e15).contains(&bytes) {
        return Err(format!("out of range: {text:?}"));
    }
    Ok(bytes.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_units() {
        assert_eq!(parse_bytes("1000"), Ok(1000));
        assert_eq!(parse_bytes("10MB"), Ok(10_000_000));
        assert_eq!(parse_bytes("512KiB"), Ok(512 * 1024));
        assert_eq!(parse_bytes("1.5GB/s"), Ok(1_500_000_000));
        assert_eq!(parse_bytes("2Mi"), Ok(2 * 1024 * 1024));
        assert!(parse_bytes("fast").is_err());
        assert!(parse_bytes("10XB").is_err());
        assert!(parse_bytes("0").is_err());
    }
}
