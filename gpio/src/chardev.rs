//! The back end on the kernel's GPIO character device (`/dev/gpiochipN`, uAPI v2, through gpiocdev): three LED outputs, a buzzer driven from its own thread so a beep never blocks, and the tamper input with its bias and the kernel's debouncing.
//!
//! Lines are found by [`LineSpec`]: a BCM number (an offset of the Raspberry Pi's own chip,
//! found by its label), a line name (searched on every chip, and it must be unique) or a
//! chip and an offset. Each line is its own request, so the buzzer's thread owns its line.
//!
//! The tamper input is read as a level, not as edge events: [`BenchSignals`] is polled (the
//! bench thread samples it every 10 ms and feeds [`crate::TamperDebouncer`]), and with a
//! debounce period the kernel reports the debounced level on every read. Edge events would
//! give the same level through an event queue to drain at each poll, one that can overflow
//! and lose a change, where a level read cannot miss the state it reads. The kernel's
//! debouncing (in hardware where the chip has it, else gpiolib's own on the line's
//! interrupt) catches what 10 ms sampling would not, a switch that chatters faster than the
//! samples; a line without an interrupt is requested without it and the daemon's debouncer
//! does the work alone ([`ChardevSignals::kernel_debounce`]).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::Duration;

use gpiocdev::line::{Bias, Value};
use gpiocdev::{Chip, Request};

use crate::{Beep, BenchSignals, GpioError, Led, LineSpec, Pins};

/// The consumer name the kernel shows for the lines keymotherd holds (`gpioinfo`).
pub const CONSUMER: &str = "keymotherd";

/// The labels of the Raspberry Pi's own GPIO chip, whose offsets are the BCM numbers:
/// BCM2835/6/7 (Pi 1 to 3, Zero), BCM2711 (Pi 4), RP1 (Pi 5).
pub const PI_CHIP_LABELS: [&str; 3] = ["pinctrl-bcm2835", "pinctrl-bcm2711", "pinctrl-rp1"];

/// Where the GPIO chips are.
const DEV: &str = "/dev";

/// Beeps waiting while one sounds; more are dropped (a burst of failures is one long tone
/// after another anyway).
const QUEUED_BEEPS: usize = 2;

// Linux errno values (the same on every architecture).
const EPERM: i32 = 1;
const ENOENT: i32 = 2;
const EACCES: i32 = 13;
const ENODEV: i32 = 19;

/// A line found on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundLine {
    /// The chip's device, resolved (`/dev/gpiochip0`).
    pub chip: PathBuf,
    /// The chip's name (`gpiochip0`) and label (`pinctrl-bcm2835`).
    pub chip_name: String,
    pub chip_label: String,
    pub offset: u32,
    /// The line's name, empty when the device tree gives none.
    pub name: String,
}

impl fmt::Display for FoundLine {
    /// `gpiochip0:23 ("GPIO23")`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.chip_name, self.offset)?;
        if !self.name.is_empty() {
            write!(f, " ({:?})", self.name)?;
        }
        Ok(())
    }
}

/// Why a chip would not open, pointing at the fix.
fn open_reason(error: &gpiocdev::Error) -> String {
    match error {
        gpiocdev::Error::Os(errno) => match errno.0 {
            EACCES => "permission denied (is keymotherd in the gpio group? /dev/gpiochip* must be root:gpio 0660, as /usr/lib/udev/rules.d/60-keymother-i2c-gpio.rules makes them)".to_owned(),
            EPERM => "operation not permitted (the unit's device policy must allow it: DeviceAllow=char-gpiochip rw)".to_owned(),
            ENOENT => "no such device".to_owned(),
            ENODEV => "no such device (the chip went away)".to_owned(),
            other => std::io::Error::from_raw_os_error(other).to_string(),
        },
        gpiocdev::Error::GpioChip(_, kind) => kind.to_string(),
        other => other.to_string(),
    }
}

fn open_chip(path: &Path) -> Result<(Chip, gpiocdev::chip::Info), GpioError> {
    let failed = |error: gpiocdev::Error| GpioError::Open {
        chip: path.display().to_string(),
        reason: open_reason(&error),
    };
    let chip = Chip::from_path(path).map_err(failed)?;
    let info = chip.info().map_err(failed)?;
    Ok((chip, info))
}

/// A chip looked at while searching: its lines' names.
struct ScannedChip {
    path: PathBuf,
    name: String,
    label: String,
    line_names: Vec<String>,
}

/// Every chip in `dev` that opened, and the first that did not.
struct Scan {
    dev: PathBuf,
    chips: Vec<ScannedChip>,
    failure: Option<GpioError>,
    /// No `gpiochip*` entry at all.
    none: bool,
}

impl Scan {
    /// Opens every `gpiochipN` in `dev`, in number order, and reads its lines' names.
    ///
    /// Not gpiocdev's `find_named_line`: it passes over a chip it cannot open, so a daemon
    /// outside the gpio group would hear "no such line" instead of "permission denied",
    /// and it takes the first of two lines with one name where this refuses both.
    fn new(dev: &Path) -> Scan {
        let mut scan = Scan {
            dev: dev.to_owned(),
            chips: Vec::new(),
            failure: None,
            none: true,
        };
        let entries = match std::fs::read_dir(dev) {
            Ok(entries) => entries,
            Err(error) => {
                scan.failure = Some(GpioError::Open {
                    chip: format!("{}/gpiochip*", dev.display()),
                    reason: format!("cannot list {}: {error}", dev.display()),
                });
                return scan;
            }
        };
        let mut numbered: Vec<(u64, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let name = entry.file_name();
                let number = name.to_str()?.strip_prefix("gpiochip")?.parse().ok()?;
                Some((number, entry.path()))
            })
            .collect();
        numbered.sort();
        scan.none = numbered.is_empty();
        for (_, path) in numbered {
            match Scan::read(&path) {
                Ok(chip) => {
                    // A link to a chip already seen (the Pi 5's gpiochip4 -> gpiochip0).
                    if !scan.chips.iter().any(|seen| seen.path == chip.path) {
                        scan.chips.push(chip);
                    }
                }
                Err(error) => {
                    scan.failure.get_or_insert(error);
                }
            }
        }
        scan
    }

    fn read(path: &Path) -> Result<ScannedChip, GpioError> {
        let (chip, info) = open_chip(path)?;
        let mut line_names = Vec::with_capacity(info.num_lines as usize);
        for offset in 0..info.num_lines {
            let line = chip.line_info(offset).map_err(|error| GpioError::Open {
                chip: path.display().to_string(),
                reason: format!("cannot read line {offset}: {error}"),
            })?;
            line_names.push(line.name);
        }
        Ok(ScannedChip {
            path: chip.path().to_owned(),
            name: chip.name(),
            label: info.label,
            line_names,
        })
    }

    /// What was searched, for a line that was not found.
    fn searched(&self) -> String {
        let chips: Vec<String> = self
            .chips
            .iter()
            .map(|chip| format!("{} {:?}", chip.name, chip.label))
            .collect();
        chips.join(", ")
    }

    fn found(chip: &ScannedChip, offset: u32) -> FoundLine {
        FoundLine {
            chip: chip.path.clone(),
            chip_name: chip.name.clone(),
            chip_label: chip.label.clone(),
            offset,
            name: chip
                .line_names
                .get(offset as usize)
                .cloned()
                .unwrap_or_default(),
        }
    }

    /// Why nothing was found: a chip that would not open explains it best; else what was
    /// searched.
    fn not_found(&mut self, line: &LineSpec, what: &'static str, reason: String) -> GpioError {
        if let Some(failure) = self.failure.take() {
            return failure;
        }
        GpioError::NotFound {
            line: line.to_string(),
            what,
            reason,
        }
    }

    fn find(&mut self, line: &LineSpec, what: &'static str) -> Result<FoundLine, GpioError> {
        if self.none {
            return Err(self.not_found(
                line,
                what,
                "there is no GPIO chip on this machine (no /dev/gpiochip*); off the appliance use [bench] gpio = \"simulated\" or \"none\"".to_owned(),
            ));
        }
        match line {
            LineSpec::Name(name) => {
                let matches: Vec<FoundLine> = self
                    .chips
                    .iter()
                    .flat_map(|chip| {
                        chip.line_names
                            .iter()
                            .enumerate()
                            // Exactly: the device tree's case and all.
                            .filter(|(_, line_name)| line_name.as_str() == name)
                            .map(|(offset, _)| Scan::found(chip, offset as u32))
                    })
                    .collect();
                match matches.as_slice() {
                    [one] => Ok(one.clone()),
                    [] => {
                        let reason =
                            format!("no line is named {name:?} (searched {})", self.searched());
                        Err(self.not_found(line, what, reason))
                    }
                    several => {
                        let places: Vec<String> = several
                            .iter()
                            .map(|found| format!("{}:{}", found.chip_name, found.offset))
                            .collect();
                        Err(GpioError::Line {
                            line: line.to_string(),
                            what,
                            reason: format!(
                                "{} lines are named {name:?} ({}): name one by chip and offset instead, e.g. \"{}\"",
                                several.len(),
                                places.join(", "),
                                places[0]
                            ),
                        })
                    }
                }
            }
            LineSpec::Bcm(number) => {
                let Some(chip) = self
                    .chips
                    .iter()
                    .find(|chip| PI_CHIP_LABELS.contains(&chip.label.as_str()))
                else {
                    let reason = format!(
                        "BCM numbers are offsets of the Raspberry Pi's own GPIO chip, and no chip here is labelled {} (found {}); name the line instead, e.g. \"GPIO{number}\" or \"gpiochip0:{number}\"",
                        PI_CHIP_LABELS.join(", "),
                        self.searched()
                    );
                    return Err(self.not_found(line, what, reason));
                };
                let offset = u32::from(*number);
                if offset as usize >= chip.line_names.len() {
                    return Err(GpioError::Line {
                        line: line.to_string(),
                        what,
                        reason: format!("{} has only {} lines", chip.name, chip.line_names.len()),
                    });
                }
                Ok(Scan::found(chip, offset))
            }
            LineSpec::ChipOffset { .. } => find_by_offset(&self.dev, line, what),
        }
    }
}

/// `gpiochipN:OFFSET`: that chip in `dev`, checked to have the line.
fn find_by_offset(dev: &Path, line: &LineSpec, what: &'static str) -> Result<FoundLine, GpioError> {
    let LineSpec::ChipOffset { chip, offset } = line else {
        return Err(GpioError::Failed(format!(
            "{line} is not a chip and offset"
        )));
    };
    let (opened, info) = open_chip(&dev.join(chip))?;
    if *offset >= info.num_lines {
        return Err(GpioError::Line {
            line: line.to_string(),
            what,
            reason: format!(
                "{chip} ({:?}) has no line {offset}: its lines are 0 to {}",
                info.label,
                info.num_lines.saturating_sub(1)
            ),
        });
    }
    let name = opened
        .line_info(*offset)
        .map(|info| info.name)
        .unwrap_or_default();
    Ok(FoundLine {
        chip: opened.path().to_owned(),
        chip_name: opened.name(),
        chip_label: info.label,
        offset: *offset,
        name,
    })
}

/// Finds every line of `pins` in `dev` (normally `/dev`), in the order of [`Pins::all`]:
/// one scan of the chips when any line is named or numbered, none when all are given by
/// chip and offset. Two settings that land on one line are refused.
pub(crate) fn find_lines(dev: &Path, pins: &Pins) -> Result<Vec<FoundLine>, GpioError> {
    let mut scan: Option<Scan> = None;
    let mut found: Vec<FoundLine> = Vec::with_capacity(5);
    let all = pins.all();
    for (what, line) in all {
        let here = match line {
            LineSpec::ChipOffset { .. } => find_by_offset(dev, line, what)?,
            _ => scan
                .get_or_insert_with(|| Scan::new(dev))
                .find(line, what)?,
        };
        if let Some(index) = found
            .iter()
            .position(|other| other.chip == here.chip && other.offset == here.offset)
        {
            let (other_what, other_line) = all[index];
            return Err(GpioError::Line {
                line: line.to_string(),
                what,
                reason: format!(
                    "{here} is also the {other_what} ({other_line}); every line must be different"
                ),
            });
        }
        found.push(here);
    }
    Ok(found)
}

/// Why a line could not be requested: who holds it when it is taken.
fn request_error(
    found: &FoundLine,
    line: &LineSpec,
    what: &'static str,
    error: &gpiocdev::Error,
) -> GpioError {
    let holder = Chip::from_path(&found.chip)
        .and_then(|chip| chip.line_info(found.offset))
        .ok()
        .filter(|info| info.used);
    let reason = match holder {
        Some(info) if info.consumer.is_empty() => {
            format!("{found} is in use (by a kernel driver or another program): {error}")
        }
        Some(info) => format!(
            "{found} is in use by {:?} (a kernel driver or another program): {error}",
            info.consumer
        ),
        None => format!("{found}: {error}"),
    };
    GpioError::Line {
        line: line.to_string(),
        what,
        reason,
    }
}

/// One requested line.
struct Held {
    request: Request,
    found: FoundLine,
    line: LineSpec,
    what: &'static str,
}

impl Held {
    fn output(found: FoundLine, line: &LineSpec, what: &'static str) -> Result<Held, GpioError> {
        let request = Request::builder()
            .on_chip(&found.chip)
            .with_consumer(CONSUMER)
            .with_line(found.offset)
            .as_output(Value::Inactive)
            .request()
            .map_err(|error| request_error(&found, line, what, &error))?;
        Ok(Held {
            request,
            found,
            line: line.clone(),
            what,
        })
    }

    /// The tamper input with its bias, and the kernel's debouncing when the line allows it
    /// (`None` when it was requested without).
    fn input(
        found: FoundLine,
        line: &LineSpec,
        pull_up: bool,
        debounce: Duration,
    ) -> Result<(Held, Option<Duration>), GpioError> {
        let what = "tamper input";
        let request = |debounce: Option<Duration>| {
            let mut builder = Request::builder();
            builder
                .on_chip(&found.chip)
                .with_consumer(CONSUMER)
                .with_line(found.offset)
                .as_input()
                .with_bias(if pull_up {
                    Bias::PullUp
                } else {
                    Bias::PullDown
                });
            if let Some(period) = debounce {
                builder.with_debounce_period(period);
            }
            builder.request()
        };
        let wanted = (!debounce.is_zero()).then_some(debounce);
        let (request, debounced) = match request(wanted) {
            Ok(request) => (request, wanted),
            // Software debouncing needs the line's interrupt; without one the line is
            // requested plainly, and the daemon's debouncer works alone.
            Err(first) if wanted.is_some() => match request(None) {
                Ok(request) => (request, None),
                Err(_) => return Err(request_error(&found, line, what, &first)),
            },
            Err(error) => return Err(request_error(&found, line, what, &error)),
        };
        Ok((
            Held {
                request,
                found,
                line: line.clone(),
                what,
            },
            debounced,
        ))
    }

    fn failed(&self, error: &gpiocdev::Error) -> GpioError {
        GpioError::Line {
            line: self.line.to_string(),
            what: self.what,
            reason: format!("{}: {error}", self.found),
        }
    }

    fn set(&self, on: bool) -> Result<(), GpioError> {
        let value = if on { Value::Active } else { Value::Inactive };
        self.request
            .set_value(self.found.offset, value)
            .map_err(|error| self.failed(&error))
    }

    /// True while the line is high.
    fn high(&self) -> Result<bool, GpioError> {
        self.request
            .value(self.found.offset)
            .map(|value| value == Value::Active)
            .map_err(|error| self.failed(&error))
    }
}

/// Sounds beeps until the channel closes; a line that fails ends it, with why.
fn sound(buzzer: Held, beeps: Receiver<Beep>) -> Result<(), GpioError> {
    while let Ok(beep) = beeps.recv() {
        buzzer.set(true)?;
        std::thread::sleep(beep.duration());
        buzzer.set(false)?;
        // A gap, so two beeps in a row are heard as two.
        std::thread::sleep(Beep::Short.duration());
    }
    Ok(())
}

/// The bench on GPIO character-device lines. The LEDs go dark when it is dropped, and the
/// lines are released.
pub struct ChardevSignals {
    ready: Held,
    busy: Held,
    error: Held,
    tamper: Held,
    tamper_active_low: bool,
    tamper_pull_up: bool,
    kernel_debounce: Option<Duration>,
    debounce_asked: Duration,
    buzzer_line: FoundLine,
    buzzer_spec: LineSpec,
    /// `None` once the buzzer thread is gone.
    buzzer: Option<SyncSender<Beep>>,
    buzzer_thread: Option<JoinHandle<Result<(), GpioError>>>,
}

impl fmt::Debug for ChardevSignals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChardevSignals")
            .field("lines", &self.describe())
            .finish_non_exhaustive()
    }
}

impl ChardevSignals {
    /// Finds the lines of `pins` on this machine's `/dev/gpiochip*` and requests them: LEDs
    /// and buzzer as outputs (off), the tamper input as an input with the pull its settings
    /// name and a kernel debounce period of `debounce` (none for zero). Every error names
    /// the chip or the line and what to do.
    pub fn open(pins: &Pins, debounce: Duration) -> Result<ChardevSignals, GpioError> {
        ChardevSignals::open_in(Path::new(DEV), pins, debounce)
    }

    /// [`ChardevSignals::open`] with the chips searched in `dev` instead of `/dev` (tests).
    pub fn open_in(
        dev: &Path,
        pins: &Pins,
        debounce: Duration,
    ) -> Result<ChardevSignals, GpioError> {
        let [ready, busy, error, buzzer, tamper]: [FoundLine; 5] = find_lines(dev, pins)?
            .try_into()
            .map_err(|_| GpioError::Failed("five lines were not found".to_owned()))?;
        let ready = Held::output(ready, &pins.ready_led, "ready LED")?;
        let busy = Held::output(busy, &pins.busy_led, "busy LED")?;
        let error = Held::output(error, &pins.error_led, "error LED")?;
        let buzzer_line = buzzer.clone();
        let buzzer = Held::output(buzzer, &pins.buzzer, "buzzer")?;
        let (tamper, kernel_debounce) =
            Held::input(tamper, &pins.tamper, pins.tamper_pull_up, debounce)?;
        let (sender, beeps) = std::sync::mpsc::sync_channel(QUEUED_BEEPS);
        let buzzer_thread = std::thread::Builder::new()
            .name("keymother-buzzer".to_owned())
            .spawn(move || sound(buzzer, beeps))
            .map_err(|error| {
                GpioError::Failed(format!("cannot start the buzzer thread: {error}"))
            })?;
        Ok(ChardevSignals {
            ready,
            busy,
            error,
            tamper,
            tamper_active_low: pins.tamper_active_low,
            tamper_pull_up: pins.tamper_pull_up,
            kernel_debounce,
            debounce_asked: debounce,
            buzzer_line,
            buzzer_spec: pins.buzzer.clone(),
            buzzer: Some(sender),
            buzzer_thread: Some(buzzer_thread),
        })
    }

    /// The kernel's debounce period on the tamper input; `None` when the line could not
    /// have one (no interrupt) or none was asked for.
    pub fn kernel_debounce(&self) -> Option<Duration> {
        self.kernel_debounce
    }

    /// Where each line was found, for the journal: `ready LED GPIO17 = gpiochip0:17
    /// ("GPIO17"), ..., tamper input GPIO23 = gpiochip0:23 ("GPIO23"), active low, pull-up,
    /// kernel debounce 50 ms`.
    pub fn describe(&self) -> String {
        let outputs = [&self.ready, &self.busy, &self.error]
            .map(|held| format!("{} {} = {}", held.what, held.line, held.found));
        let debounce = match self.kernel_debounce {
            Some(period) => format!("kernel debounce {} ms", period.as_millis()),
            None if self.debounce_asked.is_zero() => "no kernel debounce".to_owned(),
            None => "no kernel debounce (the line has no interrupt for it)".to_owned(),
        };
        format!(
            "{}, buzzer {} = {}, tamper input {} = {}, active {}, pull-{}, {debounce}",
            outputs.join(", "),
            self.buzzer_spec,
            self.buzzer_line,
            self.tamper.line,
            self.tamper.found,
            if self.tamper_active_low {
                "low"
            } else {
                "high"
            },
            if self.tamper_pull_up { "up" } else { "down" },
        )
    }

    /// The buzzer thread has ended: why.
    fn buzzer_stopped(&mut self) -> GpioError {
        self.buzzer = None;
        let why = match self.buzzer_thread.take().map(JoinHandle::join) {
            Some(Ok(Err(error))) => return error,
            Some(Err(_)) => "it panicked",
            _ => "it ended",
        };
        GpioError::Failed(format!("the buzzer thread has stopped: {why}"))
    }
}

impl BenchSignals for ChardevSignals {
    fn set_led(&mut self, led: Led, on: bool) -> Result<(), GpioError> {
        match led {
            Led::Ready => &self.ready,
            Led::Busy => &self.busy,
            Led::Error => &self.error,
        }
        .set(on)
    }

    fn beep(&mut self, beep: Beep) -> Result<(), GpioError> {
        let Some(buzzer) = &self.buzzer else {
            return Err(GpioError::Failed(
                "the buzzer thread has stopped".to_owned(),
            ));
        };
        match buzzer.try_send(beep) {
            Ok(()) | Err(TrySendError::Full(_)) => Ok(()),
            Err(TrySendError::Disconnected(_)) => Err(self.buzzer_stopped()),
        }
    }

    fn tamper_asserted(&mut self) -> Result<bool, GpioError> {
        let low = !self.tamper.high()?;
        Ok(low == self.tamper_active_low)
    }
}

impl Drop for ChardevSignals {
    fn drop(&mut self) {
        for led in [&self.ready, &self.busy, &self.error] {
            let _ = led.set(false);
        }
        // Closing the channel ends the buzzer thread after the beep it is sounding; the
        // thread leaves its line low.
        self.buzzer = None;
        if let Some(thread) = self.buzzer_thread.take() {
            let _ = thread.join();
        }
    }
}
