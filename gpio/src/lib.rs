//! The bench's GPIO: ready, busy and error LEDs, a buzzer and a tamper input behind [`BenchSignals`], with the kernel's GPIO character device back end, a simulated one and a sans-IO tamper debouncer.
//!
//! The daemon drives a `Box<dyn BenchSignals>`: on the appliance [`ChardevSignals`] (the
//! lines of `/dev/gpiochipN` through the kernel's uAPI v2, with bias and kernel debouncing),
//! in tests and the demo [`SimulatedSignals`], which records every change with its time and
//! lets the test assert the tamper input. Nothing here knows about keys or the vault; what a
//! tamper does is the daemon's business. Debouncing is [`TamperDebouncer`], fed with levels
//! and times, so it is tested without hardware or sleeps.
//!
//! Not rppal: its GPIO needs `/dev/gpiomem`, a driver only the Raspberry Pi vendor kernel
//! has; under Debian's kernel it falls back to `/dev/mem`, which a daemon without root may
//! not open (issue 13). The character device works with Debian's kernel and the vendor's
//! alike, for a member of the `gpio` group.

mod chardev;
mod debounce;
#[cfg(feature = "gpio-sim")]
pub mod gpio_sim;
mod line;
mod simulated;

use std::time::Duration;

pub use chardev::{CONSUMER, ChardevSignals, FoundLine, PI_CHIP_LABELS};
pub use debounce::{DEFAULT_STABLE_FOR, TamperChange, TamperDebouncer};
pub use line::{LineSpec, MAX_BCM, MAX_LINE_NAME};
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

/// Which GPIO lines the bench uses, and how the tamper input is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pins {
    pub ready_led: LineSpec,
    pub busy_led: LineSpec,
    pub error_led: LineSpec,
    pub buzzer: LineSpec,
    pub tamper: LineSpec,
    /// The tamper input counts as fired while its line is low (else while it is high).
    pub tamper_active_low: bool,
    /// The tamper input's pull resistor (the line's bias): up (true) or down. A
    /// normally-open switch pulls against it when the case opens (active low with a pull-up,
    /// active high with a pull-down); a normally-closed loop holds the line against it while
    /// the case is shut, so an opened case and a cut wire both fire (active high with a
    /// pull-up, or active low with a pull-down).
    pub tamper_pull_up: bool,
}

impl Pins {
    /// The LED and buzzer lines with what they drive.
    pub fn outputs(&self) -> [(&'static str, &LineSpec); 4] {
        [
            ("ready LED", &self.ready_led),
            ("busy LED", &self.busy_led),
            ("error LED", &self.error_led),
            ("buzzer", &self.buzzer),
        ]
    }

    /// Every line with what it is: the outputs, then the tamper input.
    pub fn all(&self) -> [(&'static str, &LineSpec); 5] {
        let [ready, busy, error, buzzer] = self.outputs();
        [ready, busy, error, buzzer, ("tamper input", &self.tamper)]
    }

    /// The line of `led`.
    pub fn led(&self, led: Led) -> &LineSpec {
        match led {
            Led::Ready => &self.ready_led,
            Led::Busy => &self.busy_led,
            Led::Error => &self.error_led,
        }
    }
}

impl Default for Pins {
    /// The lines the Raspberry Pi's device tree names GPIO17, GPIO27 and GPIO22 for the
    /// ready, busy and error LEDs, GPIO18 for the buzzer, GPIO23 for the tamper switch (to
    /// ground: active low, pull-up); BCM 17, 27, 22, 18 and 23, none of them an I2C line.
    /// Debian's kernel and the Raspberry Pi vendor kernel both give them these names.
    fn default() -> Self {
        let name = |name: &str| LineSpec::Name(name.to_owned());
        Pins {
            ready_led: name("GPIO17"),
            busy_led: name("GPIO27"),
            error_led: name("GPIO22"),
            buzzer: name("GPIO18"),
            tamper: name("GPIO23"),
            tamper_active_low: true,
            tamper_pull_up: true,
        }
    }
}

/// A GPIO back end failed.
#[derive(Debug, thiserror::Error)]
pub enum GpioError {
    /// A GPIO chip could not be opened (no such device, no permission, not a GPIO chip).
    #[error("cannot open {chip}: {reason}")]
    Open { chip: String, reason: String },
    /// No GPIO chip has the line a setting names.
    #[error("no GPIO line {line} ({what}) on any /dev/gpiochip*: {reason}")]
    NotFound {
        line: String,
        what: &'static str,
        reason: String,
    },
    /// One line could not be claimed or used.
    #[error("GPIO line {line} ({what}): {reason}")]
    Line {
        line: String,
        what: &'static str,
        reason: String,
    },
    /// The back end stopped working (a helper thread ended, a simulated failure).
    #[error("the GPIO back end failed: {0}")]
    Failed(String),
}
