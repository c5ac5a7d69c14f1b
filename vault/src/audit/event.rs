//! Audit events: what each security event records, as the `event`, `actor` and `details` columns of its row.

use std::fmt::Write as _;

use keymother_crypto::{Kcv, KeyAlgorithm};
use keymother_domain::{
    BdkId, BdkName, DeviceRange, DukptDeviceId, HardwareSerial, KeyFamily, KeyIndex,
};

use crate::{BdkSource, KeySlot, Registry, SecretName};

/// Longest value kept in `details` or `actor`, in bytes before escaping; longer ones are cut
/// and end in `...` (a reason typed at length, a file name).
const MAX_VALUE: usize = 1024;

/// A security event, recorded in the chain. Never carries key material: names, indexes,
/// check values, batch ids, SMNs, BDK identifiers, device ids, initial KSNs and reasons only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditEvent {
    /// Custodians loaded the KEK or the TTK from components.
    Ceremony {
        secret: SecretName,
        algorithm: KeyAlgorithm,
        kcv: Kcv,
        components: u32,
        /// Every custodian, in component order, `/`-separated (also the row's actor).
        custodians: String,
        /// Each component's check value in the same order, when all are known.
        component_kcvs: Option<String>,
        /// The check value of the key this ceremony replaced (`--replace`), if one was loaded.
        replaced: Option<Kcv>,
        /// The local user who ran the command, when known.
        peer: Option<String>,
    },
    /// A KEK, TTK or BDK ceremony was refused (a wrong check value, a weak key, a repeated
    /// component, a replacement without `--replace`, ...); nothing was stored.
    CeremonyRefused {
        /// `KEK`, `TTK` or `BDK <name>`.
        secret: String,
        /// The custodians as they gave their names, `/`-separated.
        custodians: String,
        reason: String,
        peer: Option<String>,
    },
    /// An operator withdrew the keys of a batch still available: they are never dispensed.
    /// Keys of the batch already reserved or sent finish normally (`pending` of them).
    BatchWithdrawn {
        batch: String,
        keys: u64,
        pending: u64,
        reason: String,
        operator: String,
    },
    /// A key file was imported whole.
    Import {
        batch: String,
        records: u32,
        file_sha256: String,
    },
    /// A key file was refused; nothing was stored.
    ImportRefused { file: String, reason: String },
    /// An import was cancelled by its client (disconnected or interrupted); nothing was stored.
    ImportCancelled { file: String, reason: String },
    /// An import that a crash (or a power cut) interrupted was found at the vault's next open
    /// and removed: its batch and the `removed` keys staged so far, none ever dispensable.
    ImportInterrupted {
        batch: String,
        file: String,
        removed: u64,
    },
    /// A terminal confirmed its key; its SMN row was written.
    Injection {
        key_index: u32,
        hardware_serial: String,
        smn: String,
        port: String,
        operator: Option<String>,
    },
    /// An SMN export file was written and its rows marked exported.
    Export {
        file: String,
        rows: u64,
        only_new: bool,
        file_sha256: String,
        operator: Option<String>,
    },
    /// An operator voided a key that was reserved or sent but never confirmed.
    Void {
        key_index: u32,
        reason: String,
        operator: String,
    },
    /// An operator proved possession of an operator certificate; a session opened.
    Login {
        /// The certificate's common name: what injection and control rows name.
        operator: String,
        /// The certificate's subject and serial (hex), telling apart operators of one name.
        subject: String,
        serial: String,
        /// When the session ends at the latest (RFC 3339).
        until: String,
    },
    /// An operator's session ended: logged out, expired, replaced by a new login, tamper or
    /// zeroize.
    Logout { operator: String, reason: String },
    /// A login was refused; no session opened. `peer` is the local user who asked.
    LoginRefused { peer: String, reason: String },
    /// The tamper input fired.
    Tamper { input: String },
    /// The tamper input is not watched any more, or could not be watched from the start: its
    /// GPIO failed or could not be opened.
    TamperInputLost { input: String, reason: String },
    /// The tamper input is watched again after it was lost.
    TamperInputRestored { input: String },
    /// The device's secrets and storage key are being destroyed.
    Zeroize {
        reason: String,
        operator: Option<String>,
    },
    /// A new KDH key pair was made and its certificate request written.
    KdhRequest {
        subject: String,
        bits: u32,
        request_sha256: String,
        /// What the new key pair replaced.
        replaced: String,
        operator: Option<String>,
    },
    /// The KDH CA's certificate for the appliance's key pair was installed.
    KdhCertificate {
        subject: String,
        serial: String,
        issuer: String,
        not_after: String,
        certificate_sha256: String,
        operator: Option<String>,
    },
    /// The appliance's clock was set under dual control: from `old` to `new` (RFC 3339), on
    /// the word of two people (`witnesses`: names, roles and local users).
    ClockSet {
        old: String,
        new: String,
        witnesses: String,
    },
    /// keymotherd started as a build the audit trail has not seen before: installed, or
    /// updated (`keymother-update`). `binary_sha256` is the executable's digest.
    Software {
        version: String,
        binary_sha256: String,
    },
    /// The whole database was checked (SQLite's `integrity_check`, in the background after
    /// READY) and found damaged: `findings` are SQLite's words (pages and tables, never a
    /// row's content). The appliance locks until the vault is restored.
    IntegrityFailed { findings: String },
    /// A vault that had failed its integrity check passed the full check again at start;
    /// `pages` is the database's size in pages.
    IntegrityVerified { pages: u64 },
    /// The whole audit chain, walked in the background after READY, did not verify:
    /// `failure` names the row (or the head, or the checkpoint) that broke. The appliance
    /// locks until the security officer intervenes.
    AuditChainFailed { failure: String },
    /// A setting changed, or the vault itself was created or upgraded.
    ConfigChange {
        what: String,
        operator: Option<String>,
    },
    /// A DUKPT base derivation key was sealed into the vault under its name, with the range
    /// of device ids it assigns to this appliance. `operator` is whoever loaded it, if named
    /// (custodians otherwise).
    BdkLoaded {
        bdk: BdkName,
        kind: KeyFamily,
        algorithm: KeyAlgorithm,
        bdk_id: BdkId,
        kcv: Kcv,
        range: DeviceRange,
        source: BdkSource,
        /// Whether it replaced a BDK of the same name (or one a tamper or zeroize destroyed).
        replaced: bool,
        /// The custodians of a ceremony, `/`-separated; `None` for a BDK file.
        custodians: Option<String>,
        operator: Option<String>,
    },
    /// A terminal confirmed its DUKPT initial key; its registry row was written.
    DukptInjection {
        bdk: BdkName,
        bdk_id: BdkId,
        device_id: DukptDeviceId,
        /// The initial KSN (TDES) or initial key ID (AES), as the key block carries it.
        initial_ksn: String,
        key_type: KeyAlgorithm,
        /// The initial key's check value, which the terminal reported.
        kcv: Kcv,
        hardware_serial: HardwareSerial,
        port: String,
        operator: Option<String>,
    },
    /// An operator voided a DUKPT allocation that was reserved or sent but never confirmed.
    DukptVoid {
        bdk: BdkName,
        device_id: DukptDeviceId,
        reason: String,
        operator: String,
    },
    /// A terminal reported a wrong check value once too often: its device id is quarantined.
    DukptQuarantine {
        bdk: BdkName,
        device_id: DukptDeviceId,
        hardware_serial: HardwareSerial,
        failures: u32,
    },
    /// A DUKPT export file was delivered and its rows marked exported.
    DukptExport {
        file: String,
        rows: u64,
        only_new: bool,
        file_sha256: String,
        operator: Option<String>,
    },
    /// An expected-device list was imported and opened (PCI PIN 30-3).
    ExpectedImport {
        list: String,
        devices: u64,
        sealed: bool,
        file: String,
        file_sha256: String,
        operator: Option<String>,
    },
    /// An expected-device list file was refused; nothing was stored.
    ExpectedImportRefused {
        list: String,
        file: String,
        reason: String,
        operator: Option<String>,
    },
    /// An expected-device list was closed, with its reconciliation's counts then.
    ExpectedClose {
        list: String,
        devices: u64,
        injected: u64,
        pending: u64,
        missing: u64,
        refused: u64,
        operator: Option<String>,
    },
    /// A reconciliation export file was delivered (`list` is a list's name or `all`).
    ReconcileExport {
        list: String,
        file: String,
        rows: u64,
        file_sha256: String,
        operator: Option<String>,
    },
    /// An operator granted one re-injection of a key slot to a terminal that holds a
    /// confirmed key of it.
    ReinjectionGranted {
        grant: u64,
        hardware_serial: HardwareSerial,
        slot: KeySlot,
        reason: String,
        operator: String,
    },
    /// An operator revoked an open re-injection grant before it was used.
    ReinjectionRevoked {
        grant: u64,
        hardware_serial: HardwareSerial,
        slot: KeySlot,
        reason: String,
        operator: String,
    },
    /// A re-injection grant admitted a reservation and is used up: `key` is the key index
    /// (master slot) or the initial KSN or key ID (a DUKPT slot) reserved under it.
    ReinjectionUsed {
        grant: u64,
        hardware_serial: HardwareSerial,
        slot: KeySlot,
        key: String,
        port: String,
        operator: Option<String>,
    },
    /// A zeroize sealed the final export of a registry under the KEK just before destroying
    /// it. The file is kept in the vault (`final_export`): the zeroized vault delivers it.
    FinalExport {
        registry: Registry,
        rows: u64,
        only_new: bool,
        file_sha256: String,
        operator: Option<String>,
    },
    /// A fresh vault took over from a zeroized one, archived beside it: the new chain's first
    /// row, naming the archive and the head of its chain, so the two chains link.
    Recommission {
        /// The archive's file name, in the data directory.
        archive: String,
        archive_sha256: String,
        previous_device_id: String,
        /// The archived chain's last row and its hash.
        last_sequence: u64,
        last_hash: String,
        reason: String,
        operator: String,
    },
    /// A terminal never confirmed what was delivered to it: it stopped answering (idle
    /// timeout), its port was lost, or it sent ABORT. The key stays reserved for it.
    InjectionFailed {
        port: String,
        hardware_serial: HardwareSerial,
        /// The master key delivered and not confirmed, if one was.
        key_index: Option<KeyIndex>,
        cause: super::failure::InjectionFailureCause,
        operator: Option<String>,
    },
}

impl AuditEvent {
    /// The `event` column of a zeroize row.
    pub(crate) const ZEROIZE_NAME: &'static str = "zeroize";
    /// The `event` column of a failed background integrity check.
    pub const INTEGRITY_FAILED_NAME: &'static str = "integrity-failed";
    /// The `event` column of a full integrity check passed after a failure.
    pub const INTEGRITY_VERIFIED_NAME: &'static str = "integrity-verified";
    /// The `event` column of a failed background walk of the audit chain.
    pub const AUDIT_CHAIN_FAILED_NAME: &'static str = "audit-chain-failed";

    /// The event's name in the `event` column.
    pub fn name(&self) -> &'static str {
        match self {
            AuditEvent::Ceremony { .. } => "ceremony",
            AuditEvent::CeremonyRefused { .. } => "ceremony-refused",
            AuditEvent::BatchWithdrawn { .. } => "batch-withdrawn",
            AuditEvent::Import { .. } => "import",
            AuditEvent::ImportRefused { .. } => "import-refused",
            AuditEvent::ImportCancelled { .. } => "import-cancelled",
            AuditEvent::ImportInterrupted { .. } => "import-interrupted",
            AuditEvent::Injection { .. } => "injection",
            AuditEvent::Export { .. } => "export",
            AuditEvent::Void { .. } => "void",
            AuditEvent::Login { .. } => "login",
            AuditEvent::Logout { .. } => "logout",
            AuditEvent::LoginRefused { .. } => "login-refused",
            AuditEvent::Tamper { .. } => "tamper",
            AuditEvent::TamperInputLost { .. } => "tamper-input-lost",
            AuditEvent::TamperInputRestored { .. } => "tamper-input-restored",
            AuditEvent::Zeroize { .. } => AuditEvent::ZEROIZE_NAME,
            AuditEvent::ClockSet { .. } => "clock-set",
            AuditEvent::Software { .. } => "software",
            AuditEvent::IntegrityFailed { .. } => AuditEvent::INTEGRITY_FAILED_NAME,
            AuditEvent::IntegrityVerified { .. } => AuditEvent::INTEGRITY_VERIFIED_NAME,
            AuditEvent::AuditChainFailed { .. } => AuditEvent::AUDIT_CHAIN_FAILED_NAME,
            AuditEvent::ConfigChange { .. } => "config-change",
            AuditEvent::KdhRequest { .. } => "kdh-request",
            AuditEvent::KdhCertificate { .. } => "kdh-certificate",
            AuditEvent::BdkLoaded { .. } => "bdk-loaded",
            AuditEvent::DukptInjection { .. } => "dukpt-injection",
            AuditEvent::DukptVoid { .. } => "dukpt-void",
            AuditEvent::DukptQuarantine { .. } => "dukpt-quarantine",
            AuditEvent::DukptExport { .. } => "dukpt-export",
            AuditEvent::ExpectedImport { .. } => "expected-import",
            AuditEvent::ExpectedImportRefused { .. } => "expected-import-refused",
            AuditEvent::ExpectedClose { .. } => "expected-close",
            AuditEvent::ReconcileExport { .. } => "reconcile-export",
            AuditEvent::ReinjectionGranted { .. } => "reinjection-grant",
            AuditEvent::ReinjectionRevoked { .. } => "reinjection-revoke",
            AuditEvent::ReinjectionUsed { .. } => "reinjection-used",
            AuditEvent::FinalExport { .. } => "final-export",
            AuditEvent::Recommission { .. } => "recommission",
            AuditEvent::InjectionFailed { .. } => "injection-failed",
        }
    }

    /// Who acted: the operator's name, `custodians` for ceremonies and imports, or `system`.
    pub fn actor(&self) -> String {
        let operator_or_system =
            |operator: &Option<String>| operator.as_deref().unwrap_or("system").to_owned();
        match self {
            AuditEvent::Ceremony { custodians, .. }
            | AuditEvent::CeremonyRefused { custodians, .. }
                if !custodians.is_empty() =>
            {
                custodians.clone()
            }
            AuditEvent::Ceremony { .. }
            | AuditEvent::CeremonyRefused { .. }
            | AuditEvent::Import { .. }
            | AuditEvent::ImportRefused { .. }
            | AuditEvent::ImportCancelled { .. } => "custodians".to_owned(),
            AuditEvent::BdkLoaded {
                operator,
                custodians,
                ..
            } => operator
                .as_deref()
                .or(custodians.as_deref())
                .unwrap_or("custodians")
                .to_owned(),
            AuditEvent::BatchWithdrawn { operator, .. } => operator.clone(),
            AuditEvent::DukptInjection { operator, .. }
            | AuditEvent::DukptExport { operator, .. }
            | AuditEvent::ReinjectionUsed { operator, .. }
            | AuditEvent::Injection { operator, .. }
            | AuditEvent::Export { operator, .. }
            | AuditEvent::Zeroize { operator, .. }
            | AuditEvent::ConfigChange { operator, .. }
            | AuditEvent::KdhRequest { operator, .. }
            | AuditEvent::KdhCertificate { operator, .. }
            | AuditEvent::ExpectedImport { operator, .. }
            | AuditEvent::ExpectedImportRefused { operator, .. }
            | AuditEvent::ExpectedClose { operator, .. }
            | AuditEvent::ReconcileExport { operator, .. } => operator_or_system(operator),
            AuditEvent::FinalExport { operator, .. }
            | AuditEvent::InjectionFailed { operator, .. } => operator_or_system(operator),
            AuditEvent::Tamper { .. }
            | AuditEvent::TamperInputLost { .. }
            | AuditEvent::TamperInputRestored { .. }
            | AuditEvent::ImportInterrupted { .. }
            | AuditEvent::DukptQuarantine { .. } => "system".to_owned(),
            AuditEvent::DukptVoid { operator, .. }
            | AuditEvent::Void { operator, .. }
            | AuditEvent::ReinjectionGranted { operator, .. }
            | AuditEvent::ReinjectionRevoked { operator, .. }
            | AuditEvent::Login { operator, .. }
            | AuditEvent::Logout { operator, .. }
            | AuditEvent::Recommission { operator, .. } => operator.clone(),
            AuditEvent::LoginRefused { peer, .. } => peer.clone(),
            AuditEvent::ClockSet { .. } => "custodians".to_owned(),
            AuditEvent::Software { .. } => "system".to_owned(),
            AuditEvent::IntegrityFailed { .. }
            | AuditEvent::IntegrityVerified { .. }
            | AuditEvent::AuditChainFailed { .. } => "system".to_owned(),
        }
    }

    /// The event's fields in their fixed order, unescaped: what goes into `details`, and what
    /// the daemon puts into the journal as structured fields.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        let mut fields = match self {
            AuditEvent::Ceremony { .. } | AuditEvent::CeremonyRefused { .. } => {
                self.ceremony_fields()
            }
            AuditEvent::Import { .. }
            | AuditEvent::ImportRefused { .. }
            | AuditEvent::ImportCancelled { .. }
            | AuditEvent::ImportInterrupted { .. } => self.key_loading_fields(),
            AuditEvent::Injection { .. }
            | AuditEvent::Export { .. }
            | AuditEvent::Void { .. }
            | AuditEvent::BatchWithdrawn { .. } => self.key_use_fields(),
            AuditEvent::Login { .. }
            | AuditEvent::Logout { .. }
            | AuditEvent::LoginRefused { .. } => self.session_fields(),
            AuditEvent::Tamper { .. }
            | AuditEvent::TamperInputRestored { .. }
            | AuditEvent::TamperInputLost { .. }
            | AuditEvent::Zeroize { .. }
            | AuditEvent::ClockSet { .. }
            | AuditEvent::Software { .. }
            | AuditEvent::IntegrityFailed { .. }
            | AuditEvent::IntegrityVerified { .. }
            | AuditEvent::AuditChainFailed { .. }
            | AuditEvent::ConfigChange { .. } => self.device_fields(),
            AuditEvent::KdhRequest { .. } | AuditEvent::KdhCertificate { .. } => self.kdh_fields(),
            AuditEvent::BdkLoaded { .. }
            | AuditEvent::DukptInjection { .. }
            | AuditEvent::DukptVoid { .. }
            | AuditEvent::DukptQuarantine { .. }
            | AuditEvent::DukptExport { .. } => self.dukpt_fields(),
            AuditEvent::ExpectedImport { .. }
            | AuditEvent::ExpectedImportRefused { .. }
            | AuditEvent::ExpectedClose { .. }
            | AuditEvent::ReconcileExport { .. } => self.expected_fields(),
            AuditEvent::ReinjectionGranted { .. }
            | AuditEvent::ReinjectionRevoked { .. }
            | AuditEvent::ReinjectionUsed { .. } => self.reinjection_fields(),
            AuditEvent::FinalExport { .. } | AuditEvent::Recommission { .. } => {
                self.lifecycle_fields()
            }
            AuditEvent::InjectionFailed { .. } => self.failure_fields(),
        };
        // The operator is the actor; it is repeated in details so a row reads on its own.
        if let Some(operator) = self.operator_in_details() {
            fields.push(("operator", operator.clone()));
        }
        fields
    }

    /// The fields of KEK and TTK ceremonies, held or refused; empty for any other event
    /// ([`AuditEvent::fields`] calls it for these only).
    fn ceremony_fields(&self) -> Vec<(&'static str, String)> {
        let mut fields = match self {
            AuditEvent::Ceremony {
                secret,
                algorithm,
                kcv,
                components,
                custodians,
                component_kcvs,
                replaced,
                peer: _,
            } => {
                let mut fields = vec![
                    ("secret", secret.to_string()),
                    ("algorithm", algorithm.name().to_owned()),
                    ("kcv", kcv.to_string()),
                    ("components", components.to_string()),
                    ("custodians", custodians.clone()),
                ];
                if let Some(kcvs) = component_kcvs {
                    fields.push(("component_kcvs", kcvs.clone()));
                }
                if let Some(replaced) = replaced {
                    fields.push(("replaced", replaced.to_string()));
                }
                fields
            }
            AuditEvent::CeremonyRefused {
                secret,
                custodians,
                reason,
                peer: _,
            } => vec![
                ("secret", secret.clone()),
                ("custodians", custodians.clone()),
                ("reason", reason.clone()),
            ],
            _ => Vec::new(),
        };
        if let AuditEvent::Ceremony {
            peer: Some(peer), ..
        }
        | AuditEvent::CeremonyRefused {
            peer: Some(peer), ..
        } = self
        {
            fields.push(("peer", peer.clone()));
        }
        fields
    }

    /// The fields of key file imports; empty for any other event ([`AuditEvent::fields`]
    /// calls it for these only).
    fn key_loading_fields(&self) -> Vec<(&'static str, String)> {
        match self {
            AuditEvent::Import {
                batch,
                records,
                file_sha256,
            } => vec![
                ("batch", batch.clone()),
                ("records", records.to_string()),
                ("file_sha256", file_sha256.clone()),
            ],
            AuditEvent::ImportRefused { file, reason }
            | AuditEvent::ImportCancelled { file, reason } => {
                vec![("file", file.clone()), ("reason", reason.clone())]
            }
            AuditEvent::ImportInterrupted {
                batch,
                file,
                removed,
            } => vec![
                ("batch", batch.clone()),
                ("file", file.clone()),
                ("removed", removed.to_string()),
            ],
            _ => Vec::new(),
        }
    }

    /// The fields of keys injected, exported or voided; empty for any other event
    /// ([`AuditEvent::fields`] calls it for these only).
    fn key_use_fields(&self) -> Vec<(&'static str, String)> {
        match self {
            AuditEvent::Injection {
                key_index,
                hardware_serial,
                smn,
                port,
                operator: _,
            } => vec![
                ("key_index", format!("{key_index:08}")),
                ("hardware_serial", hardware_serial.clone()),
                ("smn", smn.clone()),
                ("port", port.clone()),
            ],
            AuditEvent::Export {
                file,
                rows,
                only_new,
                file_sha256,
                operator: _,
            } => vec![
                ("file", file.clone()),
                ("rows", rows.to_string()),
                ("only_new", if *only_new { "yes" } else { "no" }.to_owned()),
                ("file_sha256", file_sha256.clone()),
            ],
            AuditEvent::Void {
                key_index,
                reason,
                operator: _,
            } => vec![
                ("key_index", format!("{key_index:08}")),
                ("reason", reason.clone()),
            ],
            AuditEvent::BatchWithdrawn {
                batch,
                keys,
                pending,
                reason,
                operator: _,
            } => vec![
                ("batch", batch.clone()),
                ("keys", keys.to_string()),
                ("pending", pending.to_string()),
                ("reason", reason.clone()),
            ],
            _ => Vec::new(),
        }
    }

    /// The fields of operator sessions; empty for any other event
    /// ([`AuditEvent::fields`] calls it for these only).
    fn session_fields(&self) -> Vec<(&'static str, String)> {
        match self {
            AuditEvent::Login {
                operator: _,
                subject,
                serial,
                until,
            } => vec![
                ("subject", subject.clone()),
                ("serial", serial.clone()),
                ("until", until.clone()),
            ],
            AuditEvent::Logout {
                operator: _,
                reason,
            } => vec![("reason", reason.clone())],
            AuditEvent::LoginRefused { peer, reason } => {
                vec![("reason", reason.clone()), ("peer", peer.clone())]
            }
            _ => Vec::new(),
        }
    }

    /// The fields of device events (tamper, zeroize, clock, software, settings); empty for any
    /// other event ([`AuditEvent::fields`] calls it for these only).
    fn device_fields(&self) -> Vec<(&'static str, String)> {
        match self {
            AuditEvent::Tamper { input } | AuditEvent::TamperInputRestored { input } => {
                vec![("input", input.clone())]
            }
            AuditEvent::TamperInputLost { input, reason } => {
                vec![("input", input.clone()), ("reason", reason.clone())]
            }
            AuditEvent::Zeroize {
                reason,
                operator: _,
            } => vec![("reason", reason.clone())],
            AuditEvent::ClockSet {
                old,
                new,
                witnesses,
            } => vec![
                ("old", old.clone()),
                ("new", new.clone()),
                ("witnesses", witnesses.clone()),
            ],
            AuditEvent::Software {
                version,
                binary_sha256,
            } => vec![
                ("version", version.clone()),
                ("binary_sha256", binary_sha256.clone()),
            ],
            AuditEvent::ConfigChange { what, operator: _ } => vec![("what", what.clone())],
            AuditEvent::IntegrityFailed { findings } => vec![("findings", findings.clone())],
            AuditEvent::IntegrityVerified { pages } => vec![("pages", pages.to_string())],
            AuditEvent::AuditChainFailed { failure } => vec![("failure", failure.clone())],
            _ => Vec::new(),
        }
    }

    /// The fields of the appliance's KDH key pair and certificate; empty for any other event
    /// ([`AuditEvent::fields`] calls it for these only).
    fn kdh_fields(&self) -> Vec<(&'static str, String)> {
        match self {
            AuditEvent::KdhRequest {
                subject,
                bits,
                request_sha256,
                replaced,
                operator: _,
            } => vec![
                ("subject", subject.clone()),
                ("bits", bits.to_string()),
                ("request_sha256", request_sha256.clone()),
                ("replaced", replaced.clone()),
            ],
            AuditEvent::KdhCertificate {
                subject,
                serial,
                issuer,
                not_after,
                certificate_sha256,
                operator: _,
            } => vec![
                ("subject", subject.clone()),
                ("serial", serial.clone()),
                ("issuer", issuer.clone()),
                ("not_after", not_after.clone()),
                ("certificate_sha256", certificate_sha256.clone()),
            ],
            _ => Vec::new(),
        }
    }

    /// The fields of DUKPT events: BDKs loaded, initial keys injected, allocations voided or
    /// quarantined, the registry exported; empty for any other event ([`AuditEvent::fields`] calls it for these only).
    fn dukpt_fields(&self) -> Vec<(&'static str, String)> {
        match self {
            AuditEvent::BdkLoaded {
                bdk,
                kind,
                algorithm,
                bdk_id,
                kcv,
                range,
                source,
                replaced,
                custodians,
                operator: _,
            } => vec![
                ("bdk", bdk.to_string()),
                ("kind", kind.to_string()),
                ("algorithm", algorithm.name().to_owned()),
                ("bdk_id", bdk_id.to_string()),
                ("kcv", kcv.to_string()),
                ("range", range.to_string()),
                ("source", source.to_string()),
                ("replaced", if *replaced { "yes" } else { "no" }.to_owned()),
            ]
            .into_iter()
            .chain(
                custodians
                    .iter()
                    .map(|custodians| ("custodians", custodians.clone())),
            )
            .collect(),
            AuditEvent::DukptInjection {
                bdk,
                bdk_id,
                device_id,
                initial_ksn,
                key_type,
                kcv,
                hardware_serial,
                port,
                operator: _,
            } => vec![
                ("bdk", bdk.to_string()),
                ("bdk_id", bdk_id.to_string()),
                ("device_id", device_id.to_string()),
                ("initial_ksn", initial_ksn.clone()),
                ("key_type", key_type.name().to_owned()),
                ("kcv", kcv.to_string()),
                ("hardware_serial", hardware_serial.to_string()),
                ("port", port.clone()),
            ],
            AuditEvent::DukptVoid {
                bdk,
                device_id,
                reason,
                operator: _,
            } => vec![
                ("bdk", bdk.to_string()),
                ("device_id", device_id.to_string()),
                ("reason", reason.clone()),
            ],
            AuditEvent::DukptQuarantine {
                bdk,
                device_id,
                hardware_serial,
                failures,
            } => vec![
                ("bdk", bdk.to_string()),
                ("device_id", device_id.to_string()),
                ("hardware_serial", hardware_serial.to_string()),
                ("failures", failures.to_string()),
            ],
            AuditEvent::DukptExport {
                file,
                rows,
                only_new,
                file_sha256,
                operator: _,
            } => vec![
                ("file", file.clone()),
                ("rows", rows.to_string()),
                ("only_new", if *only_new { "yes" } else { "no" }.to_owned()),
                ("file_sha256", file_sha256.clone()),
            ],
            _ => Vec::new(),
        }
    }

    /// The operator named in `details` besides the actor, if the event names one.
    fn operator_in_details(&self) -> Option<&String> {
        match self {
            AuditEvent::Injection {
                operator: Some(operator),
                ..
            }
            | AuditEvent::Export {
                operator: Some(operator),
                ..
            }
            | AuditEvent::Zeroize {
                operator: Some(operator),
                ..
            }
            | AuditEvent::KdhRequest {
                operator: Some(operator),
                ..
            }
            | AuditEvent::KdhCertificate {
                operator: Some(operator),
                ..
            }
            | AuditEvent::ConfigChange {
                operator: Some(operator),
                ..
            }
            | AuditEvent::BdkLoaded {
                operator: Some(operator),
                ..
            }
            | AuditEvent::DukptInjection {
                operator: Some(operator),
                ..
            }
            | AuditEvent::DukptExport {
                operator: Some(operator),
                ..
            }
            | AuditEvent::ExpectedImport {
                operator: Some(operator),
                ..
            }
            | AuditEvent::ExpectedImportRefused {
                operator: Some(operator),
                ..
            }
            | AuditEvent::ExpectedClose {
                operator: Some(operator),
                ..
            }
            | AuditEvent::ReconcileExport {
                operator: Some(operator),
                ..
            }
            | AuditEvent::ReinjectionUsed {
                operator: Some(operator),
                ..
            }
            | AuditEvent::ReinjectionGranted { operator, .. }
            | AuditEvent::ReinjectionRevoked { operator, .. }
            | AuditEvent::FinalExport {
                operator: Some(operator),
                ..
            }
            | AuditEvent::InjectionFailed {
                operator: Some(operator),
                ..
            }
            | AuditEvent::Recommission { operator, .. }
            | AuditEvent::DukptVoid { operator, .. }
            | AuditEvent::Void { operator, .. }
            | AuditEvent::BatchWithdrawn { operator, .. }
            | AuditEvent::Login { operator, .. }
            | AuditEvent::Logout { operator, .. } => Some(operator),
            _ => None,
        }
    }

    /// The canonical `details` text: `key=value` pairs joined by `"; "`, values escaped.
    pub fn details(&self) -> String {
        self.fields()
            .into_iter()
            .map(|(key, value)| format!("{key}={}", escape(&value)))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Escapes a value for `details` or `actor`: `%`, `;`, `=`, `,`, `"` and every byte outside
/// printable ASCII become `%XX`, so a value can neither end its pair early nor break a CSV
/// field. Values are cut at [`MAX_VALUE`] bytes.
pub(super) fn escape(value: &str) -> String {
    let mut cut = value.len().min(MAX_VALUE);
    while !value.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut escaped = String::with_capacity(cut + 3);
    for byte in value[..cut].bytes() {
        let plain =
            (0x20..=0x7E).contains(&byte) && !matches!(byte, b'%' | b';' | b'=' | b',' | b'"');
        if plain {
            escaped.push(char::from(byte));
        } else {
            let _ = write!(escaped, "%{byte:02X}");
        }
    }
    if cut < value.len() {
        escaped.push_str("...");
    }
    escaped
}
