//! Errors that name the file, the line and what was wrong, like a compiler's.

use keymother_crypto::parity::ParityError;
use keymother_crypto::tr31::Tr31Error;
use keymother_crypto::{Kcv, KeyAlgorithm};

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

/// What was wrong with a key file. Never carries key material; quoted text from the file is
/// limited to non-secret fields (header values, indexes, check values).
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
    #[error(
        "this is not a keymother key file (first line is {found:?}, expected \"KEYMOTHER-KEYFILE/1\")"
    )]
    BadMagic { found: String },
    #[error("the file ends inside the header; expected the {expected:?} line")]
    MissingHeaderLine { expected: &'static str },
    #[error("expected the {expected:?} header line, found {found:?}")]
    WrongHeaderName {
        expected: &'static str,
        found: String,
    },
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
        "a {kek} KEK cannot protect {master_keys} master keys (the KEK must be at least as strong)"
    )]
    KekTooWeak {
        kek: KeyAlgorithm,
        master_keys: KeyAlgorithm,
    },
    #[error("batch {batch} was already imported on {imported_at}")]
    BatchAlreadyImported { batch: String, imported_at: String },
    #[error("a record is \"INDEX BLOCK KCV\" separated by single spaces; {reason}")]
    RecordShape { reason: String },
    #[error("key index {found:?} is not 8 decimal digits")]
    BadIndex { found: String },
    #[error("key index {index} already appears on line {first_line}")]
    DuplicateInFile { index: String, first_line: u64 },
    #[error("key index {index} is already in the inventory (batch {batch})")]
    AlreadyInInventory { index: String, batch: String },
    #[error("key block: {0}")]
    KeyBlock(Tr31Error),
    #[error("key block has key usage {found}, expected K0 (key encryption or wrapping)")]
    WrongKeyUsage { found: String },
    #[error("key block has mode of use {found}, expected B or D")]
    WrongModeOfUse { found: String },
    #[error(
        "key block marks the key non-exportable ({found}); it could never be sent to a terminal"
    )]
    NotExportable { found: String },
    #[error("master key is {found}, but the header says {expected}")]
    WrongAlgorithm {
        expected: KeyAlgorithm,
        found: KeyAlgorithm,
    },
    #[error("key block version {found} does not match the KEK (expected {expected})")]
    WrongBlockVersion { expected: char, found: char },
    #[error("master key: {0}")]
    Parity(ParityError),
    #[error("check value {found:?}: {reason}")]
    BadKcv { found: String, reason: String },
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
    #[error("seal line: {reason}")]
    BadSealLine { reason: String },
    #[error("the seal does not verify: the file was altered, or sealed under another KEK{}",
        first_problem.as_ref().map(|p| format!(" (the first problem seen was on line {}: {})", p.0, p.1)).unwrap_or_default())]
    SealMismatch {
        first_problem: Option<Box<(u64, Problem)>>,
    },
}
