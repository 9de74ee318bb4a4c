//! Interleaved load rounds: every server of a comparison is loaded by the
//! same client in each round, in rotating order, and medians are reported
//! with ratios to the baselines.

use std::time::Duration;

use netstrata_cli::load::{self, LoadOptions, Payload};
use netstrata_cli::stack::StackOptions;

use super::median;
use super::process::{Ports, Running, Server};

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

/// How long and how often.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rounds {
    /// Seconds per server per round.
    pub(crate) secs: f64,
    /// Rounds.
    pub(crate) rounds: usize,
}

/// Medians of one server's rounds.
#[derive(Debug, Clone, Copy)]
struct Outcome {
    /// Echoes per second.
    msgs_per_sec: f64,
    /// Server CPU time per echoed message, µs.
    cpu_us_per_msg: f64,
    /// Of which in user space (the server's code and libraries), µs.
    user_us_per_msg: f64,
    /// Of which in the kernel, µs.
    system_us_per_msg: f64,
    /// Wire bytes the server sent per framed payload byte it echoed.
    wire_per_payload: f64,
}

/// Runs `case` against every server with the client `stack` and prints a
/// table titled `title`, with the ratios of CPU per message and of wire
/// bytes per payload byte to each server in `baselines` (indices into
/// `servers`).
pub(crate) fn compare(
    title: &str,
    servers: &[Server],
    baselines: &[usize],
    stack: &StackOptions,
    case: Case,
    rounds: Rounds,
    ports: &mut Ports,
) {
    let mut rates = vec![Vec::new(); servers.len()];
    let mut cpu = vec![Vec::new(); servers.len()];
    let mut user = vec![Vec::new(); servers.len()];
    let mut system = vec![Vec::new(); servers.len()];
    let mut wire = vec![Vec::new(); servers.len()];
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
                ..LoadOptions::new(server.addr, stack.clone())
            };
            let before = server.cpu();
            let report = load::run(&opts, |_| {}).expect("load");
            let used = server.cpu() - before;
            drop(server);
            assert_eq!(
                report.errors, 0,
                "{}: {:?}",
                servers[i].name, report.error_samples
            );
            rates[i].push(report.msgs_per_sec());
            // Every echo counts, the drain after the window's too: its CPU
            // was measured as well.
            let echoed = report.totals.messages_in as f64;
            cpu[i].push(used.total().as_secs_f64() / echoed * 1e6);
            user[i].push(used.user.as_secs_f64() / echoed * 1e6);
            system[i].push(used.system.as_secs_f64() / echoed * 1e6);
            let framed = echoed * (case.size + 4) as f64;
            wire[i].push(report.totals.wire_in as f64 / framed);
        }
    }
    let outcomes: Vec<Outcome> = (0..servers.len())
        .map(|i| Outcome {
            msgs_per_sec: median(&mut rates[i]),
            cpu_us_per_msg: median(&mut cpu[i]),
            user_us_per_msg: median(&mut user[i]),
            system_us_per_msg: median(&mut system[i]),
            wire_per_payload: median(&mut wire[i]),
        })
        .collect();
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
}
