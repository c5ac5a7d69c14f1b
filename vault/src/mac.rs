//! MAC keys derived with SP 800-108 (CMAC PRF) and HMAC-SHA-256 under them: the audit head's MAC, the SMN, DUKPT and reconciliation exports' seals, and sealed expected-device lists.

use hmac::{Hmac, KeyInit, Mac};
use keymother_crypto::SecretKey;
use keymother_crypto::kdf::{counter_mode_cmac, labelled_fixed_input};
use sha2::Sha256;
use zeroize::Zeroizing;

/// Label of the audit head's MAC key, derived from the device storage key.
pub(crate) const AUDIT_HEAD_LABEL: &[u8] = b"KEYMOTHER-AUDIT-HEAD/1";
/// Label of the SMN export's seal key, derived from the KEK (docs/SMN-EXPORT.md).
pub(crate) const SMN_EXPORT_SEAL_LABEL: &[u8] = b"KEYMOTHER-SMN-EXPORT-SEAL/1";
/// Label of the DUKPT export's seal key, derived from the KEK (docs/SMN-EXPORT.md): its own,
/// so an SMN export's seal can never pass for a DUKPT export's or the other way round.
pub(crate) const DUKPT_EXPORT_SEAL_LABEL: &[u8] = b"KEYMOTHER-DUKPT-EXPORT-SEAL/1";
/// Label of a sealed expected-device list's seal key, derived from the KEK
/// (keyfiles/FORMAT.md, "Expected-device lists").
pub(crate) const EXPECTED_LIST_SEAL_LABEL: &[u8] = b"KEYMOTHER-EXPECTED-DEVICES-SEAL/1";
/// Label of the reconciliation export's seal key, derived from the KEK (docs/SMN-EXPORT.md).
pub(crate) const RECONCILE_EXPORT_SEAL_LABEL: &[u8] = b"KEYMOTHER-RECONCILE-EXPORT-SEAL/1";

const MAC_KEY_LENGTH: usize = 32;

/// A 32-byte HMAC-SHA-256 key derived for one purpose. Zeroized on drop; no Debug.
pub(crate) struct MacKey {
    key: Zeroizing<Vec<u8>>,
}

impl MacKey {
    /// Derives the key for `label` from `parent`: SP 800-108 counter mode, CMAC PRF, fixed
    /// input `label || 0x00 || || 0x0100`, as the key-file seal does.
    pub(crate) fn derive(parent: &SecretKey, label: &[u8]) -> MacKey {
        let fixed = labelled_fixed_input(label, b"", MAC_KEY_LENGTH);
        MacKey {
            key: counter_mode_cmac(parent, &fixed, MAC_KEY_LENGTH),
        }
    }

    /// A copy of this key for a second connection that appends to the same chain (the
    /// importer's, import.rs); zeroized on drop like the original.
    pub(crate) fn duplicate(&self) -> MacKey {
        MacKey {
            key: Zeroizing::new(self.key.to_vec()),
        }
    }

    /// A fresh HMAC computation under this key.
    pub(crate) fn start(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length, so this cannot fail.
        <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"))
    }
}

/// Checks a MAC written as hex (either case) in constant time.
pub(crate) fn verify_hex(mac: Hmac<Sha256>, expected_hex: &str) -> bool {
    match hex::decode(expected_hex) {
        Ok(expected) => mac.verify_slice(&expected).is_ok(),
        Err(_) => false,
    }
}
