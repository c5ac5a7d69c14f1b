//! The key modes: how a reserved master key leaves the appliance, one file per mode, chosen by the terminal's request.
//!
//! A mode is prepared before anything is reserved (its own checks: certificate mode verifies
//! the device certificate here) and delivers once the master key is reserved and unwrapped
//! under the KEK. A new mode is a file beside these, `mod` for it and its line in
//! [`prepare`].

mod certificate;
mod tr31;

use std::fmt::Display;

use keymother_crypto::SecretKey;
use keymother_domain::KeyIndex;
use keymother_protocol::{Delivery, DispenseRefusal, ModeRequest, TerminalIdentity};

use super::Dispenser;
use super::secrets::LoadedKeys;

/// A key mode prepared for one request: what it checked and holds before anything was
/// reserved, and how it delivers the master key once it is.
pub(super) trait Mode {
    /// Wraps or seals the clear master key for the terminal.
    fn deliver(&self, key: &ClearKey<'_>) -> Result<Delivery, DispenseRefusal>;
}

/// Prepares the mode `request` asks for; a refusal here comes before anything is reserved.
pub(super) fn prepare(
    dispenser: &Dispenser,
    terminal: &TerminalIdentity,
    request: &ModeRequest,
) -> Result<Box<dyn Mode>, DispenseRefusal> {
    match request {
        // Profile mode's master key travels as in tr31 mode.
        ModeRequest::Tr31 | ModeRequest::Profile => tr31::prepare(),
        ModeRequest::Certificate(request) => certificate::prepare(dispenser, terminal, request),
    }
}

/// The reserved master key in the clear, between unwrapping under the KEK and the mode's
/// delivery, with what it was reserved for.
pub(super) struct ClearKey<'a> {
    pub(super) master_key: &'a SecretKey,
    pub(super) key_index: KeyIndex,
    /// The KEK and the TTK, loaded (and read-locked) for the whole reservation.
    pub(super) keys: &'a LoadedKeys,
}

impl ClearKey<'_> {
    /// An internal refusal naming this key: [`key_refusal`].
    fn refusal(&self, what: &str, error: &dyn Display) -> DispenseRefusal {
        key_refusal(self.key_index, what, error)
    }
}

/// An internal refusal naming the key it is about: `key 00000042: {what}: {error}`.
pub(super) fn key_refusal(key_index: KeyIndex, what: &str, error: &dyn Display) -> DispenseRefusal {
    DispenseRefusal::Internal(format!("key {key_index}: {what}: {error}"))
}
