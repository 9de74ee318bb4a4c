//! What to do to one direction's bytes: the `--upstream` and `--downstream`
//! specs of `netstrata fault-proxy`, parsed into a [`FaultSpec`].

use std::fmt;
use std::ops::RangeInclusive;
use std::str::FromStr;
use std::time::Duration;

use crate::stack::parse_bytes;

/// How a direction ends early: after exactly `at` bytes have been forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// A FIN toward the receiver; the sender's further bytes are read and
    /// dropped, and the other direction keeps flowing (a half-close).
    Cut {
        /// Bytes forwarded before the FIN.
        at: u64,
    },
    /// An RST to both ends: the connection is gone both ways at once.
    Reset {
        /// Bytes forwarded before the RST.
        at: u64,
    },
}

impl Ending {
    /// The offset where the direction ends.
    pub fn at(&self) -> u64 {
        match *self {
            Self::Cut { at } | Self::Reset { at } => at,
        }
    }
}

/// A bit flipped in flight: the byte at `offset` is XORed with `mask`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flip {
    /// Offset of the byte in the direction's stream, from 0.
    pub offset: u64,
    /// The bits flipped (one bit: `1 << bit`).
    pub mask: u8,
}

/// Forwarding stops for `pause` once `offset` bytes have gone through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stall {
    /// Bytes forwarded before the stall.
    pub offset: u64,
    /// How long nothing is forwarded (nor read: the sender feels backpressure).
    pub pause: Duration,
}

/// The faults of one direction. The empty spec forwards every byte as it
/// is read.
///
/// Text form, comma-separated, each at most once except `stall` and `flip`:
///
/// | item | fault |
/// |---|---|
/// | `rechunk=N`, `rechunk=A..B` | write in pieces of A..=B bytes (1..=N), sizes drawn from the seed |
/// | `delay=D` | hold each piece for D (`5ms`, `1s`, `250us`) before writing it |
/// | `stall=D@N` | forward nothing for D once N bytes have gone through |
/// | `cut@N` | FIN after exactly N bytes |
/// | `reset@N` | RST both ways after exactly N bytes |
/// | `flip@N`, `flip@N:B` | flip bit B (default 0) of the byte at offset N |
/// | `rate=R` | at most R bytes a second (`64KB`, `1MiB`) |
///
/// ```
/// use netstrata_cli::fault::FaultSpec;
///
/// let spec: FaultSpec = "rechunk=1..64,cut@4096".parse().unwrap();
/// assert_eq!(spec.rechunk, Some(1..=64));
/// assert_eq!(spec.to_string(), "rechunk=1..64,cut@4096");
/// assert!("cut@10,reset@20".parse::<FaultSpec>().is_err());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FaultSpec {
    /// Piece sizes, inclusive, drawn from the seeded generator.
    pub rechunk: Option<RangeInclusive<usize>>,
    /// Hold of each piece.
    pub delay: Option<Duration>,
    /// Stalls, by offset.
    pub stalls: Vec<Stall>,
    /// Flipped bits, by offset.
    pub flips: Vec<Flip>,
    /// An early end.
    pub ending: Option<Ending>,
    /// Bandwidth cap, bytes a second.
    pub rate: Option<u64>,
}

impl FaultSpec {
    /// No fault: every byte forwarded as it is read.
    pub fn new() -> Self {
        Self::default()
    }

    /// Pieces of `sizes` bytes.
    pub fn with_rechunk(mut self, sizes: RangeInclusive<usize>) -> Self {
        self.rechunk = Some(sizes);
        self
    }

    /// Each piece held for `delay`.
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// Nothing forwarded for `pause` after `offset` bytes.
    pub fn with_stall(mut self, offset: u64, pause: Duration) -> Self {
        self.stalls.push(Stall { offset, pause });
        self.stalls.sort_by_key(|s| s.offset);
        self
    }

    /// Bit `bit` (0..=7) of the byte at `offset` flipped.
    pub fn with_flip(mut self, offset: u64, bit: u8) -> Self {
        self.flips.push(Flip {
            offset,
            mask: 1 << (bit & 7),
        });
        self.flips.sort_by_key(|f| f.offset);
        self
    }

    /// A FIN after `at` bytes.
    pub fn with_cut(mut self, at: u64) -> Self {
        self.ending = Some(Ending::Cut { at });
        self
    }

    /// An RST after `at` bytes.
    pub fn with_reset(mut self, at: u64) -> Self {
        self.ending = Some(Ending::Reset { at });
        self
    }

    /// At most `bytes_per_sec`.
    pub fn with_rate(mut self, bytes_per_sec: u64) -> Self {
        self.rate = Some(bytes_per_sec.max(1));
        self
    }

    /// Whether the spec changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl FromStr for FaultSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut spec = Self::new();
        for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            parse_item(&mut spec, item).map_err(|e| format!("{item:?}: {e}"))?;
        }
        Ok(spec)
    }
}

fn parse_item(spec: &mut FaultSpec, item: &str) -> Result<(), String> {
    let once = |taken: bool| match taken {
        true => Err("given twice".to_string()),
        false => Ok(()),
    };
    if item == "none" {
        return Ok(());
    }
    if let Some(sizes) = item.strip_prefix("rechunk=") {
        once(spec.rechunk.is_some())?;
        let (low, high) = match sizes.split_once("..") {
            Some((low, high)) => (parse_count(low)?, parse_count(high)?),
            None => (1, parse_count(sizes)?),
        };
        if low == 0 || low > high {
            return Err("sizes must be 1 <= A <= B".into());
        }
        spec.rechunk = Some(low..=high);
    } else if let Some(delay) = item.strip_prefix("delay=") {
        once(spec.delay.is_some())?;
        spec.delay = Some(parse_duration(delay)?);
    } else if let Some(stall) = item.strip_prefix("stall=") {
        let (pause, offset) = stall.split_once('@').ok_or("expected stall=D@N")?;
        *spec = std::mem::take(spec).with_stall(parse_offset(offset)?, parse_duration(pause)?);
    } else if let Some(at) = item.strip_prefix("cut@") {
        once(spec.ending.is_some())?;
        spec.ending = Some(Ending::Cut {
            at: parse_offset(at)?,
        });
    } else if let Some(at) = item.strip_prefix("reset@") {
        once(spec.ending.is_some())?;
        spec.ending = Some(Ending::Reset {
            at: parse_offset(at)?,
        });
    } else if let Some(flip) = item.strip_prefix("flip@") {
        let (offset, bit) = match flip.split_once(':') {
            Some((offset, bit)) => (offset, bit.parse::<u8>().map_err(|_| "bad bit")?),
            None => (flip, 0),
        };
        if bit > 7 {
            return Err("a bit is 0..=7".into());
        }
        *spec = std::mem::take(spec).with_flip(parse_offset(offset)?, bit);
    } else if let Some(rate) = item.strip_prefix("rate=") {
        once(spec.rate.is_some())?;
        spec.rate = Some(parse_bytes(rate)?);
    } else {
        return Err("unknown fault (rechunk, delay, stall, cut, reset, flip, rate)".into());
    }
    Ok(())
}

fn parse_count(text: &str) -> Result<usize, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("not a count: {text:?}"))
}

fn parse_offset(text: &str) -> Result<u64, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("not a byte offset: {text:?}"))
}

/// `250us`, `5ms`, `1.5s`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (number, scale) = if let Some(n) = t.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = t.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else {
        return Err(format!("a duration needs a unit (us, ms, s): {text:?}"));
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("not a duration: {text:?}"))?;
    if !(0.0..=86_400.0).contains(&value) {
        return Err(format!("out of range: {text:?}"));
    }
    Ok(Duration::from_secs_f64(value * scale))
}

impl fmt::Display for FaultSpec {
    /// The text form, which parses back to the same spec.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut items = Vec::new();
        if let Some(sizes) = &self.rechunk {
            items.push(format!("rechunk={}..{}", sizes.start(), sizes.end()));
        }
        if let Some(delay) = self.delay {
            items.push(format!("delay={}us", delay.as_micros()));
        }
        for stall in &self.stalls {
            items.push(format!(
                "stall={}us@{}",
                stall.pause.as_micros(),
                stall.offset
            ));
        }
        for flip in &self.flips {
            items.push(format!(
                "flip@{}:{}",
                flip.offset,
                flip.mask.trailing_zeros()
            ));
        }
        match self.ending {
            Some(Ending::Cut { at }) => items.push(format!("cut@{at}")),
            Some(Ending::Reset { at }) => items.push(format!("reset@{at}")),
            None => {}
        }
        if let Some(rate) = self.rate {
            items.push(format!("rate={rate}"));
        }
        match items.is_empty() {
            true => f.write_str("none"),
            false => f.write_str(&items.join(",")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_parses() {
        let spec: FaultSpec = "rechunk=1..64, delay=5ms, stall=1.5s@100, stall=250us@10, \
                               flip@7, flip@3:6, reset@4096, rate=64KiB"
            .parse()
            .unwrap();
        assert_eq!(spec.rechunk, Some(1..=64));
        assert_eq!(spec.delay, Some(Duration::from_millis(5)));
        assert_eq!(
            spec.stalls,
            [
                Stall {
                    offset: 10,
                    pause: Duration::from_micros(250)
                },
                Stall {
                    offset: 100,
                    pause: Duration::from_millis(1500)
                },
            ]
        );
        assert_eq!(
            spec.flips,
            [
                Flip {
                    offset: 3,
                    mask: 0x40
                },
                Flip { offset: 7, mask: 1 }
            ]
        );
        assert_eq!(spec.ending, Some(Ending::Reset { at: 4096 }));
        assert_eq!(spec.rate, Some(65_536));
    }

    #[test]
    fn a_single_size_means_one_up_to_it() {
        let spec: FaultSpec = "rechunk=1".parse().unwrap();
        assert_eq!(spec.rechunk, Some(1..=1));
        let spec: FaultSpec = "rechunk=16".parse().unwrap();
        assert_eq!(spec.rechunk, Some(1..=16));
    }

    #[test]
    fn empty_and_none_are_no_fault() {
        for text in ["", "none", " , "] {
            let spec: FaultSpec = text.parse().unwrap();
            assert!(spec.is_empty(), "{text:?}");
        }
        assert_eq!(FaultSpec::new().to_string(), "none");
    }

    #[test]
    fn the_text_form_parses_back() {
        let text = "rechunk=2..9,delay=1000us,stall=20000us@5,flip@8:3,cut@77,rate=1000";
        let spec: FaultSpec = text.parse().unwrap();
        assert_eq!(spec.to_string(), text);
        assert_eq!(spec.to_string().parse::<FaultSpec>().unwrap(), spec);
    }

    #[test]
    fn mistakes_are_named() {
        for (text, says) in [
            ("cut@1,reset@2", "given twice"),
            ("rechunk=0", "1 <= A <= B"),
            ("rechunk=9..3", "1 <= A <= B"),
            ("delay=5", "needs a unit"),
            ("stall=5ms", "stall=D@N"),
            ("flip@3:8", "0..=7"),
            ("cut@-1", "byte offset"),
            ("rate=fast", "not a number"),
            ("jitter=5ms", "unknown fault"),
        ] {
            let err = text.parse::<FaultSpec>().unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
    }
}
