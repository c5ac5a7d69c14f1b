//! A DUKPT initial key as an injection system hands it out: which one it is (the TDES initial KSN or the AES initial key ID), its derivation from the BDK, and the TR-31 header it travels under (ANSI X9.143: usage B1, KS or IK block).

use std::fmt;

use super::{DukptError, InitialKeyId, KsnError, TdesKsn, aes, tdes};
use crate::key::{KeyAlgorithm, KeyFamily, SecretKey};
use crate::tr31::{Algorithm, Exportability, Header, KeyUsage, ModeOfUse, OptionalBlock, Version};

/// Which initial key: the TDES initial KSN (counter zero) or the AES initial key ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InitialKeyIdentity {
    /// TDES DUKPT (X9.24-1-2009): key set identifier, device ID, counter 0.
    Tdes(TdesKsn),
    /// AES DUKPT (X9.24-3-2017): BDK ID and derivation ID.
    Aes(InitialKeyId),
}

impl InitialKeyIdentity {
    /// The identity of `device_id` under a BDK: TDES with its 40-bit key set identifier, AES
    /// with its 32-bit BDK ID (`bdk_id`), told apart by `family`.
    pub fn for_device(
        family: KeyFamily,
        bdk_id: u64,
        device_id: u32,
    ) -> Result<InitialKeyIdentity, KsnError> {
        match family {
            KeyFamily::Tdes => Ok(InitialKeyIdentity::Tdes(TdesKsn::from_parts(
                bdk_id, device_id, 0,
            )?)),
            KeyFamily::Aes => {
                let bdk_id = u32::try_from(bdk_id).map_err(|_| KsnError::TooWide {
                    what: "BDK ID",
                    value: bdk_id,
                    bits: 32,
                })?;
                Ok(InitialKeyIdentity::Aes(InitialKeyId::from_parts(
                    bdk_id, device_id,
                )))
            }
        }
    }

    /// The bytes as the serial protocol carries them: 10 (TDES) or 8 (AES).
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            InitialKeyIdentity::Tdes(ksn) => ksn.bytes().to_vec(),
            InitialKeyIdentity::Aes(key_id) => key_id.bytes().to_vec(),
        }
    }

    /// The identity these bytes carry, told apart by length (10: TDES, 8: AES).
    pub fn from_bytes(bytes: &[u8]) -> Result<InitialKeyIdentity, KsnError> {
        if let Ok(tdes) = <[u8; 10]>::try_from(bytes) {
            return Ok(InitialKeyIdentity::Tdes(TdesKsn::from_bytes(tdes)));
        }
        match <[u8; 8]>::try_from(bytes) {
            Ok(aes) => Ok(InitialKeyIdentity::Aes(InitialKeyId::from_bytes(aes))),
            Err(_) => Err(KsnError::WrongLength {
                what: "an initial KSN or initial key ID",
                expected: "20 (TDES) or 16 (AES)",
                found: bytes.len() * 2,
            }),
        }
    }

    /// The family of the DUKPT it belongs to (and of its BDK).
    pub fn family(&self) -> KeyFamily {
        match self {
            InitialKeyIdentity::Tdes(_) => KeyFamily::Tdes,
            InitialKeyIdentity::Aes(_) => KeyFamily::Aes,
        }
    }

    /// The initial key of this identity from `bdk`, of `key_type` (TDES DUKPT keys are always
    /// TDES-2KEY; AES DUKPT initial keys are AES, never stronger than the BDK).
    pub fn derive(&self, bdk: &SecretKey, key_type: KeyAlgorithm) -> Result<SecretKey, DukptError> {
        match self {
            InitialKeyIdentity::Tdes(ksn) => {
                if key_type != KeyAlgorithm::Tdes2Key {
                    return Err(DukptError::WrongAlgorithm {
                        role: "a TDES DUKPT initial key",
                        expected: "TDES-2KEY",
                        found: key_type,
                    });
                }
                tdes::derive_initial_key(bdk, ksn)
            }
            InitialKeyIdentity::Aes(key_id) => aes::derive_initial_key(bdk, key_id, key_type),
        }
    }

    /// The optional block that names this initial key in its TR-31 block: KS with the
    /// initial KSN (TDES), IK with the initial key ID (AES; X9.143 gives AES DUKPT no KS).
    pub fn optional_block(&self) -> OptionalBlock {
        match self {
            InitialKeyIdentity::Tdes(ksn) => OptionalBlock::KeySetIdentifier(ksn.bytes().to_vec()),
            InitialKeyIdentity::Aes(key_id) => OptionalBlock::InitialKeyIdentifier(key_id.bytes()),
        }
    }

    /// The header an initial key of `key_type` travels under, in `version`: usage B1 (initial
    /// DUKPT key), mode of use X (key derivation), not exportable, and this identity's block.
    pub fn key_block_header(&self, version: Version, key_type: KeyAlgorithm) -> Header {
        let algorithm = match key_type.family() {
            KeyFamily::Tdes => Algorithm::Tdes,
            KeyFamily::Aes => Algorithm::Aes,
        };
        let mut header = Header::new(
            version,
            KeyUsage::DukptInitialKey,
            algorithm,
            ModeOfUse::KeyDerivation,
            Exportability::NonExportable,
        );
        header.optional_blocks.push(self.optional_block());
        header
    }

    /// Whether a received block's header is one this identity's initial key travels under:
    /// usage B1, mode of use X, and this identity's KS or IK block.
    pub fn matches_header(&self, header: &Header) -> bool {
        let expected = self.optional_block();
        header.key_usage == KeyUsage::DukptInitialKey
            && header.mode_of_use == ModeOfUse::KeyDerivation
            && header.optional_blocks.contains(&expected)
    }
}

impl fmt::Display for InitialKeyIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InitialKeyIdentity::Tdes(ksn) => write!(f, "{ksn}"),
            InitialKeyIdentity::Aes(key_id) => write!(f, "{key_id}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tr31::KeyBlockProtectionKey;

    fn key(algorithm: KeyAlgorithm, hex: &str) -> SecretKey {
        SecretKey::from_hex(algorithm, hex).unwrap()
    }

    /// X9.24-1-2009 A.4: BDK 0123456789ABCDEFFEDCBA9876543210, initial KSN FFFF9876543210E00000,
    /// IPEK 6AC292FAA1315B4D858AB3A3D7D5933A (also in tests/vectors/dukpt_tdes.txt).
    #[test]
    fn a_tdes_initial_key_travels_as_b1_with_its_ksn() {
        let bdk = key(KeyAlgorithm::Tdes2Key, "0123456789ABCDEFFEDCBA9876543210");
        let identity =
            InitialKeyIdentity::for_device(KeyFamily::Tdes, 0xFF_FF98_7654, 0x1_9087).unwrap();
        let ksn: TdesKsn = "FFFF9876543210E00000".parse().unwrap();
        assert_eq!(identity, InitialKeyIdentity::Tdes(ksn));
        assert_eq!(
            InitialKeyIdentity::from_bytes(&identity.to_bytes()),
            Ok(identity)
        );
        let ipek = identity.derive(&bdk, KeyAlgorithm::Tdes2Key).unwrap();
        assert_eq!(
            ipek.kcv(),
            crate::kcv::check_value(&key(
                KeyAlgorithm::Tdes2Key,
                "6AC292FAA1315B4D858AB3A3D7D5933A"
            ))
        );
        let ttk = KeyBlockProtectionKey::new(&key(KeyAlgorithm::Aes256, &"01".repeat(32)));
        let header = identity.key_block_header(Version::D, KeyAlgorithm::Tdes2Key);
        let block = ttk.wrap(&header, &ipek).unwrap();
        let opened = ttk.unwrap(&block).unwrap();
        assert!(identity.matches_header(&opened.header));
        assert_eq!(opened.key.kcv(), ipek.kcv());
        let other = InitialKeyIdentity::for_device(KeyFamily::Tdes, 0xFF_FF98_7654, 8).unwrap();
        assert!(!other.matches_header(&opened.header));
        assert!(identity.derive(&bdk, KeyAlgorithm::Aes128).is_err());
    }

    /// X9.24-3-2017 supplement: AES-128 BDK FEDCBA9876543210F1F1F1F1F1F1F1F1, initial key ID
    /// 1234567890123456, initial key 1273671EA26AC29AFA4D1084127652A1.
    #[test]
    fn an_aes_initial_key_travels_as_b1_with_its_key_id() {
        let bdk = key(KeyAlgorithm::Aes128, "FEDCBA9876543210F1F1F1F1F1F1F1F1");
        let identity =
            InitialKeyIdentity::for_device(KeyFamily::Aes, 0x1234_5678, 0x9012_3456).unwrap();
        assert_eq!(identity.to_string(), "1234567890123456");
        let initial = identity.derive(&bdk, KeyAlgorithm::Aes128).unwrap();
        assert_eq!(
            initial.kcv(),
            crate::kcv::check_value(&key(
                KeyAlgorithm::Aes128,
                "1273671EA26AC29AFA4D1084127652A1"
            ))
        );
        assert!(identity.derive(&bdk, KeyAlgorithm::Aes256).is_err());
        let header = identity.key_block_header(Version::D, KeyAlgorithm::Aes128);
        assert!(identity.matches_header(&header));
        assert!(
            !header
                .optional_blocks
                .iter()
                .any(|block| matches!(block, OptionalBlock::KeySetIdentifier(_)))
        );
        assert!(InitialKeyIdentity::for_device(KeyFamily::Aes, 1 << 32, 1).is_err());
        assert!(InitialKeyIdentity::from_bytes(&[0; 9]).is_err());
    }
}
