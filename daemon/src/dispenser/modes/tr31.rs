//! TR-31 mode: the master key wrapped under the TTK in a TR-31 key block of the TTK's version, usage K0 (key encryption), decrypt only, not exportable.

use keymother_crypto::KeyFamily;
use keymother_crypto::tr31::{Algorithm, Exportability, Header, KeyUsage, ModeOfUse};
use keymother_protocol::{Delivery, DispenseRefusal};

use super::{ClearKey, Mode};

/// TR-31 mode: nothing to check before the reservation.
struct Tr31;

/// TR-31 mode for one request.
pub(super) fn prepare() -> Result<Box<dyn Mode>, DispenseRefusal> {
    Ok(Box::new(Tr31))
}

impl Mode for Tr31 {
    fn deliver(&self, key: &ClearKey<'_>) -> Result<Delivery, DispenseRefusal> {
        let master_key = key.master_key;
        let algorithm = match master_key.algorithm().family() {
            KeyFamily::Tdes => Algorithm::Tdes,
            KeyFamily::Aes => Algorithm::Aes,
        };
        // For the terminal the master key unwraps working keys: decrypt only, not exportable.
        let header = Header::new(
            key.keys.ttk_version,
            KeyUsage::KeyEncryption,
            algorithm,
            ModeOfUse::DecryptOnly,
            Exportability::NonExportable,
        );
        let key_block = key
            .keys
            .ttk
            .wrap(&header, master_key)
            .map_err(|error| key.refusal("cannot be wrapped under the TTK", &error))?;
        Ok(Delivery {
            key_index: key.key_index.value(),
            key_block,
            kcv: master_key.kcv().as_bytes().to_vec(),
            mode_data: Vec::new(),
        })
    }
}
