//! Key check values (ANSI X9.24-1-2017): 3 bytes of TDES(zeros) for TDES, 5 bytes of AES-CMAC(zeros) for AES.

use crate::block_cipher::BlockCipher;
use crate::key::{KeyFamily, SecretKey};

pub use keymother_domain::{Kcv, KcvError};

/// Computes the check value of `key`.
///
/// AES uses the CMAC method of X9.24-1-2017 (CMAC over one zero block), not the legacy
/// ECB-of-zeros method, which leaks one block of known plaintext/ciphertext.
pub fn check_value(key: &SecretKey) -> Kcv {
    let cipher = BlockCipher::new(key);
    let family = key.algorithm().family();
    let mut leading = [0u8; 8];
    match family {
        KeyFamily::Tdes => cipher.encrypt_block(&mut leading),
        KeyFamily::Aes => {
            let mac = cipher.cmac(&[&[0u8; 16]]);
            leading.copy_from_slice(&mac[..8]);
        }
    }
    Kcv::from_leading_bytes(family, leading)
}
