//! TDES DUKPT (ANSI X9.24-1-2009 Annex A): the IPEK from a double-length BDK, transaction keys by the non-reversible key generation process, and the working-key variants.

use zeroize::Zeroizing;

use super::{DukptError, TdesKsn, check_counter, require_algorithm, xor_in_place};
use crate::block_cipher::{BlockCipher, des_encrypt_block};
use crate::key::{KeyAlgorithm, SecretKey};

/// The most one-bits a transaction counter may have (X9.24-1-2009 A.3).
pub const MAX_ONE_BITS: u32 = 10;

const STANDARD: &str = "ANSI X9.24-1-2009";

/// The variant XORed into a key register for the IPEK's right half and for the left half of
/// each non-reversible key generation (X9.24-1-2009 A.2 and A.6).
const KEY_REGISTER_VARIANT: [u8; 16] = [
    0xC0, 0xC0, 0xC0, 0xC0, 0, 0, 0, 0, 0xC0, 0xC0, 0xC0, 0xC0, 0, 0, 0, 0,
];

/// A working key of a TDES DUKPT transaction: a variant of the transaction key
/// (X9.24-1-2009 A.4.1, table A-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TdesKeyVariant {
    /// PIN encryption: XOR 00000000000000FF 00000000000000FF.
    Pin,
    /// MAC, request (and both ways): XOR 000000000000FF00 000000000000FF00.
    MacRequest,
    /// MAC, response: XOR 00000000FF000000 00000000FF000000.
    MacResponse,
    /// Data encryption, request (and both ways): XOR 0000000000FF0000 0000000000FF0000, then
    /// each half TDES-encrypted under the variant itself.
    DataRequest,
    /// Data encryption, response: XOR 000000FF00000000 000000FF00000000, then each half
    /// TDES-encrypted under the variant itself.
    DataResponse,
}

impl TdesKeyVariant {
    /// Every variant, in the order of table A-1.
    pub const ALL: [TdesKeyVariant; 5] = [
        TdesKeyVariant::Pin,
        TdesKeyVariant::MacRequest,
        TdesKeyVariant::MacResponse,
        TdesKeyVariant::DataRequest,
        TdesKeyVariant::DataResponse,
    ];

    /// What the key is for, as the calculator prints it.
    pub fn name(self) -> &'static str {
        match self {
            TdesKeyVariant::Pin => "PIN encryption",
            TdesKeyVariant::MacRequest => "MAC request",
            TdesKeyVariant::MacResponse => "MAC response",
            TdesKeyVariant::DataRequest => "data request",
            TdesKeyVariant::DataResponse => "data response",
        }
    }

    /// The byte of each half the variant flips: 7 for PIN, down to 3 for data response.
    fn flipped_byte(self) -> usize {
        match self {
            TdesKeyVariant::Pin => 7,
            TdesKeyVariant::MacRequest => 6,
            TdesKeyVariant::MacResponse => 4,
            TdesKeyVariant::DataRequest => 5,
            TdesKeyVariant::DataResponse => 3,
        }
    }

    fn is_data(self) -> bool {
        matches!(
            self,
            TdesKeyVariant::DataRequest | TdesKeyVariant::DataResponse
        )
    }
}

/// Refuses a key that is not double-length TDES, for the `role` it plays.
fn require_double_length(role: &'static str, key: &SecretKey) -> Result<(), DukptError> {
    require_algorithm(
        role,
        key.algorithm(),
        &[KeyAlgorithm::Tdes2Key],
        "a double-length TDES key (TDES-2KEY)",
    )
}

/// TDES-encrypts one 8-byte block under a double-length key given as bytes.
fn tdes_encrypt(key: &[u8; 16], block: &mut [u8; 8]) -> Result<(), DukptError> {
    let key = SecretKey::from_bytes(KeyAlgorithm::Tdes2Key, key)?;
    BlockCipher::new(&key).encrypt_block(block);
    Ok(())
}

/// Copies a double-length key's bytes into a register that zeroizes on drop.
fn key_register(key: &SecretKey) -> Zeroizing<[u8; 16]> {
    let mut register = Zeroizing::new([0u8; 16]);
    register.copy_from_slice(key.expose_secret_bytes());
    register
}

/// The initial key (IPEK) of the device whose KSN is `ksn`, from a double-length BDK
/// (X9.24-1-2009 A.6): the KSN's leftmost 8 bytes with the counter cleared, TDES-encrypted
/// under the BDK (left half) and under the BDK XOR C0C0C0C000000000C0C0C0C000000000 (right
/// half). The counter of `ksn` is ignored.
pub fn derive_initial_key(bdk: &SecretKey, ksn: &TdesKsn) -> Result<SecretKey, DukptError> {
    require_double_length("the TDES DUKPT BDK", bdk)?;
    let initial = ksn.initial().bytes();
    let mut register = key_register(bdk);
    let mut ipek = Zeroizing::new([0u8; 16]);
    for half in ipek.chunks_exact_mut(8) {
        let mut block = Zeroizing::new([0u8; 8]);
        block.copy_from_slice(&initial[..8]);
        tdes_encrypt(&register, &mut block)?;
        half.copy_from_slice(block.as_slice());
        xor_in_place(register.as_mut_slice(), &KEY_REGISTER_VARIANT);
    }
    Ok(SecretKey::from_bytes(
        KeyAlgorithm::Tdes2Key,
        ipek.as_slice(),
    )?)
}

/// One half of the non-reversible key generation process (X9.24-1-2009 A.2): the KSN
/// register's rightmost 64 bits XOR the key's right half, DES-encrypted under the key's left
/// half, XOR the key's right half again.
fn non_reversible_half(key: &[u8; 16], ksn_register: &[u8; 8], out: &mut [u8; 8]) {
    let mut left = Zeroizing::new([0u8; 8]);
    left.copy_from_slice(&key[..8]);
    *out = *ksn_register;
    xor_in_place(out, &key[8..]);
    des_encrypt_block(&left, out);
    xor_in_place(out, &key[8..]);
}

/// The non-reversible key generation process: the next key from `key` and the KSN register's
/// rightmost 64 bits. The right half comes from the key, the left half from the key XOR
/// C0C0C0C000000000C0C0C0C000000000.
fn non_reversible_key(key: &[u8; 16], ksn_register: &[u8; 8]) -> Zeroizing<[u8; 16]> {
    let mut halves = Zeroizing::new([[0u8; 8]; 2]);
    non_reversible_half(key, ksn_register, &mut halves[1]);
    let mut variant = Zeroizing::new(*key);
    xor_in_place(variant.as_mut_slice(), &KEY_REGISTER_VARIANT);
    non_reversible_half(&variant, ksn_register, &mut halves[0]);
    let mut next = Zeroizing::new([0u8; 16]);
    next[..8].copy_from_slice(&halves[0]);
    next[8..].copy_from_slice(&halves[1]);
    next
}

/// The transaction key for `ksn` from the device's initial key: starting from the initial key
/// and the initial KSN, for each one-bit of the counter from the highest down, set that bit in
/// the KSN register and take the non-reversible key of the key so far (X9.24-1-2009 A.2, A.3).
/// This is the key the device's future key register holds for that counter.
///
/// Refuses counter 0 and counters with more than 10 one-bits.
pub fn derive_transaction_key(
    initial_key: &SecretKey,
    ksn: &TdesKsn,
) -> Result<SecretKey, DukptError> {
    require_double_length("the TDES DUKPT initial key", initial_key)?;
    let counter = ksn.counter();
    check_counter(counter, MAX_ONE_BITS, STANDARD)?;
    let bytes = ksn.initial().bytes();
    let mut register = [0u8; 8];
    register.copy_from_slice(&bytes[TdesKsn::LENGTH - 8..]);
    let mut register = u64::from_be_bytes(register);
    let mut key = key_register(initial_key);
    for bit in (0..TdesKsn::COUNTER_BITS).rev() {
        let shift = 1u64 << bit;
        if u64::from(counter) & shift != 0 {
            register |= shift;
            key = non_reversible_key(&key, &register.to_be_bytes());
        }
    }
    Ok(SecretKey::from_bytes(
        KeyAlgorithm::Tdes2Key,
        key.as_slice(),
    )?)
}

/// The transaction key for `ksn` straight from the BDK, as a host derives it.
pub fn transaction_key_from_bdk(bdk: &SecretKey, ksn: &TdesKsn) -> Result<SecretKey, DukptError> {
    let initial_key = derive_initial_key(bdk, ksn)?;
    derive_transaction_key(&initial_key, ksn)
}

/// A working key of the transaction key (X9.24-1-2009 A.4.1): the variant's XOR, and for the
/// data keys also the one-way step of figure A-2 (each half TDES-encrypted under the variant).
pub fn derive_working_key(
    transaction_key: &SecretKey,
    variant: TdesKeyVariant,
) -> Result<SecretKey, DukptError> {
    require_double_length("the TDES DUKPT transaction key", transaction_key)?;
    let mut key = key_register(transaction_key);
    key[variant.flipped_byte()] ^= 0xFF;
    key[variant.flipped_byte() + 8] ^= 0xFF;
    if variant.is_data() {
        let variant_key = Zeroizing::new(*key);
        for half in key.chunks_exact_mut(8) {
            let mut block = Zeroizing::new([0u8; 8]);
            block.copy_from_slice(half);
            tdes_encrypt(&variant_key, &mut block)?;
            half.copy_from_slice(block.as_slice());
        }
    }
    Ok(SecretKey::from_bytes(
        KeyAlgorithm::Tdes2Key,
        key.as_slice(),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bdk() -> SecretKey {
        SecretKey::from_hex(KeyAlgorithm::Tdes2Key, "0123456789ABCDEFFEDCBA9876543210").unwrap()
    }

    #[test]
    fn x9_24_1_a4_first_transaction() {
        let ksn: TdesKsn = "FFFF9876543210E00001".parse().unwrap();
        let ipek = derive_initial_key(&bdk(), &ksn).unwrap();
        assert_eq!(
            ipek.expose_secret_hex().as_str(),
            "6AC292FAA1315B4D858AB3A3D7D5933A"
        );
        let key = derive_transaction_key(&ipek, &ksn).unwrap();
        assert_eq!(
            key.expose_secret_hex().as_str(),
            "042666B49184CFA368DE9628D0397BC9"
        );
    }

    #[test]
    fn refuses_aes_bdk_and_bad_counters() {
        let aes = SecretKey::from_hex(KeyAlgorithm::Aes128, &"11".repeat(16)).unwrap();
        let ksn: TdesKsn = "FFFF9876543210E00001".parse().unwrap();
        assert_eq!(
            derive_initial_key(&aes, &ksn).err().unwrap().to_string(),
            "the TDES DUKPT BDK must be a double-length TDES key (TDES-2KEY), not AES-128"
        );
        let eleven_ones = ksn.with_counter(0x7FF).unwrap();
        assert_eq!(
            transaction_key_from_bdk(&bdk(), &eleven_ones)
                .err()
                .unwrap()
                .to_string(),
            "transaction counter 0x7FF has 11 one-bits; ANSI X9.24-1-2009 allows at most 10"
        );
        assert_eq!(
            transaction_key_from_bdk(&bdk(), &ksn.initial()).err(),
            Some(DukptError::CounterZero)
        );
    }
}
