//! Running the `netstrata` binary from tests: children that never outlive
//! their test, the line that says where one listens, a graceful stop.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, ChildStdout, Command, Stdio};

/// A child process of the test, killed if the test ends before stopping it
/// (a failed assertion), so that no server outlives its test.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The binary with `args`, its stdout and stderr piped.
pub fn command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_netstrata"));
    command
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// The binary with `args`, running.
pub fn spawn(args: &[&str]) -> Running {
    Running(command(args).spawn().unwrap())
}

/// Reads stdout up to the line saying where the child listens.
pub fn listening_addr(stdout: &mut BufReader<ChildStdout>) -> SocketAddr {
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "no listening line"
        );
        if let Some(rest) = line.split(" listening on ").nth(1) {
            return rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    }
}

/// Sends `signal` (`TERM`, `INT`) to `child` with kill(1).
pub fn signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal}");
}

/// Stops `child` with SIGTERM and waits for it; returns whether it exited
/// with success.
pub fn stop(mut child: Running) -> bool {
    signal(&child.0, "TERM");
    child.0.wait().unwrap().success()
}
