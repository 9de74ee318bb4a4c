//! The layers bench's flags, tables and JSON.

use serde_json::{Value, json};

use super::exchange::{Load, Sample};
use super::median;

/// The flags.
#[derive(Debug)]
pub(crate) struct Args {
    /// Measured seconds per variant per round.
    pub(crate) secs: f64,
    pub(crate) rounds: usize,
    only: Option<Vec<String>>,
    pub(crate) json: bool,
    pub(crate) list: bool,
    pub(crate) smoke: bool,
    pub(crate) client_buffer: bool,
    /// Runs only ours (0) or only the baseline (1), for a profiler.
    pub(crate) alone: Option<usize>,
}

impl Args {
    /// From the command line; unknown arguments (cargo's `--bench`) are
    /// ignored.
    pub(crate) fn parse() -> Self {
        let args: Vec<String> = std::env::args().collect();
        let value = |name: &str| {
            args.iter()
                .position(|a| a == name)
                .and_then(|i| args.get(i + 1))
                .cloned()
        };
        let num = |name: &str, default: f64| {
            value(name).map_or(default, |v| {
                v.parse()
                    .unwrap_or_else(|_| panic!("{name} takes a number, got {v:?}"))
            })
        };
        let flag = |name: &str| args.iter().any(|a| a == name);
        let smoke = flag("--smoke");
        Self {
            secs: if smoke { 0.05 } else { num("--secs", 2.0) },
            rounds: if smoke {
                1
            } else {
                (num("--rounds", 5.0) as usize).max(1)
            },
            only: value("--only").map(|v| v.split(',').map(|s| s.trim().to_string()).collect()),
            json: flag("--json"),
            list: flag("--list"),
            smoke,
            client_buffer: flag("--client-buffer"),
            alone: value("--alone").map(|v| match v.as_str() {
                "ours" => 0,
                "baseline" => 1,
                _ => panic!("--alone takes ours or baseline, got {v:?}"),
            }),
        }
    }

    /// Whether `--only` names the case `name` or its `group`.
    pub(crate) fn selects(&self, name: &str, group: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|only| only.iter().any(|o| o == name || o == group))
    }
}

/// Medians of one variant's rounds.
#[derive(Debug)]
struct Figures {
    name: String,
    cpu_us: f64,
    user_us: f64,
    system_us: f64,
    wall_us: f64,
    msgs_per_sec: f64,
    wire_per_msg: f64,
}

impl Figures {
    fn of(name: &str, samples: &[Sample]) -> Self {
        let per_msg = |f: &dyn Fn(&Sample) -> f64| {
            let mut v: Vec<f64> = samples.iter().map(|s| f(s) / s.messages as f64).collect();
            median(&mut v)
        };
        Self {
            name: name.to_string(),
            cpu_us: per_msg(&|s| (s.user + s.system) * 1e6),
            user_us: per_msg(&|s| s.user * 1e6),
            system_us: per_msg(&|s| s.system * 1e6),
            wall_us: per_msg(&|s| s.wall.as_secs_f64() * 1e6),
            msgs_per_sec: 1e6 / per_msg(&|s| s.wall.as_secs_f64() * 1e6),
            wire_per_msg: per_msg(&|s| s.wire as f64),
        }
    }
}

/// One case's outcome.
#[derive(Debug)]
struct Outcome {
    name: String,
    load: Load,
    goal: Option<f64>,
    variants: Vec<Figures>,
    /// Ours' median CPU per message over the baseline's.
    ratio: f64,
    /// The lowest and highest ratio of one round's two samples.
    round_ratios: (f64, f64),
}

impl Outcome {
    fn met(&self) -> Option<bool> {
        self.goal.map(|g| self.ratio <= g)
    }
}

/// Tables as cases finish, a summary and the JSON document at the end.
#[derive(Debug)]
pub(crate) struct Report {
    secs: f64,
    rounds: usize,
    client_buffer: bool,
    json: bool,
    load_before: String,
    outcomes: Vec<Outcome>,
}

impl Report {
    pub(crate) fn new(args: &Args) -> Self {
        let report = Self {
            secs: args.secs,
            rounds: args.rounds,
            client_buffer: args.client_buffer,
            json: args.json,
            load_before: load_average(),
            outcomes: Vec::new(),
        };
        report.say(format!(
            "layers: {} s x {} rounds per variant, medians{}; load average before: {}",
            args.secs,
            args.rounds,
            if args.client_buffer {
                "; the client writes through a BufWriter"
            } else {
                ""
            },
            report.load_before
        ));
        report
    }

    /// The tables go to stdout, or to stderr when stdout is for JSON.
    fn say(&self, line: String) {
        if self.json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }

    /// Prints a case's table: `samples[i]` are variant `names[i]`'s rounds,
    /// ours first, the baseline second.
    pub(crate) fn case(
        &mut self,
        name: &str,
        load: Load,
        goal: Option<f64>,
        names: &[&str],
        samples: &[Vec<Sample>],
    ) {
        let variants: Vec<Figures> = names
            .iter()
            .zip(samples)
            .map(|(n, s)| Figures::of(n, s))
            .collect();
        let cpu = |s: &Sample| (s.user + s.system) / s.messages as f64;
        let mut per_round: Vec<f64> = samples[0]
            .iter()
            .zip(&samples[1])
            .map(|(ours, base)| cpu(ours) / cpu(base))
            .collect();
        per_round.sort_by(f64::total_cmp);
        let outcome = Outcome {
            name: name.to_string(),
            load,
            goal,
            ratio: variants[0].cpu_us / variants[1].cpu_us,
            round_ratios: (per_round[0], per_round[per_round.len() - 1]),
            variants,
        };
        self.say(format!(
            "\n{name}: {} B, {} in flight",
            load.size, load.depth
        ));
        self.say(format!(
            "  {:<28} {:>10} {:>11} {:>8} {:>8} {:>12} {:>11}",
            "variant", "msgs/s", "CPU µs/msg", "user", "system", "wall µs/msg", "wire B/msg"
        ));
        for v in &outcome.variants {
            self.say(format!(
                "  {:<28} {:>10.0} {:>11.3} {:>8.3} {:>8.3} {:>12.3} {:>11.1}",
                v.name, v.msgs_per_sec, v.cpu_us, v.user_us, v.system_us, v.wall_us, v.wire_per_msg
            ));
        }
        self.say(format!(
            "  CPU ours/baseline {:.3} (rounds {:.3}..{:.3}), goal {}",
            outcome.ratio,
            outcome.round_ratios.0,
            outcome.round_ratios.1,
            goal_text(&outcome)
        ));
        self.outcomes.push(outcome);
    }

    /// One sample of one variant alone (`--alone`).
    pub(crate) fn alone(&self, case: &str, load: Load, name: &str, sample: Sample) {
        let f = Figures::of(name, &[sample]);
        self.say(format!(
            "{case}: {} B, {} in flight, {name} alone: {:.3} CPU µs/msg ({:.3} user, {:.3} system), \
             {:.0} msgs/s; {} messages measured after {} of warm-up",
            load.size,
            load.depth,
            f.cpu_us,
            f.user_us,
            f.system_us,
            f.msgs_per_sec,
            sample.messages,
            sample.warm_up_messages
        ));
    }

    /// The summary (and the JSON document with `--json`).
    pub(crate) fn finish(self) {
        let load_after = load_average();
        if self.outcomes.is_empty() {
            // --alone: no comparison to sum up.
            self.say(format!("load average after: {load_after}"));
            return;
        }
        self.say(format!(
            "\nsummary: CPU µs per echoed message, both ends (medians); load average after: {load_after}"
        ));
        self.say(format!(
            "  {:<18} {:>10} {:>10} {:>7} {:>15}  goal",
            "case", "ours", "baseline", "ratio", "rounds"
        ));
        for o in &self.outcomes {
            self.say(format!(
                "  {:<18} {:>10.3} {:>10.3} {:>7.3} {:>7.3}..{:<7.3} {}",
                o.name,
                o.variants[0].cpu_us,
                o.variants[1].cpu_us,
                o.ratio,
                o.round_ratios.0,
                o.round_ratios.1,
                goal_text(o)
            ));
        }
        if self.json {
            println!("{}", self.to_json(&load_after));
        }
    }

    fn to_json(&self, load_after: &str) -> Value {
        let cases: Vec<Value> = self
            .outcomes
            .iter()
            .map(|o| {
                let variants: Vec<Value> = o
                    .variants
                    .iter()
                    .map(|v| {
                        json!({
                            "name": v.name,
                            "cpu_us_per_msg": v.cpu_us,
                            "user_us_per_msg": v.user_us,
                            "system_us_per_msg": v.system_us,
                            "wall_us_per_msg": v.wall_us,
                            "msgs_per_sec": v.msgs_per_sec,
                            "wire_bytes_per_msg": v.wire_per_msg,
                        })
                    })
                    .collect();
                json!({
                    "case": o.name,
                    "size": o.load.size,
                    "in_flight": o.load.depth,
                    "variants": variants,
                    "cpu_ratio": o.ratio,
                    "cpu_ratio_rounds": [o.round_ratios.0, o.round_ratios.1],
                    "goal": o.goal,
                    "met": o.met(),
                })
            })
            .collect();
        json!({
            "client_buffer": self.client_buffer,
            "secs": self.secs,
            "rounds": self.rounds,
            "load_average_before": self.load_before,
            "load_average_after": load_after,
            "cases": cases,
        })
    }
}

/// "<= 0.95 met", "<= 1.00 MISSED", or "-" for a case without a goal.
fn goal_text(o: &Outcome) -> String {
    match (o.goal, o.met()) {
        (Some(g), Some(true)) => format!("<= {g:.2} met"),
        (Some(g), _) => format!("<= {g:.2} MISSED"),
        _ => "-".into(),
    }
}

/// The first three fields of `/proc/loadavg` (1, 5 and 15 minutes).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}
