//! Accept errors such as EMFILE must not spin the loop or kill the server.
//!
//! The parent runs this same test binary as a child that serves on loopback,
//! lowers the child's open-file limit with `prlimit`, opens more
//! connections than the child may accept, and reads the child's CPU time
//! from `/proc/PID/stat`: a loop retrying `accept` at once would burn a whole
//! core; a paused one stays near zero.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use netstrata_core::{Connection, Stack};
use netstrata_frame::LengthDelimited;
use netstrata_reactor::{Context, EventLoop, Handler, LoopConfig};

const CHILD: &str = "NETSTRATA_EMFILE_CHILD";

struct Quiet;
impl Handler for Quiet {
    fn on_message(&mut self, cx: &mut Context<'_>, msg: Bytes) {
        let _ = cx.send(&msg);
    }
}

/// The child: serve for a few seconds, then exit.
fn child() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    println!("PORT {}", listener.local_addr().unwrap().port());
    let mut event_loop = EventLoop::new(LoopConfig::new()).unwrap();
    event_loop
        .listen(
            listener,
            || Connection::new(Stack::new(()), LengthDelimited::new()),
            |_| Quiet,
        )
        .unwrap();
    let end = Instant::now() + Duration::from_secs(4);
    while Instant::now() < end {
        event_loop.turn(Some(Duration::from_millis(100))).unwrap();
    }
    println!("CONNECTIONS {}", event_loop.connections());
}

/// User plus system CPU time of `pid`, in clock ticks (1/100 s on Linux).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn emfile_does_not_spin() {
    if std::env::var_os(CHILD).is_some() {
        return child();
    }
    if !netstrata_core::testing::external_tool("prlimit", &[]) {
        return;
    }
    let mut proc = Command::new(std::env::current_exe().unwrap())
        .args([
            "emfile_does_not_spin",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = proc.id();
    let mut lines = BufReader::new(proc.stdout.take().unwrap()).lines();
    let port: u16 = loop {
        let line = lines.next().expect("child output").unwrap();
        // libtest may print its own prefix on the same line.
        if let Some((_, p)) = line.split_once("PORT ") {
            break p.trim().parse().unwrap();
        }
    };
    // Room for what the child has open now and a few connections, no more.
    let open = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    let limit = format!("--nofile={}:{}", open + 4, open + 4);
    let status = Command::new("prlimit")
        .args(["--pid", &pid.to_string(), &limit])
        .status()
        .unwrap();
    assert!(status.success(), "prlimit failed");
    let conns: Vec<TcpStream> = (0..30)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    assert!(conns.len() > 10, "the kernel refused our connections");
    std::thread::sleep(Duration::from_millis(300));
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks(pid) - before;
    // A spinning loop uses ~100 ticks per second; allow generous noise.
    if used > 20 {
        let _ = proc.kill();
        let _ = proc.wait();
        panic!("the loop used {used} CPU ticks in one second at EMFILE");
    }
    // Still alive and serving what it could accept.
    let mut rest = String::new();
    for line in lines.map_while(Result::ok) {
        rest.push_str(&line);
        rest.push('\n');
    }
    assert!(proc.wait().unwrap().success(), "child failed: {rest}");
    let accepted: usize = rest
        .lines()
        .find_map(|l| l.split_once("CONNECTIONS ").map(|(_, n)| n.trim()))
        .expect("child report")
        .parse()
        .unwrap();
    assert!(
        accepted >= 1 && accepted < conns.len(),
        "accepted {accepted}"
    );
    drop(conns);
}
