//! The layer contract for the shaper: any chunking gives the same bytes and
//! the rate bound holds, ends are clean, misuse is typed, and the traffic
//! counters agree with what passed.

mod common;

use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::*;
use netstrata_core::testing::{Chunking, Link, Pair};
use netstrata_core::{
    BoxedLayer, Connection, DynStack, Error, Flush, Inbound, Layer, Outbound, RawCodec, State,
};
use netstrata_shape::{Direction, GlobalLimiter, Limit, ShapeConfig, ShapeError, Shaper};
use proptest::prelude::*;

/// Feeds `chunks` (arriving `gap_us` apart) to the outbound side with the
/// given down-rooms, calling at arrivals and deadlines; returns the output
/// and its deliveries.
fn run_outbound(
    limit: Limit,
    chunks: &[(Vec<u8>, u64)],
    rooms: &[usize],
) -> (Vec<u8>, Vec<Delivery>) {
    let mut shaper = Shaper::new(ShapeConfig::new().with_outbound(limit));
    let start = Instant::now();
    let (mut input, mut out, mut deliveries) = (BytesMut::new(), Vec::new(), Vec::new());
    let mut arrivals = Vec::new();
    let mut t = 0;
    for (chunk, gap) in chunks {
        t += gap * 1000;
        arrivals.push((t, chunk));
    }
    let (mut next_chunk, mut turn) = (0, 0);
    let mut now_ns = 0u64;
    loop {
        while next_chunk < arrivals.len() && arrivals[next_chunk].0 <= now_ns {
            input.extend_from_slice(arrivals[next_chunk].1);
            next_chunk += 1;
        }
        let now = start + Duration::from_nanos(now_ns);
        let done = next_chunk == arrivals.len();
        let mut down = BytesMut::new();
        let room = rooms[turn % rooms.len()];
        turn += 1;
        shaper
            .handle_outbound(
                Outbound::new(
                    now,
                    &mut input,
                    if done { Flush::Finish } else { Flush::Batch },
                    &mut down,
                )
                .with_lower_room(room),
            )
            .unwrap();
        assert!(down.len() <= room, "down room exceeded");
        if !down.is_empty() {
            deliveries.push((now_ns, down.len() as u64));
            out.extend_from_slice(&down);
        }
        if done && shaper.is_write_closed() {
            return (out, deliveries);
        }
        let wake = shaper.poll_timeout().map(|w| ns(w - start));
        let arrival = arrivals.get(next_chunk).map(|a| a.0);
        now_ns = match (wake, arrival) {
            (Some(w), Some(a)) => w.min(a),
            (Some(w), None) => w,
            (None, Some(a)) => a,
            // Room was short with budget left: call again.
            (None, None) => now_ns,
        }
        .max(now_ns);
        let now = start + Duration::from_nanos(now_ns);
        if shaper.poll_timeout().is_some_and(|w| w <= now) {
            shaper.handle_timeout(now, &mut BytesMut::new()).unwrap();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn outbound_any_chunking_same_bytes_within_the_bucket(
        chunks in proptest::collection::vec((proptest::collection::vec(any::<u8>(), 0..400), 0u64..20_000), 0..30),
        rate in 100u64..200_000,
        burst in 1u64..3000,
        rooms in proptest::collection::vec(1usize..2000, 1..6),
    ) {
        let limit = Limit::new(rate, burst).unwrap();
        let data: Vec<u8> = chunks.iter().flat_map(|c| c.0.clone()).collect();
        let (out, deliveries) = run_outbound(limit, &chunks, &rooms);
        prop_assert_eq!(out, data);
        assert_conforms(&deliveries, limit, "random chunking");
    }

    #[test]
    fn inbound_any_chunking_same_bytes_within_the_bucket(
        data in proptest::collection::vec(any::<u8>(), 0..5000),
        cut in 1usize..700,
        rooms in proptest::collection::vec(1usize..900, 1..6),
        rate in 1000u64..500_000,
        burst in 1u64..2000,
    ) {
        let limit = Limit::new(rate, burst).unwrap();
        let mut shaper = Shaper::new(ShapeConfig::new().with_inbound(limit));
        let start = Instant::now();
        let (mut input, mut out, mut deliveries) = (BytesMut::new(), Vec::new(), Vec::new());
        let (mut fed, mut turn, mut now) = (0, 0, start);
        while !shaper.is_read_closed() {
            if shaper.wants_read() && fed < data.len() {
                let n = cut.min(data.len() - fed);
                input.extend_from_slice(&data[fed..fed + n]);
                fed += n;
            }
            let before = input.len();
            let refusing = !shaper.wants_read();
            let mut up = BytesMut::new();
            let room = rooms[turn % rooms.len()];
            turn += 1;
            shaper.handle_inbound(Inbound::new(now, &mut input, &mut up, &mut BytesMut::new()).with_upper_room(room).with_input_ended(fed == data.len())).unwrap();
            prop_assert!(up.len() <= room);
            if refusing {
                prop_assert_eq!(input.len(), before, "consumed while refusing");
            }
            if !up.is_empty() {
                deliveries.push((ns(now - start), up.len() as u64));
                out.extend_from_slice(&up);
            }
            if let Some(wake) = shaper.poll_timeout() {
                now = now.max(wake);
                shaper.handle_timeout(now, &mut up).unwrap();
            }
        }
        prop_assert_eq!(out, data);
        assert_conforms(&deliveries, limit, "random reads");
    }

    #[test]
    fn shaped_both_ways_over_random_chunking_every_message_arrives(
        msgs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..3000), 1..12),
        seed in any::<u64>(),
        max in 1usize..2000,
    ) {
        let limit = Limit::new(200_000, 4000).unwrap();
        let config = ShapeConfig::new().with_inbound(limit).with_outbound(limit);
        let mut pair = Pair::new(
            Connection::new(Shaper::new(config), RawCodec::new()),
            Connection::new(Shaper::new(config), RawCodec::new()),
            Link::new().with_chunking(Chunking::Random { seed, max }),
        );
        let data: Vec<u8> = msgs.concat();
        for m in &msgs {
            pair.client.conn.send(m).unwrap();
        }
        pair.client.conn.close();
        pair.drive();
        prop_assert_eq!(pair.server.received(), data.clone());
        prop_assert!(pair.server.conn.is_read_closed());
        // The wire took the time the limit demands (two buckets in a row).
        let min_time = (data.len() as u64).saturating_sub(4000) as f64 / 200_000.0;
        prop_assert!(pair.elapsed().as_secs_f64() >= min_time - 1e-6);
    }
}

#[test]
fn write_after_shutdown_is_misuse_naming_the_layer() {
    let mut shaper = Shaper::unlimited();
    let now = Instant::now();
    let mut call = |input: &[u8], flush| {
        shaper.handle_outbound(Outbound::new(
            now,
            &mut BytesMut::from(input),
            flush,
            &mut BytesMut::new(),
        ))
    };
    call(b"last", Flush::Finish).unwrap();
    call(b"", Flush::Batch).unwrap();
    let err = call(b"more", Flush::Batch).unwrap_err();
    assert!(matches!(err, Error::Misuse { layer: "shape", .. }), "{err}");
    assert_eq!(
        err.downcast_ref::<ShapeError>(),
        Some(&ShapeError::WriteAfterShutdown)
    );
    // Configuration errors convert the same way.
    let err: Error = Limit::new(0, 10).unwrap_err().into();
    assert_eq!(err.layer(), Some("shape"));
    assert!(!err.is_peer_fault());
}

#[test]
fn finish_waits_for_the_budget_and_the_connection_closes_cleanly() {
    let limit = Limit::new(10_000, 1000).unwrap();
    let mut pair = Pair::new(
        Connection::new(
            Shaper::new(ShapeConfig::new().with_outbound(limit)),
            RawCodec::new(),
        ),
        Connection::new(Shaper::unlimited(), RawCodec::new()),
        Link::new(),
    );
    pair.client.conn.send(&[3u8; 11_000]).unwrap();
    pair.client.conn.close();
    pair.server.conn.close();
    pair.drive();
    assert_eq!(pair.server.received().len(), 11_000);
    assert_eq!(pair.client.conn.state(), State::Closed);
    assert_eq!(pair.server.conn.state(), State::Closed);
    // 1000 at once, then 10_000 at 10 kB/s.
    assert_eq!(pair.elapsed(), Duration::from_secs(1));
}

#[test]
fn a_shaper_inserted_into_a_live_connection_shapes_from_then_on() {
    let mut pair = Pair::new(
        Connection::new(DynStack::new(vec![]), RawCodec::new()),
        Connection::new(DynStack::new(vec![]), RawCodec::new()),
        Link::new(),
    );
    pair.client.conn.send(&[1u8; 50_000]).unwrap();
    pair.drive();
    assert_eq!(pair.elapsed(), Duration::ZERO);
    let limit = Limit::new(100_000, 10_000).unwrap();
    let shaper: BoxedLayer = Box::new(Shaper::new(ShapeConfig::new().with_outbound(limit)));
    pair.client.conn.insert_layer(0, shaper).unwrap();
    pair.client.conn.send(&[2u8; 60_000]).unwrap();
    pair.drive();
    assert_eq!(pair.server.received().len(), 110_000);
    assert_eq!(pair.elapsed(), Duration::from_millis(500));
}

#[test]
fn counters_agree_with_what_passed() {
    let rate = 4 * MIB;
    let global = GlobalLimiter::new(
        ShapeConfig::new()
            .with_outbound(Limit::per_second(rate).unwrap())
            .with_window(Duration::from_millis(500)),
    );
    let make = || {
        Shaper::new(ShapeConfig::new().with_window(Duration::from_millis(500))).with_global(&global)
    };
    let mut s = Senders::new(vec![make(), make()], Instant::now());
    s.run_until(Duration::from_secs(3));
    let now = s.now;
    let (a, b) = (
        s.shapers[0].handle().stats(now),
        s.shapers[1].handle().stats(now),
    );
    let g = global.stats(now);
    let sent = |i: usize| s.deliveries[i].iter().map(|d| d.1).sum::<u64>();
    assert_eq!(a.outbound.total_bytes, sent(0));
    assert_eq!(b.outbound.total_bytes, sent(1));
    assert_eq!(g.outbound.total_bytes, sent(0) + sent(1));
    assert_eq!(g.inbound.total_bytes, 0);
    for (what, t, want) in [
        ("a", a.outbound, rate / 2),
        ("b", b.outbound, rate / 2),
        ("global", g.outbound, rate),
    ] {
        let err = (t.throughput as f64 - want as f64) / want as f64;
        assert!(
            err.abs() < 0.03,
            "{what}: throughput {} want {want}",
            t.throughput
        );
        assert!(t.peak_throughput >= t.throughput);
    }
    // The first window held the initial burst: the global peak is above the rate.
    assert!(g.outbound.peak_throughput > rate);

    // One goes idle: its throughput decays to 0, its peak stays.
    s.active[1] = false;
    s.run_until(Duration::from_secs(5));
    let b = s.shapers[1].handle().stats(s.now).outbound;
    assert_eq!(b.throughput, 0);
    assert!(b.peak_throughput >= rate / 2);
    let a = s.shapers[0].handle().stats(s.now).outbound;
    assert!((a.throughput as f64 - rate as f64).abs() / (rate as f64) < 0.03);
}

#[test]
fn limits_read_back_through_handles() {
    let limit = Limit::new(1234, 56).unwrap();
    let shaper = Shaper::new(ShapeConfig::new().with_inbound(limit));
    let handle = shaper.handle();
    assert_eq!(handle.limit(Direction::Inbound), Some(limit));
    assert_eq!(handle.limit(Direction::Outbound), None);
    handle.set_limit(Direction::Inbound, None);
    assert_eq!(handle.limit(Direction::Inbound), None);
    let global = GlobalLimiter::new(ShapeConfig::new());
    assert_eq!(global.limit(Direction::Outbound), None);
    global.set_limit(Direction::Outbound, Some(limit));
    assert_eq!(global.limit(Direction::Outbound), Some(limit));
    // Before any traffic the figures are zero.
    assert_eq!(handle.stats(Instant::now()), Default::default());
}

/// The exported conformance suite, on a shaper that limits both ways (the
/// pair runs on the virtual clock, so the waits cost nothing), one that
/// only counts, and one held to a global limiter.
#[test]
fn the_shaper_passes_the_conformance_suite() {
    let limited = || {
        let limit = Limit::new(64 * 1024, 4096).expect("a valid limit");
        ShapeConfig::new().with_inbound(limit).with_outbound(limit)
    };
    netstrata_core::testing::check_layer(|_| Shaper::new(limited()));
    netstrata_core::testing::check_layer(|_| Shaper::unlimited());
    let global = GlobalLimiter::new(limited());
    netstrata_core::testing::check_layer(|_| Shaper::unlimited().with_global(&global));
}
