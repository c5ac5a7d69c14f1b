//! One block-cipher engine over TDES and AES keys: single blocks, CBC, CBC-MAC and CMAC, dispatched by key algorithm.

use aes::{Aes128, Aes192, Aes256};
use cbc::cipher::{
    Array, BlockCipherDecrypt, BlockCipherEncrypt, BlockModeDecrypt, BlockModeEncrypt,
    BlockSizeUser, InnerIvInit, KeyInit,
};
use cmac::{Cmac, Mac};
use des::{TdesEde2, TdesEde3};

use crate::key::{KeyAlgorithm, SecretKey};

/// A keyed cipher; key schedules zeroize on drop (the `zeroize` feature of `cipher`).
#[derive(Clone)]
pub(crate) enum BlockCipher {
    Tdes2(TdesEde2),
    Tdes3(TdesEde3),
    Aes128(Aes128),
    Aes192(Aes192),
    Aes256(Aes256),
}

/// Runs the same generic body for whichever cipher the engine holds.
macro_rules! with_cipher {
    ($engine:expr, $cipher:ident => $body:expr) => {
        match $engine {
            BlockCipher::Tdes2($cipher) => $body,
            BlockCipher::Tdes3($cipher) => $body,
            BlockCipher::Aes128($cipher) => $body,
            BlockCipher::Aes192($cipher) => $body,
            BlockCipher::Aes256($cipher) => $body,
        }
    };
}

fn keyed<C: KeyInit>(key: &SecretKey) -> C {
    // The key's length was checked against its algorithm when the SecretKey was made, and
    // every algorithm maps to the cipher of exactly that key length.
    #[allow(clippy::expect_used)]
    C::new_from_slice(key.expose_secret_bytes()).expect("SecretKey length matches its algorithm")
}

impl BlockCipher {
    pub(crate) fn new(key: &SecretKey) -> Self {
        match key.algorithm() {
            KeyAlgorithm::Tdes2Key => BlockCipher::Tdes2(keyed(key)),
            KeyAlgorithm::Tdes3Key => BlockCipher::Tdes3(keyed(key)),
            KeyAlgorithm::Aes128 => BlockCipher::Aes128(keyed(key)),
            KeyAlgorithm::Aes192 => BlockCipher::Aes192(keyed(key)),
            KeyAlgorithm::Aes256 => BlockCipher::Aes256(keyed(key)),
        }
    }

    pub(crate) fn block_size(&self) -> usize {
        match self {
            BlockCipher::Tdes2(_) | BlockCipher::Tdes3(_) => 8,
            BlockCipher::Aes128(_) | BlockCipher::Aes192(_) | BlockCipher::Aes256(_) => 16,
        }
    }

    /// Encrypts one block in place. `block` must be exactly one block long.
    pub(crate) fn encrypt_block(&self, block: &mut [u8]) {
        with_cipher!(self, cipher => {
            if let Some(array) = Array::slice_as_mut_array(block) {
                cipher.encrypt_block(array);
            }
        })
    }

    /// Decrypts one block in place. `block` must be exactly one block long.
    pub(crate) fn decrypt_block(&self, block: &mut [u8]) {
        with_cipher!(self, cipher => {
            if let Some(array) = Array::slice_as_mut_array(block) {
                cipher.decrypt_block(array);
            }
        })
    }

    /// CBC-encrypts whole blocks in place; any partial trailing block is left alone, so
    /// callers pass block-aligned data (TR-31 lengths always are).
    pub(crate) fn cbc_encrypt(&self, iv: &[u8], data: &mut [u8]) {
        with_cipher!(self, cipher => cbc_encrypt_with(cipher, iv, data))
    }

    /// CBC-decrypts whole blocks in place.
    pub(crate) fn cbc_decrypt(&self, iv: &[u8], data: &mut [u8]) {
        with_cipher!(self, cipher => cbc_decrypt_with(cipher, iv, data))
    }

    /// Plain CBC-MAC with a zero IV over block-aligned data (ISO 9797-1 MAC algorithm 1,
    /// padding method 1 being a no-op on aligned input): the last cipher block.
    pub(crate) fn cbc_mac(&self, data: &[u8]) -> Vec<u8> {
        let block_size = self.block_size();
        let mut chained = vec![0u8; block_size];
        for chunk in data.chunks(block_size) {
            for (state, byte) in chained.iter_mut().zip(chunk) {
                *state ^= byte;
            }
            self.encrypt_block(&mut chained);
        }
        chained
    }

    /// CMAC (NIST SP 800-38B) over the concatenation of `parts`.
    pub(crate) fn cmac(&self, parts: &[&[u8]]) -> Vec<u8> {
        with_cipher!(self, cipher => cmac_with(cipher.clone(), parts))
    }

    /// A CMAC computation that has taken in `prefix`, to be finished (any number of times)
    /// with different rest: `self.cmac_after(p).finish(r) == self.cmac(&[p, r])`.
    pub(crate) fn cmac_after(&self, prefix: &[u8]) -> CmacPrefix {
        match self {
            BlockCipher::Tdes2(cipher) => CmacPrefix::Tdes2(cmac_started(cipher.clone(), prefix)),
            BlockCipher::Tdes3(cipher) => CmacPrefix::Tdes3(cmac_started(cipher.clone(), prefix)),
            BlockCipher::Aes128(cipher) => CmacPrefix::Aes128(cmac_started(cipher.clone(), prefix)),
            BlockCipher::Aes192(cipher) => CmacPrefix::Aes192(cmac_started(cipher.clone(), prefix)),
            BlockCipher::Aes256(cipher) => CmacPrefix::Aes256(cmac_started(cipher.clone(), prefix)),
        }
    }
}

/// A CMAC state after a fixed prefix (a key block header shared by many blocks): finishing
/// it costs only the blocks of the rest. Holds a copy of the key schedule, which zeroizes on
/// drop; no Debug.
#[derive(Clone)]
pub(crate) enum CmacPrefix {
    Tdes2(Cmac<TdesEde2>),
    Tdes3(Cmac<TdesEde3>),
    Aes128(Cmac<Aes128>),
    Aes192(Cmac<Aes192>),
    Aes256(Cmac<Aes256>),
}

impl CmacPrefix {
    /// The CMAC over the prefix followed by `rest`; the prefix's state is kept for the next.
    pub(crate) fn finish(&self, rest: &[u8]) -> Vec<u8> {
        match self {
            CmacPrefix::Tdes2(mac) => cmac_finished(mac.clone(), rest),
            CmacPrefix::Tdes3(mac) => cmac_finished(mac.clone(), rest),
            CmacPrefix::Aes128(mac) => cmac_finished(mac.clone(), rest),
            CmacPrefix::Aes192(mac) => cmac_finished(mac.clone(), rest),
            CmacPrefix::Aes256(mac) => cmac_finished(mac.clone(), rest),
        }
    }
}

fn cmac_started<C>(cipher: C, prefix: &[u8]) -> Cmac<C>
where
    C: cmac::block_api::CmacCipher,
{
    let mut mac = <Cmac<C> as cmac::digest::InnerInit>::inner_init(cipher);
    mac.update(prefix);
    mac
}

fn cmac_finished<C>(mut mac: Cmac<C>, rest: &[u8]) -> Vec<u8>
where
    C: cmac::block_api::CmacCipher,
{
    mac.update(rest);
    mac.finalize().into_bytes().to_vec()
}

/// Single DES (FIPS 46-3) on one block with an 8-byte key: only the TDES DUKPT
/// non-reversible key generation process (ANSI X9.24-1-2009 A.2) uses it, on half keys.
/// The key schedule zeroizes on drop (the `zeroize` feature of `cipher`).
pub(crate) fn des_encrypt_block(key: &[u8; 8], block: &mut [u8; 8]) {
    let cipher = des::Des::new(key.into());
    cipher.encrypt_block(block.into());
}

fn cbc_encrypt_with<C>(cipher: &C, iv: &[u8], data: &mut [u8])
where
    C: BlockCipherEncrypt + BlockSizeUser + Clone,
{
    if let Ok(mut mode) = cbc::Encryptor::<C>::inner_iv_slice_init(cipher.clone(), iv) {
        let (blocks, _) = Array::slice_as_chunks_mut(data);
        mode.encrypt_blocks(blocks);
    }
}

fn cbc_decrypt_with<C>(cipher: &C, iv: &[u8], data: &mut [u8])
where
    C: BlockCipherDecrypt + BlockSizeUser + Clone,
{
    if let Ok(mut mode) = cbc::Decryptor::<C>::inner_iv_slice_init(cipher.clone(), iv) {
        let (blocks, _) = Array::slice_as_chunks_mut(data);
        mode.decrypt_blocks(blocks);
    }
}

fn cmac_with<C>(cipher: C, parts: &[&[u8]]) -> Vec<u8>
where
    C: cmac::block_api::CmacCipher,
{
    let mut mac = <Cmac<C> as cmac::digest::InnerInit>::inner_init(cipher);
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmac_after_a_prefix_equals_cmac_over_the_whole() {
        let algorithms = [
            KeyAlgorithm::Tdes2Key,
            KeyAlgorithm::Tdes3Key,
            KeyAlgorithm::Aes128,
            KeyAlgorithm::Aes192,
            KeyAlgorithm::Aes256,
        ];
        let data: Vec<u8> = (0..80u8).collect();
        for algorithm in algorithms {
            let cipher = BlockCipher::new(&SecretKey::generate(algorithm).unwrap());
            // Prefixes and rests shorter than, equal to and longer than a block, aligned or
            // not, and the same prefix state finished several times.
            for prefix_length in [0, 1, 7, 8, 15, 16, 17, 24, 32, 40] {
                let (prefix, tail) = data.split_at(prefix_length);
                let state = cipher.cmac_after(prefix);
                for rest_length in [0, 1, 8, 16, 31, 32, 40] {
                    let rest = &tail[..rest_length];
                    assert_eq!(
                        state.finish(rest),
                        cipher.cmac(&[prefix, rest]),
                        "{algorithm} prefix {prefix_length} rest {rest_length}"
                    );
                }
            }
        }
    }
}
