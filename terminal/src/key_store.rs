//! The software key store: holds the TTK, the certificate-mode identity and the installed master key, as a PIN pad's secure memory would.
//!
//! With a store file ([`SoftwareKeyStore::with_store_file`]) the installed keys and their
//! confirmation outlive the process, as a PIN pad's do across a power cut: [`inject`]
//! saves after every change, before the appliance hears of it.
//!
//! [`inject`]: crate::inject

use keymother_crypto::dukpt::InitialKeyIdentity;
use keymother_crypto::tr31::KeyBlockProtectionKey;
use keymother_crypto::{Kcv, SecretKey};
use keymother_protocol::{Capabilities, CertificateDelivery, HeldDukptKey, InstallRefusal};

use std::path::Path;

use crate::certificate::CertificateIdentity;
use crate::dukpt_keys::DukptKey;
use crate::modes::{self, Delivered};
use crate::store_file::{StoreFile, StoreFileError};

/// A terminal's keys. Zeroized on drop; no Debug.
pub struct SoftwareKeyStore {
    transport_key: KeyBlockProtectionKey,
    transport_key_kcv: Kcv,
    master_key: Option<(u32, SecretKey)>,
    /// Whether the appliance confirmed the installed key.
    confirmed: bool,
    /// The device key pair and certificate for certificate mode, if the terminal has them.
    certificate: Option<CertificateIdentity>,
    /// DUKPT initial keys (profile mode), one per slot label.
    dukpt: Vec<DukptKey>,
    /// Where the keys are kept between runs, if anywhere.
    file: Option<StoreFile>,
    /// The capability flags this terminal announces in HELLO (every defined one by default:
    /// the software store unwraps TR-31 versions B and D).
    capabilities: Capabilities,
}

impl SoftwareKeyStore {
    /// A key store loaded with the terminal transport key (TTK).
    pub fn new(transport_key: &SecretKey) -> SoftwareKeyStore {
        SoftwareKeyStore {
            transport_key: KeyBlockProtectionKey::new(transport_key),
            transport_key_kcv: transport_key.kcv(),
            master_key: None,
            confirmed: false,
            certificate: None,
            dukpt: Vec::new(),
            file: None,
            capabilities: Capabilities::DEFINED,
        }
    }

    /// Keeps the keys in `path` between runs, for the terminal `serial`: the keys it holds
    /// are loaded (none if it does not exist yet), and [`SoftwareKeyStore::save`] writes
    /// them back. The file holds the keys in the clear: a TEST terminal's store.
    pub fn with_store_file(
        mut self,
        path: &Path,
        serial: &str,
    ) -> Result<SoftwareKeyStore, StoreFileError> {
        let file = StoreFile::new(path, serial);
        let stored = file.load()?;
        self.master_key = None;
        self.confirmed = false;
        if let Some(master) = stored.master {
            self.master_key = Some((master.key_index, master.key));
            self.confirmed = master.confirmed;
        }
        self.dukpt = stored
            .dukpt
            .into_iter()
            .map(|held| DukptKey::restore(held.label, held.identity, held.key, held.confirmed))
            .collect();
        self.file = Some(file);
        Ok(self)
    }

    /// Writes the keys and their confirmation to the store file, if there is one (atomically,
    /// synced). [`crate::inject`] calls it after every change.
    pub fn save(&self) -> Result<(), StoreFileError> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let master = self
            .master_key
            .as_ref()
            .map(|(index, key)| (*index, key, self.confirmed));
        let dukpt: Vec<_> = self
            .dukpt
            .iter()
            .map(|key| {
                (
                    key.label(),
                    key.identity(),
                    key.initial_key(),
                    key.is_confirmed(),
                )
            })
            .collect();
        file.save(master, &dukpt)
    }

    /// Adds the certificate-mode identity (device key pair, certificate, KDH CA).
    pub fn with_certificate(mut self, identity: CertificateIdentity) -> SoftwareKeyStore {
        self.certificate = Some(identity);
        self
    }

    /// The store announcing `capabilities` in HELLO instead of every defined flag, as a
    /// terminal that cannot unwrap some TR-31 version would (or, flags 0, one that says
    /// nothing); for checking how an appliance treats such terminals.
    pub fn with_capabilities(mut self, capabilities: Capabilities) -> SoftwareKeyStore {
        self.capabilities = capabilities;
        self
    }

    /// The capability flags this terminal announces in HELLO.
    pub fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    /// The certificate-mode identity, if the terminal has one.
    pub fn certificate(&mut self) -> Option<&mut CertificateIdentity> {
        self.certificate.as_mut()
    }

    /// The TTK, for tr31 mode.
    pub(crate) fn transport_key(&self) -> &KeyBlockProtectionKey {
        &self.transport_key
    }

    /// Opens a delivery of whichever mode (see [`crate::modes`]), stores the master key and
    /// returns its check value.
    pub fn install_delivery(
        &mut self,
        delivered: &Delivered<'_>,
    ) -> Result<Vec<u8>, InstallRefusal> {
        let key = modes::open(self, delivered)?;
        let kcv = key.kcv().as_bytes().to_vec();
        self.master_key = Some((delivered.key_index, key));
        self.confirmed = false;
        Ok(kcv)
    }

    /// Opens a certificate-mode delivery (PROTOCOL.md 9.1) and stores the master key; returns
    /// its check value.
    pub fn install_sealed(
        &mut self,
        key_index: u32,
        key_block: &str,
        announced_kcv: &[u8],
        delivery: &CertificateDelivery,
    ) -> Result<Vec<u8>, InstallRefusal> {
        let delivered = Delivered {
            key_index,
            key_block,
            announced_kcv,
            certificate: Some(delivery),
        };
        self.install_delivery(&delivered)
    }

    /// The TTK's check value, compared with the one the appliance announces.
    pub fn transport_key_kcv(&self) -> Kcv {
        self.transport_key_kcv
    }

    /// Unwraps a delivered master key under the TTK (tr31 mode), checks it is a
    /// key-encryption key with the announced check value, stores it, and returns its check
    /// value.
    pub fn install(
        &mut self,
        key_index: u32,
        key_block: &str,
        announced_kcv: &[u8],
    ) -> Result<Vec<u8>, InstallRefusal> {
        let delivered = Delivered {
            key_index,
            key_block,
            announced_kcv,
            certificate: None,
        };
        self.install_delivery(&delivered)
    }

    /// Records that the appliance confirmed the installed key.
    pub fn mark_confirmed(&mut self) {
        self.confirmed = true;
    }

    /// The installed key's index and check value if the appliance has not confirmed it: the
    /// next session confirms it instead of asking for another.
    pub fn unconfirmed(&self) -> Option<(u32, Vec<u8>)> {
        match &self.master_key {
            Some((index, key)) if !self.confirmed => Some((*index, key.kcv().as_bytes().to_vec())),
            _ => None,
        }
    }

    /// The installed master key's index and check value, if any.
    pub fn installed(&self) -> Option<(u32, Kcv)> {
        self.master_key
            .as_ref()
            .map(|(index, key)| (*index, key.kcv()))
    }

    /// Installs a delivered DUKPT initial key under `label`, replacing the one held there:
    /// the block must be usage B1 naming `ksn` (its KS or IK block) with the announced check
    /// value. Returns the key's check value.
    pub fn install_dukpt(
        &mut self,
        label: &str,
        ksn: &[u8],
        key_block: &str,
        announced_kcv: &[u8],
    ) -> Result<Vec<u8>, InstallRefusal> {
        let identity = InitialKeyIdentity::from_bytes(ksn)
            .map_err(|error| InstallRefusal::DoesNotUnwrap(error.to_string()))?;
        let key = DukptKey::open(
            &self.transport_key,
            label,
            identity,
            key_block,
            announced_kcv,
        )?;
        let kcv = key.kcv().as_bytes().to_vec();
        self.dukpt.retain(|held| held.label() != label);
        self.dukpt.push(key);
        Ok(kcv)
    }

    /// Records that the appliance confirmed every key of the profile: the master key (if
    /// any) and every DUKPT key held.
    pub fn mark_profile_confirmed(&mut self) {
        if self.master_key.is_some() {
            self.confirmed = true;
        }
        for key in &mut self.dukpt {
            key.mark_confirmed();
        }
    }

    /// The DUKPT keys installed and not yet confirmed: the next session confirms them rather
    /// than asking for new ones (PROTOCOL.md 9.2).
    pub fn unconfirmed_dukpt(&self) -> Vec<HeldDukptKey> {
        self.dukpt
            .iter()
            .filter(|key| !key.is_confirmed())
            .map(|key| HeldDukptKey {
                label: key.label().to_owned(),
                ksn: key.identity().to_bytes(),
                kcv: key.kcv().as_bytes().to_vec(),
            })
            .collect()
    }

    /// The DUKPT key held under `label`.
    pub fn dukpt_key(&self, label: &str) -> Option<&DukptKey> {
        self.dukpt.iter().find(|key| key.label() == label)
    }

    /// Every DUKPT key held.
    pub fn dukpt_keys(&self) -> &[DukptKey] {
        &self.dukpt
    }
}
