//! The reconciliation export for the front end: every list's serials injected, pending, missing and refused, as a sealed CSV file (docs/SMN-EXPORT.md, "The reconciliation export"), audited once delivered.

use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;

use hmac::Mac;
use keymother_domain::{HardwareSerial, TerminalModel};
use rusqlite::TransactionBehavior;
use sha2::{Digest, Sha256};

use super::reconcile::{InjectedKey, PendingKey, Reconciliation};
use super::{ListName, ListReconciliation};
use crate::audit::{self, AuditEvent};
use crate::export_file::{ExportError, SealedLines};
use crate::mac::{MacKey, RECONCILE_EXPORT_SEAL_LABEL};
use crate::{ExportReport, SecretName, Vault, live_key, now_text};

/// First line of a reconciliation export, format version 1.
pub const RECONCILE_EXPORT_MAGIC: &str = "# KEYMOTHER-RECONCILE-EXPORT/1";

/// The column line.
pub const RECONCILE_EXPORT_COLUMNS: &str =
    "list,status,hardware_serial,terminal_model,kind,key,state,port,at,attempts";

/// Longest line, line feed included.
pub(super) const MAX_LINE: usize = 1024;

/// Where a listed or refused serial stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RowStatus {
    Injected,
    Pending,
    Missing,
    Refused,
}

impl RowStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RowStatus::Injected => "injected",
            RowStatus::Pending => "pending",
            RowStatus::Missing => "missing",
            RowStatus::Refused => "refused",
        }
    }

    pub(super) fn parse(text: &str) -> Option<RowStatus> {
        [
            RowStatus::Injected,
            RowStatus::Pending,
            RowStatus::Missing,
            RowStatus::Refused,
        ]
        .into_iter()
        .find(|status| status.as_str() == text)
    }
}

/// One row of a reconciliation export. `injected` and `pending` rows name a key (its kind,
/// the key, its state, port and time); `missing` rows only the serial (and model); `refused`
/// rows the serial, the last attempt's port and time and the number of attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconcileRow {
    pub list: ListName,
    pub status: RowStatus,
    pub hardware_serial: HardwareSerial,
    /// The model the list names for the serial.
    pub terminal_model: Option<TerminalModel>,
    /// `master` or `dukpt`.
    pub kind: Option<String>,
    /// The key index (8 digits) or `BDK/DEVICE-ID`.
    pub key: Option<String>,
    /// `used`, `reserved` or `sent`.
    pub state: Option<String>,
    pub port: Option<String>,
    /// When the key was confirmed (`used`) or reserved; a refusal's last attempt.
    pub at: Option<String>,
    /// A refusal's attempts.
    pub attempts: Option<u64>,
}

/// Whether `byte` is written as `%XX` in a field.
fn needs_escape(byte: u8) -> bool {
    !(0x21..=0x7E).contains(&byte) || matches!(byte, b'%' | b',' | b'"')
}

/// A model or port as a field: `%`, `,`, `"`, space and every byte outside printable ASCII
/// as `%XX` (upper-case hex), as in the DUKPT export.
pub(super) fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for byte in text.bytes() {
        if needs_escape(byte) {
            let _ = write!(escaped, "%{byte:02X}");
        } else {
            escaped.push(char::from(byte));
        }
    }
    escaped
}

impl ReconcileRow {
    /// The row's line in the file.
    pub fn line(&self) -> String {
        let text = |value: &Option<String>| value.as_deref().map(escape).unwrap_or_default();
        format!(
            "{},{},{},{},{},{},{},{},{},{}",
            self.list,
            self.status.as_str(),
            self.hardware_serial,
            self.terminal_model
                .as_ref()
                .map(|model| escape(model.as_str()))
                .unwrap_or_default(),
            text(&self.kind),
            text(&self.key),
            text(&self.state),
            text(&self.port),
            text(&self.at),
            self.attempts.map(|n| n.to_string()).unwrap_or_default()
        )
    }

    fn bare(
        list: &ListName,
        status: RowStatus,
        serial: &HardwareSerial,
        model: &Option<TerminalModel>,
    ) -> ReconcileRow {
        ReconcileRow {
            list: list.clone(),
            status,
            hardware_serial: serial.clone(),
            terminal_model: model.clone(),
            kind: None,
            key: None,
            state: None,
            port: None,
            at: None,
            attempts: None,
        }
    }

    fn with_injected(mut self, key: &InjectedKey) -> ReconcileRow {
        self.kind = Some(key.key.kind().to_owned());
        self.key = Some(key.key.key());
        self.state = Some("used".to_owned());
        self.port = Some(key.port.clone());
        self.at = Some(key.at.clone());
        self
    }

    fn with_pending(mut self, key: &PendingKey) -> ReconcileRow {
        self.kind = Some(key.key.kind().to_owned());
        self.key = Some(key.key.key());
        self.state = Some(key.state.clone());
        self.port = Some(key.port.clone());
        self.at = Some(key.at.clone());
        self
    }
}

/// The rows of one list, in order: injected, pending, missing (each in the list's order),
/// then refused (by serial).
pub fn list_rows(list: &ListReconciliation) -> Vec<ReconcileRow> {
    let name = &list.list.name;
    let mut rows = Vec::new();
    for device in &list.injected {
        let bare = ReconcileRow::bare(
            name,
            RowStatus::Injected,
            &device.hardware_serial,
            &device.terminal_model,
        );
        rows.extend(
            device
                .keys
                .iter()
                .map(|key| bare.clone().with_injected(key)),
        );
        rows.extend(
            device
                .pending
                .iter()
                .map(|key| bare.clone().with_pending(key)),
        );
    }
    for device in &list.pending {
        let bare = ReconcileRow::bare(
            name,
            RowStatus::Pending,
            &device.hardware_serial,
            &device.terminal_model,
        );
        rows.extend(device.keys.iter().map(|key| bare.clone().with_pending(key)));
    }
    for device in &list.missing {
        rows.push(ReconcileRow::bare(
            name,
            RowStatus::Missing,
            &device.hardware_serial,
            &device.terminal_model,
        ));
    }
    for device in &list.refused {
        let mut row = ReconcileRow::bare(name, RowStatus::Refused, &device.hardware_serial, &None);
        row.port = Some(device.last_port.clone());
        row.at = Some(device.last_at.clone());
        row.attempts = Some(device.attempts);
        rows.push(row);
    }
    rows
}

/// A reconciliation export written but not yet recorded: its audit row is written only by
/// [`Vault::commit_reconcile_export`], once the file is where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconcileExportDraft {
    /// The list exported, or `None` for every list.
    pub list: Option<ListName>,
    pub rows: u64,
    pub exported_at: String,
    /// SHA-256 of the whole file, lower-case hex.
    pub file_sha256: String,
    /// The reconciliation the file holds.
    pub reconciliation: Reconciliation,
}

impl Vault {
    /// Writes the sealed reconciliation of the list `name` (or of every list) to `out` and
    /// changes nothing: the caller delivers it, then records it with
    /// [`Vault::commit_reconcile_export`]. `label` names the destination in write errors.
    pub fn write_reconcile_export(
        &self,
        out: &mut dyn Write,
        name: Option<&ListName>,
        label: &Path,
    ) -> Result<ReconcileExportDraft, ExportError> {
        let kek = self.load_secret(SecretName::Kek)?;
        let seal_key = MacKey::derive(&kek, RECONCILE_EXPORT_SEAL_LABEL);
        let kek_kcv = kek.kcv();
        drop(kek);
        let reconciliation = self.reconcile(name).map_err(|error| match error {
            super::ExpectedError::Vault(error) => ExportError::Vault(error),
            other => ExportError::Vault(crate::VaultError::Refused(other.to_string())),
        })?;
        let rows: Vec<ReconcileRow> = reconciliation.lists.iter().flat_map(list_rows).collect();
        let exported_at = now_text();
        let mut lines = SealedLines {
            out,
            seal: seal_key.start(),
            digest: Sha256::new(),
            path: label,
        };
        let selection = match name {
            Some(name) => format!("list {name}"),
            None => "all".to_owned(),
        };
        let header = format!(
            "{RECONCILE_EXPORT_MAGIC}\n# device-id: {}\n# kek-kcv: {kek_kcv}\n# exported-at: {exported_at}\n# selection: {selection}\n# row-count: {}\n{RECONCILE_EXPORT_COLUMNS}",
            self.device_id(),
            rows.len()
        );
        lines.sealed(&header)?;
        for row in &rows {
            lines.sealed(&row.line())?;
        }
        let seal = hex::encode_upper(lines.seal.clone().finalize().into_bytes());
        lines.plain(&format!("# seal: {seal}"))?;
        Ok(ReconcileExportDraft {
            list: name.cloned(),
            rows: rows.len() as u64,
            exported_at,
            file_sha256: hex::encode(lines.digest.finalize()),
            reconciliation,
        })
    }

    /// The file of `draft` is delivered as `file`: audits the export (`reconcile-export`).
    pub fn commit_reconcile_export(
        &mut self,
        draft: &ReconcileExportDraft,
        file: &str,
        operator: Option<&str>,
    ) -> Result<ExportReport, ExportError> {
        let key = live_key(&self.storage_key, &self.data_dir)?;
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let row = audit::append(
            &transaction,
            key.audit_head(),
            &AuditEvent::ReconcileExport {
                list: draft
                    .list
                    .as_ref()
                    .map_or_else(|| "all".to_owned(), ToString::to_string),
                file: file.to_owned(),
                rows: draft.rows,
                file_sha256: draft.file_sha256.clone(),
                operator: operator.map(str::to_owned),
            },
        )?;
        transaction.commit()?;
        Ok(ExportReport {
            path: file.into(),
            rows: draft.rows,
            only_new: false,
            exported_at: draft.exported_at.clone(),
            file_sha256: draft.file_sha256.clone(),
            audit_sequence: row.sequence,
        })
    }
}
