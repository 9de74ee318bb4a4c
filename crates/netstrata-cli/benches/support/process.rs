//! Servers as child processes: building, starting, and reading their CPU
//! time and resident memory from `/proc`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use netstrata_cli::cpu::CpuTime;

/// How to start one server. `ADDR` in `args` becomes the address to listen on.
#[derive(Clone)]
pub(crate) struct Server {
    /// Name in reports.
    pub(crate) name: &'static str,
    /// The executable.
    pub(crate) program: PathBuf,
    /// Its arguments.
    pub(crate) args: Vec<String>,
}

impl Server {
    /// A server built by [`build`] into the release directory: `path` is
    /// `netstrata` or `examples/NAME`.
    pub(crate) fn release(name: &'static str, path: &str, args: &[&str]) -> Self {
        Self {
            name,
            program: release_path(path),
            args: args.iter().map(|a| a.to_string()).collect(),
        }
    }
}

/// A binary built by [`build`]: `netstrata` or `examples/NAME`.
pub(crate) fn release_path(path: &str) -> PathBuf {
    target_dir().join("release").join(path)
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"),
        PathBuf::from,
    )
}

/// Builds the `netstrata` binary and `examples` in release mode.
pub(crate) fn build(examples: &[&str]) {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args([
        "build",
        "--release",
        "-p",
        "netstrata-cli",
        "--bin",
        "netstrata",
    ]);
    for example in examples {
        cmd.args(["--example", example]);
    }
    let status = cmd.status().expect("cargo");
    assert!(status.success(), "building the servers failed");
}

/// Hands out loopback addresses on fresh ports, one per server start.
pub(crate) struct Ports(u16);

impl Ports {
    /// Ports from `first + 1` on.
    pub(crate) fn new(first: u16) -> Self {
        Self(first)
    }

    /// The next address.
    pub(crate) fn next(&mut self) -> SocketAddr {
        self.0 += 1;
        SocketAddr::from(([127, 0, 0, 1], self.0))
    }
}

/// A running server; killed when dropped.
pub(crate) struct Running {
    child: Child,
    /// Where it listens.
    pub(crate) addr: SocketAddr,
}

impl Running {
    /// Starts `server` on a fresh port and waits until it listens.
    pub(crate) fn start(server: &Server, ports: &mut Ports) -> Self {
        let addr = ports.next();
        let mut child = Command::new(&server.program)
            .args(
                server
                    .args
                    .iter()
                    .map(|a| a.replace("ADDR", &addr.to_string())),
            )
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", server.program.display()));
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        // The netstrata server may first say where it wrote a CA.
        let mut line = String::new();
        while !line.contains("listening") {
            line.clear();
            let n = stdout.read_line(&mut line).expect("server output");
            assert!(n > 0, "{} exited before listening", server.name);
        }
        Self { child, addr }
    }

    /// CPU time of the server and its threads so far.
    pub(crate) fn cpu(&self) -> CpuTime {
        CpuTime::process(self.child.id()).expect("server alive")
    }

    /// Resident memory of the server in KiB.
    pub(crate) fn rss_kib(&self) -> u64 {
        rss_kib(self.pid())
    }

    /// The server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// Resident memory of process `pid` in KiB (0 once it is gone).
pub(crate) fn rss_kib(pid: u32) -> u64 {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return 0;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
