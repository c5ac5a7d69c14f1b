//! The binding methods that tie a key block to its protection key: key derivation (versions B and D) and key variants (versions A and C).

use zeroize::Zeroizing;

use crate::block_cipher::BlockCipher;
use crate::kdf::counter_mode_cmac;
use crate::key::{KeyAlgorithm, SecretKey};

/// The pair of keys a binding method gets from the key-block protection key, as ready ciphers.
pub(crate) struct BindingKeys {
    /// Key block encryption key (KBEK).
    pub(crate) encryption: BlockCipher,
    /// Key block MAC key (KBMK, called KBAK in some texts).
    pub(crate) authentication: BlockCipher,
}

/// Key usage indicator of the derivation data: encryption.
const ENCRYPTION_USAGE: u16 = 0x0000;
/// Key usage indicator of the derivation data: MAC.
const AUTHENTICATION_USAGE: u16 = 0x0001;

/// Derivation binding (versions B and D; ANSI X9.143 7.2 / TR-31:2018 A.4): each key is
/// CMAC(KBPK) over counter || usage || 00 || algorithm || length in bits, with the counter
/// running from 1 until enough bytes are produced.
pub(crate) fn derivation_keys(kbpk: &SecretKey) -> BindingKeys {
    let algorithm = kbpk.algorithm();
    BindingKeys {
        encryption: cipher(algorithm, &derive(kbpk, ENCRYPTION_USAGE)),
        authentication: cipher(algorithm, &derive(kbpk, AUTHENTICATION_USAGE)),
    }
}

/// Variant binding (versions A and C; TR-31:2018 A.3): KBEK = KBPK XOR 45 bytes, KBMK = KBPK
/// XOR 4D bytes. Only TDES protection keys have one.
pub(crate) fn variant_keys(kbpk: &SecretKey) -> BindingKeys {
    let algorithm = kbpk.algorithm();
    let variant = |mask: u8| {
        Zeroizing::new(
            kbpk.expose_secret_bytes()
                .iter()
                .map(|byte| byte ^ mask)
                .collect::<Vec<u8>>(),
        )
    };
    BindingKeys {
        encryption: cipher(algorithm, &variant(0x45)),
        authentication: cipher(algorithm, &variant(0x4D)),
    }
}

/// The key bytes of one derived key: the SP 800-108 counter-mode KDF with CMAC (the same
/// function that derives the key-file seal key, so the published TR-31 vectors check it).
fn derive(kbpk: &SecretKey, usage: u16) -> Zeroizing<Vec<u8>> {
    let algorithm = kbpk.algorithm();
    let algorithm_indicator: u16 = match algorithm {
        KeyAlgorithm::Tdes2Key => 0x0000,
        KeyAlgorithm::Tdes3Key => 0x0001,
        KeyAlgorithm::Aes128 => 0x0002,
        KeyAlgorithm::Aes192 => 0x0003,
        KeyAlgorithm::Aes256 => 0x0004,
    };
    let length = algorithm.key_length();
    let bits = (length * 8) as u16;
    // The counter byte comes first, then: usage || 00 || algorithm || length in bits.
    let mut fixed_input = [0u8; 7];
    fixed_input[..2].copy_from_slice(&usage.to_be_bytes());
    fixed_input[3..5].copy_from_slice(&algorithm_indicator.to_be_bytes());
    fixed_input[5..].copy_from_slice(&bits.to_be_bytes());
    counter_mode_cmac(kbpk, &fixed_input, length)
}

fn cipher(algorithm: KeyAlgorithm, material: &[u8]) -> BlockCipher {
    // Derived and variant keys have exactly the protection key's length by construction.
    #[allow(clippy::expect_used)]
    let key =
        SecretKey::from_bytes(algorithm, material).expect("derived key has the KBPK's length");
    BlockCipher::new(&key)
}
