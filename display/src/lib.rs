//! The bench display: every appliance screen drawn with embedded-graphics for a 128x64 monochrome panel, and the panels that show them.
//!
//! Rendering is sans-IO: [`render`] draws a [`Screen`] into a [`Framebuffer`]; a [`Panel`]
//! shows frames: an [`Ssd1306Panel`] over Linux I2C on the Pi, a [`MemoryPanel`] in tests
//! and the demo, or a PNG ([`Framebuffer::to_png`]) anywhere. [`BenchDisplay`] ties them
//! together and turns a missing or failing panel into a logged warning.
//!
//! The one thing the technician must see (READY and the key count, INJECTED and the key
//! index, the error's reason, TAMPER) is drawn big, in 10x20 or 9x15 bold characters;
//! details use 6x10 characters, 21 to a line.

mod error;
mod framebuffer;
mod panel;
mod screens;
#[cfg(feature = "ssd1306")]
mod ssd1306_panel;
mod text;
mod widgets;

pub use error::DisplayError;
pub use framebuffer::{Framebuffer, MAX_PNG_SCALE};
pub use panel::{BenchDisplay, MemoryPanel, Panel};
#[cfg(feature = "ssd1306")]
pub use ssd1306_panel::{SSD1306_DEFAULT_ADDRESS, Ssd1306Panel};

/// Panel width in pixels.
pub const WIDTH: u32 = 128;
/// Panel height in pixels.
pub const HEIGHT: u32 = 64;

/// Why the appliance dispenses no key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockReason {
    /// The KEK or the TTK is not loaded: the custodians run the key ceremonies.
    NoKeys,
    /// Operator login is required and nobody is logged in.
    NoOperator,
    /// The tamper input fired: keys were erased, the custodians must reload them.
    Tampered,
    /// The security officer zeroized the appliance.
    Zeroized,
}

/// Where an injection is, in the order a terminal goes through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InjectionStep {
    /// The terminal said hello.
    Hello,
    /// The terminal asked for a key; it is reserved.
    KeyRequested,
    /// The key was sent.
    Delivered,
    /// Waiting for the terminal's confirmation (its KCV and SMN).
    Confirming,
}

/// Why a terminal never confirmed the key delivered to it, as the error screen words it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotConfirmedCause {
    /// It sent nothing for the idle timeout after the delivery.
    StoppedAnswering,
    /// Its port closed or failed: a cable pulled, an adapter unplugged.
    PortLost,
    /// It sent ABORT after the delivery.
    Aborted,
}

/// What the display shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Screen {
    /// The daemon is starting.
    Booting { version: String },
    /// No key is dispensed, and why.
    Locked { reason: LockReason },
    /// Keys are dispensed: how many are left, how many ports are open, who is logged in
    /// (`None` when no login is required).
    Ready {
        keys_left: u64,
        ports_open: usize,
        ports_total: usize,
        operator: Option<String>,
    },
    /// A terminal is being injected on `port`.
    Injecting {
        port: String,
        hardware_serial: String,
        step: InjectionStep,
    },
    /// A terminal confirmed its key; its SMN is recorded. `low_inventory`: the keys left
    /// when fewer than the warning level remain, said in an inverted status bar (the
    /// result stays on the screen).
    Injected {
        port: String,
        key_index: u32,
        smn: String,
        low_inventory: Option<u64>,
    },
    /// A terminal on `port` never confirmed the key delivered to it (`key_index`, when a
    /// master key was): the error screen naming the port, the terminal's serial and why.
    /// The key stays reserved for that terminal.
    NotConfirmed {
        port: String,
        hardware_serial: String,
        key_index: Option<u32>,
        cause: NotConfirmedCause,
    },
    /// Something a technician can act on went wrong (on `port`, if it concerns one). The
    /// reason is short ("cable pulled out", "KCV mismatch: check terminal"); a long one is
    /// wrapped in smaller characters and, past five lines, cut with "..".
    Error {
        port: Option<String>,
        reason: String,
    },
    /// Keys are dispensed but few are left: a custodian should load a key file.
    LowInventory {
        keys_left: u64,
        ports_open: usize,
        operator: Option<String>,
    },
    /// The tamper input fired: keys are erased.
    Tamper,
}

/// Draws `screen` into a new frame.
pub fn render(screen: &Screen) -> Framebuffer {
    screens::render(screen)
}

/// One example of every screen (several where the layout differs), each with the name of
/// its PNG as `keymother display-preview` writes it: `<name>.png`.
pub fn gallery() -> Vec<(&'static str, Screen)> {
    let operator = Some("alice".to_owned());
    vec![
        (
            "booting",
            Screen::Booting {
                version: "0.1.0".to_owned(),
            },
        ),
        (
            "locked-no-keys",
            Screen::Locked {
                reason: LockReason::NoKeys,
            },
        ),
        (
            "locked-no-operator",
            Screen::Locked {
                reason: LockReason::NoOperator,
            },
        ),
        (
            "locked-tampered",
            Screen::Locked {
                reason: LockReason::Tampered,
            },
        ),
        (
            "locked-zeroized",
            Screen::Locked {
                reason: LockReason::Zeroized,
            },
        ),
        (
            "ready",
            Screen::Ready {
                keys_left: 99_988,
                ports_open: 4,
                ports_total: 4,
                operator: operator.clone(),
            },
        ),
        (
            "ready-no-login",
            Screen::Ready {
                keys_left: 1,
                ports_open: 3,
                ports_total: 4,
                operator: None,
            },
        ),
        (
            "injecting",
            Screen::Injecting {
                port: "bench-1".to_owned(),
                hardware_serial: "123L013K".to_owned(),
                step: InjectionStep::KeyRequested,
            },
        ),
        (
            "injected",
            Screen::Injected {
                port: "bench-1".to_owned(),
                key_index: 278,
                smn: "123L013K00000278".to_owned(),
                low_inventory: None,
            },
        ),
        (
            "error",
            Screen::Error {
                port: Some("bench-2".to_owned()),
                reason: "KCV mismatch: check terminal".to_owned(),
            },
        ),
        (
            "error-long",
            Screen::NotConfirmed {
                port: "bench-3".to_owned(),
                hardware_serial: "123L013K".to_owned(),
                key_index: Some(279),
                cause: NotConfirmedCause::StoppedAnswering,
            },
        ),
        (
            "low-inventory",
            Screen::LowInventory {
                keys_left: 12,
                ports_open: 4,
                operator,
            },
        ),
        ("tamper", Screen::Tamper),
    ]
}
