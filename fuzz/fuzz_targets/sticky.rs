//! The layer contract's "the first error sticks", checked call by call;
//! shared by the fuzz targets (`#[path]` module: each target is its own
//! binary).

/// The first error a layer or stack returned, if any.
#[derive(Debug, Default)]
pub struct Sticky(Option<String>);

impl Sticky {
    /// Checks one call's result against the ones before: after an error,
    /// every later call returns the same error.
    pub fn check(&mut self, result: netstrata_core::Result<()>) {
        match (&self.0, result) {
            (None, Err(e)) => self.0 = Some(e.to_string()),
            (Some(first), Err(e)) => assert_eq!(first, &e.to_string()),
            (Some(_), Ok(())) => panic!("an error did not stick"),
            (None, Ok(())) => {}
        }
    }

    /// Whether an error was returned.
    #[allow(dead_code)] // not every target asks
    pub fn failed(&self) -> bool {
        self.0.is_some()
    }
}
