//! The Raspberry Pi back end through rppal: three LED outputs, a buzzer driven from its own thread so a beep never blocks, and the tamper input with the pull resistor its polarity needs.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;

use rppal::gpio::{Gpio, InputPin, OutputPin};

use crate::{Beep, BenchSignals, GpioError, Led, Pins};

/// Beeps waiting while one sounds; more are dropped (a burst of failures is one long tone
/// after another anyway).
const QUEUED_BEEPS: usize = 2;

/// What rppal opens: the register window and the character device.
const CHIP: &str = "/dev/gpiomem (or /dev/gpiomem0) and /dev/gpiochip*";

/// The bench on the Raspberry Pi's GPIO header. Lines go back to inputs when it is dropped
/// (rppal's reset on drop), so the LEDs go dark when the daemon stops.
pub struct RppalSignals {
    ready: OutputPin,
    busy: OutputPin,
    error: OutputPin,
    tamper: InputPin,
    tamper_active_low: bool,
    /// `None` once the buzzer thread is gone.
    buzzer: Option<SyncSender<Beep>>,
    buzzer_thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for RppalSignals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RppalSignals")
            .field("ready", &self.ready.pin())
            .field("busy", &self.busy.pin())
            .field("error", &self.error.pin())
            .field("tamper", &self.tamper.pin())
            .field("tamper_active_low", &self.tamper_active_low)
            .finish_non_exhaustive()
    }
}

fn open_error(error: rppal::gpio::Error) -> GpioError {
    use rppal::gpio::Error;
    let reason = match error {
        Error::UnknownModel => "this machine is not a Raspberry Pi rppal recognises (no known model in /proc/cpuinfo or /sys/firmware/devicetree/base); use [bench] gpio = \"simulated\" or \"none\" off the Pi".to_owned(),
        Error::PermissionDenied(path) => {
            return GpioError::Open {
                chip: path,
                reason: "permission denied: the daemon's user must be in group gpio (sysusers.d/keymother.conf) and the unit must allow the device (DeviceAllow=)".to_owned(),
            };
        }
        other => other.to_string(),
    };
    GpioError::Open {
        chip: CHIP.to_owned(),
        reason,
    }
}

fn line(gpio: &Gpio, pin: u8, what: &'static str) -> Result<rppal::gpio::Pin, GpioError> {
    gpio.get(pin).map_err(|error| GpioError::Line {
        pin,
        what,
        reason: error.to_string(),
    })
}

fn sound(mut pin: OutputPin, beeps: Receiver<Beep>) {
    while let Ok(beep) = beeps.recv() {
        pin.set_high();
        std::thread::sleep(beep.duration());
        pin.set_low();
        // A gap, so two beeps in a row are heard as two.
        std::thread::sleep(Beep::Short.duration());
    }
}

impl RppalSignals {
    /// Claims the lines: LEDs and buzzer as outputs (off), the tamper input with a pull-up
    /// when active low (a switch to ground) or a pull-down when active high. Fails off a
    /// Raspberry Pi, naming the GPIO chip.
    pub fn open(pins: &Pins) -> Result<RppalSignals, GpioError> {
        let gpio = Gpio::new().map_err(open_error)?;
        let ready = line(&gpio, pins.ready_led, "ready LED")?.into_output_low();
        let busy = line(&gpio, pins.busy_led, "busy LED")?.into_output_low();
        let error = line(&gpio, pins.error_led, "error LED")?.into_output_low();
        let buzzer = line(&gpio, pins.buzzer, "buzzer")?.into_output_low();
        let tamper = line(&gpio, pins.tamper, "tamper input")?;
        let tamper = if pins.tamper_pull_up {
            tamper.into_input_pullup()
        } else {
            tamper.into_input_pulldown()
        };
        let (sender, beeps) = std::sync::mpsc::sync_channel(QUEUED_BEEPS);
        let buzzer_thread = std::thread::Builder::new()
            .name("keymother-buzzer".to_owned())
            .spawn(move || sound(buzzer, beeps))
            .map_err(|error| {
                GpioError::Failed(format!("cannot start the buzzer thread: {error}"))
            })?;
        Ok(RppalSignals {
            ready,
            busy,
            error,
            tamper,
            tamper_active_low: pins.tamper_active_low,
            buzzer: Some(sender),
            buzzer_thread: Some(buzzer_thread),
        })
    }
}

impl BenchSignals for RppalSignals {
    fn set_led(&mut self, led: Led, on: bool) -> Result<(), GpioError> {
        let pin = match led {
            Led::Ready => &mut self.ready,
            Led::Busy => &mut self.busy,
            Led::Error => &mut self.error,
        };
        if on {
            pin.set_high();
        } else {
            pin.set_low();
        }
        Ok(())
    }

    fn beep(&mut self, beep: Beep) -> Result<(), GpioError> {
        let Some(buzzer) = &self.buzzer else {
            return Err(GpioError::Failed(
                "the buzzer thread has stopped".to_owned(),
            ));
        };
        match buzzer.try_send(beep) {
            Ok(()) | Err(TrySendError::Full(_)) => Ok(()),
            Err(TrySendError::Disconnected(_)) => {
                self.buzzer = None;
                Err(GpioError::Failed(
                    "the buzzer thread has stopped".to_owned(),
                ))
            }
        }
    }

    fn tamper_asserted(&mut self) -> Result<bool, GpioError> {
        Ok(self.tamper.is_low() == self.tamper_active_low)
    }
}

impl Drop for RppalSignals {
    fn drop(&mut self) {
        // Closing the channel ends the buzzer thread after the beep it is sounding.
        self.buzzer = None;
        if let Some(thread) = self.buzzer_thread.take() {
            let _ = thread.join();
        }
    }
}
