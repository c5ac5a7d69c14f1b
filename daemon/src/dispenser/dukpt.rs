//! DUKPT on the dispenser: loading a BDK (a custodian ceremony), what the profiles need to know of the BDKs loaded, and, per DUKPT slot, reserving, sending and confirming an initial key.

use std::sync::atomic::Ordering;

use keymother_crypto::dukpt::InitialKeyIdentity;
use keymother_crypto::{Kcv, SecretKey};
use keymother_domain::{BdkId, BdkName, DukptDeviceId, HardwareSerial};
use keymother_protocol::profile::DukptSlot;
use keymother_protocol::{ConfirmRefusal, DispenseRefusal, DukptDelivery, TerminalIdentity};
use keymother_vault::{
    BdkImportError, BdkStatus, ConfirmedDukpt, DerivedKeyFacts, DukptConfirmation, DukptError,
    KeySlot, NewBdk, ReserveDukptError, Vault,
};

use super::Dispenser;

impl Dispenser {
    /// A BDK ceremony: seals `key` under `record` (audited as `bdk-loaded`) and lets the ports
    /// offer the profiles that use it from their next HELLO on.
    pub fn install_bdk(
        &self,
        record: &NewBdk,
        key: &SecretKey,
        actor: Option<&str>,
    ) -> Result<BdkStatus, DukptError> {
        let installed = self.vault().install_bdk(record, key, actor)?;
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.touch();
        Ok(installed)
    }

    /// Imports the BDK of a sealed BDK file from the front end (audited as `bdk-loaded` with
    /// source `file`) and lets the ports offer the profiles that use it.
    pub fn import_bdk_file(
        &self,
        bytes: &[u8],
        file_name: &str,
        replace: bool,
        actor: Option<&str>,
    ) -> Result<BdkStatus, BdkImportError> {
        let installed = self
            .vault()
            .import_bdk_file(bytes, file_name, replace, actor)?;
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.touch();
        Ok(installed)
    }

    /// Every BDK on record, with its range and what is left of it.
    pub fn bdks(&self) -> Result<Vec<BdkStatus>, DukptError> {
        self.vault().bdks()
    }
}

/// A BDK's identifier as the number the KSN layouts take (40 bits TDES, 32 bits AES).
fn bdk_id_number(bdk_id: &BdkId) -> u64 {
    bdk_id
        .as_bytes()
        .iter()
        .fold(0, |number, byte| (number << 8) | u64::from(*byte))
}

/// The initial key identity of `device` of the BDK `status`.
fn identity_of(
    status: &BdkStatus,
    device: DukptDeviceId,
) -> Result<InitialKeyIdentity, keymother_crypto::dukpt::KsnError> {
    InitialKeyIdentity::for_device(status.kind, bdk_id_number(&status.bdk_id), device.value())
}

/// An internal refusal naming what failed.
fn internal(what: &str, error: impl std::fmt::Display) -> DispenseRefusal {
    DispenseRefusal::Internal(format!("{what}: {error}"))
}

/// The reserved initial key in the clear, between the vault and the wrap under the TTK.
struct ReservedInitialKey {
    identity: InitialKeyIdentity,
    key: SecretKey,
}

impl Dispenser {
    /// Reserves (durably, before returning) this terminal's initial key of `slot`'s BDK: its
    /// pending one again, else the BDK's next device ID; and wraps it under the TTK as a TR-31
    /// B1 block naming its KSN (PROTOCOL.md 9.2).
    pub fn reserve_dukpt(
        &self,
        terminal: &TerminalIdentity,
        slot: u8,
        dukpt: &DukptSlot,
        port: &str,
    ) -> Result<DukptDelivery, DispenseRefusal> {
        let bdk: BdkName = dukpt
            .label
            .parse()
            .map_err(|error| internal("the slot's BDK name", error))?;
        self.admit(terminal, port, &KeySlot::Dukpt(bdk.clone()))?;
        let keys = self.keys();
        let Some(keys) = keys.as_ref() else {
            return Err(DispenseRefusal::NotReady);
        };
        self.check_tamper()?;
        // A key travels only under a TTK at least as strong: refused before anything is
        // reserved (an AES initial key under a TDES TTK is a configuration the site fixes).
        let ttk = keys.ttk.algorithm();
        if dukpt.key_type.strength_bits() > ttk.strength_bits() {
            return Err(internal(
                &format!("slot {}", dukpt.label),
                format!(
                    "{} initial keys cannot travel under the {ttk} TTK; load an AES TTK at least as strong",
                    dukpt.key_type
                ),
            ));
        }
        let reserved = self.with_operator(|vault, operator| {
            reserve_initial_key(
                vault,
                &bdk,
                dukpt,
                &terminal.hardware_serial,
                port,
                operator,
            )
        })?;
        self.touch();
        let header = reserved
            .identity
            .key_block_header(keys.ttk_version, dukpt.key_type);
        let key_block = keys
            .ttk
            .wrap(&header, &reserved.key)
            .map_err(|error| internal("the initial key cannot be wrapped under the TTK", error))?;
        Ok(DukptDelivery {
            slot,
            ksn: reserved.identity.to_bytes(),
            key_block,
            kcv: reserved.key.kcv().as_bytes().to_vec(),
        })
    }

    /// Records that the delivery of `ksn` (of `dukpt`'s BDK) was written to the port.
    pub fn mark_dukpt_sent(
        &self,
        terminal: &TerminalIdentity,
        dukpt: &DukptSlot,
        ksn: &[u8],
    ) -> Result<(), String> {
        let (bdk, device) = device_of(dukpt, ksn)?;
        self.vault()
            .mark_dukpt_sent(&bdk, device, &terminal.hardware_serial)
            .map_err(|error| error.to_string())
    }

    /// Checks and records the terminal's confirmation of the initial key `ksn`.
    pub fn confirm_dukpt(
        &self,
        terminal: &TerminalIdentity,
        dukpt: &DukptSlot,
        ksn: &[u8],
        kcv: &[u8],
        port: &str,
    ) -> Result<ConfirmedDukpt, ConfirmRefusal> {
        let (bdk, device_id) = device_of(dukpt, ksn).map_err(ConfirmRefusal::Internal)?;
        let kcv = Kcv::from_bytes_any(kcv)
            .map_err(|error| ConfirmRefusal::Internal(format!("check value: {error}")))?;
        let operator = {
            let mut sessions = self.sessions();
            self.current_operator(&mut sessions, keymother_vault::clock::now())
        };
        let report = DukptConfirmation {
            bdk: &bdk,
            device_id,
            hardware_serial: &terminal.hardware_serial,
            kcv,
            port,
            terminal_model: &terminal.model,
        };
        let confirmed =
            self.vault()
                .confirm_dukpt(&report, self.quarantine_after, operator.as_deref());
        self.touch();
        confirmed.map_err(|error| match error {
            DukptError::KcvMismatch { quarantined, .. } => {
                ConfirmRefusal::KcvMismatch { quarantined }
            }
            DukptError::NotDeliveredTo { .. } => ConfirmRefusal::NotDelivered,
            other => ConfirmRefusal::Internal(other.to_string()),
        })
    }
}

/// The BDK and device ID an initial KSN or key ID of `dukpt`'s kind names.
fn device_of(dukpt: &DukptSlot, ksn: &[u8]) -> Result<(BdkName, DukptDeviceId), String> {
    let bdk: BdkName = dukpt.label.parse().map_err(|error| format!("{error}"))?;
    let identity = InitialKeyIdentity::from_bytes(ksn).map_err(|error| format!("KSN: {error}"))?;
    let device = match identity {
        InitialKeyIdentity::Tdes(ksn) => ksn.device_id(),
        InitialKeyIdentity::Aes(key_id) => key_id.derivation_id(),
    };
    let device = DukptDeviceId::new(identity.family(), device)
        .map_err(|error| format!("device ID: {error}"))?;
    Ok((bdk, device))
}

/// In the vault (under the operator's session): the terminal's pending initial key of `bdk`,
/// else the next device ID's, derived with the BDK; checked against what the vault recorded.
fn reserve_initial_key(
    vault: &mut Vault,
    bdk: &BdkName,
    dukpt: &DukptSlot,
    serial: &HardwareSerial,
    port: &str,
    operator: Option<&str>,
) -> Result<ReservedInitialKey, DispenseRefusal> {
    let (status, bdk_key) = vault.load_bdk(bdk).map_err(|error| match error {
        DukptError::UnknownBdk(_) | DukptError::BdkDestroyed(_) => DispenseRefusal::BdkNotLoaded,
        other => internal("the BDK cannot be used", other),
    })?;
    // A new device ID's key is derived once, inside the reservation, and kept for the wrap;
    // a resumed reservation's key is derived from the record.
    let mut fresh: Option<ReservedInitialKey> = None;
    let mut derive = |device: DukptDeviceId| -> Result<DerivedKeyFacts, String> {
        let identity = identity_of(&status, device).map_err(|error| error.to_string())?;
        let key = identity
            .derive(&bdk_key, dukpt.key_type)
            .map_err(|error| error.to_string())?;
        let facts = DerivedKeyFacts {
            initial_ksn: identity.to_string(),
            key_type: dukpt.key_type,
            kcv: key.kcv(),
        };
        fresh = Some(ReservedInitialKey { identity, key });
        Ok(facts)
    };
    let reservation = vault
        .reserve_dukpt(bdk, serial, port, operator, &mut derive)
        .map_err(|error| match error {
            ReserveDukptError::Dukpt(DukptError::RangeExhausted { .. }) => {
                DispenseRefusal::NoKeysAvailable
            }
            ReserveDukptError::Dukpt(refused @ DukptError::AlreadyInjected { .. }) => {
                DispenseRefusal::AlreadyInjected(refused.to_string())
            }
            other => internal("no initial key was reserved", other),
        })?;
    let ReservedInitialKey { identity, key } = match fresh {
        Some(derived) if !reservation.resumed => derived,
        _ => {
            let identity = identity_of(&status, reservation.device_id)
                .map_err(|error| internal("the reserved device ID", error))?;
            let key = identity
                .derive(&bdk_key, reservation.key_type)
                .map_err(|error| internal("the reserved initial key", error))?;
            ReservedInitialKey { identity, key }
        }
    };
    if key.kcv() != reservation.kcv || identity.to_string() != reservation.initial_ksn {
        return Err(internal(
            "the reserved initial key",
            format!(
                "device {} does not derive what was recorded",
                reservation.device_id
            ),
        ));
    }
    Ok(ReservedInitialKey { identity, key })
}
