//! The fault matrix (issue #20, docs/reliability.md): every stack, with and
//! without shaping, under every fault of the fault proxy, in both
//! directions, on the reactor and on tokio. Each cell sends numbered
//! messages one at a time through the proxy to an echo server and checks
//! what arrived and how each end closed against [`TABLE`].
#![allow(unreachable_pub)]

use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use netstrata_cli::fault::{Ending, FaultConfig, FaultSpec, Outcome};

mod common;
#[path = "faults/on_reactor.rs"]
mod on_reactor;
#[path = "faults/on_tokio.rs"]
mod on_tokio;
#[path = "faults/stacks.rs"]
mod stacks;

use stacks::StackKind;

/// Messages per cell.
pub const COUNT: usize = 24;
/// The servers' idle timeout (the reactor's; the tokio echo's read timeout).
pub const IDLE_TIMEOUT: Duration = Duration::from_millis(300);
/// A stall well inside the idle timeout.
const SHORT_STALL: Duration = Duration::from_millis(100);
/// A stall the idle timeout fires in.
const LONG_STALL: Duration = Duration::from_millis(700);
/// Every cell's seed: a failing cell replays.
const SEED: u64 = 20;

/// Message `i`: its number, then text (zstd finds repeats across messages).
pub fn message(i: usize) -> Vec<u8> {
    format!("message {i:03} of {COUNT}: the quick brown fox jumps over the lazy dog").into_bytes()
}

/// How one end of a connection closed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum End {
    /// Both streams ended as their protocols end.
    Clean,
    /// `Error::Truncated` from this layer or codec.
    Truncated(&'static str),
    /// `Error::PeerMisbehaved` from this layer or codec.
    Peer(&'static str),
    /// The socket was reset.
    Reset,
    /// The idle (read) timeout fired.
    Idle,
    /// Anything else (never expected).
    Other(String),
}

/// What a cell saw.
#[derive(Debug)]
pub struct Observed {
    /// The echoes the client received, in order.
    pub received: Vec<Bytes>,
    /// How the client's connection ended.
    pub client: End,
    /// How the server's connection ended.
    pub server: End,
    /// Messages the server received.
    pub server_got: usize,
    /// What the proxy did.
    pub proxy: netstrata_cli::fault::ConnectionRecord,
}

/// A fault of the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Every byte written alone.
    Rechunk1,
    /// Pieces of 1..=64 bytes drawn from the seed.
    RechunkRandom,
    /// Each piece held 2 ms.
    Delay,
    /// Nothing forwarded for 100 ms, in the middle.
    StallShort,
    /// Nothing forwarded for 700 ms, past the idle timeout.
    StallLong,
    /// 200 kB/s.
    Rate,
    /// A FIN in the middle of a wire unit (frame, TLS record, zstd block).
    CutInside,
    /// A FIN exactly where a wire unit ends, in the middle of the exchange.
    CutBoundary,
    /// An RST in the middle of a wire unit.
    Reset,
    /// Bit 0 of the byte in the middle of a wire unit flipped.
    Flip,
}

/// Which direction the fault is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client → server: the server receives the damage.
    Up,
    /// Server → client: the client receives the damage.
    Down,
}

/// The proxy's spec for `fault` on `kind`: offsets are taken from a
/// fault-free run of the same stack (`record`: its wire in the faulty
/// direction), at the middle wire unit.
fn spec(fault: Fault, kind: StackKind, record: impl FnOnce() -> Vec<u8>) -> FaultSpec {
    // (where the middle unit ends, the middle of the unit after it)
    let middle = || {
        let wire = record();
        let ends = stacks::unit_ends(kind, &wire);
        assert!(
            ends.len() > 8,
            "{kind:?}: too few units in {} bytes",
            wire.len()
        );
        let m = ends.len() / 2;
        (ends[m] as u64, ((ends[m] + ends[m + 1]) / 2) as u64)
    };
    let none = FaultSpec::new();
    match fault {
        Fault::Rechunk1 => none.with_rechunk(1..=1),
        Fault::RechunkRandom => none.with_rechunk(1..=64),
        Fault::Delay => none.with_delay(Duration::from_millis(2)),
        Fault::StallShort => none.with_stall(middle().0, SHORT_STALL),
        Fault::StallLong => none.with_stall(middle().0, LONG_STALL),
        Fault::Rate => none.with_rate(200_000),
        Fault::CutInside => none.with_cut(middle().1),
        Fault::CutBoundary => none.with_cut(middle().0),
        Fault::Reset => none.with_reset(middle().1),
        Fault::Flip => none.with_flip(middle().1, 0),
    }
}

/// Which driver runs both ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Runtime {
    /// netstrata-reactor's server and a client event loop.
    Reactor,
    /// netstrata-tokio's `ConnectionStream` at both ends.
    Tokio,
}

fn exchange(runtime: Runtime, kind: StackKind, shaped: bool, faults: FaultConfig) -> Observed {
    match runtime {
        Runtime::Reactor => on_reactor::exchange(kind, shaped, faults),
        Runtime::Tokio => on_tokio::exchange(kind, shaped, faults),
    }
}

/// The wire of a fault-free run of `kind` on `runtime`, each way, recorded
/// once per run of the target (shaping does not change the bytes).
fn clean_wire(runtime: Runtime, kind: StackKind) -> (Vec<u8>, Vec<u8>) {
    type Wire = (Vec<u8>, Vec<u8>);
    static WIRES: Mutex<Vec<((Runtime, StackKind), Wire)>> = Mutex::new(Vec::new());
    let key = (runtime, kind);
    let known = WIRES
        .lock()
        .unwrap()
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, w)| w.clone());
    if let Some(wire) = known {
        return wire;
    }
    let clean = exchange(
        runtime,
        kind,
        false,
        FaultConfig::new(SEED).with_record(1 << 20),
    );
    assert_eq!(
        clean.received.len(),
        COUNT,
        "{kind:?}: the fault-free run lost messages"
    );
    let wire = clean.proxy.wire;
    WIRES.lock().unwrap().push((key, wire.clone()));
    wire
}

/// The proxy's configuration for a cell.
fn faults(runtime: Runtime, fault: Fault, direction: Direction, kind: StackKind) -> FaultConfig {
    let record = || {
        let (up, down) = clean_wire(runtime, kind);
        match direction {
            Direction::Up => up,
            Direction::Down => down,
        }
    };
    let spec = spec(fault, kind, record);
    let config = FaultConfig::new(SEED).with_record(1 << 20);
    match direction {
        Direction::Up => config.with_upstream(spec),
        Direction::Down => config.with_downstream(spec),
    }
}

/// What the client's received messages must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Messages {
    /// All of them, intact, in order.
    All,
    /// A prefix, intact and in order, shorter than all.
    Prefix,
    /// All of them in order, exactly one altered (undetected corruption).
    OneAltered,
    /// Either `Prefix` or `OneAltered` (zstd without its checksum).
    PrefixOrOneAltered,
}

/// One row of the expected outcomes: for `faults` in `direction` (`None`:
/// either) on `stacks`, what the client receives and how each end closes
/// (any of the ends listed).
#[derive(Debug)]
pub struct Row {
    /// The faults the row is for.
    pub faults: &'static [Fault],
    /// Their direction; `None`: either.
    pub direction: Option<Direction>,
    /// The stacks, each with and without shaping.
    pub stacks: &'static [StackKind],
    /// What the client receives.
    pub messages: Messages,
    /// How the client's connection may end.
    pub client: &'static [End],
    /// How the server's connection may end.
    pub server: &'static [End],
}

const LD: &str = "length-delimited";
const TRANSPARENT: &[Fault] = &[
    Fault::Rechunk1,
    Fault::RechunkRandom,
    Fault::Delay,
    Fault::StallShort,
    Fault::Rate,
];
const ALL_STACKS: &[StackKind] = &[
    StackKind::Plain,
    StackKind::Frame,
    StackKind::Tls,
    StackKind::Zstd,
    StackKind::TlsZstd,
    StackKind::Checksummed,
];
const TLS: &[StackKind] = &[StackKind::Tls, StackKind::TlsZstd];

/// The expected outcome of every cell; docs/reliability.md has the same
/// table. Which end receives the damage: the server for `Up`, the client
/// for `Down`.
#[rustfmt::skip]
pub const TABLE: &[Row] = {
    use Direction::{Down, Up};
    use End::{Clean, Idle, Peer, Reset, Truncated};
    use Fault::{CutBoundary, CutInside, Flip, StallLong};
    use Messages::*;
    use StackKind::{Checksummed as Sum, Frame, Plain, Zstd};
    const fn row(faults: &'static [Fault], direction: Option<Direction>, stacks: &'static [StackKind], messages: Messages, client: &'static [End], server: &'static [End]) -> Row {
        Row { faults, direction, stacks, messages, client, server }
    }
    &[
        // Every stack carries every message through these.
        row(TRANSPARENT, None, ALL_STACKS, All, &[Clean], &[Clean]),
        // The server's idle timeout fires; the client sees the close it makes.
        row(&[StallLong], None, &[Plain, Frame], Prefix, &[Clean], &[Idle]),
        row(&[StallLong], None, TLS, Prefix, &[Truncated("tls")], &[Idle]),
        row(&[StallLong], None, &[Zstd], Prefix, &[Truncated("zstd")], &[Idle]),
        row(&[StallLong], None, &[Sum], Prefix, &[Truncated("checksummed")], &[Idle]),
        // A cut inside a frame is truncation; the other end of a plain
        // stack sees a clean end at a message boundary.
        row(&[CutInside], Some(Up), &[Plain], Prefix, &[Clean], &[Truncated(LD)]),
        row(&[CutInside], Some(Down), &[Plain], Prefix, &[Truncated(LD)], &[Clean]),
        row(&[CutInside], Some(Up), &[Frame], Prefix, &[Clean], &[Truncated("varint")]),
        row(&[CutInside], Some(Down), &[Frame], Prefix, &[Truncated("varint")], &[Clean]),
        // A cut at a frame boundary looks like a clean end: messages lost, unseen.
        row(&[CutBoundary], None, &[Plain, Frame], Prefix, &[Clean], &[Clean]),
        // Cuts anywhere, record and block boundaries included, are truncation.
        row(&[CutInside, CutBoundary], None, TLS, Prefix, &[Truncated("tls")], &[Truncated("tls")]),
        row(&[CutInside, CutBoundary], None, &[Zstd], Prefix, &[Truncated("zstd")], &[Truncated("zstd")]),
        row(&[CutInside, CutBoundary], None, &[Sum], Prefix, &[Truncated("checksummed")], &[Truncated("checksummed")]),
        // A reset is a reset to both ends, whatever the stack.
        row(&[Fault::Reset], None, ALL_STACKS, Prefix, &[Reset], &[Reset]),
        // A flipped payload bit: undetected by framing alone, detected by
        // TLS at once, by the checksum only at the end (after delivery).
        row(&[Flip], None, &[Plain, Frame], OneAltered, &[Clean], &[Clean]),
        row(&[Flip], None, TLS, Prefix, &[Peer("tls")], &[Peer("tls")]),
        row(&[Flip], Some(Up), &[Zstd], PrefixOrOneAltered, &[Truncated("zstd"), Clean], &[Peer("zstd"), Peer(LD), Idle, Clean]),
        row(&[Flip], Some(Down), &[Zstd], PrefixOrOneAltered, &[Peer("zstd"), Peer(LD), Truncated("zstd"), Clean], &[Truncated("zstd"), Idle, Clean]),
        row(&[Flip], Some(Up), &[Sum], OneAltered, &[Truncated("checksummed")], &[Peer("checksummed")]),
        row(&[Flip], Some(Down), &[Sum], OneAltered, &[Peer("checksummed")], &[Clean]),
    ]
};

/// The row of a cell; exactly one.
fn expected(fault: Fault, direction: Direction, kind: StackKind) -> &'static Row {
    let rows: Vec<&Row> = TABLE
        .iter()
        .filter(|r| {
            r.faults.contains(&fault)
                && r.direction.is_none_or(|d| d == direction)
                && r.stacks.contains(&kind)
        })
        .collect();
    assert_eq!(
        rows.len(),
        1,
        "{fault:?} {direction:?} {kind:?}: {} rows",
        rows.len()
    );
    rows[0]
}

/// Runs one cell and checks it against its row.
fn cell(runtime: Runtime, kind: StackKind, shaped: bool, fault: Fault, direction: Direction) {
    let row = expected(fault, direction, kind);
    let config = faults(runtime, fault, direction, kind);
    let spec = match direction {
        Direction::Up => config.upstream.clone(),
        Direction::Down => config.downstream.clone(),
    };
    let seen = exchange(runtime, kind, shaped, config);
    let context = format!(
        "{runtime:?} {kind:?} shaped={shaped} {fault:?} {direction:?} (seed {SEED}, spec {spec}): \
         received {}, server got {}, client {:?}, server {:?}, proxy {:?}/{:?}",
        seen.received.len(),
        seen.server_got,
        seen.client,
        seen.server,
        seen.proxy.upstream,
        seen.proxy.downstream
    );
    println!("{context}");

    // The fault happened where it was asked for, and nothing else did.
    let (faulty, forwarded) = match direction {
        Direction::Up => (seen.proxy.upstream, seen.proxy.forwarded.0),
        Direction::Down => (seen.proxy.downstream, seen.proxy.forwarded.1),
    };
    if let Some(ending) = spec.ending {
        assert_eq!(faulty, Some(Outcome::Ended(ending)), "{context}");
    }
    if row.messages == Messages::All {
        let both = (seen.proxy.upstream, seen.proxy.downstream);
        assert_eq!(both, (Some(Outcome::Eof), Some(Outcome::Eof)), "{context}");
    }
    // A cut at a boundary is at one in this run's own wire (a TLS handshake
    // of another length would move every record), a cut inside is not.
    if let Some(Ending::Cut { at }) = spec.ending {
        let wire = match direction {
            Direction::Up => &seen.proxy.wire.0,
            Direction::Down => &seen.proxy.wire.1,
        };
        let ends = stacks::unit_ends(kind, wire);
        let at_boundary = ends.last() == Some(&(at as usize));
        assert_eq!(
            at_boundary,
            fault == Fault::CutBoundary,
            "{context}: units end at {ends:?}"
        );
    }
    for flip in &spec.flips {
        assert!(
            forwarded > flip.offset,
            "{context}: the flip was never reached"
        );
    }
    for stall in &spec.stalls {
        assert!(
            forwarded >= stall.offset,
            "{context}: the stall was never reached"
        );
    }

    // What arrived.
    let altered: Vec<usize> = (0..seen.received.len())
        .filter(|&i| seen.received[i] != message(i))
        .collect();
    let n = seen.received.len();
    let prefix = altered.is_empty() && n < COUNT;
    let one_altered = n == COUNT && altered.len() == 1;
    let ok = match row.messages {
        Messages::All => n == COUNT && altered.is_empty(),
        Messages::Prefix => prefix,
        Messages::OneAltered => one_altered,
        Messages::PrefixOrOneAltered => prefix || one_altered,
    };
    assert!(
        ok,
        "{context}: expected {:?}, altered {altered:?}",
        row.messages
    );
    // The server echoed what it got: the client got all of it, or all but
    // the one in flight when the connection broke.
    assert!(
        seen.server_got == n || seen.server_got == n + 1,
        "{context}"
    );

    // How each end closed.
    assert!(
        row.client.contains(&seen.client),
        "{context}: client expected {:?}",
        row.client
    );
    assert!(
        row.server.contains(&seen.server),
        "{context}: server expected {:?}",
        row.server
    );
}

/// `netstrata fault-proxy`: the subcommand cuts where it is told, says
/// where it listens, and what it did when stopped.
#[test]
fn the_fault_proxy_subcommand_cuts_where_told() {
    use std::io::{BufReader, Read, Write};

    let server = netstrata_cli::echo::serve(
        "127.0.0.1:0".parse().unwrap(),
        1,
        netstrata_cli::stack::StackOptions::default(),
    )
    .unwrap();
    let upstream = server.local_addr().to_string();
    let mut proxy = common::spawn(&[
        "fault-proxy",
        "--upstream",
        &upstream,
        "--seed",
        "7",
        "--up",
        "rechunk=1..3,cut@10",
    ]);
    let mut stdout = BufReader::new(proxy.0.stdout.take().unwrap());
    let addr = common::listening_addr(&mut stdout);

    // A whole frame echoes; the second, cut after 2 of its bytes, is
    // truncation to the server, which closes: the client reads the end.
    // (The second is sent after the echo: a reply queued in the turn that
    // reads the truncation is not sent, see docs/reliability.md.)
    let mut client = std::net::TcpStream::connect(addr).unwrap();
    client
        .write_all(&[0, 0, 0, 4, b'p', b'i', b'n', b'g'])
        .unwrap();
    let mut echoed = [0; 8];
    client.read_exact(&mut echoed).unwrap();
    assert_eq!(echoed, [0, 0, 0, 4, b'p', b'i', b'n', b'g']);
    client
        .write_all(&[0, 0, 0, 4, b'p', b'o', b'n', b'g'])
        .unwrap();
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "{rest:?}");
    let closes = server.close_counts();
    assert_eq!(
        closes.get(netstrata_reactor::CloseKind::Truncated("length-delimited")),
        1
    );
    drop(client);

    common::signal(&proxy.0, "TERM");
    assert!(proxy.0.wait().unwrap().success());
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert!(
        rest.contains("1 connections (1 ended early), 10 B up"),
        "{rest}"
    );
    server.stop().unwrap();
}

macro_rules! cells {
    ($runtime:expr, $kind:expr, $shaped:expr) => {
        cells!(@each $runtime, $kind, $shaped;
            rechunk1_up Rechunk1 Up, rechunk1_down Rechunk1 Down,
            rechunk_random_up RechunkRandom Up, rechunk_random_down RechunkRandom Down,
            delay_up Delay Up, delay_down Delay Down,
            stall_short_up StallShort Up, stall_short_down StallShort Down,
            stall_long_up StallLong Up, stall_long_down StallLong Down,
            rate_up Rate Up, rate_down Rate Down,
            cut_inside_up CutInside Up, cut_inside_down CutInside Down,
            cut_boundary_up CutBoundary Up, cut_boundary_down CutBoundary Down,
            reset_up Reset Up, reset_down Reset Down,
            flip_up Flip Up, flip_down Flip Down);
    };
    (@each $runtime:expr, $kind:expr, $shaped:expr; $($name:ident $fault:ident $direction:ident),*) => {
        $(
            #[test]
            fn $name() {
                crate::cell($runtime, $kind, $shaped, crate::Fault::$fault, crate::Direction::$direction);
            }
        )*
    };
}

macro_rules! stacks {
    ($module:ident $runtime:ident: $($name:ident $kind:ident),*) => {
        mod $module {
            $(
                mod $name {
                    cells!(crate::Runtime::$runtime, crate::StackKind::$kind, false);
                    mod shaped {
                        cells!(crate::Runtime::$runtime, crate::StackKind::$kind, true);
                    }
                }
            )*
        }
    };
}

stacks!(reactor Reactor: plain Plain, frame Frame, tls Tls, zstd Zstd, tls_zstd TlsZstd, checksummed Checksummed);
stacks!(tokio Tokio: plain Plain, frame Frame, tls Tls, zstd Zstd, tls_zstd TlsZstd, checksummed Checksummed);
