//! What a load run reports: latency percentiles, the figures of each
//! interval, the final [`Report`] and the [`Progress`] seen during the run.

use std::time::Duration;

use hdrhistogram::Histogram;
use netstrata_shape::TrafficStats;

use crate::cpu::CpuTime;
use crate::report::StackTotals;

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Latency {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// 99.99th percentile.
    pub p9999: u64,
    /// The largest.
    pub max: u64,
}

impl Latency {
    /// The percentiles of `h` (all zero if it is empty).
    pub fn of(h: &Histogram<u64>) -> Self {
        Self {
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            p9999: h.value_at_quantile(0.9999),
            max: h.max(),
        }
    }
}

impl std::fmt::Display for Latency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {} µs, p90 {} µs, p99 {} µs, p99.9 {} µs, p99.99 {} µs, max {} µs",
            self.p50, self.p90, self.p99, self.p999, self.p9999, self.max
        )
    }
}

/// One interval of the measured window.
#[derive(Debug, Clone)]
pub struct Interval {
    /// Seconds from the start of the measured window to the interval's end.
    pub end_secs: f64,
    /// Echoes received in it.
    pub messages: u64,
    /// Its length in seconds.
    pub secs: f64,
    /// Its round trips.
    pub latency: Latency,
    /// Errors in it.
    pub errors: u64,
}

impl Interval {
    /// Echoes per second in the interval.
    pub fn msgs_per_sec(&self) -> f64 {
        self.messages as f64 / self.secs
    }
}

/// What a load run measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// Echoes received within the measured window.
    pub messages: u64,
    /// The measured window.
    pub elapsed: Duration,
    /// Frame size.
    pub size: usize,
    /// Round trips within the measured window (open loop: from each
    /// frame's intended send time).
    pub latency: Latency,
    /// Errors (failed connections, wrong echoes), with a few examples.
    pub errors: u64,
    /// Up to five error descriptions.
    pub error_samples: Vec<String>,
    /// Connections that were established (a failed connect is not).
    pub connections_opened: u64,
    /// Why the first connection that could not be established failed.
    pub connect_error: Option<String>,
    /// Wire bytes written by all connections, up to the end of the
    /// measured window (each connection's count taken at its first event
    /// after the window).
    pub wire_out: u64,
    /// Every connection's final figures, summed (drain included).
    pub totals: StackTotals,
    /// The shaper's global counters at the end of the window, if shaping.
    pub traffic: Option<TrafficStats>,
    /// Round trips in microseconds, for plots.
    pub histogram: Histogram<u64>,
    /// (seconds since the start, echoes so far), about ten a second.
    pub timeline: Vec<(f64, u64)>,
    /// The measured window interval by interval.
    pub intervals: Vec<Interval>,
    /// CPU time of the client loops within the measured window, if the
    /// system tells it (Linux `/proc`).
    pub client_cpu: Option<CpuTime>,
    /// `--mode connect`: the TCP connects alone (the exchanges, handshake
    /// and one round trip included, are [`latency`](Self::latency)).
    pub connect_latency: Option<Latency>,
}

impl Report {
    /// Echoed frames per second.
    pub fn msgs_per_sec(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64()
    }

    /// Payload megabytes per second, one way.
    pub fn mb_per_sec(&self) -> f64 {
        self.msgs_per_sec() * self.size as f64 / 1e6
    }

    /// Wire bytes per second written by all connections (what a shaper
    /// limits), over the measured window.
    pub fn wire_bytes_per_sec(&self) -> f64 {
        self.wire_out as f64 / self.elapsed.as_secs_f64()
    }

    /// The client loops' CPU time per echo in microseconds: is the client
    /// the limit? (A loop using a whole core is.)
    pub fn client_cpu_us_per_msg(&self) -> Option<f64> {
        let cpu = self.client_cpu?;
        (self.messages > 0).then(|| cpu.total().as_secs_f64() * 1e6 / self.messages as f64)
    }
}

/// Progress during a run.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Time since the start, warm-up included.
    pub elapsed: Duration,
    /// Echoes received so far in the measured window.
    pub messages: u64,
    /// The shaper's global counters now, if shaping.
    pub traffic: Option<TrafficStats>,
    /// An interval of the measured window that has just ended.
    pub interval: Option<Interval>,
}
