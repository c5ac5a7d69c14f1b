//! The bench's GPIO: ready, busy and error LEDs, a buzzer and a tamper input behind [`BenchSignals`], with the Raspberry Pi back end (rppal), a simulated one and a sans-IO tamper debouncer.
//!
//! The daemon drives a `Box<dyn BenchSignals>`: on the appliance [`RppalSignals`], in tests
//! and the demo [`SimulatedSignals`], which records every change with its time and lets the
//! test assert the tamper input. Nothing here knows about keys or the vault; what a tamper
//! does is the daemon's business. Debouncing is [`TamperDebouncer`], fed with levels and
//! times, so it is tested without hardware or sleeps.

mod debounce;
#[cfg(feature = "rppal")]
mod rppal_signals;
mod simulated;

use std::time::Duration;

pub use debounce::{DEFAULT_STABLE_FOR, TamperChange, TamperDebouncer};
#[cfg(feature = "rppal")]
pub use rppal_signals::RppalSignals;
pub use simulated::{SignalRecord, SimulatedSignals};

/// The bench's three LEDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Led {
    /// The appliance is ready and no injection is running.
    Ready,
    /// An injection is running on some port.
    Busy,
    /// The last injection failed, or the appliance was tampered with.
    Error,
}

impl Led {
    /// All three, in a fixed order.
    pub const ALL: [Led; 3] = [Led::Ready, Led::Busy, Led::Error];

    pub fn name(self) -> &'static str {
        match self {
            Led::Ready => "ready",
            Led::Busy => "busy",
            Led::Error => "error",
        }
    }
}

/// A buzzer sound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beep {
    /// Success: a short chirp.
    Short,
    /// Failure or tamper: a long tone.
    Long,
}

impl Beep {
    /// How long the buzzer sounds.
    pub const fn duration(self) -> Duration {
        match self {
            Beep::Short => Duration::from_millis(80),
            Beep::Long => Duration::from_millis(600),
        }
    }
}

/// One thing done to the bench's outputs: what the daemon asks for and what the simulated
/// back end records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Led(Led, bool),
    Beep(Beep),
}

/// The bench's LEDs, buzzer and tamper input.
pub trait BenchSignals: Send {
    /// Turns an LED on or off.
    fn set_led(&mut self, led: Led, on: bool) -> Result<(), GpioError>;
    /// Sounds the buzzer; returns at once (the sound ends by itself).
    fn beep(&mut self, beep: Beep) -> Result<(), GpioError>;
    /// The raw level of the tamper input, already corrected for polarity: true = tamper
    /// asserted. Not debounced (see [`TamperDebouncer`]).
    fn tamper_asserted(&mut self) -> Result<bool, GpioError>;
}

impl<T: BenchSignals + ?Sized> BenchSignals for Box<T> {
    fn set_led(&mut self, led: Led, on: bool) -> Result<(), GpioError> {
        (**self).set_led(led, on)
    }
    fn beep(&mut self, beep: Beep) -> Result<(), GpioError> {
        (**self).beep(beep)
    }
    fn tamper_asserted(&mut self) -> Result<bool, GpioError> {
        (**self).tamper_asserted()
    }
}

/// Which BCM GPIO lines the bench uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pins {
    pub ready_led: u8,
    pub busy_led: u8,
    pub error_led: u8,
    pub buzzer: u8,
    pub tamper: u8,
    /// The tamper input counts as fired while its line is low (else while it is high).
    pub tamper_active_low: bool,
    /// The tamper input's pull resistor: up (true) or down. A normally-open switch pulls
    /// against it when the case opens (active low with a pull-up, active high with a
    /// pull-down); a normally-closed loop holds the line against it while the case is shut,
    /// so an opened case and a cut wire both fire (active high with a pull-up, or active low
    /// with a pull-down).
    pub tamper_pull_up: bool,
}

impl Pins {
    /// The LED and buzzer lines with what they drive.
    pub fn outputs(&self) -> [(&'static str, u8); 4] {
        [
            ("ready LED", self.ready_led),
            ("busy LED", self.busy_led),
            ("error LED", self.error_led),
            ("buzzer", self.buzzer),
        ]
    }

    /// The line of `led`.
    pub fn led(&self, led: Led) -> u8 {
        match led {
            Led::Ready => self.ready_led,
            Led::Busy => self.busy_led,
            Led::Error => self.error_led,
        }
    }
}

impl Default for Pins {
    /// BCM 17, 27 and 22 for the ready, busy and error LEDs, 18 for the buzzer, 23 for the
    /// tamper switch (to ground: active low); none of them is an I2C line.
    fn default() -> Self {
        Pins {
            ready_led: 17,
            busy_led: 27,
            error_led: 22,
            buzzer: 18,
            tamper: 23,
            tamper_active_low: true,
            tamper_pull_up: true,
        }
    }
}

/// A GPIO back end failed.
#[derive(Debug, thiserror::Error)]
pub enum GpioError {
    /// The GPIO chip could not be opened (not a Raspberry Pi, no permission, no device).
    #[error("cannot open the GPIO chip {chip}: {reason}")]
    Open { chip: String, reason: String },
    /// One line could not be claimed or used.
    #[error("GPIO line BCM {pin} ({what}): {reason}")]
    Line {
        pin: u8,
        what: &'static str,
        reason: String,
    },
    /// The back end stopped working (a helper thread ended, a simulated failure).
    #[error("the GPIO back end failed: {0}")]
    Failed(String),
}
