//! Two connections in memory, for benchmarks of whole stacks: each round
//! sends a batch on one, flushes it, feeds the wire bytes to the other and
//! decodes every message.

use std::hint::black_box;
use std::time::Instant;

use netstrata::{Connection, Layer};
use netstrata_frame::LengthDelimited;

/// A sending and a receiving connection with their stacks.
pub(crate) struct Link<A, B> {
    tx: Connection<A, LengthDelimited>,
    rx: Connection<B, LengthDelimited>,
    msg: Vec<u8>,
    batch: usize,
    now: Instant,
}

impl<A: Layer, B: Layer> Link<A, B> {
    /// Sends `batch` messages of `size` bytes per round from `tx` to `rx`.
    pub(crate) fn new(tx: A, rx: B, size: usize, batch: usize) -> Self {
        Self {
            tx: Connection::new(tx, LengthDelimited::new()),
            rx: Connection::new(rx, LengthDelimited::new()),
            msg: vec![0x5a; size],
            batch,
            now: Instant::now(),
        }
    }

    /// One batch across; panics if a message is missing.
    pub(crate) fn round(&mut self) {
        for _ in 0..self.batch {
            self.tx.send(&self.msg).unwrap();
        }
        let mut got = 0;
        while let Some(wire) = self.tx.poll_transmit(self.now).unwrap() {
            let n = self.rx.handle_input(self.now, wire).unwrap();
            self.tx.advance_transmit(n);
            while let Some(m) = self.rx.poll_message(self.now).unwrap() {
                black_box(m);
                got += 1;
            }
        }
        assert_eq!(got, self.batch);
    }
}

impl<L: Layer> Link<L, L> {
    /// Both ends with a stack from `make`.
    // Each bench compiles this file on its own; not all use this constructor.
    #[allow(dead_code)]
    pub(crate) fn symmetric(make: impl Fn() -> L, size: usize, batch: usize) -> Self {
        Self::new(make(), make(), size, batch)
    }
}

/// Parses a `variant:size:batch:rounds` spec (`NETSTRATA_*_VARIANT`), for
/// running one variant alone under callgrind.
// Each bench compiles this file on its own; not all run variants alone.
#[allow(dead_code)]
pub(crate) fn variant_spec(var: &str, spec: &str) -> (String, usize, usize, usize) {
    let parts: Vec<&str> = spec.split(':').collect();
    let [variant, size, batch, rounds] = parts[..] else {
        panic!("{var}=variant:size:batch:rounds, got {spec}");
    };
    let num = |s: &str| s.parse::<usize>().expect("a number");
    (variant.to_string(), num(size), num(batch), num(rounds))
}

/// Runs `rounds` rounds of a link whose ends come from `make`.
#[allow(dead_code)]
pub(crate) fn run_alone<L: Layer>(make: impl Fn() -> L, size: usize, batch: usize, rounds: usize) {
    let mut link = Link::symmetric(make, size, batch);
    for _ in 0..rounds {
        link.round();
    }
}
