//! Expected-device lists (PCI PIN 30-3): the serials an injection run may serve, imported from the front end or the vendor's manifest, closed when the run ends, and the serials refused because no open list held them.
//!
//! A list's window is the registries' and the refusals' highest rowids when it was imported
//! and when it was closed: what was injected or refused while it was open, free of the clock.
//! `reconcile.rs` accounts for every listed serial; `export.rs` and `export_verify.rs` write
//! and check the sealed reconciliation export for the front end.

mod export;
mod export_verify;
mod list_file;
mod reconcile;

use std::fmt;
use std::str::FromStr;

use keymother_domain::HardwareSerial;
use rusqlite::{OptionalExtension, TransactionBehavior, params};
use sha2::{Digest, Sha256};

use crate::audit::{self, AuditEvent};
use crate::{SecretName, Vault, VaultError, live_key, now_text};

pub use export::{
    RECONCILE_EXPORT_COLUMNS, RECONCILE_EXPORT_MAGIC, ReconcileExportDraft, ReconcileRow,
    RowStatus, list_rows,
};
pub use export_verify::{VerifiedReconcileExport, verify_reconcile_export};
pub use list_file::{
    EXPECTED_COLUMNS_SERIAL, EXPECTED_COLUMNS_SERIAL_MODEL, EXPECTED_LIST_MAGIC, ExpectedDevice,
    ListFile, ListFileError, MAX_EXPECTED_DEVICES, read_list_file, seal_expected_list,
};
pub use reconcile::{
    Counts, InjectedDevice, InjectedKey, KeyRef, ListReconciliation, PendingDevice, PendingKey,
    Reconciliation, RefusedDevice,
};

/// Longest list name.
pub const MAX_LIST_NAME: usize = 32;

/// A list's name: 1 to 32 characters from `A-Z a-z 0-9 . _ -`, unique on the appliance for
/// good (a closed list keeps its name).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListName(String);

impl ListName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ListName {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.is_empty() || text.len() > MAX_LIST_NAME {
            return Err(format!(
                "a list name has 1 to {MAX_LIST_NAME} characters, not {}",
                text.len()
            ));
        }
        if let Some(position) = text
            .chars()
            .position(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return Err(format!(
                "list name: character {} is not allowed; allowed are A-Z a-z 0-9 . _ -",
                position + 1
            ));
        }
        Ok(ListName(text.to_owned()))
    }
}

impl fmt::Display for ListName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// A list as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedList {
    pub name: ListName,
    /// How many serials it holds.
    pub devices: u64,
    /// Whether it came sealed under the KEK.
    pub sealed: bool,
    /// The file's name as the operator gave it.
    pub file: String,
    /// SHA-256 of the file as imported, lower-case hex.
    pub file_sha256: String,
    pub imported_at: String,
    pub imported_by: Option<String>,
    /// `None` while it is open.
    pub closed_at: Option<String>,
    pub closed_by: Option<String>,
}

impl ExpectedList {
    pub fn is_open(&self) -> bool {
        self.closed_at.is_none()
    }
}

/// Why a list was not imported or closed; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum ExpectedError {
    /// The file was refused: the line and the problem, never the line's content.
    #[error(transparent)]
    File(#[from] ListFileError),
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Vault(#[from] VaultError),
}

impl From<rusqlite::Error> for ExpectedError {
    fn from(error: rusqlite::Error) -> Self {
        ExpectedError::Vault(VaultError::Database(error))
    }
}

const LIST_COLUMNS: &str =
    "name, devices, sealed, file, file_sha256, imported_at, imported_by, closed_at, closed_by";

fn list_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ExpectedList> {
    let name: String = row.get(0)?;
    let devices: i64 = row.get(1)?;
    Ok(ExpectedList {
        // The schema's CHECK keeps names to the rule.
        name: ListName(name),
        devices: devices as u64,
        sealed: row.get::<_, i64>(2)? == 1,
        file: row.get(3)?,
        file_sha256: row.get(4)?,
        imported_at: row.get(5)?,
        imported_by: row.get(6)?,
        closed_at: row.get(7)?,
        closed_by: row.get(8)?,
    })
}

/// The highest rowids of the SMN registry, the DUKPT registry and the refusals.
fn marks(connection: &rusqlite::Connection) -> rusqlite::Result<(i64, i64, i64)> {
    connection.query_row(
        "SELECT (SELECT coalesce(max(rowid), 0) FROM smn_registry),
                (SELECT coalesce(max(rowid), 0) FROM dukpt_registry),
                (SELECT coalesce(max(rowid), 0) FROM expected_refusal)",
        [],
        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
    )
}

impl Vault {
    /// Imports the list file `bytes` (named `file`) as the open list `name`: plain or sealed
    /// (then checked under the KEK first), each serial on no other open list, the name never
    /// used before. Audited as `expected-import` in the same transaction; a refused file is
    /// audited as `expected-import-refused` and stores nothing else.
    pub fn import_expected_list(
        &mut self,
        name: &ListName,
        bytes: &[u8],
        file: &str,
        operator: Option<&str>,
    ) -> Result<ExpectedList, ExpectedError> {
        match self.store_expected_list(name, bytes, file, operator) {
            Err(refusal @ (ExpectedError::File(_) | ExpectedError::Refused(_))) => {
                let reason = match &refusal {
                    ExpectedError::File(error) => without_file(error),
                    other => other.to_string(),
                };
                self.record_audit(AuditEvent::ExpectedImportRefused {
                    list: name.to_string(),
                    file: file.to_owned(),
                    reason,
                    operator: operator.map(str::to_owned),
                })?;
                Err(refusal)
            }
            outcome => outcome,
        }
    }

    fn store_expected_list(
        &mut self,
        name: &ListName,
        bytes: &[u8],
        file: &str,
        operator: Option<&str>,
    ) -> Result<ExpectedList, ExpectedError> {
        let key = live_key(&self.storage_key, &self.data_dir)?;
        let parsed = read_list_file(bytes, file, &self.device_id, || {
            self.load_secret(SecretName::Kek).map_err(|error| {
                format!("a sealed list is checked under the KEK, and it cannot be used: {error}")
            })
        })?;
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let taken: bool = transaction.query_row(
            "SELECT EXISTS (SELECT 1 FROM expected_list WHERE name = ?1)",
            [name.as_str()],
            |row| row.get(0),
        )?;
        if taken {
            return Err(ExpectedError::Refused(format!(
                "a list named {name} was imported before; list names are never reused"
            )));
        }
        let (smn_from, dukpt_from, refusal_from) = marks(&transaction)?;
        let file_sha256 = hex::encode(Sha256::digest(bytes));
        let imported_at = now_text();
        transaction.execute(
            "INSERT INTO expected_list (name, devices, sealed, file, file_sha256, imported_at,
                 imported_by, smn_from, dukpt_from, refusal_from)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                name.as_str(),
                parsed.devices.len() as i64,
                parsed.sealed,
                file,
                file_sha256,
                imported_at,
                operator,
                smn_from,
                dukpt_from,
                refusal_from
            ],
        )?;
        {
            let mut on_open_list = transaction.prepare(
                "SELECT d.list FROM expected_device d JOIN expected_list l ON l.name = d.list
                  WHERE d.hardware_serial = ?1 AND l.closed_at IS NULL AND d.list <> ?2",
            )?;
            let mut insert = transaction.prepare(
                "INSERT INTO expected_device (list, hardware_serial, terminal_model, line)
                 VALUES (?1, ?2, ?3, ?4)",
            )?;
            for device in &parsed.devices {
                let serial = device.hardware_serial.as_str();
                let other: Option<String> = on_open_list
                    .query_row(params![serial, name.as_str()], |row| row.get(0))
                    .optional()?;
                if let Some(other) = other {
                    return Err(ListFileError {
                        file: file.to_owned(),
                        line: device.line,
                        problem: format!(
                            "this serial is already on the open list {other}; close that list first or leave the serial out"
                        ),
                    }
                    .into());
                }
                insert.execute(params![
                    name.as_str(),
                    serial,
                    device.terminal_model.as_ref().map(|model| model.as_str()),
                    device.line as i64
                ])?;
            }
        }
        audit::append(
            &transaction,
            key.audit_head(),
            &AuditEvent::ExpectedImport {
                list: name.to_string(),
                devices: parsed.devices.len() as u64,
                sealed: parsed.sealed,
                file: file.to_owned(),
                file_sha256: file_sha256.clone(),
                operator: operator.map(str::to_owned),
            },
        )?;
        transaction.commit()?;
        Ok(ExpectedList {
            name: name.clone(),
            devices: parsed.devices.len() as u64,
            sealed: parsed.sealed,
            file: file.to_owned(),
            file_sha256,
            imported_at,
            imported_by: operator.map(str::to_owned),
            closed_at: None,
            closed_by: None,
        })
    }

    /// Closes the open list `name`: from now on its serials are refused (unless another open
    /// list holds them), and its window ends. Audited as `expected-close` with the
    /// reconciliation's counts at that moment, in the same transaction.
    pub fn close_expected_list(
        &mut self,
        name: &ListName,
        operator: Option<&str>,
    ) -> Result<ExpectedList, ExpectedError> {
        let key = live_key(&self.storage_key, &self.data_dir)?;
        let list = self
            .expected_list(name)?
            .ok_or_else(|| ExpectedError::Refused(format!("no list is named {name}")))?;
        if let Some(closed_at) = &list.closed_at {
            return Err(ExpectedError::Refused(format!(
                "the list {name} was closed at {closed_at}"
            )));
        }
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (smn_to, dukpt_to, refusal_to) = marks(&transaction)?;
        let closed_at = now_text();
        transaction.execute(
            "UPDATE expected_list SET closed_at = ?2, closed_by = ?3, smn_to = ?4, dukpt_to = ?5,
                 refusal_to = ?6
              WHERE name = ?1 AND closed_at IS NULL",
            params![
                name.as_str(),
                closed_at,
                operator,
                smn_to,
                dukpt_to,
                refusal_to
            ],
        )?;
        let counts = reconcile::reconcile_list(
            &transaction,
            &list_after_close(&list, &closed_at, operator),
        )?
        .counts();
        audit::append(
            &transaction,
            key.audit_head(),
            &AuditEvent::ExpectedClose {
                list: name.to_string(),
                devices: list.devices,
                injected: counts.injected,
                pending: counts.pending,
                missing: counts.missing,
                refused: counts.refused,
                operator: operator.map(str::to_owned),
            },
        )?;
        transaction.commit()?;
        Ok(list_after_close(&list, &closed_at, operator))
    }

    /// The list named `name`, if any.
    pub fn expected_list(&self, name: &ListName) -> Result<Option<ExpectedList>, VaultError> {
        Ok(self
            .connection
            .query_row(
                &format!("SELECT {LIST_COLUMNS} FROM expected_list WHERE name = ?1"),
                [name.as_str()],
                list_from_row,
            )
            .optional()?)
    }

    /// Every list, oldest first.
    pub fn expected_lists(&self) -> Result<Vec<ExpectedList>, VaultError> {
        let mut statement = self.connection.prepare(&format!(
            "SELECT {LIST_COLUMNS} FROM expected_list ORDER BY imported_at, name"
        ))?;
        let lists = statement
            .query_map([], list_from_row)?
            .collect::<Result<_, _>>()?;
        Ok(lists)
    }

    /// The open list that holds `serial`, if one does.
    pub fn open_list_holding(
        &self,
        serial: &HardwareSerial,
    ) -> Result<Option<ListName>, VaultError> {
        let list: Option<String> = self
            .connection
            .query_row(
                "SELECT d.list FROM expected_device d JOIN expected_list l ON l.name = d.list
                  WHERE d.hardware_serial = ?1 AND l.closed_at IS NULL LIMIT 1",
                [serial.as_str()],
                |row| row.get(0),
            )
            .optional()?;
        Ok(list.map(ListName))
    }

    /// Records that `serial` asked for a key on `port` in `mode` and was refused because no
    /// open list holds it, for reconciliation (committed before this returns).
    pub fn record_unexpected_device(
        &mut self,
        serial: &HardwareSerial,
        port: &str,
        mode: &str,
    ) -> Result<(), VaultError> {
        self.connection.execute(
            "INSERT INTO expected_refusal (hardware_serial, port, mode, refused_at)
             VALUES (?1, ?2, ?3, ?4)",
            params![serial.as_str(), port, mode, now_text()],
        )?;
        Ok(())
    }
}

/// `list` as it reads once closed now.
fn list_after_close(list: &ExpectedList, closed_at: &str, operator: Option<&str>) -> ExpectedList {
    ExpectedList {
        closed_at: Some(closed_at.to_owned()),
        closed_by: operator.map(str::to_owned),
        ..list.clone()
    }
}

/// A file refusal's words without the file's name before them, for the audit row.
fn without_file(error: &ListFileError) -> String {
    if error.line == 0 {
        error.problem.clone()
    } else {
        format!("line {}: {}", error.line, error.problem)
    }
}
