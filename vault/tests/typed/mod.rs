//! Domain values from the text and numbers the tests write: `as_serial("123L013K")`, `as_index(101)`.
#![allow(clippy::unwrap_used, dead_code)]

use std::fmt::Display;

use keymother_domain::{HardwareSerial, Kcv, KeyIndex, Smn, TerminalModel};

pub fn as_serial(text: impl Display) -> HardwareSerial {
    text.to_string().parse().unwrap()
}

pub fn as_kcv(text: impl Display) -> Kcv {
    text.to_string().parse().unwrap()
}

pub fn as_smn(text: impl Display) -> Smn {
    text.to_string().parse().unwrap()
}

pub fn as_model(text: impl Display) -> TerminalModel {
    text.to_string().parse().unwrap()
}

/// A key index from a number or a `KeyIndex`.
pub fn as_index(value: impl Display) -> KeyIndex {
    format!("{:0>8}", value.to_string()).parse().unwrap()
}

/// A value that lives as long as the test, for reports that borrow it.
pub fn leak<T>(value: T) -> &'static T {
    Box::leak(Box::new(value))
}
