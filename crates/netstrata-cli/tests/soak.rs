//! The soak (issue #20, docs/reliability.md): load through the fault proxy
//! with seeded random faults for a set time, over the full default stack
//! (frames, zstd, TLS, shaping), clients reconnecting after each fault.
//! Every echo must come back intact and in order; a connection that ended
//! cleanly must have lost nothing; every loss must come with a typed error.
//!
//! `NETSTRATA_SOAK_SECS` sets the time (default 20 s; 600 for the
//! documented ten-minute run), `NETSTRATA_SOAK_SEED` the seed (default 20).
#![allow(unreachable_pub, dead_code)]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use netstrata_cli::fault::{FaultConfig, FaultProxy, FaultSpec};
use netstrata_core::{ConnectionStats, DynStack};
use netstrata_reactor::{
    CloseReason, Context, EventLoop, Handler, LoopConfig, Server, ServerConfig,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[path = "faults/stacks.rs"]
mod stacks;

use stacks::{Framing, Side, StackKind};

/// Connections open at once.
const CONNECTIONS: usize = 8;
/// Messages each connection keeps in flight.
const DEPTH: usize = 4;
/// The stack: the default profile's full stack, shaped.
const STACK: StackKind = StackKind::TlsZstd;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Message `n` of connection `conn`: both numbers, and a body whose length
/// varies with them.
fn message(conn: u64, n: u64) -> Vec<u8> {
    let mut m = format!("conn {conn} message {n}:").into_bytes();
    m.extend((0..(n * 31 + conn * 7) % 300).map(|k| b'a' + (k % 26) as u8));
    m
}

/// The faults of connection `index`: one kind in one direction, at an
/// offset within what a connection of this soak sends (a few kB each way).
fn choose(seed: u64, index: u64) -> (FaultSpec, FaultSpec) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let at = rng.random_range(0..12_000u64);
    let spec = match rng.random_range(0..9u32) {
        0 => FaultSpec::new(),
        1 => FaultSpec::new().with_rechunk(1..=64),
        2 => FaultSpec::new()
            .with_rechunk(1..=1)
            .with_delay(Duration::from_micros(50)),
        3 => FaultSpec::new().with_stall(at, Duration::from_millis(50)),
        4 => FaultSpec::new().with_rate(500_000),
        5 | 6 => FaultSpec::new().with_rechunk(1..=512).with_cut(at),
        7 => FaultSpec::new().with_reset(at),
        _ => FaultSpec::new().with_flip(at, rng.random_range(0..8)),
    };
    match rng.random_bool(0.5) {
        true => (spec, FaultSpec::new()),
        false => (FaultSpec::new(), spec),
    }
}

/// The figures of the run.
#[derive(Debug, Default)]
struct Tally {
    connections: u64,
    sent: u64,
    received: u64,
    /// Messages sent and never echoed, on connections that ended with an error.
    lost: u64,
    /// Messages lost on connections that ended cleanly: must stay 0.
    lost_clean: u64,
    /// Echoes that differ from what was sent: must stay 0.
    corrupted: u64,
    /// Client connection ends by kind.
    ends: BTreeMap<String, u64>,
}

/// One client connection: keeps `DEPTH` messages in flight, checks every
/// echo, closes after `total`.
struct Client {
    id: u64,
    total: u64,
    sent: u64,
    received: u64,
    tally: Rc<RefCell<Tally>>,
    open: Rc<RefCell<usize>>,
}

impl Client {
    fn fill(&mut self, cx: &mut Context<'_>) {
        while self.sent < self.total && self.sent - self.received < DEPTH as u64 {
            if cx.send(&message(self.id, self.sent)).is_err() {
                return;
            }
            self.sent += 1;
        }
    }
}

impl Handler for Client {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        self.fill(cx);
    }

    fn on_message(&mut self, cx: &mut Context<'_>, msg: Bytes) {
        if msg[..] != message(self.id, self.received)[..] {
            self.tally.borrow_mut().corrupted += 1;
        }
        self.received += 1;
        self.fill(cx);
        if self.received == self.total {
            cx.close();
        }
    }

    fn on_close(&mut self, reason: &CloseReason, _: &ConnectionStats) {
        let mut tally = self.tally.borrow_mut();
        tally.connections += 1;
        tally.sent += self.sent;
        tally.received += self.received;
        let lost = self.sent - self.received;
        match reason {
            CloseReason::Clean => tally.lost_clean += lost + (self.total - self.sent),
            _ => tally.lost += lost,
        }
        *tally.ends.entry(reason.kind().to_string()).or_default() += 1;
        *self.open.borrow_mut() -= 1;
    }
}

struct Echo;

impl Handler for Echo {
    fn on_message(&mut self, cx: &mut Context<'_>, msg: Bytes) {
        if cx.send(&msg).is_err() {
            cx.abort();
        }
    }
}

#[test]
fn soak_through_seeded_random_faults() {
    let secs: f64 = env_or("NETSTRATA_SOAK_SECS", 20.0);
    let seed: u64 = env_or("NETSTRATA_SOAK_SEED", 20);
    let config = LoopConfig::new().with_idle_timeout(Duration::from_secs(2));
    let server = Server::bind(
        "127.0.0.1:0".parse().unwrap(),
        ServerConfig::new()
            .with_threads(1)
            .with_loop(config.clone()),
        || stacks::connection(STACK, Side::Server, true),
        |_| Echo,
    )
    .unwrap();
    let faults = FaultConfig::new(seed).with_faults_per_connection(move |i| choose(seed, i));
    let proxy =
        FaultProxy::start("127.0.0.1:0".parse().unwrap(), server.local_addr(), faults).unwrap();
    let target: SocketAddr = proxy.local_addr();

    let tally = Rc::new(RefCell::new(Tally::default()));
    let open = Rc::new(RefCell::new(0));
    let mut client: EventLoop<DynStack, Framing, Client> = EventLoop::new(config).unwrap();
    let mut lengths = ChaCha8Rng::seed_from_u64(seed);
    let (started, run_for) = (Instant::now(), Duration::from_secs_f64(secs));
    let mut next_id = 0;
    loop {
        let running = started.elapsed() < run_for;
        while running && *open.borrow() < CONNECTIONS {
            let handler = Client {
                id: next_id,
                total: lengths.random_range(20..200),
                sent: 0,
                received: 0,
                tally: Rc::clone(&tally),
                open: Rc::clone(&open),
            };
            next_id += 1;
            *open.borrow_mut() += 1;
            client
                .connect(
                    target,
                    stacks::connection(STACK, Side::Client, true),
                    handler,
                )
                .unwrap();
        }
        if !running && *open.borrow() == 0 {
            break;
        }
        assert!(
            started.elapsed() < run_for + Duration::from_secs(30),
            "connections never ended"
        );
        client.turn(Some(Duration::from_millis(100))).unwrap();
    }
    proxy.wait_finished(next_id, Duration::from_secs(10));
    let totals = proxy.totals();
    let closes = server.close_counts();
    server.stop().unwrap();

    let tally = tally.take();
    // The proxy's totals, not its records: a long run keeps only the latest.
    let injected = totals.injected;
    println!(
        "soak: {secs} s, seed {seed}, stack {STACK:?} shaped, {} connections ({} through the proxy, {} ended early there)",
        tally.connections, totals.connections, totals.ended_early
    );
    println!(
        "  messages: {} sent, {} received intact, {} lost with a typed error, {} lost on clean ends, {} corrupted",
        tally.sent,
        tally.received - tally.corrupted,
        tally.lost,
        tally.lost_clean,
        tally.corrupted
    );
    println!(
        "  faults injected: {} cuts, {} resets, {} flips, {} stalls",
        injected.cuts, injected.resets, injected.flips, injected.stalls
    );
    println!("  client ends: {:?}", tally.ends);
    println!("  server closes: {:?}", closes.snapshot());

    assert_eq!(tally.corrupted, 0, "an echo arrived altered");
    assert_eq!(tally.lost_clean, 0, "a clean end lost messages");
    assert_eq!(tally.sent, tally.received + tally.lost);
    assert!(
        tally.connections >= CONNECTIONS as u64,
        "too few connections"
    );
    // Every end is clean or a typed error: no "other error".
    assert!(!tally.ends.contains_key("other error"), "{:?}", tally.ends);
    assert!(
        tally.ends.get("clean").copied().unwrap_or(0) > 0,
        "no connection ended cleanly"
    );
    let kinds = [
        injected.cuts,
        injected.resets,
        injected.flips,
        injected.stalls,
    ];
    assert!(
        kinds.iter().filter(|&&n| n > 0).count() >= 3,
        "too few kinds of faults happened: {injected:?}"
    );
    // Every connection went through the proxy and ended there.
    assert_eq!(tally.connections, totals.connections);
    // Every error is explained by a fault that can end a connection
    // (stalls stay well inside the idle timeout).
    let failures = tally.connections - tally.ends.get("clean").copied().unwrap_or(0);
    let fatal = injected.cuts + injected.resets + injected.flips;
    assert!(
        failures <= fatal,
        "{failures} connections failed, {fatal} faults could end one"
    );
}
