//! `metric`: a metric expression evaluated at aligned ticks, with a `for`
//! hold. Fires at the first tick where the expression has been true at every
//! tick since a tick `t0` with `t − t0 >= hold`; while firing it does not
//! fire again; the first false tick resolves.

/// What a tick did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Transition {
    None,
    Fire,
    Resolve,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct MetricState {
    /// First tick of the current run of true ticks.
    pub true_since: Option<i64>,
    pub firing: bool,
    /// While firing, a false tick before this time does not resolve. Set
    /// for an alert taken over without its history (see
    /// `Engine::adopt`): until the metric windows have filled again, a
    /// false expression may only mean that data is missing.
    pub resolve_from: Option<i64>,
}

impl MetricState {
    pub fn tick(&mut self, t: i64, holds: bool, hold: i64) -> Transition {
        if !holds {
            self.true_since = None;
            if self.firing && self.resolve_from.is_some_and(|from| t < from) {
                return Transition::None;
            }
            if self.firing {
                self.resolve_from = None;
                self.firing = false;
                return Transition::Resolve;
            }
            return Transition::None;
        }
        let since = *self.true_since.get_or_insert(t);
        if !self.firing && t.saturating_sub(since) >= hold {
            self.firing = true;
            return Transition::Fire;
        }
        Transition::None
    }

    pub fn idle(&self) -> bool {
        self.true_since.is_none() && !self.firing
    }

    /// Whether ticks without new data cannot change anything: idle, or
    /// firing with no resolve held back (an adopted alert's first
    /// judgement is still to come, data or not).
    pub fn settled(&self) -> bool {
        self.idle() || (self.firing && self.resolve_from.is_none())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hold_then_resolve() {
        let mut s = MetricState::default();
        assert_eq!(s.tick(0, true, 20), Transition::None);
        assert_eq!(s.tick(10, true, 20), Transition::None);
        assert_eq!(s.tick(20, true, 20), Transition::Fire);
        assert_eq!(s.tick(30, true, 20), Transition::None);
        assert_eq!(s.tick(40, false, 20), Transition::Resolve);
        assert_eq!(s.tick(50, false, 20), Transition::None);
        // A false tick restarts the hold.
        assert_eq!(s.tick(60, true, 20), Transition::None);
        assert_eq!(s.tick(70, false, 20), Transition::None);
        assert_eq!(s.tick(80, true, 0), Transition::Fire);
    }

    #[test]
    fn adopted_firing_waits_for_its_windows() {
        let mut s = MetricState {
            firing: true,
            resolve_from: Some(30),
            ..MetricState::default()
        };
        assert_eq!(s.tick(10, false, 0), Transition::None);
        assert_eq!(s.tick(20, true, 0), Transition::None);
        assert_eq!(s.tick(30, false, 0), Transition::Resolve);
        assert_eq!(s.resolve_from, None);
        assert_eq!(s.tick(40, true, 0), Transition::Fire);
    }
}
