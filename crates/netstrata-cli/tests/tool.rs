//! The binary as a user runs it: the demo's table, charts, help and errors.

use std::net::TcpListener;
use std::process::{Command, Output};

use netstrata_cli::echo;
use netstrata_cli::stack::StackOptions;

fn netstrata(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_netstrata"))
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Rows of the demo's table whose first column is `layer`.
fn rows<'a>(table: &'a str, layer: &str) -> Vec<&'a str> {
    table
        .lines()
        .filter(|l| l.split_whitespace().next() == Some(layer))
        .collect()
}

#[test]
fn the_demo_prints_a_row_per_layer_and_side() {
    let out = netstrata(&["demo", "--secs", "0.5", "--conns", "2"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    for layer in ["frame", "zstd", "tls", "shape", "tcp"] {
        let found = rows(&stdout, layer);
        assert_eq!(found.len(), 2, "{layer}:\n{stdout}");
        assert!(found[0].contains(" client "), "{stdout}");
        assert!(found[1].contains(" server "), "{stdout}");
    }
    for figure in [
        "compressed to",
        "TLS overhead",
        "configured 250.0 kB/s per connection",
        "traffic out (all connections)",
        "peak",
        "msgs/s",
        "p99.9",
        "errors: 0",
    ] {
        assert!(stdout.contains(figure), "{figure}:\n{stdout}");
    }
}

#[test]
fn demo_flags_choose_the_layers() {
    let out = netstrata(&[
        "demo",
        "--secs",
        "0.3",
        "--no-tls",
        "--no-rate",
        "--size",
        "100",
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert_eq!(rows(&stdout, "zstd").len(), 2, "{stdout}");
    assert!(rows(&stdout, "tls").is_empty(), "{stdout}");
    assert!(rows(&stdout, "shape").is_empty(), "{stdout}");
    assert!(stdout.contains("x 100 B messages"), "{stdout}");
}

/// A run's chart, as SVG: a histogram or a line, with its labels as text.
#[test]
fn bench_draws_charts() {
    let server = echo::serve("127.0.0.1:0".parse().unwrap(), 1, StackOptions::default()).unwrap();
    let addr = server.local_addr().to_string();
    let dir = std::env::temp_dir();
    for (kind, label) in [
        ("latency", "round trip (µs)"),
        ("throughput", "echoes/s"),
        ("latency-over-time", "seconds into the measured window"),
        ("spectrum", "percentile"),
    ] {
        let path = dir.join(format!("netstrata-{kind}-{}.svg", std::process::id()));
        let path_text = path.to_str().unwrap();
        let out = netstrata(&[
            "bench",
            "--addr",
            &addr,
            "--secs",
            "0.4",
            "--conns",
            "2",
            "--interval",
            "100ms",
            "--plot",
            path_text,
            "--plot-kind",
            kind,
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let svg = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert!(svg.starts_with("<svg"), "{kind}");
        assert!(svg.contains(label), "{kind}: no {label:?}");
        let marks = match kind {
            "latency" => svg.matches("<rect").count(),
            _ => svg.matches("<polyline").count(),
        };
        assert!(marks > 1, "{kind}: {marks} marks");
    }
    server.stop().unwrap();
}

/// Open loop over two client loops: the rate asked for is the rate sent
/// (every echo checked), after a warm-up that does not count, with one
/// figure set per interval; the text report says where latency is
/// measured from.
#[test]
fn bench_open_loop_sends_at_the_rate_asked_over_several_loops() {
    let server = echo::serve("127.0.0.1:0".parse().unwrap(), 1, StackOptions::default()).unwrap();
    let addr = server.local_addr().to_string();
    let common = [
        "bench",
        "--addr",
        &addr,
        "--secs",
        "1",
        "--warmup",
        "200ms",
        "--interval",
        "250ms",
        "--conns",
        "4",
        "--threads",
        "2",
        "--msg-rate",
        "2000",
    ];
    let out = netstrata(&[&common[..], &["--json"]].concat());
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let config = &json["config"];
    assert_eq!(config["pace"], "open", "{stdout}");
    assert_eq!(config["mode"], "persistent", "{stdout}");
    assert_eq!(config["msg_rate"], 2000.0, "{stdout}");
    assert_eq!(config["threads"], 2, "{stdout}");
    assert_eq!(config["depth"], serde_json::Value::Null, "{stdout}");
    assert_eq!(config["warmup_secs"], 0.2, "{stdout}");
    assert_eq!(json["errors"], 0, "{stdout}");
    // 2,000 a second for one second, on a schedule: what came back within
    // the window is that, less what was still in flight at its edges.
    let messages = json["messages"].as_u64().unwrap();
    assert!((1_900..=2_050).contains(&messages), "{messages}: {stdout}");
    let intervals = json["intervals"].as_array().unwrap();
    assert_eq!(intervals.len(), 4, "{stdout}");
    for (k, interval) in intervals.iter().enumerate() {
        let end = interval["end_secs"].as_f64().unwrap();
        assert!((end - 0.25 * (k + 1) as f64).abs() < 1e-6, "{stdout}");
        let latency = &interval["latency"];
        assert!(latency["p50_us"].as_u64().unwrap() <= latency["max_us"].as_u64().unwrap());
    }
    let latency = &json["latency"];
    for key in [
        "p50_us", "p90_us", "p99_us", "p999_us", "p9999_us", "max_us",
    ] {
        assert!(latency[key].as_u64().unwrap() > 0, "{key}: {stdout}");
    }
    assert!(json["client_cpu_us_per_msg"].as_f64().is_some(), "{stdout}");

    let out = netstrata(&common);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(stdout.contains("open loop at 2000 msgs/s"), "{stdout}");
    assert!(
        stdout.contains("from each one's intended start"),
        "{stdout}"
    );
    assert_eq!(stdout.matches("msgs/s  p50").count(), 4, "{stdout}");
    server.stop().unwrap();
}

/// `--json` is one JSON line with a schema version, the configuration
/// and every figure; with shaping, the shaper's counters.
#[test]
fn bench_json_carries_the_traffic_counters() {
    let server = echo::serve("127.0.0.1:0".parse().unwrap(), 1, StackOptions::default()).unwrap();
    let out = netstrata(&[
        "bench",
        "--addr",
        &server.local_addr().to_string(),
        "--secs",
        "0.3",
        "--conns",
        "2",
        "--rate",
        "1MB",
        "--json",
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["schema_version"], 1, "{stdout}");
    let config = &json["config"];
    assert_eq!(config["addr"], server.local_addr().to_string(), "{stdout}");
    assert_eq!(config["conns"], 2, "{stdout}");
    assert_eq!(config["depth"], 16, "{stdout}");
    assert_eq!(config["size"], 64, "{stdout}");
    assert_eq!(config["secs"], 0.3, "{stdout}");
    assert_eq!(config["payload"], "text", "{stdout}");
    assert!(
        config["stack"].as_str().unwrap().contains("shape"),
        "{stdout}"
    );
    assert!(json["messages"].as_u64().unwrap() > 0, "{stdout}");
    assert!(json["p99_us"].as_u64().unwrap() > 0, "{stdout}");
    assert_eq!(json["errors"], 0, "{stdout}");
    for dir in ["out", "in"] {
        let traffic = &json["traffic"][dir];
        assert!(traffic["total_bytes"].as_u64().unwrap() > 0, "{stdout}");
        assert!(traffic["peak_bytes_per_sec"].is_u64(), "{stdout}");
    }
    server.stop().unwrap();
}

#[test]
fn help_explains_every_flag() {
    let out = netstrata(&["tunnel", "--help"]);
    let help = text(&out.stdout);
    assert!(out.status.success());
    for flag in [
        "--listen",
        "--connect",
        "--stack-side",
        "--tls",
        "--cert",
        "--key",
        "--ca-out",
        "--client-ca",
        "--ca",
        "--server-name",
        "--client-cert",
        "--client-key",
        "--metrics",
        "--zstd",
        "--zstd-level",
        "--rate",
        "--burst",
        "--global-rate",
        "--window",
    ] {
        // Long help: the flag on its line, its description on the next.
        let lines: Vec<&str> = help.lines().collect();
        let at = lines
            .iter()
            .position(|l| l.split_whitespace().next() == Some(flag))
            .unwrap_or_else(|| panic!("{flag} missing:\n{help}"));
        let description = lines.get(at + 1).map_or("", |l| l.trim());
        assert!(
            description.len() > 10 && !description.starts_with('-'),
            "{flag}: {description:?}"
        );
    }
    for command in ["demo", "echo-server", "bench"] {
        let out = netstrata(&[command, "--help"]);
        assert!(out.status.success(), "{command}");
        assert!(text(&out.stdout).contains("--rate"), "{command}");
    }
}

/// Each subcommand's help shows only the flags it uses, and examples.
#[test]
fn help_lists_only_the_flags_of_its_subcommand() {
    let help = |command: &str| {
        let out = netstrata(&[command, "--help"]);
        assert!(out.status.success(), "{command}");
        text(&out.stdout)
    };
    // A flag as help lists it: first on its line.
    let lists = |help: &str, flag: &str| {
        help.lines()
            .any(|l| l.trim_start().split([' ', ',', '=']).next() == Some(flag))
    };
    for command in ["demo", "echo-server", "bench", "tunnel"] {
        let help = help(command);
        let examples = help.split("Examples:\n").nth(1);
        let examples = examples.unwrap_or_else(|| panic!("{command}: no examples:\n{help}"));
        assert!(
            examples.contains(&format!("netstrata {command} ")),
            "{command}:\n{examples}"
        );
    }
    let bench = help("bench");
    for flag in [
        "--cert",
        "--key",
        "--ca-out",
        "--client-ca",
        "--metrics",
        "--grace",
    ] {
        assert!(!lists(&bench, flag), "bench lists {flag}:\n{bench}");
    }
    for flag in [
        "--tls",
        "--ca",
        "--server-name",
        "--client-cert",
        "--client-key",
    ] {
        assert!(lists(&bench, flag), "bench lacks {flag}:\n{bench}");
    }
    let echo = help("echo-server");
    for flag in ["--ca", "--server-name", "--client-cert", "--client-key"] {
        assert!(!lists(&echo, flag), "echo-server lists {flag}:\n{echo}");
    }
    for flag in [
        "--tls",
        "--cert",
        "--key",
        "--ca-out",
        "--client-ca",
        "--metrics",
    ] {
        assert!(lists(&echo, flag), "echo-server lacks {flag}:\n{echo}");
    }
    let demo = help("demo");
    for flag in [
        "--tls",
        "--cert",
        "--ca",
        "--metrics",
        "--zstd-memory-budget",
    ] {
        assert!(!lists(&demo, flag), "demo lists {flag}:\n{demo}");
    }
}

/// Values clap refuses: status 2 and a message naming the flag.
#[test]
fn bad_values_name_their_flag() {
    for (args, flag) in [
        (&["bench", "--conns", "0"][..], "--conns"),
        (&["bench", "--depth", "0"][..], "--depth"),
        (&["bench", "--size", "4"][..], "--size"),
        (&["demo", "--conns", "0"][..], "--conns"),
        (&["demo", "--depth", "0"][..], "--depth"),
        (&["echo-server", "--threads", "0"][..], "--threads"),
        (&["bench", "--secs", "abc"][..], "--secs"),
        (&["bench", "--secs=-1"][..], "--secs"),
        (&["demo", "--secs", "5x"][..], "--secs"),
        (&["echo-server", "--stats-every", "0"][..], "--stats-every"),
    ] {
        let out = netstrata(args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
    }
}

/// Durations take units; a bare number, decimals included, is seconds.
#[test]
fn durations_take_units() {
    for secs in ["300ms", "0.3", "0.3s"] {
        let out = netstrata(&["demo", "--secs", secs, "--conns", "1", "--no-tls"]);
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{secs}: {}", text(&out.stderr));
        assert!(stdout.contains(", 0.3 s"), "{secs}:\n{stdout}");
    }
    // Parsed, not run: `5s` is accepted where it used to be refused.
    let out = netstrata(&["bench", "--secs", "5s", "--connect", "127.0.0.1:1"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
}

/// A run none of whose connections opened: the cause as a sentence, no
/// `Debug` form, and no report of zeros.
#[test]
fn a_failed_connect_is_a_sentence_not_a_report() {
    for extra in [&[][..], &["--json"][..]] {
        let mut args = vec!["bench", "--connect", "127.0.0.1:1", "--secs", "0.2"];
        args.extend_from_slice(extra);
        let out = netstrata(&args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert_eq!(
            stderr.trim_end(),
            "error: could not connect to 127.0.0.1:1: connection refused"
        );
        assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    }
}

/// One line on stderr, starting with `netstrata:` (or clap's `error:`),
/// naming `expected`; no panic, no backtrace.
fn assert_clear_error(out: &Output, code: i32, expected: &str) {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{stderr}");
    assert!(stderr.contains(expected), "{expected:?} not in:\n{stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
    let first = stderr.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("netstrata: ") || first.starts_with("error: "),
        "{stderr}"
    );
}

#[test]
fn errors_are_one_clear_line() {
    // Bad flags.
    let out = netstrata(&["bench", "--rate", "fast"]);
    assert_clear_error(&out, 2, "not a number of bytes");
    let out = netstrata(&["demo", "--secs", "0"]);
    assert_clear_error(&out, 2, "not a positive duration");
    let out = netstrata(&[
        "tunnel",
        "--listen",
        "127.0.0.1:0",
        "--connect",
        "127.0.0.1:1",
    ]);
    assert_clear_error(&out, 2, "--stack-side");
    let out = netstrata(&["bench", "--cert", "a.pem", "--key", "b.pem"]);
    assert_clear_error(&out, 2, "unexpected argument '--cert'");
    let tunnel = [
        "tunnel",
        "--listen",
        "127.0.0.1:0",
        "--connect",
        "127.0.0.1:1",
    ];
    let out = netstrata(
        &[
            &tunnel[..],
            &["--stack-side", "connect", "--tls", "--client-ca", "c.pem"],
        ]
        .concat(),
    );
    assert_clear_error(&out, 2, "for the accepting side (--stack-side listen)");
    let out = netstrata(
        &[
            &tunnel[..],
            &["--stack-side", "listen", "--tls", "--server-name", "x"],
        ]
        .concat(),
    );
    assert_clear_error(&out, 2, "for the connecting side (--stack-side connect)");
    let out = netstrata(
        &[
            &tunnel[..],
            &["--stack-side", "listen", "--client-ca", "c.pem"],
        ]
        .concat(),
    );
    assert_clear_error(&out, 2, "the TLS flags need --tls");

    // An unreachable address: a closed loopback port.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = closed.local_addr().unwrap().to_string();
    drop(closed);
    let out = netstrata(&["bench", "--addr", &dead, "--secs", "0.2", "--conns", "1"]);
    assert_clear_error(
        &out,
        1,
        &format!("could not connect to {dead}: connection refused"),
    );
    let out = netstrata(&["bench", "--addr", "no-such-host.invalid:7000"]);
    assert_clear_error(&out, 2, "cannot resolve no-such-host.invalid:7000");

    // A port already taken.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    let out = netstrata(&[
        "tunnel",
        "--listen",
        &taken_addr,
        "--connect",
        "127.0.0.1:1",
        "--stack-side",
        "listen",
    ]);
    assert_clear_error(&out, 2, &format!("cannot listen on {taken_addr}"));
    drop(taken);

    // Unreadable certificate files.
    let missing = std::env::temp_dir().join("netstrata-no-such-dir/cert.pem");
    let missing = missing.to_str().unwrap();
    let out = netstrata(&[
        "echo-server",
        "--addr",
        "127.0.0.1:0",
        "--tls",
        "--cert",
        missing,
        "--key",
        missing,
    ]);
    assert_clear_error(&out, 2, &format!("cannot load {missing}"));
    let out = netstrata(&["bench", "--tls", "--ca", missing, "--secs", "0.1"]);
    assert_clear_error(&out, 2, &format!("cannot load {missing}"));

    // A chart format the tool does not draw.
    let out = netstrata(&["bench", "--plot", "chart.png"]);
    assert_clear_error(&out, 2, "charts are drawn as .svg");
}
