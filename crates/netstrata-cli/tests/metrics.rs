//! `--metrics ADDR`: the binary serves its figures in Prometheus text
//! format, scraped here with a plain HTTP GET. Every wait is on an event
//! or a figure appearing, within a deadline; never a sleep.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{ChildStdout, Command};
use std::time::{Duration, Instant};

mod common;
use common::{spawn, stop};

/// Reads stdout up to the listening line: (metrics address, listening address).
fn addresses(stdout: &mut BufReader<ChildStdout>) -> (SocketAddr, SocketAddr) {
    let (mut line, mut metrics) = (String::new(), None);
    loop {
        line.clear();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "no listening line"
        );
        if let Some(rest) = line.split(" metrics at http://").nth(1) {
            metrics = Some(rest.trim().trim_end_matches("/metrics").parse().unwrap());
        }
        if let Some(rest) = line.split(" listening on ").nth(1) {
            let listening = rest.split_whitespace().next().unwrap().parse().unwrap();
            return (metrics.expect("metrics line before listening"), listening);
        }
    }
}

/// The body of `GET /metrics`.
fn scrape(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let (_, body) = response.split_once("\r\n\r\n").unwrap();
    body.to_string()
}

/// The sum of the samples of `name` whose labels contain each of `labels`.
fn figure(body: &str, name: &str, labels: &[&str]) -> Option<f64> {
    let samples: Vec<f64> = body
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| labels.iter().all(|label| l.contains(label)))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    (!samples.is_empty()).then(|| samples.iter().sum())
}

/// Scrapes `addr` until `done` holds for the body; fails after 20 s.
fn scrape_until(addr: SocketAddr, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let body = scrape(addr);
        if done(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "figures never appeared:\n{body}");
    }
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut framed = (payload.len() as u32).to_be_bytes().to_vec();
    framed.extend_from_slice(payload);
    framed
}

#[test]
fn the_echo_server_serves_its_figures() {
    let mut child = spawn(&[
        "echo-server",
        "--addr",
        "127.0.0.1:0",
        "--threads",
        "1",
        "--metrics",
        "127.0.0.1:0",
        "--metrics-every",
        "20ms",
        "--zstd",
        "--rate",
        "10MB",
    ]);
    let mut stdout = BufReader::new(child.0.stdout.take().unwrap());
    let (metrics, addr) = addresses(&mut stdout);

    // One echo, with the zstd layer the server speaks.
    let mut client = TcpStream::connect(addr).unwrap();
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    encoder.write_all(&frame(b"hello, metrics")).unwrap();
    encoder.flush().unwrap();
    client.write_all(encoder.get_ref()).unwrap();
    let mut first = [0; 1];
    client.read_exact(&mut first).unwrap();

    // A scrape may come while a loop publishes: wait for the last figure
    // it publishes (the layers' bytes) along with the echo.
    let body = scrape_until(metrics, |body| {
        figure(body, "netstrata_messages_total", &[r#"direction="out""#]) == Some(1.0)
            && figure(body, "netstrata_layer_bytes_total", &[r#"layer="zstd""#]).is_some()
    });
    let expect = [
        ("netstrata_connections_opened_total", &[][..], 1.0),
        ("netstrata_connections_open", &[][..], 1.0),
        ("netstrata_messages_total", &[r#"direction="in""#][..], 1.0),
        ("netstrata_messages_total", &[r#"direction="out""#][..], 1.0),
    ];
    for (name, labels, value) in expect {
        let found = figure(&body, name, labels);
        assert_eq!(found, Some(value), "{name} {labels:?}:\n{body}");
    }
    for figure_name in [
        "netstrata_wire_bytes_total",
        "netstrata_layer_bytes_total",
        "netstrata_shaped_bytes_total",
        "netstrata_shaped_throughput_bytes_per_second",
    ] {
        assert!(body.contains(figure_name), "{figure_name}:\n{body}");
    }
    // The tool's own figures, published on a timer of their own: the
    // shaper saw the wire bytes, the open connection holds a zstd decoder.
    let body = scrape_until(metrics, |body| {
        let positive = |name, labels: &[&str]| figure(body, name, labels).is_some_and(|v| v > 0.0);
        positive("netstrata_shaped_bytes_total", &[r#"direction="in""#])
            && positive("netstrata_zstd_decoder_memory_bytes", &[])
    });
    assert_eq!(
        figure(&body, "netstrata_zstd_decoders_refused_total", &[]),
        Some(0.0),
        "{body}"
    );

    drop(client);
    assert!(stop(child), "a clean exit on SIGTERM");
}

#[test]
fn the_tunnel_serves_its_loop_figures() {
    let target = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target_addr = target.local_addr().unwrap().to_string();
    let mut child = spawn(&[
        "tunnel",
        "--listen",
        "127.0.0.1:0",
        "--connect",
        &target_addr,
        "--stack-side",
        "connect",
        "--metrics",
        "127.0.0.1:0",
        "--metrics-every",
        "20ms",
        // Its client stays connected: no need to wait for it at the end.
        "--grace",
        "10ms",
    ]);
    let mut stdout = BufReader::new(child.0.stdout.take().unwrap());
    let (metrics, addr) = addresses(&mut stdout);
    let _client = TcpStream::connect(addr).unwrap();
    let (_accepted, _) = target.accept().unwrap();
    // Both legs of the pair: the accepted one and the one to the target.
    scrape_until(metrics, |body| {
        figure(body, "netstrata_connections_opened_total", &[]) == Some(2.0)
    });
    assert!(stop(child), "a clean exit on SIGTERM");
}

#[test]
fn a_bad_metrics_address_is_a_setup_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_netstrata"))
        .args([
            "echo-server",
            "--addr",
            "127.0.0.1:0",
            "--metrics",
            "nowhere",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with("error: cannot resolve nowhere"),
        "{stderr}"
    );
}
