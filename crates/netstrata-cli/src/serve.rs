//! The long-running subcommands, `echo-server`, `tunnel` and
//! `fault-proxy`: they run
//! until SIGINT or SIGTERM, then stop accepting, give open connections
//! `--grace` to finish, print a summary and exit 0.

use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use netstrata_cli::echo;
use netstrata_cli::fault::{FaultConfig, FaultProxy};
use netstrata_cli::report::{StackTotals, bytes};
use netstrata_cli::stack::{RateOptions, StackOptions};
use netstrata_cli::tunnel::{StackSide, Tunnel, TunnelOptions};
use netstrata_reactor::{CloseCounts, Handle, LoopConfig};

use crate::args::{DriverArgs, LayerArgs, parse_secs, resolve};
use crate::{Failure, live, prometheus, signals};

/// Periodic traffic figures of a long-running subcommand.
#[derive(clap::Args)]
pub(crate) struct StatsArgs {
    /// Print the traffic counters of all connections (total bytes each
    /// way, current and peak throughput over --window) this often (10s,
    /// 500ms; a bare number is seconds) while traffic flows; the echo server
    /// adds its closed connections by reason and the zstd decoders' memory.
    #[arg(long, value_parser = parse_secs)]
    stats_every: Option<f64>,
    /// On SIGINT or SIGTERM: stop accepting, close open connections in
    /// order, and drop those still open after this long (5s, 500ms); a
    /// second signal drops them at once.
    #[arg(long, default_value = "5s", value_parser = parse_secs)]
    grace: f64,
    /// Serve the figures of the loops (connections, closes by reason,
    /// messages, bytes per layer), of shaping and of the zstd decoders in
    /// Prometheus text format at http://ADDR/metrics (port 0 picks one and
    /// prints it).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
    /// How often the figures behind --metrics are gathered (1s, 250ms; a
    /// bare number is seconds).
    #[arg(long, default_value = "1s", value_parser = parse_secs, requires = "metrics")]
    metrics_every: f64,
}

impl StatsArgs {
    /// Makes sure `stack` counts, if figures are asked for.
    pub(crate) fn count(&self, stack: &mut StackOptions, layers: &LayerArgs) {
        if self.stats_every.is_some() && stack.rate.is_none() {
            let window = Duration::from_secs_f64(layers.window);
            stack.rate = Some(RateOptions::new(None, None, window));
        }
    }

    /// Starts printing `stack`'s figures, and `closes` if given, if asked for.
    fn start(&self, stack: &StackOptions, closes: Option<CloseCounts>) {
        if let Some(every) = self.stats_every {
            live::print_stats_every(stack.clone(), closes, Duration::from_secs_f64(every));
        }
    }

    /// The loops' settings: how often they publish their figures.
    fn loop_config(&self) -> LoopConfig {
        LoopConfig::new().with_metrics_every(Duration::from_secs_f64(self.metrics_every))
    }

    /// Serves `--metrics`, if asked for, and says where as `name` (the
    /// subcommand).
    fn serve_metrics(&self, name: &str, stack: &StackOptions) -> Result<(), Failure> {
        let Some(addr) = &self.metrics else {
            return Ok(());
        };
        let addr = prometheus::serve(resolve(addr)?)?;
        let every = Duration::from_secs_f64(self.metrics_every);
        prometheus::publish_stack_figures(stack.clone(), every);
        say!("netstrata {name} metrics at http://{addr}/metrics");
        Ok(())
    }

    /// Shuts the loops of `handles` down gracefully on the first signal,
    /// stops them on the next.
    fn shutdown_on_signal(&self, handles: Vec<Handle>) -> Result<(), Failure> {
        let grace = Duration::from_secs_f64(self.grace);
        let again = handles.clone();
        signals::on_stop(
            move || {
                for handle in &handles {
                    let _ = handle.shutdown(grace);
                }
            },
            move || {
                for handle in &again {
                    let _ = handle.stop();
                }
            },
        )
        .map_err(|e| Failure::Setup(format!("cannot catch SIGINT and SIGTERM: {e}")))
    }
}

/// Runs an echo server until a signal, then prints its summary.
pub(crate) fn echo_server(
    addr: std::net::SocketAddr,
    loops: echo::Loops,
    stack: StackOptions,
    stats: &StatsArgs,
    driver: &DriverArgs,
) -> Result<ExitCode, Failure> {
    let described = stack.describe();
    let config = driver.apply(stats.loop_config());
    let totals = Arc::new(Mutex::new(StackTotals::default()));
    stats.serve_metrics("echo-server", &stack)?;
    let totals_in = Some(Arc::clone(&totals));
    let server = echo::serve_counted(addr, loops, stack.clone(), totals_in, config)
        .map_err(|e| format!("cannot serve on {addr}: {e}"))?;
    // Before the line that says it listens: a client that reads it and
    // signals at once finds the handler in place.
    stats.shutdown_on_signal(server.handles().to_vec())?;
    say!(
        "netstrata echo-server listening on {} ({loops}, driver {}, {described})",
        server.local_addr(),
        server.driver(),
    );
    let closes = server.close_counts();
    stats.start(&stack, Some(closes.clone()));
    server
        .join()
        .map_err(|e| Failure::Run(format!("server failed: {e}")))?;
    let totals = totals.lock().unwrap_or_else(PoisonError::into_inner);
    say!("netstrata echo-server stopped: {}", summary(&totals, true));
    say!("{}", closes_line(&closes));
    Ok(ExitCode::SUCCESS)
}

/// Runs a tunnel until a signal, then prints its summary.
pub(crate) fn tunnel(
    opts: TunnelOptions,
    stats: &StatsArgs,
    driver: &DriverArgs,
) -> Result<ExitCode, Failure> {
    let (described, target, listen) = (opts.stack.describe(), opts.connect, opts.listen);
    let stack_side = opts.stack_side;
    stats.serve_metrics("tunnel", &opts.stack)?;
    let config = driver.apply(stats.loop_config());
    let tunnel = Tunnel::start_with(opts.clone(), config)
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    stats.shutdown_on_signal(vec![tunnel.handle()])?;
    let (near, far) = match stack_side {
        StackSide::Listen => (described.as_str(), "plain"),
        StackSide::Connect => ("plain", described.as_str()),
    };
    say!(
        "netstrata tunnel listening on {} ({near}), forwarding to {target} ({far}), driver {}",
        tunnel.local_addr(),
        tunnel.handle().driver()
    );
    stats.start(&opts.stack, None);
    let (closes, accepted) = (tunnel.close_counts(), tunnel.accepted());
    tunnel
        .join()
        .map_err(|e| Failure::Run(format!("tunnel failed: {e}")))?;
    let totals = accepted.lock().unwrap_or_else(PoisonError::into_inner);
    say!("netstrata tunnel stopped: {}", summary(&totals, false));
    say!("{}", closes_line(&closes));
    Ok(ExitCode::SUCCESS)
}

/// Connections, messages and wire bytes of the closed connections.
fn summary(totals: &StackTotals, messages: bool) -> String {
    let messages = match messages {
        true => format!(
            ", {} messages in and {} out",
            totals.messages_in, totals.messages_out
        ),
        false => String::new(),
    };
    format!(
        "{} connections{messages}, {} in and {} out on the wire",
        totals.connections,
        bytes(totals.wire_in),
        bytes(totals.wire_out)
    )
}

/// `closed: 3 (2 clean, 1 i/o: connection reset)`.
pub(crate) fn closes_line(closes: &CloseCounts) -> String {
    let by_kind: Vec<String> = closes
        .snapshot()
        .iter()
        .map(|(kind, n)| format!("{n} {kind}"))
        .collect();
    match by_kind.is_empty() {
        true => "closed: 0".into(),
        false => format!("closed: {} ({})", closes.total(), by_kind.join(", ")),
    }
}

/// Runs a fault proxy until a signal, then prints what it did to the
/// connections it relayed.
pub(crate) fn fault_proxy(
    listen: std::net::SocketAddr,
    upstream: std::net::SocketAddr,
    config: FaultConfig,
) -> Result<ExitCode, Failure> {
    let (up, down, seed) = (
        config.upstream.to_string(),
        config.downstream.to_string(),
        config.seed,
    );
    let (stopped, stop) = std::sync::mpsc::channel::<()>();
    let again = stopped.clone();
    signals::on_stop(
        move || {
            let _ = stopped.send(());
        },
        move || {
            let _ = again.send(());
        },
    )
    .map_err(|e| Failure::Setup(format!("cannot catch SIGINT and SIGTERM: {e}")))?;
    let proxy = FaultProxy::start(listen, upstream, config)
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    say!(
        "netstrata fault-proxy listening on {} (seed {seed}), forwarding to {upstream} (up: {up}; down: {down})",
        proxy.local_addr()
    );
    let _ = stop.recv();
    let totals = proxy.stop();
    let injected = totals.injected;
    say!(
        "netstrata fault-proxy stopped: {} connections ({} ended early), {} up and {} down; \
         injected {} cuts, {} resets, {} flips, {} stalls",
        totals.connections,
        totals.ended_early,
        bytes(totals.forwarded.0),
        bytes(totals.forwarded.1),
        injected.cuts,
        injected.resets,
        injected.flips,
        injected.stalls
    );
    Ok(ExitCode::SUCCESS)
}
