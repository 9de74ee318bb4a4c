//! Interleaved load rounds: every server of a comparison is loaded by the
//! same client in each round, in rotating order, and medians are reported
//! with ratios to the baselines.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use netstrata_cli::load::{self, Latency, LoadOptions, Mode, Payload};
use netstrata_cli::stack::StackOptions;

use super::median;
use super::process::{Ports, Running, Server, release_path};

/// One load shape.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Case {
    /// Bytes per frame.
    pub(crate) size: usize,
    /// Connections.
    pub(crate) conns: usize,
    /// Frames in flight per connection.
    pub(crate) depth: usize,
}

impl Case {
    /// Small messages, many in flight: the per-message costs.
    pub(crate) const SMALL: Self = Self {
        size: 64,
        conns: 16,
        depth: 16,
    };
    /// Large messages: the per-byte costs (copies, crypto, compression).
    pub(crate) const LARGE: Self = Self {
        size: 16 * 1024,
        conns: 4,
        depth: 4,
    };
}

/// How long and how often.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rounds {
    /// Seconds per server per round.
    pub(crate) secs: f64,
    /// Rounds.
    pub(crate) rounds: usize,
}

/// Which load client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Client<'a> {
    /// `netstrata bench`'s (this process): closed or open loop, persistent
    /// or one connection per exchange.
    Netstrata,
    /// `examples/tokio_load` (a process of its own): tokio-util's `Framed`
    /// on tokio, closed loop on persistent connections only; over TLS
    /// (tokio-rustls) trusting the CA in `tls_ca` when given. No zstd.
    Tokio { tls_ca: Option<&'a str> },
}

/// How the client drives a [`Case`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Drive<'a> {
    /// The load client.
    pub(crate) client: Client<'a>,
    /// Open loop at this many frames (or, with [`Mode::Connect`],
    /// connections) a second; `None`: closed loop.
    pub(crate) msg_rate: Option<f64>,
    /// Persistent connections, or one per exchange.
    pub(crate) mode: Mode,
    /// Run this long before measuring (the server's CPU counts it too, as
    /// it counts its echoes).
    pub(crate) warmup: Duration,
}

impl Drive<'_> {
    /// Closed loop on persistent connections, no warm-up.
    pub(crate) const CLOSED: Self = Self {
        client: Client::Netstrata,
        msg_rate: None,
        mode: Mode::Persistent,
        warmup: Duration::ZERO,
    };
}

/// Medians of one server's rounds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outcome {
    /// Echoes per second.
    pub(crate) msgs_per_sec: f64,
    /// Server CPU time per echoed message, µs.
    pub(crate) cpu_us_per_msg: f64,
    /// Of which in user space (the server's code and libraries), µs.
    pub(crate) user_us_per_msg: f64,
    /// Of which in the kernel, µs.
    pub(crate) system_us_per_msg: f64,
    /// Wire bytes the server sent per framed payload byte it echoed.
    pub(crate) wire_per_payload: f64,
    /// Round trips (open loop: from each frame's intended send time), each
    /// percentile the median of the rounds'.
    pub(crate) latency: Latency,
    /// `Mode::Connect`: connect (and handshake) times, likewise.
    pub(crate) connect: Latency,
    /// Client errors in the median round (open loop: the server fell so
    /// far behind that the client's send buffers filled).
    pub(crate) errors: f64,
}

/// Loads every server with `case` driven as `drive`, `rounds.rounds` times
/// in rotating order, and returns each server's medians.
pub(crate) fn measure(
    servers: &[Server],
    stack: &StackOptions,
    case: Case,
    drive: Drive,
    rounds: Rounds,
    ports: &mut Ports,
) -> Vec<Outcome> {
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); servers.len()];
    for round in 0..rounds.rounds {
        for k in 0..servers.len() {
            let i = (round + k) % servers.len();
            let server = Running::start(&servers[i], ports);
            let opts = LoadOptions {
                conns: case.conns,
                depth: case.depth,
                size: case.size,
                duration: Duration::from_secs_f64(rounds.secs),
                payload: Payload::Text,
                msg_rate: drive.msg_rate,
                mode: drive.mode,
                warmup: drive.warmup,
                ..LoadOptions::new(server.addr, stack.clone())
            };
            let before = server.cpu();
            let run = match drive.client {
                Client::Netstrata => {
                    let report = load::run(&opts, |_| {}).expect("load");
                    // In open loop a server that falls behind fills the
                    // client's send buffers: counted, not fatal.
                    assert!(
                        report.errors == 0 || drive.msg_rate.is_some(),
                        "{}: {:?}",
                        servers[i].name,
                        report.error_samples
                    );
                    // Every echo counts, the warm-up's and the drain's after
                    // the window too: their CPU was measured as well.
                    let echoed = report.totals.messages_in as f64;
                    let framed = echoed * (case.size + 4) as f64;
                    Run {
                        msgs_per_sec: report.msgs_per_sec(),
                        echoed,
                        wire: report.totals.wire_in as f64 / framed,
                        latency: report.latency,
                        connect: report.connect_latency.unwrap_or_default(),
                        errors: report.errors as f64,
                        ..Run::default()
                    }
                }
                Client::Tokio { tls_ca } => {
                    tokio_load(server.addr, case, rounds.secs, tls_ca, servers[i].name)
                }
            };
            let used = server.cpu() - before;
            drop(server);
            let per_msg = |t: Duration| t.as_secs_f64() / run.echoed * 1e6;
            runs[i].push(Run {
                cpu: per_msg(used.total()),
                user: per_msg(used.user),
                system: per_msg(used.system),
                ..run
            });
        }
    }
    runs.iter().map(|r| Run::medians(r)).collect()
}

/// Runs the tokio client (`examples/tokio_load`, closed loop) against
/// `addr`: its echoes (the drain included), rate and round trips.
fn tokio_load(addr: SocketAddr, case: Case, secs: f64, tls_ca: Option<&str>, server: &str) -> Run {
    let tls: Vec<&str> = tls_ca.map_or(vec![], |ca| vec!["--ca", ca]);
    let out = Command::new(release_path("examples/tokio_load"))
        .args([
            addr.to_string(),
            "--conns".into(),
            case.conns.to_string(),
            "--depth".into(),
            case.depth.to_string(),
            "--size".into(),
            case.size.to_string(),
            "--secs".into(),
            secs.to_string(),
        ])
        .args(tls)
        .output()
        .expect("start tokio_load");
    assert!(out.status.success(), "tokio_load against {server}: {out:?}");
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).expect("tokio_load's JSON");
    let number = |key: &str| {
        line[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} in {line}"))
    };
    assert_eq!(number("errors"), 0.0, "tokio_load against {server}: {line}");
    let us = |key: &str| number(key) as u64;
    Run {
        msgs_per_sec: number("msgs_per_sec"),
        echoed: number("messages"),
        latency: Latency {
            p50: us("p50_us"),
            p90: us("p90_us"),
            p99: us("p99_us"),
            p999: us("p999_us"),
            max: us("max_us"),
            ..Latency::default()
        },
        // Not measured by this client.
        wire: f64::NAN,
        ..Run::default()
    }
}

/// One server's figures in one round.
#[derive(Debug, Clone, Copy, Default)]
struct Run {
    msgs_per_sec: f64,
    /// Echoes the server sent (the CPU figures are per echo).
    echoed: f64,
    /// Client errors (open loop: sends refused by a full buffer).
    errors: f64,
    cpu: f64,
    user: f64,
    system: f64,
    wire: f64,
    latency: Latency,
    connect: Latency,
}

impl Run {
    fn medians(runs: &[Self]) -> Outcome {
        let of = |f: fn(&Self) -> f64| median(&mut runs.iter().map(f).collect::<Vec<_>>());
        let percentiles = |l: fn(&Self) -> Latency| {
            let at = |p: fn(&Latency) -> u64| {
                median(&mut runs.iter().map(|r| p(&l(r)) as f64).collect::<Vec<_>>()) as u64
            };
            Latency {
                p50: at(|l| l.p50),
                p90: at(|l| l.p90),
                p99: at(|l| l.p99),
                p999: at(|l| l.p999),
                p9999: at(|l| l.p9999),
                max: at(|l| l.max),
            }
        };
        Outcome {
            msgs_per_sec: of(|r| r.msgs_per_sec),
            cpu_us_per_msg: of(|r| r.cpu),
            user_us_per_msg: of(|r| r.user),
            system_us_per_msg: of(|r| r.system),
            wire_per_payload: of(|r| r.wire),
            errors: of(|r| r.errors),
            latency: percentiles(|r| r.latency),
            connect: percentiles(|r| r.connect),
        }
    }
}

/// Runs `case` against every server with the client `stack` and prints a
/// table titled `title`, with the ratios of CPU per message and of wire
/// bytes per payload byte to each server in `baselines` (indices into
/// `servers`); returns each server's medians.
pub(crate) fn compare(
    title: &str,
    servers: &[Server],
    baselines: &[usize],
    stack: &StackOptions,
    case: Case,
    rounds: Rounds,
    ports: &mut Ports,
) -> Vec<Outcome> {
    let outcomes = measure(servers, stack, case, Drive::CLOSED, rounds, ports);
    let Case { size, conns, depth } = case;
    println!(
        "\n{title}: {size} B, {conns} conns x depth {depth}, {} s x {} rounds (medians)",
        rounds.secs, rounds.rounds
    );
    print!(
        "  {:<16} {:>10} {:>12} {:>9} {:>9} {:>14}",
        "server", "msgs/s", "CPU µs/msg", "user", "system", "wire/payload"
    );
    for &b in baselines {
        let name = servers[b].name;
        print!(
            " {:>24} {:>24} {:>24}",
            format!("CPU vs {name}"),
            format!("user vs {name}"),
            format!("wire vs {name}")
        );
    }
    println!();
    for (server, o) in servers.iter().zip(&outcomes) {
        print!(
            "  {:<16} {:>10.0} {:>12.3} {:>9.3} {:>9.3} {:>14.4}",
            server.name,
            o.msgs_per_sec,
            o.cpu_us_per_msg,
            o.user_us_per_msg,
            o.system_us_per_msg,
            o.wire_per_payload
        );
        for &b in baselines {
            let base = &outcomes[b];
            print!(
                " {:>24.3} {:>24.3} {:>24.3}",
                o.cpu_us_per_msg / base.cpu_us_per_msg,
                o.user_us_per_msg / base.user_us_per_msg,
                o.wire_per_payload / base.wire_per_payload
            );
        }
        println!();
    }
    outcomes
}
