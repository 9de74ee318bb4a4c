//! The decoders' shared memory budget: what does not fit is refused as a
//! local limit, the rest goes on, and every byte comes back.

mod common;

use common::{ZPair, conn};
use netstrata_core::testing::{Link, Pair};
use netstrata_core::{Error, State};
use netstrata_zstd::{DecoderBudget, ZstdConfig, ZstdError};

const MIB: usize = 1 << 20;

/// A client compressing with a window of 2^`window_log` toward a server
/// whose decoder draws from `budget`.
fn pair_with(window_log: u32, budget: &DecoderBudget) -> ZPair {
    Pair::new(
        conn(ZstdConfig::new().with_window_log(window_log)),
        conn(ZstdConfig::new().with_decoder_budget(budget.clone())),
        Link::new(),
    )
}

#[test]
fn a_frame_the_budget_cannot_cover_is_refused_as_a_local_limit_and_the_others_go_on() {
    // Room for one 2 MiB window (2.5 MiB) and a few at 2^15 (222 KiB).
    let budget = DecoderBudget::new(3 * MIB);
    let mut pairs: Vec<ZPair> = [21, 21, 15, 15]
        .into_iter()
        .map(|log| pair_with(log, &budget))
        .collect();
    let messages = common::log_messages(1, 40);
    for m in &messages[..10] {
        // A refused connection is closed: its client sees the end.
        for pair in pairs.iter_mut().filter(|p| p.server.conn.error().is_none()) {
            pair.client.conn.send(m).unwrap();
            pair.drive();
        }
    }

    // The second 2 MiB peer did not fit: refused, typed, not its fault.
    let refused = &pairs[1].server.conn;
    let err = refused.error().expect("refused").clone();
    assert_eq!(refused.state(), State::Closed);
    assert!(
        matches!(err, Error::LocalLimit { layer: "zstd", .. }),
        "{err}"
    );
    assert!(!err.is_peer_fault());
    match err.downcast_ref::<ZstdError>() {
        Some(ZstdError::BudgetExhausted {
            needed, capacity, ..
        }) => assert_eq!((*needed > 2 * MIB, *capacity), (true, 3 * MIB)),
        other => panic!("{other:?}"),
    }
    assert_eq!(refused.stack().decoder_reserved(), 0);
    assert_eq!(budget.refused(), 1);

    // The others carry on with every message intact.
    let reserved: usize = pairs
        .iter()
        .map(|p| p.server.conn.stack().decoder_reserved())
        .sum();
    assert_eq!(budget.in_use(), reserved);
    for m in &messages[10..] {
        for (i, pair) in pairs.iter_mut().enumerate().filter(|(i, _)| *i != 1) {
            pair.client.conn.send(m).unwrap();
            pair.drive();
            assert!(pair.server.conn.error().is_none(), "pair {i}");
        }
    }
    for (i, pair) in pairs.iter_mut().enumerate() {
        let inbox = pair.server.take_inbox();
        if i != 1 {
            assert_eq!(inbox, messages, "pair {i}");
        }
        pair.client.conn.close();
        pair.drive();
    }
    // Closed at a frame boundary: each context went with its stream.
    assert_eq!(budget.in_use(), 0);
    drop(pairs);
    assert_eq!(budget.in_use(), 0);
}

/// One context serves a stream's frames one after another: it grows its
/// reservation for a larger window, keeps it for a smaller one, and gives
/// all of it back when the connection goes idle between frames.
#[test]
fn a_context_kept_between_frames_grows_and_idle_gives_it_back() {
    let budget = DecoderBudget::new(64 * MIB);
    let config = ZstdConfig::new().with_decoder_budget(budget.clone());
    let mut server = conn(config);
    let now = std::time::Instant::now();
    let framed = |m: &[u8]| {
        let mut f = (m.len() as u32).to_be_bytes().to_vec();
        f.extend_from_slice(m);
        f
    };
    let feed = |log: u32, server: &mut common::ZConn| {
        let wire = common::zstd_stream(1, Some(log), &[&framed(b"frame")]);
        server.handle_input(now, &wire).unwrap();
        assert_eq!(
            server.poll_message(now).unwrap().as_deref(),
            Some(&b"frame"[..])
        );
        server.stack().decoder_reserved()
    };
    let small = feed(15, &mut server);
    let large = feed(21, &mut server);
    assert!(small < 300 * 1024 && large > 2 * MIB, "{small} {large}");
    assert_eq!(feed(15, &mut server), large, "kept for the smaller frame");
    assert_eq!(budget.in_use(), large);

    server.release_buffers();
    assert_eq!((server.stack().decoder_memory(), budget.in_use()), (0, 0));
    assert_eq!(feed(17, &mut server), budget.in_use());
    server.handle_input_eof(now).unwrap();
    assert!(server.poll_message(now).unwrap().is_none());
    assert!(server.is_read_closed());
    assert_eq!(budget.in_use(), 0, "the stream's end frees its context");
}

/// Inside a frame the context holds the frame's history: going idle there
/// keeps it (and its reservation).
#[test]
fn idle_inside_a_frame_keeps_the_context() {
    let budget = DecoderBudget::new(64 * MIB);
    let mut pair = pair_with(15, &budget);
    pair.client.conn.send(b"open frame").unwrap();
    pair.drive();
    let held = budget.in_use();
    assert!(held > 0);
    pair.server.conn.release_buffers();
    assert_eq!(budget.in_use(), held);
    pair.client.conn.send(b"same frame").unwrap();
    pair.drive();
    assert_eq!(pair.server.take_inbox().len(), 2);
    drop(pair);
    assert_eq!(budget.in_use(), 0, "dropping the connection frees it");
}
