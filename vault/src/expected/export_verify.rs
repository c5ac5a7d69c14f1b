//! The front end's side of the reconciliation export: every line checked, the seal verified under the KEK, errors naming the file and the line.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufReader, Read};

use keymother_crypto::SecretKey;
use keymother_keyfiles::{CreatedAt, DeviceId};

use super::ListName;
use super::export::{
    MAX_LINE, RECONCILE_EXPORT_COLUMNS, RECONCILE_EXPORT_MAGIC, ReconcileRow, RowStatus, escape,
};
use crate::export_file::{ExportFileError, LineReader};
use crate::mac::{MacKey, RECONCILE_EXPORT_SEAL_LABEL, verify_hex};

/// Line number of the column line; rows start after it.
const COLUMNS_LINE: u64 = 7;

const SEAL_PREFIX: &str = "# seal: ";

/// A reconciliation export that verified: its header and rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedReconcileExport {
    pub device_id: String,
    pub kek_kcv: String,
    pub exported_at: String,
    /// The list exported, or `None` for every list.
    pub list: Option<ListName>,
    pub rows: Vec<ReconcileRow>,
}

impl VerifiedReconcileExport {
    /// Per list, how many serials are injected, pending, missing and refused.
    pub fn counts(&self) -> BTreeMap<ListName, [u64; 4]> {
        let mut counted: HashMap<(&ListName, &str), RowStatus> = HashMap::new();
        let mut counts: BTreeMap<ListName, [u64; 4]> = BTreeMap::new();
        for row in &self.rows {
            let slot = counts.entry(row.list.clone()).or_default();
            if counted
                .insert((&row.list, row.hardware_serial.as_str()), row.status)
                .is_none()
            {
                slot[row.status as usize] += 1;
            }
        }
        counts
    }
}

/// The text of an escaped field, which must be escaped exactly as the writer does it.
fn unescape(field: &str, what: &str) -> Result<String, String> {
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
            .and_then(|digits| std::str::from_utf8(digits).ok())
            .filter(|digits| {
                digits
                    .bytes()
                    .all(|d| matches!(d, b'0'..=b'9' | b'A'..=b'F'))
            })
            .and_then(|digits| u8::from_str_radix(digits, 16).ok())
            .ok_or_else(|| format!("{what}: a % not followed by two upper-case hex digits"))?;
        bytes.push(value);
        rest = &after[2..];
    }
    let text = String::from_utf8(bytes).map_err(|_| format!("{what}: not UTF-8 once unescaped"))?;
    if escape(&text) != field {
        return Err(format!("{what} is not escaped as the format says"));
    }
    Ok(text)
}

/// A field that is empty in rows of this status, or holds a value.
fn optional(field: &str) -> Option<&str> {
    (!field.is_empty()).then_some(field)
}

fn parse_row(text: &str) -> Result<ReconcileRow, String> {
    let fields: Vec<&str> = text.split(',').collect();
    let [
        list,
        status,
        serial,
        model,
        kind,
        key,
        state,
        port,
        at,
        attempts,
    ] = fields.as_slice()
    else {
        return Err(format!(
            "expected 10 comma-separated fields ({RECONCILE_EXPORT_COLUMNS}), found {}",
            fields.len()
        ));
    };
    let list: ListName = list.parse()?;
    let status = RowStatus::parse(status)
        .ok_or_else(|| "status is not one of injected, pending, missing, refused".to_owned())?;
    let hardware_serial = serial
        .parse()
        .map_err(|_| "hardware serial is not 1 to 24 characters A-Z 0-9".to_owned())?;
    let terminal_model = optional(model)
        .map(|model| {
            unescape(model, "terminal_model")?
                .parse()
                .map_err(|error| format!("terminal_model: {error}"))
        })
        .transpose()?;
    let row = ReconcileRow {
        list,
        status,
        hardware_serial,
        terminal_model,
        kind: optional(kind).map(str::to_owned),
        key: optional(key).map(str::to_owned),
        state: optional(state).map(str::to_owned),
        port: optional(port)
            .map(|port| unescape(port, "port"))
            .transpose()?,
        at: optional(at).map(str::to_owned),
        attempts: optional(attempts)
            .map(|n| {
                n.parse::<u64>()
                    .ok()
                    .filter(|n| *n >= 1 && !attempts.starts_with('0'))
                    .ok_or_else(|| "attempts is not a decimal number from 1".to_owned())
            })
            .transpose()?,
    };
    check_shape(&row)?;
    Ok(row)
}

/// The fields a row of its status has, and theirs only.
fn check_shape(row: &ReconcileRow) -> Result<(), String> {
    let has_key = row.kind.is_some() && row.key.is_some() && row.state.is_some();
    let (keyed, timed, counted) = match row.status {
        RowStatus::Injected | RowStatus::Pending => (true, true, false),
        RowStatus::Missing => (false, false, false),
        RowStatus::Refused => (false, true, true),
    };
    let fits = has_key == keyed
        && (row.kind.is_some() || row.key.is_some() || row.state.is_some()) == keyed
        && row.port.is_some() == timed
        && row.at.is_some() == timed
        && row.attempts.is_some() == counted
        && (row.status != RowStatus::Refused || row.terminal_model.is_none());
    if !fits {
        return Err(format!(
            "a {} row has the wrong fields filled in",
            row.status.as_str()
        ));
    }
    if let Some(at) = &row.at {
        at.parse::<CreatedAt>()
            .map_err(|reason| format!("at: {reason}"))?;
    }
    if !keyed {
        return Ok(());
    }
    let state = row.state.as_deref().unwrap_or("");
    let state_fits = match row.status {
        RowStatus::Injected => matches!(state, "used" | "reserved" | "sent"),
        _ => matches!(state, "reserved" | "sent"),
    };
    if !state_fits {
        return Err(format!(
            "state is not one a {} key can be in",
            row.status.as_str()
        ));
    }
    let key = row.key.as_deref().unwrap_or("");
    let key_fits = match row.kind.as_deref() {
        Some("master") => key.len() == 8 && key.bytes().all(|b| b.is_ascii_digit()),
        Some("dukpt") => key.split_once('/').is_some_and(|(bdk, device)| {
            bdk.parse::<keymother_domain::BdkName>().is_ok()
                && matches!(device.len(), 5 | 8)
                && device
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'A'..=b'F'))
        }),
        _ => return Err("kind is not master or dukpt".to_owned()),
    };
    if !key_fits {
        return Err("key is not an 8-digit key index (master) or BDK/DEVICE-ID (dukpt)".to_owned());
    }
    Ok(())
}

/// The header and rows read so far.
#[derive(Default)]
struct Parsed {
    device_id: String,
    kek_kcv: String,
    exported_at: String,
    list: Option<ListName>,
    count: u64,
    rows: Vec<ReconcileRow>,
    /// Per list and serial: its status and the line it was first seen on.
    statuses: HashMap<(String, String), (RowStatus, u64)>,
    /// Per list, serial and key: the line.
    keys: HashMap<(String, String, String), u64>,
}

fn header_value<'t>(text: &'t str, prefix: &str) -> Result<&'t str, String> {
    text.strip_prefix(prefix)
        .ok_or_else(|| format!("expected a line starting {prefix:?}"))
}

impl Parsed {
    /// Takes line `number`; `Err((problem, other_kek))`.
    fn accept(&mut self, number: u64, text: &str, kek: &SecretKey) -> Result<(), (String, bool)> {
        let plain = |problem: String| (problem, false);
        match number {
            1 if text != RECONCILE_EXPORT_MAGIC => Err(plain(format!(
                "this is not a keymother reconciliation export (expected the line {RECONCILE_EXPORT_MAGIC:?})"
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
            COLUMNS_LINE if text != RECONCILE_EXPORT_COLUMNS => Err(plain(format!(
                "expected the column line {RECONCILE_EXPORT_COLUMNS:?}"
            ))),
            COLUMNS_LINE => Ok(()),
            _ => self.row(number, text).map_err(plain),
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
                self.list = match header_value(text, "# selection: ")? {
                    "all" => None,
                    other => Some(
                        other
                            .strip_prefix("list ")
                            .ok_or_else(|| {
                                "selection is neither \"all\" nor \"list NAME\"".to_owned()
                            })?
                            .parse()?,
                    ),
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
                    .ok_or_else(|| "row-count is not a decimal number".to_owned())?;
            }
        }
        Ok(())
    }

    /// A row line: well formed, of the selected list, one status per serial and list, each
    /// key once.
    fn row(&mut self, number: u64, text: &str) -> Result<(), String> {
        if self.rows.len() as u64 == self.count {
            return Err(format!(
                "another row follows the {} that row-count announces (or the seal line is malformed)",
                self.count
            ));
        }
        let row = parse_row(text)?;
        if self.list.as_ref().is_some_and(|list| *list != row.list) {
            return Err("the row is of another list than the selection".to_owned());
        }
        let serial = (row.list.to_string(), row.hardware_serial.to_string());
        match self.statuses.get(&serial) {
            Some((status, first)) if *status != row.status => {
                return Err(format!(
                    "the serial is {} here but {} on line {first}",
                    row.status.as_str(),
                    status.as_str()
                ));
            }
            Some((_, first)) if row.key.is_none() => {
                return Err(format!("the serial appears twice (first on line {first})"));
            }
            Some(_) => {}
            None => {
                self.statuses.insert(serial.clone(), (row.status, number));
            }
        }
        if let Some(key) = &row.key {
            let kind = row.kind.clone().unwrap_or_default();
            if let Some(first) = self
                .keys
                .insert((serial.0, serial.1, format!("{kind}:{key}")), number)
            {
                return Err(format!("the key appears twice (first on line {first})"));
            }
        }
        self.rows.push(row);
        Ok(())
    }
}

fn is_seal_hex(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|byte| byte.is_ascii_digit() || (b'A'..=b'F').contains(&byte))
}

/// A problem found, and whether it is the KEK mismatch (after which the seal cannot verify).
struct Found {
    line: u64,
    problem: String,
    other_kek: bool,
}

/// What is wrong once every line is read and no line was wrong.
fn at_the_end(
    parsed: &Parsed,
    seal: Option<&(u64, String)>,
    seal_verifies: bool,
    last_line: u64,
) -> Option<Found> {
    let problem = |line: u64, problem: String| Found {
        line,
        problem,
        other_kek: false,
    };
    match seal {
        None if last_line < COLUMNS_LINE => Some(problem(
            last_line + 1,
            "the file ends inside the header".to_owned(),
        )),
        None => Some(problem(
            last_line + 1,
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
}

/// The front end's side: reads a reconciliation export, checks every line and the seal under
/// a key derived from `kek`, and returns the rows. Errors name the file and the line; a file
/// with a bad line whose seal fails too is reported as altered.
pub fn verify_reconcile_export<R: Read>(
    reader: R,
    name: &str,
    kek: &SecretKey,
) -> Result<VerifiedReconcileExport, ExportFileError> {
    let mut mac = MacKey::derive(kek, RECONCILE_EXPORT_SEAL_LABEL).start();
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
        None => Ok(VerifiedReconcileExport {
            device_id: parsed.device_id,
            kek_kcv: parsed.kek_kcv,
            exported_at: parsed.exported_at,
            list: parsed.list,
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
