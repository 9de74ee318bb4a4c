//! netstrata-shape: sans-IO traffic shaping and traffic counters.
//!
//! A [`Shaper`] is a [`netstrata_core::Layer`] that holds each direction of
//! a connection to a token bucket ([`Limit`]: a rate in bytes per second
//! and a burst in bytes), and optionally to a fair share of a
//! [`GlobalLimiter`] shared by many connections across threads. It counts
//! what passes: totals, current and peak throughput, per connection
//! ([`ShaperHandle::stats`]) and globally ([`GlobalLimiter::stats`]). A
//! [`DatagramShaper`] applies the same buckets to datagram sends.
//!
//! ```text
//!   app ─▶ frame ─▶ zstd ─▶ tls ─▶ ┌─ Shaper ───────────────────────┐ ─▶ socket
//!                                 │ outbound: own bucket ─┐        │
//!                                 │                       ├─ grant │   bytes beyond the
//!                                 │ global queue (shared) ┘        │   budget stay in the
//!   app ◀─ frame ◀─ zstd ◀─ tls ◀─ │ inbound:  own bucket + queue   │ ◀─ caller's buffers;
//!                                 └────────────────────────────────┘   reading pauses
//!         ShaperHandle (any thread): set_limit, stats      GlobalLimiter: Arc, atomics
//! ```
//!
//! It is sans-IO: it reads no clock and touches no socket. Time comes in as
//! `now`; when a direction is out of budget the layer names the exact
//! instant it returns through [`poll_timeout`](netstrata_core::Layer::poll_timeout)
//! and passes more once told through
//! [`handle_timeout`](netstrata_core::Layer::handle_timeout). It does no
//! buffering of its own: writes beyond the budget stay in the caller's
//! (bounded) outbound buffer, and reading is *paused* rather than buffered:
//! the layer consumes only what the budget allows and reports
//! [`wants_read`](netstrata_core::Layer::wants_read) `false`, so the
//! driver stops reading the socket and the peer feels TCP backpressure.
//! It does not integrate with an event loop or a CLI itself (see
//! `netstrata-reactor`).
//!
//! # Accuracy
//!
//! Buckets count whole bytes and nanoseconds in integers: `rate × elapsed`
//! is exact in nano-bytes, so nothing drifts however the calls fall, and a
//! direction never passes more than `burst + rate × t` bytes in any
//! interval `t`. Each wake-up instant is computed exactly for the bytes
//! needed, rounded up to the nanosecond.
//!
//! **Grants.** A saturated direction does not wake per byte: it waits
//! until its bucket holds a *grant*, `min(pending, grant)` bytes, where a
//! grant is [`GRANT_INTERVAL`] (5 ms) of the rate, at least [`MIN_GRANT`]
//! (16) bytes, at most the burst ([`Limit::grant`]). So a direction wakes at
//! most about 200 times a second, and any window of a few seconds is
//! within a fraction of a percent of the rate (the tests hold every rate
//! from 1 KiB/s to 1 GiB/s to 2% over 5 s, and check every delivery against
//! the burst). A new bucket starts full; the default burst
//! ([`Limit::per_second`]) is 50 ms of the rate.
//!
//! # Fairness
//!
//! A global limiter is a token bucket per direction kept in atomics, and a
//! first-come-first-served queue of *tickets*: a connection reserves its
//! next grant with one `fetch_add`, computes the exact instant the bucket
//! covers it, and asks to be woken then. Each connection holds at most one
//! ticket per direction, so `n` saturated connections are served in
//! rounds, one grant each per round, and each gets `rate / n`; an idle
//! connection takes no ticket and its share goes to the others at once; a
//! connection held below its share by its own limit leaves the rest to the
//! others. None can be starved: a ticket is covered after those ahead of it,
//! at an instant fixed when it was taken. With `n` connections waiting, a
//! global grant is `min(5 ms, 50 ms / n)` of the global rate, so every
//! waiting connection is served at least every [`FAIR_ROUND`] (50 ms). A
//! connection is held to both its own limit and the global one: it waits
//! for its own bucket first, then takes a ticket. A change of a global
//! limit starts the queue afresh: every waiting connection takes a grant
//! sized for the new limit at once. The hot path takes no lock. Reading takes a ticket only for bytes that have arrived, so an
//! idle connection never holds global budget (it may read one chunk into
//! the caller's read buffer before it finds the global budget spent).
//!
//! # Example
//!
//! ```
//! use std::time::{Duration, Instant};
//! use bytes::BytesMut;
//! use netstrata_core::{Flush, Layer, Outbound};
//! use netstrata_shape::{Direction, GlobalLimiter, Limit, ShapeConfig, Shaper};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // 1 MB/s for this connection (burst 50 kB), 10 MB/s for all connections together.
//! let global = GlobalLimiter::new(ShapeConfig::new().with_outbound(Limit::per_second(10_000_000)?));
//! let mut shaper = Shaper::new(ShapeConfig::new().with_outbound(Limit::per_second(1_000_000)?))
//!     .with_global(&global);
//!
//! // Writes the bytes of `input` that the budget allows to `wire`.
//! fn write(shaper: &mut Shaper, now: Instant, input: &mut BytesMut, wire: &mut BytesMut)
//!     -> netstrata_core::Result<()> {
//!     let io = Outbound::new(now, input, Flush::Batch, wire);
//!     shaper.handle_outbound(io)
//! }
//! let now = Instant::now();
//! let (mut input, mut wire) = (BytesMut::from(&[7u8; 100_000][..]), BytesMut::new());
//! write(&mut shaper, now, &mut input, &mut wire)?;
//! assert_eq!(wire.len(), 50_000); // the burst; the rest waits in `input`
//! // The next grant (5 ms of 1 MB/s) is due in exactly 5 ms.
//! let wake = shaper.poll_timeout().unwrap();
//! assert_eq!(wake - now, Duration::from_millis(5));
//! shaper.handle_timeout(wake, &mut BytesMut::new())?;
//! write(&mut shaper, wake, &mut input, &mut wire)?;
//! assert_eq!(wire.len(), 55_000);
//!
//! // Limits change at run time, from any thread.
//! let handle = shaper.handle();
//! handle.set_limit(Direction::Outbound, Some(Limit::per_second(2_000_000)?));
//! assert_eq!(handle.stats(wake).outbound.total_bytes, 55_000);
//! assert_eq!(global.stats(wake).outbound.total_bytes, 55_000);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod bucket;
mod datagram;
mod epoch;
mod error;
mod global;
mod limit;
mod meter;
mod shaper;
mod sync;
mod throttle;

pub use datagram::{DatagramPolicy, DatagramShaper, Verdict};
pub use error::ShapeError;
pub use global::GlobalLimiter;
pub use limit::{Direction, FAIR_ROUND, GRANT_INTERVAL, Limit, MIN_GRANT, ShapeConfig};
pub use meter::{Traffic, TrafficStats};
pub use shaper::{Shaper, ShaperHandle};

/// The layer's name in errors and statistics.
pub(crate) const NAME: &str = "shape";

// Shapers move with their connections; the global limiter and the handles
// are shared across threads (limits changed and stats read from anywhere).
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Shaper>();
    send_sync::<ShaperHandle>();
    send_sync::<GlobalLimiter>();
    send_sync::<DatagramShaper>();
    send_sync::<Limit>();
    send_sync::<ShapeConfig>();
    send_sync::<TrafficStats>();
    send_sync::<ShapeError>();
};

/// Runs the crate README's example as a doc test.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
