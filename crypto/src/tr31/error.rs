//! Why a TR-31 key block could not be made or opened: every message names the field or block at fault and never carries key material.

use std::fmt;

use crate::key::KeyAlgorithm;

use super::fields::{Algorithm, Version};

/// One of the fixed fields of the 16-character key block header (ANSI X9.143 6.2, table 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeaderField {
    /// Character 1: key block version ID.
    Version,
    /// Characters 2-5: total key block length in decimal.
    BlockLength,
    /// Characters 6-7: key usage.
    KeyUsage,
    /// Character 8: algorithm of the wrapped key.
    Algorithm,
    /// Character 9: mode of use.
    ModeOfUse,
    /// Characters 10-11: key version number.
    KeyVersion,
    /// Character 12: exportability.
    Exportability,
    /// Characters 13-14: number of optional blocks.
    OptionalBlockCount,
    /// Character 15: key context.
    KeyContext,
    /// Character 16: reserved.
    Reserved,
}

impl HeaderField {
    /// The field's name as used in error messages.
    pub fn name(self) -> &'static str {
        match self {
            HeaderField::Version => "version ID",
            HeaderField::BlockLength => "key block length",
            HeaderField::KeyUsage => "key usage",
            HeaderField::Algorithm => "algorithm",
            HeaderField::ModeOfUse => "mode of use",
            HeaderField::KeyVersion => "key version number",
            HeaderField::Exportability => "exportability",
            HeaderField::OptionalBlockCount => "number of optional blocks",
            HeaderField::KeyContext => "key context",
            HeaderField::Reserved => "reserved",
        }
    }

    /// First and last character position of the field, counting from 1.
    pub fn positions(self) -> (usize, usize) {
        match self {
            HeaderField::Version => (1, 1),
            HeaderField::BlockLength => (2, 5),
            HeaderField::KeyUsage => (6, 7),
            HeaderField::Algorithm => (8, 8),
            HeaderField::ModeOfUse => (9, 9),
            HeaderField::KeyVersion => (10, 11),
            HeaderField::Exportability => (12, 12),
            HeaderField::OptionalBlockCount => (13, 14),
            HeaderField::KeyContext => (15, 15),
            HeaderField::Reserved => (16, 16),
        }
    }

    /// What the field may contain.
    pub fn allowed(self) -> &'static str {
        match self {
            HeaderField::Version => {
                "A, B, C or D (TR-31 / ANSI X9.143 versions; ISO 20038 version E is not supported)"
            }
            HeaderField::BlockLength => "four decimal digits",
            HeaderField::KeyUsage => {
                "an ANSI X9.143 key usage (B0-B3, C0, D0-D3, E0-E7, I0, K0-K4, M0-M8, P0, P1, \
                 S0-S2, V0-V5) or two digits for a proprietary usage"
            }
            HeaderField::Algorithm => {
                "A (AES), D (DES), E (elliptic curve), H (HMAC), R (RSA), S (DSA) or T (TDES)"
            }
            HeaderField::ModeOfUse => "one of B, C, D, E, G, N, S, T, V, X, Y",
            HeaderField::KeyVersion => {
                "00 (no key version), c1-c9 (key component number) or two letters or digits"
            }
            HeaderField::Exportability => {
                "E (exportable under a trusted key), N (not exportable) or S (sensitive)"
            }
            HeaderField::OptionalBlockCount => "two decimal digits (00-99)",
            HeaderField::KeyContext => {
                "0 (storage or exchange); contexts 1 (storage only) and 2 (exchange only) are \
                 not supported by keymother"
            }
            HeaderField::Reserved => "0",
        }
    }
}

impl fmt::Display for HeaderField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (first, last) = self.positions();
        if first == last {
            write!(f, "'{}' (character {first})", self.name())
        } else {
            write!(f, "'{}' (characters {first}-{last})", self.name())
        }
    }
}

/// The hex-encoded parts of a key block after its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlockPart {
    /// The encrypted key data (key length, key and padding).
    EncryptedKey,
    /// The key block MAC (authenticator).
    Mac,
}

impl fmt::Display for BlockPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BlockPart::EncryptedKey => "encrypted key data",
            BlockPart::Mac => "key block MAC",
        })
    }
}

/// Why a key block could not be made or opened. Never carries the text it was given: a key
/// block may be pasted in the wrong place, or a key typed where a block was expected, so
/// messages name the field, block or character position at fault and what it may hold, and
/// quote only values that parsed (a recognised optional block ID, lengths, counts).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Tr31Error {
    #[error("a key block is printable ASCII, but character {position} is not (U+{code:04X})")]
    NotPrintableAscii { position: usize, code: u32 },

    #[error("truncated: {found} characters, but {what} needs at least {needed}")]
    Truncated {
        found: usize,
        needed: usize,
        what: &'static str,
    },

    #[error("header field {field} is not valid; expected {}", field.allowed())]
    InvalidHeaderField { field: HeaderField },

    #[error(
        "the key block is truncated: header field {} says {declared} characters, but only {actual} are present",
        HeaderField::BlockLength
    )]
    LengthFieldBeyondBlock { declared: usize, actual: usize },

    #[error(
        "header field {} says {declared} characters, but the key block is {actual} characters long \
         (extra characters after the block?)",
        HeaderField::BlockLength
    )]
    LengthFieldMismatch { declared: usize, actual: usize },

    #[error(
        "the header declares {declared} optional blocks, but optional block {} starting at character \
         {position} is cut off",
        index + 1
    )]
    OptionalBlockCutOff {
        declared: usize,
        index: usize,
        position: usize,
    },

    #[error(
        "optional block {}at character {position}: {problem}",
        id.as_ref().map(|id| format!("{id:?} ")).unwrap_or_default()
    )]
    InvalidOptionalBlock {
        /// The block's ID when it is one keymother knows (or two digits, a proprietary
        /// block); `None` when the ID itself is what is wrong.
        id: Option<String>,
        position: usize,
        /// What is wrong, in words; never the block's data.
        problem: String,
    },

    #[error(
        "optional block {id:?} at character {position} repeats an earlier block; each ID may appear once"
    )]
    DuplicateOptionalBlock { id: String, position: usize },

    #[error("the PB padding block at character {position} must be the last optional block")]
    PaddingBlockNotLast { position: usize },

    #[error(
        "unexpected text at character {position}: the header template ends after the optional blocks \
         its field {} declares",
        HeaderField::OptionalBlockCount
    )]
    TextAfterHeader { position: usize },

    #[error(
        "the header with its optional blocks is {length} characters; version {version} needs a \
         multiple of {block_size} (the PB padding block is missing or has the wrong length)"
    )]
    HeaderNotAligned {
        version: Version,
        length: usize,
        block_size: usize,
    },

    #[error(
        "wrong total length: the key block is {length} characters, but its header ({header_length} \
         characters), the smallest encrypted key ({} characters) and the {} MAC characters of version \
         {version} need at least {needed}",
        version.block_size() * 2,
        version.mac_length() * 2
    )]
    TooShort {
        version: Version,
        length: usize,
        header_length: usize,
        needed: usize,
    },

    #[error(
        "wrong total length: the encrypted key data is {found} hex characters; version {version} needs \
         a multiple of {} (whole {}-byte cipher blocks)",
        version.block_size() * 2,
        version.block_size()
    )]
    EncryptedLength { version: Version, found: usize },

    #[error("character {position} ({part}) is not an upper-case hex digit 0-9 or A-F")]
    InvalidHex { position: usize, part: BlockPart },

    #[error(
        "key block MAC does not verify (wrong key-block protection key, or the block was altered)"
    )]
    MacMismatch,

    #[error(
        "the {block} optional block states a check value that does not match the {}; the block was made for another key",
        if *block == "KP" { "key-block protection key" } else { "wrapped key" }
    )]
    StatedCheckValueMismatch { block: &'static str },

    #[error(
        "version {version} key blocks are protected by a {} key-block protection key, but this KBPK is {kbpk}",
        version.protection_key_family()
    )]
    ProtectionKeyDoesNotMatchVersion {
        version: Version,
        kbpk: KeyAlgorithm,
    },

    #[error(
        "keymother wraps only versions B (TDES) and D (AES); version {version} ({}) can be unwrapped \
         but not made",
        version.binding_method()
    )]
    VersionNotWrappable { version: Version },

    #[error(
        "header field {} says {algorithm} ({}), but the key to wrap is {key}",
        HeaderField::Algorithm,
        algorithm.description()
    )]
    KeyDoesNotMatchAlgorithm {
        algorithm: Algorithm,
        key: KeyAlgorithm,
    },

    #[error(
        "refusing to wrap a {key} key ({} bits of strength) under a weaker {kbpk} key-block \
         protection key ({} bits)",
        key.strength_bits(),
        kbpk.strength_bits()
    )]
    ProtectionKeyWeakerThanKey {
        key: KeyAlgorithm,
        kbpk: KeyAlgorithm,
    },

    #[error("refusing to wrap a weak key: {0}")]
    WeakKey(crate::strength::WeakKey),

    #[error("refusing to wrap under a weak key-block protection key: {0}")]
    WeakProtectionKey(crate::strength::WeakKey),

    #[error(
        "the decrypted key length field says {bits} bits, which is impossible: it must be a non-zero \
         multiple of 8 and fit in the {available} bytes of key data and padding"
    )]
    ImpossibleKeyLength { bits: usize, available: usize },

    #[error(
        "the decrypted key length field says {bytes} bytes, which is not a valid {algorithm} ({}) key \
         length (expected {})",
        algorithm.description(),
        allowed_key_lengths(*algorithm)
    )]
    KeyLengthNotAllowed { algorithm: Algorithm, bytes: usize },

    #[error(
        "the key block holds a single-length DES key (algorithm D); keymother refuses single DES"
    )]
    SingleDesNotSupported,

    #[error(
        "the key block holds a key of algorithm {algorithm} ({}), which is not supported by keymother \
         (only T and A keys)",
        algorithm.description()
    )]
    AlgorithmNotSupported { algorithm: Algorithm },

    #[error(
        "too many optional blocks: {count} (with any PB padding block); the header field {} allows at most 99",
        HeaderField::OptionalBlockCount
    )]
    TooManyOptionalBlocks { count: usize },

    #[error(
        "the key block would be {length} characters; the header field {} allows at most 9999",
        HeaderField::BlockLength
    )]
    BlockTooLong { length: usize },

    #[error(
        "{found} padding bytes given, but the key length field, a {key_length}-byte key and the padding \
         must fill whole {block_size}-byte cipher blocks"
    )]
    PaddingLength {
        found: usize,
        key_length: usize,
        block_size: usize,
    },

    #[error("the operating system's random number generator failed: {0}")]
    Random(String),
}

fn allowed_key_lengths(algorithm: Algorithm) -> &'static str {
    match algorithm {
        Algorithm::Tdes => {
            "16 bytes for 2-key or 24 bytes for 3-key TDES; single-length DES keys are refused"
        }
        Algorithm::Aes => "16, 24 or 32 bytes",
        _ => "a supported algorithm",
    }
}
