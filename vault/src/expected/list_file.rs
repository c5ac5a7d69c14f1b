//! The expected-device list file (keyfiles/FORMAT.md, "Expected-device lists"): a CSV of hardware serials with an optional model column, plain or sealed under the KEK; every problem names its line and never quotes it.

use hmac::Mac;
use keymother_crypto::SecretKey;
use keymother_domain::{HardwareSerial, IdentityError, TerminalModel};
use keymother_keyfiles::DeviceId;

use crate::mac::{EXPECTED_LIST_SEAL_LABEL, MacKey};

/// First line of a sealed list, format version 1.
pub const EXPECTED_LIST_MAGIC: &str = "# KEYMOTHER-EXPECTED-DEVICES/1";

/// The column line of a list without models.
pub const EXPECTED_COLUMNS_SERIAL: &str = "serial";

/// The column line of a list with models.
pub const EXPECTED_COLUMNS_SERIAL_MODEL: &str = "serial,model";

/// The most serials one list may hold.
pub const MAX_EXPECTED_DEVICES: usize = 1_000_000;

/// Longest line, line feed included.
const MAX_LINE: usize = 1024;

const DEVICE_ID_PREFIX: &str = "# device-id: ";
const KEK_KCV_PREFIX: &str = "# kek-kcv: ";
const SEAL_PREFIX: &str = "# seal: ";

/// One serial of a list, with the line it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedDevice {
    pub hardware_serial: HardwareSerial,
    /// The model the list names for it, when it has a model column and the field is not empty.
    pub terminal_model: Option<TerminalModel>,
    /// The line of the file (1-based).
    pub line: u64,
}

/// A list file refused: the line (0: the file as a whole) and the problem in words, never
/// the line's content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct ListFileError {
    /// The file's name as the caller gave it.
    pub file: String,
    pub line: u64,
    pub problem: String,
}

impl ListFileError {
    fn describe(&self) -> String {
        if self.line == 0 {
            format!("{}: {}", self.file, self.problem)
        } else {
            format!("{}: line {}: {}", self.file, self.line, self.problem)
        }
    }
}

/// A list file read: its serials, and whether it came sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListFile {
    pub devices: Vec<ExpectedDevice>,
    pub sealed: bool,
}

/// A line of the file: its number, its text (without the line ending), the offset of its
/// first byte.
type RawLine<'a> = (u64, &'a str, usize);

/// A problem on a line (0: the file as a whole), in words.
type LineProblem = (u64, String);

/// The words for a refused hardware serial or model, without the character found.
fn identity_words(what: &str, error: &IdentityError) -> String {
    match error {
        IdentityError::Empty { max, .. } => {
            format!("{what} is empty; it needs 1 to {max} characters")
        }
        IdentityError::TooLong { length, max, .. } => {
            format!("{what} is {length} characters long; at most {max} are allowed")
        }
        IdentityError::BadCharacter {
            position, allowed, ..
        } => format!("{what}: character {position} is not allowed; allowed are {allowed}"),
        _ => format!("{what} is not valid"),
    }
}

/// The lines of `bytes`: (number, text without its line feed or carriage return, offset of the
/// line's first byte); a problem names the line. A file may end without a final line feed.
fn split_lines(bytes: &[u8]) -> Result<Vec<RawLine<'_>>, LineProblem> {
    let mut lines = Vec::new();
    let mut offset = 0;
    let mut number = 0;
    while offset < bytes.len() {
        number += 1;
        let end = bytes[offset..]
            .iter()
            .position(|byte| *byte == b'\n')
            .map_or(bytes.len(), |at| offset + at);
        if end - offset + 1 > MAX_LINE {
            return Err((number, format!("line is longer than {MAX_LINE} bytes")));
        }
        let mut line = &bytes[offset..end];
        if number == 1 {
            line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
        }
        line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(column) = line.iter().position(|byte| !(0x20..=0x7E).contains(byte)) {
            return Err((
                number,
                format!("byte {} is not printable ASCII", column + 1),
            ));
        }
        // Printable ASCII is UTF-8.
        let text = std::str::from_utf8(line).map_err(|_| (number, "not ASCII".to_owned()))?;
        lines.push((number, text, offset));
        offset = end + 1;
    }
    Ok(lines)
}

/// Reads a list file, plain or sealed. A sealed list is checked first: for `device_id`, made
/// under the KEK (`kek`, asked for only then), its seal verifying over every byte before the
/// seal line; then the column line and each row. Every problem names the file and the line
/// and never quotes the line.
pub fn read_list_file(
    bytes: &[u8],
    file: &str,
    device_id: &DeviceId,
    kek: impl FnOnce() -> Result<SecretKey, String>,
) -> Result<ListFile, ListFileError> {
    let refuse = |(line, problem): (u64, String)| ListFileError {
        file: file.to_owned(),
        line,
        problem,
    };
    let lines = split_lines(bytes).map_err(refuse)?;
    let mut rows: &[RawLine<'_>] = &lines;
    let sealed = match lines.first() {
        Some((_, text, _)) if *text == EXPECTED_LIST_MAGIC => {
            let seal_at = check_sealed(&lines, bytes, device_id, kek).map_err(refuse)?;
            // The header's three lines before the rows; the seal line after them.
            rows = &lines[3..seal_at];
            true
        }
        Some((_, text, _)) if text.starts_with("# KEYMOTHER-") => {
            return Err(refuse((
                1,
                format!(
                    "this is not an expected-device list (a sealed one starts with {EXPECTED_LIST_MAGIC:?})"
                ),
            )));
        }
        _ => false,
    };
    let devices = read_rows(rows, lines.len() as u64 + 1).map_err(refuse)?;
    Ok(ListFile { devices, sealed })
}

/// The column line and the rows, in order; `end` is the number of the line after the file.
fn read_rows(rows: &[RawLine<'_>], end: u64) -> Result<Vec<ExpectedDevice>, LineProblem> {
    let Some(((columns_line, columns, _), rows)) = rows.split_first() else {
        return Err((
            end,
            format!(
                "the file ends before its column line ({EXPECTED_COLUMNS_SERIAL:?} or {EXPECTED_COLUMNS_SERIAL_MODEL:?})"
            ),
        ));
    };
    let with_model = match *columns {
        EXPECTED_COLUMNS_SERIAL => false,
        EXPECTED_COLUMNS_SERIAL_MODEL => true,
        _ => {
            return Err((
                *columns_line,
                format!(
                    "expected the column line {EXPECTED_COLUMNS_SERIAL:?} or {EXPECTED_COLUMNS_SERIAL_MODEL:?}"
                ),
            ));
        }
    };
    let mut devices: Vec<ExpectedDevice> = Vec::new();
    let mut first_seen = std::collections::HashMap::new();
    for &(number, text, _) in rows {
        let device = read_row(number, text, with_model).map_err(|problem| (number, problem))?;
        if let Some(first) = first_seen.insert(device.hardware_serial.clone(), number) {
            return Err((number, format!("the same hardware serial as line {first}")));
        }
        if devices.len() == MAX_EXPECTED_DEVICES {
            return Err((
                number,
                format!("a list holds at most {MAX_EXPECTED_DEVICES} serials"),
            ));
        }
        devices.push(device);
    }
    if devices.is_empty() {
        return Err((columns_line + 1, "the list holds no serials".to_owned()));
    }
    Ok(devices)
}

/// A sealed list's header (lines 2 and 3) and seal, checked against this appliance: the index
/// in `lines` of the seal line, which must be the last.
fn check_sealed(
    lines: &[RawLine<'_>],
    bytes: &[u8],
    device_id: &DeviceId,
    kek: impl FnOnce() -> Result<SecretKey, String>,
) -> Result<usize, LineProblem> {
    let header = |index: usize, prefix: &str| match lines.get(index) {
        Some((_, text, _)) => text
            .strip_prefix(prefix)
            .ok_or_else(|| (index as u64 + 1, format!("expected the line {prefix:?}..."))),
        None => Err((
            index as u64 + 1,
            format!("the file ends inside the header; expected the line {prefix:?}..."),
        )),
    };
    let listed_device = header(1, DEVICE_ID_PREFIX)?
        .parse::<DeviceId>()
        .map_err(|reason| (2, format!("device-id: {reason}")))?;
    if listed_device != *device_id {
        return Err((
            2,
            format!("the list is for device {listed_device}, but this appliance is {device_id}"),
        ));
    }
    let kek_kcv = header(2, KEK_KCV_PREFIX)?;
    let well_formed = matches!(kek_kcv.len(), 6 | 10)
        && kek_kcv
            .bytes()
            .all(|byte| byte.is_ascii_digit() || (b'A'..=b'F').contains(&byte));
    if !well_formed {
        return Err((3, "kek-kcv is not 6 or 10 upper-case hex digits".to_owned()));
    }
    let seal_at = lines
        .iter()
        .position(|(_, text, _)| text.starts_with(SEAL_PREFIX))
        .ok_or_else(|| {
            (
                lines.len() as u64 + 1,
                "the sealed list ends without its seal line; it may be truncated".to_owned(),
            )
        })?;
    let (seal_line, seal_text, seal_offset) = lines[seal_at];
    if let Some((after, _, _)) = lines.get(seal_at + 1) {
        return Err((
            *after,
            format!("nothing may follow the seal line (line {seal_line})"),
        ));
    }
    let kek = kek().map_err(|problem| (0, problem))?;
    let kcv = kek.kcv().to_string();
    if kek_kcv != kcv {
        return Err((
            3,
            format!(
                "the list was sealed under the KEK with check value {kek_kcv}, not under this appliance's KEK ({kcv})"
            ),
        ));
    }
    let hex = &seal_text[SEAL_PREFIX.len()..];
    let is_hex = hex.len() == 64
        && hex
            .bytes()
            .all(|byte| byte.is_ascii_digit() || (b'A'..=b'F').contains(&byte));
    if !is_hex {
        return Err((
            seal_line,
            "the seal is not 64 upper-case hex digits".to_owned(),
        ));
    }
    let mut mac = MacKey::derive(&kek, EXPECTED_LIST_SEAL_LABEL).start();
    mac.update(&bytes[..seal_offset]);
    if !crate::mac::verify_hex(mac, hex) {
        return Err((
            seal_line,
            "the seal does not verify: the list was altered after it was sealed".to_owned(),
        ));
    }
    Ok(seal_at)
}

/// One row: a serial, and a model when the list has the column.
fn read_row(number: u64, text: &str, with_model: bool) -> Result<ExpectedDevice, String> {
    if text.is_empty() {
        return Err("the line is empty".to_owned());
    }
    if text.starts_with('#') {
        return Err("a comment line; a list holds one serial per line".to_owned());
    }
    let fields: Vec<&str> = text.split(',').collect();
    let expected = if with_model { 2 } else { 1 };
    if fields.len() != expected {
        return Err(format!(
            "expected {expected} comma-separated field{} ({}), found {}",
            if expected == 1 { "" } else { "s" },
            if with_model {
                EXPECTED_COLUMNS_SERIAL_MODEL
            } else {
                EXPECTED_COLUMNS_SERIAL
            },
            fields.len()
        ));
    }
    if fields.iter().any(|field| field.starts_with('"')) {
        return Err("quoted fields are not supported; write the values as they are".to_owned());
    }
    let hardware_serial = fields[0]
        .parse::<HardwareSerial>()
        .map_err(|error| identity_words("the hardware serial", &error))?;
    let terminal_model = match fields.get(1) {
        None | Some(&"") => None,
        Some(model) => Some(
            model
                .parse::<TerminalModel>()
                .map_err(|error| identity_words("the model", &error))?,
        ),
    };
    Ok(ExpectedDevice {
        hardware_serial,
        terminal_model,
        line: number,
    })
}

/// The front end's side: seals a plain list (`plain`: its column line and rows, each ended by
/// a line feed) for the appliance `device_id` under `kek`, as keyfiles/FORMAT.md says.
pub fn seal_expected_list(plain: &str, device_id: &DeviceId, kek: &SecretKey) -> String {
    let mut sealed = format!(
        "{EXPECTED_LIST_MAGIC}\n{DEVICE_ID_PREFIX}{device_id}\n{KEK_KCV_PREFIX}{}\n{plain}",
        kek.kcv()
    );
    if !sealed.ends_with('\n') {
        sealed.push('\n');
    }
    let mut mac = MacKey::derive(kek, EXPECTED_LIST_SEAL_LABEL).start();
    mac.update(sealed.as_bytes());
    let seal = hex::encode_upper(mac.finalize().into_bytes());
    sealed.push_str(&format!("{SEAL_PREFIX}{seal}\n"));
    sealed
}
