//! The first error sticks: one piece for every layer, stack and connection.

use crate::{Error, Result};

/// The first error a layer, a stack or a connection met, kept so that every
/// later call fails with it (rule 7 of the [`Layer`](crate::Layer) contract).
///
/// A layer keeps one and runs each fallible call through
/// [`guard`](Self::guard), which refuses the call once an error was kept and
/// keeps the call's error; [`check`](Self::check), [`record`](Self::record)
/// and [`fail`](Self::fail) are the same steps one at a time.
///
/// ```
/// use netstrata_core::{Error, Result, StickyError};
///
/// #[derive(Default)]
/// struct Parser {
///     failed: StickyError,
/// }
///
/// impl Parser {
///     fn handle(&mut self, byte: u8) -> Result<()> {
///         StickyError::guard(self, |p| &mut p.failed, |p| p.parse(byte))
///     }
///
///     fn parse(&mut self, byte: u8) -> Result<()> {
///         match byte {
///             0 => Err(Error::peer("parser", "zero byte")),
///             _ => Ok(()),
///         }
///     }
/// }
///
/// let mut p = Parser::default();
/// assert!(p.handle(1).is_ok());
/// assert!(p.handle(0).is_err());
/// // Dead from now on, whatever comes.
/// assert!(p.handle(1).is_err());
/// assert!(p.failed.has_failed());
/// ```
///
/// Only [`Error::SendBufferFull`] does not stick: it says "later", not "never".
#[derive(Debug, Clone, Default)]
pub struct StickyError {
    first: Option<Error>,
}

impl StickyError {
    /// Nothing failed yet.
    pub const fn new() -> Self {
        Self { first: None }
    }

    /// Runs `call` on `owner` unless `owner` already failed, and keeps the
    /// call's error if it is the first; `failed` picks the owner's
    /// `StickyError` out of it.
    pub fn guard<O: ?Sized, T>(
        owner: &mut O,
        failed: impl Fn(&mut O) -> &mut Self,
        call: impl FnOnce(&mut O) -> Result<T>,
    ) -> Result<T> {
        failed(owner).check()?;
        let result = call(owner);
        failed(owner).record(result)
    }

    /// `Ok` while nothing failed; the kept error, again, after.
    pub fn check(&self) -> Result<()> {
        match &self.first {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// Passes `result` on, keeping its error if it is the first that sticks.
    pub fn record<T>(&mut self, result: Result<T>) -> Result<T> {
        result.map_err(|e| self.fail(e))
    }

    /// Keeps `e` if it is the first error that sticks, and returns it (for
    /// `map_err`).
    pub fn fail(&mut self, e: Error) -> Error {
        if self.first.is_none() && e.is_sticky() {
            self.first = Some(e.clone());
        }
        e
    }

    /// The kept error, if any.
    pub fn error(&self) -> Option<&Error> {
        self.first.as_ref()
    }

    /// Whether an error was kept: the owner is dead.
    pub fn has_failed(&self) -> bool {
        self.first.is_some()
    }
}
