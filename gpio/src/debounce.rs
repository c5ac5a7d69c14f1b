//! The tamper input's debouncer, sans-IO: levels and times in, a change out once a new level has held long enough.

use std::time::Duration;

/// How long the tamper input must hold a new level before it counts, unless configured.
pub const DEFAULT_STABLE_FOR: Duration = Duration::from_millis(50);

/// A debounced change of the tamper input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TamperChange {
    Asserted,
    Released,
}

/// Turns raw samples of the tamper input into debounced changes: a level counts once every
/// sample for `stable_for` showed it; a bounce back restarts the wait. Starts released.
#[derive(Debug, Clone)]
pub struct TamperDebouncer {
    stable_for: Duration,
    /// The debounced level: true = asserted.
    level: bool,
    /// A different level seen, and since when it has held.
    candidate: Option<(bool, Duration)>,
}

impl TamperDebouncer {
    pub fn new(stable_for: Duration) -> TamperDebouncer {
        TamperDebouncer {
            stable_for,
            level: false,
            candidate: None,
        }
    }

    /// The debounced level: true while the tamper input counts as asserted.
    pub fn asserted(&self) -> bool {
        self.level
    }

    /// One sample of the input (`asserted`, corrected for polarity) taken at `now` (any
    /// monotonic clock, e.g. the time since the poller started).
    pub fn feed(&mut self, asserted: bool, now: Duration) -> Option<TamperChange> {
        if asserted == self.level {
            self.candidate = None;
            return None;
        }
        let since = match self.candidate {
            Some((level, since)) if level == asserted => since,
            _ => {
                self.candidate = Some((asserted, now));
                now
            }
        };
        if now.saturating_sub(since) < self.stable_for {
            return None;
        }
        self.level = asserted;
        self.candidate = None;
        Some(if asserted {
            TamperChange::Asserted
        } else {
            TamperChange::Released
        })
    }
}

impl Default for TamperDebouncer {
    fn default() -> Self {
        TamperDebouncer::new(DEFAULT_STABLE_FOR)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(value: u64) -> Duration {
        Duration::from_millis(value)
    }

    /// Feeds `(level, at ms)` samples and returns the changes with the time they came out.
    fn run(debouncer: &mut TamperDebouncer, samples: &[(bool, u64)]) -> Vec<(TamperChange, u64)> {
        samples
            .iter()
            .filter_map(|&(level, at)| debouncer.feed(level, ms(at)).map(|change| (change, at)))
            .collect()
    }

    #[test]
    fn a_steady_assertion_counts_after_the_stable_time() {
        let mut debouncer = TamperDebouncer::default();
        let samples: Vec<(bool, u64)> = (0..=10).map(|n| (true, n * 10)).collect();
        assert_eq!(
            run(&mut debouncer, &samples),
            vec![(TamperChange::Asserted, 50)]
        );
        assert!(debouncer.asserted());
    }

    #[test]
    fn bounces_shorter_than_the_stable_time_never_count() {
        let mut debouncer = TamperDebouncer::new(ms(50));
        // A vibrating switch: 30 ms on, 10 ms off, again and again.
        let mut samples = Vec::new();
        for cycle in 0..20u64 {
            let start = cycle * 40;
            samples.extend([(true, start), (true, start + 10), (true, start + 20)]);
            samples.push((false, start + 30));
        }
        assert_eq!(run(&mut debouncer, &samples), vec![]);
        assert!(!debouncer.asserted());
    }

    #[test]
    fn a_bounce_restarts_the_wait_then_a_steady_level_counts() {
        let mut debouncer = TamperDebouncer::new(ms(50));
        let samples = [
            (true, 0),
            (true, 40),
            (false, 45), // bounce
            (true, 50),  // the wait restarts here
            (true, 90),
            (true, 99),
            (true, 100),
            (true, 110),
        ];
        assert_eq!(
            run(&mut debouncer, &samples),
            vec![(TamperChange::Asserted, 100)]
        );
    }

    #[test]
    fn release_is_debounced_too_and_each_change_comes_once() {
        let mut debouncer = TamperDebouncer::new(ms(20));
        let samples = [
            (true, 0),
            (true, 20),
            (true, 30),
            (false, 40),
            (true, 45),
            (false, 50),
            (false, 60),
            (false, 70),
            (false, 80),
        ];
        assert_eq!(
            run(&mut debouncer, &samples),
            vec![(TamperChange::Asserted, 20), (TamperChange::Released, 70)]
        );
    }

    #[test]
    fn zero_stable_time_follows_the_input() {
        let mut debouncer = TamperDebouncer::new(Duration::ZERO);
        assert_eq!(debouncer.feed(true, ms(5)), Some(TamperChange::Asserted));
        assert_eq!(debouncer.feed(true, ms(6)), None);
        assert_eq!(debouncer.feed(false, ms(7)), Some(TamperChange::Released));
    }
}
