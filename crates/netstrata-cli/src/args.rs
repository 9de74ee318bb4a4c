//! Flags every subcommand shares, and how they become [`StackOptions`].
//! (A module of the binary: clap's derive lives here, not in the library.)

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use clap::{Args, ValueEnum};

use netstrata_cli::load::Payload;
use netstrata_cli::stack::{RateOptions, StackOptions, parse_bytes};
use netstrata_reactor::{Driver, LoopConfig};
use netstrata_shape::Limit;
use netstrata_zstd::{DecoderBudget, ZstdConfig};

/// Layer flags: zstd and shaping.
#[derive(Args, Debug)]
#[command(next_help_heading = "Layers")]
pub(crate) struct LayerArgs {
    /// Compress with zstd (one zstd frame per direction, flushed after each
    /// write batch, so every message is decodable on arrival).
    #[arg(long)]
    pub(crate) zstd: bool,
    /// zstd level, 1 (fastest) to 19 (smallest); with --zstd.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=19))]
    pub(crate) zstd_level: i32,
    /// Largest zstd window accepted from a peer, as a power of two: 23
    /// (8 MiB) takes what zstd and its libraries send at their defaults;
    /// lower it to spend less memory per connection.
    #[arg(long, default_value_t = ZstdConfig::DEFAULT_MAX_WINDOW_LOG,
          value_parser = clap::value_parser!(u32).range(10..=31))]
    pub(crate) zstd_max_window_log: u32,
    /// Memory all zstd decoders of this process may hold together (about
    /// the peer's window each); a connection that does not fit is refused
    /// (suffixes: 256MiB, 1GiB; default 1GiB).
    #[arg(long, value_parser = parse_bytes)]
    pub(crate) zstd_memory_budget: Option<u64>,
    /// Shape each connection to this many bytes per second on the wire, each
    /// way (suffixes: 500kB, 10MB, 512KiB).
    #[arg(long, value_parser = parse_bytes)]
    pub(crate) rate: Option<u64>,
    /// Largest burst of the per-connection shaper, in bytes (default: 50 ms
    /// of --rate).
    #[arg(long, value_parser = parse_bytes, requires = "rate")]
    pub(crate) burst: Option<u64>,
    /// Shape all connections of this process together to this many bytes
    /// per second each way, in fair shares.
    #[arg(long, value_parser = parse_bytes)]
    pub(crate) global_rate: Option<u64>,
    /// Window of the current-throughput figures shown with shaping (1s,
    /// 500ms; a bare number is seconds).
    #[arg(long, default_value_t = 1.0, value_parser = parse_secs)]
    pub(crate) window: f64,
}

impl LayerArgs {
    /// zstd and shaping into `stack`.
    pub(crate) fn apply(&self, stack: &mut StackOptions) -> Result<(), String> {
        if self.zstd {
            let mut config = ZstdConfig::new()
                .with_level(self.zstd_level)
                .with_max_window_log(self.zstd_max_window_log);
            if let Some(bytes) = self.zstd_memory_budget {
                let bytes = usize::try_from(bytes)
                    .map_err(|_| format!("--zstd-memory-budget: {bytes} bytes is too large"))?;
                config = config.with_decoder_budget(DecoderBudget::new(bytes));
            }
            stack.zstd = Some(config);
        }
        let per_connection = self
            .rate
            .map(|rate| match self.burst {
                Some(burst) => Limit::new(rate, burst),
                None => Limit::per_second(rate),
            })
            .transpose()
            .map_err(|e| format!("--rate/--burst: {e}"))?;
        let global = self
            .global_rate
            .map(Limit::per_second)
            .transpose()
            .map_err(|e| format!("--global-rate: {e}"))?;
        if per_connection.is_some() || global.is_some() {
            let window = Duration::from_secs_f64(self.window);
            stack.rate = Some(RateOptions::new(per_connection, global, window));
        }
        Ok(())
    }
}

/// The `--driver` flag of the subcommands that run event loops.
#[derive(Args, Debug)]
pub(crate) struct DriverArgs {
    // The help is a constant so that `demo` and `bench` can add what the
    // flag drives in them (`driver_help`).
    #[arg(long, value_name = "DRIVER", value_parser = parse_driver, help = DRIVER_HELP)]
    pub(crate) driver: Option<Driver>,
}

/// The help of `--driver`.
pub(crate) const DRIVER_HELP: &str = "Event-loop driver: epoll, uring (io_uring, falls back \
    to epoll with a logged reason where unavailable) or auto (default; the env \
    NETSTRATA_DRIVER sets it too)";

/// [`DRIVER_HELP`] and a note on which loops it drives.
pub(crate) fn driver_help(note: &str) -> String {
    format!("{DRIVER_HELP}. {note}")
}

impl DriverArgs {
    /// `config` with the driver asked for. Without the flag `config` keeps
    /// its own: what `NETSTRATA_DRIVER` names, else auto.
    pub(crate) fn apply(&self, config: LoopConfig) -> LoopConfig {
        match self.driver {
            Some(driver) => config.with_driver(driver),
            None => config,
        }
    }
}

/// An event-loop driver by name, as `NETSTRATA_DRIVER` takes it.
pub(crate) fn parse_driver(text: &str) -> Result<Driver, String> {
    Driver::parse(text).ok_or_else(|| format!("not a driver: {text:?} (use epoll, uring or auto)"))
}

/// What each message carries.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum PayloadArg {
    /// Repetitive JSON-like log lines (compressible).
    Text,
    /// Pseudo-random bytes (incompressible).
    Random,
}

impl From<PayloadArg> for Payload {
    fn from(p: PayloadArg) -> Self {
        match p {
            PayloadArg::Text => Self::Text,
            PayloadArg::Random => Self::Random,
        }
    }
}

/// A positive duration, in seconds: `5s`, `500ms`, `2m`, `1h`, or a bare
/// number of seconds (`0.5`, as before units were taken).
pub(crate) fn parse_secs(text: &str) -> Result<f64, String> {
    parse_duration(text, false)
}

/// A duration that may be zero (`--warmup 0`).
pub(crate) fn parse_secs_or_zero(text: &str) -> Result<f64, String> {
    parse_duration(text, true)
}

fn parse_duration(text: &str, zero: bool) -> Result<f64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let scale = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 1e-3,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => {
            return Err(format!(
                "not a duration: {text:?} (use 5s, 500ms, 2m or seconds)"
            ));
        }
    };
    match number.parse::<f64>().map(|n| n * scale) {
        Ok(s) if s.is_finite() && (s > 0.0 || zero && s == 0.0) && s < 1e6 => Ok(s),
        _ => Err(format!(
            "not a positive duration: {text:?} (use 5s, 500ms, 2m or seconds)"
        )),
    }
}

/// Messages a second: a positive number.
pub(crate) fn parse_msg_rate(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(n) if n.is_finite() && n > 0.0 => Ok(n),
        Ok(_) => Err("must be more than 0 messages a second".into()),
        Err(_) => Err(format!("not a number of messages a second: {text:?}")),
    }
}

/// A count of at least one (connections, frames in flight, threads).
pub(crate) fn parse_count(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        Ok(_) => Err("must be at least 1".into()),
        Err(_) => Err(format!("not a whole number: {text:?}")),
    }
}

/// A frame size: bytes with units (`64`, `16KiB`), at least 8, since a
/// sequence number leads each frame.
pub(crate) fn parse_frame_size(text: &str) -> Result<usize, String> {
    let bytes = parse_bytes(text)?;
    match usize::try_from(bytes) {
        Ok(n) if n >= 8 => Ok(n),
        Ok(_) => Err("must be at least 8 (each frame starts with a sequence number)".into()),
        Err(_) => Err(format!("too large: {text:?}")),
    }
}

/// `host:port` to one address.
pub(crate) fn resolve(addr: &str) -> Result<SocketAddr, String> {
    addr.to_socket_addrs()
        .map_err(|e| format!("cannot resolve {addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr} resolves to no address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units_and_bare_seconds() {
        assert_eq!(parse_secs("5s"), Ok(5.0));
        assert_eq!(parse_secs("500ms"), Ok(0.5));
        assert_eq!(parse_secs("2m"), Ok(120.0));
        assert_eq!(parse_secs("0.5"), Ok(0.5));
        assert_eq!(parse_secs("3"), Ok(3.0));
        for bad in ["abc", "0", "0s", "-1", "5x", "", "inf"] {
            assert!(parse_secs(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn counts_and_sizes_have_floors() {
        assert_eq!(parse_count("1"), Ok(1));
        assert!(parse_count("0").is_err());
        assert!(parse_count("-3").is_err());
        assert_eq!(parse_frame_size("16KiB"), Ok(16_384));
        assert_eq!(parse_frame_size("8"), Ok(8));
        assert!(parse_frame_size("4").is_err());
    }
}
