//! The `netstrata` tool's library: stack assembly from flags, the echo
//! server, the load generator, the demo, the tunnel, reports and charts, so
//! benchmarks and tests drive exactly what the binary runs.
#![forbid(unsafe_code)]

pub mod demo;
pub mod echo;
pub mod load;
pub mod plot;
pub mod report;
pub mod stack;
pub mod tunnel;
