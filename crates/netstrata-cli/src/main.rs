//! `netstrata`: echo server and load generator over netstrata stacks.
#![forbid(unsafe_code)]

use std::io::IsTerminal;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use netstrata_cli::echo;
use netstrata_cli::load::{self, LoadOptions, Payload};
use netstrata_cli::stack::{RateOptions, StackOptions, TlsSide, parse_bytes};
use netstrata_shape::{GlobalLimiter, Limit, ShapeConfig};
use netstrata_tls::{ClientOptions, Identity, ServerOptions, dev_certs::DevCa, pem};
use netstrata_zstd::ZstdConfig;

/// Layered, sans-IO networking: servers and load over netstrata stacks.
#[derive(Parser)]
#[command(name = "netstrata", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Echo every length-delimited frame back (4-byte big-endian length, at
    /// most 8 MiB: the default wire profile).
    EchoServer {
        /// Address to listen on (port 0 picks one and prints it).
        #[arg(long, default_value = "127.0.0.1:7000")]
        addr: String,
        /// Event loops, one thread each, sharing the port (default: one per core).
        #[arg(long)]
        threads: Option<usize>,
        /// TLS: with --cert and --key, or alone for a generated development
        /// certificate (its CA is written to --ca-out for clients).
        #[arg(long)]
        tls: bool,
        /// PEM certificate chain (with --tls).
        #[arg(long, requires = "key")]
        cert: Option<PathBuf>,
        /// PEM private key (with --tls).
        #[arg(long, requires = "cert")]
        key: Option<PathBuf>,
        /// Where to write the development CA (with --tls alone).
        #[arg(long)]
        ca_out: Option<PathBuf>,
        /// Shape all connections together to this many bytes/s each way,
        /// shared fairly (suffixes: 10MB, 512KiB).
        #[arg(long, value_parser = parse_bytes)]
        global_rate: Option<u64>,
        #[command(flatten)]
        layers: LayerArgs,
    },
    /// Load an echo server: C connections each keep D frames in flight;
    /// every echoed byte is verified. Exits non-zero on any error.
    Bench {
        /// The echo server's address.
        #[arg(long, default_value = "127.0.0.1:7000")]
        addr: String,
        /// Connections.
        #[arg(long, default_value_t = 16)]
        conns: usize,
        /// Frames in flight per connection.
        #[arg(long, default_value_t = 16)]
        depth: usize,
        /// Bytes per frame (at least 8).
        #[arg(long, default_value_t = 64)]
        size: usize,
        /// Seconds to measure.
        #[arg(long, default_value_t = 5.0)]
        secs: f64,
        /// Payload kind.
        #[arg(long, value_enum, default_value_t = PayloadArg::Text)]
        payload: PayloadArg,
        /// Print one JSON line instead of a report.
        #[arg(long)]
        json: bool,
        /// TLS to the server, verified against --ca (or the webpki roots).
        #[arg(long)]
        tls: bool,
        /// PEM file of CA certificates to trust (with --tls).
        #[arg(long)]
        ca: Option<PathBuf>,
        /// Name the server's certificate must carry (with --tls).
        #[arg(long, default_value = "localhost")]
        server_name: String,
        #[command(flatten)]
        layers: LayerArgs,
    },
}

/// Layer flags both subcommands share.
#[derive(Args)]
struct LayerArgs {
    /// zstd compression (one frame per direction, flushed per batch).
    #[arg(long)]
    zstd: bool,
    /// zstd level (with --zstd).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=19))]
    zstd_level: i32,
    /// Shape each connection to this many bytes/s each way (suffixes: 10MB, 512KiB).
    #[arg(long, value_parser = parse_bytes)]
    rate: Option<u64>,
    /// Burst of the per-connection shaper in bytes (default: 50 ms of the rate).
    #[arg(long, value_parser = parse_bytes, requires = "rate")]
    burst: Option<u64>,
}

impl LayerArgs {
    /// zstd and shaping into `stack`.
    fn apply(&self, stack: &mut StackOptions, global: Option<GlobalLimiter>) -> Result<(), String> {
        if self.zstd {
            stack.zstd = Some(ZstdConfig::new().with_level(self.zstd_level));
        }
        let per_connection = self
            .rate
            .map(|rate| match self.burst {
                Some(burst) => Limit::new(rate, burst),
                None => Limit::per_second(rate),
            })
            .transpose()
            .map_err(|e| format!("--rate/--burst: {e}"))?;
        if per_connection.is_some() || global.is_some() {
            stack.rate = Some(RateOptions {
                per_connection,
                global,
            });
        }
        Ok(())
    }
}

/// The server's TLS configuration: from files, or a development CA.
fn server_tls(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    ca_out: Option<PathBuf>,
) -> Result<TlsSide, String> {
    let identity = match (cert, key) {
        (Some(cert), Some(key)) => Identity::from_pem_files(&cert, &key)
            .map_err(|e| format!("cannot load {} / {}: {e}", cert.display(), key.display()))?,
        _ => {
            let ca = DevCa::new().map_err(|e| format!("development CA: {e}"))?;
            let leaf = ca
                .issue(&["localhost", "127.0.0.1"])
                .map_err(|e| format!("development certificate: {e}"))?;
            let path = ca_out.unwrap_or_else(|| std::env::temp_dir().join("netstrata-dev-ca.pem"));
            std::fs::write(&path, ca.cert_pem())
                .map_err(|e| format!("cannot write the CA to {}: {e}", path.display()))?;
            println!(
                "development CA written to {} (clients: --tls --ca {})",
                path.display(),
                path.display()
            );
            leaf.identity()
        }
    };
    let config = ServerOptions::new()
        .with_identity(identity)
        .build()
        .map_err(|e| format!("TLS configuration: {e}"))?;
    Ok(TlsSide::Server(config))
}

/// The client's TLS configuration.
fn client_tls(ca: Option<PathBuf>, server_name: String) -> Result<TlsSide, String> {
    let options = match ca {
        Some(path) => ClientOptions::new(
            pem::load_roots(&path).map_err(|e| format!("cannot load {}: {e}", path.display()))?,
        ),
        None => ClientOptions::with_webpki_roots(),
    };
    let config = options
        .build()
        .map_err(|e| format!("TLS configuration: {e}"))?;
    Ok(TlsSide::Client {
        config,
        server_name,
    })
}

#[derive(Clone, Copy, ValueEnum)]
enum PayloadArg {
    /// Repetitive JSON-like log lines.
    Text,
    /// Pseudo-random bytes.
    Random,
}

fn resolve(addr: &str) -> Result<SocketAddr, String> {
    addr.to_socket_addrs()
        .map_err(|e| format!("cannot resolve {addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr} resolves to no address"))
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("netstrata: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, String> {
    match cli.command {
        Command::EchoServer {
            addr,
            threads,
            tls,
            cert,
            key,
            ca_out,
            global_rate,
            layers,
        } => {
            let addr = resolve(&addr)?;
            let threads = threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            if !tls && (cert.is_some() || ca_out.is_some()) {
                return Err("--cert, --key and --ca-out need --tls".into());
            }
            let mut stack = StackOptions::default();
            if tls {
                stack.tls = Some(server_tls(cert, key, ca_out)?);
            }
            let global = global_rate
                .map(|rate| {
                    let limit =
                        Limit::per_second(rate).map_err(|e| format!("--global-rate: {e}"))?;
                    let config = ShapeConfig::new().with_inbound(limit).with_outbound(limit);
                    Ok::<_, String>(GlobalLimiter::new(config))
                })
                .transpose()?;
            layers.apply(&mut stack, global)?;
            let described = stack.describe();
            let server = echo::serve(addr, threads, stack)
                .map_err(|e| format!("cannot serve on {addr}: {e}"))?;
            println!(
                "netstrata echo-server listening on {} ({threads} loops, {described})",
                server.local_addr(),
            );
            server.join().map_err(|e| format!("server failed: {e}"))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            addr,
            conns,
            depth,
            size,
            secs,
            payload,
            json,
            tls,
            ca,
            server_name,
            layers,
        } => {
            if !(secs.is_finite() && secs > 0.0) {
                return Err("--secs must be a positive number".into());
            }
            let mut stack = StackOptions::default();
            if tls {
                stack.tls = Some(client_tls(ca, server_name)?);
            } else if ca.is_some() {
                return Err("--ca needs --tls".into());
            }
            layers.apply(&mut stack, None)?;
            let configured_rate = layers.rate;
            let opts = LoadOptions {
                addr: resolve(&addr)?,
                conns: conns.max(1),
                depth,
                size,
                duration: Duration::from_secs_f64(secs),
                payload: match payload {
                    PayloadArg::Text => Payload::Text,
                    PayloadArg::Random => Payload::Random,
                },
                stack,
            };
            let bar = (!json && std::io::stderr().is_terminal()).then(|| {
                let bar = ProgressBar::new((secs * 10.0) as u64);
                bar.set_style(
                    ProgressStyle::with_template("{bar:40} {elapsed}/{duration} {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                bar
            });
            let report = load::run(&opts, |p| {
                if let Some(bar) = &bar {
                    bar.set_position((p.elapsed.as_secs_f64() * 10.0) as u64);
                    let rate = p.messages as f64 / p.elapsed.as_secs_f64().max(1e-3);
                    bar.set_message(format!("{rate:.0} msgs/s"));
                }
            })
            .map_err(|e| format!("bench against {addr} failed: {e}"))?;
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            let stack = opts.stack.describe();
            if json {
                println!("{}", report.json(&stack));
            } else {
                let [p50, p99, p999, max] = report.latency_us;
                println!(
                    "{} conns x depth {} x {} B ({stack}), {:.1} s",
                    opts.conns,
                    depth,
                    size,
                    report.elapsed.as_secs_f64()
                );
                println!(
                    "  {:.0} msgs/s, {:.2} MB/s payload each way",
                    report.msgs_per_sec(),
                    report.mb_per_sec()
                );
                println!("  round trip: p50 {p50} µs, p99 {p99} µs, p99.9 {p999} µs, max {max} µs");
                if let Some(rate) = configured_rate {
                    let per_conn = report.wire_bytes_per_sec() / opts.conns as f64;
                    println!(
                        "  shaped: {per_conn:.0} B/s per connection on the wire, configured {rate} B/s ({:+.2}%)",
                        (per_conn / rate as f64 - 1.0) * 100.0
                    );
                }
                println!("  errors: {}", report.errors);
                for e in &report.error_samples {
                    println!("    {e}");
                }
            }
            Ok(if report.errors == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}
