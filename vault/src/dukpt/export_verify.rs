//! The front end's side of the DUKPT export: every line checked, the seal verified under the KEK, errors naming the file and the line.

use std::collections::HashMap;
use std::io::{BufReader, Read};

use keymother_crypto::SecretKey;
use keymother_keyfiles::{CreatedAt, DeviceId};

use super::export::{
    DUKPT_EXPORT_COLUMNS, DUKPT_EXPORT_COLUMNS_V1, DUKPT_EXPORT_MAGIC, DUKPT_EXPORT_MAGIC_V1,
    ExportedDukpt, MAX_LINE, RowText, unescape,
};
use crate::export_file::{ExportFileError, LineReader};
use crate::mac::{DUKPT_EXPORT_SEAL_LABEL, MacKey, verify_hex};

/// Line number of the column line; rows start after it.
const COLUMNS_LINE: u64 = 7;

const SEAL_PREFIX: &str = "# seal: ";

/// A DUKPT export that verified: its header and rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedDukptExport {
    pub device_id: String,
    pub kek_kcv: String,
    pub exported_at: String,
    pub only_new: bool,
    pub rows: Vec<ExportedDukpt>,
}

/// A problem found while reading, and whether it is the KEK mismatch (after which the seal
/// cannot verify, so saying so adds nothing).
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
    rows: Vec<ExportedDukpt>,
    /// Line of each initial KSN or key ID, and of each BDK name and device ID.
    ksn_seen: HashMap<String, u64>,
    device_seen: HashMap<(String, String), u64>,
    /// Format version 1: no re-injection columns.
    version_1: bool,
}

fn header_value<'t>(text: &'t str, prefix: &str) -> Result<&'t str, String> {
    text.strip_prefix(prefix)
        .ok_or_else(|| format!("expected a line starting {prefix:?}, found {text:?}"))
}

impl Parsed {
    /// Takes line `number`; `Err((problem, other_kek))`.
    fn accept(&mut self, number: u64, text: &str, kek: &SecretKey) -> Result<(), (String, bool)> {
        let plain = |problem: String| (problem, false);
        match number {
            1 if text == DUKPT_EXPORT_MAGIC_V1 => {
                self.version_1 = true;
                Ok(())
            }
            1 if text != DUKPT_EXPORT_MAGIC => Err(plain(format!(
                "this is not a keymother DUKPT export (first line is {text:?}, expected {DUKPT_EXPORT_MAGIC:?})"
            ))),
            1 => Ok(()),
            3 => {
                let value = header_value(text, "# kek-kcv: ").map_err(plain)?;
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
                Ok(())
            }
            2 | 4..=6 => self.header(number, text).map_err(plain),
            COLUMNS_LINE if text != self.columns() => Err(plain(format!(
                "expected the column line {:?}, found {text:?}",
                self.columns()
            ))),
            COLUMNS_LINE => Ok(()),
            _ => self.row(number, text).map_err(plain),
        }
    }

    /// The column line of the file's format version.
    fn columns(&self) -> &'static str {
        if self.version_1 {
            DUKPT_EXPORT_COLUMNS_V1
        } else {
            DUKPT_EXPORT_COLUMNS
        }
    }

    /// Header lines 2, 4, 5 and 6.
    fn header(&mut self, number: u64, text: &str) -> Result<(), String> {
        match number {
            2 => {
                let value = header_value(text, "# device-id: ")?;
                value
                    .parse::<DeviceId>()
                    .map_err(|reason| format!("device-id: {reason}"))?;
                self.device_id = value.to_owned();
            }
            4 => {
                let value = header_value(text, "# exported-at: ")?;
                value
                    .parse::<CreatedAt>()
                    .map_err(|reason| format!("exported-at: {reason}"))?;
                self.exported_at = value.to_owned();
            }
            5 => {
                self.only_new = match header_value(text, "# selection: ")? {
                    "all" => false,
                    "only-new" => true,
                    other => {
                        return Err(format!(
                            "selection is {other:?}; expected \"all\" or \"only-new\""
                        ));
                    }
                };
            }
            _ => {
                let value = header_value(text, "# row-count: ")?;
                let canonical = value.bytes().all(|byte| byte.is_ascii_digit())
                    && !value.is_empty()
                    && (value == "0" || !value.starts_with('0'));
                self.count = value
                    .parse()
                    .ok()
                    .filter(|_| canonical)
                    .ok_or_else(|| format!("row-count {value:?} is not a decimal number"))?;
            }
        }
        Ok(())
    }

    /// A row line: well formed, and neither its initial key nor its device ID seen before.
    fn row(&mut self, number: u64, text: &str) -> Result<(), String> {
        if self.rows.len() as u64 == self.count {
            return Err(format!(
                "another row follows the {} that row-count announces (or the seal line is malformed)",
                self.count
            ));
        }
        let row = parse_row(text, self.columns())?;
        if let Some(first) = self.ksn_seen.insert(row.initial_ksn.clone(), number) {
            return Err(format!(
                "initial key {} appears twice (first on line {first})",
                row.initial_ksn
            ));
        }
        let device = (row.bdk.to_string(), row.device_id.to_string());
        if let Some(first) = self.device_seen.insert(device, number) {
            return Err(format!(
                "device ID {} of BDK {} appears twice (first on line {first})",
                row.device_id, row.bdk
            ));
        }
        self.rows.push(row);
        Ok(())
    }
}

/// A row of a file whose column line is `columns` (version 1 rows have no re-injection
/// columns).
fn parse_row(text: &str, columns: &str) -> Result<ExportedDukpt, String> {
    let mut fields: Vec<&str> = text.split(',').collect();
    let expected = columns.split(',').count();
    if fields.len() != expected {
        return Err(format!(
            "expected {expected} comma-separated fields ({columns}), found {}",
            fields.len()
        ));
    }
    fields.resize(13, "");
    let [
        hardware_serial,
        bdk,
        bdk_id,
        device_id,
        initial_ksn,
        key_type,
        kcv,
        port,
        terminal_model,
        operator,
        injected_at,
        replaces,
        replaced_by,
    ] = fields.as_slice()
    else {
        return Err(format!("expected {expected} fields ({columns})"));
    };
    let terminal_model = unescape(terminal_model, "terminal_model")?;
    let operator = unescape(operator, "operator")?;
    RowText {
        hardware_serial,
        bdk,
        bdk_id,
        device_id,
        initial_ksn,
        key_type,
        kcv,
        port,
        terminal_model: &terminal_model,
        operator: &operator,
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

/// What is wrong once every line is read and nothing was wrong with any: a missing, bad or
/// failing seal, or a row count that does not match.
fn at_the_end(
    parsed: &Parsed,
    seal: Option<&(u64, String)>,
    seal_verifies: bool,
    last_line: u64,
) -> Option<Found> {
    let problem = |line: u64, problem: &str| Found {
        line,
        problem: problem.to_owned(),
        other_kek: false,
    };
    match seal {
        None if last_line < COLUMNS_LINE => {
            Some(problem(last_line + 1, "the file ends inside the header"))
        }
        None => Some(problem(
            last_line + 1,
            "the file ends without its seal line; it may be truncated",
        )),
        Some((line, _)) if parsed.rows.len() as u64 != parsed.count => Some(problem(
            *line,
            &format!(
                "row-count is {}, but the file holds {}",
                parsed.count,
                parsed.rows.len()
            ),
        )),
        Some((line, hex)) if !is_seal_hex(hex) => {
            Some(problem(*line, "the seal is not 64 upper-case hex digits"))
        }
        Some((line, _)) if !seal_verifies => Some(problem(
            *line,
            "the seal does not verify: the file was altered after it was written",
        )),
        Some(_) => None,
    }
}

/// The front end's side: reads a DUKPT export, checks every line and the seal under a key
/// derived from `kek`, and returns the rows. Errors name the file and the line; a file with
/// a bad line whose seal fails too is reported as altered.
pub fn verify_dukpt_export<R: Read>(
    reader: R,
    name: &str,
    kek: &SecretKey,
) -> Result<VerifiedDukptExport, ExportFileError> {
    let seal_key = MacKey::derive(kek, DUKPT_EXPORT_SEAL_LABEL);
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
        hmac::Mac::update(&mut mac, line.text().as_bytes());
        hmac::Mac::update(&mut mac, b"\n");
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
    let found = found.or_else(|| at_the_end(&parsed, seal.as_ref(), seal_verifies, lines.number()));
    match found {
        None => Ok(VerifiedDukptExport {
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
