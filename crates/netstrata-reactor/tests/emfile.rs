//! Accept errors such as EMFILE must not spin the loop or kill the server.
//!
//! The parent runs this same test binary as a child that serves on loopback
//! and logs its warnings to stdout. The child lowers its open-file limit to
//! what it holds plus a few before its loop's first turn (an io_uring
//! accept reads the limit when it is submitted), and the parent opens more
//! connections than the child may accept. The
//! child then fails to accept, pauses, retries, fails again, each failure a
//! warning. Over a window of several retries, read from the child's own
//! log, the parent checks that the retries were paced (a loop retrying at
//! once logs them back to back) and reads the child's CPU time from
//! `/proc/PID/stat` (a loop spinning between them would burn a core; a
//! paused one stays near zero).

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use netstrata_core::{Connection, Stack};
use netstrata_frame::LengthDelimited;
use netstrata_reactor::{Context, EventLoop, Handler, LoopConfig};

const CHILD: &str = "NETSTRATA_EMFILE_CHILD";

/// Accept failures the window spans.
const RETRIES: u32 = 4;
/// The least pause between two retries that is not spinning (the loop
/// pauses 100 ms; a loop retrying at once logs its retries microseconds apart).
const MIN_PAUSE: Duration = Duration::from_millis(10);

struct Quiet;
impl Handler for Quiet {
    fn on_message(&mut self, cx: &mut Context<'_>, msg: Bytes) {
        let _ = cx.send(&msg);
    }
}

/// The child: serve until stdin ends, then report the connections it holds.
fn child() {
    // Warnings to stdout, stamped with the time since start.
    tracing_subscriber::fmt()
        .with_writer(std::io::stdout)
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_timer(tracing_subscriber::fmt::time::uptime())
        .init();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut event_loop = EventLoop::new(LoopConfig::new()).unwrap();
    event_loop
        .listen(
            listener,
            || Connection::new(Stack::new(()), LengthDelimited::new()),
            |_| Quiet,
        )
        .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let (handle, done_by_parent) = (event_loop.handle(), Arc::clone(&done));
    let parent = std::thread::spawn(move || {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        done_by_parent.store(true, Ordering::Release);
        // Only to wake the loop: it is not run again.
        let _ = handle.stop();
    });
    // Everything the child holds is open now: room for a few connections.
    let open = std::fs::read_dir("/proc/self/fd").unwrap().count() as u64;
    let limit = libc::rlimit {
        rlim_cur: open + 4,
        rlim_max: open + 4,
    };
    // SAFETY: `limit` is a valid `rlimit` for the call to read.
    #[allow(unsafe_code)]
    let set = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    assert_eq!(set, 0, "setrlimit: {}", std::io::Error::last_os_error());
    println!("PORT {port}");
    while !done.load(Ordering::Acquire) {
        event_loop.turn(None).unwrap();
    }
    parent.join().unwrap();
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

/// The child's lines, as they come.
struct Output(mpsc::Receiver<String>);

impl Output {
    /// The next line for which `pick` gives something; fails the test if
    /// none comes within 10 s or the child ends first.
    fn next<T>(&self, what: &str, mut pick: impl FnMut(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.0.recv_timeout(left) {
                Ok(line) => {
                    if let Some(found) = pick(&line) {
                        return found;
                    }
                }
                Err(e) => panic!("no {what} from the child: {e}"),
            }
        }
    }
}

/// The child's time stamp (seconds since it started) of a warning that
/// accepting failed.
fn accept_failure(line: &str) -> Option<f64> {
    // "  0.123456789s  WARN netstrata_reactor::...: accept failed; ..."
    if !(line.contains(" WARN ") && line.contains("accept")) {
        return None;
    }
    let stamp = line.split_whitespace().next()?;
    stamp.strip_suffix('s')?.parse().ok()
}

#[test]
fn emfile_does_not_spin() {
    if std::env::var_os(CHILD).is_some() {
        return child();
    }
    let mut proc = Command::new(std::env::current_exe().unwrap())
        .args([
            "emfile_does_not_spin",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = proc.id();
    let (tx, rx) = mpsc::channel();
    let stdout = BufReader::new(proc.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let output = Output(rx);
    // libtest may print its own prefix on the same line.
    let port: u16 = output.next("port", |l| {
        l.split_once("PORT ")
            .map(|(_, p)| p.trim().parse().unwrap())
    });
    let conns: Vec<TcpStream> = (0..30)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    assert!(conns.len() > 10, "the kernel refused our connections");

    // The child is at its limit once accepting fails; the window runs from
    // that failure to the RETRIES-th one after it.
    let first = output.next("accept failure", accept_failure);
    let (start, before) = (Instant::now(), cpu_ticks(pid));
    let mut last = first;
    for _ in 0..RETRIES {
        last = output.next("accept failure", accept_failure);
    }
    let (window, used) = (start.elapsed(), cpu_ticks(pid) - before);
    let paced = Duration::from_secs_f64(last - first);
    let spinning = paced < MIN_PAUSE * RETRIES || {
        // A spinning loop uses ~100 ticks per second of the window; a paused
        // one next to none. Allow a quarter of a core, and the ticks' grain.
        let ticks = window.as_millis() as u64 / 10;
        used > ticks / 4 + 2
    };
    if spinning {
        let _ = proc.kill();
        let _ = proc.wait();
        panic!(
            "the loop spun at EMFILE: {RETRIES} retries in {paced:?} (at least \
             {MIN_PAUSE:?} apart expected), {used} CPU ticks in {window:?}"
        );
    }

    // Still alive, and serving what it could accept.
    drop(proc.stdin.take());
    let accepted: usize = output.next("report", |l| {
        l.split_once("CONNECTIONS ")
            .map(|(_, n)| n.trim().parse().unwrap())
    });
    assert!(proc.wait().unwrap().success(), "the child failed");
    assert!(
        accepted >= 1 && accepted < conns.len(),
        "accepted {accepted}"
    );
    drop(conns);
}
