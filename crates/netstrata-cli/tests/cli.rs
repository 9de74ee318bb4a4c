//! The tool as a user runs it: echo server, load generator, errors.

use std::process::Command;
use std::time::Duration;

use netstrata_cli::echo;
use netstrata_cli::load::{self, LoadOptions, Payload};
use netstrata_cli::stack::StackOptions;

fn load(addr: std::net::SocketAddr, size: usize, payload: Payload) -> load::Report {
    let opts = LoadOptions {
        addr,
        conns: 4,
        depth: 8,
        size,
        duration: Duration::from_millis(400),
        payload,
        stack: StackOptions::default(),
    };
    load::run(&opts, |_| {}).unwrap()
}

#[test]
fn bench_against_the_echo_server_verifies_every_echo() {
    let server = echo::serve("127.0.0.1:0".parse().unwrap(), 1, StackOptions::default()).unwrap();
    for (size, payload) in [
        (64, Payload::Text),
        (20_000, Payload::Random),
        (8, Payload::Text),
    ] {
        let report = load(server.local_addr(), size, payload);
        assert_eq!(report.errors, 0, "{:?}", report.error_samples);
        assert!(report.messages > 0);
        let [p50, p99, p999, max] = report.latency_us;
        assert!(p50 <= p99 && p99 <= p999 && p999 <= max);
        assert!(report.json("plain").contains("\"errors\":0"));
    }
    server.stop().unwrap();
}

#[test]
fn the_binary_reports_errors_with_exit_status() {
    let bin = env!("CARGO_BIN_EXE_netstrata");
    // Nothing listens on port 1: errors, exit status 1.
    let out = Command::new(bin)
        .args([
            "bench",
            "--addr",
            "127.0.0.1:1",
            "--secs",
            "0.2",
            "--conns",
            "2",
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("ConnectionRefused"), "{stdout}");

    // Bad flags: clap's message and status 2.
    let out = Command::new(bin)
        .args(["bench", "--conns", "many"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--conns"));

    // A frame size the sequence number does not fit: a clear error.
    let out = Command::new(bin)
        .args([
            "bench",
            "--addr",
            "127.0.0.1:1",
            "--size",
            "4",
            "--secs",
            "0.1",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 8"));
}
