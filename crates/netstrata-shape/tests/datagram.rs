//! Datagram sends: send now, wait until an instant, or drop, by policy.

use std::time::{Duration, Instant};

use netstrata_shape::{
    DatagramPolicy, DatagramShaper, Direction, GlobalLimiter, Limit, ShapeConfig, Verdict,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn shaper(rate: u64, burst: u64, policy: DatagramPolicy) -> DatagramShaper {
    let config = ShapeConfig::new().with_outbound(Limit::new(rate, burst).unwrap());
    DatagramShaper::new(config, policy)
}

#[test]
fn drop_policy_polices_and_counts() {
    // 100 kB/s, burst 3000: two 1200-byte datagrams fit, the third is dropped.
    let mut udp = shaper(100_000, 3000, DatagramPolicy::Drop);
    let t0 = Instant::now();
    assert_eq!(udp.poll_send(t0, 1200), Verdict::Send);
    assert_eq!(udp.poll_send(t0, 1200), Verdict::Send);
    assert_eq!(udp.poll_send(t0, 1200), Verdict::Drop);
    // 600 bytes left; 1200 need 6 ms more.
    assert_eq!(udp.poll_send(t0 + ms(5), 1200), Verdict::Drop);
    assert_eq!(udp.poll_send(t0 + ms(6), 1200), Verdict::Send);
    assert_eq!(udp.dropped(), 2);
    let stats = udp.handle().stats(t0 + ms(6));
    assert_eq!(stats.outbound.total_bytes, 3600);
}

#[test]
fn wait_policy_names_the_instant_and_sends_then() {
    let mut udp = shaper(100_000, 1500, DatagramPolicy::Wait);
    let t0 = Instant::now();
    assert_eq!(udp.poll_send(t0, 1500), Verdict::Send);
    // Empty bucket: 1000 bytes take 10 ms.
    assert_eq!(udp.poll_send(t0, 1000), Verdict::WaitUntil(t0 + ms(10)));
    // Offered early again: the same instant.
    assert_eq!(
        udp.poll_send(t0 + ms(3), 1000),
        Verdict::WaitUntil(t0 + ms(10))
    );
    assert_eq!(udp.poll_send(t0 + ms(10), 1000), Verdict::Send);
    assert_eq!(udp.dropped(), 0);
}

#[test]
fn wait_at_most_drops_what_would_wait_too_long() {
    let mut udp = shaper(100_000, 1500, DatagramPolicy::WaitAtMost(ms(8)));
    let t0 = Instant::now();
    assert_eq!(udp.poll_send(t0, 1500), Verdict::Send);
    // 500 bytes: 5 ms, within 8.
    assert_eq!(udp.poll_send(t0, 500), Verdict::WaitUntil(t0 + ms(5)));
    assert_eq!(udp.poll_send(t0 + ms(5), 500), Verdict::Send);
    // 1000 bytes: 10 ms, beyond 8: dropped at once.
    assert_eq!(udp.poll_send(t0 + ms(5), 1000), Verdict::Drop);
    assert_eq!(udp.dropped(), 1);
}

#[test]
fn a_datagram_larger_than_the_burst_is_always_dropped() {
    for policy in [
        DatagramPolicy::Drop,
        DatagramPolicy::Wait,
        DatagramPolicy::WaitAtMost(ms(1000)),
    ] {
        let mut udp = shaper(1_000_000, 1500, policy);
        assert_eq!(
            udp.poll_send(Instant::now(), 1501),
            Verdict::Drop,
            "{policy:?}"
        );
    }
    let global =
        GlobalLimiter::new(ShapeConfig::new().with_outbound(Limit::new(1_000_000, 1000).unwrap()));
    let mut udp =
        DatagramShaper::new(ShapeConfig::new(), DatagramPolicy::Wait).with_global(&global);
    assert_eq!(udp.poll_send(Instant::now(), 1001), Verdict::Drop);
    // Unlimited: everything goes, and is counted.
    let mut free = DatagramShaper::new(ShapeConfig::new(), DatagramPolicy::Drop);
    let now = Instant::now();
    assert_eq!(free.poll_send(now, 65_507), Verdict::Send);
    assert_eq!(free.handle().stats(now).outbound.total_bytes, 65_507);
}

#[test]
fn under_a_global_limit_waiting_datagrams_queue_in_order() {
    // 100 kB/s shared, burst 1000.
    let limit = Limit::new(100_000, 1000).unwrap();
    let global = GlobalLimiter::new(ShapeConfig::new().with_outbound(limit));
    let new = |policy| DatagramShaper::new(ShapeConfig::new(), policy).with_global(&global);
    let (mut a, mut b, mut c) = (
        new(DatagramPolicy::Wait),
        new(DatagramPolicy::Wait),
        new(DatagramPolicy::Drop),
    );
    let t0 = Instant::now();
    assert_eq!(a.poll_send(t0, 1000), Verdict::Send);
    assert_eq!(a.poll_send(t0, 500), Verdict::WaitUntil(t0 + ms(5)));
    assert_eq!(b.poll_send(t0, 500), Verdict::WaitUntil(t0 + ms(10)));
    // A dropping sender never queues, so it never delays the others.
    assert_eq!(c.poll_send(t0 + ms(4), 100), Verdict::Drop);
    assert_eq!(b.poll_send(t0 + ms(10), 500), Verdict::Send);
    assert_eq!(a.poll_send(t0 + ms(10), 500), Verdict::Send);
    // Nothing queued and 0 free: c's 100 bytes fit 1 ms later.
    assert_eq!(c.poll_send(t0 + ms(11), 100), Verdict::Send);
    assert_eq!(global.stats(t0 + ms(11)).outbound.total_bytes, 2100);
}

#[test]
fn a_cancelled_or_dropped_wait_keeps_its_place_and_its_bytes_go_unused() {
    let limit = Limit::new(100_000, 1000).unwrap();
    let global = GlobalLimiter::new(ShapeConfig::new().with_outbound(limit));
    let new = || DatagramShaper::new(ShapeConfig::new(), DatagramPolicy::Wait).with_global(&global);
    let (mut a, mut b) = (new(), new());
    let t0 = Instant::now();
    assert_eq!(a.poll_send(t0, 1000), Verdict::Send);
    assert_eq!(a.poll_send(t0, 800), Verdict::WaitUntil(t0 + ms(8)));
    a.cancel();
    // Even the newest ticket keeps its place: b waits 13 ms, not 5.
    assert_eq!(b.poll_send(t0, 500), Verdict::WaitUntil(t0 + ms(13)));
    drop(b);
    let mut c = new();
    assert_eq!(c.poll_send(t0, 200), Verdict::WaitUntil(t0 + ms(15)));
    // Never more than the rate: a's and b's bytes were not passed, and are
    // not passed by anyone else.
    assert_eq!(global.stats(t0).outbound.total_bytes, 1000);
}

#[test]
fn a_handle_changes_the_datagram_limit() {
    let mut udp = shaper(1000, 1000, DatagramPolicy::Wait);
    let t0 = Instant::now();
    assert_eq!(udp.poll_send(t0, 1000), Verdict::Send);
    assert_eq!(udp.poll_send(t0, 500), Verdict::WaitUntil(t0 + ms(500)));
    udp.handle().set_limit(
        Direction::Outbound,
        Some(Limit::new(100_000, 1000).unwrap()),
    );
    assert_eq!(udp.poll_send(t0, 500), Verdict::WaitUntil(t0 + ms(5)));
}
