//! The SMN export for the front end's terminal table: a sealed CSV file (docs/SMN-EXPORT.md), written atomically, rows marked exported only once the file is in place.

use std::collections::HashMap;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use hmac::Mac;
use keymother_crypto::SecretKey;
use keymother_domain::{BatchId, HardwareSerial, Kcv, KeyIndex, MAX_HARDWARE_SERIAL_LENGTH, Smn};
use keymother_keyfiles::{CreatedAt, DeviceId};
use rusqlite::{TransactionBehavior, params};
use sha2::{Digest, Sha256};

use crate::audit::{self, AuditEvent};
use crate::export_file::{ExportError, ExportFileError, LineReader, SealedLines, write_atomically};
use crate::mac::{MacKey, SMN_EXPORT_SEAL_LABEL, verify_hex};
use crate::{SecretName, Vault, VaultError, now_text};

/// First line of an SMN export, format version 2 (version 1 had no re-injection columns).
pub const SMN_EXPORT_MAGIC: &str = "# KEYMOTHER-SMN-EXPORT/2";

/// The column line.
pub const SMN_EXPORT_COLUMNS: &str =
    "smn,hardware_serial,key_index,kcv,batch,injected_at,replaces,replaced_by";

/// First line and column line of format version 1, which the verifier still reads.
const SMN_EXPORT_MAGIC_V1: &str = "# KEYMOTHER-SMN-EXPORT/1";
const SMN_EXPORT_COLUMNS_V1: &str = "smn,hardware_serial,key_index,kcv,batch,injected_at";

/// Longest line, line feed included.
const MAX_LINE: usize = 1024;

/// Line number of the column line; rows start after it.
const COLUMNS_LINE: u64 = 7;

const SEAL_PREFIX: &str = "# seal: ";

/// One row of an export file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedSmn {
    pub smn: Smn,
    pub hardware_serial: HardwareSerial,
    pub key_index: KeyIndex,
    /// The master key's check value.
    pub kcv: Kcv,
    pub batch: BatchId,
    /// `YYYY-MM-DDTHH:MM:SSZ`.
    pub injected_at: String,
    /// A re-injection: the SMN of the terminal's earlier row this one replaces.
    pub replaces: Option<Smn>,
    /// Re-injected since (when the file was written): the SMN of the row replacing this one.
    pub replaced_by: Option<Smn>,
}

/// What an export wrote and recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportReport {
    pub path: PathBuf,
    pub rows: u64,
    pub only_new: bool,
    pub exported_at: String,
    /// SHA-256 of the whole file, lower-case hex, as recorded in the audit row.
    pub file_sha256: String,
    /// The Export row's sequence number in the audit chain.
    pub audit_sequence: u64,
}

/// A file that verified: its header and rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedExport {
    pub device_id: String,
    pub kek_kcv: String,
    pub exported_at: String,
    pub only_new: bool,
    pub rows: Vec<ExportedSmn>,
}

/// A row's fields as text (the key index as a number), checked and typed; the error names
/// the field that is wrong.
struct RowText<'a> {
    smn: &'a str,
    hardware_serial: &'a str,
    key_index: KeyIndex,
    kcv: &'a str,
    batch: &'a str,
    injected_at: &'a str,
    /// Empty, or an SMN of the same terminal.
    replaces: &'a str,
    replaced_by: &'a str,
}

impl RowText<'_> {
    /// An SMN of `column` naming another row of the same terminal, or nothing.
    fn other_row(
        &self,
        column: &str,
        text: &str,
        own: &Smn,
        serial: &HardwareSerial,
    ) -> Result<Option<Smn>, String> {
        if text.is_empty() {
            return Ok(None);
        }
        let smn: Smn = text
            .parse()
            .map_err(|reason| format!("{column} {text:?}: {reason}"))?;
        if smn.hardware_serial() != *serial || smn == *own {
            return Err(format!(
                "{column} {text:?} is not another SMN of hardware serial {serial}"
            ));
        }
        Ok(Some(smn))
    }

    fn typed(&self) -> Result<ExportedSmn, String> {
        let serial_text = self.hardware_serial;
        let hardware_serial: HardwareSerial = serial_text.parse().map_err(|_| {
            format!(
                "hardware serial {serial_text:?} is not 1 to {MAX_HARDWARE_SERIAL_LENGTH} characters A-Z 0-9"
            )
        })?;
        let expected = Smn::new(&hardware_serial, self.key_index);
        if expected != self.smn {
            return Err(format!(
                "SMN {:?} is not the hardware serial followed by the key index ({expected})",
                self.smn
            ));
        }
        let kcv = Kcv::from_hex_any(self.kcv)
            .ok()
            .filter(|_| !self.kcv.bytes().any(|byte| byte.is_ascii_lowercase()))
            .ok_or_else(|| {
                format!(
                    "check value {:?} is not 6 or 10 upper-case hex digits",
                    self.kcv
                )
            })?;
        let batch = self
            .batch
            .parse::<BatchId>()
            .map_err(|reason| format!("batch {:?}: {reason}", self.batch))?;
        self.injected_at
            .parse::<CreatedAt>()
            .map_err(|reason| format!("injected_at {:?}: {reason}", self.injected_at))?;
        let replaces = self.other_row("replaces", self.replaces, &expected, &hardware_serial)?;
        let replaced_by =
            self.other_row("replaced_by", self.replaced_by, &expected, &hardware_serial)?;
        if replaces.is_some() && replaces == replaced_by {
            return Err("replaces and replaced_by name the same SMN".to_owned());
        }
        Ok(ExportedSmn {
            smn: expected,
            hardware_serial,
            key_index: self.key_index,
            kcv,
            batch,
            injected_at: self.injected_at.to_owned(),
            replaces,
            replaced_by,
        })
    }
}

/// A text column of a registry row; anything else reads as empty text, which the row's
/// checks then refuse by name.
fn column_text<'r>(row: &'r rusqlite::Row<'_>, column: usize) -> &'r str {
    row.get_ref(column)
        .ok()
        .and_then(|value| value.as_str().ok())
        .unwrap_or("")
}

fn row_line(row: &ExportedSmn) -> String {
    let smn_or_empty = |smn: &Option<Smn>| smn.as_ref().map(Smn::to_string).unwrap_or_default();
    format!(
        "{},{},{},{},{},{},{},{}",
        row.smn,
        row.hardware_serial,
        row.key_index,
        row.kcv,
        row.batch,
        row.injected_at,
        smn_or_empty(&row.replaces),
        smn_or_empty(&row.replaced_by)
    )
}

/// Rows up to `bound` (rowid), all or those never exported. SMN rows are never deleted
/// (trigger), so rowids only grow and the bound taken when the file is written selects
/// exactly the rows written.
const SELECTION: &str = "FROM smn_registry r WHERE r.rowid <= ?1
      AND (?2 = 0 OR NOT EXISTS (SELECT 1 FROM smn_export e WHERE e.smn = r.smn))";

/// An SMN export written but not yet recorded: its rows are marked exported and its audit
/// row written only by [`Vault::commit_smn_export`], once the file is safely where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmnExportDraft {
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

impl Vault {
    /// Writes the SMN registry (all rows, or only rows never exported) to `path` as a
    /// sealed file for the front end (docs/SMN-EXPORT.md). The file is written atomically;
    /// only after it is in place are its rows marked exported and an Export audit row
    /// written, in one transaction. A failure names the path and changes nothing.
    pub fn export_smn(
        &mut self,
        path: &Path,
        only_new: bool,
        operator: Option<&str>,
    ) -> Result<ExportReport, ExportError> {
        let draft = write_atomically(path, |out| self.write_smn_export(out, only_new, path))?;
        let file = path.display().to_string();
        let mut report = self.commit_smn_export(&draft, &file, operator)?;
        report.path = path.to_path_buf();
        Ok(report)
    }

    /// Writes the sealed SMN file to `out` and changes nothing: the caller delivers it (the
    /// daemon streams it to its client), then records it with [`Vault::commit_smn_export`].
    /// `label` names the destination in write errors.
    pub fn write_smn_export(
        &self,
        out: &mut dyn Write,
        only_new: bool,
        label: &Path,
    ) -> Result<SmnExportDraft, ExportError> {
        if self.zeroized {
            // Its registry never changes again: the file sealed at the zeroize is the export.
            let stored = self.deliver_final_export(crate::Registry::Smn, only_new, out, label)?;
            return Ok(SmnExportDraft {
                bound: 0,
                rows: stored.rows,
                only_new,
                exported_at: stored.exported_at,
                file_sha256: stored.file_sha256,
                sealed_at_zeroize: Some(stored.audit_sequence),
            });
        }
        let kek = self.load_secret(SecretName::Kek)?;
        let seal_key = MacKey::derive(&kek, SMN_EXPORT_SEAL_LABEL);
        let kek_kcv = kek.kcv();
        drop(kek);
        let exported_at = now_text();
        // One read snapshot for the count in the header and the rows after it.
        let snapshot = self.connection.unchecked_transaction()?;
        let bound: i64 = snapshot.query_row(
            "SELECT coalesce(max(rowid), 0) FROM smn_registry",
            [],
            |row| row.get(0),
        )?;
        let count: i64 = snapshot.query_row(
            &format!("SELECT count(*) {SELECTION}"),
            params![bound, only_new],
            |row| row.get(0),
        )?;
        let mut statement = snapshot.prepare(&format!(
            "SELECT smn, hardware_serial, key_index, kcv, batch_id, injected_at, replaces,
                    (SELECT later.smn FROM smn_registry AS later
                      WHERE later.replaces = r.smn AND later.rowid <= ?1)
             {SELECTION} ORDER BY r.rowid"
        ))?;
        let mut lines = SealedLines {
            out,
            seal: seal_key.start(),
            digest: Sha256::new(),
            path: label,
        };
        let header = format!(
            "{SMN_EXPORT_MAGIC}\n# device-id: {}\n# kek-kcv: {kek_kcv}\n# exported-at: {exported_at}\n# selection: {}\n# row-count: {count}\n{SMN_EXPORT_COLUMNS}",
            self.device_id(),
            if only_new { "only-new" } else { "all" },
        );
        lines.sealed(&header)?;
        let mut rows = 0i64;
        let mut query = statement.query(params![bound, only_new])?;
        while let Some(row) = query.next()? {
            let smn: String = row.get(0)?;
            let index: i64 = row.get(2)?;
            let fields = |key_index| RowText {
                smn: &smn,
                hardware_serial: column_text(row, 1),
                key_index,
                kcv: column_text(row, 3),
                batch: column_text(row, 4),
                injected_at: column_text(row, 5),
                replaces: column_text(row, 6),
                replaced_by: column_text(row, 7),
            };
            let row = KeyIndex::try_from(index)
                .map_err(|_| format!("key index {index} has more than 8 digits"))
                .and_then(|key_index| fields(key_index).typed())
                .map_err(|problem| ExportError::UnfitRow {
                    smn: smn.clone(),
                    problem,
                })?;
            lines.sealed(&row_line(&row))?;
            rows += 1;
        }
        if rows != count {
            return Err(VaultError::Corrupt(format!(
                "the SMN registry changed during the export ({count} rows counted, {rows} read)"
            ))
            .into());
        }
        let seal = hex::encode_upper(lines.seal.clone().finalize().into_bytes());
        lines.plain(&format!("{SEAL_PREFIX}{seal}"))?;
        Ok(SmnExportDraft {
            bound,
            rows: rows as u64,
            only_new,
            exported_at,
            file_sha256: hex::encode(lines.digest.finalize()),
            sealed_at_zeroize: None,
        })
    }

    /// The file of `draft` is delivered as `file`: marks its rows exported and audits the
    /// export, together.
    pub fn commit_smn_export(
        &mut self,
        draft: &SmnExportDraft,
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
        let key = crate::live_key(&self.storage_key, &self.data_dir)?;
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        transaction.execute(
            &format!(
                "INSERT INTO smn_export (smn, exported_at, file) SELECT r.smn, ?3, ?4 {SELECTION}"
            ),
            params![draft.bound, draft.only_new, draft.exported_at, file],
        )?;
        let row = audit::append(
            &transaction,
            key.audit_head(),
            &AuditEvent::Export {
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

    /// How many SMN rows have never been exported.
    pub fn unexported_smn_count(&self) -> Result<u64, VaultError> {
        let count: i64 = self.connection.query_row(
            "SELECT count(*) FROM smn_registry r
              WHERE NOT EXISTS (SELECT 1 FROM smn_export e WHERE e.smn = r.smn)",
            [],
            |row| row.get(0),
        )?;
        Ok(count as u64)
    }
}

/// A problem found while reading an export, and whether it is the KEK mismatch (after which
/// the seal cannot verify, so saying so adds nothing).
struct Found {
    line: u64,
    problem: String,
    other_kek: bool,
}

/// The header and rows read so far.
#[derive(Default)]
struct Parsed {
    device_id: String,
    kek_kcv: String,
    exported_at: String,
    only_new: bool,
    count: u64,
    rows: Vec<ExportedSmn>,
    first_seen: HashMap<String, u64>,
    /// Format version 1: no re-injection columns.
    version_1: bool,
}

impl Parsed {
    fn header_value<'t>(text: &'t str, prefix: &str) -> Result<&'t str, String> {
        text.strip_prefix(prefix)
            .ok_or_else(|| format!("expected a line starting {prefix:?}, found {text:?}"))
    }

    /// Takes line `number`; `Err((problem, other_kek))`.
    fn accept(&mut self, number: u64, text: &str, kek: &SecretKey) -> Result<(), (String, bool)> {
        let plain = |problem: String| (problem, false);
        match number {
            1 => {
                self.version_1 = text == SMN_EXPORT_MAGIC_V1;
                if text != SMN_EXPORT_MAGIC && !self.version_1 {
                    return Err(plain(format!(
                        "this is not a keymother SMN export (first line is {text:?}, expected {SMN_EXPORT_MAGIC:?})"
                    )));
                }
            }
            2 => {
                let value = Self::header_value(text, "# device-id: ").map_err(plain)?;
                value
                    .parse::<DeviceId>()
                    .map_err(|reason| plain(format!("device-id: {reason}")))?;
                self.device_id = value.to_owned();
            }
            3 => {
                let value = Self::header_value(text, "# kek-kcv: ").map_err(plain)?;
                let expected = kek.kcv().to_string();
                if value != expected {
                    return Err((
                        format!(
                            "the file was sealed under the KEK with check value {value}, not the given KEK ({expected})"
                        ),
                        true,
                    ));
                }
                self.kek_kcv = value.to_owned();
            }
            4 => {
                let value = Self::header_value(text, "# exported-at: ").map_err(plain)?;
                value
                    .parse::<CreatedAt>()
                    .map_err(|reason| plain(format!("exported-at: {reason}")))?;
                self.exported_at = value.to_owned();
            }
            5 => {
                self.only_new = match Self::header_value(text, "# selection: ").map_err(plain)? {
                    "all" => false,
                    "only-new" => true,
                    other => {
                        return Err(plain(format!(
                            "selection is {other:?}; expected \"all\" or \"only-new\""
                        )));
                    }
                };
            }
            6 => {
                let value = Self::header_value(text, "# row-count: ").map_err(plain)?;
                let canonical = value.bytes().all(|byte| byte.is_ascii_digit())
                    && !value.is_empty()
                    && (value == "0" || !value.starts_with('0'));
                self.count =
                    value.parse().ok().filter(|_| canonical).ok_or_else(|| {
                        plain(format!("row-count {value:?} is not a decimal number"))
                    })?;
            }
            COLUMNS_LINE => {
                let columns = self.columns();
                if text != columns {
                    return Err(plain(format!(
                        "expected the column line {columns:?}, found {text:?}"
                    )));
                }
            }
            _ => {
                if self.rows.len() as u64 == self.count {
                    return Err(plain(format!(
                        "another row follows the {} that row-count announces (or the seal line is malformed)",
                        self.count
                    )));
                }
                let row = parse_row(text, self.columns()).map_err(plain)?;
                if let Some(first) = self.first_seen.insert(row.smn.to_string(), number) {
                    return Err(plain(format!(
                        "SMN {} appears twice (first on line {first})",
                        row.smn
                    )));
                }
                self.rows.push(row);
            }
        }
        Ok(())
    }
}

impl Parsed {
    /// The column line of the file's format version.
    fn columns(&self) -> &'static str {
        if self.version_1 {
            SMN_EXPORT_COLUMNS_V1
        } else {
            SMN_EXPORT_COLUMNS
        }
    }
}

/// A row of a file whose column line is `columns` (version 1 rows have no re-injection
/// columns).
fn parse_row(text: &str, columns: &str) -> Result<ExportedSmn, String> {
    let mut fields: Vec<&str> = text.split(',').collect();
    let expected = columns.split(',').count();
    if fields.len() != expected {
        return Err(format!(
            "expected {expected} comma-separated fields ({columns}), found {}",
            fields.len()
        ));
    }
    fields.resize(8, "");
    let [
        smn,
        hardware_serial,
        key_index,
        kcv,
        batch,
        injected_at,
        replaces,
        replaced_by,
    ] = fields.as_slice()
    else {
        return Err(format!("expected {expected} fields ({columns})"));
    };
    let key_index: KeyIndex = key_index
        .parse()
        .map_err(|_| format!("key index {key_index:?} is not 8 digits"))?;
    RowText {
        smn,
        hardware_serial,
        key_index,
        kcv,
        batch,
        injected_at,
        replaces,
        replaced_by,
    }
    .typed()
}

fn is_seal_hex(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|byte| byte.is_ascii_digit() || (b'A'..=b'F').contains(&byte))
}

/// The front end's side: reads an SMN export, checks every line and the seal under a key
/// derived from `kek`, and returns the rows. Errors name the file and the line; a file with
/// a bad line whose seal fails too is reported as altered.
pub fn verify_smn_export<R: Read>(
    reader: R,
    name: &str,
    kek: &SecretKey,
) -> Result<VerifiedExport, ExportFileError> {
    let seal_key = MacKey::derive(kek, SMN_EXPORT_SEAL_LABEL);
    let mut mac = seal_key.start();
    let mut lines = LineReader::new(BufReader::new(reader), name, MAX_LINE);
    let mut parsed = Parsed::default();
    let mut found: Option<Found> = None;
    let mut seal: Option<(u64, String)> = None;
    while let Some(line) = lines.next_line()? {
        let number = line.number();
        if let Some((seal_line, _)) = &seal {
            found.get_or_insert(Found {
                line: number,
                problem: format!("nothing may follow the seal line (line {seal_line})"),
                other_kek: false,
            });
            break;
        }
        if number > COLUMNS_LINE {
            if let Some(hex) = line.text().strip_prefix(SEAL_PREFIX) {
                seal = Some((number, hex.to_owned()));
                continue;
            }
        }
        mac.update(line.text().as_bytes());
        mac.update(b"\n");
        if found.is_none() {
            if let Err((problem, other_kek)) = parsed.accept(number, line.text(), kek) {
                found = Some(Found {
                    line: number,
                    problem,
                    other_kek,
                });
            }
        }
    }
    let seal_verifies = match &seal {
        Some((_, hex)) => is_seal_hex(hex) && verify_hex(mac, hex),
        None => false,
    };
    let found = found.or_else(|| {
        let problem = |line: u64, problem: String| Found {
            line,
            problem,
            other_kek: false,
        };
        match &seal {
            None if lines.number() < COLUMNS_LINE => Some(problem(
                lines.number() + 1,
                "the file ends inside the header".to_owned(),
            )),
            None => Some(problem(
                lines.number() + 1,
                "the file ends without its seal line; it may be truncated".to_owned(),
            )),
            Some((line, _)) if parsed.rows.len() as u64 != parsed.count => Some(problem(
                *line,
                format!(
                    "row-count is {}, but the file holds {}",
                    parsed.count,
                    parsed.rows.len()
                ),
            )),
            Some((line, hex)) if !is_seal_hex(hex) => Some(problem(
                *line,
                "the seal is not 64 upper-case hex digits".to_owned(),
            )),
            Some((line, _)) if !seal_verifies => Some(problem(
                *line,
                "the seal does not verify: the file was altered after it was written".to_owned(),
            )),
            Some(_) => None,
        }
    });
    match found {
        None => Ok(VerifiedExport {
            device_id: parsed.device_id,
            kek_kcv: parsed.kek_kcv,
            exported_at: parsed.exported_at,
            only_new: parsed.only_new,
            rows: parsed.rows,
        }),
        Some(Found {
            line,
            mut problem,
            other_kek,
        }) => {
            if seal.is_some() && !seal_verifies && !other_kek && !problem.starts_with("the seal") {
                problem.push_str("; the seal does not verify either: the file was altered");
            }
            Err(lines.error(line, problem))
        }
    }
}
