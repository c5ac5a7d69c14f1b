//! The dispensing steps: reserve the terminal's key and deliver it in the mode it asked for, record it sent, then check and record the terminal's confirmation.

use keymother_crypto::Kcv;
use keymother_domain::KeyIndex;
use keymother_protocol::{
    ConfirmRefusal, Confirmed, Delivery, DispenseRefusal, ModeRequest, Smn, TerminalIdentity,
};
use keymother_vault::{ConfirmationReport, DispenseError, KeySlot, Vault};

use super::Dispenser;
use super::modes::{self, ClearKey};

impl Dispenser {
    /// Reserves (durably, before returning) the terminal's key and wraps it for the terminal
    /// in the mode it asked for: under the TTK (tr31) or sealed under an ephemeral key
    /// (certificate mode).
    ///
    /// In this order: the terminal's admission (its serial claimed for this port, and no
    /// confirmed master key unless a re-injection was granted), the mode's own checks
    /// (certificate mode verifies the device), the expected-device list when one is required
    /// (`expected.rs`), then
    /// whether keys may flow (keys loaded, no tamper, the tamper input watched if it must
    /// be, an operator logged in if one is required), then the reservation in the vault,
    /// the master key unwrapped under the KEK and checked against its stored check value,
    /// and last the mode's delivery.
    pub fn reserve(
        &self,
        terminal: &TerminalIdentity,
        request: &ModeRequest,
        port: &str,
    ) -> Result<Delivery, DispenseRefusal> {
        self.admit(terminal, port, &KeySlot::Master)?;
        let mode = modes::prepare(self, terminal, request)?;
        self.admit_device(terminal, request, port)?;
        let keys = self.keys();
        let Some(keys) = keys.as_ref() else {
            return Err(DispenseRefusal::NotReady);
        };
        self.check_tamper()?;
        let serial = &terminal.hardware_serial;
        let reservation = self.with_operator(|vault, operator| {
            vault
                .reserve_key_for(serial, port, operator, Some(&terminal.model))
                .map_err(|error| match error {
                    DispenseError::NoKeysAvailable => DispenseRefusal::NoKeysAvailable,
                    refused @ DispenseError::AlreadyInjected { .. } => {
                        DispenseRefusal::AlreadyInjected(refused.to_string())
                    }
                    other => DispenseRefusal::Internal(other.to_string()),
                })
        })?;
        self.touch();
        let internal = |what: &str, error: &dyn std::fmt::Display| {
            modes::key_refusal(reservation.key_index, what, error)
        };
        let unwrapped = keys
            .kek
            .unwrap(&reservation.key_block)
            .map_err(|error| internal("does not open under the KEK", &error))?;
        let master_key = unwrapped.key;
        if master_key.kcv() != reservation.kcv {
            return Err(internal("stored check value differs", &reservation.kcv));
        }
        mode.deliver(&ClearKey {
            master_key: &master_key,
            key_index: reservation.key_index,
            keys,
        })
    }

    /// Refuses while a tamper is outstanding, or while the tamper input must be watched and
    /// is not.
    pub(super) fn check_tamper(&self) -> Result<(), DispenseRefusal> {
        // A tamper sets its lock before it drops the keys: with both checked, a tamper that
        // has begun refuses here whichever step it is at.
        if self.tampered().is_some() {
            return Err(DispenseRefusal::NotReady);
        }
        // A vault the background integrity check found damaged dispenses nothing more.
        if self.vault_damaged().is_some() {
            return Err(DispenseRefusal::NotReady);
        }
        if self.tamper_input_missing().is_some() {
            return Err(DispenseRefusal::TamperInputUnwatched);
        }
        Ok(())
    }

    /// Runs `work` on the vault for the operator logged in now (if any), refused when an
    /// operator is required and none is logged in. The sessions are held from that check
    /// until `work` has returned, the vault under them (the lock order, [`super::Rank`]).
    pub(super) fn with_operator<T>(
        &self,
        work: impl FnOnce(&mut Vault, Option<&str>) -> Result<T, DispenseRefusal>,
    ) -> Result<T, DispenseRefusal> {
        // Held until the reservation is committed: a logout that returned has stopped every
        // reservation after it.
        let mut sessions = self.sessions();
        let operator = self.current_operator(&mut sessions, keymother_vault::clock::now());
        if operator.is_none() && sessions.required() {
            return Err(DispenseRefusal::NoOperator);
        }
        let outcome = work(&mut self.vault(), operator.as_deref());
        drop(sessions);
        outcome
    }

    /// Records that the delivery was written to the port.
    pub fn mark_sent(
        &self,
        terminal: &TerminalIdentity,
        key_index: u32,
    ) -> Result<(), DispenseError> {
        let key_index = protocol_index(key_index).map_err(|_| DispenseError::NotDeliveredTo {
            key_index: KeyIndex::ZERO,
            hardware_serial: terminal.hardware_serial.clone(),
        })?;
        self.vault().mark_sent(key_index, &terminal.hardware_serial)
    }

    /// Checks and records the terminal's confirmation, with the operator it names: the one
    /// the key was reserved under. A confirmation is recorded even when that session has
    /// ended since (the key already left); see [`Vault::confirm_key_by`].
    pub fn confirm(
        &self,
        terminal: &TerminalIdentity,
        key_index: u32,
        kcv: &[u8],
        smn: &Smn,
        port: &str,
    ) -> Result<(Confirmed, Option<String>), ConfirmRefusal> {
        let operator = {
            let mut sessions = self.sessions();
            self.current_operator(&mut sessions, keymother_vault::clock::now())
        };
        let (Ok(index), Ok(kcv)) = (protocol_index(key_index), Kcv::from_bytes_any(kcv)) else {
            // The protocol's codec checked both; a value out of their ranges never arrives.
            return Err(ConfirmRefusal::Internal(
                "the confirmation's key index or check value is out of range".to_owned(),
            ));
        };
        let report = ConfirmationReport {
            key_index: index,
            hardware_serial: &terminal.hardware_serial,
            kcv,
            smn,
            port,
            terminal_model: &terminal.model,
        };
        let confirmed =
            self.vault()
                .confirm_key_by(&report, self.quarantine_after, operator.as_deref());
        self.touch();
        match confirmed {
            Ok(injection) => Ok((
                Confirmed {
                    key_index,
                    smn: smn.clone(),
                },
                injection.operator,
            )),
            Err(DispenseError::KcvMismatch { quarantined, .. }) => {
                Err(ConfirmRefusal::KcvMismatch { quarantined })
            }
            Err(DispenseError::NotDeliveredTo { .. } | DispenseError::SmnMismatch { .. }) => {
                Err(ConfirmRefusal::NotDelivered)
            }
            Err(other) => Err(ConfirmRefusal::Internal(other.to_string())),
        }
    }
}

/// The key index of a protocol message (a number its codec has checked) as the domain's type.
fn protocol_index(key_index: u32) -> Result<KeyIndex, keymother_domain::KeyIndexError> {
    KeyIndex::try_from(key_index)
}
