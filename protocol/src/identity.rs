//! Terminal identities: hardware serial, model, and the security module number (SMN), from the domain crate where their rules are written once.

pub use keymother_domain::{
    HardwareSerial, IdentityError, KeyIndex, MAX_HARDWARE_SERIAL_LENGTH, MAX_KEY_INDEX,
    MAX_SMN_LENGTH, MAX_TERMINAL_MODEL_LENGTH, MIN_SMN_LENGTH, SMN_INDEX_DIGITS, Smn,
    TerminalModel,
};
