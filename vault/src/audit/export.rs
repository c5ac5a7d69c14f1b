//! The security officer's audit export: the chain written with both hashes and its verification, and such a file re-verified offline.

use std::fmt::Write as _;
use std::io::{BufReader, Read, Write};
use std::path::Path;

use super::verify::{ChainWalk, verify_stored};
use super::{
    AuditFailure, AuditReport, AuditRow, Head, HeadMacStatus, SELECT_ROWS, read_head, row_from_sql,
};
use crate::export_file::{ExportError, ExportFileError, LineReader, write_atomically};
use crate::{Vault, now_text};

/// First line of an audit export.
pub const AUDIT_EXPORT_MAGIC: &str = "# KEYMOTHER-AUDIT-EXPORT/1";

/// The column line of an audit export.
pub const AUDIT_EXPORT_COLUMNS: &str = "sequence,at,event,actor,details,previous_hash,hash";

/// Longest audit export line, line feed included: far above what the value cap allows.
const MAX_AUDIT_LINE: usize = 64 * 1024;

/// What an audit export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditExportReport {
    pub rows: u64,
    /// The verification line written into the file: the chain's state at export time.
    pub verification: String,
}

/// An audit export file did not verify.
#[derive(Debug, thiserror::Error)]
pub enum AuditExportError {
    /// The file is malformed: names the file and the line.
    #[error(transparent)]
    File(#[from] ExportFileError),
    /// The file is well formed but its chain is broken.
    #[error("{file}: {failure}")]
    Chain { file: String, failure: AuditFailure },
}

impl Vault {
    /// Writes the chain to `path` for the security officer (docs/SMN-EXPORT.md, "The audit
    /// export"): a comment header with the head and the verification result, then one CSV
    /// line per row with both hashes, so the chain can be re-verified offline. Written
    /// atomically; a broken chain is exported too, with the failure in its header.
    pub fn export_audit(&self, path: &Path) -> Result<AuditExportReport, ExportError> {
        write_atomically(path, |out: &mut dyn Write| {
            self.write_audit_export(out, path)
        })
    }

    /// Writes the audit export (as [`Vault::export_audit`] does) to `out`; `label` names the
    /// destination in write errors. Changes nothing.
    pub fn write_audit_export(
        &self,
        out: &mut dyn Write,
        label: &Path,
    ) -> Result<AuditExportReport, ExportError> {
        let path = label;
        let transaction = self.connection.unchecked_transaction()?;
        let key = self.storage_key.as_ref().map(|key| key.audit_head());
        let verification = match verify_stored(&transaction, key) {
            Ok(AuditReport {
                head_mac: HeadMacStatus::Verified,
                ..
            }) => "ok; head MAC verified under the storage key".to_owned(),
            Ok(AuditReport {
                head_mac: HeadMacStatus::NotChecked,
                ..
            }) => "ok; head MAC not checked (no storage key: the vault was zeroized)".to_owned(),
            Err(AuditFailure::Vault(error)) => return Err(error.into()),
            Err(failure) => format!("FAILED: {failure}"),
        };
        let head = read_head(&transaction)?;
        let count: i64 =
            transaction.query_row("SELECT count(*) FROM audit_log", [], |row| row.get(0))?;
        let mut statement = transaction.prepare(SELECT_ROWS)?;
        let exported_at = now_text();
        let io = |source| ExportError::writing(path, source);
        let mut header = format!(
            "{AUDIT_EXPORT_MAGIC}\n# device-id: {}\n# exported-at: {exported_at}\n# row-count: {count}\n",
            self.device_id()
        );
        match &head {
            Some(head) => {
                let _ = writeln!(
                    header,
                    "# head: sequence={}; hash={}",
                    head.last_sequence, head.last_hash
                );
            }
            None => header.push_str("# head: missing\n"),
        }
        let _ = writeln!(header, "# verification: {verification}");
        header.push_str(AUDIT_EXPORT_COLUMNS);
        header.push('\n');
        out.write_all(header.as_bytes()).map_err(io)?;
        let mut rows = 0u64;
        for row in statement.query_map([], row_from_sql)? {
            let (sequence, row) = row?;
            writeln!(
                out,
                "{sequence},{},{},{},{},{},{}",
                row.at, row.event, row.actor, row.details, row.previous_hash, row.hash
            )
            .map_err(io)?;
            rows += 1;
        }
        Ok(AuditExportReport { rows, verification })
    }
}

/// Re-verifies an audit export offline: parses it (errors name the line), walks its chain
/// and checks it against the head line. The head's MAC cannot be checked without the
/// device's storage key, so compare the head hash with one recorded independently (a
/// previous export, the appliance's display) to rule out a consistently rewritten file.
pub fn verify_audit_export<R: Read>(
    reader: R,
    name: &str,
) -> Result<AuditReport, AuditExportError> {
    let mut lines = LineReader::new(BufReader::new(reader), name, MAX_AUDIT_LINE);
    let (_, magic) = lines.header_line("")?;
    if magic != AUDIT_EXPORT_MAGIC {
        return Err(lines_error(
            name,
            1,
            format!(
                "this is not a keymother audit export (first line is {magic:?}, expected {AUDIT_EXPORT_MAGIC:?})"
            ),
        )
        .into());
    }
    lines.header_line("# device-id: ")?;
    lines.header_line("# exported-at: ")?;
    let (count_line, count_text) = lines.header_line("# row-count: ")?;
    let count: u64 = count_text.parse().map_err(|_| {
        lines_error(
            name,
            count_line,
            format!("row-count {count_text:?} is not a number"),
        )
    })?;
    let (head_line, head_text) = lines.header_line("# head: ")?;
    let head = parse_head(&head_text).map_err(|problem| lines_error(name, head_line, problem))?;
    lines.header_line("# verification: ")?;
    let (columns_line, columns) = lines.header_line("")?;
    if columns != AUDIT_EXPORT_COLUMNS {
        return Err(lines_error(
            name,
            columns_line,
            format!("expected the column line {AUDIT_EXPORT_COLUMNS:?}, found {columns:?}"),
        )
        .into());
    }
    let chain_failure = |failure| AuditExportError::Chain {
        file: name.to_owned(),
        failure,
    };
    let mut walk = ChainWalk::new();
    let mut rows = 0u64;
    while let Some(line) = lines.next_line()? {
        let row = parse_audit_line(line.text())
            .map_err(|problem| lines_error(name, line.number(), problem))?;
        rows += 1;
        walk.push(row).map_err(chain_failure)?;
    }
    if rows != count {
        return Err(lines_error(
            name,
            count_line,
            format!("row-count says {count} rows, the file holds {rows}"),
        )
        .into());
    }
    walk.finish(head.as_ref(), None).map_err(chain_failure)
}

fn lines_error(name: &str, line: u64, problem: String) -> ExportFileError {
    ExportFileError {
        file: name.to_owned(),
        line,
        problem,
    }
}

fn parse_head(text: &str) -> Result<Option<Head>, String> {
    if text == "missing" {
        return Ok(None);
    }
    let malformed = || format!("expected \"sequence=N; hash=H\" or \"missing\", found {text:?}");
    let (sequence, hash) = text
        .strip_prefix("sequence=")
        .and_then(|rest| rest.split_once("; hash="))
        .ok_or_else(malformed)?;
    Ok(Some(Head {
        last_sequence: sequence.parse().map_err(|_| malformed())?,
        last_hash: hash.to_owned(),
        mac: String::new(),
    }))
}

fn parse_audit_line(text: &str) -> Result<AuditRow, String> {
    let fields: Vec<&str> = text.split(',').collect();
    let [sequence, at, event, actor, details, previous_hash, hash] = fields.as_slice() else {
        return Err(format!(
            "expected 7 comma-separated fields, found {}",
            fields.len()
        ));
    };
    Ok(AuditRow {
        sequence: sequence
            .parse()
            .map_err(|_| format!("sequence {sequence:?} is not a number"))?,
        at: (*at).to_owned(),
        event: (*event).to_owned(),
        actor: (*actor).to_owned(),
        details: (*details).to_owned(),
        previous_hash: (*previous_hash).to_owned(),
        hash: (*hash).to_owned(),
    })
}
