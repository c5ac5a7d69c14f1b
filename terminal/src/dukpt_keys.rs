//! The reference terminal's DUKPT keys, as a PIN pad keeps them: each initial key with its identity, and what the pad derives from it (a transaction's keys, a test PIN block).

use keymother_crypto::dukpt::{
    AesKsn, DukptError, InitialKeyIdentity, Ksn, aes::AesKeyUsage, aes::derive_transaction_key,
    aes::derive_working_key, tdes, tdes::TdesKeyVariant,
};
use keymother_crypto::pin_block::{self, Pan, Pin, PinBlockError};
use keymother_crypto::tr31::KeyBlockProtectionKey;
use keymother_crypto::{Kcv, SecretKey};
use keymother_protocol::InstallRefusal;

/// One installed DUKPT initial key. Zeroized on drop; no Debug.
pub struct DukptKey {
    label: String,
    identity: InitialKeyIdentity,
    initial_key: SecretKey,
    confirmed: bool,
}

/// Why a test PIN block could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TestPinError {
    #[error("no DUKPT key named {0:?} is installed")]
    NoSuchKey(String),
    #[error(transparent)]
    Dukpt(#[from] DukptError),
    #[error(transparent)]
    PinBlock(#[from] PinBlockError),
}

impl DukptKey {
    /// Opens a delivered initial key: the block unwraps under the TTK, is usage B1 with this
    /// identity's KS or IK block, and has the announced check value.
    pub fn open(
        transport_key: &KeyBlockProtectionKey,
        label: &str,
        identity: InitialKeyIdentity,
        key_block: &str,
        announced_kcv: &[u8],
    ) -> Result<DukptKey, InstallRefusal> {
        let unwrapped = transport_key
            .unwrap(key_block)
            .map_err(|error| InstallRefusal::DoesNotUnwrap(error.to_string()))?;
        if !identity.matches_header(&unwrapped.header) {
            return Err(InstallRefusal::DoesNotUnwrap(format!(
                "the block is not initial DUKPT key {identity} (usage B1, mode of use X, its KS or IK block)"
            )));
        }
        if unwrapped.key.kcv().as_bytes() != announced_kcv {
            return Err(InstallRefusal::KcvMismatch);
        }
        Ok(DukptKey {
            label: label.to_owned(),
            identity,
            initial_key: unwrapped.key,
            confirmed: false,
        })
    }

    /// A key as a store file kept it.
    pub(crate) fn restore(
        label: String,
        identity: InitialKeyIdentity,
        initial_key: SecretKey,
        confirmed: bool,
    ) -> DukptKey {
        DukptKey {
            label,
            identity,
            initial_key,
            confirmed,
        }
    }

    /// The initial key itself, for the store file.
    pub(crate) fn initial_key(&self) -> &SecretKey {
        &self.initial_key
    }

    /// The slot's name (the BDK's name on the appliance).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The initial KSN or initial key ID.
    pub fn identity(&self) -> InitialKeyIdentity {
        self.identity
    }

    /// The initial key's check value.
    pub fn kcv(&self) -> Kcv {
        self.initial_key.kcv()
    }

    /// Whether the appliance confirmed this key.
    pub fn is_confirmed(&self) -> bool {
        self.confirmed
    }

    /// Records that the appliance confirmed this key.
    pub fn mark_confirmed(&mut self) {
        self.confirmed = true;
    }

    /// The KSN of transaction `counter`.
    pub fn ksn(&self, counter: u32) -> Result<Ksn, DukptError> {
        Ok(match self.identity {
            InitialKeyIdentity::Tdes(initial) => Ksn::Tdes(initial.with_counter(counter)?),
            InitialKeyIdentity::Aes(key_id) => Ksn::Aes(AesKsn::new(key_id, counter)),
        })
    }

    /// The transaction key of `counter`, as the pad's future key register holds it.
    pub fn transaction_key(&self, counter: u32) -> Result<SecretKey, DukptError> {
        match self.ksn(counter)? {
            Ksn::Tdes(ksn) => tdes::derive_transaction_key(&self.initial_key, &ksn),
            Ksn::Aes(ksn) => derive_transaction_key(&self.initial_key, &ksn),
        }
    }

    /// The PIN encryption key of `counter` (AES: of the initial key's type).
    pub fn pin_key(&self, counter: u32) -> Result<SecretKey, DukptError> {
        let transaction_key = self.transaction_key(counter)?;
        match self.ksn(counter)? {
            Ksn::Tdes(_) => tdes::derive_working_key(&transaction_key, TdesKeyVariant::Pin),
            Ksn::Aes(ksn) => derive_working_key(
                &transaction_key,
                &ksn,
                AesKeyUsage::PinEncryption,
                self.initial_key.algorithm(),
            ),
        }
    }

    /// A test PIN block for transaction `counter`: ISO format 0 under a TDES PIN key, format 4
    /// under an AES PIN key; with the KSN a host needs to decrypt it.
    pub fn test_pin_block(
        &self,
        counter: u32,
        pin: &Pin,
        pan: &Pan,
    ) -> Result<(Ksn, Vec<u8>), TestPinError> {
        let ksn = self.ksn(counter)?;
        let pin_key = self.pin_key(counter)?;
        let block = match ksn {
            Ksn::Tdes(_) => pin_block::format0_encrypt(&pin_key, pin, pan)?.to_vec(),
            Ksn::Aes(_) => pin_block::format4_encrypt(&pin_key, pin, pan)?.to_vec(),
        };
        Ok((ksn, block))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keymother_crypto::KeyAlgorithm;
    use keymother_crypto::tr31::Version;

    /// X9.24-1-2009 A.4: BDK 0123456789ABCDEFFEDCBA9876543210, KSN FFFF9876543210E00001: the
    /// PIN block of PIN 1234 and PAN 4012345678909 is 1B9C1845EB993A7A.
    #[test]
    fn the_terminal_makes_the_published_tdes_pin_block() {
        let bdk = SecretKey::from_hex(KeyAlgorithm::Tdes2Key, "0123456789ABCDEFFEDCBA9876543210")
            .unwrap();
        let identity = InitialKeyIdentity::Tdes("FFFF9876543210E00000".parse().unwrap());
        let ipek = identity.derive(&bdk, KeyAlgorithm::Tdes2Key).unwrap();
        let ttk_key = SecretKey::from_hex(KeyAlgorithm::Aes128, &"2A".repeat(16)).unwrap();
        let ttk = KeyBlockProtectionKey::new(&ttk_key);
        let block = ttk
            .wrap(
                &identity.key_block_header(Version::D, KeyAlgorithm::Tdes2Key),
                &ipek,
            )
            .unwrap();
        let key = DukptKey::open(&ttk, "PIN", identity, &block, ipek.kcv().as_bytes()).unwrap();
        let pin = Pin::new("1234").unwrap();
        let pan = Pan::new("4012345678909").unwrap();
        let (ksn, pin_block) = key.test_pin_block(1, &pin, &pan).unwrap();
        assert_eq!(ksn.to_string(), "FFFF9876543210E00001");
        assert_eq!(hex::encode_upper(pin_block), "1B9C1845EB993A7A");
        let other = InitialKeyIdentity::Tdes(
            "FFFF9876543212E00000"
                .parse::<keymother_crypto::dukpt::TdesKsn>()
                .unwrap()
                .initial(),
        );
        assert!(DukptKey::open(&ttk, "PIN", other, &block, ipek.kcv().as_bytes()).is_err());
    }
}
