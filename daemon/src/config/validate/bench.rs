//! The `[bench]` section checked: the display and its I2C bus, the GPIO back end, the LED, buzzer and tamper lines, and the tamper input's timing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use keymother_gpio::LineSpec;

use super::{Location, Validator};
use crate::config::merged::{MergedBench, Sourced};
use crate::config::raw::RawLine;
use crate::config::{BenchSettings, ConfigError, DEFAULT_I2C_BUS, DisplayKind, GpioBackend, Notes};

/// One line of the bench: its key, its value as set, and its default.
type LineSlot = (&'static str, Option<Sourced<RawLine>>, LineSpec);

/// Whether a line is SDA or SCL of /dev/i2c-1 on the Raspberry Pi (BCM 2 and 3, as the
/// device trees name them).
fn i2c1_line(line: &LineSpec) -> Option<&'static str> {
    match line {
        LineSpec::Bcm(2) => Some("SDA"),
        LineSpec::Bcm(3) => Some("SCL"),
        LineSpec::Name(name) if name == "GPIO2" || name == "SDA1" => Some("SDA"),
        LineSpec::Name(name) if name == "GPIO3" || name == "SCL1" => Some("SCL"),
        _ => None,
    }
}

impl Validator<'_> {
    /// `[bench]`: every key optional; lines are BCM numbers on the header, line names or
    /// `gpiochipN:OFFSET`, all different, and not the display's I2C lines when it is on the
    /// default bus. Whether the lines exist is the back end's business when it opens them
    /// (a GPIO that cannot be opened never stops the daemon; it is tried again every 5 s).
    pub(super) fn bench(&self, merged: MergedBench) -> Result<BenchSettings, ConfigError> {
        let defaults = BenchSettings::default();
        let display = self.bench_display(merged.display, defaults.display)?;
        let (gpio, notes) = self.bench_gpio(merged.gpio, defaults.gpio)?;
        let i2c_bus = self.bench_i2c_bus(merged.i2c_bus, defaults.i2c_bus)?;
        let i2c_address = self.bench_i2c_address(merged.i2c_address, defaults.i2c_address)?;
        // (key, value as set, default): checked in this order, each against those before.
        let line_slots = [
            ("bench.ready_led", merged.ready_led, defaults.pins.ready_led),
            ("bench.busy_led", merged.busy_led, defaults.pins.busy_led),
            ("bench.error_led", merged.error_led, defaults.pins.error_led),
            ("bench.buzzer", merged.buzzer, defaults.pins.buzzer),
            ("bench.tamper_pin", merged.tamper_pin, defaults.pins.tamper),
        ];
        let i2c_lines_taken =
            display == DisplayKind::Ssd1306 && i2c_bus.as_path() == Path::new(DEFAULT_I2C_BUS);
        let lines = self.bench_lines(line_slots, i2c_lines_taken)?;
        let tamper_active_low = merged
            .tamper_active_low
            .map_or(defaults.pins.tamper_active_low, |value| value.value);
        let tamper_pull_up = self.bench_tamper_pull(merged.tamper_pull, tamper_active_low)?;
        let pins = keymother_gpio::Pins {
            ready_led: lines[0].clone(),
            busy_led: lines[1].clone(),
            error_led: lines[2].clone(),
            buzzer: lines[3].clone(),
            tamper: lines[4].clone(),
            tamper_active_low,
            tamper_pull_up,
        };
        let tamper_debounce =
            self.bench_tamper_debounce(merged.tamper_debounce_ms, defaults.tamper_debounce)?;
        let low_inventory =
            self.bench_low_inventory(merged.low_inventory, defaults.low_inventory)?;
        let require_tamper_input = self.bench_require_tamper_input(
            merged.require_tamper_input,
            gpio,
            defaults.require_tamper_input,
        )?;
        Ok(BenchSettings {
            display,
            i2c_bus,
            i2c_address,
            gpio,
            pins,
            tamper_debounce,
            low_inventory,
            require_tamper_input,
            notes,
        })
    }

    /// `display`: ssd1306, memory or none.
    fn bench_display(
        &self,
        display: Option<Sourced<String>>,
        default: DisplayKind,
    ) -> Result<DisplayKind, ConfigError> {
        let Some(display) = display else {
            return Ok(default);
        };
        match display.value.as_str() {
            "ssd1306" => Ok(DisplayKind::Ssd1306),
            "memory" => Ok(DisplayKind::Memory),
            "none" => Ok(DisplayKind::None),
            other => Err(self.error(
                &display,
                "bench.display",
                format!("{other:?} is not ssd1306, memory or none"),
            )),
        }
    }

    /// `gpio`: chardev, simulated or none; "rppal" is chardev with a note.
    fn bench_gpio(
        &self,
        gpio: Option<Sourced<String>>,
        default: GpioBackend,
    ) -> Result<(GpioBackend, Notes), ConfigError> {
        let mut notes = Notes::default();
        let Some(gpio) = gpio else {
            return Ok((default, notes));
        };
        let backend = match gpio.value.as_str() {
            "chardev" => GpioBackend::Chardev,
            // The back end "chardev" replaced: the same lines, through /dev/gpiochipN.
            // Still accepted, so that an appliance whose settings say "rppal" starts
            // after an update (--check-config refusing it would stop the daemon, and a
            // bench GPIO never stops injection); the warning says what to write.
            "rppal" => {
                notes.0.push(self.error(&gpio, "bench.gpio", "\"rppal\" is deprecated and now means \"chardev\", the kernel's GPIO character device (/dev/gpiochipN; rppal needed /dev/gpiomem, which only the Raspberry Pi vendor kernel has): write gpio = \"chardev\"".to_owned()).to_string());
                GpioBackend::Chardev
            }
            "simulated" => GpioBackend::Simulated,
            "none" => GpioBackend::None,
            other => {
                return Err(self.error(
                    &gpio,
                    "bench.gpio",
                    format!("{other:?} is not chardev, simulated or none"),
                ));
            }
        };
        Ok((backend, notes))
    }

    /// `i2c_bus`: an absolute path.
    fn bench_i2c_bus(
        &self,
        bus: Option<Sourced<PathBuf>>,
        default: PathBuf,
    ) -> Result<PathBuf, ConfigError> {
        match bus {
            None => Ok(default),
            Some(bus) if !bus.value.is_absolute() => Err(self.error(
                &bus,
                "bench.i2c_bus",
                format!(
                    "{} is not an absolute path (e.g. /dev/i2c-1)",
                    bus.value.display()
                ),
            )),
            Some(bus) => Ok(bus.value),
        }
    }

    /// `i2c_address`: a 7-bit address.
    fn bench_i2c_address(
        &self,
        address: Option<Sourced<i64>>,
        default: u8,
    ) -> Result<u8, ConfigError> {
        let Some(address) = address else {
            return Ok(default);
        };
        match u8::try_from(address.value) {
            Ok(value) if value <= 0x7F => Ok(value),
            _ => Err(self.error(
                &address,
                "bench.i2c_address",
                format!(
                    "{} is outside 0x00 to 0x7F (a 7-bit I2C address; the SSD1306 is at 0x3C or 0x3D)",
                    address.value
                ),
            )),
        }
    }

    /// The LED, buzzer and tamper lines in the order of `slots`, each different from those
    /// before it and, when `i2c_lines_taken`, not an I2C line of the display's bus.
    fn bench_lines(
        &self,
        slots: [LineSlot; 5],
        i2c_lines_taken: bool,
    ) -> Result<Vec<LineSpec>, ConfigError> {
        // Each line with where it was set, if it was.
        let mut lines: Vec<(&str, LineSpec, Option<Location>)> = Vec::with_capacity(slots.len());
        for (key, value, default) in slots {
            let line = match &value {
                None => default,
                Some(set) => match &set.value {
                    RawLine::Number(number) => LineSpec::bcm(*number),
                    RawLine::Text(text) => LineSpec::parse(text),
                }
                .map_err(|problem| self.error(set, key, problem))?,
            };
            let at = value.as_ref().map(|set| (set.file, set.span.start));
            if let Some(taken) = lines.iter().find(|(_, taken, _)| taken.same_line(&line)) {
                return Err(self.same_line_error((key, &line, at), (taken.0, &taken.1, taken.2)));
            }
            if let Some(role) = i2c1_line(&line).filter(|_| i2c_lines_taken) {
                let problem = format!(
                    "{} is an I2C line of {DEFAULT_I2C_BUS} ({role}), which the ssd1306 display uses",
                    line.describe()
                );
                let (file, offset) = at.unwrap_or((0, 0));
                return Err(self.error_in(file, offset, key, problem));
            }
            lines.push((key, line, at));
        }
        Ok(lines.into_iter().map(|(_, line, _)| line).collect())
    }

    /// Two keys name one line: (key, line, where it was set) of the later one and of the
    /// earlier one it collides with. Points at a value that was set: the later, else the
    /// earlier.
    fn same_line_error(
        &self,
        (key, line, at): (&str, &LineSpec, Option<Location>),
        (other, other_line, other_at): (&str, &LineSpec, Option<Location>),
    ) -> ConfigError {
        let line = line.describe();
        let (file, offset, key, problem) = match (at, other_at) {
            (Some((file, offset)), _) => (
                file,
                offset,
                key,
                format!("{line} is also {other}; every line must be different"),
            ),
            (None, Some((file, offset))) => (
                file,
                offset,
                other,
                format!(
                    "{} is also {key} (its default, {line}); every line must be different",
                    other_line.describe()
                ),
            ),
            (None, None) => (0, 0, key, format!("{line} is also {other}")),
        };
        self.error_in(file, offset, key, problem)
    }

    /// `tamper_pull`: up or down; unless set, the pull a normally-open switch needs:
    /// against the level that fires.
    fn bench_tamper_pull(
        &self,
        pull: Option<Sourced<String>>,
        tamper_active_low: bool,
    ) -> Result<bool, ConfigError> {
        let Some(pull) = pull else {
            return Ok(tamper_active_low);
        };
        match pull.value.as_str() {
            "up" => Ok(true),
            "down" => Ok(false),
            other => Err(self.error(
                &pull,
                "bench.tamper_pull",
                format!("{other:?} is not up or down"),
            )),
        }
    }

    /// `tamper_debounce_ms`: 1 to 1000.
    fn bench_tamper_debounce(
        &self,
        debounce_ms: Option<Sourced<i64>>,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        match debounce_ms {
            None => Ok(default),
            Some(value) if !(1..=1000).contains(&value.value) => Err(self.error(
                &value,
                "bench.tamper_debounce_ms",
                format!("{} is outside 1 to 1000", value.value),
            )),
            Some(value) => Ok(Duration::from_millis(value.value.unsigned_abs())),
        }
    }

    /// `low_inventory`: 0 to 10000000.
    fn bench_low_inventory(
        &self,
        low_inventory: Option<Sourced<i64>>,
        default: u64,
    ) -> Result<u64, ConfigError> {
        match low_inventory {
            None => Ok(default),
            Some(value) if !(0..=10_000_000).contains(&value.value) => Err(self.error(
                &value,
                "bench.low_inventory",
                format!("{} is outside 0 to 10000000", value.value),
            )),
            Some(value) => Ok(value.value.unsigned_abs()),
        }
    }

    /// `require_tamper_input`: only with a GPIO back end to watch the input.
    fn bench_require_tamper_input(
        &self,
        required: Option<Sourced<bool>>,
        gpio: GpioBackend,
        default: bool,
    ) -> Result<bool, ConfigError> {
        match required {
            Some(required) if required.value && gpio == GpioBackend::None => Err(self.error(
                &required,
                "bench.require_tamper_input",
                "there is no tamper input to require: set [bench] gpio = \"chardev\" (or \"simulated\" off the Pi)".to_owned(),
            )),
            Some(required) => Ok(required.value),
            None => Ok(default),
        }
    }
}
