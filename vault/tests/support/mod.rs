//! Shared set-up for the audit, export and operator tests: a vault with KEK, TTK and keys, injections, and raw database access for breaking things.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::path::{Path, PathBuf};

use keymother_crypto::{KeyAlgorithm, SecretKey};
use keymother_keyfiles::testing::FileLines;
use keymother_keyfiles::{CreatedAt, GenerateOptions, KeyIndex};
use keymother_vault::{
    ConfirmationReport, ConfirmedInjection, DATABASE_FILE, Reservation, SecretName, Vault,
};
use tempfile::TempDir;

use crate::typed::*;

pub const DEVICE: &str = "KM-TEST-0001";
pub const FIRST_INDEX: u32 = 101;

/// A vault after the KEK and TTK ceremonies and the import of one batch.
pub struct Bench {
    pub directory: TempDir,
    pub vault: Vault,
    pub kek: SecretKey,
    pub ttk: SecretKey,
}

impl Bench {
    /// `count` TDES master keys from index 101, under an AES-256 KEK.
    pub fn new(count: u32) -> Bench {
        let directory = tempfile::tempdir().unwrap();
        let data_dir = directory.path().join("data");
        let mut vault = Vault::create(&data_dir, &DEVICE.parse().unwrap()).unwrap();
        let kek = SecretKey::generate(KeyAlgorithm::Aes256).unwrap();
        let ttk = SecretKey::generate(KeyAlgorithm::Aes128).unwrap();
        vault
            .install_secret(
                SecretName::Kek,
                &kek,
                &keymother_vault::CeremonyRecord::named(&["Ann Lee", "Raj Patel", "Kim Ng"])
                    .unwrap(),
            )
            .unwrap();
        vault
            .install_secret(
                SecretName::Ttk,
                &ttk,
                &keymother_vault::CeremonyRecord::named(&["Ann Lee", "Raj Patel"]).unwrap(),
            )
            .unwrap();
        let options = GenerateOptions {
            batch_id: "B-1".parse().unwrap(),
            issuer: "T".parse().unwrap(),
            algorithm: KeyAlgorithm::Tdes2Key,
            record_count: count,
            first_index: KeyIndex::new(FIRST_INDEX).unwrap(),
            device_id: DEVICE.parse().unwrap(),
            created: CreatedAt::new(time::OffsetDateTime::now_utc()),
        };
        let path = directory.path().join("batch-1.keys");
        std::fs::write(
            &path,
            FileLines::generated(&kek, &options).unwrap().sealed(&kek),
        )
        .unwrap();
        vault.import_key_file(&path, &mut |_| {}).unwrap();
        Bench {
            directory,
            vault,
            kek,
            ttk,
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.directory.path().join("data")
    }

    /// A path in the test's directory (outside the data directory).
    pub fn path(&self, name: &str) -> PathBuf {
        self.directory.path().join(name)
    }

    /// The database opened directly, as an attacker with write access to it would.
    pub fn raw(&self) -> rusqlite::Connection {
        raw(&self.data_dir())
    }

    /// Reserves and sends a key to `serial`.
    pub fn send(&mut self, serial: &str) -> Reservation {
        let reservation = self
            .vault
            .reserve_key(&as_serial(serial), "bench-1")
            .unwrap();
        self.vault
            .mark_sent(as_index(reservation.key_index), &as_serial(serial))
            .unwrap();
        reservation
    }

    /// A whole injection: reserve, send, confirm with the right check value.
    pub fn inject(&mut self, serial: &str) -> ConfirmedInjection {
        let reservation = self.send(serial);
        self.confirm(serial, &reservation, None)
    }

    pub fn confirm(
        &mut self,
        serial: &str,
        reservation: &Reservation,
        operator: Option<&str>,
    ) -> ConfirmedInjection {
        let smn = format!("{serial}{:08}", reservation.key_index);
        self.vault
            .confirm_key_by(
                &ConfirmationReport {
                    key_index: as_index(reservation.key_index),
                    hardware_serial: leak(as_serial(serial)),
                    kcv: reservation.kcv,
                    smn: leak(as_smn(&smn)),
                    port: "bench-1",
                    terminal_model: leak(as_model("REF-TERMINAL")),
                },
                3,
                operator,
            )
            .unwrap()
    }

    pub fn audit_count(&self) -> usize {
        self.vault.audit_rows().unwrap().len()
    }
}

pub fn raw(data_dir: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(data_dir.join(DATABASE_FILE)).unwrap()
}
