//! The long-running subcommands under SIGINT and SIGTERM, and a closed
//! stdout: the binary as a shell runs it. Every wait is on an event (a
//! line, an accept, an end of stream, the child's exit), never a sleep.

use std::io::{BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Child;
use std::sync::mpsc;
use std::thread;

mod common;
use common::{listening_addr, signal};

fn spawn(args: &[&str]) -> Child {
    common::command(args).spawn().unwrap()
}

/// A length-delimited frame (4-byte big-endian length), as the echo server takes.
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut framed = (payload.len() as u32).to_be_bytes().to_vec();
    framed.extend_from_slice(payload);
    framed
}

#[test]
fn sigterm_stops_the_echo_server_gracefully_with_a_summary() {
    sigterm_stops_gracefully(&["--threads", "1"]);
}

/// The same with loops that the threads take turns to run.
#[test]
fn sigterm_stops_an_echo_server_with_shared_loops_gracefully() {
    sigterm_stops_gracefully(&["--threads", "2", "--shared-loops", "4"]);
}

fn sigterm_stops_gracefully(loops: &[&str]) {
    let mut args = vec!["echo-server", "--addr", "127.0.0.1:0"];
    args.extend_from_slice(loops);
    let mut child = spawn(&args);
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let addr = listening_addr(&mut stdout);

    // One connection with an echo done, still open when the signal comes.
    let mut client = TcpStream::connect(addr).unwrap();
    let sent = frame(b"hello, netstrata");
    client.write_all(&sent).unwrap();
    let mut echoed = vec![0; sent.len()];
    client.read_exact(&mut echoed).unwrap();
    assert_eq!(echoed, sent);

    signal(&child, "TERM");
    // The server closes the open connection in order: an end of stream.
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    drop(client);

    let mut tail = String::new();
    stdout.read_to_string(&mut tail).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{tail}\n{stderr}");
    assert!(
        tail.contains("echo-server stopped: 1 connections, 1 messages in and 1 out"),
        "{tail}"
    );
    assert!(tail.contains("closed: 1 (1 clean)"), "{tail}");
}

#[test]
fn sigint_stops_the_tunnel_with_a_summary() {
    let mut child = spawn(&[
        "tunnel",
        "--listen",
        "127.0.0.1:0",
        "--connect",
        "127.0.0.1:1",
        "--stack-side",
        "listen",
        "--quiet",
    ]);
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    listening_addr(&mut stdout);
    signal(&child, "INT");
    let mut tail = String::new();
    stdout.read_to_string(&mut tail).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{tail}");
    assert!(tail.contains("tunnel stopped: 0 connections"), "{tail}");
    assert!(tail.contains("closed: 0"), "{tail}");
}

/// A bench told to run for a minute, interrupted once echoes flow, prints
/// the report of what it measured.
#[test]
fn sigint_ends_a_bench_with_the_report_so_far() {
    // A stand-in echo server: the frames come back byte for byte.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let child = spawn(&["bench", "--addr", &addr, "--conns", "1", "--secs", "60"]);
    let (flowing, echoes_flow) = mpsc::channel();
    let echo = thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = [0; 16 * 1024];
        loop {
            let n = conn.read(&mut buf).unwrap_or(0);
            if n == 0 || conn.write_all(&buf[..n]).is_err() {
                return;
            }
            let _ = flowing.send(());
        }
    });
    echoes_flow.recv().unwrap();
    signal(&child, "INT");
    let out = child.wait_with_output().unwrap();
    echo.join().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("msgs/s"), "{stdout}");
    assert!(stdout.contains("errors: 0"), "{stdout}");
    let secs: f64 = stdout
        .lines()
        .next()
        .and_then(|l| l.rsplit(", ").next())
        .and_then(|s| s.trim_end_matches(" s").parse().ok())
        .unwrap_or_else(|| panic!("no duration in {stdout}"));
    assert!(secs < 60.0, "{stdout}");
}

/// `netstrata demo | head -0`: a closed stdout ends nothing badly.
#[test]
fn a_closed_stdout_is_quiet() {
    let mut child = spawn(&["demo", "--secs", "0.2", "--conns", "1", "--no-tls"]);
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// An error to a closed stderr: the status says it, no panic (101).
#[test]
fn a_closed_stderr_is_quiet() {
    let mut child = spawn(&["bench", "--connect", "127.0.0.1:1", "--secs", "0.2"]);
    drop(child.stderr.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
}
