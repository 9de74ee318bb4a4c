//! The `netstrata` tool's library: stack assembly from flags, the echo
//! server, the load generator, the demo, the tunnel, the fault proxy
//! ([`fault`]), reports and charts, so benchmarks and tests drive exactly
//! what the binary runs.
//!
//! ```text
//!   flags ─▶ StackOptions ─▶ Connection<DynStack, LengthDelimited>   (frames, zstd, tls, shape)
//!                                │
//!            echo::serve ────────┼─▶ netstrata-reactor Server, one Echo handler per connection
//!            load (bench) ───────┴─▶ one event loop of clients: send, check every echoed byte,
//!                                    HDR histogram of round trips, JSON or table report
//! ```
//!
//! It is not a general library: the types serve the tool's subcommands
//! (their flags are in `netstrata --help`), and each connection always uses
//! the default wire profile's framing. For stacks of your own, use the
//! layer crates directly (the facade `netstrata`).
//!
//! # Example
//!
//! ```
//! use netstrata_cli::stack::{StackOptions, parse_bytes};
//! use netstrata_zstd::ZstdConfig;
//!
//! // What `--zstd --zstd-level 6` asks for.
//! let options = StackOptions { zstd: Some(ZstdConfig::new().with_level(6)), ..Default::default() };
//! assert_eq!(options.describe(), "zstd(level 6)");
//! let conn = options.connection().unwrap();
//! assert_eq!(conn.stack().len(), 1);
//!
//! // Rates and sizes as the flags take them.
//! assert_eq!(parse_bytes("10MB"), Ok(10_000_000));
//! assert_eq!(parse_bytes("64Ki"), Ok(65_536));
//! ```
#![forbid(unsafe_code)]

/// `eprintln!` that ignores a closed stderr instead of panicking.
macro_rules! complain {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

pub mod cpu;
pub mod demo;
pub mod echo;
pub mod fault;
pub mod load;
pub mod plot;
pub mod report;
pub mod stack;
pub mod tunnel;
