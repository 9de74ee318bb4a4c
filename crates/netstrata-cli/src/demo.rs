//! `netstrata demo`: an echo server and a load generator in one process on
//! loopback, over the default stack (frames, zstd, TLS with a generated
//! certificate, shaping), then a table of what each layer did.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use netstrata_reactor::{Driver, LoopConfig};
use netstrata_shape::{Limit, TrafficStats};
use netstrata_tls::{ClientOptions, ServerOptions, dev_certs::DevCa};
use netstrata_zstd::ZstdConfig;

use crate::echo;
use crate::load::{self, LoadOptions, Payload, Progress, Report};
use crate::report::{StackTotals, layer_table, shaping_lines};
use crate::stack::{RateOptions, StackOptions, TlsSide};

/// What the demo runs; [`Default`] is the full stack for three seconds.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Client connections.
    pub conns: usize,
    /// Messages in flight per connection.
    pub depth: usize,
    /// Bytes per message (at least 8).
    pub size: usize,
    /// How long to measure.
    pub duration: Duration,
    /// Payload kind.
    pub payload: Payload,
    /// TLS 1.3 with a development certificate made for the run.
    pub tls: bool,
    /// zstd at this level.
    pub zstd_level: Option<i32>,
    /// Shaping of each connection, each way, on both sides.
    pub rate: Option<Limit>,
    /// Window of the current-throughput counters.
    pub window: Duration,
    /// The echo server's event-loop driver; `None`: the one
    /// [`LoopConfig::new`] picks (`NETSTRATA_DRIVER`, else auto). The load
    /// client's loops always take that default.
    pub driver: Option<Driver>,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            conns: 4,
            depth: 8,
            size: 1024,
            duration: Duration::from_secs(3),
            payload: Payload::Text,
            tls: true,
            zstd_level: Some(3),
            rate: Limit::per_second(DEFAULT_RATE).ok(),
            window: Duration::from_secs(1),
            driver: None,
        }
    }
}

/// Default shaping per connection (bytes per second on the wire): low
/// enough that the shaper, not the CPU, sets the pace of compressed text.
pub const DEFAULT_RATE: u64 = 250_000;

/// A server and a client configuration trusting a development CA made now.
///
/// # Errors
/// The certificate cannot be made or the configurations built.
pub fn dev_tls() -> Result<(TlsSide, TlsSide), String> {
    let ca = DevCa::new().map_err(|e| format!("development CA: {e}"))?;
    let leaf = ca
        .issue(&["localhost"])
        .map_err(|e| format!("development certificate: {e}"))?;
    let server = ServerOptions::new()
        .with_identity(leaf.identity())
        .build()
        .map_err(|e| format!("TLS server configuration: {e}"))?;
    let client = ClientOptions::new(ca.roots())
        .build()
        .map_err(|e| format!("TLS client configuration: {e}"))?;
    let client = TlsSide::Client {
        config: client,
        server_name: "localhost".into(),
    };
    Ok((TlsSide::Server(server), client))
}

/// What the demo measured.
#[derive(Debug, Clone)]
pub struct DemoReport {
    /// The options it ran with.
    pub options: DemoOptions,
    /// The stack, described.
    pub stack: String,
    /// The load generator's figures (its connections are the client side).
    pub load: Report,
    /// The echo server's connections, summed.
    pub server: StackTotals,
    /// The server's shaper counters at the end of the measured window.
    pub server_traffic: Option<TrafficStats>,
}

/// Runs the demo, calling `progress` about ten times a second.
///
/// # Errors
/// The server cannot start, TLS cannot be set up, or the load fails to run.
pub fn run(opts: &DemoOptions, mut progress: impl FnMut(Progress)) -> Result<DemoReport, String> {
    let (server_tls, client_tls) = match opts.tls {
        true => {
            let (s, c) = dev_tls()?;
            (Some(s), Some(c))
        }
        false => (None, None),
    };
    let zstd = opts
        .zstd_level
        .map(|level| ZstdConfig::new().with_level(level));
    // Each side counts its own connections' traffic.
    let rate = || {
        opts.rate
            .map(|limit| RateOptions::new(Some(limit), None, opts.window))
    };
    let server_stack = StackOptions {
        zstd: zstd.clone(),
        tls: server_tls,
        rate: rate(),
    };
    let client_stack = StackOptions {
        zstd,
        tls: client_tls,
        rate: rate(),
    };
    let totals = Arc::new(Mutex::new(StackTotals::default()));
    let server_loop = match opts.driver {
        Some(driver) => LoopConfig::new().with_driver(driver),
        None => LoopConfig::new(),
    };
    let server = echo::serve_counted(
        "127.0.0.1:0".parse().expect("a literal address"),
        echo::Loops::PerThread(1),
        server_stack.clone(),
        Some(Arc::clone(&totals)),
        server_loop,
    )
    .map_err(|e| format!("echo server: {e}"))?;
    let load_opts = LoadOptions {
        conns: opts.conns.max(1),
        depth: opts.depth,
        size: opts.size,
        duration: opts.duration,
        payload: opts.payload,
        ..LoadOptions::new(server.local_addr(), client_stack.clone())
    };
    let mut server_traffic = None;
    let load = load::run(&load_opts, |p| {
        server_traffic = server_stack.traffic(Instant::now());
        progress(p);
    });
    // Closes what is left in order; every connection's figures are in.
    let stopped = server.shutdown(Duration::from_secs(2));
    let load = load.map_err(|e| format!("load: {e}"))?;
    stopped.map_err(|e| format!("echo server: {e}"))?;
    let server = std::mem::take(&mut *totals.lock().unwrap_or_else(PoisonError::into_inner));
    Ok(DemoReport {
        options: opts.clone(),
        stack: client_stack.describe(),
        load,
        server,
        server_traffic,
    })
}

impl fmt::Display for DemoReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.options;
        let l = &self.load;
        let conns = o.conns.max(1);
        writeln!(
            f,
            "netstrata demo: {conns} connections x {} in flight x {} B messages over loopback, {:.1} s",
            o.depth,
            o.size,
            l.elapsed.as_secs_f64()
        )?;
        writeln!(f, "stack, both sides: frame+{}", self.stack)?;
        writeln!(
            f,
            "bytes summed over each side's connections; out: application toward wire, in: wire toward application"
        )?;
        writeln!(f)?;
        // Payload each side sent: the client's messages, echoed by the server.
        let client_payload = l.totals.messages_out * o.size as u64;
        let server_payload = self.server.messages_out * o.size as u64;
        f.write_str(&layer_table(&[
            ("client", &l.totals, client_payload),
            ("server", &self.server, server_payload),
        ]))?;
        writeln!(f)?;
        let configured = o.rate;
        if o.rate.is_some() {
            for line in shaping_lines(configured, l.wire_out, conns, l.elapsed, l.traffic.as_ref())
            {
                writeln!(f, "client {line}")?;
            }
            let server_lines = shaping_lines(
                configured,
                self.server.wire_out,
                conns,
                l.elapsed,
                self.server_traffic.as_ref(),
            );
            // The server's achieved rate counts the drain after the window.
            for line in server_lines.iter().skip(1) {
                writeln!(f, "server {line}")?;
            }
        }
        writeln!(
            f,
            "{:.0} msgs/s, {:.2} MB/s payload each way",
            l.msgs_per_sec(),
            l.mb_per_sec()
        )?;
        writeln!(f, "round trip: {}", l.latency)?;
        writeln!(f, "errors: {}", l.errors)?;
        for e in &l.error_samples {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}
