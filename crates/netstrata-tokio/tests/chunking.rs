//! Whatever the sizes of reads and writes, the bytes come out the same.
//!
//! A proptest drives two `LayeredStream`s over `tokio::io::duplex` pipes of
//! a few bytes, both ways at once, each half in a task of its own, with
//! writes, flushes and reads of random sizes, for the Xor, zstd and TLS
//! stacks; each side's shutdown is a clean end of the other side's reads.
//! tokio-test's scripted transports then give exact short reads and
//! writes: a zstd frame delivered a byte per read, a transport that takes
//! a few bytes per write, the transport ending inside a frame (the core
//! `Error::Truncated`, as on the reactor) or at its end (a clean end), and
//! transport errors passed through.

mod common;

use std::io;
use std::time::Duration;

use common::*;
use netstrata_core::layers::Xor;
use netstrata_core::{Error, Layer, Stack};
use netstrata_tls::Tls;
use netstrata_tokio::LayeredStream;
use netstrata_zstd::Zstd;
use proptest::prelude::*;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_test::io::Builder;

/// How one side writes: writes of these sizes in turn (each a single
/// `write`, which may take less), a flush after every `flush_every`-th.
#[derive(Debug, Clone)]
struct WritePlan {
    sizes: Vec<usize>,
    flush_every: usize,
}

fn write_plan() -> impl Strategy<Value = WritePlan> {
    (prop::collection::vec(1..3000usize, 1..8), 1..5usize)
        .prop_map(|(sizes, flush_every)| WritePlan { sizes, flush_every })
}

/// Reads into buffers of these sizes in turn.
fn read_plan() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1..3000usize, 1..8)
}

/// Writes `data` as `plan` says, then shuts down.
async fn write_in_pieces<W: AsyncWrite + Unpin>(
    w: &mut W,
    data: &[u8],
    plan: &WritePlan,
) -> io::Result<()> {
    let mut at = 0;
    for (i, &size) in (1..).zip(plan.sizes.iter().cycle()) {
        if at == data.len() {
            break;
        }
        let size = size.min(data.len() - at);
        let n = w.write(&data[at..at + size]).await?;
        assert!(n > 0, "a write of {size} bytes took none");
        at += n;
        if i % plan.flush_every == 0 {
            w.flush().await?;
        }
    }
    w.shutdown().await
}

/// Reads to the end in buffers of the planned sizes; the end must stay
/// the end.
async fn read_in_pieces<R: AsyncRead + Unpin>(r: &mut R, sizes: &[usize]) -> io::Result<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = vec![0; 3000];
    for &size in sizes.iter().cycle() {
        let n = r.read(&mut buf[..size]).await?;
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(r.read(&mut buf).await?, 0, "a read after the end");
    Ok(got)
}

/// What one end of an exchange does: sends its payload with its write
/// plan, and reads the other end's with its read plan.
#[derive(Debug, Clone)]
struct Plan {
    payload: Vec<u8>,
    writes: WritePlan,
    reads: Vec<usize>,
}

fn plan(max_len: usize) -> impl Strategy<Value = Plan> {
    (any::<u64>(), 0..=max_len, write_plan(), read_plan()).prop_map(|(seed, len, writes, reads)| {
        Plan {
            payload: payload(seed, len),
            writes,
            reads,
        }
    })
}

/// Runs `a` and `b` over a pipe of `capacity` bytes each way, both
/// directions at once, each half of each stream in a task of its own;
/// returns what each end read.
fn exchange<S>(capacity: usize, stacks: (S, S), ends: (&Plan, &Plan)) -> (Vec<u8>, Vec<u8>)
where
    S: Layer + Unpin + Send + 'static,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(within("exchange", async move {
        let (a, b) = tokio::io::duplex(capacity);
        let (a, b) = (
            LayeredStream::new(a, stacks.0),
            LayeredStream::new(b, stacks.1),
        );
        let (mut a_read, mut a_write) = tokio::io::split(a);
        let (mut b_read, mut b_write) = tokio::io::split(b);
        let (a_end, b_end) = (ends.0.clone(), ends.1.clone());
        let a_writes = tokio::spawn(async move {
            write_in_pieces(&mut a_write, &a_end.payload, &a_end.writes).await
        });
        let b_writes = tokio::spawn(async move {
            write_in_pieces(&mut b_write, &b_end.payload, &b_end.writes).await
        });
        let reads = ends.0.reads.clone();
        let a_reads = tokio::spawn(async move { read_in_pieces(&mut a_read, &reads).await });
        let b_got = read_in_pieces(&mut b_read, &ends.1.reads).await.unwrap();
        let a_got = a_reads.await.unwrap().unwrap();
        a_writes.await.unwrap().unwrap();
        b_writes.await.unwrap().unwrap();
        (a_got, b_got)
    }))
}

fn xor() -> Stack<(Xor,)> {
    Stack::new((Xor::new(*b"chunking"),))
}

fn zstd() -> Stack<(Zstd,)> {
    Stack::new((Zstd::new(),))
}

fn tls() -> (Stack<(Tls,)>, Stack<(Tls,)>) {
    (
        Stack::new((Tls::client(client_config(), "localhost").unwrap(),)),
        Stack::new((Tls::server(server_config()).unwrap(),)),
    )
}

/// Both ways, every byte, and a clean end each way.
fn assert_exchanged(got: &(Vec<u8>, Vec<u8>), a: &Plan, b: &Plan) {
    assert!(
        got.1 == a.payload,
        "a to b: {}",
        first_difference(&got.1, &a.payload)
    );
    assert!(
        got.0 == b.payload,
        "b to a: {}",
        first_difference(&got.0, &b.payload)
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn xor_streams_carry_every_byte_whatever_the_chunking(
        capacity in 1..64usize,
        a in plan(20_000),
        b in plan(20_000),
    ) {
        let got = exchange(capacity, (xor(), xor()), (&a, &b));
        assert_exchanged(&got, &a, &b);
    }

    #[test]
    fn zstd_streams_carry_every_byte_whatever_the_chunking(
        capacity in 1..64usize,
        a in plan(20_000),
        b in plan(20_000),
    ) {
        let got = exchange(capacity, (zstd(), zstd()), (&a, &b));
        assert_exchanged(&got, &a, &b);
    }
}

proptest! {
    // A handshake and records through pipes of a few bytes: fewer cases.
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn tls_streams_carry_every_byte_whatever_the_chunking(
        capacity in 1..64usize,
        a in plan(6_000),
        b in plan(6_000),
    ) {
        let got = exchange(capacity, tls(), (&a, &b));
        assert_exchanged(&got, &a, &b);
    }
}

/// A zstd frame of two flushed blocks and its end, as our encoder writes
/// it; and the two blocks' bytes.
async fn two_blocks() -> (Vec<Vec<u8>>, Vec<u8>) {
    let (first, second) = (payload(7, 3000), payload(8, 2000));
    let pieces = zstd_wire(&[&first, &second]).await;
    (pieces, [first, second].concat())
}

/// A script that delivers `wire` one byte per read, then ends.
fn byte_per_read(wire: &[u8]) -> Builder {
    let mut script = Builder::new();
    for byte in wire {
        script.read(std::slice::from_ref(byte));
    }
    script
}

#[tokio::test]
async fn a_zstd_frame_delivered_a_byte_per_read_ends_cleanly_at_its_end() {
    within("a byte per read", async {
        let (pieces, data) = two_blocks().await;
        let wire = pieces.concat();
        let mut ours = LayeredStream::new(byte_per_read(&wire).build(), zstd());
        let mut got = Vec::new();
        ours.read_to_end(&mut got)
            .await
            .expect("the transport ended at the end of the frame: a clean end");
        assert!(got == data, "{}", first_difference(&got, &data));
    })
    .await;
}

#[tokio::test]
async fn two_frames_in_a_row_with_the_transport_waiting_between_reads() {
    within("two frames", async {
        // What `zstd -d` accepts: frames in a row. The transport has
        // nothing for a while between its reads (a `wait`), so the stream
        // is woken by it rather than finding bytes at once.
        let (pieces, data) = two_blocks().await;
        let mut script = Builder::new();
        for piece in pieces.iter().chain(&pieces) {
            script.read(piece).wait(Duration::from_millis(1));
        }
        let mut ours = LayeredStream::new(script.build(), zstd());
        let mut got = Vec::new();
        ours.read_to_end(&mut got).await.unwrap();
        let want = [&data[..], &data[..]].concat();
        assert!(got == want, "{}", first_difference(&got, &want));
    })
    .await;
}

#[tokio::test]
async fn the_transport_ending_inside_a_zstd_frame_is_truncation() {
    within("truncation", async {
        let (pieces, data) = two_blocks().await;
        let first_len = payload(7, 3000).len();
        let (p0, p1) = (pieces[0].len(), pieces[0].len() + pieces[1].len());
        let wire = pieces.concat();
        // Where the transport ends, what arrives before, and the detail.
        let inside_frame = "transport ended inside a zstd frame";
        let cases = [
            (0, 0, "transport ended before the first zstd frame"),
            (3, 0, "transport ended inside a zstd frame header"),
            (p0, first_len, inside_frame),
            (p0 + 5, first_len, inside_frame),
            (p1, data.len(), inside_frame),
            (wire.len() - 1, data.len(), inside_frame),
        ];
        for (cut, delivered, detail) in cases {
            let mut ours = LayeredStream::new(byte_per_read(&wire[..cut]).build(), zstd());
            let mut got = Vec::new();
            let e = ours.read_to_end(&mut got).await.unwrap_err();
            assert_eq!(got, data[..delivered], "cut at {cut}: what came before");
            assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "cut at {cut}: {e}");
            match stack_error(&e) {
                Some(Error::Truncated {
                    layer: "zstd",
                    detail: d,
                }) => {
                    assert_eq!(*d, detail, "cut at {cut}");
                }
                other => panic!("cut at {cut}: {other:?} inside {e}"),
            }
            // The error sticks.
            let again = ours.read(&mut [0; 16]).await.unwrap_err();
            assert_eq!(again.kind(), io::ErrorKind::UnexpectedEof);
        }
    })
    .await;
}

#[tokio::test]
async fn a_transport_that_takes_a_few_bytes_per_write_gets_the_same_bytes() {
    within("short writes", async {
        let (pieces, _) = two_blocks().await;
        let (first, second) = (payload(7, 3000), payload(8, 2000));
        // The transport takes 1, 2, 3, 5, 8, ... 377, 1, 2, ... bytes per
        // write: a `wait` after each part makes the next write find it busy
        // (a timer tick each, so not a byte at a time throughout).
        let wire = pieces.concat();
        let sizes = [1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377];
        let mut script = Builder::new();
        let mut at = 0;
        for size in sizes.into_iter().cycle() {
            if at == wire.len() {
                break;
            }
            let end = (at + size).min(wire.len());
            script.write(&wire[at..end]).wait(Duration::ZERO);
            at = end;
        }
        // The script checks every byte written against the free-flowing
        // capture, and that all of it was written when it is dropped.
        let mut ours = LayeredStream::new(script.build(), zstd());
        ours.write_all(&first).await.unwrap();
        ours.flush().await.unwrap();
        // Flushed as the capture was: a block of its own, then the end.
        ours.write_all(&second).await.unwrap();
        ours.flush().await.unwrap();
        ours.shutdown().await.unwrap();
        drop(ours);
    })
    .await;
}

#[tokio::test]
async fn transport_errors_come_through_as_they_are() {
    within("transport errors", async {
        let (pieces, _) = two_blocks().await;
        let first = payload(7, 3000);
        let reset = io::Error::new(io::ErrorKind::ConnectionReset, "reset by the script");
        let script = Builder::new().read(&pieces[0]).read_error(reset).build();
        let mut ours = LayeredStream::new(script, zstd());
        let mut got = Vec::new();
        let e = ours.read_to_end(&mut got).await.unwrap_err();
        assert_eq!(got, first, "what came before the error");
        assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}");

        let broken = io::Error::new(io::ErrorKind::BrokenPipe, "broken by the script");
        let script = Builder::new().write_error(broken).build();
        let mut ours = LayeredStream::new(script, zstd());
        // Whether the write starts the bytes on their way or the flush does.
        let e = match ours.write_all(b"hello").await {
            Err(e) => e,
            Ok(()) => ours.flush().await.unwrap_err(),
        };
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe, "{e}");
    })
    .await;
}

/// Reading and writing in two tasks (`tokio::io::split`), the write half
/// waiting for a full pipe: the read half reads the peer's end and is
/// done with the stream (a server that read a half-closed client's whole
/// request), and the write half must still be woken as the peer makes
/// room. The read half polled the transport's write side on its way to
/// the end; the transport keeps one waker per direction.
#[tokio::test]
async fn the_write_half_goes_on_after_the_read_half_read_the_end() {
    let (ours, mut peer) = tokio::io::duplex(1024);
    let ours = LayeredStream::new(ours, xor());
    // The peer has nothing to say: it ends its side at once.
    peer.shutdown().await.unwrap();
    let (mut r, mut w) = tokio::io::split(ours);
    let data = payload(9, 64 * 1024);
    let sent = data.clone();
    let writer = tokio::spawn(async move {
        w.write_all(&sent).await?;
        w.flush().await?;
        w.shutdown().await
    });
    // On this one-thread runtime the writer fills the pipe and waits.
    tokio::task::yield_now().await;
    let mut got = Vec::new();
    r.read_to_end(&mut got).await.unwrap();
    assert!(got.is_empty());
    // Only now does the peer read, making room for the waiting writer.
    let mut wire = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), async {
        peer.read_to_end(&mut wire).await.unwrap();
        writer.await.unwrap().unwrap();
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "the write half was never woken: the peer got {} of {} bytes",
            wire.len(),
            data.len()
        )
    });
    let mut unxored = LayeredStream::new(Builder::new().read(&wire).build(), xor());
    let mut back = Vec::new();
    unxored.read_to_end(&mut back).await.unwrap();
    assert!(back == data, "{}", first_difference(&back, &data));
}
