//! Shaping datagrams (UDP sends) with the same buckets.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::global::GlobalLimiter;
use crate::limit::{Direction, ShapeConfig};
use crate::shaper::{ShaperHandle, ShaperShared, call_limits, fresh_limits};
use crate::throttle::{Deadline, Fate, Throttle};

/// What a [`DatagramShaper`] does with a datagram the budget cannot pass now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DatagramPolicy {
    /// Drop it: only datagrams that fit now are sent (policing). Under a
    /// global limit it never queues, so it never delays anyone.
    Drop,
    /// Hold it and send it when the budget allows, however long that takes.
    Wait,
    /// Hold it at most this long from when it was first offered; drop it
    /// at once if it would not fit by then.
    WaitAtMost(Duration),
}

/// The answer for one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send it now. Its bytes have been spent and counted.
    Send,
    /// Keep it and offer it again (same length) at this instant. Under a
    /// global limit its place in the queue is kept until then; call
    /// [`DatagramShaper::cancel`] if you give it up.
    WaitUntil(Instant),
    /// Drop it: it does not fit within the policy, or it is larger than a
    /// burst and never could.
    Drop,
}

/// Shapes datagram sends with a token bucket and an optional share of a
/// [`GlobalLimiter`]: for a datagram of `n` bytes at `now`, answers send
/// now, wait until an instant, or drop. A datagram passes whole or not at
/// all, so one larger than a burst is always dropped.
///
/// One per socket or per peer. Uses the outbound limit of its
/// [`ShapeConfig`]; its [`handle`](Self::handle) changes the limit and
/// reads the outbound figures, like a [`Shaper`](crate::Shaper)'s.
///
/// ```
/// use std::time::{Duration, Instant};
/// use netstrata_shape::{DatagramPolicy, DatagramShaper, Limit, ShapeConfig, Verdict};
///
/// # fn main() -> Result<(), netstrata_shape::ShapeError> {
/// let config = ShapeConfig::new().with_outbound(Limit::new(10_000, 1500)?);
/// let mut udp = DatagramShaper::new(config, DatagramPolicy::Wait);
/// let now = Instant::now();
/// assert_eq!(udp.poll_send(now, 1200), Verdict::Send);
/// // 300 bytes left; 1200 more take 90 ms at 10 kB/s.
/// let later = now + Duration::from_millis(90);
/// assert_eq!(udp.poll_send(now, 1200), Verdict::WaitUntil(later));
/// assert_eq!(udp.poll_send(later, 1200), Verdict::Send);
/// assert_eq!(udp.poll_send(later, 1501), Verdict::Drop);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct DatagramShaper {
    conn: Arc<ShaperShared>,
    global: Option<GlobalLimiter>,
    throttle: Throttle,
    policy: DatagramPolicy,
    /// The datagram told to wait: its length and when it was first offered.
    pending: Option<(u64, Instant)>,
    dropped: u64,
}

impl DatagramShaper {
    /// A datagram shaper with `config`'s outbound limit and `policy`.
    pub fn new(config: ShapeConfig, policy: DatagramPolicy) -> Self {
        Self {
            conn: ShaperShared::new(&config),
            global: None,
            throttle: Throttle::default(),
            policy,
            pending: None,
            dropped: 0,
        }
    }

    /// Also holds the sends to their fair share of `global`'s outbound limit.
    pub fn with_global(mut self, global: &GlobalLimiter) -> Self {
        self.global = Some(global.clone());
        self
    }

    /// A handle to change the limit and read the figures.
    pub fn handle(&self) -> ShaperHandle {
        ShaperHandle::new(self.conn.clone())
    }

    /// The policy for datagrams that do not fit now.
    pub fn policy(&self) -> DatagramPolicy {
        self.policy
    }

    /// How many datagrams were answered [`Verdict::Drop`].
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Decides on a datagram of `len` bytes at `now`. After
    /// [`Verdict::WaitUntil`], offer the same datagram again at that
    /// instant (a datagram of another length is taken as a new one and the
    /// old one's place is given up).
    #[must_use = "the verdict says whether to send, wait or drop the datagram"]
    pub fn poll_send(&mut self, now: Instant, len: usize) -> Verdict {
        let len = len as u64;
        if len == 0 {
            return Verdict::Send;
        }
        let first = match self.pending {
            Some((pending, first)) if pending == len => first,
            _ => now,
        };
        let deadline = match self.policy {
            DatagramPolicy::Drop => Deadline::Now,
            DatagramPolicy::Wait => Deadline::Never,
            DatagramPolicy::WaitAtMost(d) => {
                first.checked_add(d).map_or(Deadline::Never, Deadline::At)
            }
        };
        let b = call_limits(
            &self.conn,
            self.global.as_ref(),
            Direction::Outbound,
            &mut self.throttle,
        );
        match self.throttle.datagram(now, len, deadline, &b) {
            Fate::Send => {
                self.pending = None;
                let global = self.global.as_ref();
                self.conn
                    .record(Direction::Outbound, global, &mut self.throttle, now, len);
                Verdict::Send
            }
            Fate::WaitUntil(at) => {
                self.pending = Some((len, first));
                Verdict::WaitUntil(at)
            }
            Fate::Drop => {
                self.pending = None;
                self.dropped += 1;
                Verdict::Drop
            }
        }
    }

    /// Gives up the datagram told to wait. Its ticket in a global queue
    /// keeps its place: those bytes go unused, once.
    pub fn cancel(&mut self) {
        self.pending = None;
        let b = fresh_limits(&self.conn, self.global.as_ref(), Direction::Outbound);
        self.throttle.abandon(&b);
    }
}

impl Drop for DatagramShaper {
    fn drop(&mut self) {
        self.cancel();
    }
}
