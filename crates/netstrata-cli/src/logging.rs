//! The tool's log: `tracing` events to stderr, filtered by `-v`/`-vv` or
//! `RUST_LOG`.

use std::io::IsTerminal;

/// The crates whose logs `-v` and `-vv` turn up.
const OUR_CRATES: [&str; 7] = [
    "netstrata_core",
    "netstrata_frame",
    "netstrata_zstd",
    "netstrata_tls",
    "netstrata_shape",
    "netstrata_reactor",
    "netstrata_cli",
];

/// Logs to stderr through `tracing-subscriber`: `RUST_LOG` if set, else
/// warnings, and netstrata's own debug (`-v`) or trace (`-vv`) lines.
pub(crate) fn init(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let spec = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => spec,
        _ => {
            let (others, ours) = match verbose {
                0 => ("warn", "warn"),
                1 => ("warn", "debug"),
                _ => ("debug", "trace"),
            };
            let ours: Vec<String> = OUR_CRATES.iter().map(|c| format!("{c}={ours}")).collect();
            format!("{others},{}", ours.join(","))
        }
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(spec))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        // A closed stderr drops the line; the fallback would be a panic.
        .log_internal_errors(false)
        .try_init();
}
