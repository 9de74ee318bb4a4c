//! CPU time as Linux accounts it, from `/proc`: what the load tool reports
//! of its own threads and the benchmarks of a server process.

use std::time::Duration;

/// CPU time split as the kernel accounts it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuTime {
    /// In the task's own code and its libraries.
    pub user: Duration,
    /// In the kernel on its behalf: system calls and the TCP work they do
    /// (on loopback, a send also runs the receiving side's protocol work).
    pub system: Duration,
}

impl CpuTime {
    /// User and system time together.
    pub fn total(&self) -> Duration {
        self.user + self.system
    }

    /// The CPU time in a `/proc/.../stat` line (fields 14 and 15, in clock
    /// ticks of 10 ms: Linux's `USER_HZ` is 100 on every architecture it
    /// exports to user space), or `None` if the line is not one.
    pub fn from_stat(stat: &str) -> Option<Self> {
        // The command name may hold spaces and parentheses: fields start
        // after its last ')'.
        let rest = stat.get(stat.rfind(')')? + 2..)?;
        let mut fields = rest.split(' ').skip(11);
        let mut ticks = || -> Option<Duration> {
            let n: u64 = fields.next()?.parse().ok()?;
            Some(Duration::from_millis(n * 10))
        };
        Some(Self {
            user: ticks()?,
            system: ticks()?,
        })
    }

    /// The calling thread's CPU time so far.
    pub fn this_thread() -> Option<Self> {
        Self::from_stat(&std::fs::read_to_string("/proc/thread-self/stat").ok()?)
    }

    /// Process `pid`'s CPU time so far, its threads' included.
    pub fn process(pid: u32) -> Option<Self> {
        Self::from_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
    }
}

impl std::ops::Sub for CpuTime {
    type Output = Self;

    fn sub(self, earlier: Self) -> Self {
        Self {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }
}

impl std::ops::Add for CpuTime {
    type Output = Self;

    fn add(self, other: Self) -> Self {
        Self {
            user: self.user + other.user,
            system: self.system + other.system,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_after_a_command_name_with_spaces_and_parentheses() {
        let stat = "42 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 250 31 0 0 20 0 1 0";
        let cpu = CpuTime::from_stat(stat).unwrap();
        assert_eq!(cpu.user, Duration::from_millis(2_500));
        assert_eq!(cpu.system, Duration::from_millis(310));
        assert_eq!(CpuTime::from_stat("garbage"), None);
    }

    #[test]
    fn a_thread_has_used_no_more_than_its_process() {
        let thread = CpuTime::this_thread().expect("/proc/thread-self/stat");
        let process = CpuTime::process(std::process::id()).expect("/proc/PID/stat");
        assert!(
            thread.total() <= process.total(),
            "{thread:?} > {process:?}"
        );
    }
}
