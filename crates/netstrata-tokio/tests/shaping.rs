//! Shaping on tokio: a `LayeredStream` with a `Shaper` in its stack is
//! paused when the budget is spent and woken at the shaper's deadline (by
//! a tokio timer), or at once by the shaper's waker when a limit changes
//! from another task. Connections sharing a `GlobalLimiter` get fair
//! shares of it.
//!
//! Rates are checked only as lower bounds, which the token bucket
//! guarantees whatever the machine's speed: over any interval `t` a
//! direction passes at most `burst + rate × t` bytes, so `n` bytes take at
//! least `(n - burst) / rate`. How close to the rate a transfer comes is
//! for the shape crate's virtual-clock tests and the benchmarks; here a
//! hang fails through [`common::within`].

mod common;

use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use netstrata_core::{ConnectionConfig, Stack};
use netstrata_shape::{
    Direction, FAIR_ROUND, GlobalLimiter, Limit, ShapeConfig, Shaper, ShaperHandle,
};
use netstrata_tokio::LayeredStream;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::{mpsc, oneshot};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;

/// The least time `bytes` can take through a bucket of `limit`.
fn least(bytes: u64, limit: Limit) -> Duration {
    Duration::from_secs_f64(bytes.saturating_sub(limit.burst()) as f64 / limit.rate() as f64)
}

/// `shaper` alone over one end of a pipe of `capacity` bytes each way.
fn shaped(
    shaper: Shaper,
    capacity: usize,
    config: ConnectionConfig,
) -> (LayeredStream<DuplexStream, Stack<(Shaper,)>>, DuplexStream) {
    let (ours, peer) = tokio::io::duplex(capacity);
    (
        LayeredStream::with_config(ours, Stack::new((shaper,)), config),
        peer,
    )
}

#[tokio::test]
async fn writes_wait_for_the_shapers_budget() {
    let limit = Limit::new(MIB, 16 * KIB).unwrap();
    let n = 256 * KIB;
    let shaper = Shaper::new(ShapeConfig::new().with_outbound(limit));
    let handle = shaper.handle();
    // A send buffer of 16 KiB: writes themselves wait for the shaper,
    // not only the flush.
    let config = ConnectionConfig::new().with_send_buffer(16 * 1024);
    let (mut ours, mut peer) = shaped(shaper, 64 * 1024, config);
    let data = payload(1, n as usize);
    within("shaped writes", async {
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            peer.read_to_end(&mut got).await.map(|_| got)
        });
        let start = Instant::now();
        ours.write_all(&data).await.unwrap();
        ours.shutdown().await.unwrap();
        let took = start.elapsed();
        let got = reader.await.unwrap().unwrap();
        assert!(got == data, "{}", first_difference(&got, &data));
        assert!(
            took >= least(n, limit),
            "{n} bytes written in {took:?}, less than the {:?} the limit allows",
            least(n, limit)
        );
        let stats = handle.stats(Instant::now());
        assert_eq!(stats.outbound.total_bytes, n);
        eprintln!("{n} bytes at {} B/s: {took:?}", limit.rate());
    })
    .await;
}

#[tokio::test]
async fn reads_wait_for_the_shapers_budget_and_the_peer_feels_it() {
    let limit = Limit::new(MIB, 16 * KIB).unwrap();
    let n = 256 * KIB;
    let (capacity, read_buffer) = (16 * KIB, 16 * KIB);
    let shaper = Shaper::new(ShapeConfig::new().with_inbound(limit));
    let handle = shaper.handle();
    let config = ConnectionConfig::new().with_read_buffer(read_buffer as usize);
    let (mut ours, mut peer) = shaped(shaper, capacity as usize, config);
    let data = payload(2, n as usize);
    within("shaped reads", async {
        let start = Instant::now();
        let sent = data.clone();
        let writer = tokio::spawn(async move {
            peer.write_all(&sent).await?;
            let took = start.elapsed();
            peer.shutdown().await?;
            Ok::<_, io::Error>(took)
        });
        let mut got = Vec::new();
        ours.read_to_end(&mut got).await.unwrap();
        let took = start.elapsed();
        let peer_took = writer.await.unwrap().unwrap();
        assert!(got == data, "{}", first_difference(&got, &data));
        assert!(
            took >= least(n, limit),
            "{n} bytes read in {took:?}, less than the {:?} the limit allows",
            least(n, limit)
        );
        // Reading is paused, not buffered: the peer's writes could get
        // ahead of the shaper only by the pipe and our read buffer.
        let ahead = capacity + read_buffer;
        assert!(
            peer_took >= least(n - ahead, limit),
            "the peer wrote {n} bytes in {peer_took:?}: reading was not paused"
        );
        assert_eq!(handle.stats(Instant::now()).inbound.total_bytes, n);
        eprintln!("{n} bytes at {} B/s: {took:?}", limit.rate());
    })
    .await;
}

/// The connection that was done first, and what each had passed by then.
type Passed = (usize, Vec<u64>);

/// Connections sharing one global limit, each writing from its own task
/// on two worker threads: together they keep to the global rate, and
/// each gets a fair share of it: when the first is done, every other has
/// passed nearly as much.
///
/// The tolerance comes from how the global limiter serves (the shape
/// crate's docs, "Fairness") and from what a runtime adds to it:
/// - waiting connections are served in rounds of one grant each (at most
///   the burst, here 16 KiB = 4 ms of the rate), so at any instant shares
///   differ by a grant, and the burst a full bucket starts with goes to
///   whichever connection comes first: `burst + 2 grants`;
/// - the limiter is work-conserving: a connection that is not waiting
///   takes no ticket and the others get its share. A writer task that is
///   not polled at once when its grant is covered (two busy cores) loses
///   the rounds that pass meanwhile, for good. Allowed: one fair round
///   ([`FAIR_ROUND`], 50 ms, within which the limiter serves every waiting
///   connection) of such lateness, the others' `3/4 × rate × 50 ms`.
///
/// That is 205 KiB, a fifth of each connection's 1 MiB (a 2:1 split shows
/// as half). Unloaded, the spread is about two grants. Asserted: at least
/// half (see the end of the test); the tolerance is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_sharing_a_global_limit_get_fair_shares_of_it() {
    const CONNS: usize = 4;
    let each = MIB;
    let limit = Limit::new(4 * MIB, 16 * KIB).unwrap();
    let global = GlobalLimiter::new(ShapeConfig::new().with_outbound(limit));
    let shapers: Vec<Shaper> = (0..CONNS)
        .map(|_| Shaper::unlimited().with_global(&global))
        .collect();
    let handles: Arc<Vec<ShaperHandle>> = Arc::new(shapers.iter().map(Shaper::handle).collect());
    // The connection done first, and each one's bytes passed by then.
    let first_done: Arc<Mutex<Option<Passed>>> = Arc::default();
    within("global shares", async {
        let payloads: Vec<Vec<u8>> = (0..CONNS)
            .map(|i| payload(i as u64, each as usize))
            .collect();
        // The writers start together, so that none is ahead by the bytes
        // it passed before the others began.
        let go = Arc::new(tokio::sync::Barrier::new(CONNS + 1));
        let (mut readers, mut writers) = (Vec::new(), Vec::new());
        for (i, (shaper, data)) in shapers.into_iter().zip(payloads.clone()).enumerate() {
            // Pipes that hold a whole transfer: no connection is held back
            // by how soon its reader task runs (a connection whose
            // transport is full gives its covered grant back and queues
            // again, a round lost to the transport, not to the limiter).
            let (mut ours, mut peer) = shaped(shaper, each as usize, ConnectionConfig::new());
            let (handles, first_done, go) =
                (Arc::clone(&handles), Arc::clone(&first_done), Arc::clone(&go));
            readers.push(tokio::spawn(async move {
                let mut got = Vec::new();
                peer.read_to_end(&mut got).await.map(|_| got)
            }));
            writers.push(tokio::spawn(async move {
                go.wait().await;
                ours.write_all(&data).await?;
                ours.flush().await?;
                let now = Instant::now();
                first_done.lock().unwrap().get_or_insert_with(|| {
                    let passed = handles.iter().map(|h| h.stats(now).outbound.total_bytes);
                    (i, passed.collect())
                });
                ours.shutdown().await
            }));
        }
        // Before any writer can begin.
        let start = Instant::now();
        go.wait().await;
        for writer in writers {
            writer.await.unwrap().unwrap();
        }
        let took = start.elapsed();
        for (i, (reader, want)) in readers.into_iter().zip(&payloads).enumerate() {
            let got = reader.await.unwrap().unwrap();
            assert!(got == *want, "connection {i}: {}", first_difference(&got, want));
        }

        // Together: at most the burst plus the rate over the time taken.
        let total = global.stats(Instant::now()).outbound.total_bytes;
        assert_eq!(total, CONNS as u64 * each);
        assert!(
            took >= least(total, limit),
            "{total} bytes in {took:?}, less than the {:?} the global limit allows",
            least(total, limit)
        );

        let (first, passed) = first_done.lock().unwrap().take().unwrap();
        let round = limit.rate() * FAIR_ROUND.as_millis() as u64 / 1000;
        let others_in_a_round = round * (CONNS as u64 - 1) / CONNS as u64;
        let tolerance = limit.burst() + 2 * limit.grant() + others_in_a_round;
        eprintln!(
            "connection {first} was first done, after {took:?} in all; each had passed: {passed:?} (tolerance {tolerance})"
        );
        assert_eq!(passed[first], each);
        // The tolerance holds on a machine that polls the writers when
        // their grants are covered. On one so busy that a worker thread
        // waits out several fair rounds (seen: a load average of 10 on 2
        // cores, 77% passed), the work-conserving limiter rightly serves
        // the others meanwhile; the exact shares on a virtual clock are
        // netstrata-shape's fairness tests. Asserted here, whatever the
        // load: no connection starves (a waiting writer never woken, or a
        // limiter that serves one connection first, leaves the others far
        // below half); beyond the tolerance, the spread is only reported.
        for (i, &bytes) in passed.iter().enumerate() {
            assert!(
                bytes >= each / 2,
                "connection {i} had passed {bytes} bytes when connection {first} had passed all {each}: \
                 not a fair share"
            );
            if bytes.abs_diff(each) > tolerance {
                eprintln!(
                    "connection {i}: {bytes} of {each} bytes, beyond the tolerance {tolerance} (a busy machine?)"
                );
            }
        }
    })
    .await;
}

/// 1 B/s after a burst of 1000 bytes: past the burst, the next grant
/// (16 bytes, the minimum) is 16 s away, and the rest would take 1000 s.
fn one_byte_per_second() -> Limit {
    Limit::new(1, 1000).unwrap()
}

/// How long the rest of a transfer may take once its limit is lifted:
/// far less than the old limit's next deadline (16 s), so that only the
/// shaper's waker can make it.
const AFTER_LIFT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_limit_lifted_from_another_task_wakes_a_waiting_writer() {
    let shaper = Shaper::new(ShapeConfig::new().with_outbound(one_byte_per_second()));
    let handle = shaper.handle();
    let (mut ours, mut peer) = shaped(shaper, 64 * 1024, ConnectionConfig::new());
    within("lifted write limit", async {
        let writer = tokio::spawn(async move {
            ours.write_all(&[7; 2000]).await?;
            ours.flush().await?;
            ours.shutdown().await
        });
        // The burst arrives; the writer is then waiting for its next grant
        // (on this one-thread runtime it ran until it waited).
        let mut got = vec![0; 2000];
        peer.read_exact(&mut got[..1000]).await.unwrap();
        handle.set_limit(Direction::Outbound, None);
        let rest = tokio::time::timeout(AFTER_LIFT, async {
            peer.read_exact(&mut got[1000..]).await.unwrap();
            writer.await.unwrap().unwrap();
        });
        rest.await
            .expect("the rest is written once the limit is lifted, not at the old deadline");
        assert!(got.iter().all(|&b| b == 7));
    })
    .await;
}

#[tokio::test]
async fn a_limit_lifted_from_another_task_wakes_a_waiting_reader() {
    let shaper = Shaper::new(ShapeConfig::new().with_inbound(one_byte_per_second()));
    let handle = shaper.handle();
    let (mut ours, mut peer) = shaped(shaper, 64 * 1024, ConnectionConfig::new());
    within("lifted read limit", async {
        let (burst_read, burst_was_read) = oneshot::channel();
        let reader = tokio::spawn(async move {
            let mut got = vec![0; 2000];
            ours.read_exact(&mut got[..1000]).await?;
            let _ = burst_read.send(());
            // Waits here for the next grant, until the limit is lifted.
            ours.read_exact(&mut got[1000..]).await?;
            Ok::<_, io::Error>(got)
        });
        peer.write_all(&[9; 2000]).await.unwrap();
        burst_was_read.await.unwrap();
        handle.set_limit(Direction::Inbound, None);
        let got = tokio::time::timeout(AFTER_LIFT, reader)
            .await
            .expect("the rest is read once the limit is lifted, not at the old deadline")
            .unwrap()
            .unwrap();
        assert!(got.iter().all(|&b| b == 9));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_global_limit_lifted_from_another_task_wakes_every_waiting_writer() {
    const CONNS: usize = 3;
    let global = GlobalLimiter::new(ShapeConfig::new().with_outbound(one_byte_per_second()));
    within("lifted global limit", async {
        let (read_tx, mut reads) = mpsc::unbounded_channel();
        let mut writers = Vec::new();
        let mut readers = Vec::new();
        for i in 0..CONNS {
            let shaper = Shaper::unlimited().with_global(&global);
            let (mut ours, mut peer) = shaped(shaper, 64 * 1024, ConnectionConfig::new());
            writers.push(tokio::spawn(async move {
                ours.write_all(&[i as u8; 1000]).await?;
                ours.shutdown().await
            }));
            let read_tx = read_tx.clone();
            readers.push(tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = [0; 4096];
                loop {
                    let n = peer.read(&mut buf).await?;
                    if n == 0 {
                        return Ok::<_, io::Error>(got);
                    }
                    got.extend_from_slice(&buf[..n]);
                    let _ = read_tx.send(n);
                }
            }));
        }
        // The global burst (1000 of the 3000 bytes) arrives; the rest waits.
        let mut arrived = 0;
        while arrived < 1000 {
            arrived += reads.recv().await.unwrap();
        }
        global.set_limit(Direction::Outbound, None);
        tokio::time::timeout(AFTER_LIFT, async {
            for (i, (writer, reader)) in writers.into_iter().zip(readers).enumerate() {
                writer.await.unwrap().unwrap();
                assert_eq!(reader.await.unwrap().unwrap(), [i as u8; 1000]);
            }
        })
        .await
        .expect("every connection finishes once the global limit is lifted");
    })
    .await;
}

/// What the write half does while the read half waits for its shaper.
#[derive(Debug, Clone, Copy)]
enum WriteHalf {
    Flush,
    Shutdown,
}

/// Reading and writing in two tasks (`tokio::io::split`): the read half,
/// paused by its shaper, is woken at the shaper's deadline although the
/// write half polled the stream meanwhile and is done with it (a client
/// that sent its request and half-closed while the answer still comes).
/// The stream's timer serves both halves; it must wake the half that
/// waits for it, not the one that polled it last.
#[tokio::test]
async fn the_read_half_is_woken_at_its_deadline_after_the_write_half_polled_the_stream() {
    for action in [WriteHalf::Flush, WriteHalf::Shutdown] {
        // 4 KiB at 16 KiB/s after a 1 KiB burst: about 0.19 s, in grants
        // of 5 ms.
        let limit = Limit::new(16 * KIB, KIB).unwrap();
        let shaper = Shaper::new(ShapeConfig::new().with_inbound(limit));
        let (ours, mut peer) = shaped(shaper, 64 * 1024, ConnectionConfig::new());
        let data = payload(3, 4096);
        peer.write_all(&data).await.unwrap();
        peer.shutdown().await.unwrap();
        let (mut r, mut w) = tokio::io::split(ours);
        let (first_read, first_was_read) = oneshot::channel();
        let reader = tokio::spawn(async move {
            let mut got = vec![0; 100];
            r.read_exact(&mut got).await?;
            let _ = first_read.send(());
            // Waits for the shaper from here on.
            r.read_to_end(&mut got).await?;
            Ok::<_, io::Error>(got)
        });
        // On this one-thread runtime the reader runs until it waits for
        // its shaper's deadline before the write half is polled.
        first_was_read.await.unwrap();
        match action {
            WriteHalf::Flush => w.flush().await.unwrap(),
            WriteHalf::Shutdown => w.shutdown().await.unwrap(),
        }
        // The write half is not polled again: only the timer can wake the
        // reader now.
        let got = tokio::time::timeout(AFTER_LIFT, reader)
            .await
            .unwrap_or_else(|_| {
                panic!("after a {action:?} of the write half, the read half was never woken")
            })
            .unwrap()
            .unwrap();
        assert!(got == data, "{}", first_difference(&got, &data));
        drop(w);
    }
}

/// The other way round: the write half keeps polling the stream (a flush
/// at every turn of its task) while the read half waits for its shaper.
/// A poll of the write half finds the read half's deadline passed and
/// runs it before the timer has fired, so the timer never fires: the read
/// half must be woken by the half that ran its deadline.
#[tokio::test]
async fn the_read_half_is_woken_when_the_write_half_runs_its_deadline() {
    // 4 KiB at 16 KiB/s after a 1 KiB burst, as above: some 40 deadlines.
    let limit = Limit::new(16 * KIB, KIB).unwrap();
    let shaper = Shaper::new(ShapeConfig::new().with_inbound(limit));
    let (ours, mut peer) = shaped(shaper, 64 * 1024, ConnectionConfig::new());
    let data = payload(4, 4096);
    peer.write_all(&data).await.unwrap();
    peer.shutdown().await.unwrap();
    let (mut r, mut w) = tokio::io::split(ours);
    let (done, mut is_done) = oneshot::channel();
    let writer = tokio::spawn(async move {
        // Until the reader is done: on this one-thread runtime the writer
        // runs at every turn, and the timers only every so many turns.
        while is_done.try_recv().is_err() {
            w.flush().await?;
            tokio::task::yield_now().await;
        }
        w.shutdown().await
    });
    // The read half in a task of its own: only the stream can wake it.
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        r.read_to_end(&mut got).await.map(|_| got)
    });
    let read = tokio::time::timeout(AFTER_LIFT, reader).await;
    let _ = done.send(());
    writer.await.unwrap().unwrap();
    let got = read
        .expect("the read half was never woken")
        .unwrap()
        .unwrap();
    assert!(got == data, "{}", first_difference(&got, &data));
}
