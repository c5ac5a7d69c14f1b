//! The fake master-key vault: keys reserved, sent, used or quarantined, one terminal per key, and the fake key blocks it hands out.

use std::collections::BTreeMap;

use keymother_protocol::{
    ConfirmRefusal, Confirmed, Delivery, DispenseRefusal, HardwareSerial, Smn, TerminalIdentity,
};

/// An obviously fake TR-31 key block (version D header, usage K0, algorithm AES, mode of use D,
/// exportability N) whose "ciphertext" spells the key index, so the fake installer can check it.
pub fn fake_key_block(key_index: u32) -> String {
    let header = "D0144K0AD00N0000";
    let filler = "0".repeat(144 - header.len() - 8);
    format!("{header}{filler}{key_index:08}")
}

/// The fake check value of key `key_index`.
pub fn fake_kcv(key_index: u32) -> Vec<u8> {
    let bytes = key_index.to_be_bytes();
    vec![0xC0 ^ bytes[0], bytes[1], bytes[2], bytes[3], 0x5A]
}

/// What the fake installer makes of a key block: the key index it spells, if it is one of ours.
pub fn fake_unwrap(key_block: &str) -> Option<u32> {
    let header_ok = key_block.len() == 144 && key_block.starts_with("D0144K0AD00N0000");
    header_ok.then(|| key_block[136..].parse().ok()).flatten()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyState {
    Free,
    Reserved { serial: HardwareSerial },
    Sent { serial: HardwareSerial },
    Used { serial: HardwareSerial, smn: Smn },
    Quarantined { serial: HardwareSerial },
}

/// A vault in memory with the invariants of the real one: a key goes to one terminal only, and
/// the same terminal asking again gets the key already reserved for it.
#[derive(Debug, Default)]
pub struct FakeVault {
    pub keys: BTreeMap<u32, KeyState>,
    pub reserve_calls: Vec<TerminalIdentity>,
    pub confirm_calls: Vec<(u32, Vec<u8>, Smn)>,
    pub mark_sent_calls: Vec<u32>,
    /// Every (key, terminal) pair ever reserved; a key must never appear with two terminals.
    pub reservations: BTreeMap<u32, HardwareSerial>,
    pub quarantine_on_mismatch: bool,
    pub refuse_reservation: Option<DispenseRefusal>,
    pub refuse_confirmation: Option<ConfirmRefusal>,
}

impl FakeVault {
    pub fn with_keys(indexes: impl IntoIterator<Item = u32>) -> Self {
        FakeVault {
            keys: indexes
                .into_iter()
                .map(|index| (index, KeyState::Free))
                .collect(),
            ..FakeVault::default()
        }
    }

    fn holder(state: &KeyState) -> Option<&HardwareSerial> {
        match state {
            KeyState::Free => None,
            KeyState::Reserved { serial }
            | KeyState::Sent { serial }
            | KeyState::Used { serial, .. }
            | KeyState::Quarantined { serial } => Some(serial),
        }
    }

    pub fn reserve(&mut self, terminal: &TerminalIdentity) -> Result<Delivery, DispenseRefusal> {
        self.reserve_calls.push(terminal.clone());
        if let Some(refusal) = self.refuse_reservation.clone() {
            return Err(refusal);
        }
        let serial = &terminal.hardware_serial;
        let again = self.keys.iter().find(|(_, state)| {
            matches!(
                state,
                KeyState::Reserved { serial: s } | KeyState::Sent { serial: s } | KeyState::Used { serial: s, .. }
                    if s == serial
            )
        });
        let key_index = match again {
            Some((&index, _)) => index,
            None => {
                let Some((&index, state)) = self
                    .keys
                    .iter_mut()
                    .find(|(_, state)| **state == KeyState::Free)
                else {
                    return Err(DispenseRefusal::NoKeysAvailable);
                };
                *state = KeyState::Reserved {
                    serial: serial.clone(),
                };
                index
            }
        };
        if let Some(previous) = self.reservations.insert(key_index, serial.clone()) {
            assert_eq!(
                &previous, serial,
                "key {key_index} reserved for {previous} and then for {serial}"
            );
        }
        Ok(Delivery {
            key_index,
            key_block: fake_key_block(key_index),
            kcv: fake_kcv(key_index),
            mode_data: Vec::new(),
        })
    }

    pub fn mark_sent(&mut self, key_index: u32) {
        self.mark_sent_calls.push(key_index);
        if let Some(state) = self.keys.get_mut(&key_index) {
            if let KeyState::Reserved { serial } = state {
                *state = KeyState::Sent {
                    serial: serial.clone(),
                };
            }
        }
    }

    pub fn confirm(
        &mut self,
        terminal: &TerminalIdentity,
        key_index: u32,
        kcv: &[u8],
        smn: &Smn,
    ) -> Result<Confirmed, ConfirmRefusal> {
        self.confirm_calls
            .push((key_index, kcv.to_vec(), smn.clone()));
        if let Some(refusal) = self.refuse_confirmation.clone() {
            return Err(refusal);
        }
        let serial = &terminal.hardware_serial;
        let Some(state) = self.keys.get_mut(&key_index) else {
            return Err(ConfirmRefusal::NotDelivered);
        };
        match state.clone() {
            KeyState::Sent { serial: holder } if &holder == serial => {
                if kcv != fake_kcv(key_index) {
                    if self.quarantine_on_mismatch {
                        *state = KeyState::Quarantined { serial: holder };
                    }
                    return Err(ConfirmRefusal::KcvMismatch {
                        quarantined: self.quarantine_on_mismatch,
                    });
                }
                *state = KeyState::Used {
                    serial: holder,
                    smn: smn.clone(),
                };
                Ok(Confirmed {
                    key_index,
                    smn: smn.clone(),
                })
            }
            KeyState::Used {
                serial: holder,
                smn: recorded,
            } if &holder == serial && &recorded == smn => Ok(Confirmed {
                key_index,
                smn: smn.clone(),
            }),
            _ => Err(ConfirmRefusal::NotDelivered),
        }
    }

    /// The key a terminal holds (reserved, sent, used or quarantined), if any.
    pub fn key_of(&self, serial: &HardwareSerial) -> Option<(u32, &KeyState)> {
        self.keys
            .iter()
            .find(|(_, state)| FakeVault::holder(state) == Some(serial))
            .map(|(&index, state)| (index, state))
    }
}
