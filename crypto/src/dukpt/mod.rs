//! DUKPT, derived unique key per transaction: TDES (ANSI X9.24-1-2009) and AES (ANSI X9.24-3-2017) key derivation.
//!
//! A base derivation key (BDK) and a device's initial key serial number give the device's
//! initial key (for TDES the IPEK), which is what an injection system loads. From the initial
//! key and a transaction counter come the transaction key and its working keys (PIN, MAC,
//! data). A host derives them from the BDK and the full KSN: [`tdes`] and [`aes`] do both.
//!
//! DUKPT is a key-derivation scheme over block-cipher operations; the block operations come
//! from RustCrypto through [`crate::block_cipher`], this module only arranges them and the XORs
//! and shifts between them as the standards lay out.

pub mod aes;
mod initial_key;
mod ksn;
pub mod tdes;

pub use initial_key::InitialKeyIdentity;
pub use ksn::{AesKsn, InitialKeyId, Ksn, KsnError, TdesKsn};

use crate::key::{KeyAlgorithm, KeyError};

/// Why a DUKPT key could not be derived. Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DukptError {
    #[error(
        "transaction counter {counter:#X} has {ones} one-bits; {standard} allows at most {limit}"
    )]
    TooManyOneBits {
        counter: u32,
        ones: u32,
        limit: u32,
        standard: &'static str,
    },
    #[error("transaction counter 0 is the initial key's, never a transaction's")]
    CounterZero,
    #[error("{role} must be {expected}, not {found}")]
    WrongAlgorithm {
        role: &'static str,
        expected: &'static str,
        found: KeyAlgorithm,
    },
    #[error(
        "{derived} cannot be derived from {from}: the derived key would be stronger than the key it comes from"
    )]
    StrongerThanSource {
        derived: KeyAlgorithm,
        from: KeyAlgorithm,
    },
    #[error(transparent)]
    Ksn(#[from] KsnError),
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// Refuses a transaction counter that is 0 or has more than `limit` one-bits.
fn check_counter(counter: u32, limit: u32, standard: &'static str) -> Result<(), DukptError> {
    if counter == 0 {
        return Err(DukptError::CounterZero);
    }
    let ones = counter.count_ones();
    if ones > limit {
        return Err(DukptError::TooManyOneBits {
            counter,
            ones,
            limit,
            standard,
        });
    }
    Ok(())
}

/// Refuses a key of another algorithm than `allowed` names, for the `role` it plays.
fn require_algorithm(
    role: &'static str,
    key_algorithm: KeyAlgorithm,
    allowed: &[KeyAlgorithm],
    expected: &'static str,
) -> Result<(), DukptError> {
    if allowed.contains(&key_algorithm) {
        Ok(())
    } else {
        Err(DukptError::WrongAlgorithm {
            role,
            expected,
            found: key_algorithm,
        })
    }
}

/// XORs `mask` into `bytes`, byte by byte.
fn xor_in_place(bytes: &mut [u8], mask: &[u8]) {
    for (byte, mask) in bytes.iter_mut().zip(mask) {
        *byte ^= mask;
    }
}
