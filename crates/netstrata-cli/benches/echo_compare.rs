//! Echo servers side by side, same client, same run: `netstrata echo-server`,
//! a tokio + tokio-util server (2 workers) and a minimal hand-written mio echo
//! (the limit). Each runs in its own process; the load client (the one behind
//! `netstrata bench`) runs here. Reported per server: msgs/s and the server's
//! CPU time per message (user + system, from `/proc/PID/stat`), and the
//! ratios to the baselines; then resident memory per idle connection.
//!
//! `cargo bench -p netstrata-cli --bench echo_compare [-- --secs 3 --rounds 3 --idle 10000 --netstrata-threads 2]`
//!
//! The idle test needs an open-file limit above `--idle` for this process
//! and for each server (`ulimit -n`); it reports how many it could open.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use netstrata_cli::load::{self, LoadOptions, Payload};
use netstrata_cli::stack::StackOptions;

struct Server {
    name: &'static str,
    program: PathBuf,
    args: Vec<String>,
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"),
        PathBuf::from,
    )
}

fn build() {
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--release",
            "-p",
            "netstrata-cli",
            "--bin",
            "netstrata",
        ])
        .args(["--example", "tokio_echo", "--example", "mio_echo"])
        .status()
        .expect("cargo");
    assert!(status.success(), "building the servers failed");
}

/// Starts `server` on `addr` and waits until it listens.
fn start(server: &Server, addr: SocketAddr) -> Child {
    let mut child = Command::new(&server.program)
        .args(
            server
                .args
                .iter()
                .map(|a| a.replace("ADDR", &addr.to_string())),
        )
        .stdout(Stdio::piped())
        .spawn()
        .expect("start server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("listening"), "{}: {line}", server.name);
    child
}

/// User + system CPU time of `pid` and its threads, in seconds.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

/// Resident memory of `pid` in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn arg(name: &str, default: f64) -> f64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let secs = arg("--secs", 3.0);
    let rounds = arg("--rounds", 3.0) as usize;
    let idle = arg("--idle", 10_000.0) as usize;
    let loops = (arg("--netstrata-threads", 2.0) as usize)
        .max(1)
        .to_string();
    build();
    let release = target_dir().join("release");
    let servers = [
        Server {
            name: "netstrata",
            program: release.join("netstrata"),
            args: vec![
                "echo-server".into(),
                "--addr".into(),
                "ADDR".into(),
                "--threads".into(),
                loops.clone(),
            ],
        },
        Server {
            name: "tokio",
            program: release.join("examples/tokio_echo"),
            args: vec!["ADDR".into()],
        },
        Server {
            name: "mio (limit)",
            program: release.join("examples/mio_echo"),
            args: vec!["ADDR".into()],
        },
    ];
    let mut port = 7400;
    for (size, conns, depth) in [(64, 16, 16), (16 * 1024, 4, 4)] {
        let mut rates = vec![Vec::new(); servers.len()];
        let mut cpu = vec![Vec::new(); servers.len()];
        for round in 0..rounds {
            for k in 0..servers.len() {
                let i = (round + k) % servers.len();
                port += 1;
                let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
                let mut child = start(&servers[i], addr);
                let opts = LoadOptions {
                    addr,
                    conns,
                    depth,
                    size,
                    duration: Duration::from_secs_f64(secs),
                    payload: Payload::Text,
                    stack: StackOptions::default(),
                };
                let before = cpu_secs(child.id());
                let report = load::run(&opts, |_| {}).expect("load");
                let used = cpu_secs(child.id()) - before;
                let _ = child.kill();
                let _ = child.wait();
                assert_eq!(
                    report.errors, 0,
                    "{}: {:?}",
                    servers[i].name, report.error_samples
                );
                rates[i].push(report.msgs_per_sec());
                // The drain after the window also costs CPU: count its messages too.
                let msgs = report.messages as f64 + (conns * depth) as f64;
                cpu[i].push(used / msgs * 1e6);
            }
        }
        println!(
            "\necho {size} B, {conns} conns x depth {depth}, {secs} s x {rounds} rounds (medians)"
        );
        println!(
            "  {:<12} {:>12} {:>16} {:>10} {:>10}",
            "server", "msgs/s", "server CPU µs/msg", "vs tokio", "vs mio"
        );
        let cpu_m: Vec<f64> = cpu.iter_mut().map(|v| median(v)).collect();
        for (i, s) in servers.iter().enumerate() {
            println!(
                "  {:<12} {:>12.0} {:>16.3} {:>10.2} {:>10.2}",
                s.name,
                median(&mut rates[i]),
                cpu_m[i],
                cpu_m[i] / cpu_m[1],
                cpu_m[i] / cpu_m[2]
            );
        }
    }
    if idle > 0 {
        println!(
            "\nresident memory per idle connection ({idle} connections, after one message each)"
        );
        for s in &servers {
            port += 1;
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            let mut child = start(s, addr);
            std::thread::sleep(Duration::from_millis(200));
            let before = rss_kib(child.id());
            let mut streams = Vec::with_capacity(idle);
            for _ in 0..idle {
                let Ok(mut stream) = TcpStream::connect(addr) else {
                    break;
                };
                // One echoed message, so buffers were used at least once.
                let _ = std::io::Write::write_all(&mut stream, &[0, 0, 0, 2, b'h', b'i']);
                streams.push(stream);
            }
            for stream in &mut streams {
                let mut back = [0u8; 6];
                let _ = std::io::Read::read_exact(stream, &mut back);
            }
            // Let a sweep release buffers of idle connections.
            std::thread::sleep(Duration::from_millis(2500));
            let after = rss_kib(child.id());
            println!(
                "  {:<12} {:>8.2} KiB per connection ({} connections, RSS {} -> {} KiB)",
                s.name,
                (after.saturating_sub(before)) as f64 / streams.len().max(1) as f64,
                streams.len(),
                before,
                after
            );
            drop(streams);
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
