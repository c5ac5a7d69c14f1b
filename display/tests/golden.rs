//! Golden images: every screen rendered from fixed state, compared pixel for pixel with the PNGs in tests/golden/.
//!
//! After an intended change of a screen, regenerate with
//! `KEYMOTHER_REGENERATE_GOLDEN=1 cargo test -p keymother-display --test golden`
//! and look at the changed PNGs before committing them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use keymother_display::{
    Framebuffer, InjectionStep, LockReason, NotConfirmedCause, Screen, gallery, render,
};

fn golden_directory() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn actual_directory() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("golden-actual")
}

fn regenerating() -> bool {
    std::env::var_os("KEYMOTHER_REGENERATE_GOLDEN").is_some_and(|value| value == "1")
}

fn ready(keys_left: u64, operator: Option<&str>) -> Screen {
    Screen::Ready {
        keys_left,
        ports_open: 4,
        ports_total: 4,
        operator: operator.map(str::to_owned),
    }
}

fn injecting(port: &str, hardware_serial: &str, step: InjectionStep) -> Screen {
    Screen::Injecting {
        port: port.to_owned(),
        hardware_serial: hardware_serial.to_owned(),
        step,
    }
}

fn low_inventory(keys_left: u64, operator: Option<&str>) -> Screen {
    Screen::LowInventory {
        keys_left,
        ports_open: 2,
        operator: operator.map(str::to_owned),
    }
}

/// The gallery (the README's screens) and the layouts at their limits.
fn cases() -> Vec<(String, Screen)> {
    let mut cases: Vec<(String, Screen)> = gallery()
        .into_iter()
        .map(|(name, screen)| (name.to_owned(), screen))
        .collect();
    let longest_serial = "ABCDEFGHJKLMNPQRSTUVWXYZ"; // 24 characters, the protocol's maximum
    let longest_port = "bench-rack-2-left-usb-adapter-07"; // 32 characters, the settings' maximum
    let extra = [
        (
            "booting-long-version",
            Screen::Booting {
                version: "0.1.0-dev+20250101.abcdef0123".to_owned(),
            },
        ),
        ("ready-1-key", ready(1, Some("alice"))),
        ("ready-99999999-keys", ready(99_999_999, Some("alice"))),
        ("ready-most-keys", ready(u64::MAX, None)),
        (
            "ready-long-operator",
            ready(5_000, Some("María-Fernanda Hernández González")),
        ),
        (
            "injecting-hello",
            injecting("bench-1", "123L013K", InjectionStep::Hello),
        ),
        (
            "injecting-delivered",
            injecting("bench-1", "123L013K", InjectionStep::Delivered),
        ),
        (
            "injecting-confirming",
            injecting("/dev/ttyUSB0", "123L013K", InjectionStep::Confirming),
        ),
        (
            "injecting-serial-18",
            injecting("bench-2", "PAX0A920SN01234567", InjectionStep::KeyRequested),
        ),
        (
            "injecting-long-serial",
            injecting("bench-2", longest_serial, InjectionStep::KeyRequested),
        ),
        (
            "injecting-long-port",
            injecting(longest_port, "123L013K", InjectionStep::Delivered),
        ),
        (
            "injected-long-smn",
            Screen::Injected {
                port: longest_port.to_owned(),
                key_index: 99_999_999,
                smn: format!("{longest_serial}99999999"),
                low_inventory: None,
            },
        ),
        (
            "injected-largest-index",
            Screen::Injected {
                port: "bench-4".to_owned(),
                key_index: u32::MAX,
                smn: "123L013K4294967295".to_owned(),
                low_inventory: None,
            },
        ),
        (
            "injected-low-inventory",
            Screen::Injected {
                port: "bench-1".to_owned(),
                key_index: 279,
                smn: "123L013K00000279".to_owned(),
                low_inventory: Some(12),
            },
        ),
        (
            "injected-low-inventory-long-port",
            Screen::Injected {
                port: longest_port.to_owned(),
                key_index: 99_999_999,
                smn: "123L013K99999999".to_owned(),
                low_inventory: Some(9_999),
            },
        ),
        (
            "not-confirmed-port-lost",
            Screen::NotConfirmed {
                port: "/dev/ttyUSB0".to_owned(),
                hardware_serial: "PAX0A920SN01234567".to_owned(),
                key_index: Some(4_294_967_295),
                cause: NotConfirmedCause::PortLost,
            },
        ),
        (
            "not-confirmed-aborted-long",
            Screen::NotConfirmed {
                port: longest_port.to_owned(),
                hardware_serial: longest_serial.to_owned(),
                key_index: None,
                cause: NotConfirmedCause::Aborted,
            },
        ),
        (
            "error-no-port",
            Screen::Error {
                port: None,
                reason: "vault locked".to_owned(),
            },
        ),
        (
            "error-medium",
            Screen::Error {
                port: Some("bench-1".to_owned()),
                reason: "terminal refused the key block: check its TTK".to_owned(),
            },
        ),
        (
            "error-too-long",
            Screen::Error {
                port: Some(longest_port.to_owned()),
                reason: "the terminal sent a frame that could not be decoded, \
                         then another, and then closed the line while the appliance was still \
                         waiting for the confirmation of key 00000280; unplug the terminal, \
                         check the cable and the baud rate, and plug it in again"
                    .to_owned(),
            },
        ),
        (
            "error-empty-reason",
            Screen::Error {
                port: Some("bench-1".to_owned()),
                reason: " \n".to_owned(),
            },
        ),
        ("low-inventory-1-key", low_inventory(1, None)),
        (
            "low-inventory-99999999-keys",
            low_inventory(99_999_999, Some("bob")),
        ),
    ];
    cases.extend(
        extra
            .into_iter()
            .map(|(name, screen)| (name.to_owned(), screen)),
    );
    cases
}

/// Fails to compile when a screen is added without a golden case in mind.
fn variant(screen: &Screen) -> &'static str {
    match screen {
        Screen::Booting { .. } => "booting",
        Screen::Locked { reason } => match reason {
            LockReason::NoKeys => "locked/no-keys",
            LockReason::NoOperator => "locked/no-operator",
            LockReason::Tampered => "locked/tampered",
            LockReason::Zeroized => "locked/zeroized",
        },
        Screen::Ready { .. } => "ready",
        Screen::Injecting { step, .. } => match step {
            InjectionStep::Hello => "injecting/hello",
            InjectionStep::KeyRequested => "injecting/key-requested",
            InjectionStep::Delivered => "injecting/delivered",
            InjectionStep::Confirming => "injecting/confirming",
        },
        Screen::Injected { .. } => "injected",
        Screen::Error { .. } => "error",
        Screen::NotConfirmed { cause, .. } => match cause {
            NotConfirmedCause::StoppedAnswering => "not-confirmed/stopped-answering",
            NotConfirmedCause::PortLost => "not-confirmed/port-lost",
            NotConfirmedCause::Aborted => "not-confirmed/aborted",
        },
        Screen::LowInventory { .. } => "low-inventory",
        Screen::Tamper => "tamper",
    }
}

#[test]
fn every_screen_matches_its_golden_image() {
    let cases = cases();
    let golden = golden_directory();
    let actual = actual_directory();
    if regenerating() {
        std::fs::create_dir_all(&golden).unwrap();
    }
    let mut failures = Vec::new();
    for (name, screen) in &cases {
        let frame = render(screen);
        let file = golden.join(format!("{name}.png"));
        if regenerating() {
            std::fs::write(&file, frame.to_png()).unwrap();
            continue;
        }
        let expected = match std::fs::read(&file) {
            Ok(bytes) => Framebuffer::from_png(&bytes)
                .unwrap_or_else(|error| panic!("{}: {error}", file.display())),
            Err(error) => {
                failures.push(format!(
                    "{name}: no golden image {} ({error}); regenerate with KEYMOTHER_REGENERATE_GOLDEN=1",
                    file.display()
                ));
                continue;
            }
        };
        if expected != frame {
            std::fs::create_dir_all(&actual).unwrap();
            let written = actual.join(format!("{name}.png"));
            std::fs::write(&written, frame.to_png()).unwrap();
            failures.push(format!(
                "{name}: {} pixels differ from {}; this rendering is in {}\n{frame:?}",
                expected.differing_pixels(&frame),
                file.display(),
                written.display()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} screens differ from their golden images (after an intended change, \
         regenerate with KEYMOTHER_REGENERATE_GOLDEN=1 and look at them):\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn every_golden_image_belongs_to_a_case() {
    let names: BTreeSet<String> = cases()
        .into_iter()
        .map(|(name, _)| format!("{name}.png"))
        .collect();
    let mut stray = Vec::new();
    for entry in std::fs::read_dir(golden_directory()).unwrap() {
        let file_name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if !names.contains(&file_name) {
            stray.push(file_name);
        }
    }
    assert!(stray.is_empty(), "golden images without a case: {stray:?}");
}

#[test]
fn the_cases_cover_every_screen_variant_and_have_unique_names() {
    let cases = cases();
    let covered: BTreeSet<&str> = cases.iter().map(|(_, screen)| variant(screen)).collect();
    let every = [
        "booting",
        "locked/no-keys",
        "locked/no-operator",
        "locked/tampered",
        "locked/zeroized",
        "ready",
        "injecting/hello",
        "injecting/key-requested",
        "injecting/delivered",
        "injecting/confirming",
        "injected",
        "error",
        "not-confirmed/stopped-answering",
        "not-confirmed/port-lost",
        "not-confirmed/aborted",
        "low-inventory",
        "tamper",
    ];
    for variant in every {
        assert!(covered.contains(variant), "no golden case for {variant}");
    }
    let names: BTreeSet<&str> = cases.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names.len(), cases.len(), "two cases share a name");
}

#[test]
fn different_screens_look_different() {
    let cases = cases();
    for (index, (name, screen)) in cases.iter().enumerate() {
        let frame = render(screen);
        assert!(frame.lit_pixels() > 0, "{name} is blank");
        for (other_name, other) in &cases[index + 1..] {
            if screen != other {
                assert_ne!(
                    frame,
                    render(other),
                    "{name} and {other_name} look the same"
                );
            }
        }
    }
}
