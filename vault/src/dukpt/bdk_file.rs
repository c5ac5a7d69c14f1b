//! A BDK imported from the front end's sealed BDK file (keyfiles/FORMAT.md, "BDK files"): opened under the KEK for this appliance, then installed like a ceremony's BDK.

use keymother_keyfiles::{BdkFileError, open_bdk_file};

use super::{BdkSource, BdkStatus, DukptError, NewBdk};
use crate::{SecretName, Vault, VaultError};

/// Why a BDK file was not imported; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum BdkImportError {
    /// The file itself: its line and what was wrong.
    #[error(transparent)]
    File(#[from] BdkFileError),
    #[error(transparent)]
    Dukpt(#[from] DukptError),
    #[error(transparent)]
    Vault(#[from] VaultError),
}

impl Vault {
    /// Opens a BDK file under the KEK (for this appliance's device id, with the KEK's check
    /// value, its seal, a B0 block and its check value) and installs the BDK it carries,
    /// audited as `bdk-loaded` with source `file`. `replace` as for a ceremony.
    pub fn import_bdk_file(
        &mut self,
        bytes: &[u8],
        file_name: &str,
        replace: bool,
        actor: Option<&str>,
    ) -> Result<BdkStatus, BdkImportError> {
        let kek = self.load_secret(SecretName::Kek)?;
        let opened = open_bdk_file(bytes, file_name, &kek, self.device_id())?;
        drop(kek);
        let record = NewBdk {
            name: opened.header.name.clone(),
            bdk_id: opened.header.bdk_id,
            range: opened.header.devices,
            source: BdkSource::File,
            replace,
            ceremony: None,
        };
        Ok(self.install_bdk(&record, &opened.key, actor)?)
    }
}
