//! The file seal: HMAC-SHA-256 under a key derived from the KEK (FORMAT.md, "Seal").

use hmac::{Hmac, KeyInit, Mac};
use keymother_crypto::SecretKey;
use keymother_crypto::kdf::{counter_mode_cmac, labelled_fixed_input};
use sha2::Sha256;
use zeroize::Zeroizing;

/// SP 800-108 label that separates the seal key from every other use of the KEK.
const SEAL_LABEL: &[u8] = b"KEYMOTHER-KEYFILE-SEAL/1";
const SEAL_KEY_LENGTH: usize = 32;

/// The key that seals key files made under one KEK. Zeroized on drop; no Debug.
pub struct SealKey {
    key: Zeroizing<Vec<u8>>,
}

impl SealKey {
    /// Derives the seal key from the KEK.
    pub fn derive(kek: &SecretKey) -> SealKey {
        SealKey::derive_labelled(kek, SEAL_LABEL)
    }

    /// Derives the seal key of another kind of file, told apart by its `label`.
    pub(crate) fn derive_labelled(kek: &SecretKey, label: &[u8]) -> SealKey {
        let fixed = labelled_fixed_input(label, b"", SEAL_KEY_LENGTH);
        SealKey {
            key: counter_mode_cmac(kek, &fixed, SEAL_KEY_LENGTH),
        }
    }

    /// A fresh MAC computation over a file's sealed content.
    pub(crate) fn start(&self) -> Sealing {
        // HMAC takes keys of any length, so this cannot fail.
        let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        Sealing { mac }
    }
}

/// An HMAC in progress over the sealed part of a file.
pub(crate) struct Sealing {
    mac: Hmac<Sha256>,
}

impl Sealing {
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        self.mac.update(bytes);
    }

    /// The seal as written in the file: 64 upper-case hex digits.
    pub(crate) fn finish_hex(self) -> String {
        hex::encode_upper(self.mac.finalize().into_bytes())
    }

    /// Checks a seal in constant time.
    pub(crate) fn verify(self, seal: &[u8]) -> bool {
        self.mac.verify_slice(seal).is_ok()
    }
}
