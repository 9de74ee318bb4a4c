//! Helpers of the end-to-end echo comparison: server processes and their
//! CPU and memory ([`process`]), the servers and certificates they use
//! ([`servers`]), interleaved load rounds ([`compare`]) and memory per
//! connection ([`memory`]), and the least a TLS echo can cost ([`floor`]).

pub(crate) mod compare;
pub(crate) mod floor;
pub(crate) mod memory;
pub(crate) mod process;
pub(crate) mod servers;

/// The median of `v` (the upper one of an even count); 0 when empty.
pub(crate) fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
