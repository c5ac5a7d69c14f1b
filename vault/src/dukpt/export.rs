//! The DUKPT export for the front end: the registry of confirmed DUKPT injections as a sealed CSV file (docs/SMN-EXPORT.md, "The DUKPT export"), its rows marked exported only once the file is delivered.

use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};

use hmac::Mac;
use keymother_domain::{
    BdkId, BdkName, DukptDeviceId, HardwareSerial, Kcv, KeyAlgorithm, KeyFamily, TerminalModel,
};
use keymother_keyfiles::CreatedAt;
use rusqlite::{TransactionBehavior, params};
use sha2::{Digest, Sha256};

use crate::audit::{self, AuditEvent};
use crate::export_file::{ExportError, SealedLines, write_atomically};
use crate::mac::{DUKPT_EXPORT_SEAL_LABEL, MacKey};
use crate::{ExportReport, SecretName, Vault, VaultError, live_key, now_text};

/// First line of a DUKPT export, format version 2 (version 1 had no re-injection columns).
pub const DUKPT_EXPORT_MAGIC: &str = "# KEYMOTHER-DUKPT-EXPORT/2";

/// The column line.
pub const DUKPT_EXPORT_COLUMNS: &str = "hardware_serial,bdk,bdk_id,device_id,initial_ksn,key_type,kcv,port,terminal_model,operator,injected_at,replaces,replaced_by";

/// First line and column line of format version 1, which the verifier still reads.
pub(super) const DUKPT_EXPORT_MAGIC_V1: &str = "# KEYMOTHER-DUKPT-EXPORT/1";
pub(super) const DUKPT_EXPORT_COLUMNS_V1: &str = "hardware_serial,bdk,bdk_id,device_id,initial_ksn,key_type,kcv,port,terminal_model,operator,injected_at";

/// Longest line of a DUKPT export, line feed included.
pub(super) const MAX_LINE: usize = 4096;

/// Longest operator name in a row, in bytes of UTF-8 before escaping.
const MAX_OPERATOR: usize = 1024;

/// Longest port name.
const MAX_PORT: usize = 32;

/// One row of a DUKPT export: a confirmed DUKPT injection, as the front end reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedDukpt {
    pub hardware_serial: HardwareSerial,
    /// The BDK's name on the appliance.
    pub bdk: BdkName,
    /// The key set identifier (TDES) or BDK ID (AES).
    pub bdk_id: BdkId,
    pub device_id: DukptDeviceId,
    /// The initial KSN (TDES, 20 hex digits) or initial key ID (AES, 16 hex digits).
    pub initial_ksn: String,
    /// The derived initial key's type.
    pub key_type: KeyAlgorithm,
    /// The initial key's check value, which the terminal reported.
    pub kcv: Kcv,
    pub port: String,
    pub terminal_model: TerminalModel,
    /// The operator of the injection; `None` when no operator was logged in.
    pub operator: Option<String>,
    /// `YYYY-MM-DDTHH:MM:SSZ`.
    pub injected_at: String,
    /// A re-injection: the initial KSN or key ID of the terminal's earlier row of this BDK
    /// that this one replaces.
    pub replaces: Option<String>,
    /// Re-injected since (when the file was written): the initial KSN or key ID of the row
    /// replacing this one.
    pub replaced_by: Option<String>,
}

/// A DUKPT export written but not yet recorded: its rows are marked exported and its audit
/// row written only by [`Vault::commit_dukpt_export`], once the file is where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DukptExportDraft {
    /// The highest registry rowid the file covers.
    bound: i64,
    pub rows: u64,
    pub only_new: bool,
    pub exported_at: String,
    /// SHA-256 of the whole file, lower-case hex.
    pub file_sha256: String,
    /// The `final-export` row of a file a zeroize sealed (a zeroized vault delivers only
    /// that): already recorded, so committing it records nothing.
    sealed_at_zeroize: Option<u64>,
}

/// A row's fields as plain text (the terminal model and the operator unescaped), checked and
/// typed by [`RowText::typed`]; the error names the field that is wrong.
pub(super) struct RowText<'a> {
    pub(super) hardware_serial: &'a str,
    pub(super) bdk: &'a str,
    pub(super) bdk_id: &'a str,
    pub(super) device_id: &'a str,
    pub(super) initial_ksn: &'a str,
    pub(super) key_type: &'a str,
    pub(super) kcv: &'a str,
    pub(super) port: &'a str,
    pub(super) terminal_model: &'a str,
    /// Empty when no operator was logged in.
    pub(super) operator: &'a str,
    pub(super) injected_at: &'a str,
    /// Empty, or another initial key of the same terminal and BDK.
    pub(super) replaces: &'a str,
    pub(super) replaced_by: &'a str,
}

impl RowText<'_> {
    pub(super) fn typed(&self) -> Result<ExportedDukpt, String> {
        let hardware_serial: HardwareSerial = self.hardware_serial.parse().map_err(|_| {
            format!(
                "hardware serial {:?} is not 1 to 24 characters A-Z 0-9",
                self.hardware_serial
            )
        })?;
        let bdk: BdkName = self
            .bdk
            .parse()
            .map_err(|reason| format!("BDK name {:?}: {reason}", self.bdk))?;
        let (bdk_id, device_id) = self.identifiers()?;
        let expected = initial_key_identity(bdk_id, device_id);
        if self.initial_ksn != expected {
            let what = match bdk_id.family() {
                KeyFamily::Tdes => "initial KSN",
                KeyFamily::Aes => "initial key ID",
            };
            return Err(format!(
                "{what} {:?} is not the BDK ID followed by the device ID ({expected})",
                self.initial_ksn
            ));
        }
        let (key_type, kcv) = self.key_type_and_kcv(bdk_id.family())?;
        self.port_is_plain()?;
        let terminal_model: TerminalModel = self
            .terminal_model
            .parse()
            .map_err(|error| format!("{error}"))?;
        if self.operator.len() > MAX_OPERATOR {
            return Err(format!(
                "the operator's name is {} bytes long; at most {MAX_OPERATOR} are allowed",
                self.operator.len()
            ));
        }
        self.injected_at
            .parse::<CreatedAt>()
            .map_err(|reason| format!("injected_at {:?}: {reason}", self.injected_at))?;
        let replaces = other_initial_key("replaces", self.replaces, &expected)?;
        let replaced_by = other_initial_key("replaced_by", self.replaced_by, &expected)?;
        if replaces.is_some() && replaces == replaced_by {
            return Err("replaces and replaced_by name the same initial key".to_owned());
        }
        Ok(ExportedDukpt {
            hardware_serial,
            bdk,
            bdk_id,
            device_id,
            initial_ksn: expected,
            key_type,
            kcv,
            port: self.port.to_owned(),
            terminal_model,
            operator: (!self.operator.is_empty()).then(|| self.operator.to_owned()),
            injected_at: self.injected_at.to_owned(),
            replaces,
            replaced_by,
        })
    }

    /// The BDK ID and the device ID, of one kind, each in upper-case hex.
    fn identifiers(&self) -> Result<(BdkId, DukptDeviceId), String> {
        let bdk_id = self
            .bdk_id
            .parse::<BdkId>()
            .ok()
            .filter(|parsed| parsed.to_string() == self.bdk_id)
            .ok_or_else(|| {
                format!(
                    "BDK ID {:?} is not 10 (TDES) or 8 (AES) upper-case hex digits",
                    self.bdk_id
                )
            })?;
        let family = bdk_id.family();
        let device_id = self
            .device_id
            .parse::<DukptDeviceId>()
            .ok()
            .filter(|parsed| parsed.family() == family && parsed.to_string() == self.device_id)
            .ok_or_else(|| {
                let rule = match family {
                    KeyFamily::Tdes => "5 upper-case hex digits, at most 7FFFF",
                    KeyFamily::Aes => "8 upper-case hex digits",
                };
                format!(
                    "device ID {:?} is not {rule}, as the device IDs of {family} BDKs are",
                    self.device_id
                )
            })?;
        Ok((bdk_id, device_id))
    }

    /// The key type (TDES-2KEY under a TDES BDK) and its check value, of the key's kind.
    fn key_type_and_kcv(&self, bdk_family: KeyFamily) -> Result<(KeyAlgorithm, Kcv), String> {
        let key_type = self
            .key_type
            .parse::<KeyAlgorithm>()
            .ok()
            .filter(|parsed| parsed.name() == self.key_type)
            .ok_or_else(|| {
                format!(
                    "key type {:?} is not one of TDES-2KEY, TDES-3KEY, AES-128, AES-192, AES-256",
                    self.key_type
                )
            })?;
        if bdk_family == KeyFamily::Tdes && key_type != KeyAlgorithm::Tdes2Key {
            return Err(format!(
                "key type {key_type} under a TDES BDK; TDES DUKPT initial keys are TDES-2KEY"
            ));
        }
        let kcv = Kcv::from_hex(key_type.family(), self.kcv)
            .ok()
            .filter(|_| !self.kcv.bytes().any(|byte| byte.is_ascii_lowercase()))
            .ok_or_else(|| {
                let digits = match key_type.family() {
                    KeyFamily::Tdes => 6,
                    KeyFamily::Aes => 10,
                };
                format!(
                    "check value {:?} is not {digits} upper-case hex digits, as {key_type} keys' are",
                    self.kcv
                )
            })?;
        Ok((key_type, kcv))
    }

    fn port_is_plain(&self) -> Result<(), String> {
        let plain = !self.port.is_empty()
            && self.port.len() <= MAX_PORT
            && self
                .port
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'));
        if plain {
            Ok(())
        } else {
            Err(format!(
                "port {:?} is not 1 to {MAX_PORT} characters A-Z a-z 0-9 - _ .",
                self.port
            ))
        }
    }
}

/// A `column` naming another initial key of the BDK of `own` (the same length and BDK ID, in
/// upper-case hex), or nothing.
fn other_initial_key(column: &str, text: &str, own: &str) -> Result<Option<String>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    let bdk_id_length = if own.len() == 20 { 10 } else { 8 };
    let same_form = text.len() == own.len()
        && text
            .bytes()
            .all(|byte| byte.is_ascii_digit() || (b'A'..=b'F').contains(&byte))
        && text.get(..bdk_id_length) == own.get(..bdk_id_length);
    if !same_form || text == own {
        return Err(format!(
            "{column} {text:?} is not another initial key of this row's BDK ID"
        ));
    }
    Ok(Some(text.to_owned()))
}

/// The initial KSN (TDES: the key set identifier, then the device ID above a 21-bit zero
/// counter) or initial key ID (AES: the BDK ID, then the derivation ID) of `device_id`.
pub(super) fn initial_key_identity(bdk_id: BdkId, device_id: DukptDeviceId) -> String {
    match device_id.family() {
        KeyFamily::Tdes => format!("{bdk_id}{:010X}", u64::from(device_id.value()) << 21),
        KeyFamily::Aes => format!("{bdk_id}{device_id}"),
    }
}

/// Whether `byte` is written as `%XX` in an escaped field.
fn needs_escape(byte: u8) -> bool {
    !(0x21..=0x7E).contains(&byte) || matches!(byte, b'%' | b',' | b'"')
}

/// A terminal model or operator as a row field: `%`, `,`, `"`, space and every byte outside
/// printable ASCII as `%XX` (upper-case hex), so no field holds a comma, quote or space.
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

/// The text of an escaped field, which must be escaped exactly as [`escape`] does it.
pub(super) fn unescape(field: &str, what: &str) -> Result<String, String> {
    let mut bytes = Vec::with_capacity(field.len());
    let mut rest = field.as_bytes();
    while let Some((&byte, after)) = rest.split_first() {
        if byte != b'%' {
            bytes.push(byte);
            rest = after;
            continue;
        }
        let value = after
            .get(..2)
            .filter(|digits| {
                digits
                    .iter()
                    .all(|d| matches!(d, b'0'..=b'9' | b'A'..=b'F'))
            })
            .and_then(|digits| u8::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok())
            .ok_or_else(|| format!("{what}: a % not followed by two upper-case hex digits"))?;
        bytes.push(value);
        rest = &after[2..];
    }
    let text = String::from_utf8(bytes).map_err(|_| format!("{what}: not UTF-8 once unescaped"))?;
    if escape(&text) != field {
        return Err(format!(
            "{what} {field:?} is not escaped as the format says (expected {:?})",
            escape(&text)
        ));
    }
    Ok(text)
}

/// The row's line in the file.
pub(super) fn row_line(row: &ExportedDukpt) -> String {
    format!(
        "{},{},{},{},{},{},{},{},{},{},{},{},{}",
        row.hardware_serial,
        row.bdk,
        row.bdk_id,
        row.device_id,
        row.initial_ksn,
        row.key_type.name(),
        row.kcv,
        row.port,
        escape(row.terminal_model.as_str()),
        escape(row.operator.as_deref().unwrap_or("")),
        row.injected_at,
        row.replaces.as_deref().unwrap_or(""),
        row.replaced_by.as_deref().unwrap_or("")
    )
}

/// A text column of a registry row; anything else reads as empty text, which the row's
/// checks then refuse by name.
fn column_text<'r>(row: &'r rusqlite::Row<'_>, column: usize) -> &'r str {
    row.get_ref(column)
        .ok()
        .and_then(|value| value.as_str().ok())
        .unwrap_or("")
}

/// A registry row as the export writes it, checked as the front end will check it.
fn stored_row(row: &rusqlite::Row<'_>) -> Result<ExportedDukpt, String> {
    let bdk_id = column_text(row, 2);
    let number: i64 = row
        .get(3)
        .map_err(|_| "the device ID is not a number".to_owned())?;
    // The BDK ID's length tells the kind; a number out of the kind's range fails the check.
    let device_id = if bdk_id.len() == 10 {
        format!("{number:05X}")
    } else {
        format!("{number:08X}")
    };
    RowText {
        hardware_serial: column_text(row, 0),
        bdk: column_text(row, 1),
        bdk_id,
        device_id: &device_id,
        initial_ksn: column_text(row, 4),
        key_type: column_text(row, 5),
        kcv: column_text(row, 6),
        port: column_text(row, 7),
        terminal_model: column_text(row, 8),
        operator: column_text(row, 9),
        injected_at: column_text(row, 10),
        replaces: column_text(row, 11),
        replaced_by: column_text(row, 12),
    }
    .typed()
}

/// Rows up to `bound` (rowid), all or those never exported. Registry rows are never deleted
/// (trigger), so rowids only grow and the bound taken when the file is written selects
/// exactly the rows written.
const SELECTION: &str = "FROM dukpt_registry r WHERE r.rowid <= ?1
      AND (?2 = 0 OR NOT EXISTS (SELECT 1 FROM dukpt_export e WHERE e.initial_ksn = r.initial_ksn))";

impl Vault {
    /// Writes the DUKPT registry (all rows, or only rows never exported) to `path` as a
    /// sealed file for the front end (docs/SMN-EXPORT.md). The file is written atomically;
    /// only after it is in place are its rows marked exported and a `dukpt-export` audit row
    /// written, in one transaction. A failure names the path and changes nothing.
    pub fn export_dukpt(
        &mut self,
        path: &Path,
        only_new: bool,
        operator: Option<&str>,
    ) -> Result<ExportReport, ExportError> {
        let draft = write_atomically(path, |out| self.write_dukpt_export(out, only_new, path))?;
        let file = path.display().to_string();
        let mut report = self.commit_dukpt_export(&draft, &file, operator)?;
        report.path = path.to_path_buf();
        Ok(report)
    }

    /// Writes the sealed DUKPT file to `out` and changes nothing: the caller delivers it (the
    /// daemon streams it to its client), then records it with [`Vault::commit_dukpt_export`].
    /// `label` names the destination in write errors.
    pub fn write_dukpt_export(
        &self,
        out: &mut dyn Write,
        only_new: bool,
        label: &Path,
    ) -> Result<DukptExportDraft, ExportError> {
        if self.zeroized {
            // Its registry never changes again: the file sealed at the zeroize is the export.
            let stored = self.deliver_final_export(crate::Registry::Dukpt, only_new, out, label)?;
            return Ok(DukptExportDraft {
                bound: 0,
                rows: stored.rows,
                only_new,
                exported_at: stored.exported_at,
                file_sha256: stored.file_sha256,
                sealed_at_zeroize: Some(stored.audit_sequence),
            });
        }
        let kek = self.load_secret(SecretName::Kek)?;
        let seal_key = MacKey::derive(&kek, DUKPT_EXPORT_SEAL_LABEL);
        let kek_kcv = kek.kcv();
        drop(kek);
        let exported_at = now_text();
        // One read snapshot for the count in the header and the rows after it.
        let snapshot = self.connection.unchecked_transaction()?;
        let bound: i64 = snapshot.query_row(
            "SELECT coalesce(max(rowid), 0) FROM dukpt_registry",
            [],
            |row| row.get(0),
        )?;
        let count: i64 = snapshot.query_row(
            &format!("SELECT count(*) {SELECTION}"),
            params![bound, only_new],
            |row| row.get(0),
        )?;
        let mut statement = snapshot.prepare(&format!(
            "SELECT hardware_serial, bdk_name, bdk_id, device_id, initial_ksn, key_type, kcv,
                    port, terminal_model, operator, injected_at, replaces,
                    (SELECT later.initial_ksn FROM dukpt_registry AS later
                      WHERE later.replaces = r.initial_ksn AND later.rowid <= ?1)
              {SELECTION} ORDER BY r.rowid"
        ))?;
        let mut lines = SealedLines {
            out,
            seal: seal_key.start(),
            digest: Sha256::new(),
            path: label,
        };
        let header = format!(
            "{DUKPT_EXPORT_MAGIC}\n# device-id: {}\n# kek-kcv: {kek_kcv}\n# exported-at: {exported_at}\n# selection: {}\n# row-count: {count}\n{DUKPT_EXPORT_COLUMNS}",
            self.device_id(),
            if only_new { "only-new" } else { "all" },
        );
        lines.sealed(&header)?;
        let mut rows = 0i64;
        let mut query = statement.query(params![bound, only_new])?;
        while let Some(row) = query.next()? {
            let exported = stored_row(row).map_err(|problem| ExportError::UnfitDukptRow {
                initial_ksn: column_text(row, 4).to_owned(),
                problem,
            })?;
            lines.sealed(&row_line(&exported))?;
            rows += 1;
        }
        if rows != count {
            return Err(VaultError::Corrupt(format!(
                "the DUKPT registry changed during the export ({count} rows counted, {rows} read)"
            ))
            .into());
        }
        let seal = hex::encode_upper(lines.seal.clone().finalize().into_bytes());
        lines.plain(&format!("# seal: {seal}"))?;
        Ok(DukptExportDraft {
            bound,
            rows: rows as u64,
            only_new,
            exported_at,
            file_sha256: hex::encode(lines.digest.finalize()),
            sealed_at_zeroize: None,
        })
    }

    /// The file of `draft` is delivered as `file`: marks its rows exported and audits the
    /// export (`dukpt-export`, with the file's SHA-256), together.
    pub fn commit_dukpt_export(
        &mut self,
        draft: &DukptExportDraft,
        file: &str,
        operator: Option<&str>,
    ) -> Result<ExportReport, ExportError> {
        if let Some(audit_sequence) = draft.sealed_at_zeroize {
            // Sealed and recorded by the zeroize; a zeroized vault records nothing more.
            return Ok(ExportReport {
                path: PathBuf::from(file),
                rows: draft.rows,
                only_new: draft.only_new,
                exported_at: draft.exported_at.clone(),
                file_sha256: draft.file_sha256.clone(),
                audit_sequence,
            });
        }
        let key = live_key(&self.storage_key, &self.data_dir)?;
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        transaction.execute(
            &format!(
                "INSERT INTO dukpt_export (initial_ksn, exported_at, file)
                 SELECT r.initial_ksn, ?3, ?4 {SELECTION}"
            ),
            params![draft.bound, draft.only_new, draft.exported_at, file],
        )?;
        let row = audit::append(
            &transaction,
            key.audit_head(),
            &AuditEvent::DukptExport {
                file: file.to_owned(),
                rows: draft.rows,
                only_new: draft.only_new,
                file_sha256: draft.file_sha256.clone(),
                operator: operator.map(str::to_owned),
            },
        )?;
        transaction.commit()?;
        Ok(ExportReport {
            path: PathBuf::from(file),
            rows: draft.rows,
            only_new: draft.only_new,
            exported_at: draft.exported_at.clone(),
            file_sha256: draft.file_sha256.clone(),
            audit_sequence: row.sequence,
        })
    }

    /// How many DUKPT registry rows have never been exported.
    pub fn unexported_dukpt_count(&self) -> Result<u64, VaultError> {
        let count: i64 = self.connection.query_row(
            "SELECT count(*) FROM dukpt_registry r
              WHERE NOT EXISTS (SELECT 1 FROM dukpt_export e WHERE e.initial_ksn = r.initial_ksn)",
            [],
            |row| row.get(0),
        )?;
        Ok(count as u64)
    }
}
