//! The simulated back end: records every LED change and beep with its time; tests and the demo set the tamper input.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::{Beep, BenchSignals, GpioError, Led, Signal};

/// One recorded output change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignalRecord {
    /// Since the handle was made.
    pub at: Duration,
    pub signal: Signal,
}

#[derive(Debug)]
struct State {
    started: Instant,
    records: Vec<SignalRecord>,
    leds: BTreeMap<Led, bool>,
    tamper: bool,
}

/// A bench without hardware. Cheap to clone: every clone is the same bench, so a test keeps
/// one handle and gives another to the daemon.
#[derive(Debug, Clone)]
pub struct SimulatedSignals {
    state: Arc<Mutex<State>>,
}

impl Default for SimulatedSignals {
    fn default() -> Self {
        SimulatedSignals::new()
    }
}

impl SimulatedSignals {
    /// All LEDs off, tamper input released, nothing recorded.
    pub fn new() -> SimulatedSignals {
        SimulatedSignals {
            state: Arc::new(Mutex::new(State {
                started: Instant::now(),
                records: Vec::new(),
                leds: Led::ALL.into_iter().map(|led| (led, false)).collect(),
                tamper: false,
            })),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every change is one assignment or push: a poisoned lock holds a consistent state.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sets the tamper input (true = asserted, after polarity).
    pub fn set_tamper(&self, asserted: bool) {
        self.state().tamper = asserted;
    }

    /// Every change so far, in order.
    pub fn records(&self) -> Vec<SignalRecord> {
        self.state().records.clone()
    }

    /// Every change so far, in order, without times.
    pub fn signals(&self) -> Vec<Signal> {
        self.state()
            .records
            .iter()
            .map(|record| record.signal)
            .collect()
    }

    /// Whether `led` is on now.
    pub fn led(&self, led: Led) -> bool {
        self.state().leds.get(&led).copied().unwrap_or(false)
    }

    /// Forgets the recorded changes (the LEDs stay as they are).
    pub fn clear(&self) {
        self.state().records.clear();
    }
}

impl BenchSignals for SimulatedSignals {
    fn set_led(&mut self, led: Led, on: bool) -> Result<(), GpioError> {
        let mut state = self.state();
        let at = state.started.elapsed();
        state.leds.insert(led, on);
        state.records.push(SignalRecord {
            at,
            signal: Signal::Led(led, on),
        });
        Ok(())
    }

    fn beep(&mut self, beep: Beep) -> Result<(), GpioError> {
        let mut state = self.state();
        let at = state.started.elapsed();
        state.records.push(SignalRecord {
            at,
            signal: Signal::Beep(beep),
        });
        Ok(())
    }

    fn tamper_asserted(&mut self) -> Result<bool, GpioError> {
        Ok(self.state().tamper)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_one_bench() {
        let handle = SimulatedSignals::new();
        let mut daemon_side: Box<dyn BenchSignals> = Box::new(handle.clone());
        daemon_side.set_led(Led::Ready, true).unwrap();
        daemon_side.beep(Beep::Short).unwrap();
        daemon_side.set_led(Led::Ready, false).unwrap();
        assert_eq!(
            handle.signals(),
            vec![
                Signal::Led(Led::Ready, true),
                Signal::Beep(Beep::Short),
                Signal::Led(Led::Ready, false)
            ]
        );
        let times: Vec<Duration> = handle.records().iter().map(|record| record.at).collect();
        assert!(times.windows(2).all(|pair| pair[0] <= pair[1]));
        assert!(!handle.led(Led::Ready));
        assert!(!daemon_side.tamper_asserted().unwrap());
        handle.set_tamper(true);
        assert!(daemon_side.tamper_asserted().unwrap());
        handle.clear();
        assert!(handle.records().is_empty());
    }
}
