//! `netstrata`: demo, echo server, load generator and tunnel over netstrata
//! stacks.
#![forbid(unsafe_code)]

/// `println!` that ignores a closed stdout (`netstrata demo | head`)
/// instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// `eprintln!` that ignores a closed stderr instead of panicking.
macro_rules! complain {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

mod args;
mod bench;
mod dev_ca;
mod live;
mod logging;
mod prometheus;
mod serve;
mod signals;
mod tls_args;

#[cfg(test)]
mod cli_tests;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use args::{
    DriverArgs, LayerArgs, PayloadArg, driver_help, parse_count, parse_frame_size, parse_secs,
    resolve,
};
use bench::{LoadArgs, PlotArg};
use clap::{Parser, Subcommand, ValueEnum};
use netstrata_cli::demo::{self, DemoOptions};
use netstrata_cli::echo;
use netstrata_cli::fault::{FaultConfig, FaultSpec};
use netstrata_cli::stack::{StackOptions, parse_bytes};
use netstrata_cli::tunnel::{StackSide, TunnelOptions};
use netstrata_shape::Limit;
use serve::StatsArgs;
use tls_args::{AcceptTls, ConnectTls, EitherTls, Role};

/// Layered, sans-IO networking: try `netstrata demo`.
///
/// Every stack is, top to bottom: length-delimited frames (4-byte
/// big-endian length), zstd, TLS, shaping, TCP; each layer is optional.
#[derive(Parser)]
#[command(name = "netstrata", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log more: -v shows every connection's close and its reason (debug),
    /// -vv everything netstrata logs (trace). Warnings are always shown;
    /// RUST_LOG, when set, decides instead (e.g. RUST_LOG=netstrata_zstd=debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
}

#[derive(Subcommand)]
enum Command {
    /// Server and clients in one process over loopback and the full stack
    /// (frames, zstd, TLS with a generated certificate, shaping), a
    /// progress bar, then a table of what each layer did.
    #[command(
        after_help = DEMO_EXAMPLES,
        mut_arg("driver", |a| a.help(driver_help(
            "It drives the echo server's loop; the load client's loop keeps the default"
        )))
    )]
    Demo(DemoArgs),
    /// Echo every length-delimited frame back (4-byte big-endian length, at
    /// most 8 MiB: the default wire profile).
    #[command(after_help = ECHO_SERVER_EXAMPLES)]
    EchoServer {
        /// Address to listen on (port 0 picks one and prints it).
        #[arg(long, default_value = "127.0.0.1:7000")]
        addr: String,
        /// Event loops, one thread each, sharing the port (default: one per core).
        #[arg(long, value_parser = parse_count)]
        threads: Option<usize>,
        /// Run this many event loops that the threads take turns to run:
        /// any free thread runs any loop with work, so a thread the kernel
        /// sets aside holds up no connection for long (best when the
        /// server shares its cores with other busy threads). Without it,
        /// each thread runs one loop of its own.
        #[arg(long, value_parser = parse_count)]
        shared_loops: Option<usize>,
        #[command(flatten)]
        driver: DriverArgs,
        #[command(flatten)]
        stats: StatsArgs,
        #[command(flatten)]
        tls: AcceptTls,
        #[command(flatten)]
        layers: LayerArgs,
    },
    /// Load an echo server: C connections each keep D frames in flight;
    /// every echoed byte is verified. Exits non-zero on any error.
    #[command(
        after_help = BENCH_EXAMPLES,
        mut_arg("driver", |a| a.help(driver_help(
            "It drives the client loops: bench starts no server"
        )))
    )]
    Bench {
        /// The echo server's address.
        #[arg(long, visible_alias = "connect", default_value = "127.0.0.1:7000")]
        addr: String,
        #[command(flatten)]
        load: LoadArgs,
        /// Print one JSON line instead of a report.
        #[arg(long)]
        json: bool,
        /// Also draw a chart to this SVG file (convert it for a PNG).
        #[arg(long)]
        plot: Option<PathBuf>,
        /// What --plot draws.
        #[arg(long, value_enum, default_value_t = PlotArg::Latency, requires = "plot")]
        plot_kind: PlotArg,
        #[command(flatten)]
        tls: ConnectTls,
        #[command(flatten)]
        layers: LayerArgs,
    },
    /// Plain TCP on one side, a netstrata stack on the other: two tunnels
    /// back to back carry any TCP protocol compressed, encrypted and shaped.
    ///
    /// With `--stack-side listen` the tunnel is the TLS server (--cert and
    /// --key, or a development CA written to --ca-out; --client-ca requires
    /// client certificates); with `connect` it is the client (--ca,
    /// --server-name; --client-cert and --client-key show a certificate).
    #[command(after_help = TUNNEL_EXAMPLES)]
    Tunnel {
        /// Where to accept connections.
        #[arg(long)]
        listen: String,
        /// Where to connect for each accepted connection.
        #[arg(long)]
        connect: String,
        /// The side that speaks the netstrata stack; the other is plain TCP.
        #[arg(long, value_enum)]
        stack_side: StackSideArg,
        /// Do not log each tunnelled connection as it ends.
        #[arg(long)]
        quiet: bool,
        #[command(flatten)]
        driver: DriverArgs,
        #[command(flatten)]
        stats: StatsArgs,
        #[command(flatten)]
        tls: EitherTls,
        #[command(flatten)]
        layers: LayerArgs,
    },
    /// TCP in, TCP out, with faults on the way: rechunk, delay, stall,
    /// cut (FIN), reset (RST), a flipped bit, a bandwidth cap; one spec
    /// per direction, every random decision from --seed.
    ///
    /// A spec is a comma-separated list: rechunk=A..B (pieces of A to B
    /// bytes; rechunk=N for 1..N), delay=D (each piece held for D),
    /// stall=D@N (nothing for D after N bytes), cut@N (FIN after N
    /// bytes; the other direction keeps flowing), reset@N (RST to both
    /// ends after N bytes), flip@N or flip@N:B (flip bit B of the byte at
    /// offset N), rate=R (bytes per second). Durations take us, ms or s.
    #[command(after_help = FAULT_PROXY_EXAMPLES)]
    FaultProxy {
        /// Where to accept connections (port 0 picks one and prints it).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
        /// Where to connect for each accepted connection.
        #[arg(long)]
        upstream: String,
        /// Seed of the random piece sizes (the same seed replays a run).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Faults of the client → server direction.
        #[arg(long, default_value = "none", value_parser = parse_fault_spec)]
        up: FaultSpec,
        /// Faults of the server → client direction.
        #[arg(long, default_value = "none", value_parser = parse_fault_spec)]
        down: FaultSpec,
    },
}

fn parse_fault_spec(text: &str) -> Result<FaultSpec, String> {
    text.parse()
}

const FAULT_PROXY_EXAMPLES: &str = "\
Examples:
  netstrata fault-proxy --listen 127.0.0.1:7100 --upstream 127.0.0.1:7000 \\
      --seed 7 --up 'rechunk=1..64,cut@4096' --down 'flip@100'
  netstrata fault-proxy --upstream 127.0.0.1:7000 --down 'stall=2s@1000,rate=64KB'";

const DEMO_EXAMPLES: &str = "\
Examples:
  netstrata demo
  netstrata demo --secs 10s --conns 16 --size 16KiB --payload random
  netstrata demo --no-tls --no-rate --zstd-level 9";

const ECHO_SERVER_EXAMPLES: &str = "\
Examples:
  netstrata echo-server --addr 127.0.0.1:7000
  netstrata echo-server --tls --ca-out ca.pem --zstd --stats-every 10s
  netstrata echo-server --tls --cert server.pem --key server.key --client-ca clients.pem
  netstrata echo-server --rate 10MB --metrics 127.0.0.1:9100";

const BENCH_EXAMPLES: &str = "\
Examples:
  netstrata bench --addr 127.0.0.1:7000 --conns 64 --depth 32 --secs 10s
  netstrata bench --tls --ca ca.pem --zstd --size 16KiB --json
  netstrata bench --tls --ca ca.pem --client-cert client.pem --client-key client.key
  netstrata bench --rate 1MB --plot latency.svg";

const TUNNEL_EXAMPLES: &str = "\
Examples:
  # In front of a web server on :8080: TLS server, client certificates required
  netstrata tunnel --listen 127.0.0.1:9001 --connect 127.0.0.1:8080 \\
      --stack-side listen --tls --ca-out ca.pem --client-ca clients.pem --zstd
  # Plain on :9000, TLS client with a certificate toward the other tunnel
  netstrata tunnel --listen 127.0.0.1:9000 --connect 127.0.0.1:9001 \\
      --stack-side connect --tls --ca ca.pem --client-cert client.pem \\
      --client-key client.key --zstd
  curl http://127.0.0.1:9000/
  # Without TLS, shaped, with Prometheus metrics
  netstrata tunnel --listen 127.0.0.1:9000 --connect 127.0.0.1:8080 \\
      --stack-side connect --rate 1MB --metrics 127.0.0.1:9100";

#[derive(clap::Args)]
struct DemoArgs {
    /// Client connections.
    #[arg(long, default_value_t = 4, value_parser = parse_count)]
    conns: usize,
    /// Messages in flight per connection.
    #[arg(long, default_value_t = 8, value_parser = parse_count)]
    depth: usize,
    /// Bytes per message, at least 8 (suffixes: 1KiB, 16KiB).
    #[arg(long, default_value_t = 1024, value_parser = parse_frame_size)]
    size: usize,
    /// How long to measure: 5s, 500ms, 2m, or a number of seconds.
    #[arg(long, default_value_t = 3.0, value_parser = parse_secs)]
    secs: f64,
    /// What each message carries.
    #[arg(long, value_enum, default_value_t = PayloadArg::Text)]
    payload: PayloadArg,
    /// Leave TLS out.
    #[arg(long)]
    no_tls: bool,
    /// Leave zstd out.
    #[arg(long)]
    no_zstd: bool,
    /// zstd level, 1 to 19.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=19))]
    zstd_level: i32,
    /// Shape each connection to this many bytes per second on the wire,
    /// each way, on both sides (suffixes: 500kB, 10MB, 512KiB).
    #[arg(long, value_parser = parse_bytes, default_value_t = demo::DEFAULT_RATE, conflicts_with = "no_rate")]
    rate: u64,
    /// Leave shaping out.
    #[arg(long)]
    no_rate: bool,
    /// Window of the current-throughput counters (1s, 500ms; bare: seconds).
    #[arg(long, default_value_t = 1.0, value_parser = parse_secs)]
    window: f64,
    #[command(flatten)]
    driver: DriverArgs,
}

#[derive(Clone, Copy, ValueEnum)]
enum StackSideArg {
    /// Clients of the tunnel speak the stack; the target is plain TCP.
    Listen,
    /// The target speaks the stack; clients are plain TCP.
    Connect,
}

/// Why the tool gives up: a sentence with its cause, and the exit status.
pub(crate) enum Failure {
    /// The flags ask for something that cannot be set up (status 2).
    Setup(String),
    /// The run itself failed (status 1).
    Run(String),
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Self::Setup(message)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.verbose);
    match run(cli) {
        Ok(code) => code,
        Err(Failure::Setup(message)) => {
            complain!("error: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Run(message)) => {
            complain!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, Failure> {
    match cli.command {
        Command::Demo(a) => run_demo(a),
        Command::EchoServer {
            addr,
            threads,
            shared_loops,
            driver,
            stats,
            tls,
            layers,
        } => {
            let addr = resolve(&addr)?;
            let threads = threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            let mut stack = StackOptions {
                tls: tls.side()?,
                ..StackOptions::default()
            };
            layers.apply(&mut stack)?;
            stats.count(&mut stack, &layers);
            let loops = match shared_loops {
                Some(loops) => echo::Loops::Shared { threads, loops },
                None => echo::Loops::PerThread(threads),
            };
            serve::echo_server(addr, loops, stack, &stats, &driver)
        }
        Command::Bench {
            addr,
            load,
            json,
            plot,
            plot_kind,
            tls,
            layers,
        } => bench::run(&addr, &load, json, plot.as_deref(), plot_kind, tls, layers),
        Command::Tunnel {
            listen,
            connect,
            stack_side,
            quiet,
            driver,
            stats,
            tls,
            layers,
        } => {
            let (stack_side, role) = match stack_side {
                StackSideArg::Listen => (StackSide::Listen, Role::Server),
                StackSideArg::Connect => (StackSide::Connect, Role::Client),
            };
            let mut stack = StackOptions {
                tls: tls.side(role)?,
                ..StackOptions::default()
            };
            layers.apply(&mut stack)?;
            stats.count(&mut stack, &layers);
            let opts = TunnelOptions {
                listen: resolve(&listen)?,
                connect: resolve(&connect)?,
                stack_side,
                stack,
                log: !quiet,
            };
            serve::tunnel(opts, &stats, &driver)
        }
        Command::FaultProxy {
            listen,
            upstream,
            seed,
            up,
            down,
        } => {
            let config = FaultConfig::new(seed)
                .with_upstream(up)
                .with_downstream(down);
            serve::fault_proxy(resolve(&listen)?, resolve(&upstream)?, config)
        }
    }
}

fn run_demo(a: DemoArgs) -> Result<ExitCode, Failure> {
    let rate = match a.no_rate {
        true => None,
        false => Some(Limit::per_second(a.rate).map_err(|e| format!("--rate: {e}"))?),
    };
    let opts = DemoOptions {
        conns: a.conns,
        depth: a.depth,
        size: a.size,
        duration: Duration::from_secs_f64(a.secs),
        payload: a.payload.into(),
        tls: !a.no_tls,
        zstd_level: (!a.no_zstd).then_some(a.zstd_level),
        rate,
        window: Duration::from_secs_f64(a.window),
        driver: a.driver.driver,
    };
    let bar = live::progress_bar(a.secs, true);
    let report =
        demo::run(&opts, |p| live::show_progress(bar.as_ref(), &p)).map_err(Failure::Run)?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    say!("{}", report.to_string().trim_end());
    Ok(match report.load.errors {
        0 => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    })
}
