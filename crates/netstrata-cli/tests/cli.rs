//! The tool as a user runs it: echo server, load generator, errors.

use std::process::Command;
use std::time::Duration;

use netstrata_cli::demo::dev_tls;
use netstrata_cli::echo;
use netstrata_cli::load::{self, LoadOptions, Payload};
use netstrata_cli::stack::StackOptions;

fn load(addr: std::net::SocketAddr, size: usize, payload: Payload) -> load::Report {
    let opts = LoadOptions {
        conns: 4,
        depth: 8,
        size,
        duration: Duration::from_millis(150),
        payload,
        ..LoadOptions::new(addr, StackOptions::default())
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
        let l = report.latency;
        assert!(l.p50 <= l.p90 && l.p90 <= l.p99 && l.p99 <= l.p999 && l.p999 <= l.max);
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
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("connection refused"), "{stderr}");
    assert!(out.stdout.is_empty());

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

/// The full default profile, as `--tls --zstd --rate` assemble it: every
/// echo verified, and the shaped rate near the configured one.
#[test]
fn tls_zstd_and_shaping_through_the_tool_stack() {
    use netstrata_cli::stack::RateOptions;
    use netstrata_shape::Limit;
    let (server_tls, client_tls) = dev_tls().unwrap();
    let server_stack = StackOptions {
        zstd: Some(netstrata_zstd::ZstdConfig::new()),
        tls: Some(server_tls),
        rate: None,
    };
    let server = echo::serve("127.0.0.1:0".parse().unwrap(), 1, server_stack.clone()).unwrap();
    let rate = 200_000;
    let client_stack = StackOptions {
        zstd: Some(netstrata_zstd::ZstdConfig::new()),
        tls: Some(client_tls),
        rate: Some(RateOptions::new(
            Some(Limit::per_second(rate).unwrap()),
            None,
            Duration::from_secs(1),
        )),
    };
    assert_eq!(
        client_stack.describe(),
        "zstd(level 3)+tls+shape(200000 B/s per connection)"
    );
    let opts = LoadOptions {
        conns: 2,
        depth: 4,
        size: 2000,
        duration: Duration::from_millis(600),
        payload: Payload::Random,
        ..LoadOptions::new(server.local_addr(), client_stack)
    };
    let report = load::run(&opts, |_| {}).unwrap();
    assert_eq!(report.errors, 0, "{:?}", report.error_samples);
    assert!(report.messages > 10);
    // The shaper holds the rate down: a starved machine can only slow the
    // run further, so only the upper bound is checked here (the accuracy
    // of the shaped rate is a benchmark's: docs/benchmarks.md, "Shaper").
    let per_conn = report.wire_bytes_per_sec() / 2.0;
    assert!(
        per_conn < rate as f64 * 1.5,
        "{per_conn} B/s against {rate}"
    );
    // The shaper's counters, as the tool displays them.
    let traffic = report.traffic.expect("shaping counts traffic");
    // (Taken at the end of the window; `wire_out` a little after it.)
    assert!(traffic.outbound.total_bytes > report.wire_out / 2);
    assert!(traffic.outbound.peak_throughput >= traffic.outbound.throughput);
    assert!(traffic.outbound.throughput > 0);
    assert_eq!(report.totals.connections, 2);
    let names: Vec<&str> = report.totals.layers.iter().map(|l| l.name).collect();
    assert_eq!(names, ["zstd", "tls", "shape"]);
    server.stop().unwrap();
}

/// A TLS echo server on one loop.
fn tls_echo_server(tls: netstrata_cli::stack::TlsSide) -> netstrata_reactor::Server {
    let stack = StackOptions {
        tls: Some(tls),
        ..StackOptions::default()
    };
    echo::serve("127.0.0.1:0".parse().unwrap(), 1, stack).unwrap()
}

/// A client that does not trust the server's certificate gets a typed
/// error and the tool's exit status says so.
#[test]
fn an_untrusted_certificate_is_a_reported_error() {
    let (server_tls, _) = dev_tls().unwrap();
    let (_, other_client) = dev_tls().unwrap();
    let server = tls_echo_server(server_tls);
    let report = load::run(
        &LoadOptions {
            conns: 1,
            depth: 1,
            duration: Duration::from_millis(300),
            ..LoadOptions::new(
                server.local_addr(),
                StackOptions {
                    tls: Some(other_client),
                    ..StackOptions::default()
                },
            )
        },
        |_| {},
    )
    .unwrap();
    assert_eq!(report.errors, 1);
    assert!(
        report.error_samples[0].contains("tls: peer misbehaved: peer certificate rejected"),
        "{:?}",
        report.error_samples
    );
    server.stop().unwrap();
}

/// `--mode connect`: a connection and a TLS handshake per exchange, in a
/// closed loop and at a rate; every exchange checked, the TCP connects
/// timed on their own.
#[test]
fn connect_mode_makes_a_connection_per_exchange() {
    let (server_tls, client_tls) = dev_tls().unwrap();
    let server = tls_echo_server(server_tls);
    let client = StackOptions {
        tls: Some(client_tls),
        ..StackOptions::default()
    };
    for rate in [None, Some(200.0)] {
        let report = load::run(
            &LoadOptions {
                conns: 4,
                duration: Duration::from_millis(500),
                mode: load::Mode::Connect,
                msg_rate: rate,
                ..LoadOptions::new(server.local_addr(), client.clone())
            },
            |_| {},
        )
        .unwrap();
        assert_eq!(report.errors, 0, "{rate:?}: {:?}", report.error_samples);
        assert!(
            report.messages > 10,
            "{rate:?}: {} exchanges",
            report.messages
        );
        // One connection each, the drain's included.
        assert_eq!(
            report.totals.connections, report.connections_opened,
            "{rate:?}"
        );
        assert!(report.totals.connections >= report.messages, "{rate:?}");
        let connect = report.connect_latency.expect("connects timed");
        assert!(
            connect.p50 <= report.latency.p50,
            "{rate:?}: a connect is part of its exchange"
        );
        if let Some(rate) = rate {
            // On a schedule: at most 100 in half a second (and those in
            // flight at the edges); a machine too busy to keep up makes
            // fewer, so how closely the schedule is kept is a benchmark's
            // question. Without the schedule there would be hundreds.
            assert!(report.messages <= 102, "{} at {rate}/s", report.messages);
        }
    }
    server.stop().unwrap();
}
