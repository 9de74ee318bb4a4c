//! `netstrata bench`: its flags, the run, and the report it prints (or
//! the JSON line and the chart).

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::ValueEnum;
use netstrata_cli::load::{self, LoadOptions};
use netstrata_cli::plot;
use netstrata_cli::report::shaping_lines;
use netstrata_cli::stack::StackOptions;

use crate::args::{
    DriverArgs, LayerArgs, PayloadArg, parse_count, parse_frame_size, parse_msg_rate, parse_secs,
    parse_secs_or_zero, resolve,
};
use crate::tls_args::ConnectTls;
use crate::{Failure, live, signals};

/// Sizes of a load run.
#[derive(clap::Args)]
#[command(next_help_heading = "Load")]
pub(crate) struct LoadArgs {
    /// Connections.
    #[arg(long, default_value_t = 16, value_parser = parse_count)]
    pub(crate) conns: usize,
    /// Frames in flight per connection.
    #[arg(long, default_value_t = 16, value_parser = parse_count)]
    pub(crate) depth: usize,
    /// Bytes per frame, at least 8: a sequence number leads each frame
    /// (suffixes: 1KiB, 16KiB).
    #[arg(long, default_value_t = 64, value_parser = parse_frame_size)]
    pub(crate) size: usize,
    /// How long to measure: 5s, 500ms, 2m, or a number of seconds.
    #[arg(long, default_value_t = 5.0, value_parser = parse_secs)]
    pub(crate) secs: f64,
    /// What each frame carries.
    #[arg(long, value_enum, default_value_t = PayloadArg::Text)]
    pub(crate) payload: PayloadArg,
    /// Client loops, one thread each; the connections are dealt out among
    /// them. Use more when one loop cannot keep up (its CPU per message is
    /// in the report).
    #[arg(long, default_value_t = 1, value_parser = parse_count)]
    pub(crate) threads: usize,
    /// Open loop: send this many frames a second across all connections,
    /// whatever the echoes do, and time each round trip from when its
    /// frame was meant to leave (no coordinated omission). Without it,
    /// each connection keeps --depth frames in flight.
    #[arg(long, value_parser = parse_msg_rate, conflicts_with = "depth")]
    pub(crate) msg_rate: Option<f64>,
    /// Run this long before measuring; nothing in it counts (5s, 500ms).
    #[arg(long, default_value_t = 0.0, value_parser = parse_secs_or_zero)]
    pub(crate) warmup: f64,
    /// Print a line per interval of this length: rate, latency percentiles,
    /// errors (1s, 500ms). Intervals are always in --json and the charts.
    #[arg(long, value_parser = parse_secs)]
    pub(crate) interval: Option<f64>,
    /// `connect`: a new connection (and TLS handshake, with --tls) for
    /// each exchange of one frame; --conns exchanges at once, or with
    /// --msg-rate that many new connections a second. Reports exchanges a
    /// second, the exchange's latency and the TCP connect's.
    #[arg(long, value_enum, default_value_t = ModeArg::Persistent)]
    pub(crate) mode: ModeArg,
    #[command(flatten)]
    pub(crate) driver: DriverArgs,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum ModeArg {
    /// Connections stay open and carry frame after frame.
    Persistent,
    /// One connection per exchange.
    Connect,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum PlotArg {
    /// Histogram of round-trip times.
    Latency,
    /// Echoes per second over the run.
    Throughput,
    /// Round-trip percentiles interval by interval over the run.
    LatencyOverTime,
    /// Round trip at each percentile, from p0 to p99.999 and the maximum.
    Spectrum,
}

/// Runs `netstrata bench` against `addr` and prints its report.
pub(crate) fn run(
    addr: &str,
    load: &LoadArgs,
    json: bool,
    plot: Option<&Path>,
    plot_kind: PlotArg,
    tls: ConnectTls,
    layers: LayerArgs,
) -> Result<ExitCode, Failure> {
    let mut stack = StackOptions {
        tls: tls.side()?,
        ..StackOptions::default()
    };
    layers.apply(&mut stack)?;
    if let Some(path) = plot {
        plot::check_path(path)?;
    }
    let opts = LoadOptions {
        conns: load.conns,
        depth: load.depth,
        size: load.size,
        duration: Duration::from_secs_f64(load.secs),
        payload: load.payload.into(),
        threads: load.threads,
        msg_rate: load.msg_rate,
        warmup: Duration::from_secs_f64(load.warmup),
        interval: Duration::from_secs_f64(load.interval.unwrap_or(1.0)),
        mode: match load.mode {
            ModeArg::Persistent => load::Mode::Persistent,
            ModeArg::Connect => load::Mode::Connect,
        },
        driver: load.driver.driver,
        ..LoadOptions::new(resolve(addr)?, stack)
    };
    // SIGINT or SIGTERM ends the measuring: the report covers what ran.
    let stop = signals::stop_flag().map_err(|e| format!("cannot catch SIGINT and SIGTERM: {e}"))?;
    let bar = live::progress_bar(load.warmup + load.secs, !json);
    let print_intervals = load.interval.is_some() && !json;
    let report = load::run_until(&opts, &stop, |p| {
        live::show_progress(bar.as_ref(), &p);
        if let (true, Some(interval)) = (print_intervals, &p.interval) {
            live::print_interval(bar.as_ref(), interval);
        }
    })
    .map_err(|e| {
        let message = format!("bench against {addr} failed: {e}");
        match e.kind() {
            std::io::ErrorKind::InvalidInput => Failure::Setup(message),
            _ => Failure::Run(message),
        }
    })?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    // Nothing was measured: the cause alone, not a report of zeros.
    if report.connections_opened == 0 {
        let why = report.connect_error.as_deref().unwrap_or("no connection");
        return Err(Failure::Run(format!("could not connect to {addr}: {why}")));
    }
    let stack = opts.stack.describe();
    if json {
        say!("{}", report.json(&opts, &stack));
    } else {
        let (unit, what) = match opts.mode {
            load::Mode::Persistent => ("msgs", "round trip"),
            load::Mode::Connect => ("exchanges", "exchange (connect, handshake, one echo)"),
        };
        let pace = match (opts.msg_rate, opts.mode) {
            (Some(rate), _) => format!("open loop at {rate:.0} {unit}/s"),
            (None, load::Mode::Persistent) => format!("depth {}", opts.depth),
            (None, load::Mode::Connect) => "one exchange per connection".to_owned(),
        };
        say!(
            "{} conns x {pace} x {} B ({stack}), {} client loop(s), {:.1} s",
            opts.conns,
            opts.size,
            opts.threads,
            report.elapsed.as_secs_f64()
        );
        say!(
            "  {:.0} {unit}/s, {:.2} MB/s payload each way",
            report.msgs_per_sec(),
            report.mb_per_sec()
        );
        let from = match opts.msg_rate {
            Some(_) => " (from each one's intended start)",
            None => "",
        };
        say!("  {what}{from}: {}", report.latency);
        if let Some(connect) = report.connect_latency {
            say!("  TCP connect: {connect}");
        }
        if let Some(us) = report.client_cpu_us_per_msg() {
            say!("  client: {us:.2} µs CPU per message over its loops");
        }
        if opts.stack.rate.is_some() {
            let configured = opts.stack.rate.as_ref().and_then(|r| r.per_connection);
            let lines = shaping_lines(
                configured,
                report.wire_out,
                opts.conns,
                report.elapsed,
                report.traffic.as_ref(),
            );
            for line in lines {
                say!("  {line}");
            }
        }
        say!("  errors: {}", report.errors);
        for e in &report.error_samples {
            say!("    {e}");
        }
    }
    if let Some(path) = plot {
        let drawn = match plot_kind {
            PlotArg::Latency => plot::latency(path, &report.histogram, &stack),
            PlotArg::Throughput => plot::throughput(path, &report.timeline, &stack),
            PlotArg::LatencyOverTime => plot::over_time(path, &report.intervals, &stack),
            PlotArg::Spectrum => plot::spectrum(path, &report.histogram, &stack),
        };
        drawn.map_err(|e| Failure::Run(format!("cannot draw {}: {e}", path.display())))?;
        if !json {
            say!("  chart written to {}", path.display());
        }
    }
    if report.messages == 0 && report.errors > 0 {
        let first = report.error_samples.first().map_or("", String::as_str);
        complain!("error: no echo from {addr}: {first}");
    }
    Ok(if report.errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
