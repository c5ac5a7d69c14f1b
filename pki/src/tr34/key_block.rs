//! The enveloped TR-34 key block (B.2.2.2.1): version, idKDH, the clear key and its header; and the header keymother writes.

use keymother_crypto::SecretKey;
use keymother_domain::KeyIndex;

use super::Tr34Error;

/// The enveloped TR-34 key block: the key (zeroizing, no Debug), its header text, idKDH.
pub struct KeyBlock {
    pub(crate) header: String,
    pub(crate) key: SecretKey,
    pub(crate) kdh_issuer: String,
    pub(crate) kdh_serial: Vec<u8>,
}

impl KeyBlock {
    /// The key block header text.
    pub fn header(&self) -> &str {
        &self.header
    }
    /// The clear key.
    pub fn key(&self) -> &SecretKey {
        &self.key
    }
    /// idKDH: the KDH certificate's issuer (RFC 4514 text) and serial number (bytes).
    pub fn kdh_id(&self) -> (&str, &[u8]) {
        (&self.kdh_issuer, &self.kdh_serial)
    }
}

/// The key block header keymother writes for a master key of `algorithm_code` ('T' or 'A')
/// with `key_index`.
pub fn key_block_header(
    algorithm: keymother_crypto::KeyFamily,
    key_index: KeyIndex,
) -> Result<String, Tr34Error> {
    let _ = (algorithm, key_index);
    Err(Tr34Error::NotYetImplemented("key_block_header"))
}
