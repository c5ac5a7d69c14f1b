//! The character-device back end: errors that point the right way without any GPIO chip, and on the kernel's gpio-sim wherever it can be loaded, the LEDs and buzzer driven and the tamper input read through bias and kernel debouncing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use keymother_gpio::gpio_sim::{self, Availability, SimChip};
use keymother_gpio::{Beep, BenchSignals, ChardevSignals, GpioError, Led, LineSpec, Pins};

fn named(name: &str) -> LineSpec {
    LineSpec::Name(name.to_owned())
}

fn on_chip(chip: &str, offset: u32) -> LineSpec {
    LineSpec::ChipOffset {
        chip: chip.to_owned(),
        offset,
    }
}

fn open_error(dev: &std::path::Path, pins: &Pins) -> GpioError {
    ChardevSignals::open_in(dev, pins, Duration::from_millis(50)).unwrap_err()
}

#[test]
fn without_a_gpio_chip_the_error_says_so() {
    let dev = tempfile::tempdir().unwrap();
    let error = open_error(dev.path(), &Pins::default());
    let message = error.to_string();
    assert!(matches!(error, GpioError::NotFound { .. }), "{error:?}");
    assert!(
        message.starts_with("no GPIO line GPIO17 (ready LED) on any /dev/gpiochip*: there is no GPIO chip on this machine"),
        "{message}"
    );
    // A BCM number needs the Pi's chip: the same.
    let pins = Pins {
        ready_led: LineSpec::Bcm(17),
        ..Pins::default()
    };
    let message = open_error(dev.path(), &pins).to_string();
    assert!(message.contains("no /dev/gpiochip*"), "{message}");
    // A chip named by the settings that is not there.
    let pins = Pins {
        ready_led: on_chip("gpiochip3", 1),
        ..Pins::default()
    };
    let message = open_error(dev.path(), &pins).to_string();
    let expected = format!(
        "cannot open {}: no such device",
        dev.path().join("gpiochip3").display()
    );
    assert_eq!(message, expected);
}

#[test]
fn a_chip_that_cannot_be_opened_is_named_rather_than_a_missing_line() {
    let dev = tempfile::tempdir().unwrap();
    std::fs::write(dev.path().join("gpiochip0"), "not a device").unwrap();
    std::fs::write(dev.path().join("gpiochipX"), "ignored: not gpiochipN").unwrap();
    let error = open_error(dev.path(), &Pins::default());
    match &error {
        GpioError::Open { chip, reason } => {
            assert!(chip.ends_with("/gpiochip0"), "{chip}");
            assert_eq!(reason, "is not a character device");
        }
        other => panic!("{other:?}"),
    }
    // /dev/null is a character device, but not a GPIO chip.
    let dev = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/dev/null", dev.path().join("gpiochip0")).unwrap();
    let message = open_error(dev.path(), &Pins::default()).to_string();
    assert!(
        message.ends_with(": is not a GPIO character device"),
        "{message}"
    );
}

/// gpio-sim here, or why not (printed, and the test passes).
fn gpio_sim_or_skip(test: &str) -> bool {
    match gpio_sim::availability() {
        Ok(Availability::Ready) => true,
        Ok(Availability::Skip(why)) => {
            eprintln!("SKIPPED {test}: gpio-sim cannot be used here: {why}");
            false
        }
        Err(problem) => panic!("gpio-sim: {problem}"),
    }
}

/// Names unique to this process and test, so tests running at once never share one.
fn unique(test: &str, line: &str) -> String {
    format!("km{}-{test}-{line}", std::process::id())
}

/// Waits up to `limit` for `condition`, returning how long it took.
fn within(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
    start.elapsed()
}

/// Offsets on the simulated chip.
const READY: u32 = 0;
const BUSY: u32 = 1;
const ERROR: u32 = 2;
const BUZZER: u32 = 3;
const TAMPER: u32 = 4;

#[test]
fn on_gpio_sim_the_leds_buzzer_and_debounced_tamper_input_work() {
    if !gpio_sim_or_skip("on_gpio_sim_the_leds_buzzer_and_debounced_tamper_input_work") {
        return;
    }
    let names: Vec<String> = ["ready", "busy", "error", "buzzer", "tamper"]
        .iter()
        .map(|line| unique("bench", line))
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let sim = SimChip::create("keymother-test", &refs).unwrap();
    // Lines by name, and one by chip and offset.
    let pins = Pins {
        ready_led: named(&names[0]),
        busy_led: named(&names[1]),
        error_led: on_chip(sim.chip_name(), ERROR),
        buzzer: named(&names[3]),
        tamper: named(&names[4]),
        tamper_active_low: true,
        tamper_pull_up: true,
    };
    // A long debounce period, so that "not yet" is a safe thing to check.
    let debounce = Duration::from_millis(300);
    let mut signals = ChardevSignals::open(&pins, debounce).unwrap();
    assert_eq!(signals.kernel_debounce(), Some(debounce));
    let described = signals.describe();
    assert!(
        described.contains(&format!(
            "tamper input {} = {}:{TAMPER}",
            names[4],
            sim.chip_name()
        )),
        "{described}"
    );
    assert!(described.contains("kernel debounce 300 ms"), "{described}");

    // Outputs start low; the pull-up holds the tamper line high: released.
    for offset in [READY, BUSY, ERROR, BUZZER] {
        assert!(!sim.value(offset).unwrap(), "line {offset}");
    }
    assert!(sim.value(TAMPER).unwrap(), "the bias is a pull-up");
    assert!(!signals.tamper_asserted().unwrap());

    // The LEDs.
    for (led, offset) in [(Led::Ready, READY), (Led::Busy, BUSY), (Led::Error, ERROR)] {
        signals.set_led(led, true).unwrap();
        assert!(sim.value(offset).unwrap(), "{led:?} on");
        signals.set_led(led, false).unwrap();
        assert!(!sim.value(offset).unwrap(), "{led:?} off");
    }
    signals.set_led(Led::Ready, true).unwrap();

    // A beep: the buzzer line goes high, then low again by itself.
    signals.beep(Beep::Short).unwrap();
    within(Duration::from_secs(1), "the buzzer on", || {
        sim.value(BUZZER).unwrap()
    });
    within(Duration::from_secs(1), "the buzzer off", || {
        !sim.value(BUZZER).unwrap()
    });

    // The switch pulls the line to ground: asserted only once it has held for the
    // kernel's debounce period.
    sim.set_pull(TAMPER, false).unwrap();
    let pulled = Instant::now();
    assert!(
        !signals.tamper_asserted().unwrap(),
        "the kernel debounces: not asserted at once"
    );
    within(Duration::from_secs(3), "the tamper input asserted", || {
        signals.tamper_asserted().unwrap()
    });
    assert!(
        pulled.elapsed() >= debounce - Duration::from_millis(20),
        "asserted after {:?}, before the debounce period",
        pulled.elapsed()
    );
    sim.set_pull(TAMPER, true).unwrap();
    within(Duration::from_secs(3), "the tamper input released", || {
        !signals.tamper_asserted().unwrap()
    });

    // A glitch shorter than the period never shows.
    sim.set_pull(TAMPER, false).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    sim.set_pull(TAMPER, true).unwrap();
    let watch = Instant::now();
    while watch.elapsed() < debounce * 2 {
        assert!(
            !signals.tamper_asserted().unwrap(),
            "a 50 ms glitch came through"
        );
        std::thread::sleep(Duration::from_millis(5));
    }

    // Dropped: the LEDs go dark and the lines are free again (a second open works).
    drop(signals);
    assert!(!sim.value(READY).unwrap());
    let again = ChardevSignals::open(&pins, debounce).unwrap();
    drop(again);
}

#[test]
fn on_gpio_sim_an_active_high_input_with_a_pull_down_fires_high() {
    if !gpio_sim_or_skip("on_gpio_sim_an_active_high_input_with_a_pull_down_fires_high") {
        return;
    }
    let sim = SimChip::create("keymother-test", &["", "", "", "", ""]).unwrap();
    let chip = sim.chip_name();
    let pins = Pins {
        ready_led: on_chip(chip, READY),
        busy_led: on_chip(chip, BUSY),
        error_led: on_chip(chip, ERROR),
        buzzer: on_chip(chip, BUZZER),
        tamper: on_chip(chip, TAMPER),
        tamper_active_low: false,
        tamper_pull_up: false,
    };
    let mut signals = ChardevSignals::open(&pins, Duration::from_millis(10)).unwrap();
    assert!(!sim.value(TAMPER).unwrap(), "the bias is a pull-down");
    assert!(!signals.tamper_asserted().unwrap());
    sim.set_pull(TAMPER, true).unwrap();
    within(Duration::from_secs(3), "the tamper input asserted", || {
        signals.tamper_asserted().unwrap()
    });
}

#[test]
fn on_gpio_sim_a_bcm_number_is_an_offset_of_the_pis_chip() {
    if !gpio_sim_or_skip("on_gpio_sim_a_bcm_number_is_an_offset_of_the_pis_chip") {
        return;
    }
    let pi_chip_here = gpiocdev_labels()
        .iter()
        .any(|label| keymother_gpio::PI_CHIP_LABELS.contains(&label.as_str()));
    if pi_chip_here {
        eprintln!("SKIPPED the BCM part: this machine has a Raspberry Pi GPIO chip of its own");
        return;
    }
    // A simulated chip that calls itself the Pi's, with its lines unnamed.
    let sim = SimChip::create("pinctrl-bcm2835", &[""; 28]).unwrap();
    let pins = Pins {
        ready_led: LineSpec::Bcm(17),
        busy_led: LineSpec::Bcm(27),
        error_led: LineSpec::Bcm(22),
        buzzer: LineSpec::Bcm(18),
        tamper: LineSpec::Bcm(23),
        tamper_active_low: true,
        tamper_pull_up: true,
    };
    let mut signals = ChardevSignals::open(&pins, Duration::from_millis(10)).unwrap();
    signals.set_led(Led::Busy, true).unwrap();
    assert!(sim.value(27).unwrap());
    assert!(sim.value(23).unwrap(), "pull-up on BCM 23");
    sim.set_pull(23, false).unwrap();
    within(Duration::from_secs(3), "BCM 23 asserted", || {
        signals.tamper_asserted().unwrap()
    });
}

/// The labels of this machine's GPIO chips (those this user can open).
fn gpiocdev_labels() -> Vec<String> {
    gpiocdev::chip::chips()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|path| gpiocdev::Chip::from_path(path).ok()?.info().ok())
        .map(|info| info.label)
        .collect()
}

#[test]
fn on_gpio_sim_names_must_be_unique_and_found_and_lines_different() {
    if !gpio_sim_or_skip("on_gpio_sim_names_must_be_unique_and_found_and_lines_different") {
        return;
    }
    let twice = unique("names", "twice");
    let names: Vec<String> = ["a", "b", "c", "d"]
        .iter()
        .map(|line| unique("names", line))
        .collect();
    let first = SimChip::create(
        "keymother-test",
        &[&names[0], &names[1], &names[2], &names[3], &twice],
    )
    .unwrap();
    let second = SimChip::create("keymother-test", &[&twice]).unwrap();
    let pins = Pins {
        ready_led: named(&names[0]),
        busy_led: named(&names[1]),
        error_led: named(&names[2]),
        buzzer: named(&names[3]),
        tamper: named(&twice),
        tamper_active_low: true,
        tamper_pull_up: true,
    };
    let message = ChardevSignals::open(&pins, Duration::ZERO)
        .unwrap_err()
        .to_string();
    let expected = format!(
        "GPIO line {twice} (tamper input): 2 lines are named {twice:?} ({}:4, {}:0): name one by chip and offset instead",
        first.chip_name(),
        second.chip_name()
    );
    assert!(message.starts_with(&expected), "{message}");

    let missing = unique("names", "missing");
    let message = ChardevSignals::open(
        &Pins {
            tamper: named(&missing),
            ..pins.clone()
        },
        Duration::ZERO,
    )
    .unwrap_err()
    .to_string();
    assert!(
        message.starts_with(&format!(
            "no GPIO line {missing} (tamper input) on any /dev/gpiochip*: no line is named {missing:?} (searched "
        )),
        "{message}"
    );
    assert!(message.contains(first.chip_name()), "{message}");

    // The same line by name and by chip and offset.
    let message = ChardevSignals::open(
        &Pins {
            tamper: on_chip(first.chip_name(), 0),
            ..pins.clone()
        },
        Duration::ZERO,
    )
    .unwrap_err()
    .to_string();
    assert!(
        message.contains("is also the ready LED")
            && message.contains("every line must be different"),
        "{message}"
    );

    // An offset past the chip's lines.
    let message = ChardevSignals::open(
        &Pins {
            tamper: on_chip(second.chip_name(), 1),
            ..pins.clone()
        },
        Duration::ZERO,
    )
    .unwrap_err()
    .to_string();
    assert!(
        message.contains(&format!(
            "{} (\"keymother-test\") has no line 1: its lines are 0 to 0",
            second.chip_name()
        )),
        "{message}"
    );

    // A line another program holds: who has it.
    let holder = gpiocdev::Request::builder()
        .on_chip(first.dev_path())
        .with_consumer("someone-else")
        .with_line(2)
        .as_input()
        .request()
        .unwrap();
    let message = ChardevSignals::open(
        &Pins {
            tamper: on_chip(second.chip_name(), 0),
            ..pins
        },
        Duration::ZERO,
    )
    .unwrap_err()
    .to_string();
    assert!(
        message.starts_with(&format!(
            "GPIO line {} (error LED): {}:2 ({:?}) is in use by \"someone-else\"",
            names[2],
            first.chip_name(),
            names[2]
        )),
        "{message}"
    );
    drop(holder);
}
