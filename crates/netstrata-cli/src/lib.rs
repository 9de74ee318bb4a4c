//! The `netstrata` tool's library: stack assembly from flags, the echo
//! server and the load generator, so benchmarks and tests drive exactly what
//! the binary runs.
#![forbid(unsafe_code)]

pub mod echo;
pub mod load;
pub mod stack;
