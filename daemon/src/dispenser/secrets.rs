//! The secrets in memory: the unsealed KEK and TTK, the trust anchors and the KDH identity, and the ceremonies and reloads that change them.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use keymother_crypto::tr31::{KeyBlockProtectionKey, Version};
use keymother_crypto::{Kcv, SecretKey};
use keymother_pki::{PrivateKey, Role, VerifiedCertificate};
use keymother_vault::{CeremonyRecord, InstalledSecret, SecretName, Vault, VaultError};

use super::Dispenser;
use crate::trust::Trust;

/// The KDH identity in memory.
pub(super) struct LoadedKdh {
    pub(super) key: PrivateKey,
    pub(super) certificate: Vec<u8>,
    pub(super) verified: VerifiedCertificate,
}

/// The unsealed KEK and TTK, ready for use; zeroized when dropped.
pub(super) struct LoadedKeys {
    pub(super) kek: KeyBlockProtectionKey,
    pub(super) ttk: KeyBlockProtectionKey,
    pub(super) ttk_version: Version,
    pub(super) ttk_kcv: Kcv,
}

impl LoadedKeys {
    /// Unseals both keys, or `None` while either is missing (the appliance stays locked).
    pub(super) fn unseal(vault: &Vault) -> Result<Option<LoadedKeys>, VaultError> {
        let (kek, ttk) = match (
            vault.load_secret(SecretName::Kek),
            vault.load_secret(SecretName::Ttk),
        ) {
            (Ok(kek), Ok(ttk)) => (kek, ttk),
            (Err(VaultError::SecretMissing(_)), _) | (_, Err(VaultError::SecretMissing(_))) => {
                return Ok(None);
            }
            (Err(error), _) | (_, Err(error)) => return Err(error),
        };
        let ttk_version = Version::for_protection_key(ttk.algorithm().family());
        Ok(Some(LoadedKeys {
            kek: KeyBlockProtectionKey::new(&kek),
            ttk: KeyBlockProtectionKey::new(&ttk),
            ttk_version,
            ttk_kcv: ttk.kcv(),
        }))
    }
}

impl Dispenser {
    /// A key ceremony: seals `key` as `name` (audited with its custodians; a loaded key is
    /// replaced only when `ceremony` says so) and reloads the keys. After a tamper
    /// the keys are used again only once both ceremonies have been held since; the tamper
    /// must be recorded first. Returns what was installed and whether the appliance is ready.
    pub fn install_secret(
        &self,
        name: SecretName,
        key: &SecretKey,
        ceremony: &CeremonyRecord,
    ) -> Result<(InstalledSecret, bool), VaultError> {
        if let Some(Err(error)) = self.retry_tamper_record() {
            return Err(VaultError::Refused(format!(
                "the tamper could not be recorded yet, so no ceremony can follow it: {error}"
            )));
        }
        let installed = self.vault().install_secret(name, key, ceremony)?;
        self.tamper_answered_by(name);
        let ready = self.reload_keys()?;
        Ok((installed, ready))
    }

    /// Re-reads the sealed keys after a ceremony (or a zeroize).
    pub fn reload_keys(&self) -> Result<bool, VaultError> {
        // On any failure the appliance locks: keys that cannot be re-read are not kept; after
        // a tamper they stay unloaded until both ceremonies have been held again.
        let keys = if self.tampered().is_some() {
            Ok(None)
        } else {
            LoadedKeys::unseal(&self.vault())
        };
        let ready = matches!(keys, Ok(Some(_)));
        let (keys, outcome) = match keys {
            Ok(keys) => (keys, Ok(ready)),
            Err(error) => (None, Err(error)),
        };
        self.set_keys(keys);
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.touch();
        outcome
    }

    /// The TTK's check value, announced to terminals so a wrong TTK shows before any key
    /// flows; `None` while the appliance is locked.
    pub fn ttk_kcv(&self) -> Option<Kcv> {
        self.keys().as_ref().map(|keys| keys.ttk_kcv)
    }

    /// Changes whenever the loaded keys change.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Sets the trust anchors certificate mode checks against (at start, from the settings),
    /// and loads the KDH identity against them.
    pub fn set_trust(&self, trust: Option<Trust>) {
        self.set_trust_anchors(trust.map(Arc::new));
        self.reload_kdh();
    }

    /// Re-reads the KDH identity (after a KDH command or a zeroize). Certificate mode is
    /// offered only with a KDH certificate that verifies against the KDH CA now.
    pub fn reload_kdh(&self) {
        let trust = self.trust();
        let loaded = match (trust, self.vault().load_kdh()) {
            (Some(trust), Ok(Some(identity))) => {
                match trust.anchors.verify(
                    Role::KeyDistributionHost,
                    &identity.certificate,
                    keymother_vault::clock::now(),
                    None,
                ) {
                    Ok(verified) => Some(Arc::new(LoadedKdh {
                        key: identity.key,
                        certificate: identity.certificate,
                        verified,
                    })),
                    Err(error) => {
                        log::warn!(
                            event = "kdh-certificate-refused";
                            "certificate mode is off: the installed KDH certificate does not verify: {error}"
                        );
                        None
                    }
                }
            }
            (_, Ok(_)) => None,
            (_, Err(error)) => {
                log::warn!(event = "kdh-unavailable"; "certificate mode is off: {error}");
                None
            }
        };
        self.set_kdh(loaded);
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.touch();
    }

    /// The KDH certificate (DER) offered in certificate mode; empty while the appliance has
    /// none (or its validity has ended), so certificate mode is not chosen.
    pub fn kdh_certificate(&self) -> Vec<u8> {
        match self.kdh() {
            Some(kdh) if kdh.verified.not_after() > keymother_vault::clock::now() => {
                kdh.certificate.clone()
            }
            _ => Vec::new(),
        }
    }

    /// The TR-34 KDH credential token WELCOME carries in certificate mode (PROTOCOL.md 9.1.2):
    /// the KDH certificate and the KDH CA's CRL when one is configured. Empty while
    /// [`Dispenser::kdh_certificate`] is, or should the token not build (then logged), so
    /// certificate mode is not chosen.
    pub fn kdh_credential_token(&self) -> Vec<u8> {
        let certificate = self.kdh_certificate();
        if certificate.is_empty() {
            return certificate;
        }
        let crl = self
            .trust()
            .map(|trust| trust.kdh_crl.clone())
            .unwrap_or_default();
        keymother_pki::tr34::kdh_credential_token(&certificate, &crl).unwrap_or_else(|error| {
            log::error!(event = "certificate-mode"; "the KDH credential token cannot be made ({error}); certificate mode is not offered");
            Vec::new()
        })
    }
}
