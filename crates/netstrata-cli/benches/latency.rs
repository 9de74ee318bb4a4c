//! The latency table of docs/benchmarks.md: `netstrata echo-server` against
//! the tokio baseline with as many worker threads as netstrata has loops,
//! at each `--loops` count, same client, same run, interleaved rounds,
//! medians.
//!
//! For each stack (`--only plain,tls,zstd`) and message size (64 B with 16
//! connections x 16 in flight, 16 KiB with 4 x 4):
//! - closed loop with a tokio client (`examples/tokio_load`: tokio-util's
//!   `Framed` on tokio, plain or TLS; not for zstd), then with the
//!   netstrata client: msgs/s, the server's CPU time per message (from
//!   `/proc/PID/stat`), p50/p99/p99.9 round trip;
//! - open loop at 50% and 80% of the tokio baseline's closed-loop rate of
//!   this run (the same offered load for both servers): p50/p99/p99.9 from
//!   each frame's intended send time (coordinated omission corrected) and
//!   the rate achieved.
//!
//! Then connection setup (`--mode connect`, 16 exchanges at once, each on
//! a new connection), plain and TLS: connections/s, server CPU per
//! connection, connect (and handshake) p50/p99. Then what `--metrics`
//! costs: the plain 64 B closed loop against the same server serving
//! Prometheus metrics published every 100 ms (ten times the default rate).
//!
//! `cargo bench -p netstrata-cli --bench latency [-- --secs 2 --rounds 3 --loops 1,2 --only plain,tls,zstd --sizes 64,16384 --tokio-client yes --setup yes --metrics yes --shared 0]`
//!
//! `--shared N` (N > 0) adds, at each loop count above 1, `netstrata
//! echo-server --shared-loops` with N loops per thread, which the threads
//! take turns to run, as a third server of the same rounds.
//!
//! Every run starts with a warm-up of `--warmup` seconds (0.5 by default)
//! that the percentiles leave out; the CPU figures count its messages and
//! its time alike.

// Shared with the echo_compare bench; each uses a part of it.
#[allow(dead_code)]
mod support;

use std::time::Duration;

use netstrata_cli::load::Mode;
use netstrata_cli::stack::StackOptions;
use netstrata_zstd::ZstdConfig;
use support::compare::{Case, Client, Drive, Outcome, Rounds, measure};
use support::process::{Ports, Server, build};
use support::servers::{Certificates, TempDir, certificates, list, listing_only, netstrata, num};

/// zstd level of both servers and the client (and a 2^15 window, the
/// baseline's and netstrata's default).
const LEVEL: &str = "3";

/// One stack: netstrata's servers, then the tokio baseline (last), and
/// the client's layers.
struct Pair {
    name: &'static str,
    servers: Vec<Server>,
    client: StackOptions,
}

/// The pairs of `only` at `loops`, with a netstrata server of `shared`
/// loops per thread taken in turns as well when `shared` > 0 and there is
/// more than one thread.
fn pairs(only: &[String], loops: &str, shared: usize, certs: &Certificates) -> Vec<Pair> {
    let (cert, key) = (certs.cert.as_str(), certs.key.as_str());
    let workers = ["--workers", loops];
    let threads: usize = loops.parse().expect("a loop count");
    let shared_loops = (threads * shared).to_string();
    let mut pairs = Vec::new();
    for stack in only {
        let (name, layers, baseline, client) = match stack.as_str() {
            "plain" => (
                "plain",
                vec![],
                tokio("examples/tokio_echo", &[], &workers),
                StackOptions::default(),
            ),
            "tls" => (
                "tls",
                vec!["--tls", "--cert", cert, "--key", key],
                tokio("examples/tokio_tls_echo", &[cert, key], &workers),
                certs.client.clone(),
            ),
            _ => (
                "zstd",
                vec!["--zstd", "--zstd-level", LEVEL],
                tokio("examples/tokio_zstd_echo", &[LEVEL], &workers),
                StackOptions {
                    zstd: Some(ZstdConfig::new().with_level(3)),
                    ..StackOptions::default()
                },
            ),
        };
        let mut servers = vec![netstrata("netstrata", loops, &layers)];
        if shared > 0 && threads > 1 {
            let mut with = layers.clone();
            with.extend(["--shared-loops", &shared_loops]);
            servers.push(netstrata("netstrata shared", loops, &with));
        }
        servers.push(baseline);
        pairs.push(Pair {
            name,
            servers,
            client,
        });
    }
    pairs
}

/// A tokio baseline with its positional arguments after the address.
fn tokio(path: &str, positional: &[&str], workers: &[&str]) -> Server {
    let mut args = vec!["ADDR"];
    args.extend_from_slice(positional);
    args.extend_from_slice(workers);
    Server::release("tokio", path, &args)
}

fn us(v: u64) -> String {
    match v {
        0..10_000 => format!("{v} µs"),
        _ => format!("{:.1} ms", v as f64 / 1000.0),
    }
}

fn rate(v: f64) -> String {
    match v {
        v if v >= 1e6 => format!("{:.2} M", v / 1e6),
        v if v >= 1e3 => format!("{:.1} k", v / 1e3),
        v => format!("{v:.0}"),
    }
}

fn size(bytes: usize) -> String {
    match bytes {
        b if b >= 1024 => format!("{} KiB", b / 1024),
        b => format!("{b} B"),
    }
}

/// One row of the table: a server under one load.
fn row(loops: &str, stack: &str, case: Case, load: &str, server: &str, o: &Outcome) {
    let server = match o.errors {
        0.0 => server.to_owned(),
        n => format!("{server} ({n:.0} sends refused: behind)"),
    };
    println!(
        "| {loops} | {stack} | {} | {load} | {server} | {} | {:.3} | {} | {} | {} |",
        size(case.size),
        rate(o.msgs_per_sec),
        o.cpu_us_per_msg,
        us(o.latency.p50),
        us(o.latency.p99),
        us(o.latency.p999),
    );
}

fn ratio_row(label: &str, server: &str, ours: &Outcome, base: &Outcome) {
    println!(
        "|  |  |  | {label} | {server} / tokio | {:.2}x | {:.2}x | {:.2}x | {:.2}x | {:.2}x |",
        ours.msgs_per_sec / base.msgs_per_sec,
        ours.cpu_us_per_msg / base.cpu_us_per_msg,
        ours.latency.p50 as f64 / base.latency.p50.max(1) as f64,
        ours.latency.p99 as f64 / base.latency.p99.max(1) as f64,
        ours.latency.p999 as f64 / base.latency.p999.max(1) as f64,
    );
}

fn main() {
    if listing_only() {
        return;
    }
    let only = list(
        "latency",
        "--only",
        "plain,tls,zstd",
        &["plain", "tls", "zstd"],
    );
    let loop_counts = list("latency", "--loops", "1,2", &["1", "2", "3", "4"]);
    let sizes = list("latency", "--sizes", "64,16384", &["64", "16384"]);
    let setup = arg_yes("--setup");
    let metrics = arg_yes("--metrics");
    let with_tokio_client = arg_yes("--tokio-client");
    let shared = num("--shared", 0.0) as usize;
    let rounds = Rounds {
        secs: num("--secs", 2.0),
        rounds: (num("--rounds", 3.0) as usize).max(1),
    };
    let warmup = Duration::from_secs_f64(num("--warmup", 0.5));
    build(&[
        "tokio_echo",
        "tokio_tls_echo",
        "tokio_zstd_echo",
        "tokio_load",
    ]);
    let dir = TempDir::new("latency");
    let tls = certificates(&dir.0);
    let mut ports = Ports::new(7600);

    println!(
        "\n{} s per server per round after a {} s warm-up, {} rounds, interleaved; medians",
        rounds.secs,
        warmup.as_secs_f64(),
        rounds.rounds
    );
    println!(
        "\n| loops | stack | size | load | server | msgs/s | CPU µs/msg | p50 | p99 | p99.9 |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for loops in &loop_counts {
        for pair in pairs(&only, loops, shared, &tls) {
            for size in &sizes {
                let case = match size.as_str() {
                    "64" => Case::SMALL,
                    _ => Case::LARGE,
                };
                // The tokio client speaks plain and TLS (no zstd).
                let tokio_client = match pair.name {
                    "plain" => Some(Client::Tokio { tls_ca: None }),
                    "tls" => Some(Client::Tokio {
                        tls_ca: Some(&tls.ca),
                    }),
                    _ => None,
                };
                let mut table = |load: &str, drive: Drive<'_>| {
                    let outcomes =
                        measure(&pair.servers, &pair.client, case, drive, rounds, &mut ports);
                    for (server, o) in pair.servers.iter().zip(&outcomes) {
                        row(loops, pair.name, case, load, server.name, o);
                    }
                    let (base, ours) = outcomes.split_last().expect("the baseline");
                    for (server, o) in pair.servers.iter().zip(ours) {
                        ratio_row(load, server.name, o, base);
                    }
                    outcomes
                };
                if let Some(client) = tokio_client.filter(|_| with_tokio_client) {
                    let closed = Drive {
                        client,
                        ..Drive::CLOSED
                    };
                    table("closed, tokio client", closed);
                }
                let closed = Drive {
                    warmup,
                    ..Drive::CLOSED
                };
                let outcomes = table("closed", closed);
                let baseline_rate = outcomes.last().expect("the baseline").msgs_per_sec;
                for share in [0.5, 0.8] {
                    let open = Drive {
                        msg_rate: Some(baseline_rate * share),
                        ..closed
                    };
                    let load = format!(
                        "open {:.0}% ({}/s)",
                        share * 100.0,
                        rate(baseline_rate * share)
                    );
                    table(&load, open);
                }
            }
        }
    }

    if setup {
        println!(
            "\nconnection setup: a new connection (and handshake) per 64 B exchange, 16 at once"
        );
        println!(
            "\n| loops | stack | server | conns/s | CPU µs/conn | connect p50 | connect p99 |"
        );
        println!("|---|---|---|---|---|---|---|");
        let case = Case {
            size: 64,
            conns: 16,
            depth: 1,
        };
        let connect = Drive {
            mode: Mode::Connect,
            warmup,
            ..Drive::CLOSED
        };
        for loops in &loop_counts {
            let stacks: Vec<String> = ["plain", "tls"].map(String::from).to_vec();
            for pair in pairs(&stacks, loops, shared, &tls) {
                let outcomes = measure(
                    &pair.servers,
                    &pair.client,
                    case,
                    connect,
                    rounds,
                    &mut ports,
                );
                for (server, o) in pair.servers.iter().zip(&outcomes) {
                    println!(
                        "| {loops} | {} | {} | {} | {:.1} | {} | {} |",
                        pair.name,
                        server.name,
                        rate(o.msgs_per_sec),
                        o.cpu_us_per_msg,
                        us(o.connect.p50),
                        us(o.connect.p99),
                    );
                }
            }
        }
    }

    if metrics {
        println!("\nwhat --metrics costs: plain 64 B, 16 x 16, closed loop, one loop");
        println!("\n| server | msgs/s | CPU µs/msg | p99 |");
        println!("|---|---|---|---|");
        let metrics_addr = ports.next().to_string();
        let servers = [
            netstrata("netstrata", "1", &[]),
            netstrata(
                "netstrata --metrics",
                "1",
                &["--metrics", &metrics_addr, "--metrics-every", "100ms"],
            ),
        ];
        let closed = Drive {
            warmup,
            ..Drive::CLOSED
        };
        let client = StackOptions::default();
        let outcomes = measure(&servers, &client, Case::SMALL, closed, rounds, &mut ports);
        for (server, o) in servers.iter().zip(&outcomes) {
            println!(
                "| {} | {} | {:.3} | {} |",
                server.name,
                rate(o.msgs_per_sec),
                o.cpu_us_per_msg,
                us(o.latency.p99)
            );
        }
        println!(
            "| with / without | {:.2}x | {:.2}x | |",
            outcomes[1].msgs_per_sec / outcomes[0].msgs_per_sec,
            outcomes[1].cpu_us_per_msg / outcomes[0].cpu_us_per_msg
        );
    }
    drop(dir);
}

/// `--NAME yes|no` (yes by default).
fn arg_yes(name: &str) -> bool {
    support::servers::arg(name).is_none_or(|v| v != "no")
}
