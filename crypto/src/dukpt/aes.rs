//! AES DUKPT (ANSI X9.24-3-2017): initial keys from AES BDKs and the initial key ID, intermediate (transaction) keys for a counter, working keys and the update key.

use zeroize::Zeroizing;

use super::{AesKsn, DukptError, InitialKeyId, check_counter, require_algorithm};
use crate::block_cipher::BlockCipher;
use crate::key::{KeyAlgorithm, KeyFamily, SecretKey};

/// The most one-bits a transaction counter may have (X9.24-3-2017 6.1).
pub const MAX_ONE_BITS: u32 = 16;

const STANDARD: &str = "ANSI X9.24-3-2017";

/// The AES key types a BDK, an initial key and an intermediate derivation key may have.
const DERIVATION_KEY_TYPES: [KeyAlgorithm; 3] = [
    KeyAlgorithm::Aes128,
    KeyAlgorithm::Aes192,
    KeyAlgorithm::Aes256,
];
const DERIVATION_KEY_NAMES: &str = "an AES key (AES-128, AES-192 or AES-256)";

/// What a working key derived by AES DUKPT is for: the key usage indicator of the derivation
/// data (X9.24-3-2017 6.3.2, table 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AesKeyUsage {
    /// Key encryption key (0002), as the update key uses it.
    KeyEncryptionKey,
    /// PIN encryption (1000).
    PinEncryption,
    /// Message authentication, generation (2000).
    MacGeneration,
    /// Message authentication, verification (2001).
    MacVerification,
    /// Message authentication, both ways (2002).
    MacBothWays,
    /// Data encryption, encrypt (3000).
    DataEncrypt,
    /// Data encryption, decrypt (3001).
    DataDecrypt,
    /// Data encryption, both ways (3002).
    DataBothWays,
}

impl AesKeyUsage {
    /// The working-key usages a transaction has, in the order of table 2 (the key encryption
    /// key, which only the update key uses, left out).
    pub const WORKING: [AesKeyUsage; 7] = [
        AesKeyUsage::PinEncryption,
        AesKeyUsage::MacGeneration,
        AesKeyUsage::MacVerification,
        AesKeyUsage::MacBothWays,
        AesKeyUsage::DataEncrypt,
        AesKeyUsage::DataDecrypt,
        AesKeyUsage::DataBothWays,
    ];

    /// The key usage indicator in the derivation data.
    pub fn indicator(self) -> u16 {
        match self {
            AesKeyUsage::KeyEncryptionKey => 0x0002,
            AesKeyUsage::PinEncryption => 0x1000,
            AesKeyUsage::MacGeneration => 0x2000,
            AesKeyUsage::MacVerification => 0x2001,
            AesKeyUsage::MacBothWays => 0x2002,
            AesKeyUsage::DataEncrypt => 0x3000,
            AesKeyUsage::DataDecrypt => 0x3001,
            AesKeyUsage::DataBothWays => 0x3002,
        }
    }

    /// What the key is for, as the calculator prints it.
    pub fn name(self) -> &'static str {
        match self {
            AesKeyUsage::KeyEncryptionKey => "key encryption",
            AesKeyUsage::PinEncryption => "PIN encryption",
            AesKeyUsage::MacGeneration => "MAC generation",
            AesKeyUsage::MacVerification => "MAC verification",
            AesKeyUsage::MacBothWays => "MAC both ways",
            AesKeyUsage::DataEncrypt => "data encrypt",
            AesKeyUsage::DataDecrypt => "data decrypt",
            AesKeyUsage::DataBothWays => "data both ways",
        }
    }
}

/// Key usage indicator of an intermediate derivation key.
const KEY_DERIVATION: u16 = 0x8000;
/// Key usage indicator of the initial key.
const KEY_DERIVATION_INITIAL_KEY: u16 = 0x8001;

/// The algorithm indicator of the derivation data (table 2).
fn algorithm_indicator(key_type: KeyAlgorithm) -> u16 {
    match key_type {
        KeyAlgorithm::Tdes2Key => 0x0000,
        KeyAlgorithm::Tdes3Key => 0x0001,
        KeyAlgorithm::Aes128 => 0x0002,
        KeyAlgorithm::Aes192 => 0x0003,
        KeyAlgorithm::Aes256 => 0x0004,
    }
}

/// The 16-byte derivation data (X9.24-3-2017 6.3.2): version 01, key block counter (set per
/// block by [`derive_key`]), key usage, algorithm, length in bits, and 8 bytes of KSN data.
fn derivation_data(usage: u16, key_type: KeyAlgorithm, ksn_data: [u8; 8]) -> [u8; 16] {
    let bits = u16::try_from(key_type.key_length() * 8).unwrap_or(u16::MAX);
    let mut data = [0u8; 16];
    data[0] = 0x01;
    data[2..4].copy_from_slice(&usage.to_be_bytes());
    data[4..6].copy_from_slice(&algorithm_indicator(key_type).to_be_bytes());
    data[6..8].copy_from_slice(&bits.to_be_bytes());
    data[8..].copy_from_slice(&ksn_data);
    data
}

/// The KSN data of every key but the initial key: the derivation ID and a counter.
fn counter_ksn_data(key_id: &InitialKeyId, counter: u32) -> [u8; 8] {
    let mut data = [0u8; 8];
    data[..4].copy_from_slice(&key_id.derivation_id().to_be_bytes());
    data[4..].copy_from_slice(&counter.to_be_bytes());
    data
}

/// The key derivation function (X9.24-3-2017 6.3.1): AES-ECB of the derivation data under
/// the derivation key, once per 128 bits of the derived key, with the block counter 1, 2.
fn derive_key(
    derivation_key: &SecretKey,
    key_type: KeyAlgorithm,
    data: [u8; 16],
) -> Result<SecretKey, DukptError> {
    let cipher = BlockCipher::new(derivation_key);
    let length = key_type.key_length();
    let mut material = Zeroizing::new(Vec::with_capacity(length + 16));
    let mut counter: u8 = 1;
    while material.len() < length {
        let mut block = Zeroizing::new(data);
        block[1] = counter;
        cipher.encrypt_block(block.as_mut_slice());
        material.extend_from_slice(block.as_slice());
        counter = counter.wrapping_add(1);
    }
    material.truncate(length);
    Ok(SecretKey::from_bytes(key_type, &material)?)
}

/// Refuses a key that is not AES, for the `role` it plays in a derivation.
fn require_derivation_key(role: &'static str, key: &SecretKey) -> Result<(), DukptError> {
    require_algorithm(
        role,
        key.algorithm(),
        &DERIVATION_KEY_TYPES,
        DERIVATION_KEY_NAMES,
    )
}

/// Refuses deriving a `derived` key from a weaker `from` key.
fn require_not_stronger(derived: KeyAlgorithm, from: KeyAlgorithm) -> Result<(), DukptError> {
    if derived.strength_bits() > from.strength_bits() {
        return Err(DukptError::StrongerThanSource { derived, from });
    }
    Ok(())
}

/// The key types allowed for a working key derived from a `derivation_key_type` key: TDES-2KEY,
/// TDES-3KEY and the AES types, none stronger than the derivation key.
pub fn allowed_working_key_types(derivation_key_type: KeyAlgorithm) -> Vec<KeyAlgorithm> {
    KeyAlgorithm::ALL
        .into_iter()
        .filter(|key_type| key_type.strength_bits() <= derivation_key_type.strength_bits())
        .collect()
}

/// The key types allowed for an initial key derived from a `bdk_type` BDK: AES types no
/// stronger than the BDK. TDES keys serve only as working keys: every derivation key of AES
/// DUKPT is an AES key, since the derivation is AES encryption under it.
pub fn allowed_initial_key_types(bdk_type: KeyAlgorithm) -> Vec<KeyAlgorithm> {
    if bdk_type.family() != KeyFamily::Aes {
        return Vec::new();
    }
    DERIVATION_KEY_TYPES
        .into_iter()
        .filter(|key_type| key_type.strength_bits() <= bdk_type.strength_bits())
        .collect()
}

/// The initial key of the device `key_id` names, of `key_type`, from an AES BDK
/// (X9.24-3-2017 6.5, "Derive Initial Key"). Refuses a BDK or key type that is not AES and a
/// key type stronger than the BDK.
pub fn derive_initial_key(
    bdk: &SecretKey,
    key_id: &InitialKeyId,
    key_type: KeyAlgorithm,
) -> Result<SecretKey, DukptError> {
    require_derivation_key("the AES DUKPT BDK", bdk)?;
    require_algorithm(
        "an AES DUKPT initial key",
        key_type,
        &DERIVATION_KEY_TYPES,
        DERIVATION_KEY_NAMES,
    )?;
    require_not_stronger(key_type, bdk.algorithm())?;
    let data = derivation_data(KEY_DERIVATION_INITIAL_KEY, key_type, key_id.bytes());
    derive_key(bdk, key_type, data)
}

/// The intermediate derivation key of `ksn`'s counter (the transaction key of the published
/// vectors) from the device's initial key: for each one-bit of the counter from the highest
/// down, set it in a working counter and derive the next key, of the initial key's type, from
/// the key so far with usage 8000 (X9.24-3-2017 6.1, 6.5).
///
/// Refuses counter 0 and counters with more than 16 one-bits.
pub fn derive_transaction_key(
    initial_key: &SecretKey,
    ksn: &AesKsn,
) -> Result<SecretKey, DukptError> {
    require_derivation_key("the AES DUKPT initial key", initial_key)?;
    check_counter(ksn.counter(), MAX_ONE_BITS, STANDARD)?;
    intermediate_key(initial_key, &ksn.key_id(), ksn.counter())
}

/// The intermediate derivation key of any counter, with no check of its one-bits.
fn intermediate_key(
    initial_key: &SecretKey,
    key_id: &InitialKeyId,
    counter: u32,
) -> Result<SecretKey, DukptError> {
    let key_type = initial_key.algorithm();
    let mut key = initial_key.duplicate();
    let mut working_counter = 0u32;
    for bit in (0..32).rev() {
        let mask = 1u32 << bit;
        if counter & mask != 0 {
            working_counter |= mask;
            let ksn_data = counter_ksn_data(key_id, working_counter);
            key = derive_key(
                &key,
                key_type,
                derivation_data(KEY_DERIVATION, key_type, ksn_data),
            )?;
        }
    }
    Ok(key)
}

/// A working key of `key_type` for `usage` from the transaction key of `ksn`
/// (X9.24-3-2017 6.5). Refuses a key type stronger than the transaction key.
pub fn derive_working_key(
    transaction_key: &SecretKey,
    ksn: &AesKsn,
    usage: AesKeyUsage,
    key_type: KeyAlgorithm,
) -> Result<SecretKey, DukptError> {
    require_derivation_key("the AES DUKPT transaction key", transaction_key)?;
    require_not_stronger(key_type, transaction_key.algorithm())?;
    let ksn_data = counter_ksn_data(&ksn.key_id(), ksn.counter());
    let data = derivation_data(usage.indicator(), key_type, ksn_data);
    derive_key(transaction_key, key_type, data)
}

/// A working key straight from the BDK, as a host derives it: the initial key of
/// `initial_key_type`, the transaction key of `ksn`, then the working key.
pub fn working_key_from_bdk(
    bdk: &SecretKey,
    initial_key_type: KeyAlgorithm,
    ksn: &AesKsn,
    usage: AesKeyUsage,
    key_type: KeyAlgorithm,
) -> Result<SecretKey, DukptError> {
    let initial_key = derive_initial_key(bdk, &ksn.key_id(), initial_key_type)?;
    let transaction_key = derive_transaction_key(&initial_key, ksn)?;
    derive_working_key(&transaction_key, ksn, usage, key_type)
}

/// The counter the update key is derived for: every bit set (X9.24-3-2017 6.5.2), a counter
/// no transaction ever has.
const UPDATE_KEY_COUNTER: u32 = u32::MAX;

/// The update key of an initial key, under which a new initial key is sent to the device
/// (X9.24-3-2017 6.5.3, "Update Initial Key"): the intermediate key of counter FFFFFFFF, and
/// from it the key encryption key (usage 0002) of `key_type` for that counter. Any key type
/// no stronger than the initial key (the supplement's vectors include TDES update keys).
pub fn derive_update_key(
    initial_key: &SecretKey,
    key_id: &InitialKeyId,
    key_type: KeyAlgorithm,
) -> Result<SecretKey, DukptError> {
    require_derivation_key("the AES DUKPT initial key", initial_key)?;
    require_not_stronger(key_type, initial_key.algorithm())?;
    let intermediate = intermediate_key(initial_key, key_id, UPDATE_KEY_COUNTER)?;
    let data = derivation_data(
        AesKeyUsage::KeyEncryptionKey.indicator(),
        key_type,
        counter_ksn_data(key_id, UPDATE_KEY_COUNTER),
    );
    derive_key(&intermediate, key_type, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bdk() -> SecretKey {
        SecretKey::from_hex(KeyAlgorithm::Aes128, "FEDCBA9876543210F1F1F1F1F1F1F1F1").unwrap()
    }

    #[test]
    fn x9_24_3_aes128_initial_and_first_transaction_key() {
        let key_id: InitialKeyId = "1234567890123456".parse().unwrap();
        let initial_key = derive_initial_key(&bdk(), &key_id, KeyAlgorithm::Aes128).unwrap();
        assert_eq!(
            initial_key.expose_secret_hex().as_str(),
            "1273671EA26AC29AFA4D1084127652A1"
        );
        let ksn = AesKsn::new(key_id, 1);
        let key = derive_transaction_key(&initial_key, &ksn).unwrap();
        assert_eq!(
            key.expose_secret_hex().as_str(),
            "4F21B565BAD9835E112B6465635EAE44"
        );
    }

    #[test]
    fn refuses_stronger_and_tdes_initial_keys() {
        let key_id = InitialKeyId::from_parts(1, 2);
        assert_eq!(
            derive_initial_key(&bdk(), &key_id, KeyAlgorithm::Aes256)
                .err()
                .unwrap()
                .to_string(),
            "AES-256 cannot be derived from AES-128: the derived key would be stronger than the key it comes from"
        );
        assert_eq!(
            derive_initial_key(&bdk(), &key_id, KeyAlgorithm::Tdes2Key)
                .err()
                .unwrap()
                .to_string(),
            "an AES DUKPT initial key must be an AES key (AES-128, AES-192 or AES-256), not TDES-2KEY"
        );
        assert_eq!(
            allowed_working_key_types(KeyAlgorithm::Aes128),
            [
                KeyAlgorithm::Tdes2Key,
                KeyAlgorithm::Tdes3Key,
                KeyAlgorithm::Aes128
            ]
        );
        assert_eq!(
            allowed_initial_key_types(KeyAlgorithm::Aes192),
            [KeyAlgorithm::Aes128, KeyAlgorithm::Aes192]
        );
    }
}
