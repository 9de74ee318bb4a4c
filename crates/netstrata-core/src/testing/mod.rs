//! A deterministic test harness: two connections back to back on a virtual
//! clock (feature `testing`).
//!
//! ```text
//!  client Connection ──poll_transmit──▶ link (chunking, latency, bandwidth, window) ──handle_input──▶ server Connection
//!                    ◀──handle_input─── link ◀──poll_transmit──
//! ```
//!
//! Also here: [`Conformance`], the checks every shipped layer passes, for a
//! layer of your own, and helpers for interop tests that run a tool nobody
//! here wrote ([`external_tool`], [`run_piped`]), or that skip outside CI
//! what the machine lacks and fail under it ([`cannot_run`]).
//!
//! Time only moves when nothing else can happen: [`Pair::drive`] jumps the
//! clock to the next segment arrival or layer deadline, so a test of a
//! 10-second handshake timeout or a 5-second shaping window runs in
//! microseconds and gives the same result every time.
//!
//! ```
//! use netstrata_core::layers::Xor;
//! use netstrata_core::testing::{Chunking, Link, Pair};
//! use netstrata_core::{Connection, RawCodec};
//!
//! let link = Link::new().with_chunking(Chunking::Fixed(1));
//! let mut pair = Pair::new(
//!     Connection::new(Xor::new(*b"k"), RawCodec::new()),
//!     Connection::new(Xor::new(*b"k"), RawCodec::new()),
//!     link,
//! );
//! pair.client.conn.send(b"hello").unwrap();
//! pair.drive();
//! assert_eq!(pair.server.received(), b"hello");
//! ```

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::{Codec, Connection, Error, Layer};

mod conformance;
mod tools;
mod transmit;

pub use conformance::{Conformance, check_layer};
pub use tools::{cannot_run, external_tool, run_piped};
pub use transmit::{transmit_all, transmit_ok};

/// How the link cuts what a side transmits into segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Chunking {
    /// One segment per transmit call.
    Whole,
    /// Segments of exactly `n` bytes (the last may be shorter); `Fixed(1)`
    /// delivers one byte at a time.
    Fixed(usize),
    /// Segments of 1 to `max` bytes, from a seeded generator.
    Random {
        /// Seed of the generator (same seed, same cuts).
        seed: u64,
        /// Largest segment.
        max: usize,
    },
}

/// The simulated network between the two sides (the same each way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    chunking: Chunking,
    latency: Duration,
    bandwidth: Option<u64>,
    window: usize,
}

impl Link {
    /// Whole segments, no latency, unlimited bandwidth, a 256 KiB window.
    pub fn new() -> Self {
        Self {
            chunking: Chunking::Whole,
            latency: Duration::ZERO,
            bandwidth: None,
            window: 256 * 1024,
        }
    }

    /// Sets how transmitted bytes are cut into segments.
    pub fn with_chunking(mut self, chunking: Chunking) -> Self {
        self.chunking = chunking;
        self
    }

    /// Sets the one-way delay of every segment.
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Sets the link rate in bytes per second (segments queue behind each other).
    pub fn with_bandwidth(mut self, bytes_per_sec: u64) -> Self {
        self.bandwidth = Some(bytes_per_sec.max(1));
        self
    }

    /// Sets how many bytes may be in flight or waiting at a receiver that
    /// does not read, per direction (TCP's windows and socket buffers); a
    /// sender stops transmitting beyond it.
    pub fn with_window(mut self, bytes: usize) -> Self {
        self.window = bytes.max(1);
        self
    }
}

impl Default for Link {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Debug)]
enum Payload {
    Data(Bytes),
    /// End of stream (TCP FIN).
    Fin,
}

#[derive(Debug)]
struct Segment {
    arrives: Instant,
    payload: Payload,
}

/// One direction of the link.
#[derive(Debug)]
struct Pipe {
    segments: VecDeque<Segment>,
    queued: usize,
    free_at: Instant,
    rng: u64,
    fin_sent: bool,
}

impl Pipe {
    fn new(now: Instant, seed: u64) -> Self {
        Self {
            segments: VecDeque::new(),
            queued: 0,
            free_at: now,
            rng: seed | 1,
            fin_sent: false,
        }
    }

    fn next_len(&mut self, link: &Link, available: usize) -> usize {
        let n = match link.chunking {
            Chunking::Whole => available,
            Chunking::Fixed(n) => n.max(1),
            Chunking::Random { max, .. } => {
                // xorshift64*: deterministic and dependency-free.
                self.rng ^= self.rng >> 12;
                self.rng ^= self.rng << 25;
                self.rng ^= self.rng >> 27;
                let r = self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d);
                1 + (r % max.max(1) as u64) as usize
            }
        };
        n.min(available)
    }

    fn push(&mut self, link: &Link, now: Instant, payload: Payload) {
        let len = match &payload {
            Payload::Data(b) => b.len(),
            Payload::Fin => 0,
        };
        let serialize = link.bandwidth.map_or(Duration::ZERO, |bw| {
            Duration::from_secs_f64(len as f64 / bw as f64)
        });
        let departs = self.free_at.max(now) + serialize;
        self.free_at = departs;
        self.queued += len;
        self.segments.push_back(Segment {
            arrives: departs + link.latency,
            payload,
        });
    }
}

/// One side of a [`Pair`]: its connection and what its application received.
#[derive(Debug)]
#[non_exhaustive]
pub struct Peer<S, C> {
    /// The connection under test.
    pub conn: Connection<S, C>,
    /// Messages taken from the connection so far, in order.
    pub inbox: Vec<Bytes>,
    /// Whether the application takes messages as they come. Set to `false`
    /// to model a slow reader: messages then stay in the connection and
    /// backpressure builds up toward the peer.
    pub reading: bool,
}

impl<S: Layer, C: Codec> Peer<S, C> {
    fn new(conn: Connection<S, C>) -> Self {
        Self {
            conn,
            inbox: Vec::new(),
            reading: true,
        }
    }

    /// All received messages concatenated (for byte-stream codecs).
    pub fn received(&self) -> Vec<u8> {
        self.inbox.concat()
    }

    /// Takes the messages received so far.
    pub fn take_inbox(&mut self) -> Vec<Bytes> {
        std::mem::take(&mut self.inbox)
    }

    /// Transmits what the connection has for `out`, within the window.
    fn transmit(&mut self, link: &Link, now: Instant, out: &mut Pipe) -> bool {
        let mut progressed = false;
        while out.queued < link.window {
            let Ok(Some(bytes)) = self.conn.poll_transmit(now) else {
                break;
            };
            let room = link.window - out.queued;
            let mut data = Bytes::copy_from_slice(&bytes[..bytes.len().min(room)]);
            self.conn.advance_transmit(data.len());
            while !data.is_empty() {
                let len = out.next_len(link, data.len());
                out.push(link, now, Payload::Data(data.split_to(len)));
            }
            progressed = true;
        }
        // A real driver closes the socket after an error or a finished close.
        let done = self.conn.is_write_closed() || self.conn.error().is_some();
        if done && !out.fin_sent {
            out.fin_sent = true;
            out.push(link, now, Payload::Fin);
            progressed = true;
        }
        progressed
    }

    /// Delivers arrived segments of `inp` as far as the connection takes them.
    fn deliver(&mut self, now: Instant, inp: &mut Pipe) -> bool {
        let mut progressed = false;
        while let Some(seg) = inp.segments.front_mut() {
            if seg.arrives > now {
                break;
            }
            if self.conn.error().is_some() {
                // A failed connection's socket is closed: what arrives is dropped.
                if let Payload::Data(data) = &seg.payload {
                    inp.queued -= data.len();
                }
                inp.segments.pop_front();
                progressed = true;
                continue;
            }
            match &mut seg.payload {
                Payload::Data(data) => {
                    if !self.conn.wants_read() {
                        break;
                    }
                    let Ok(n) = self.conn.handle_input(now, data) else {
                        // The connection failed: its side must now send
                        // what it owes and its FIN, so this is progress.
                        progressed = true;
                        break;
                    };
                    bytes::Buf::advance(data, n);
                    inp.queued -= n;
                    progressed |= n > 0;
                    if !data.is_empty() {
                        break;
                    }
                }
                Payload::Fin => {
                    let _ = self.conn.handle_input_eof(now);
                    progressed = true;
                }
            }
            inp.segments.pop_front();
        }
        progressed
    }

    /// Takes messages if the application is reading.
    fn collect(&mut self, now: Instant) -> bool {
        let mut progressed = false;
        while self.reading {
            match self.conn.poll_message(now) {
                Ok(Some(msg)) => {
                    self.inbox.push(msg);
                    progressed = true;
                }
                Ok(None) | Err(_) => break,
            }
        }
        progressed
    }

    fn run_timers(&mut self, now: Instant) -> bool {
        match self.conn.poll_timeout() {
            Some(at) if at <= now => {
                let _ = self.conn.handle_timeout(now);
                true
            }
            _ => false,
        }
    }

    /// The next instant something happens for this side on its own.
    fn next_event(&self, inp: &Pipe) -> Option<Instant> {
        let arrival = inp
            .segments
            .front()
            .filter(|s| self.conn.wants_read() || matches!(s.payload, Payload::Fin))
            .map(|s| s.arrives);
        [arrival, self.conn.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }
}

/// Which side of a [`Pair`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The first connection given to [`Pair::new`].
    Client,
    /// The second.
    Server,
}

/// Two connections back to back on a virtual clock.
#[derive(Debug)]
pub struct Pair<S1, C1, S2, C2> {
    /// The first side.
    pub client: Peer<S1, C1>,
    /// The second side.
    pub server: Peer<S2, C2>,
    link: Link,
    start: Instant,
    now: Instant,
    to_server: Pipe,
    to_client: Pipe,
}

/// More iterations than this without reaching idle is a livelock in the
/// code under test.
const MAX_STEPS: u64 = 50_000_000;

impl<S1: Layer, C1: Codec, S2: Layer, C2: Codec> Pair<S1, C1, S2, C2> {
    /// Joins `client` and `server` over `link`.
    pub fn new(client: Connection<S1, C1>, server: Connection<S2, C2>, link: Link) -> Self {
        let now = Instant::now();
        let seed = match link.chunking {
            Chunking::Random { seed, .. } => seed,
            _ => 1,
        };
        Self {
            client: Peer::new(client),
            server: Peer::new(server),
            link,
            start: now,
            now,
            to_server: Pipe::new(now, seed),
            to_client: Pipe::new(now, seed.rotate_left(32) ^ 0x9e37_79b9),
        }
    }

    /// The virtual clock.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Sends each of `msgs`, in order, from both ends (each end's
    /// [`Connection::send`]); [`drive`](Self::drive) carries them.
    pub fn send_both<M: AsRef<[u8]>>(&mut self, msgs: &[M]) -> Result<(), Error> {
        for msg in msgs {
            self.client.conn.send(msg.as_ref())?;
            self.server.conn.send(msg.as_ref())?;
        }
        Ok(())
    }

    /// Virtual time since the pair was made.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Sends `data` raw (not through the sender's stack) toward `to`, after
    /// whatever is already in flight: garbage, replayed or forged bytes.
    pub fn inject(&mut self, to: Side, data: &[u8]) {
        let pipe = match to {
            Side::Client => &mut self.to_client,
            Side::Server => &mut self.to_server,
        };
        pipe.push(
            &self.link,
            self.now,
            Payload::Data(Bytes::copy_from_slice(data)),
        );
    }

    /// Ends the transport from `from` toward its peer without ending the
    /// stack (a TCP FIN where no `close_notify` or end of frame was sent):
    /// the peer must see a truncation, or a clean end if its layers have none.
    pub fn end_transport(&mut self, from: Side) {
        let pipe = match from {
            Side::Client => &mut self.to_server,
            Side::Server => &mut self.to_client,
        };
        if !pipe.fin_sent {
            pipe.fin_sent = true;
            pipe.push(&self.link, self.now, Payload::Fin);
        }
    }

    /// Bytes in flight or waiting at the receiver, toward `to`.
    pub fn in_flight(&self, to: Side) -> usize {
        match to {
            Side::Client => self.to_client.queued,
            Side::Server => self.to_server.queued,
        }
    }

    fn step(&mut self) -> bool {
        let (link, now) = (&self.link, self.now);
        let mut progressed = self.client.transmit(link, now, &mut self.to_server);
        progressed |= self.server.transmit(link, now, &mut self.to_client);
        progressed |= self.client.deliver(now, &mut self.to_client);
        progressed |= self.server.deliver(now, &mut self.to_server);
        progressed |= self.client.run_timers(now);
        progressed |= self.server.run_timers(now);
        progressed |= self.client.collect(now);
        progressed |= self.server.collect(now);
        progressed
    }

    /// Runs until both sides are idle: nothing in flight that a side would
    /// take, nothing to transmit, no deadline pending. Jumps the clock to
    /// each next event.
    ///
    /// # Panics
    /// On a livelock in the code under test (no idle state after many
    /// million steps).
    pub fn drive(&mut self) {
        self.drive_until(None);
    }

    /// Like [`drive`](Self::drive), but stops at virtual time `now + span`
    /// even if events remain (a shaper with data to send, a long timeout).
    pub fn drive_for(&mut self, span: Duration) {
        self.drive_until(Some(self.now + span));
    }

    fn drive_until(&mut self, end: Option<Instant>) {
        for _ in 0..MAX_STEPS {
            if self.step() {
                continue;
            }
            let next = [
                self.client.next_event(&self.to_client),
                self.server.next_event(&self.to_server),
            ]
            .into_iter()
            .flatten()
            .min();
            match (next, end) {
                (Some(t), Some(end)) if t > end => {
                    self.now = end;
                    return;
                }
                (Some(t), _) => self.now = self.now.max(t),
                (None, Some(end)) => {
                    self.now = self.now.max(end);
                    return;
                }
                (None, None) => return,
            }
        }
        panic!("test harness: no idle state after {MAX_STEPS} steps (livelock?)");
    }

    /// The errors of both sides, client first.
    pub fn errors(&self) -> (Option<&Error>, Option<&Error>) {
        (self.client.conn.error(), self.server.conn.error())
    }
}

/// Copies `data` into a fresh buffer (test convenience).
pub fn buf(data: &[u8]) -> BytesMut {
    BytesMut::from(data)
}
