//! One key file record, and opening it: unwrap the master key under the KEK and check everything it claims.

use keymother_crypto::tr31::{
    BlockOpener, Exportability, KeyBlockProtectionKey, KeyUsage, ModeOfUse, Version,
};
use keymother_crypto::{Kcv, KeyAlgorithm, KeyFamily, SecretKey, parity};

use crate::error::Problem;
use crate::header::{KeyFileHeader, KeyIndex};

/// A record as read from the file: well formed, not yet decrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The 1-based line it was on.
    pub line: u64,
    pub index: KeyIndex,
    /// The master key as a TR-31 key block under the KEK.
    pub key_block: String,
    /// The master key's check value as stated in the file.
    pub kcv: Kcv,
}

/// A record whose master key was decrypted and checked.
pub struct OpenedRecord {
    pub record: Record,
    /// The clear master key; zeroized on drop.
    pub master_key: SecretKey,
}

/// Opens records of one file under one KEK, with the KEK's derived keys computed once.
pub struct RecordOpener {
    kek: KeyBlockProtectionKey,
    expected_version: Version,
    master_key_algorithm: KeyAlgorithm,
}

impl RecordOpener {
    /// Prepares to open the records of a file with `header` under `kek`.
    pub fn new(kek: &SecretKey, header: &KeyFileHeader) -> Result<RecordOpener, Problem> {
        if kek.algorithm().strength_bits() < header.algorithm.strength_bits() {
            return Err(Problem::KekTooWeak {
                kek: kek.algorithm(),
                master_keys: header.algorithm,
            });
        }
        kek.check_strength().map_err(Problem::WeakKek)?;
        let expected_version = Version::for_protection_key(kek.algorithm().family());
        Ok(RecordOpener {
            kek: KeyBlockProtectionKey::new(kek),
            expected_version,
            master_key_algorithm: header.algorithm,
        })
    }

    /// Decrypts the master key and checks usage, algorithm, parity, strength (no repeated
    /// TDES parts) and check value.
    pub fn open(&self, record: Record) -> Result<OpenedRecord, Problem> {
        self.on_one_thread().open(record)
    }

    /// An opener for many records on one thread (a worker): the same checks as
    /// [`open`](Self::open), with the MAC state after the records' shared key block header
    /// computed once instead of once per record.
    pub fn on_one_thread(&self) -> ThreadOpener<'_> {
        ThreadOpener {
            opener: self,
            blocks: self.kek.opener(),
        }
    }
}

/// Opens records on one thread; see [`RecordOpener::on_one_thread`]. Holds the KEK's key
/// schedule: no Debug.
pub struct ThreadOpener<'a> {
    opener: &'a RecordOpener,
    blocks: BlockOpener<'a>,
}

impl ThreadOpener<'_> {
    /// Decrypts the master key and checks it; see [`RecordOpener::open`].
    pub fn open(&mut self, record: Record) -> Result<OpenedRecord, Problem> {
        let expected_version = self.opener.expected_version;
        let version = record.key_block.bytes().next().and_then(Version::from_code);
        if version != Some(expected_version) {
            return Err(Problem::WrongBlockVersion {
                expected: expected_version,
                found: version,
            });
        }
        let unwrapped = self
            .blocks
            .unwrap(&record.key_block)
            .map_err(Problem::KeyBlock)?;
        let header = &unwrapped.header;
        if header.key_usage != KeyUsage::KeyEncryption {
            return Err(Problem::WrongKeyUsage {
                found: header.key_usage,
            });
        }
        if !matches!(
            header.mode_of_use,
            ModeOfUse::EncryptDecrypt | ModeOfUse::DecryptOnly
        ) {
            return Err(Problem::WrongModeOfUse {
                found: header.mode_of_use,
            });
        }
        if header.exportability != Exportability::Exportable {
            return Err(Problem::NotExportable {
                found: header.exportability,
            });
        }
        let master_key = unwrapped.key;
        if master_key.algorithm() != self.opener.master_key_algorithm {
            return Err(Problem::WrongAlgorithm {
                expected: self.opener.master_key_algorithm,
                found: master_key.algorithm(),
            });
        }
        if master_key.algorithm().family() == KeyFamily::Tdes {
            parity::check_odd(master_key.expose_secret_bytes()).map_err(Problem::Parity)?;
        }
        master_key
            .check_strength()
            .map_err(Problem::WeakMasterKey)?;
        let computed = master_key.kcv();
        if computed != record.kcv {
            return Err(Problem::KcvMismatch {
                stated: record.kcv,
                computed,
            });
        }
        Ok(OpenedRecord { record, master_key })
    }
}
