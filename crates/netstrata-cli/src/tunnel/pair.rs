//! What the two connections of one tunnelled stream share: which leg each
//! is, the first failure, and how each closed, for one log line per pair.

/// Which connection of a tunnelled pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Leg {
    /// The connection a client made to the tunnel.
    Client,
    /// The connection the tunnel made to the target.
    Target,
}

impl Leg {
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Client => "client side",
            Self::Target => "target side",
        }
    }
}

/// Shared by the handlers of one pair (on the loop's thread).
#[derive(Debug)]
pub(super) struct Pair {
    /// Print the pair's closes once both have closed.
    pub(super) log: bool,
    /// The target connection was made (a connect was started).
    pub(super) target_made: bool,
    /// Why the pair failed, first reason only.
    pub(super) failure: Option<String>,
    /// How each connection of the pair closed.
    closed: Vec<String>,
}

impl Pair {
    pub(super) fn new(log: bool) -> Self {
        Self {
            log,
            target_made: false,
            failure: None,
            closed: Vec::new(),
        }
    }

    /// Records why the pair failed, unless it already had.
    pub(super) fn fail(&mut self, why: String) {
        self.failure.get_or_insert(why);
    }

    /// Notes that a connection closed, and how; returns every close so far
    /// once the pair has none left open.
    pub(super) fn closed(&mut self, how: String) -> Option<&[String]> {
        self.closed.push(how);
        let all = self.closed.len() == 2 || !self.target_made;
        all.then_some(&self.closed[..])
    }
}

#[cfg(test)]
mod tests {
    use super::Pair;

    #[test]
    fn a_pair_reports_once_both_have_closed_or_the_target_never_was() {
        let mut pair = Pair::new(true);
        pair.target_made = true;
        assert!(pair.closed("a".into()).is_none());
        assert_eq!(pair.closed("b".into()).unwrap(), ["a", "b"]);
        let mut alone = Pair::new(true);
        alone.fail("cannot connect".into());
        alone.fail("later".into());
        assert_eq!(alone.closed("a".into()).unwrap(), ["a"]);
        assert_eq!(alone.failure.as_deref(), Some("cannot connect"));
    }
}
