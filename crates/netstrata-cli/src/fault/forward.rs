//! One direction of a proxied connection: read, cut into pieces, damage,
//! pace, write. Generic over the reader, the writer and the clock, so that
//! each fault's effect on a byte stream is tested without sockets or time.

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::Injected;
use super::spec::{Ending, FaultSpec};

/// How a direction's forwarding ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The sender ended its stream; every byte was forwarded.
    Eof,
    /// The spec's ending came due: exactly its offset was forwarded.
    Ended(Ending),
    /// Reading from the sender failed (it reset the connection, say).
    ReadFailed(io::ErrorKind),
    /// Writing to the receiver failed.
    WriteFailed(io::ErrorKind),
    /// The proxy is stopping, or the other direction reset the connection.
    Stopped,
}

/// The waits of a direction: real sleeps in the proxy, a virtual clock in
/// tests.
pub(crate) trait Clock {
    /// Now.
    fn now(&self) -> Instant;
    /// Waits `pause` (or less, if told to stop).
    fn sleep(&mut self, pause: Duration);
    /// Whether to give up.
    fn stopped(&self) -> bool;
}

/// The state of one direction's faults: where it is in the stream and
/// what the seeded generator draws next.
#[derive(Debug)]
pub(crate) struct Faults {
    spec: FaultSpec,
    rng: ChaCha8Rng,
    /// Bytes forwarded so far.
    offset: u64,
    /// Bytes left in the current rechunk piece.
    piece_left: usize,
    next_stall: usize,
    /// When the capped link has carried the last piece.
    link_free: Option<Instant>,
    /// Flips written and stalls taken so far.
    flipped: u64,
    stalled: u64,
}

impl Faults {
    /// `spec` with a generator seeded by `seed` (the same seed draws the
    /// same piece sizes).
    pub(crate) fn new(spec: FaultSpec, seed: u64) -> Self {
        Self {
            spec,
            rng: ChaCha8Rng::seed_from_u64(seed),
            offset: 0,
            piece_left: 0,
            next_stall: 0,
            link_free: None,
            flipped: 0,
            stalled: 0,
        }
    }

    /// Bytes forwarded so far.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// The ending, if it is due now.
    fn ending_due(&self) -> Option<Ending> {
        self.spec.ending.filter(|e| e.at() <= self.offset)
    }

    /// The stall due now, if any, taken.
    fn take_stall(&mut self) -> Option<Duration> {
        let stall = self.spec.stalls.get(self.next_stall)?;
        (stall.offset <= self.offset).then(|| {
            self.next_stall += 1;
            self.stalled += 1;
            stall.pause
        })
    }

    /// The length of the next piece out of `available` bytes: no longer
    /// than the rechunk piece, and ending where the next stall or the
    /// ending is due.
    fn next_piece(&mut self, available: usize) -> usize {
        let mut len = available;
        if let Some(sizes) = &self.spec.rechunk {
            if self.piece_left == 0 {
                // The fields are public: a piece is at least one byte however
                // the range was built.
                let low = (*sizes.start()).max(1);
                let high = (*sizes.end()).max(low);
                self.piece_left = self.rng.random_range(low..=high);
            }
            len = len.min(self.piece_left);
        }
        let next_stall = self.spec.stalls.get(self.next_stall).map(|s| s.offset);
        let next_end = self.spec.ending.map(|e| e.at());
        for event in [next_stall, next_end].into_iter().flatten() {
            if event > self.offset {
                len = len.min(usize::try_from(event - self.offset).unwrap_or(usize::MAX));
            }
        }
        len
    }

    /// Flips the bits due in `piece`, which starts at the current offset.
    fn damage(&self, piece: &mut [u8]) {
        let end = self.offset + piece.len() as u64;
        for flip in &self.spec.flips {
            if (self.offset..end).contains(&flip.offset) {
                piece[(flip.offset - self.offset) as usize] ^= flip.mask;
            }
        }
    }

    /// How long to hold a piece of `len` bytes so that it leaves when it
    /// would have crossed a link of the capped rate, the link busy until
    /// the previous piece had crossed (no credit builds up while idle).
    fn pace(&mut self, now: Instant, len: usize) -> Duration {
        let Some(rate) = self.spec.rate else {
            return Duration::ZERO;
        };
        let start = self.link_free.map_or(now, |free| free.max(now));
        let crossing = Duration::from_secs_f64(len as f64 / rate.max(1) as f64);
        let done = start.checked_add(crossing).unwrap_or(start);
        self.link_free = Some(done);
        done - now
    }

    /// The faults this direction has injected, given how it ended.
    pub(crate) fn injected(&self, outcome: Outcome) -> Injected {
        Injected {
            cuts: u64::from(matches!(outcome, Outcome::Ended(Ending::Cut { .. }))),
            resets: u64::from(matches!(outcome, Outcome::Ended(Ending::Reset { .. }))),
            flips: self.flipped,
            stalls: self.stalled,
        }
    }

    /// Counts `len` bytes forwarded (and the flips among them).
    fn advance(&mut self, len: usize) {
        let end = self.offset + len as u64;
        let flips = self
            .spec
            .flips
            .iter()
            .filter(|f| (self.offset..end).contains(&f.offset));
        self.flipped += flips.count() as u64;
        self.offset += len as u64;
        self.piece_left = self.piece_left.saturating_sub(len);
    }
}

/// Forwards `src` to `dst` through `faults` until the sender's end, the
/// spec's ending, an error or a stop. Bounded: one `buf` of bytes in
/// flight; a slow receiver stops the reading.
pub(crate) fn forward(
    faults: &mut Faults,
    src: &mut impl Read,
    dst: &mut impl Write,
    clock: &mut impl Clock,
    buf: &mut [u8],
) -> Outcome {
    loop {
        if let Some(ending) = faults.ending_due() {
            return Outcome::Ended(ending);
        }
        if let Some(pause) = faults.take_stall() {
            clock.sleep(pause);
            continue;
        }
        if clock.stopped() {
            return Outcome::Stopped;
        }
        let n = match src.read(buf) {
            Ok(0) => return Outcome::Eof,
            Ok(n) => n,
            Err(e) if is_retry(&e) => continue,
            Err(e) => return Outcome::ReadFailed(e.kind()),
        };
        let mut data = &mut buf[..n];
        while !data.is_empty() {
            if let Some(ending) = faults.ending_due() {
                return Outcome::Ended(ending);
            }
            if let Some(pause) = faults.take_stall() {
                clock.sleep(pause);
            }
            let len = faults.next_piece(data.len());
            let (piece, rest) = data.split_at_mut(len);
            faults.damage(piece);
            if let Some(delay) = faults.spec.delay {
                clock.sleep(delay);
            }
            let wait = faults.pace(clock.now(), len);
            if !wait.is_zero() {
                clock.sleep(wait);
            }
            if clock.stopped() {
                return Outcome::Stopped;
            }
            if let Err(e) = dst.write_all(piece).and_then(|()| dst.flush()) {
                return match clock.stopped() {
                    true => Outcome::Stopped,
                    false => Outcome::WriteFailed(e.kind()),
                };
            }
            faults.advance(len);
            data = rest;
        }
    }
}

/// A read that timed out or was interrupted: look at the stop flag, then
/// read again.
fn is_retry(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A virtual clock: sleeping advances it and is recorded.
    struct Virtual {
        now: Instant,
        slept: Vec<Duration>,
    }

    impl Virtual {
        fn new() -> Self {
            Self {
                now: Instant::now(),
                slept: Vec::new(),
            }
        }
    }

    impl Clock for Virtual {
        fn now(&self) -> Instant {
            self.now
        }
        fn sleep(&mut self, pause: Duration) {
            self.now += pause;
            self.slept.push(pause);
        }
        fn stopped(&self) -> bool {
            false
        }
    }

    /// Records each write as a piece.
    #[derive(Default)]
    struct Pieces(Vec<Vec<u8>>);

    impl Write for Pieces {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            self.0.push(data.to_vec());
            Ok(data.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Pieces {
        fn bytes(&self) -> Vec<u8> {
            self.0.concat()
        }
        fn sizes(&self) -> Vec<usize> {
            self.0.iter().map(Vec::len).collect()
        }
    }

    fn stream() -> Vec<u8> {
        (0..1000u32).map(|i| (i % 251) as u8).collect()
    }

    /// Forwards `input` through `spec`, read 100 bytes at a time.
    fn run(spec: &str, seed: u64, input: &[u8]) -> (Outcome, Pieces, Virtual) {
        let mut faults = Faults::new(spec.parse().unwrap(), seed);
        let (mut out, mut clock) = (Pieces::default(), Virtual::new());
        let mut src = input;
        let outcome = forward(&mut faults, &mut src, &mut out, &mut clock, &mut [0; 100]);
        (outcome, out, clock)
    }

    #[test]
    fn no_fault_forwards_every_read_as_it_came() {
        let (outcome, out, clock) = run("", 1, &stream());
        assert_eq!(outcome, Outcome::Eof);
        assert_eq!(out.bytes(), stream());
        assert_eq!(out.sizes(), [100; 10]);
        assert!(clock.slept.is_empty());
    }

    #[test]
    fn rechunk_to_one_byte_writes_each_byte_alone() {
        let (outcome, out, _) = run("rechunk=1", 1, &stream());
        assert_eq!(outcome, Outcome::Eof);
        assert_eq!(out.bytes(), stream());
        assert!(out.sizes().iter().all(|&n| n == 1));
    }

    #[test]
    fn rechunk_draws_the_same_boundaries_from_the_same_seed() {
        let (_, a, _) = run("rechunk=1..64", 7, &stream());
        let (_, b, _) = run("rechunk=1..64", 7, &stream());
        let (_, c, _) = run("rechunk=1..64", 8, &stream());
        assert_eq!(a.bytes(), stream());
        assert_eq!(a.sizes(), b.sizes());
        assert_ne!(a.sizes(), c.sizes());
        assert!(a.sizes().iter().all(|&n| (1..=64).contains(&n)));
        // Boundaries are where the drawn pieces end, whatever the reads:
        // a read of 100 bytes ends a piece early, the rest follows.
        assert!(a.sizes().len() > 1000 / 64);
    }

    #[test]
    fn delay_holds_each_piece() {
        let (_, out, clock) = run("rechunk=250,delay=3ms", 1, &stream());
        assert_eq!(out.bytes(), stream());
        assert_eq!(clock.slept.len(), out.0.len());
        assert!(clock.slept.iter().all(|&d| d == Duration::from_millis(3)));
    }

    #[test]
    fn stall_pauses_once_at_its_offset() {
        let (_, out, clock) = run("stall=2s@150", 1, &stream());
        assert_eq!(out.bytes(), stream());
        assert_eq!(clock.slept, [Duration::from_secs(2)]);
        // The piece before the stall ends exactly at its offset.
        assert_eq!(out.sizes()[..3], [100, 50, 50]);
    }

    #[test]
    fn cut_forwards_exactly_its_offset() {
        for at in [0, 1, 99, 100, 101, 999] {
            let (outcome, out, _) = run(&format!("cut@{at}"), 1, &stream());
            assert_eq!(outcome, Outcome::Ended(Ending::Cut { at }));
            assert_eq!(out.bytes(), stream()[..at as usize]);
        }
        // Past the end of the stream, the sender's end comes first.
        let (outcome, out, _) = run("cut@5000", 1, &stream());
        assert_eq!(outcome, Outcome::Eof);
        assert_eq!(out.bytes(), stream());
    }

    #[test]
    fn reset_forwards_exactly_its_offset() {
        let (outcome, out, _) = run("rechunk=1..7,reset@333", 3, &stream());
        assert_eq!(outcome, Outcome::Ended(Ending::Reset { at: 333 }));
        assert_eq!(out.bytes(), stream()[..333]);
    }

    #[test]
    fn flip_changes_one_bit_of_one_byte() {
        let (_, out, _) = run("rechunk=1..9,flip@500:7,flip@0", 5, &stream());
        let (got, want) = (out.bytes(), stream());
        let diffs: Vec<(usize, u8)> = (0..want.len())
            .filter(|&i| got[i] != want[i])
            .map(|i| (i, got[i] ^ want[i]))
            .collect();
        assert_eq!(diffs, [(0, 0x01), (500, 0x80)]);
    }

    #[test]
    fn the_faults_injected_are_counted() {
        let mut faults = Faults::new("stall=1ms@5,flip@3,flip@700,cut@600".parse().unwrap(), 1);
        let (mut out, mut clock) = (Pieces::default(), Virtual::new());
        let mut src = &stream()[..];
        let outcome = forward(&mut faults, &mut src, &mut out, &mut clock, &mut [0; 100]);
        let injected = faults.injected(outcome);
        // The flip at 700 lies past the cut.
        let want = Injected {
            cuts: 1,
            resets: 0,
            flips: 1,
            stalls: 1,
        };
        assert_eq!(injected, want);
    }

    #[test]
    fn rate_spreads_the_bytes_over_time() {
        let (_, out, clock) = run("rate=1000", 1, &stream());
        assert_eq!(out.bytes(), stream());
        let total: Duration = clock.slept.iter().sum();
        // 1000 bytes at 1000 B/s: one second, all told.
        assert!(
            (total.as_secs_f64() - 1.0).abs() < 1e-6,
            "{total:?} for 1000 bytes at 1000 B/s"
        );
    }

    #[test]
    fn specs_built_by_hand_cannot_stop_the_stream() {
        let mut spec = FaultSpec::new().with_rate(1);
        spec.rechunk = Some(0..=0);
        spec.rate = Some(0);
        let mut faults = Faults::new(spec, 1);
        let (mut out, mut clock) = (Pieces::default(), Virtual::new());
        let mut src = &b"abc"[..];
        let outcome = forward(&mut faults, &mut src, &mut out, &mut clock, &mut [0; 8]);
        assert_eq!(outcome, Outcome::Eof);
        assert_eq!(out.sizes(), [1, 1, 1]);
    }

    #[test]
    fn a_failed_write_is_reported() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut faults = Faults::new(FaultSpec::new(), 0);
        let mut src = &stream()[..];
        let outcome = forward(
            &mut faults,
            &mut src,
            &mut Broken,
            &mut Virtual::new(),
            &mut [0; 64],
        );
        assert_eq!(outcome, Outcome::WriteFailed(io::ErrorKind::BrokenPipe));
        assert_eq!(faults.offset(), 0);
    }
}
