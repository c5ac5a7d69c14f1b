//! DUKPT storage and allocation: BDKs sealed under the storage key, each device id of a BDK's range bound to one terminal for good, and the registry of confirmed injections.
//!
//! Mirrors dispensing master keys (dispense.rs): an allocation is reserved for one terminal,
//! durably, before any byte leaves; then sent; then used with its registry row, or void or
//! quarantined. The caller derives the initial key (the vault never does) and hands the vault
//! its facts: the initial KSN or key ID, the derived key type and the check value. The schema
//! backs the rules up (migration 6): a device id outside its BDK's range is never allocated,
//! an allocation's terminal and initial key never change, its state never goes back, a
//! terminal has at most one pending allocation per BDK, allocations are never deleted, and
//! registry rows record a confirmed allocation and are never rewritten or deleted. The
//! registry goes to the front end as a sealed file (export.rs, export_verify.rs; migration 7
//! records which rows went into which file).

mod allocate;
mod bdk;
mod bdk_file;
mod confirm;
mod export;
mod export_verify;

pub use export::{DUKPT_EXPORT_COLUMNS, DUKPT_EXPORT_MAGIC, DukptExportDraft, ExportedDukpt};
pub use export_verify::{VerifiedDukptExport, verify_dukpt_export};

pub use bdk_file::BdkImportError;

use std::fmt;

use keymother_domain::{
    BdkId, BdkName, DeviceRange, DukptDeviceId, HardwareSerial, Kcv, KeyAlgorithm, KeyFamily,
    TerminalModel,
};

use crate::{KeyState, VaultError};

/// Where a BDK came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BdkSource {
    /// Custodians entered it as components.
    Ceremony,
    /// Imported from a sealed file from the front end (TR-31, usage B0, under the KEK).
    File,
}

impl BdkSource {
    /// The name stored in the database and the audit trail.
    pub fn as_str(self) -> &'static str {
        match self {
            BdkSource::Ceremony => "ceremony",
            BdkSource::File => "file",
        }
    }

    fn from_stored(name: &str) -> Option<BdkSource> {
        [BdkSource::Ceremony, BdkSource::File]
            .into_iter()
            .find(|source| source.as_str() == name)
    }
}

impl fmt::Display for BdkSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A BDK to seal into the vault (the key itself is passed beside it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBdk {
    pub name: BdkName,
    /// The key set identifier (TDES) or BDK ID (AES); of the key's kind.
    pub bdk_id: BdkId,
    /// The device ids this appliance may allocate; of the key's kind.
    pub range: DeviceRange,
    pub source: BdkSource,
    /// Replace a BDK already loaded under this name. Without it a loaded name is refused.
    pub replace: bool,
    /// The custodians of a ceremony (required when `source` is a ceremony); `None` for a file.
    pub ceremony: Option<crate::CeremonyRecord>,
}

/// What is on record about a BDK (never the key), with what is left of its range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BdkStatus {
    pub name: BdkName,
    /// TDES DUKPT (ANSI X9.24-1) or AES DUKPT (ANSI X9.24-3).
    pub kind: KeyFamily,
    pub algorithm: KeyAlgorithm,
    pub bdk_id: BdkId,
    pub kcv: Kcv,
    pub range: DeviceRange,
    pub source: BdkSource,
    pub loaded_at: String,
    /// The device id the next new terminal gets; `None` when the range is used up.
    pub next_device: Option<DukptDeviceId>,
    /// Device ids of the range never allocated.
    pub remaining: u64,
    /// The key block was destroyed by a tamper or a zeroize: custodians must load it again.
    pub destroyed: bool,
}

/// What the caller derived for a device id: the facts of the initial key, never the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerivedKeyFacts {
    /// The initial KSN (TDES, 20 hex digits) or initial key ID (AES, 16 hex digits); it
    /// begins with the BDK's identifier.
    pub initial_ksn: String,
    /// The derived key's type: TDES-2KEY for TDES DUKPT; for AES DUKPT any type no stronger
    /// than the BDK.
    pub key_type: KeyAlgorithm,
    /// The initial key's check value, which the terminal must report back.
    pub kcv: Kcv,
}

/// A device id reserved for a terminal, with its initial key's facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DukptReservation {
    pub bdk: BdkName,
    pub bdk_id: BdkId,
    pub device_id: DukptDeviceId,
    pub initial_ksn: String,
    pub key_type: KeyAlgorithm,
    pub kcv: Kcv,
    /// True when this terminal already had this device id reserved or sent (it asked again);
    /// the caller derives the same initial key again and checks it against `kcv`.
    pub resumed: bool,
    /// The operator whose session the device id was first reserved under.
    pub operator: Option<String>,
}

/// What a terminal reports after installing its DUKPT initial key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DukptConfirmation<'a> {
    pub bdk: &'a BdkName,
    pub device_id: DukptDeviceId,
    pub hardware_serial: &'a HardwareSerial,
    /// The check value the terminal computed.
    pub kcv: Kcv,
    pub port: &'a str,
    pub terminal_model: &'a TerminalModel,
}

/// A confirmed DUKPT injection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmedDukpt {
    pub bdk: BdkName,
    pub bdk_id: BdkId,
    pub device_id: DukptDeviceId,
    pub initial_ksn: String,
    pub key_type: KeyAlgorithm,
    /// True when the confirmation had already been recorded (a retransmission).
    pub already_confirmed: bool,
    /// The operator the registry row and the audit row name.
    pub operator: Option<String>,
}

/// One allocation: a device id of a BDK bound to a terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DukptAllocation {
    pub bdk: BdkName,
    pub device_id: DukptDeviceId,
    pub hardware_serial: HardwareSerial,
    pub state: KeyState,
    pub initial_ksn: String,
    pub key_type: KeyAlgorithm,
    pub kcv: Kcv,
    pub port: String,
    pub operator: Option<String>,
    pub reserved_at: String,
    pub failed_confirmations: u32,
}

/// One row of the DUKPT registry: a confirmed injection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DukptRow {
    pub hardware_serial: HardwareSerial,
    pub bdk: BdkName,
    pub bdk_id: BdkId,
    pub device_id: DukptDeviceId,
    pub initial_ksn: String,
    pub key_type: KeyAlgorithm,
    pub kcv: Kcv,
    pub port: String,
    pub terminal_model: String,
    /// The operator of the injection; `None` when no operator was logged in.
    pub operator: Option<String>,
    pub injected_at: String,
    /// A re-injection: the initial KSN of the terminal's earlier row of this BDK it replaces.
    pub replaces: Option<String>,
    /// Re-injected since: the initial KSN of the later row that replaces this one.
    pub replaced_by: Option<String>,
    /// A re-injection: the grant its allocation was reserved under, and the grant's reason.
    pub reinjection_grant: Option<(u64, String)>,
}

/// A DUKPT allocation that was voided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoidedDukpt {
    pub bdk: BdkName,
    pub device_id: DukptDeviceId,
    /// The terminal it had been reserved for; it may now be given another device id.
    pub hardware_serial: HardwareSerial,
    pub previous_state: KeyState,
    /// The void row's sequence number in the audit chain.
    pub audit_sequence: u64,
}

/// Why a DUKPT operation was refused; nothing was changed (a wrong check value is counted).
#[derive(Debug, thiserror::Error)]
pub enum DukptError {
    #[error("no BDK named {0} is loaded")]
    UnknownBdk(BdkName),
    #[error(
        "the BDK {0} was destroyed by a tamper response or a zeroize; its custodians must load it again"
    )]
    BdkDestroyed(BdkName),
    #[error(
        "a BDK named {0} is already loaded; loading another under its name must ask to replace it"
    )]
    AlreadyLoaded(BdkName),
    #[error("a TDES BDK is double-length (TDES-2KEY); {name} would be {algorithm}")]
    NotDoubleLength {
        name: BdkName,
        algorithm: KeyAlgorithm,
    },
    #[error("BDK {name}'s key is {key} but its {what} is for {found} DUKPT")]
    KindMismatch {
        name: BdkName,
        key: KeyFamily,
        what: &'static str,
        found: KeyFamily,
    },
    #[error(
        "BDK {name} is of the {loaded} kind; a name keeps its kind, so load the {new} BDK under another name"
    )]
    KindChange {
        name: BdkName,
        loaded: KeyFamily,
        new: KeyFamily,
    },
    #[error(
        "BDK identifier {bdk_id} already belongs to BDK {by}; a host could not tell their KSNs apart"
    )]
    BdkIdInUse { bdk_id: BdkId, by: BdkName },
    #[error(
        "BDK {name} has device ids reserved or sent but not confirmed ({pending}); confirm or void them before loading another key under its name"
    )]
    PendingAllocations { name: BdkName, pending: u64 },
    #[error(
        "every device id of BDK {bdk}'s range {range} is allocated; assign this appliance a new range"
    )]
    RangeExhausted { bdk: BdkName, range: DeviceRange },
    #[error(
        "BDK {bdk} ({bdk_algorithm}) cannot derive {key_type} keys: {}",
        if bdk_algorithm.family() == KeyFamily::Tdes { "TDES DUKPT derives TDES-2KEY keys only" } else { "a derived key is never stronger than its BDK" }
    )]
    DerivedKeyTooStrong {
        bdk: BdkName,
        key_type: KeyAlgorithm,
        bdk_algorithm: KeyAlgorithm,
    },
    #[error("the initial key derived for device {device_id} of BDK {bdk} was refused: {problem}")]
    BadDerivedKey {
        bdk: BdkName,
        device_id: DukptDeviceId,
        problem: String,
    },
    #[error(
        "hardware serial {hardware_serial} already holds a confirmed initial key of BDK {bdk} ({initial_ksn}); an operator must grant a re-injection (keymother reinject grant --slot {bdk})"
    )]
    AlreadyInjected {
        bdk: BdkName,
        hardware_serial: HardwareSerial,
        /// The initial KSN or key ID of its last confirmed initial key of this BDK.
        initial_ksn: String,
    },
    #[error("device {device_id} of BDK {bdk} was not delivered to terminal {hardware_serial}")]
    NotDeliveredTo {
        bdk: BdkName,
        device_id: DukptDeviceId,
        hardware_serial: HardwareSerial,
    },
    #[error("check value {reported} for device {device_id} of BDK {bdk} does not match {expected} (failure {failures}{})",
        if *quarantined { "; the device id is quarantined" } else { "" })]
    KcvMismatch {
        bdk: BdkName,
        device_id: DukptDeviceId,
        reported: Kcv,
        expected: Kcv,
        failures: u32,
        quarantined: bool,
    },
    #[error("device {device_id} of BDK {bdk} was never allocated")]
    NotAllocated {
        bdk: BdkName,
        device_id: DukptDeviceId,
    },
    #[error(
        "device {device_id} of BDK {bdk} is {state}; only a reserved or sent allocation that was never confirmed can be voided"
    )]
    NotPending {
        bdk: BdkName,
        device_id: DukptDeviceId,
        state: KeyState,
    },
    #[error("voiding device {device_id} of BDK {bdk} needs a reason and the operator's name")]
    VoidNeedsReasonAndOperator {
        bdk: BdkName,
        device_id: DukptDeviceId,
    },
    #[error(
        "the stored BDK {name} does not open under the storage key ({reason}); the vault was tampered with or the storage key replaced"
    )]
    Unsealable { name: BdkName, reason: String },
    #[error(transparent)]
    Vault(#[from] VaultError),
}

impl From<rusqlite::Error> for DukptError {
    fn from(error: rusqlite::Error) -> Self {
        DukptError::Vault(VaultError::Database(error))
    }
}

/// Why a reservation failed: the caller's derivation, or the vault. Nothing was reserved.
#[derive(Debug, thiserror::Error)]
pub enum ReserveDukptError<E> {
    #[error("deriving the initial key for device {device_id} of BDK {bdk} failed: {source}")]
    Derive {
        bdk: BdkName,
        device_id: DukptDeviceId,
        #[source]
        source: E,
    },
    #[error(transparent)]
    Dukpt(#[from] DukptError),
}

impl<E> From<rusqlite::Error> for ReserveDukptError<E> {
    fn from(error: rusqlite::Error) -> Self {
        ReserveDukptError::Dukpt(error.into())
    }
}

impl<E> From<VaultError> for ReserveDukptError<E> {
    fn from(error: VaultError) -> Self {
        ReserveDukptError::Dukpt(error.into())
    }
}

/// The `kind` column of a BDK of `family`.
fn kind_name(family: KeyFamily) -> &'static str {
    match family {
        KeyFamily::Tdes => "tdes",
        KeyFamily::Aes => "aes",
    }
}

fn kind_from_stored(name: &str) -> Option<KeyFamily> {
    [KeyFamily::Tdes, KeyFamily::Aes]
        .into_iter()
        .find(|family| kind_name(*family) == name)
}

/// A stored value that does not read back: the database was changed behind the vault.
fn corrupt(what: String) -> DukptError {
    DukptError::Vault(VaultError::Corrupt(what))
}

/// A device id as stored under a BDK of `kind`.
fn stored_device(kind: KeyFamily, bdk: &BdkName, number: i64) -> Result<DukptDeviceId, DukptError> {
    DukptDeviceId::from_number(kind, number)
        .map_err(|error| corrupt(format!("BDK {bdk}: stored device id: {error}")))
}

/// A state as stored in an allocation.
fn stored_state(bdk: &BdkName, state: &str) -> Result<KeyState, DukptError> {
    KeyState::from_stored(state)
        .filter(|state| *state != KeyState::Available)
        .ok_or_else(|| corrupt(format!("BDK {bdk}: an allocation has state {state:?}")))
}
