//! Reading pauses instead of buffering: the layer consumes only what the
//! budget allows, refuses input while over budget, and names the exact
//! instant the budget returns.

mod common;

use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::*;
use netstrata_core::{Inbound, Layer};
use netstrata_shape::{GlobalLimiter, Limit, ShapeConfig, Shaper};

fn read(shaper: &mut Shaper, now: Instant, input: &mut BytesMut, up_room: usize) -> usize {
    let mut up = BytesMut::new();
    shaper
        .handle_inbound(
            Inbound::new(now, input, &mut up, &mut BytesMut::new()).with_upper_room(up_room),
        )
        .unwrap();
    up.len()
}

#[test]
fn reading_pauses_at_the_exact_instant_and_resumes_there() {
    // 1000 B/s, burst 100: a grant is 16 bytes (the minimum), 16 ms.
    let limit = Limit::new(1000, 100).unwrap();
    let mut shaper = Shaper::new(ShapeConfig::new().with_inbound(limit));
    let t0 = Instant::now();
    assert!(shaper.wants_read());
    let mut input = BytesMut::from(&[5u8; 1000][..]);
    assert_eq!(read(&mut shaper, t0, &mut input, usize::MAX), 100);
    assert_eq!(input.len(), 900, "the rest stays in the caller's buffer");
    assert!(!shaper.wants_read());
    assert_eq!(shaper.poll_timeout(), Some(t0 + Duration::from_millis(16)));

    // Before the deadline the layer refuses input, however much is offered.
    input.extend_from_slice(&[6u8; 5000]);
    let t = t0 + Duration::from_millis(15);
    assert_eq!(read(&mut shaper, t, &mut input, usize::MAX), 0);
    assert_eq!(input.len(), 5900);
    assert!(!shaper.wants_read());
    assert_eq!(shaper.poll_timeout(), Some(t0 + Duration::from_millis(16)));

    // At the deadline: a grant, then paused again until the next one.
    let t = t0 + Duration::from_millis(16);
    shaper.handle_timeout(t, &mut BytesMut::new()).unwrap();
    assert_eq!(read(&mut shaper, t, &mut input, usize::MAX), 16);
    assert!(!shaper.wants_read());
    assert_eq!(shaper.poll_timeout(), Some(t + Duration::from_millis(16)));
}

#[test]
fn an_idle_reader_stays_paused_until_a_grant_is_back() {
    let limit = Limit::new(1000, 100).unwrap();
    let mut shaper = Shaper::new(ShapeConfig::new().with_inbound(limit));
    let t0 = Instant::now();
    // 90 bytes arrive and pass; 10 left, less than a grant (16): paused.
    let mut input = BytesMut::from(&[1u8; 90][..]);
    assert_eq!(read(&mut shaper, t0, &mut input, usize::MAX), 90);
    assert!(!shaper.wants_read());
    assert_eq!(shaper.poll_timeout(), Some(t0 + Duration::from_millis(6)));
    let t = t0 + Duration::from_millis(6);
    shaper.handle_timeout(t, &mut BytesMut::new()).unwrap();
    assert!(shaper.wants_read());
    // Nothing pending and the bucket refilled: no deadline, reading on.
    assert_eq!(read(&mut shaper, t, &mut BytesMut::new(), usize::MAX), 0);
    assert!(shaper.wants_read());
    assert_eq!(shaper.poll_timeout(), None);
}

#[test]
fn the_upward_room_is_honoured_and_is_not_a_pause() {
    let limit = Limit::per_second(MIB).unwrap();
    let mut shaper = Shaper::new(ShapeConfig::new().with_inbound(limit));
    let t0 = Instant::now();
    let mut input = BytesMut::from(&[1u8; 1000][..]);
    assert_eq!(read(&mut shaper, t0, &mut input, 300), 300);
    assert_eq!(read(&mut shaper, t0, &mut input, 0), 0);
    // Budget is left: a full buffer above is backpressure of its own kind.
    assert!(shaper.wants_read());
    assert_eq!(read(&mut shaper, t0, &mut input, 1000), 700);
}

#[test]
fn a_global_read_limit_pauses_a_reader_with_bytes_waiting() {
    let limit = Limit::new(10_000, 1000).unwrap();
    let global = GlobalLimiter::new(ShapeConfig::new().with_inbound(limit));
    let mut a = Shaper::unlimited().with_global(&global);
    let mut b = Shaper::unlimited().with_global(&global);
    let t0 = Instant::now();
    // `a` takes the global burst.
    let mut input = BytesMut::from(&[1u8; 5000][..]);
    assert_eq!(read(&mut a, t0, &mut input, usize::MAX), 1000);
    assert!(!a.wants_read());
    // `b` has read nothing yet: it may read (it takes global budget only
    // for bytes that arrived), then queues behind `a`.
    assert!(b.wants_read());
    let mut input_b = BytesMut::from(&[2u8; 5000][..]);
    assert_eq!(read(&mut b, t0, &mut input_b, usize::MAX), 0);
    assert!(!b.wants_read());
    let (wa, wb) = (a.poll_timeout().unwrap(), b.poll_timeout().unwrap());
    // A grant is 5 ms of 10 kB/s (50 bytes); `b`'s ticket is behind `a`'s.
    assert_eq!(wa - t0, Duration::from_millis(5));
    assert_eq!(wb - t0, Duration::from_millis(10));
}

#[test]
fn any_read_sizes_give_the_same_bytes_within_the_rate() {
    // Byte-at-a-time input and up-room one byte at a time: same bytes, in
    // order, never above the bucket.
    let limit = Limit::new(2000, 40).unwrap();
    let mut shaper = Shaper::new(ShapeConfig::new().with_inbound(limit));
    let start = Instant::now();
    let data: Vec<u8> = (0..3000u32).map(|i| (i * 31 % 251) as u8).collect();
    let (mut input, mut out, mut deliveries) = (BytesMut::new(), Vec::new(), Vec::new());
    let mut now = start;
    let mut fed = 0;
    while out.len() < data.len() {
        if shaper.wants_read() && fed < data.len() {
            input.extend_from_slice(&data[fed..fed + 1]);
            fed += 1;
        }
        let mut up = BytesMut::new();
        shaper
            .handle_inbound(
                Inbound::new(now, &mut input, &mut up, &mut BytesMut::new()).with_upper_room(1),
            )
            .unwrap();
        if !up.is_empty() {
            deliveries.push((ns(now - start), up.len() as u64));
            out.extend_from_slice(&up);
        } else if let Some(wake) = shaper.poll_timeout() {
            now = now.max(wake);
            shaper.handle_timeout(now, &mut up).unwrap();
        }
    }
    assert_eq!(out, data);
    assert_conforms(&deliveries, limit, "byte at a time");
}

#[test]
fn a_connection_limit_lowered_while_a_global_ticket_waits_names_a_deadline() {
    // Found by the shape_limits fuzz target: a ticket covered after the
    // connection's own limit was lowered brought more global credit than
    // the connection's bucket held; the bucket ran dry with credit left and
    // bytes pending, and the shaper waited for nothing, with no deadline.
    let global =
        GlobalLimiter::new(ShapeConfig::new().with_inbound(Limit::new(5000, 500).unwrap()));
    let own = Limit::new(100_000, 100_000).unwrap();
    let mut shaper = Shaper::new(ShapeConfig::new().with_inbound(own)).with_global(&global);
    let t0 = Instant::now();
    let mut input = BytesMut::from(&[7u8; 4000][..]);
    // The global burst passes; the next grant waits in the global queue.
    assert_eq!(read(&mut shaper, t0, &mut input, usize::MAX), 500);
    assert!(!shaper.wants_read());
    let covered = shaper
        .poll_timeout()
        .expect("waiting for the global ticket");

    shaper.handle().set_limit(
        netstrata_shape::Direction::Inbound,
        Some(Limit::new(19, 19).unwrap()),
    );
    shaper
        .handle_timeout(covered, &mut BytesMut::new())
        .unwrap();
    let mut now = covered;
    let mut passed = 500;
    // 100 bytes at 19 B/s: about 100 grants of the minimum size, each after
    // a deadline the shaper names.
    for _ in 0..1000 {
        passed += read(&mut shaper, now, &mut input, usize::MAX);
        if passed >= 600 {
            break;
        }
        let next = shaper
            .poll_timeout()
            .expect("bytes are pending: the shaper must name when it goes on");
        now = now.max(next);
        shaper.handle_timeout(now, &mut BytesMut::new()).unwrap();
    }
    assert!(
        passed >= 600,
        "reading went on at the lowered limit: {passed}"
    );
}
