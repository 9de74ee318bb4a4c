//! `netstrata bench --json`: one line, shaped by serde (docs/tool.md lists
//! the fields).

use serde::Serialize;

use super::{Interval, Latency, LoadOptions, Mode, Payload, Report};

/// The version of [`Report::json`]'s shape: raised when a field changes
/// meaning or goes away (new fields do not raise it).
pub const JSON_SCHEMA_VERSION: u32 = 1;

impl Report {
    /// One JSON line: [`JSON_SCHEMA_VERSION`], the run's configuration
    /// (`stack` is its description) and every figure; docs/tool.md lists
    /// the fields.
    pub fn json(&self, opts: &LoadOptions, stack: &str) -> String {
        let side = |d: &netstrata_shape::Traffic| JsonTraffic {
            total_bytes: d.total_bytes,
            bytes_per_sec: d.throughput,
            peak_bytes_per_sec: d.peak_throughput,
        };
        let line = JsonReport {
            schema_version: JSON_SCHEMA_VERSION,
            config: JsonConfig {
                addr: opts.addr.to_string(),
                conns: opts.conns,
                depth: opts.msg_rate.is_none().then_some(opts.depth),
                size: opts.size,
                secs: opts.duration.as_secs_f64(),
                payload: match opts.payload {
                    Payload::Text => "text",
                    Payload::Random => "random",
                },
                stack,
                threads: opts.threads,
                pace: match opts.msg_rate {
                    None => "closed",
                    Some(_) => "open",
                },
                mode: match opts.mode {
                    Mode::Persistent => "persistent",
                    Mode::Connect => "connect",
                },
                msg_rate: opts.msg_rate,
                warmup_secs: opts.warmup.as_secs_f64(),
                interval_secs: opts.interval.as_secs_f64(),
            },
            stack,
            messages: self.messages,
            secs: self.elapsed.as_secs_f64(),
            size: self.size,
            msgs_per_sec: self.msgs_per_sec(),
            mb_per_sec: self.mb_per_sec(),
            latency: JsonLatency::from(self.latency),
            p50_us: self.latency.p50,
            p99_us: self.latency.p99,
            p999_us: self.latency.p999,
            max_us: self.latency.max,
            client_cpu_us_per_msg: self.client_cpu_us_per_msg(),
            connect_latency: self.connect_latency.map(JsonLatency::from),
            wire_bytes_per_sec: self.wire_bytes_per_sec(),
            traffic: self.traffic.map(|t| JsonTrafficBoth {
                out: side(&t.outbound),
                r#in: side(&t.inbound),
            }),
            intervals: self.intervals.iter().map(JsonInterval::from).collect(),
            errors: self.errors,
            error_samples: &self.error_samples,
        };
        serde_json::to_string(&line).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

#[derive(Serialize)]
struct JsonReport<'a> {
    schema_version: u32,
    config: JsonConfig<'a>,
    stack: &'a str,
    messages: u64,
    secs: f64,
    size: usize,
    msgs_per_sec: f64,
    mb_per_sec: f64,
    latency: JsonLatency,
    // The four of schema version 1's first form, kept at the top level.
    p50_us: u64,
    p99_us: u64,
    p999_us: u64,
    max_us: u64,
    client_cpu_us_per_msg: Option<f64>,
    /// `--mode connect`: the TCP connects alone.
    connect_latency: Option<JsonLatency>,
    wire_bytes_per_sec: f64,
    traffic: Option<JsonTrafficBoth>,
    intervals: Vec<JsonInterval>,
    errors: u64,
    error_samples: &'a [String],
}

#[derive(Serialize)]
struct JsonConfig<'a> {
    addr: String,
    conns: usize,
    /// Closed loop only.
    depth: Option<usize>,
    size: usize,
    secs: f64,
    payload: &'static str,
    stack: &'a str,
    threads: usize,
    pace: &'static str,
    mode: &'static str,
    msg_rate: Option<f64>,
    warmup_secs: f64,
    interval_secs: f64,
}

#[derive(Serialize)]
struct JsonLatency {
    p50_us: u64,
    p90_us: u64,
    p99_us: u64,
    p999_us: u64,
    p9999_us: u64,
    max_us: u64,
}

impl From<Latency> for JsonLatency {
    fn from(l: Latency) -> Self {
        Self {
            p50_us: l.p50,
            p90_us: l.p90,
            p99_us: l.p99,
            p999_us: l.p999,
            p9999_us: l.p9999,
            max_us: l.max,
        }
    }
}

#[derive(Serialize)]
struct JsonInterval {
    end_secs: f64,
    msgs_per_sec: f64,
    latency: JsonLatency,
    errors: u64,
}

impl From<&Interval> for JsonInterval {
    fn from(i: &Interval) -> Self {
        Self {
            end_secs: i.end_secs,
            msgs_per_sec: i.msgs_per_sec(),
            latency: i.latency.into(),
            errors: i.errors,
        }
    }
}

#[derive(Serialize)]
struct JsonTrafficBoth {
    out: JsonTraffic,
    r#in: JsonTraffic,
}

#[derive(Serialize)]
struct JsonTraffic {
    total_bytes: u64,
    bytes_per_sec: u64,
    peak_bytes_per_sec: u64,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use hdrhistogram::Histogram;

    use super::super::{Latency, LoadOptions, Report};
    use crate::stack::StackOptions;

    fn report(error_samples: Vec<String>) -> Report {
        Report {
            messages: 0,
            elapsed: Duration::from_secs(1),
            size: 64,
            latency: Latency::default(),
            errors: error_samples.len() as u64,
            error_samples,
            connections_opened: 1,
            connect_error: None,
            wire_out: 0,
            totals: Default::default(),
            traffic: None,
            histogram: Histogram::new(3).unwrap(),
            timeline: Vec::new(),
            intervals: Vec::new(),
            client_cpu: None,
            connect_latency: None,
        }
    }

    #[test]
    fn control_characters_and_quotes_in_strings_stay_inside_their_json_strings() {
        // An error's text can carry what a peer sent; the stack's
        // description what a user typed.
        let nasty = "a\u{0}b\u{1b}[31m\"quoted\"\\\n\r\tend";
        let opts = LoadOptions::new("127.0.0.1:7000".parse().unwrap(), StackOptions::default());
        let line = report(vec![nasty.to_owned()]).json(&opts, nasty);
        assert!(!line.contains('\n'), "one line: {line}");
        assert!(
            !line.chars().any(|c| c.is_control()),
            "no raw control character: {line:?}"
        );
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["error_samples"][0], nasty);
        assert_eq!(parsed["stack"], nasty);
        assert_eq!(parsed["config"]["stack"], nasty);
    }
}
