//! tr31 mode on the terminal's side: the master key arrives as a TR-31 block under the terminal transport key (TTK) and must be a key-encryption key with the announced check value.

use keymother_crypto::SecretKey;
use keymother_crypto::tr31::{KeyBlockProtectionKey, KeyUsage};
use keymother_protocol::InstallRefusal;

use super::Delivered;

/// Unwraps the delivered block under the TTK and checks its usage (K0) and check value.
pub(crate) fn open(
    transport_key: &KeyBlockProtectionKey,
    delivered: &Delivered<'_>,
) -> Result<SecretKey, InstallRefusal> {
    let unwrapped = transport_key
        .unwrap(delivered.key_block)
        .map_err(|error| InstallRefusal::DoesNotUnwrap(error.to_string()))?;
    if unwrapped.header.key_usage != KeyUsage::KeyEncryption {
        return Err(InstallRefusal::DoesNotUnwrap(format!(
            "key usage is {}, not K0",
            unwrapped.header.key_usage
        )));
    }
    if unwrapped.key.kcv().as_bytes() != delivered.announced_kcv {
        return Err(InstallRefusal::KcvMismatch);
    }
    Ok(unwrapped.key)
}
