//! Echo servers side by side, same client, same run. Each server runs in
//! its own process; the load client (the one behind `netstrata bench`) runs
//! here. Reported per server: msgs/s, the server's CPU time per message
//! (user + system, from `/proc/PID/stat`, and each part alone: how much is
//! the server's own code and how much the kernel's), wire bytes per payload
//! byte it sent, and ratios to the baselines; then resident memory per
//! connection.
//!
//! Comparisons (`--only plain,tls,zstd`, all by default):
//! - `plain`: `netstrata echo-server` (epoll) vs a tokio + tokio-util
//!   server (2 workers) and a minimal hand-written mio echo (the limit),
//!   with as many threads as netstrata has loops (`--netstrata-threads`);
//!   then netstrata on its io_uring driver (`--driver uring`, Linux only),
//!   and at one loop a hand-written io_uring echo on one thread, the floor
//!   for an io_uring driver; ratio lines compare each io_uring server with
//!   its epoll counterpart (netstrata's, the mio limit). Besides the usual
//!   two cases, one connection at depth 1 (latency);
//! - `tls`: `netstrata echo-server --tls` vs tokio + tokio-rustls and the
//!   mio echo through rustls alone (the limit), with the same certificate
//!   files (generated for the run, deleted after); then the floor at
//!   16 KiB (`--floor no` skips it): the plain mio echo's CPU per message
//!   plus the AES-GCM work of opening and sealing the message, measured here;
//! - `zstd`: `netstrata echo-server --zstd` vs tokio + async-compression
//!   and the mio echo through zstd alone (the limit), all at level 3 with a
//!   2^15 window.
//!
//! Memory is measured for netstrata and tokio; the limits take part in the
//! CPU comparisons only.
//!
//! `cargo bench -p netstrata-cli --bench echo_compare [-- --only tls --secs 3 --rounds 3 --idle 10000 --zstd-idle 1000 --active 64 --netstrata-threads 2]`
//!
//! Flags: `--secs` per server per round (and of the active-memory run),
//! `--rounds` (interleaved; medians are reported), `--idle` connections for
//! the plain and TLS idle-memory tests, `--zstd-idle` for the zstd ones
//! (each idle zstd connection that has carried a message holds its zstd
//! contexts, so fewer), `--active` connections loaded at 16 KiB for the
//! active zstd memory test; 0 skips a memory test.
//!
//! The idle tests need an open-file limit above `--idle` for this process
//! and for each server (`ulimit -n`); they report how many they could open.

// Shared with the latency bench; each uses a part of it.
#[allow(dead_code)]
mod support;

use netstrata_cli::stack::StackOptions;
use netstrata_zstd::ZstdConfig;
use support::compare::{Case, Outcome, Rounds, compare};
use support::floor;
use support::memory;
use support::process::{Ports, Server, build};
use support::servers::{TempDir, arg, certificates, list, listing_only, netstrata, num};

const LEVEL: i32 = 3;
const SMALL: Case = Case::SMALL;
const LARGE: Case = Case::LARGE;
/// One message in flight: the round trip of one connection.
const DEPTH1: Case = Case {
    size: 64,
    conns: 1,
    depth: 1,
};

/// Runs each of `cases` against `servers`: netstrata first, then the tokio
/// baseline and the hand-written limit, the two its ratios are taken to
/// (then any other server); returns each case's medians.
fn compare_cases(
    title: &str,
    servers: &[Server],
    stack: &StackOptions,
    cases: &[Case],
    rounds: Rounds,
    ports: &mut Ports,
) -> Vec<Vec<Outcome>> {
    cases
        .iter()
        .map(|&case| compare(title, servers, &[1, 2], stack, case, rounds, ports))
        .collect()
}

fn main() {
    if listing_only() {
        return;
    }
    let selected = list(
        "echo_compare",
        "--only",
        "plain,tls,zstd",
        &["plain", "tls", "zstd"],
    );
    let selected: Vec<&str> = selected.iter().map(String::as_str).collect();
    let rounds = Rounds {
        secs: num("--secs", 3.0),
        rounds: (num("--rounds", 3.0) as usize).max(1),
    };
    let idle = num("--idle", 10_000.0) as usize;
    let zstd_idle = num("--zstd-idle", 1000.0) as usize;
    let active = num("--active", 64.0) as usize;
    let loops = (num("--netstrata-threads", 2.0) as usize)
        .max(1)
        .to_string();
    build(&[
        "tokio_echo",
        "mio_echo",
        "tokio_tls_echo",
        "tokio_zstd_echo",
        "uring_echo",
    ]);
    let mut ports = Ports::new(7400);

    let mio_plain = Server::release("mio (limit)", "examples/mio_echo", &["ADDR", &loops]);
    if selected.contains(&"plain") {
        let mut servers = vec![
            netstrata("netstrata", &loops, &["--driver", "epoll"]),
            Server::release("tokio", "examples/tokio_echo", &["ADDR"]),
            mio_plain.clone(),
        ];
        let linux = cfg!(target_os = "linux");
        if linux {
            servers.push(netstrata("netstrata uring", &loops, &["--driver", "uring"]));
        }
        // One ring on one thread: beside the mio limit at one loop only.
        if linux && loops == "1" {
            servers.push(Server::release(
                "uring (limit)",
                "examples/uring_echo",
                &["ADDR"],
            ));
        }
        let stack = StackOptions::default();
        let cases = [SMALL, LARGE, DEPTH1];
        let outcomes = compare_cases("echo", &servers, &stack, &cases, rounds, &mut ports);
        println!();
        for (case, o) in cases.iter().zip(&outcomes) {
            let named = |name: &'static str| {
                servers
                    .iter()
                    .position(|s| s.name == name)
                    .map(|i| (name, &o[i]))
            };
            let pairs = [
                (named("netstrata uring"), named("netstrata")),
                (named("uring (limit)"), named("mio (limit)")),
            ];
            for ((name, ring), (base_name, base)) in pairs.into_iter().filter_map(|(a, b)| a.zip(b))
            {
                println!(
                    "{name} vs {base_name}, {} B, {} conns x depth {}: CPU µs/msg {:.3} / {:.3} = {:.3}x, msgs/s {:.0} / {:.0} = {:.3}x, p50 {} / {} µs, p99 {} / {} µs",
                    case.size,
                    case.conns,
                    case.depth,
                    ring.cpu_us_per_msg,
                    base.cpu_us_per_msg,
                    ring.cpu_us_per_msg / base.cpu_us_per_msg,
                    ring.msgs_per_sec,
                    base.msgs_per_sec,
                    ring.msgs_per_sec / base.msgs_per_sec,
                    ring.latency.p50,
                    base.latency.p50,
                    ring.latency.p99,
                    base.latency.p99,
                );
            }
        }
        if idle > 0 {
            println!("\nresident memory per idle connection");
            for s in &servers {
                if s.name == "netstrata" || s.name == "tokio" || s.name == "netstrata uring" {
                    memory::idle(s, &stack, idle, Some(64), &mut ports);
                }
            }
        }
    }

    if selected.contains(&"tls") {
        let dir = TempDir::new("echo-compare");
        let certs = certificates(&dir.0);
        let (cert, key, stack) = (&certs.cert, &certs.key, certs.client.clone());
        let servers = [
            netstrata(
                "netstrata tls",
                &loops,
                &["--tls", "--cert", cert, "--key", key],
            ),
            Server::release(
                "tokio-rustls",
                "examples/tokio_tls_echo",
                &["ADDR", cert, key],
            ),
            Server::release(
                "mio tls (limit)",
                "examples/mio_echo",
                &["ADDR", &loops, "--tls", cert, key],
            ),
        ];
        let outcomes = compare_cases(
            "TLS echo",
            &servers,
            &stack,
            &[SMALL, LARGE],
            rounds,
            &mut ports,
        );
        // At 64 B one record carries many messages: the floor is per byte.
        if arg("--floor").is_none_or(|v| v != "no") {
            floor::print(
                &mio_plain,
                &servers,
                &outcomes[1],
                LARGE,
                rounds,
                &mut ports,
            );
        }
        if idle > 0 {
            println!("\nresident memory per idle TLS connection (after the handshake)");
            for s in &servers[..2] {
                memory::idle(s, &stack, idle, Some(64), &mut ports);
            }
        }
        drop(dir);
    }

    if selected.contains(&"zstd") {
        let level = LEVEL.to_string();
        let servers = [
            netstrata(
                "netstrata zstd",
                &loops,
                &["--zstd", "--zstd-level", &level],
            ),
            Server::release("tokio zstd", "examples/tokio_zstd_echo", &["ADDR", &level]),
            Server::release(
                "mio zstd (limit)",
                "examples/mio_echo",
                &["ADDR", &loops, "--zstd", &level],
            ),
        ];
        let stack = StackOptions {
            zstd: Some(ZstdConfig::new().with_level(LEVEL)),
            ..StackOptions::default()
        };
        compare_cases(
            "zstd echo",
            &servers,
            &stack,
            &[LARGE, SMALL],
            rounds,
            &mut ports,
        );
        if zstd_idle > 0 {
            println!("\nresident memory per idle zstd connection");
            for hello in [None, Some(64)] {
                for s in &servers[..2] {
                    memory::idle(s, &stack, zstd_idle, hello, &mut ports);
                }
            }
        }
        if active > 0 {
            println!("\nresident memory per active zstd connection");
            let case = Case {
                conns: active,
                ..LARGE
            };
            for s in &servers[..2] {
                memory::active(s, &stack, case, rounds.secs, &mut ports);
            }
        }
    }
}
