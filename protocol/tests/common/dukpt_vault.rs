//! The fake DUKPT vault: BDKs by label with a range of device IDs each, one device ID per terminal and BDK, and the fake initial-key blocks it hands out.

use std::collections::BTreeMap;

use keymother_domain::KeyFamily;

use keymother_protocol::{
    ConfirmRefusal, DispenseRefusal, DukptDelivery, DukptKind, DukptSlot, HardwareSerial,
    KeyAlgorithm, TerminalIdentity,
};

/// Upper-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02X}")).collect()
}

/// The initial KSN (TDES: key set ID, 19-bit device ID, counter 0) or initial key ID (AES: BDK
/// ID, derivation ID) of device `device_id` under a BDK identified by `key_set`.
pub fn initial_ksn(kind: DukptKind, key_set: &[u8], device_id: u32) -> Vec<u8> {
    let mut ksn = key_set.to_vec();
    match kind {
        DukptKind::Tdes => {
            assert!(device_id < 1 << 19, "a TDES device ID has 19 bits");
            let low = u64::from(device_id) << 21;
            ksn.extend_from_slice(&low.to_be_bytes()[3..]);
        }
        DukptKind::Aes => ksn.extend_from_slice(&device_id.to_be_bytes()),
    }
    ksn
}

/// An obviously fake TR-31 version D initial-key block (usage B1, mode of use X,
/// exportability N) with the KS (TDES) or IK (AES) block holding `ksn`, a padding block, and
/// zeros where the key and MAC would be.
pub fn fake_dukpt_block(kind: DukptKind, key_type: KeyAlgorithm, ksn: &[u8]) -> String {
    let algorithm = match key_type.family() {
        KeyFamily::Tdes => 'T',
        KeyFamily::Aes => 'A',
    };
    let optional = match kind {
        DukptKind::Tdes => format!("KS18{}PB080000", hex(ksn)),
        DukptKind::Aes => format!("IK14{}PB0C00000000", hex(ksn)),
    };
    format!("D0144B1{algorithm}X00N0200{optional}{}", "0".repeat(96))
}

/// The KSN a fake initial-key block carries, if it is one of ours.
pub fn fake_dukpt_unwrap(key_block: &str) -> Option<Vec<u8>> {
    if key_block.len() != 144 || !key_block.starts_with("D0144B1") {
        return None;
    }
    let digits = match &key_block[16..20] {
        "KS18" => 20,
        "IK14" => 16,
        _ => return None,
    };
    let text = &key_block[20..20 + digits];
    (0..digits)
        .step_by(2)
        .map(|at| u8::from_str_radix(&text[at..at + 2], 16).ok())
        .collect()
}

/// The fake check value of the initial key with `ksn` (3 bytes for a TDES key, 5 for AES).
pub fn fake_dukpt_kcv(key_type: KeyAlgorithm, ksn: &[u8]) -> Vec<u8> {
    let last = ksn.len() - 1;
    let kcv = [0xD0 ^ ksn[last], ksn[last - 1], ksn[last - 2], 0xA5, 0x5A];
    let length = match key_type.family() {
        KeyFamily::Tdes => 3,
        KeyFamily::Aes => 5,
    };
    kcv[..length].to_vec()
}

/// A BDK in the fake vault, with the device IDs assigned to this appliance.
#[derive(Debug, Clone)]
pub struct FakeBdk {
    pub kind: DukptKind,
    /// The TDES key set ID (5 bytes) or the AES BDK ID (4 bytes).
    pub key_set: Vec<u8>,
    pub next_device_id: u32,
    /// The first device ID past this appliance's range.
    pub end: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DukptState {
    Reserved,
    Sent,
    Used,
    Quarantined,
}

/// One initial key the vault gave out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DukptRecord {
    pub label: String,
    pub serial: HardwareSerial,
    pub key_type: KeyAlgorithm,
    pub state: DukptState,
}

/// A DUKPT vault in memory with the invariants of the real one: a device ID goes to one
/// terminal only, a terminal gets one initial key per BDK, and the same terminal asking again
/// gets the same one.
#[derive(Debug, Default)]
pub struct FakeDukptVault {
    pub bdks: BTreeMap<String, FakeBdk>,
    /// Every initial key given out, by KSN.
    pub keys: BTreeMap<Vec<u8>, DukptRecord>,
    pub reserve_calls: Vec<(HardwareSerial, u8, String)>,
    pub mark_sent_calls: Vec<(u8, Vec<u8>)>,
    pub confirm_calls: Vec<(u8, Vec<u8>, Vec<u8>)>,
    pub quarantine_on_mismatch: bool,
    pub refuse_reservation: Option<DispenseRefusal>,
    pub refuse_confirmation: Option<ConfirmRefusal>,
}

impl FakeDukptVault {
    /// Loads a BDK with the device IDs `first..first + count`.
    pub fn load(&mut self, label: &str, kind: DukptKind, key_set: &[u8], first: u32, count: u32) {
        let bdk = FakeBdk {
            kind,
            key_set: key_set.to_vec(),
            next_device_id: first,
            end: first + count,
        };
        self.bdks.insert(label.to_owned(), bdk);
    }

    pub fn reserve(
        &mut self,
        terminal: &TerminalIdentity,
        slot: u8,
        dukpt: &DukptSlot,
    ) -> Result<DukptDelivery, DispenseRefusal> {
        let serial = &terminal.hardware_serial;
        self.reserve_calls
            .push((serial.clone(), slot, dukpt.label.clone()));
        if let Some(refusal) = self.refuse_reservation.clone() {
            return Err(refusal);
        }
        let Some(bdk) = self.bdks.get_mut(&dukpt.label) else {
            return Err(DispenseRefusal::BdkNotLoaded);
        };
        assert_eq!(bdk.kind, dukpt.kind, "slot {slot}: BDK of another kind");
        let again = self
            .keys
            .iter()
            .find(|(_, record)| record.label == dukpt.label && &record.serial == serial)
            .map(|(ksn, _)| ksn.clone());
        let ksn = match again {
            Some(ksn) => ksn,
            None => {
                if bdk.next_device_id >= bdk.end {
                    return Err(DispenseRefusal::NoKeysAvailable);
                }
                let ksn = initial_ksn(bdk.kind, &bdk.key_set, bdk.next_device_id);
                bdk.next_device_id += 1;
                let record = DukptRecord {
                    label: dukpt.label.clone(),
                    serial: serial.clone(),
                    key_type: dukpt.key_type,
                    state: DukptState::Reserved,
                };
                if let Some(previous) = self.keys.insert(ksn.clone(), record) {
                    panic!(
                        "KSN {} reserved for {} and then for {serial}",
                        hex(&ksn),
                        previous.serial
                    );
                }
                ksn
            }
        };
        Ok(DukptDelivery {
            slot,
            key_block: fake_dukpt_block(dukpt.kind, dukpt.key_type, &ksn),
            kcv: fake_dukpt_kcv(dukpt.key_type, &ksn),
            ksn,
        })
    }

    pub fn mark_sent(&mut self, slot: u8, ksn: &[u8]) {
        self.mark_sent_calls.push((slot, ksn.to_vec()));
        if let Some(record) = self.keys.get_mut(ksn) {
            if record.state == DukptState::Reserved {
                record.state = DukptState::Sent;
            }
        }
    }

    pub fn confirm(
        &mut self,
        terminal: &TerminalIdentity,
        slot: u8,
        dukpt: &DukptSlot,
        ksn: &[u8],
        kcv: &[u8],
    ) -> Result<(), ConfirmRefusal> {
        self.confirm_calls.push((slot, ksn.to_vec(), kcv.to_vec()));
        if let Some(refusal) = self.refuse_confirmation.clone() {
            return Err(refusal);
        }
        let Some(record) = self.keys.get_mut(ksn) else {
            return Err(ConfirmRefusal::NotDelivered);
        };
        if record.serial != terminal.hardware_serial || record.label != dukpt.label {
            return Err(ConfirmRefusal::NotDelivered);
        }
        let right = kcv == fake_dukpt_kcv(record.key_type, ksn);
        match record.state {
            DukptState::Sent if right => {
                record.state = DukptState::Used;
                Ok(())
            }
            DukptState::Used if right => Ok(()),
            DukptState::Sent => {
                if self.quarantine_on_mismatch {
                    record.state = DukptState::Quarantined;
                }
                Err(ConfirmRefusal::KcvMismatch {
                    quarantined: self.quarantine_on_mismatch,
                })
            }
            DukptState::Used => Err(ConfirmRefusal::KcvMismatch { quarantined: false }),
            DukptState::Reserved | DukptState::Quarantined => Err(ConfirmRefusal::NotDelivered),
        }
    }

    /// The KSNs a terminal holds, by label.
    pub fn keys_of(&self, serial: &HardwareSerial) -> BTreeMap<String, Vec<u8>> {
        self.keys
            .iter()
            .filter(|(_, record)| &record.serial == serial)
            .map(|(ksn, record)| (record.label.clone(), ksn.clone()))
            .collect()
    }

    /// The state of the key with `ksn`.
    pub fn state(&self, ksn: &[u8]) -> Option<DukptState> {
        self.keys.get(ksn).map(|record| record.state.clone())
    }
}
