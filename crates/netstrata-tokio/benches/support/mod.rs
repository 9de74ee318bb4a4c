//! What the layers bench is made of: the transport, the text, the client
//! and echo server, the process's CPU time, and the report.

pub(crate) mod exchange;
pub(crate) mod pipe;
pub(crate) mod report;
pub(crate) mod text;

use std::ops::Sub;

/// CPU time of the whole process, seconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cpu {
    pub(crate) user: f64,
    pub(crate) system: f64,
}

impl Sub for Cpu {
    type Output = Self;

    fn sub(self, earlier: Self) -> Self {
        Self {
            user: self.user - earlier.user,
            system: self.system - earlier.system,
        }
    }
}

/// The process's CPU time so far (`getrusage(RUSAGE_SELF)`, microseconds).
pub(crate) fn cpu() -> Cpu {
    // SAFETY: `rusage` is plain integers, for which all zeroes is a valid
    // value, and getrusage writes only into the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, &mut usage), 0);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    Cpu {
        user: secs(usage.ru_utime),
        system: secs(usage.ru_stime),
    }
}

/// The median of `values` (sorted in place).
pub(crate) fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
