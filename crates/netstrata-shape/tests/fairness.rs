//! Fair shares of a global limit: among saturated connections, after some
//! go idle, with per-connection limits, for a late joiner, across threads.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::*;
use netstrata_core::testing::{Link, Pair};
use netstrata_core::{Connection, ConnectionConfig, Flush, Layer, Outbound, RawCodec};
use netstrata_shape::{Direction, GlobalLimiter, Limit, ShapeConfig, Shaper};
use proptest::prelude::*;

const FIVE_S: Duration = Duration::from_secs(5);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn global(rate: u64) -> (GlobalLimiter, Limit) {
    let limit = Limit::per_second(rate).unwrap();
    (
        GlobalLimiter::new(ShapeConfig::new().with_outbound(limit)),
        limit,
    )
}

/// Asserts that each listed sender got `share` B/s over `[from, from + 5 s)`
/// within `tolerance`; returns the worst relative error.
fn assert_shares(
    senders: &Senders,
    which: &[usize],
    share: u64,
    from: Duration,
    tolerance: f64,
) -> f64 {
    let mut worst: f64 = 0.0;
    for &i in which {
        let err = rate_error(senders.got(i, from, from + FIVE_S), FIVE_S, share);
        assert!(
            err.abs() <= tolerance,
            "sender {i}: {:+.2}% of its share {share} B/s",
            err * 100.0
        );
        worst = worst.max(err.abs());
    }
    worst
}

#[test]
fn ten_saturated_connections_share_a_global_limit_evenly_and_idle_shares_go_to_the_others() {
    let rate = 10 * MIB;
    let (g, limit) = global(rate);
    let start = Instant::now();
    let shapers = (0..10)
        .map(|_| Shaper::unlimited().with_global(&g))
        .collect();
    let mut s = Senders::new(shapers, start);
    s.run_until(secs(6));
    let worst = assert_shares(&s, &(0..10).collect::<Vec<_>>(), rate / 10, secs(1), 0.05);
    eprintln!("10 saturated: worst share error {:.3}%", worst * 100.0);
    let total: u64 = (0..10).map(|i| s.got(i, secs(1), secs(6))).sum();
    assert!(
        rate_error(total, FIVE_S, rate).abs() < 0.005,
        "the global rate is used in full"
    );

    // Half go idle: the other five get a fifth each.
    for i in 5..10 {
        s.active[i] = false;
    }
    s.run_until(secs(12));
    let worst = assert_shares(&s, &[0, 1, 2, 3, 4], rate / 5, secs(7), 0.05);
    eprintln!("5 of 10 idle: worst share error {:.3}%", worst * 100.0);
    for i in 5..10 {
        assert_eq!(s.got(i, secs(7), secs(12)), 0);
    }
    // They come back: tenths again.
    for i in 5..10 {
        s.active[i] = true;
    }
    s.run_until(secs(18));
    assert_shares(&s, &(0..10).collect::<Vec<_>>(), rate / 10, secs(13), 0.05);
    // All along, everything together stayed within the global burst.
    assert_conforms(&s.merged(), limit, "all senders together");
}

#[test]
fn readers_share_a_global_read_limit_evenly() {
    let rate = 6 * MIB;
    let limit = Limit::per_second(rate).unwrap();
    let g = GlobalLimiter::new(ShapeConfig::new().with_inbound(limit));
    let shapers = (0..6)
        .map(|_| Shaper::unlimited().with_global(&g))
        .collect();
    let mut s = Senders::readers(shapers, Instant::now());
    s.run_until(secs(6));
    assert_shares(&s, &(0..6).collect::<Vec<_>>(), rate / 6, secs(1), 0.05);
    assert_conforms(&s.merged(), limit, "all readers together");
    // Three stop receiving anything: the other three get a third each.
    for i in 3..6 {
        s.active[i] = false;
    }
    s.run_until(secs(12));
    assert_shares(&s, &[0, 1, 2], rate / 3, secs(7), 0.05);
}

#[test]
fn a_global_rate_change_reaches_every_queued_connection() {
    let (g, _) = global(4 * MIB);
    let shapers = (0..4)
        .map(|_| Shaper::unlimited().with_global(&g))
        .collect();
    let mut s = Senders::new(shapers, Instant::now());
    s.run_until(secs(3));
    // Raised while all four wait in the queue: their deadlines move at once.
    let before: Vec<_> = s
        .shapers
        .iter()
        .map(|x| x.poll_timeout().unwrap())
        .collect();
    g.set_limit(
        Direction::Outbound,
        Some(Limit::per_second(16 * MIB).unwrap()),
    );
    for (shaper, was) in s.shapers.iter().zip(&before) {
        assert!(shaper.poll_timeout().unwrap() <= *was);
    }
    s.run_until(secs(9));
    assert_shares(&s, &[0, 1, 2, 3], 4 * MIB, secs(4), 0.05);
    // Lowered, burst too: from then on all together conform to the new limit.
    let low = Limit::new(2 * MIB, 64 * KIB).unwrap();
    g.set_limit(Direction::Outbound, Some(low));
    let from = s.deliveries.iter().map(Vec::len).collect::<Vec<_>>();
    s.run_until(secs(15));
    assert_shares(&s, &[0, 1, 2, 3], MIB / 2, secs(10), 0.05);
    let mut after: Vec<Delivery> = s
        .deliveries
        .iter()
        .zip(&from)
        .flat_map(|(d, &k)| d[k..].iter().copied())
        .collect();
    after.sort_by_key(|d| d.0);
    assert_conforms(&after, low, "after lowering the global limit");
}

#[test]
fn handles_and_limiters_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<GlobalLimiter>();
    send_sync::<netstrata_shape::ShaperHandle>();
    send::<Shaper>();
    send::<netstrata_shape::DatagramShaper>();
}

#[test]
fn a_connection_below_its_share_leaves_the_rest_to_the_others() {
    // 8 MiB/s shared by four; one is held to 1 MiB/s by its own limit.
    let rate = 8 * MIB;
    let (g, limit) = global(rate);
    let own = Limit::per_second(MIB).unwrap();
    let mut shapers = vec![Shaper::new(ShapeConfig::new().with_outbound(own)).with_global(&g)];
    shapers.extend((0..3).map(|_| Shaper::unlimited().with_global(&g)));
    let mut s = Senders::new(shapers, Instant::now());
    s.run_until(secs(6));
    assert_shares(&s, &[0], MIB, secs(1), 0.02);
    assert_shares(&s, &[1, 2, 3], 7 * MIB / 3, secs(1), 0.05);
    assert_conforms(&s.deliveries[0], own, "the limited connection");
    assert_conforms(&s.merged(), limit, "all together");

    // Its own limit raised above the fair share: now a quarter each.
    s.shapers[0].handle().set_limit(
        Direction::Outbound,
        Some(Limit::per_second(4 * MIB).unwrap()),
    );
    s.run_until(secs(12));
    assert_shares(&s, &[0, 1, 2, 3], rate / 4, secs(7), 0.05);
}

#[test]
fn a_late_joiner_is_served_within_a_round_and_gets_its_share() {
    let rate = 4 * MIB;
    let (g, _) = global(rate);
    let shapers = (0..10)
        .map(|_| Shaper::unlimited().with_global(&g))
        .collect();
    let mut s = Senders::new(shapers, Instant::now());
    s.run_until(secs(2));
    s.push(Shaper::unlimited().with_global(&g));
    s.run_until(secs(8));
    let first = s.deliveries[10][0].0;
    let waited = Duration::from_nanos(first) - secs(2);
    assert!(
        waited <= Duration::from_millis(60),
        "first grant after {waited:?}"
    );
    assert_shares(&s, &(0..11).collect::<Vec<_>>(), rate / 11, secs(3), 0.05);
}

#[test]
fn a_dropped_connection_does_not_hold_up_the_queue() {
    let rate = MIB;
    let (g, _) = global(rate);
    let shapers = (0..4)
        .map(|_| Shaper::unlimited().with_global(&g))
        .collect();
    let mut s = Senders::new(shapers, Instant::now());
    s.run_until(secs(2));
    // Dropped while its ticket waits: the others go on, a third each.
    drop(s.shapers.remove(3));
    s.active.remove(3);
    s.run_until(secs(8));
    assert_shares(&s, &[0, 1, 2], rate / 3, secs(3), 0.05);
}

/// Ten `Pair`s, each a client shaped by one shared global limiter and an
/// unshaped server, stepped in lockstep on their virtual clocks.
struct Pairs {
    pairs: Vec<Pair<Shaper, RawCodec, Shaper, RawCodec>>,
    sending: Vec<bool>,
    /// Bytes each server received, per step.
    received: Vec<Vec<u64>>,
    step: Duration,
}

impl Pairs {
    fn new(clients: Vec<Shaper>, step: Duration) -> Self {
        let n = clients.len();
        let config = ConnectionConfig::new().with_send_buffer(64 * 1024);
        let pairs = clients
            .into_iter()
            .map(|c| {
                Pair::new(
                    Connection::with_config(c, RawCodec::new(), config.clone()),
                    Connection::new(Shaper::unlimited(), RawCodec::new()),
                    Link::new(),
                )
            })
            .collect();
        Self {
            pairs,
            sending: vec![true; n],
            received: vec![Vec::new(); n],
            step,
        }
    }

    fn run_for(&mut self, span: Duration) {
        let msg = vec![7u8; 16 * 1024];
        let steps = span.as_nanos() / self.step.as_nanos();
        for _ in 0..steps {
            for (i, pair) in self.pairs.iter_mut().enumerate() {
                while self.sending[i] && pair.client.conn.send(&msg).is_ok() {}
                pair.drive_for(self.step);
                let got = pair
                    .server
                    .take_inbox()
                    .iter()
                    .map(|m| m.len() as u64)
                    .sum();
                self.received[i].push(got);
            }
        }
    }

    /// Bytes pair `i` received over `[from, from + span)`.
    fn got(&self, i: usize, from: Duration, span: Duration) -> u64 {
        let first = (from.as_nanos() / self.step.as_nanos()) as usize;
        let n = (span.as_nanos() / self.step.as_nanos()) as usize;
        self.received[i][first..first + n].iter().sum()
    }
}

#[test]
fn over_the_harness_ten_pairs_share_a_global_limit_evenly() {
    let rate = 8 * MIB;
    let (g, _) = global(rate);
    let clients = (0..10)
        .map(|_| Shaper::unlimited().with_global(&g))
        .collect();
    let mut p = Pairs::new(clients, Duration::from_millis(2));
    p.run_for(secs(6));
    let mut worst: f64 = 0.0;
    for i in 0..10 {
        let err = rate_error(p.got(i, secs(1), FIVE_S), FIVE_S, rate / 10);
        assert!(err.abs() <= 0.05, "pair {i}: {:+.2}%", err * 100.0);
        worst = worst.max(err.abs());
    }
    eprintln!(
        "harness, 10 pairs: worst share error {:.3}%, got {:?}",
        worst * 100.0,
        (0..10)
            .map(|i| p.got(i, secs(1), FIVE_S))
            .collect::<Vec<_>>()
    );
    let total: u64 = (0..10).map(|i| p.got(i, secs(1), FIVE_S)).sum();
    assert!(rate_error(total, FIVE_S, rate).abs() < 0.02);

    // Four stop sending: the other six get a sixth each.
    for i in 6..10 {
        p.sending[i] = false;
    }
    p.run_for(secs(6));
    for i in 0..6 {
        let err = rate_error(p.got(i, secs(7), FIVE_S), FIVE_S, rate / 6);
        assert!(
            err.abs() <= 0.05,
            "pair {i} after others went idle: {:+.2}%",
            err * 100.0
        );
    }
    let throughput = g.stats(p.pairs[0].now()).outbound.throughput;
    assert!(
        throughput.abs_diff(rate) * 50 < rate,
        "global throughput {throughput}"
    );
}

/// One thread's share of a multi-threaded test: a saturating sender under
/// `g` for 20 000 steps of a virtual clock that every thread advances by
/// 10 µs a step; adds what passed to `passed`.
fn saturate(g: &GlobalLimiter, clock: &AtomicU64, passed: &AtomicU64, start: Instant) {
    let mut shaper = Shaper::unlimited().with_global(g);
    let mut input = BytesMut::zeroed(64 * MIB as usize);
    for _ in 0..20_000 {
        let t = clock.fetch_add(10_000, Ordering::SeqCst) + 10_000;
        let now = start + Duration::from_nanos(t);
        let mut down = BytesMut::new();
        shaper
            .handle_outbound(Outbound::new(now, &mut input, Flush::Batch, &mut down))
            .unwrap();
        passed.fetch_add(down.len() as u64, Ordering::SeqCst);
        if shaper.poll_timeout().is_some_and(|w| w <= now) {
            shaper.handle_timeout(now, &mut down).unwrap();
        }
    }
}

#[test]
fn threads_sharing_a_limiter_never_exceed_it_together() {
    // Four threads, each with its own shaper, share one global limiter and
    // one virtual clock that each step advances. However the threads
    // interleave, the bytes passed stay within burst + rate × time.
    let rate = 10 * MIB;
    let (g, limit) = global(rate);
    let clock = Arc::new(AtomicU64::new(0));
    let passed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (g, clock, passed) = (g.clone(), clock.clone(), passed.clone());
            std::thread::spawn(move || {
                saturate(&g, &clock, &passed, start);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let elapsed = clock.load(Ordering::SeqCst);
    let bound = limit.burst() + (u128::from(rate) * u128::from(elapsed) / 1_000_000_000) as u64;
    let passed = passed.load(Ordering::SeqCst);
    assert!(passed <= bound, "{passed} bytes passed, bound {bound}");
    // And the limit was used: at least 90% of the rate.
    assert!(
        passed as f64 >= 0.9 * rate as f64 * elapsed as f64 / 1e9,
        "{passed} passed"
    );
    let stats = g.stats(start + Duration::from_nanos(elapsed));
    assert_eq!(stats.outbound.total_bytes, passed);
}

#[test]
fn limits_changing_under_running_threads_stay_bounded() {
    // As above, while another thread flips the limit between two values:
    // the bytes passed stay within the larger burst plus the larger rate.
    let (fast, slow) = (
        Limit::per_second(20 * MIB).unwrap(),
        Limit::new(MIB, 4096).unwrap(),
    );
    let g = GlobalLimiter::new(ShapeConfig::new().with_outbound(fast));
    let clock = Arc::new(AtomicU64::new(0));
    let passed = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let flipper = {
        let (g, done) = (g.clone(), done.clone());
        std::thread::spawn(move || {
            let mut flips = 0u64;
            while done.load(Ordering::SeqCst) < 4 {
                let limit = if flips.is_multiple_of(2) { slow } else { fast };
                g.set_limit(Direction::Outbound, Some(limit));
                flips += 1;
                std::thread::yield_now();
            }
            flips
        })
    };
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (g, clock, passed, done) = (g.clone(), clock.clone(), passed.clone(), done.clone());
            std::thread::spawn(move || {
                saturate(&g, &clock, &passed, start);
                done.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let flips = flipper.join().unwrap();
    let elapsed = clock.load(Ordering::SeqCst);
    let bound =
        fast.burst() + (u128::from(fast.rate()) * u128::from(elapsed) / 1_000_000_000) as u64;
    let passed = passed.load(Ordering::SeqCst);
    assert!(
        passed <= bound,
        "{passed} bytes passed, bound {bound} ({flips} flips)"
    );
    assert!(passed > 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Any mix of connections, own limits, idle periods and global limit
    /// changes: everything together conforms to the global limit in force,
    /// each connection to its own, and every active connection is served.
    #[test]
    fn random_mixes_stay_within_every_limit(
        n in 2usize..7,
        rate in 10_000u64..5_000_000,
        burst_ms in 1u64..200,
        own in proptest::collection::vec(proptest::option::of(1_000u64..3_000_000), 7),
        idle in proptest::collection::vec(proptest::option::of((0u64..1500, 1u64..1000)), 7),
        change in proptest::option::of((10_000u64..5_000_000, 1u64..200)),
    ) {
        let limit = Limit::new(rate, (rate * burst_ms / 1000).max(1)).unwrap();
        let g = GlobalLimiter::new(ShapeConfig::new().with_outbound(limit));
        let shapers = (0..n)
            .map(|i| {
                let config = own[i].map_or(ShapeConfig::new(), |r| {
                    ShapeConfig::new().with_outbound(Limit::per_second(r).unwrap())
                });
                Shaper::new(config).with_global(&g)
            })
            .collect();
        let mut s = Senders::new(shapers, Instant::now());
        // In 100 ms steps: toggle the idle periods, change the limit at 1 s
        // (noting how many deliveries each connection had made by then).
        let mut after = None;
        for step in 0..20u64 {
            let t = step * 100;
            for (active, idle) in s.active.iter_mut().zip(&idle) {
                *active = idle.is_none_or(|(from, len)| t < from || t >= from + len);
            }
            if step == 10 && let Some((r, b)) = change {
                let new = Limit::new(r, (r * b / 1000).max(1)).unwrap();
                g.set_limit(Direction::Outbound, Some(new));
                after = Some((s.deliveries.iter().map(Vec::len).collect::<Vec<_>>(), new));
            }
            s.run_until(Duration::from_millis(t + 100));
        }
        let split = |from: &dyn Fn(usize) -> usize, to: &dyn Fn(usize) -> usize| {
            let mut part: Vec<Delivery> = (0..n)
                .flat_map(|i| s.deliveries[i][from(i)..to(i)].iter().copied())
                .collect();
            part.sort_by_key(|d| d.0);
            part
        };
        let end = |i: usize| s.deliveries[i].len();
        match &after {
            Some((marks, new)) => {
                assert_conforms(&split(&|_| 0, &|i| marks[i]), limit, "all together, before");
                assert_conforms(&split(&|i| marks[i], &end), *new, "all together, after");
            }
            None => assert_conforms(&split(&|_| 0, &end), limit, "all together"),
        }
        for i in 0..n {
            if let Some(r) = own[i] {
                assert_conforms(&s.deliveries[i], Limit::per_second(r).unwrap(), "own limit");
            }
            // Never starved: something passed in each second it was active throughout.
            let busy = idle[i].is_none_or(|(from, len)| from + len <= 1000);
            if busy {
                prop_assert!(s.got(i, secs(1), secs(2)) > 0, "connection {} starved", i);
            }
        }
    }
}
