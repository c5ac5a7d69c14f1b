//! The front end's side: writing and sealing key files, and generating batches of random master keys.

use std::io::{self, Write};

use keymother_crypto::tr31::{
    Algorithm, Exportability, Header, KeyBlockProtectionKey, KeyUsage, ModeOfUse, Tr31Error,
    Version,
};
use keymother_crypto::{KeyAlgorithm, KeyError, KeyFamily, SecretKey, WeakKey};

use crate::header::{
    BatchId, CreatedAt, DeviceId, FIELD_NAMES, Issuer, KeyFileHeader, KeyIndex, MAGIC,
};
use crate::seal::{SealKey, Sealing};

/// Why a key file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    // The causes of Io and KeyBlock are in their messages, not `source`s: as both, they were
    // printed twice by callers printing the error's chain.
    #[error("writing the key file failed: {0}")]
    Io(io::Error),
    #[error(
        "{} {kek} KEK cannot protect {master_keys} master keys (the KEK must be at least as strong)",
        if kek.family() == KeyFamily::Aes { "an" } else { "a" }
    )]
    KekTooWeak {
        kek: KeyAlgorithm,
        master_keys: KeyAlgorithm,
    },
    #[error("master key for index {index} is {found}, but the file holds {expected} keys")]
    WrongAlgorithm {
        index: KeyIndex,
        expected: KeyAlgorithm,
        found: KeyAlgorithm,
    },
    #[error("the KEK: {0}")]
    WeakKek(WeakKey),
    #[error("master key for index {index}: {weak}")]
    WeakMasterKey { index: KeyIndex, weak: WeakKey },
    #[error("the header promises {declared} records but {written} were written")]
    CountMismatch { declared: u32, written: u32 },
    #[error("key indexes {first} + {count} would pass 99999999")]
    IndexOverflow { first: u32, count: u32 },
    #[error("record count must be 1 to 99999999, got {0}")]
    BadCount(u32),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("wrapping a master key: {0}")]
    KeyBlock(Tr31Error),
}

impl From<io::Error> for WriteError {
    fn from(error: io::Error) -> Self {
        WriteError::Io(error)
    }
}

impl From<Tr31Error> for WriteError {
    fn from(error: Tr31Error) -> Self {
        WriteError::KeyBlock(error)
    }
}

/// Writes arbitrary lines under a valid seal. [`KeyFileWriter`] builds on it; tests use it
/// directly to make files that are sealed yet wrong in one precise way, the way a faulty
/// front end would, so the importer's checks behind the seal can be exercised.
pub struct SealedLineWriter<W: Write> {
    out: W,
    sealing: Sealing,
}

impl<W: Write> SealedLineWriter<W> {
    /// Starts a sealed file on `out`.
    pub fn new(out: W, seal_key: &SealKey) -> Self {
        SealedLineWriter {
            out,
            sealing: seal_key.start(),
        }
    }

    /// Writes `text` and a line feed, and adds both to the seal.
    pub fn line(&mut self, text: &str) -> io::Result<()> {
        self.sealing.update(text.as_bytes());
        self.sealing.update(b"\n");
        self.out.write_all(text.as_bytes())?;
        self.out.write_all(b"\n")
    }

    /// Writes the seal line and returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        let seal = self.sealing.finish_hex();
        writeln!(self.out, "seal: {seal}")?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Writes a key file record by record; checks what it writes.
pub struct KeyFileWriter<W: Write> {
    lines: SealedLineWriter<W>,
    kek: KeyBlockProtectionKey,
    block_header: Header,
    header: KeyFileHeader,
    written: u32,
    line: String,
}

impl<W: Write> KeyFileWriter<W> {
    /// Writes the header. `header.kek_kcv` is replaced by the KEK's real check value.
    pub fn new(out: W, mut header: KeyFileHeader, kek: &SecretKey) -> Result<Self, WriteError> {
        if kek.algorithm().strength_bits() < header.algorithm.strength_bits() {
            return Err(WriteError::KekTooWeak {
                kek: kek.algorithm(),
                master_keys: header.algorithm,
            });
        }
        kek.check_strength().map_err(WriteError::WeakKek)?;
        if header.record_count == 0 || header.record_count > KeyIndex::MAX {
            return Err(WriteError::BadCount(header.record_count));
        }
        header.kek_kcv = kek.kcv();
        let version = Version::for_protection_key(kek.algorithm().family());
        let algorithm = match header.algorithm.family() {
            KeyFamily::Tdes => Algorithm::Tdes,
            KeyFamily::Aes => Algorithm::Aes,
        };
        let block_header = Header::new(
            version,
            KeyUsage::KeyEncryption,
            algorithm,
            ModeOfUse::EncryptDecrypt,
            Exportability::Exportable,
        );
        let mut lines = SealedLineWriter::new(out, &SealKey::derive(kek));
        lines.line(MAGIC)?;
        for (name, value) in FIELD_NAMES.iter().zip(header.field_values()) {
            lines.line(&format!("{name}: {value}"))?;
        }
        Ok(KeyFileWriter {
            lines,
            kek: KeyBlockProtectionKey::new(kek),
            block_header,
            header,
            written: 0,
            line: String::with_capacity(256),
        })
    }

    /// Writes one record: the master key wrapped under the KEK, and its check value.
    pub fn write_record(
        &mut self,
        index: KeyIndex,
        master_key: &SecretKey,
    ) -> Result<(), WriteError> {
        if master_key.algorithm() != self.header.algorithm {
            return Err(WriteError::WrongAlgorithm {
                index,
                expected: self.header.algorithm,
                found: master_key.algorithm(),
            });
        }
        master_key
            .check_strength()
            .map_err(|weak| WriteError::WeakMasterKey { index, weak })?;
        if self.written == self.header.record_count {
            return Err(WriteError::CountMismatch {
                declared: self.header.record_count,
                written: self.written + 1,
            });
        }
        let block = self.kek.wrap(&self.block_header, master_key)?;
        self.line.clear();
        use std::fmt::Write as _;
        let _ = write!(self.line, "{index} {block} {}", master_key.kcv());
        self.lines.line(&self.line)?;
        self.written += 1;
        Ok(())
    }

    /// Seals the file; the number of records written must match the header.
    pub fn finish(self) -> Result<W, WriteError> {
        if self.written != self.header.record_count {
            return Err(WriteError::CountMismatch {
                declared: self.header.record_count,
                written: self.written,
            });
        }
        Ok(self.lines.finish()?)
    }
}

/// What to generate: a batch of random master keys with consecutive indexes.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub batch_id: BatchId,
    pub issuer: Issuer,
    pub algorithm: KeyAlgorithm,
    pub record_count: u32,
    pub first_index: KeyIndex,
    pub device_id: DeviceId,
    pub created: CreatedAt,
}

/// What [`generate`] wrote.
#[derive(Debug, Clone)]
pub struct GeneratedFile {
    pub header: KeyFileHeader,
    pub first_index: KeyIndex,
    pub last_index: KeyIndex,
}

/// The front end's writer: generates `record_count` random master keys (odd parity for
/// TDES), wraps each under the KEK, binds the file to the device and seals it. `progress`
/// is called with the number of records written so far.
pub fn generate<W: Write>(
    out: W,
    options: &GenerateOptions,
    kek: &SecretKey,
    progress: &mut dyn FnMut(u32),
) -> Result<(W, GeneratedFile), WriteError> {
    let last = options
        .first_index
        .value()
        .checked_add(options.record_count.saturating_sub(1))
        .and_then(KeyIndex::new)
        .ok_or(WriteError::IndexOverflow {
            first: options.first_index.value(),
            count: options.record_count,
        })?;
    let header = KeyFileHeader {
        batch_id: options.batch_id.clone(),
        issuer: options.issuer.clone(),
        algorithm: options.algorithm,
        record_count: options.record_count,
        device_id: options.device_id.clone(),
        kek_kcv: kek.kcv(),
        created: options.created,
    };
    let mut writer = KeyFileWriter::new(out, header.clone(), kek)?;
    for (written, value) in (options.first_index.value()..=last.value()).enumerate() {
        let index = KeyIndex::new(value).ok_or(WriteError::IndexOverflow {
            first: options.first_index.value(),
            count: options.record_count,
        })?;
        let master_key = SecretKey::generate(options.algorithm)?;
        writer.write_record(index, &master_key)?;
        if written % 4096 == 0 {
            progress(written as u32);
        }
    }
    progress(options.record_count);
    let out = writer.finish()?;
    Ok((
        out,
        GeneratedFile {
            header,
            first_index: options.first_index,
            last_index: last,
        },
    ))
}
