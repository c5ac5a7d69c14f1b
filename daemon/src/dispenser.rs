//! The dispensing adapter: turns the session's Reserve and Confirm actions into vault transactions, re-wrapping each master key from the KEK to the TTK.
//!
//! The clear master key exists only inside `reserve`, between unwrapping under the KEK and
//! wrapping under the TTK, in a `SecretKey` that zeroizes when the function returns.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use keymother_crypto::tr31::{
    Algorithm, Exportability, Header, KeyBlockProtectionKey, KeyUsage, ModeOfUse, Version,
};
use keymother_crypto::{Kcv, KeyFamily};
use keymother_protocol::{
    ConfirmRefusal, Confirmed, Delivery, DispenseRefusal, Smn, TerminalIdentity,
};
use keymother_vault::{ConfirmationReport, DispenseError, SecretName, Vault, VaultError};

/// The vault and the two keys dispensing needs, held for the daemon's lifetime.
pub struct Dispenser {
    vault: Mutex<Vault>,
    kek: KeyBlockProtectionKey,
    ttk: KeyBlockProtectionKey,
    ttk_version: Version,
    ttk_kcv: Kcv,
    device_id: String,
    quarantine_after: u32,
}

/// Why the daemon could not start dispensing.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("opening the vault: {0}")]
    Vault(#[from] VaultError),
    #[error("opening the vault: {0}")]
    Task(String),
}

impl Dispenser {
    /// Opens the vault in `data_dir` and unseals the KEK and the TTK.
    pub fn open(data_dir: &Path, quarantine_after: u32) -> Result<Dispenser, OpenError> {
        let vault = Vault::open(data_dir)?;
        let kek = vault.load_secret(SecretName::Kek)?;
        let ttk = vault.load_secret(SecretName::Ttk)?;
        let ttk_version = match ttk.algorithm().family() {
            KeyFamily::Tdes => Version::B,
            KeyFamily::Aes => Version::D,
        };
        Ok(Dispenser {
            device_id: vault.device_id().to_string(),
            kek: KeyBlockProtectionKey::new(&kek),
            ttk: KeyBlockProtectionKey::new(&ttk),
            ttk_version,
            ttk_kcv: ttk.kcv(),
            vault: Mutex::new(vault),
            quarantine_after,
        })
    }

    /// The appliance's device id.
    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// The TTK's check value, announced to terminals so a wrong TTK shows before any key flows.
    pub fn ttk_kcv(&self) -> Kcv {
        self.ttk_kcv
    }

    fn vault(&self) -> MutexGuard<'_, Vault> {
        // A panic while holding the lock aborts the process (panic = "abort" in release), and
        // every vault operation is its own transaction, so a poisoned lock holds a consistent
        // vault: carry on with it.
        self.vault
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reserves (durably, before returning) the terminal's key and wraps it under the TTK.
    pub fn reserve(
        &self,
        terminal: &TerminalIdentity,
        port: &str,
    ) -> Result<Delivery, DispenseRefusal> {
        let serial = terminal.hardware_serial.to_string();
        let reservation = self
            .vault()
            .reserve_key(&serial, port)
            .map_err(|error| match error {
                DispenseError::NoKeysAvailable => DispenseRefusal::NoKeysAvailable,
                other => DispenseRefusal::Internal(other.to_string()),
            })?;
        let internal = |what: &str, error: &dyn std::fmt::Display| {
            DispenseRefusal::Internal(format!("key {:08}: {what}: {error}", reservation.key_index))
        };
        let unwrapped = self
            .kek
            .unwrap(&reservation.key_block)
            .map_err(|error| internal("does not open under the KEK", &error))?;
        let master_key = unwrapped.key;
        if master_key.kcv().to_string() != reservation.kcv {
            return Err(internal("stored check value differs", &reservation.kcv));
        }
        let algorithm = match master_key.algorithm().family() {
            KeyFamily::Tdes => Algorithm::Tdes,
            KeyFamily::Aes => Algorithm::Aes,
        };
        // For the terminal the master key unwraps working keys: decrypt only, not exportable.
        let header = Header::new(
            self.ttk_version,
            KeyUsage::KeyEncryption,
            algorithm,
            ModeOfUse::DecryptOnly,
            Exportability::NonExportable,
        );
        let key_block = self
            .ttk
            .wrap(&header, &master_key)
            .map_err(|error| internal("cannot be wrapped under the TTK", &error))?;
        Ok(Delivery {
            key_index: reservation.key_index,
            key_block,
            kcv: master_key.kcv().as_bytes().to_vec(),
        })
    }

    /// Records that the delivery was written to the port.
    pub fn mark_sent(
        &self,
        terminal: &TerminalIdentity,
        key_index: u32,
    ) -> Result<(), DispenseError> {
        self.vault()
            .mark_sent(key_index, &terminal.hardware_serial.to_string())
    }

    /// Checks and records the terminal's confirmation.
    pub fn confirm(
        &self,
        terminal: &TerminalIdentity,
        key_index: u32,
        kcv: &[u8],
        smn: &Smn,
        port: &str,
    ) -> Result<Confirmed, ConfirmRefusal> {
        let serial = terminal.hardware_serial.to_string();
        let kcv = kcv
            .iter()
            .map(|byte| format!("{byte:02X}"))
            .collect::<String>();
        let smn_text = smn.to_string();
        let model = terminal.model.to_string();
        let report = ConfirmationReport {
            key_index,
            hardware_serial: &serial,
            kcv: &kcv,
            smn: &smn_text,
            port,
            terminal_model: &model,
        };
        match self.vault().confirm_key(&report, self.quarantine_after) {
            Ok(_) => Ok(Confirmed {
                key_index,
                smn: smn.clone(),
            }),
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
