//! SIGINT and SIGTERM: the long-running subcommands stop gracefully and
//! print what they did, instead of dying with status 130 or 143.

use std::io;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// Runs `first` on the first SIGINT or SIGTERM and `again` on each later
/// one, from a thread of its own.
pub(crate) fn on_stop(
    first: impl FnOnce() + Send + 'static,
    again: impl Fn() + Send + 'static,
) -> io::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("netstrata-signals".into())
        .spawn(move || {
            let mut received = signals.forever();
            if received.next().is_some() {
                first();
            }
            for _ in received {
                again();
            }
        })?;
    Ok(())
}

/// A flag the first SIGINT or SIGTERM sets; a second one ends the process
/// at once (status 130), for a run that does not stop.
pub(crate) fn stop_flag() -> io::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, 130, Arc::clone(&flag))?;
        signal_hook::flag::register(signal, Arc::clone(&flag))?;
    }
    Ok(flag)
}
