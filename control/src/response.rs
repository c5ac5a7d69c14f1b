//! The answers: what each command's `result` holds.

use std::collections::BTreeMap;

use keymother_domain::{
    BatchId, BdkId, BdkName, DeviceRange, DukptDeviceId, HardwareSerial, Kcv, KeyIndex, Smn,
};
use serde::{Deserialize, Serialize};

/// Whether keys flow, as `status` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApplianceState {
    /// Keys flow.
    Ready,
    /// KEK and TTK are loaded, but something else holds the keys back (`reason` says what).
    Waiting,
    /// The KEK or the TTK is not loaded.
    Locked,
    /// The tamper input fired; the key ceremonies must be held again.
    Tampered,
    /// The vault was zeroized: nothing is dispensed until it is recommissioned (offline:
    /// `keymother vault recommission`); its registries and audit trail can still be read.
    Zeroized,
    /// The whole-database integrity check found the vault damaged: nothing is dispensed
    /// (`reason` gives SQLite's findings).
    Damaged,
}

/// A loaded secret (KEK or TTK).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretStatus {
    pub algorithm: String,
    pub kcv: String,
    pub components: u32,
    pub loaded_at: String,
}

/// An operator session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionReport {
    /// The certificate's common name: what injection and control records name.
    pub name: String,
    /// The certificate's subject (RFC 4514).
    pub subject: String,
    /// The certificate's serial number, upper-case hex.
    pub serial: String,
    /// RFC 3339.
    pub since: String,
    /// RFC 3339: the session ends here at the latest.
    pub until: String,
}

/// Whether the tamper input is watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TamperInputState {
    /// No tamper input is configured (`[bench] gpio = "none"`).
    #[serde(rename = "none")]
    None,
    #[serde(rename = "watched")]
    Watched,
    /// Its GPIO failed or could not be opened; `reason` says why.
    #[serde(rename = "not watched")]
    NotWatched,
}

/// The tamper input, for `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TamperInput {
    pub state: TamperInputState,
    /// The input's name (e.g. `GPIO23`); absent when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// Why it is not watched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Whether keys wait while it is not watched (`[bench] require_tamper_input`).
    pub required: bool,
}

/// The appliance's clock, for `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockReport {
    /// The appliance's time now, RFC 3339.
    pub now: String,
    /// Whether logins and certificate checks may trust it.
    pub trusted: bool,
    /// Whether it must be trusted before them (`[clock] require_trusted`).
    pub required: bool,
    /// What vouches for it: `system` (nothing needs to), `rtc`, `dual-control`, or
    /// `not set`.
    pub source: String,
    /// The RTC, the two people who set it, or why it is not trusted.
    pub detail: String,
}

/// `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusReport {
    /// The control protocol version the daemon speaks.
    pub control_version: u32,
    pub device_id: String,
    pub state: ApplianceState,
    /// "ready", or what keeps the keys from flowing.
    pub reason: String,
    /// KEK and TTK are loaded (the key ceremonies are done).
    pub ready: bool,
    /// The tamper input that fired, while the appliance is tampered.
    pub tampered: Option<String>,
    /// `KEK` and `TTK`: the loaded secret, or `null`.
    pub secrets: BTreeMap<String, Option<SecretStatus>>,
    /// Keys per state (`available`, `reserved`, `sent`, `used`, `quarantined`, `void`), and
    /// `erased`: keys a zeroize erased before they were used.
    pub keys: BTreeMap<String, u64>,
    pub smn_rows: u64,
    /// The operator logged in, or `null`.
    pub operator: Option<SessionReport>,
    pub operator_required: bool,
    /// Whether an operator CA is configured (`[pki] operator_ca`).
    pub operator_ca: bool,
    pub tamper_input: TamperInput,
    /// Port name to its state (`waiting`, `open`, or `lost: <reason>`).
    pub ports: BTreeMap<String, String>,
    pub injections_since_start: u64,
    pub clock: ClockReport,
    /// Fewer keys are available than `low_inventory_threshold` (`[bench] low_inventory`,
    /// the display's warning).
    #[serde(default)]
    pub low_inventory: bool,
    #[serde(default)]
    pub low_inventory_threshold: u64,
}

/// `ceremony`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CeremonyReport {
    pub secret: String,
    pub algorithm: String,
    /// Each component's check value, in order.
    pub component_kcvs: Vec<String>,
    /// The combined key's check value.
    pub kcv: String,
    /// Whether DES parity was adjusted when combining.
    pub parity_adjusted: bool,
    /// KEK and TTK are both loaded now.
    pub ready: bool,
    /// The tamper input that fired, while the appliance is still tampered (both ceremonies
    /// must be held again).
    pub tampered: Option<String>,
    /// The custodians, in component order, as the audit trail names them.
    pub custodians: Vec<String>,
    /// The check value of the key this ceremony replaced, if one was loaded.
    pub replaced: Option<String>,
}

/// `import`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportReport {
    pub batch_id: String,
    pub issuer: String,
    pub algorithm: String,
    pub records: u32,
    pub first_index: u32,
    pub last_index: u32,
    pub file_sha256: String,
}

/// One batch, for `inventory`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchReport {
    pub batch_id: String,
    pub issuer: String,
    pub algorithm: String,
    pub records: u64,
    pub available: u64,
    /// Keys withdrawn with the batch (`batch-withdraw`); 0 unless it was withdrawn.
    pub withdrawn: u64,
    pub imported_at: String,
}

/// `inventory`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryReport {
    /// Keys per state.
    pub keys: BTreeMap<String, u64>,
    pub batches: Vec<BatchReport>,
}

/// One row of the SMN registry, for `smn-rows`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmnRow {
    pub smn: Smn,
    pub hardware_serial: HardwareSerial,
    pub key_index: KeyIndex,
    pub kcv: Kcv,
    pub batch_id: BatchId,
    pub port: String,
    pub terminal_model: String,
    pub injected_at: String,
    /// The operator whose session the key was reserved under, if any.
    pub operator: Option<String>,
    /// A re-injection: the SMN of the terminal's earlier row this one replaces.
    pub replaces: Option<Smn>,
    /// Re-injected since: the SMN of the terminal's later row that replaces this one.
    pub replaced_by: Option<Smn>,
    /// A re-injection: the grant the key was reserved under.
    pub reinjection_grant: Option<u64>,
    /// That grant's reason.
    pub reinjection_reason: Option<String>,
}

/// `export-smn`, once the client has the file and its rows are marked exported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmnExportReport {
    pub rows: u64,
    pub only_new: bool,
    pub exported_at: String,
    pub file_sha256: String,
}

/// `export-dukpt`, once the client has the file and its rows are marked exported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DukptExportReport {
    pub rows: u64,
    pub only_new: bool,
    pub exported_at: String,
    pub file_sha256: String,
}

/// Whether the audit chain's head was checked under the storage key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HeadMac {
    /// The head verified under the storage key: no row was removed from the end, and the
    /// chain was not rewritten, by anyone without the storage key.
    Verified,
    /// The storage key is gone (the appliance was zeroized): the chain is consistent, but
    /// truncation or a consistent rewrite cannot be ruled out.
    NotChecked,
}

impl std::fmt::Display for HeadMac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HeadMac::Verified => "Verified",
            HeadMac::NotChecked => "NotChecked",
        })
    }
}

/// `audit-verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditVerifyReport {
    pub rows: u64,
    pub head_hash: String,
    pub head_mac: HeadMac,
}

/// `audit-export`, once the client has the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditExportReport {
    pub rows: u64,
    /// The chain's verification as written in the file's header.
    pub verification: String,
    pub file_sha256: String,
}

/// `void`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoidReport {
    pub key_index: KeyIndex,
    pub hardware_serial: HardwareSerial,
    /// `reserved` or `sent`.
    pub previous_state: String,
}

/// `zeroize`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZeroizeReport {
    pub secrets_deleted: u64,
    pub key_blocks_erased: u64,
    /// Final exports (SMN and DUKPT registries, all rows and only new rows) sealed under the
    /// KEK before it went, which `export-smn` and `export-dukpt` deliver from then on; 0 when
    /// no KEK was loaded.
    pub final_exports: u64,
}

/// `kdh-request`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KdhRequestReport {
    pub subject: String,
    pub bits: usize,
    /// The PKCS#10 certificate request, PEM.
    pub request: String,
}

/// `kdh-install`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KdhInstallReport {
    pub subject: String,
    /// The certificate's serial number, upper-case hex.
    pub serial: String,
    pub certificate_mode: bool,
}

/// `kdh-status`, when a KDH key pair exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KdhStatusReport {
    pub subject: String,
    pub bits: usize,
    pub requested_at: String,
    /// The certificate request, PEM.
    pub request: String,
    /// When the certificate was installed, or `null`.
    pub certificate_installed_at: Option<String>,
    pub certificate_mode: bool,
}

/// `login-challenge`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChallengeReport {
    /// 64 hex digits.
    pub challenge: String,
    pub device_id: String,
    /// How far the operator's clock may be from the appliance's.
    pub window_seconds: u64,
    /// RFC 3339.
    pub expires_at: String,
}

/// `logout`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogoutReport {
    /// The session that ended, or `null` when nobody was logged in.
    pub logged_out: Option<SessionReport>,
}

/// Where a clock setting stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClockSetState {
    /// The first reading is in; a second person must give theirs.
    Waiting,
    /// Two readings agreed: the clock is set.
    Set,
}

/// `clock-set`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockSetReport {
    pub state: ClockSetState,
    /// Who gave the readings so far (name, role, local user).
    pub witnesses: String,
    /// When set: the appliance's time before, RFC 3339.
    pub old: Option<String>,
    /// When set: the appliance's time after, RFC 3339.
    pub new: Option<String>,
    /// When waiting: how long the first reading waits for the second.
    pub expires_in_seconds: Option<u64>,
}

/// One BDK, for `bdk-status` and `bdk-ceremony`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BdkReport {
    pub name: BdkName,
    /// `TDES` (ANSI X9.24-1 DUKPT) or `AES` (X9.24-3).
    pub kind: String,
    pub algorithm: String,
    pub bdk_id: BdkId,
    /// The BDK's check value.
    pub kcv: Kcv,
    /// This appliance's device IDs, `first-last` in hex.
    pub devices: DeviceRange,
    /// The next device ID a new terminal gets; `null` when the range is used up.
    pub next_device: Option<DukptDeviceId>,
    /// Device IDs left.
    pub remaining: u64,
    /// `ceremony` or `file`.
    pub source: String,
    pub loaded_at: String,
    /// Destroyed by a tamper or a zeroize: load it again before its profiles run.
    pub destroyed: bool,
}

/// `bdk-ceremony`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BdkCeremonyReport {
    /// Each component's check value, in order.
    pub component_kcvs: Vec<String>,
    /// Whether DES parity was adjusted when combining.
    pub parity_adjusted: bool,
    /// The custodians, in component order, as the audit trail names them.
    pub custodians: Vec<String>,
    pub bdk: BdkReport,
}

/// An expected-device list as recorded (`expected-import`, `expected-close`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedListReport {
    pub name: String,
    /// How many serials it holds.
    pub devices: u64,
    /// Whether it came sealed under the KEK.
    pub sealed: bool,
    /// The file's name as the operator gave it.
    pub file_name: String,
    pub file_sha256: String,
    pub imported_at: String,
    pub imported_by: Option<String>,
    /// `null` while the list is open.
    pub closed_at: Option<String>,
    pub closed_by: Option<String>,
}

/// A key of a listed serial: a master key (`key` is its 8-digit index, `smn` its SMN) or a
/// DUKPT initial key (`key` is `BDK/DEVICE-ID`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconciledKey {
    /// `master` or `dukpt`.
    pub kind: String,
    pub key: String,
    pub smn: Option<String>,
    /// `used` (confirmed), `reserved` or `sent`.
    pub state: String,
    pub port: String,
    /// When it was confirmed (`used`) or reserved.
    pub at: String,
}

/// A listed serial with a key confirmed while the list was open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InjectedDeviceReport {
    pub hardware_serial: HardwareSerial,
    /// The model the list names.
    pub terminal_model: Option<String>,
    pub keys: Vec<ReconciledKey>,
    /// Keys it also has reserved or sent, unconfirmed.
    pub pending: Vec<ReconciledKey>,
}

/// A listed serial with nothing confirmed and a key reserved or sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingDeviceReport {
    pub hardware_serial: HardwareSerial,
    pub terminal_model: Option<String>,
    pub keys: Vec<ReconciledKey>,
}

/// A listed serial never injected, with nothing pending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MissingDeviceReport {
    pub hardware_serial: HardwareSerial,
    pub terminal_model: Option<String>,
    /// The line of the list file it is on.
    pub line: u64,
}

/// A serial refused while the list was open because no open list held it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefusedDeviceReport {
    pub hardware_serial: HardwareSerial,
    pub attempts: u64,
    pub first_at: String,
    pub last_at: String,
    pub last_port: String,
}

/// One list accounted for: each listed serial is injected, pending or missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListReconciliationReport {
    pub list: ExpectedListReport,
    pub injected: Vec<InjectedDeviceReport>,
    pub pending: Vec<PendingDeviceReport>,
    pub missing: Vec<MissingDeviceReport>,
    pub refused: Vec<RefusedDeviceReport>,
}

/// `reconcile`: one list, or every list oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcileReport {
    pub lists: Vec<ListReconciliationReport>,
}

/// `reconcile-export`, once the client has the file and the export is audited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcileExportReport {
    pub rows: u64,
    pub exported_at: String,
    pub file_sha256: String,
}

/// `batch-withdraw`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchWithdrawReport {
    pub batch_id: String,
    /// Keys taken out of service (they were available).
    pub withdrawn: u64,
    /// Keys of the batch reserved or sent to a terminal: they finish normally.
    pub pending: u64,
    /// Keys of the batch already used or otherwise out of service.
    pub used: u64,
}

/// A re-injection grant, for `reinject-grant`, `reinject-list` and `reinject-revoke`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReinjectionGrantReport {
    pub grant: u64,
    pub hardware_serial: HardwareSerial,
    /// `master`, or the DUKPT slot's BDK name.
    pub slot: String,
    pub reason: String,
    pub granted_by: String,
    pub granted_at: String,
    /// `open` (the terminal's next reservation of the slot uses it), `used` or `revoked`.
    pub state: String,
    /// When it was used or revoked.
    pub closed_at: Option<String>,
    /// Who revoked it, or the operator of the reservation that used it.
    pub closed_by: Option<String>,
    /// Used: the key index (master) or initial KSN or key ID (DUKPT) reserved under it.
    pub used_for: Option<String>,
    /// Revoked: why.
    pub revoke_reason: Option<String>,
}

/// What a pending entry holds for its terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PendingKind {
    /// A terminal master key (`key_index`, `batch_id`).
    Master,
    /// A DUKPT initial key (`bdk`, `device_id`).
    Dukpt,
}

/// One key reserved or sent to a terminal and not confirmed, for `pending`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingEntry {
    pub kind: PendingKind,
    /// A master key's index; `null` for a DUKPT initial key.
    pub key_index: Option<KeyIndex>,
    /// A master key's batch; `null` for a DUKPT initial key.
    pub batch_id: Option<BatchId>,
    /// A DUKPT initial key's BDK; `null` for a master key.
    pub bdk: Option<BdkName>,
    /// A DUKPT initial key's device id; `null` for a master key.
    pub device_id: Option<DukptDeviceId>,
    pub hardware_serial: HardwareSerial,
    /// `reserved` or `sent` (delivered, never confirmed).
    pub state: String,
    pub port: String,
    /// The terminal's model from its HELLO, when the reservation recorded it.
    pub terminal_model: Option<String>,
    /// The operator whose session it was reserved under, if any.
    pub operator: Option<String>,
    /// When it was reserved, RFC 3339.
    pub reserved_at: String,
    /// Seconds since then, by the appliance's clock.
    pub age_seconds: u64,
}

/// A report's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportCounts {
    /// Confirmed injections (SMN rows) in the period.
    pub injections: u64,
    /// Delivered keys never confirmed (`injection-failed` audit rows) in the period.
    pub failures: u64,
    /// Keys reserved in the period and still reserved or sent.
    pub pending: u64,
    /// Keys voided (`void`) in the period.
    pub voided: u64,
}

/// One group of a report: `null` where the appliance does not know a part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportLine {
    pub operator: Option<String>,
    pub batch_id: Option<String>,
    pub terminal_model: Option<String>,
    pub port: Option<String>,
    pub injections: u64,
    pub failures: u64,
    pub pending: u64,
    pub voided: u64,
}

/// `report`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportAnswer {
    /// The period's start (included), RFC 3339 UTC.
    pub from: String,
    /// The period's end (excluded), RFC 3339 UTC.
    pub to: String,
    /// The period in words (`shift of Ann Lee since ...`, `the last 8 hours`, `day ...`).
    pub period: String,
    /// Per operator, batch, terminal model and port, in that order.
    pub rows: Vec<ReportLine>,
    pub totals: ReportCounts,
}

/// `vault-check`: the whole database was read and found whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultCheckReport {
    /// The database's size in pages, every one of them read.
    pub pages: u64,
}
