//! `netstrata`: echo server and load generator over netstrata stacks.

use std::io::IsTerminal;
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use netstrata_cli::load::{self, LoadOptions, Payload};
use netstrata_cli::{echo, stack::StackOptions};

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
    },
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
        Command::EchoServer { addr, threads } => {
            let addr = resolve(&addr)?;
            let threads = threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            let server = echo::serve(addr, threads, StackOptions::default())
                .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
            println!(
                "netstrata echo-server listening on {} ({threads} loops, {})",
                server.local_addr(),
                StackOptions::default().describe()
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
        } => {
            if !(secs.is_finite() && secs > 0.0) {
                return Err("--secs must be a positive number".into());
            }
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
                stack: StackOptions::default(),
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
