//! Resident memory per connection on a server: idle (after connecting, or
//! after one echoed message) and active (under load).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use netstrata_cli::load::{self, LoadOptions, Payload};
use netstrata_cli::stack::StackOptions;
use netstrata_core::{ConnectionStats, DynStack};
use netstrata_frame::LengthDelimited;
use netstrata_reactor::{CloseReason, Context, EventLoop, Handler, LoopConfig};

use super::compare::Case;
use super::process::{self, Ports, Running, Server};

/// Connections opened per step: fewer than a listen backlog, so no SYN is
/// dropped and retried a second later.
const STEP: usize = 256;
/// How long connections stay quiet before the server's memory is read, so
/// that a sweep of idle buffers (netstrata's) has run.
const SETTLE: Duration = Duration::from_millis(2500);

#[derive(Default)]
struct Tally {
    /// Connected (without a hello) or echoed the hello.
    ready: usize,
    failed: usize,
    first_failure: Option<String>,
}

/// A client connection that sends at most one message and then stays open.
struct Once {
    hello: Option<Rc<[u8]>>,
    tally: Rc<RefCell<Tally>>,
}

impl Handler for Once {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        match &self.hello {
            // Layers hold the message until the TLS handshake is done.
            Some(hello) => {
                if cx.send(hello).is_err() {
                    cx.abort();
                }
            }
            None => self.tally.borrow_mut().ready += 1,
        }
    }

    fn on_message(&mut self, _cx: &mut Context<'_>, _msg: Bytes) {
        self.tally.borrow_mut().ready += 1;
    }

    fn on_close(&mut self, reason: &CloseReason, _stats: &ConnectionStats) {
        let mut tally = self.tally.borrow_mut();
        tally.failed += 1;
        tally
            .first_failure
            .get_or_insert_with(|| format!("{reason:?}"));
    }
}

/// Opens up to `count` connections to `server` with the client `stack`,
/// each sending one `hello`-byte message (if any) and waiting for its echo,
/// then prints the server's resident memory per connection.
pub(crate) fn idle(
    server: &Server,
    stack: &StackOptions,
    count: usize,
    hello: Option<usize>,
    ports: &mut Ports,
) {
    let running = Running::start(server, ports);
    std::thread::sleep(Duration::from_millis(200));
    let before = running.rss_kib();
    let tally = Rc::new(RefCell::new(Tally::default()));
    let hello: Option<Rc<[u8]>> = hello.map(|size| load::payload(Payload::Text, size).into());
    let mut client: EventLoop<DynStack, LengthDelimited, Once> =
        EventLoop::new(LoopConfig::new()).expect("client loop");
    let mut opened = 0;
    let mut limit = None;
    while opened < count && limit.is_none() && tally.borrow().failed == 0 {
        for _ in 0..STEP.min(count - opened) {
            let conn = stack.connection().expect("client stack");
            let handler = Once {
                hello: hello.clone(),
                tally: Rc::clone(&tally),
            };
            match client.connect(running.addr, conn, handler) {
                Ok(_) => opened += 1,
                Err(e) => {
                    limit = Some(e);
                    break;
                }
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let pending = || {
            let t = tally.borrow();
            t.ready + t.failed < opened
        };
        while pending() && Instant::now() < deadline {
            client.turn(Some(Duration::from_millis(20))).expect("turn");
        }
    }
    let settled = Instant::now() + SETTLE;
    while Instant::now() < settled {
        client.turn(Some(Duration::from_millis(50))).expect("turn");
    }
    let after = running.rss_kib();
    // Closing the client's connections (on drop) would count as failures.
    let tally = tally.replace(Tally::default());
    drop(client);
    let what = hello.map_or("connected, no message".to_string(), |h| {
        format!("after one {} B echo", h.len())
    });
    println!(
        "  {:<14} {:>8.2} KiB per connection ({} connections {what}, RSS {before} -> {after} KiB)",
        server.name,
        after.saturating_sub(before) as f64 / tally.ready.max(1) as f64,
        tally.ready,
    );
    if let Some(e) = limit {
        println!("    (stopped opening at {opened}: {e}; raise `ulimit -n`)");
    }
    if tally.failed > 0 {
        println!(
            "    ({} connections failed, first: {})",
            tally.failed,
            tally.first_failure.as_deref().unwrap_or("?")
        );
    }
    let stuck = opened - tally.ready - tally.failed;
    if stuck > 0 {
        println!("    ({stuck} connections not ready after 10 s, counted out)");
    }
}

/// Loads `server` with `case` for `secs` and prints its peak resident
/// memory per connection above what it held before.
pub(crate) fn active(
    server: &Server,
    stack: &StackOptions,
    case: Case,
    secs: f64,
    ports: &mut Ports,
) {
    let running = Running::start(server, ports);
    std::thread::sleep(Duration::from_millis(200));
    let before = running.rss_kib();
    let pid = running.pid();
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut peak = 0;
            while !stop.load(Ordering::Relaxed) {
                peak = peak.max(process::rss_kib(pid));
                std::thread::sleep(Duration::from_millis(20));
            }
            peak
        })
    };
    let opts = LoadOptions {
        conns: case.conns,
        depth: case.depth,
        size: case.size,
        duration: Duration::from_secs_f64(secs),
        payload: Payload::Text,
        ..LoadOptions::new(running.addr, stack.clone())
    };
    let report = load::run(&opts, |_| {}).expect("load");
    stop.store(true, Ordering::Relaxed);
    let peak = sampler.join().expect("sampler");
    assert_eq!(
        report.errors, 0,
        "{}: {:?}",
        server.name, report.error_samples
    );
    println!(
        "  {:<14} {:>8.2} KiB per connection ({} connections x depth {} x {} B, peak RSS {before} -> {peak} KiB)",
        server.name,
        peak.saturating_sub(before) as f64 / case.conns as f64,
        case.conns,
        case.depth,
        case.size,
    );
}
