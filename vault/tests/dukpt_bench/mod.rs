//! Shared set-up for the DUKPT tests: a vault with BDKs, a stand-in for the caller's initial-key derivation, and reservations and confirmations in one call.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::convert::Infallible;
use std::path::{Path, PathBuf};

use keymother_crypto::{KeyAlgorithm, SecretKey};
use keymother_domain::{
    BdkId, BdkName, DeviceRange, DukptDeviceId, HardwareSerial, Kcv, KeyFamily, TerminalModel,
};
use keymother_vault::{
    BdkSource, ConfirmedDukpt, DATABASE_FILE, DerivedKeyFacts, DukptConfirmation, DukptReservation,
    NewBdk, Vault,
};
use tempfile::TempDir;

pub const DEVICE: &str = "KM-TEST-0001";
/// The AES BDK of the tests: "PIN", BDK ID 12345678, device ids 00000100 to 000001FF.
pub const PIN_ID: &str = "12345678";
pub const PIN_RANGE: &str = "00000100-000001FF";
/// The TDES BDK of the tests: "DATA", key set identifier FFFF987654, device ids 00000-000FF.
pub const DATA_ID: &str = "FFFF987654";
pub const DATA_RANGE: &str = "00000-000FF";

/// A vault with the AES-128 BDK "PIN" and the TDES BDK "DATA" (keys kept for comparing).
pub struct DukptBench {
    pub directory: TempDir,
    pub vault: Vault,
    pub pin: SecretKey,
    pub data: SecretKey,
}

impl DukptBench {
    pub fn new() -> DukptBench {
        DukptBench::with_ranges(PIN_RANGE, DATA_RANGE)
    }

    pub fn with_ranges(pin_range: &str, data_range: &str) -> DukptBench {
        let directory = tempfile::tempdir().unwrap();
        let mut vault =
            Vault::create(&directory.path().join("data"), &DEVICE.parse().unwrap()).unwrap();
        let pin = SecretKey::generate(KeyAlgorithm::Aes128).unwrap();
        let data = SecretKey::generate(KeyAlgorithm::Tdes2Key).unwrap();
        vault
            .install_bdk(&new_bdk("PIN", PIN_ID, pin_range, false), &pin, None)
            .unwrap();
        vault
            .install_bdk(
                &new_bdk("DATA", DATA_ID, data_range, false),
                &data,
                Some("Ann Lee"),
            )
            .unwrap();
        DukptBench {
            directory,
            vault,
            pin,
            data,
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.directory.path().join("data")
    }

    /// The database opened directly, as an attacker with write access to it would.
    pub fn raw(&self) -> rusqlite::Connection {
        raw(&self.data_dir())
    }

    pub fn reserve(&mut self, bdk: &str, serial: &str) -> DukptReservation {
        reserve(&mut self.vault, bdk, serial)
    }

    /// Reserve, send, confirm with the right check value.
    pub fn inject(&mut self, bdk: &str, serial: &str) -> ConfirmedDukpt {
        let reservation = self.reserve(bdk, serial);
        self.vault
            .mark_dukpt_sent(&reservation.bdk, reservation.device_id, &serial_of(serial))
            .unwrap();
        confirm(&mut self.vault, &reservation, serial, reservation.kcv).unwrap()
    }

    pub fn audit_events(&self) -> Vec<String> {
        self.vault
            .audit_rows()
            .unwrap()
            .into_iter()
            .map(|row| row.event)
            .collect()
    }
}

pub fn raw(data_dir: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(data_dir.join(DATABASE_FILE)).unwrap()
}

pub fn new_bdk(name: &str, bdk_id: &str, range: &str, replace: bool) -> NewBdk {
    NewBdk {
        name: name.parse().unwrap(),
        bdk_id: bdk_id.parse().unwrap(),
        range: range.parse().unwrap(),
        source: BdkSource::Ceremony,
        replace,
        ceremony: Some(keymother_vault::CeremonyRecord::named(&["Ann Lee", "Raj Patel"]).unwrap()),
    }
}

pub fn name(text: &str) -> BdkName {
    text.parse().unwrap()
}

pub fn serial_of(text: &str) -> HardwareSerial {
    text.parse().unwrap()
}

pub fn device(text: &str) -> DukptDeviceId {
    text.parse().unwrap()
}

pub fn range(text: &str) -> DeviceRange {
    text.parse().unwrap()
}

/// The initial KSN (TDES: key set identifier, then the device id above a 21-bit zero
/// counter) or initial key ID (AES: BDK ID, then the derivation ID) of `device`.
pub fn initial_ksn(bdk_id: BdkId, device: DukptDeviceId) -> String {
    match device.family() {
        KeyFamily::Tdes => format!("{bdk_id}{:010X}", u64::from(device.value()) << 21),
        KeyFamily::Aes => format!("{bdk_id}{device}"),
    }
}

/// A check value standing for the initial key of `device` (the tests derive no key: the
/// vault only stores what the caller derived).
pub fn stand_in_kcv(family: KeyFamily, device: DukptDeviceId) -> Kcv {
    let bytes = device.value().to_be_bytes();
    match family {
        KeyFamily::Tdes => Kcv::from_bytes(family, &[0xD0 ^ bytes[1], bytes[2], bytes[3]]),
        KeyFamily::Aes => Kcv::from_bytes(family, &[0xA0, bytes[0], bytes[1], bytes[2], bytes[3]]),
    }
    .unwrap()
}

/// What the caller's derivation would return for `device` of a BDK with `bdk_id`: a
/// TDES-2KEY initial key for TDES, an AES-128 one for AES.
pub fn facts(bdk_id: BdkId, device: DukptDeviceId) -> DerivedKeyFacts {
    let key_type = match device.family() {
        KeyFamily::Tdes => KeyAlgorithm::Tdes2Key,
        KeyFamily::Aes => KeyAlgorithm::Aes128,
    };
    DerivedKeyFacts {
        initial_ksn: initial_ksn(bdk_id, device),
        key_type,
        kcv: stand_in_kcv(key_type.family(), device),
    }
}

/// The identifier of the tests' BDK `bdk`.
pub fn bdk_id_of(bdk: &str) -> BdkId {
    match bdk {
        "PIN" => PIN_ID.parse().unwrap(),
        "DATA" => DATA_ID.parse().unwrap(),
        other => panic!("no test BDK {other}"),
    }
}

pub fn reserve(vault: &mut Vault, bdk: &str, serial: &str) -> DukptReservation {
    let bdk_id = bdk_id_of(bdk);
    vault
        .reserve_dukpt(
            &name(bdk),
            &serial_of(serial),
            "bench-1",
            None,
            &mut |device| Ok::<_, Infallible>(facts(bdk_id, device)),
        )
        .unwrap()
}

pub fn confirm(
    vault: &mut Vault,
    reservation: &DukptReservation,
    serial: &str,
    kcv: Kcv,
) -> Result<ConfirmedDukpt, keymother_vault::DukptError> {
    let serial = serial_of(serial);
    let model: TerminalModel = "REF-TERMINAL".parse().unwrap();
    vault.confirm_dukpt(
        &DukptConfirmation {
            bdk: &reservation.bdk,
            device_id: reservation.device_id,
            hardware_serial: &serial,
            kcv,
            port: "bench-1",
            terminal_model: &model,
        },
        3,
        None,
    )
}
