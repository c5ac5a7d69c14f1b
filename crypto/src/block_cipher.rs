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
