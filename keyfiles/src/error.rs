//! Errors that name the file, the line and what was wrong, like a compiler's.

use keymother_crypto::parity::ParityError;
use keymother_crypto::tr31::{Exportability, KeyUsage, ModeOfUse, Tr31Error, Version};
use keymother_crypto::{Kcv, KeyAlgorithm, KeyFamily, WeakKey};

/// A key file was refused. `line` is 1-based; 0 means the file as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct KeyFileError {
    /// The file's name as given by the caller.
    pub file: String,
    /// The 1-based line the problem is on, 0 for the file as a whole.
    pub line: u64,
    /// What was wrong.
    pub problem: Problem,
}

impl KeyFileError {
    fn describe(&self) -> String {
        if self.line == 0 {
            format!("{}: {}", self.file, self.problem)
        } else {
            format!("{}: line {}: {}", self.file, self.line, self.problem)
        }
    }
}

/// What was wrong with a key file, in words. Never carries text from the file: an operator
/// who picks the wrong file (a key component, a key list) must not find a key quoted in an
/// error, a log line or an audit row. Only values that parsed into validated types are named
/// (check values, algorithms, indexes, batch and device ids, key block header fields that
/// verified under the KEK); raw text that failed to parse is described by where it is and
/// what it should have been.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("could not read the file: {0}")]
    Io(String),
    #[error("line is longer than {limit} bytes")]
    LineTooLong { limit: usize },
    #[error("byte {column} is not printable ASCII")]
    NotPrintable { column: usize },
    #[error("line ends with a carriage return; key files use line feeds only")]
    CarriageReturn,
    #[error("the last line has no line feed; the file may be truncated")]
    MissingFinalNewline,
    #[error("this is not a keymother key file (expected the line \"KEYMOTHER-KEYFILE/1\")")]
    BadMagic,
    #[error("the file ends inside the header; expected the {expected:?} line")]
    MissingHeaderLine { expected: &'static str },
    #[error("expected the {expected:?} header line")]
    WrongHeaderName { expected: &'static str },
    /// `reason` is built from the field's rules (lengths, character positions, allowed
    /// characters), never from its value.
    #[error("{field}: {reason}")]
    BadHeaderValue { field: &'static str, reason: String },
    #[error("the file is for device {file_device}, but this appliance is {appliance_device}")]
    WrongDevice {
        file_device: String,
        appliance_device: String,
    },
    #[error(
        "the file was made under a KEK with check value {file_kcv}, but the loaded KEK's is {loaded_kcv}"
    )]
    WrongKek { file_kcv: Kcv, loaded_kcv: Kcv },
    #[error(
        "{} {kek} KEK cannot protect {master_keys} master keys (the KEK must be at least as strong)",
        if kek.family() == KeyFamily::Aes { "an" } else { "a" }
    )]
    KekTooWeak {
        kek: KeyAlgorithm,
        master_keys: KeyAlgorithm,
    },
    #[error("batch {batch} was already imported on {imported_at}")]
    BatchAlreadyImported { batch: String, imported_at: String },
    #[error(
        "a record is \"INDEX BLOCK KCV\" separated by single spaces; a field is empty (two spaces in a row, or a space at an end?)"
    )]
    EmptyRecordField,
    #[error("a record is \"INDEX BLOCK KCV\" separated by single spaces; found {fields} fields")]
    RecordShape { fields: usize },
    #[error("key index is not 8 decimal digits")]
    BadIndex,
    #[error("key index {index} already appears on line {first_line}")]
    DuplicateInFile { index: String, first_line: u64 },
    #[error("key index {index} is already in the inventory (batch {batch})")]
    AlreadyInInventory { index: String, batch: String },
    #[error("key block: {0}")]
    KeyBlock(Tr31Error),
    #[error("key block has key usage {found}, expected K0 (key encryption or wrapping)")]
    WrongKeyUsage { found: KeyUsage },
    #[error("key block has mode of use {found}, expected B or D")]
    WrongModeOfUse { found: ModeOfUse },
    #[error(
        "key block marks the key non-exportable ({found}); it could never be sent to a terminal"
    )]
    NotExportable { found: Exportability },
    #[error("master key is {found}, but the header says {expected}")]
    WrongAlgorithm {
        expected: KeyAlgorithm,
        found: KeyAlgorithm,
    },
    /// `found` is `None` when the block does not start with a TR-31 version letter at all.
    #[error("{}", describe_block_version(*expected, *found))]
    WrongBlockVersion {
        expected: Version,
        found: Option<Version>,
    },
    #[error("master key: {0}")]
    Parity(ParityError),
    #[error("master key: {0}")]
    WeakMasterKey(WeakKey),
    #[error("the KEK: {0}")]
    WeakKek(WeakKey),
    #[error(
        "check value is not {} upper-case hex digits (the check value of a {family} key)",
        Kcv::length_for(*family) * 2
    )]
    BadKcv { family: KeyFamily },
    #[error("check value {stated} does not match the decrypted master key's {computed}")]
    KcvMismatch { stated: Kcv, computed: Kcv },
    #[error("more records than the header's record-count of {declared}")]
    TooManyRecords { declared: u32 },
    #[error(
        "the seal line comes after {found} records, but the header's record-count is {declared}"
    )]
    TooFewRecords { declared: u32, found: u32 },
    #[error(
        "the file ends after {found} of {declared} records, without its seal line (truncated?)"
    )]
    Truncated { declared: u32, found: u32 },
    #[error("nothing may follow the seal line")]
    TrailingData,
    #[error("seal line: expected 64 upper-case hex digits after \"seal: \"")]
    BadSealLine,
    #[error("the seal does not verify: the file was altered, or sealed under another KEK{}",
        first_problem.as_ref().map(|p| format!(" (the first problem seen was on line {}: {})", p.0, p.1)).unwrap_or_default())]
    SealMismatch {
        first_problem: Option<Box<(u64, Problem)>>,
    },
}

fn describe_block_version(expected: Version, found: Option<Version>) -> String {
    match found {
        Some(found) => {
            format!("key block version {found} does not match the KEK (expected {expected})")
        }
        None => format!(
            "the key block does not start with a TR-31 version letter (expected {expected}, as the KEK requires)"
        ),
    }
}
