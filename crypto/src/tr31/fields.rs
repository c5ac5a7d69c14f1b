//! The typed values of the fixed key block header fields: version, key usage, algorithm, mode of use, key version and exportability.

use std::fmt;

use crate::key::KeyFamily;

/// Key block version ID (header character 1): decides the binding method and the ciphers.
pub use keymother_domain::Tr31Version as Version;

/// Key usage (header characters 6-7), ANSI X9.143 table 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyUsage {
    /// B0: base derivation key (BDK).
    BaseDerivationKey,
    /// B1: initial DUKPT key (IK / IPEK).
    DukptInitialKey,
    /// B2: base key variant key (deprecated).
    BaseKeyVariantKey,
    /// B3: key derivation key (non ANSI X9.24).
    KeyDerivationKey,
    /// C0: card verification key (CVK).
    CardVerificationKey,
    /// D0: symmetric key for data encryption.
    DataEncryption,
    /// D1: asymmetric key for data encryption.
    AsymmetricDataEncryption,
    /// D2: data encryption key for a decimalization table.
    DecimalizationTable,
    /// D3: data encryption key for sensitive data.
    SensitiveDataEncryption,
    /// E0: EMV/chip issuer master key, application cryptograms.
    EmvApplicationCryptograms,
    /// E1: EMV/chip issuer master key, secure messaging for confidentiality.
    EmvSecureMessagingConfidentiality,
    /// E2: EMV/chip issuer master key, secure messaging for integrity.
    EmvSecureMessagingIntegrity,
    /// E3: EMV/chip issuer master key, data authentication code.
    EmvDataAuthenticationCode,
    /// E4: EMV/chip issuer master key, dynamic numbers.
    EmvDynamicNumbers,
    /// E5: EMV/chip issuer master key, card personalization.
    EmvCardPersonalization,
    /// E6: EMV/chip issuer master key, other.
    EmvOther,
    /// E7: EMV/chip asymmetric key pair for PIN encryption.
    EmvAsymmetricPinEncryption,
    /// I0: initialization vector.
    InitializationVector,
    /// K0: key encryption or wrapping key.
    KeyEncryption,
    /// K1: TR-31 key block protection key.
    KeyBlockProtection,
    /// K2: TR-34 asymmetric key pair for a key receiving device.
    Tr34AsymmetricKeyPair,
    /// K3: asymmetric key pair for key wrapping or key agreement.
    AsymmetricKeyAgreement,
    /// K4: ISO 20038 key block protection key.
    Iso20038KeyBlockProtection,
    /// M0: ISO 16609 MAC algorithm 1 (TDES).
    Iso16609Mac,
    /// M1: ISO 9797-1 MAC algorithm 1 (CBC-MAC).
    Iso9797Mac1,
    /// M2: ISO 9797-1 MAC algorithm 2.
    Iso9797Mac2,
    /// M3: ISO 9797-1 MAC algorithm 3 (retail MAC).
    Iso9797Mac3,
    /// M4: ISO 9797-1 MAC algorithm 4.
    Iso9797Mac4,
    /// M5: ISO 9797-1:1999 MAC algorithm 5 (legacy).
    Iso9797Mac5,
    /// M6: ISO 9797-1:2011 MAC algorithm 5 (CMAC).
    Cmac,
    /// M7: HMAC key.
    Hmac,
    /// M8: ISO 9797-1 MAC algorithm 6.
    Iso9797Mac6,
    /// P0: PIN encryption key.
    PinEncryption,
    /// P1: PIN generation key.
    PinGeneration,
    /// S0: asymmetric key pair for digital signature.
    AsymmetricSignature,
    /// S1: asymmetric key pair, CA key.
    AsymmetricCertificateAuthority,
    /// S2: asymmetric key pair, non-X9.24 key.
    AsymmetricOther,
    /// V0: PIN verification key, other algorithm.
    PinVerification,
    /// V1: PIN verification key, IBM 3624.
    PinVerificationIbm3624,
    /// V2: PIN verification key, VISA PVV.
    PinVerificationVisaPvv,
    /// V3: PIN verification key, ANSI X9.132 algorithm 1.
    PinVerificationX9132Algorithm1,
    /// V4: PIN verification key, ANSI X9.132 algorithm 2.
    PinVerificationX9132Algorithm2,
    /// V5: PIN verification key, ANSI X9.132 algorithm 3.
    PinVerificationX9132Algorithm3,
    /// Two decimal digits: a usage reserved for proprietary use (ANSI X9.143 table 2).
    Proprietary([u8; 2]),
}

/// Every standard key usage with its code and description.
const KEY_USAGES: &[(KeyUsage, &str, &str)] = &[
    (
        KeyUsage::BaseDerivationKey,
        "B0",
        "base derivation key (BDK)",
    ),
    (KeyUsage::DukptInitialKey, "B1", "initial DUKPT key"),
    (KeyUsage::BaseKeyVariantKey, "B2", "base key variant key"),
    (KeyUsage::KeyDerivationKey, "B3", "key derivation key"),
    (KeyUsage::CardVerificationKey, "C0", "card verification key"),
    (
        KeyUsage::DataEncryption,
        "D0",
        "symmetric data encryption key",
    ),
    (
        KeyUsage::AsymmetricDataEncryption,
        "D1",
        "asymmetric data encryption key",
    ),
    (
        KeyUsage::DecimalizationTable,
        "D2",
        "decimalization table encryption key",
    ),
    (
        KeyUsage::SensitiveDataEncryption,
        "D3",
        "sensitive data encryption key",
    ),
    (
        KeyUsage::EmvApplicationCryptograms,
        "E0",
        "EMV master key for application cryptograms",
    ),
    (
        KeyUsage::EmvSecureMessagingConfidentiality,
        "E1",
        "EMV master key for secure messaging confidentiality",
    ),
    (
        KeyUsage::EmvSecureMessagingIntegrity,
        "E2",
        "EMV master key for secure messaging integrity",
    ),
    (
        KeyUsage::EmvDataAuthenticationCode,
        "E3",
        "EMV master key for data authentication codes",
    ),
    (
        KeyUsage::EmvDynamicNumbers,
        "E4",
        "EMV master key for dynamic numbers",
    ),
    (
        KeyUsage::EmvCardPersonalization,
        "E5",
        "EMV master key for card personalization",
    ),
    (KeyUsage::EmvOther, "E6", "EMV master key, other"),
    (
        KeyUsage::EmvAsymmetricPinEncryption,
        "E7",
        "EMV asymmetric key pair for PIN encryption",
    ),
    (
        KeyUsage::InitializationVector,
        "I0",
        "initialization vector",
    ),
    (
        KeyUsage::KeyEncryption,
        "K0",
        "key encryption or wrapping key",
    ),
    (
        KeyUsage::KeyBlockProtection,
        "K1",
        "TR-31 key block protection key",
    ),
    (
        KeyUsage::Tr34AsymmetricKeyPair,
        "K2",
        "TR-34 asymmetric key pair",
    ),
    (
        KeyUsage::AsymmetricKeyAgreement,
        "K3",
        "asymmetric key pair for key wrapping or agreement",
    ),
    (
        KeyUsage::Iso20038KeyBlockProtection,
        "K4",
        "ISO 20038 key block protection key",
    ),
    (
        KeyUsage::Iso16609Mac,
        "M0",
        "ISO 16609 MAC key (algorithm 1)",
    ),
    (
        KeyUsage::Iso9797Mac1,
        "M1",
        "ISO 9797-1 MAC algorithm 1 key",
    ),
    (
        KeyUsage::Iso9797Mac2,
        "M2",
        "ISO 9797-1 MAC algorithm 2 key",
    ),
    (
        KeyUsage::Iso9797Mac3,
        "M3",
        "ISO 9797-1 MAC algorithm 3 key (retail MAC)",
    ),
    (
        KeyUsage::Iso9797Mac4,
        "M4",
        "ISO 9797-1 MAC algorithm 4 key",
    ),
    (
        KeyUsage::Iso9797Mac5,
        "M5",
        "ISO 9797-1:1999 MAC algorithm 5 key",
    ),
    (
        KeyUsage::Cmac,
        "M6",
        "CMAC key (ISO 9797-1:2011 MAC algorithm 5)",
    ),
    (KeyUsage::Hmac, "M7", "HMAC key"),
    (
        KeyUsage::Iso9797Mac6,
        "M8",
        "ISO 9797-1 MAC algorithm 6 key",
    ),
    (KeyUsage::PinEncryption, "P0", "PIN encryption key"),
    (KeyUsage::PinGeneration, "P1", "PIN generation key"),
    (
        KeyUsage::AsymmetricSignature,
        "S0",
        "asymmetric key pair for digital signature",
    ),
    (
        KeyUsage::AsymmetricCertificateAuthority,
        "S1",
        "asymmetric key pair of a certificate authority",
    ),
    (
        KeyUsage::AsymmetricOther,
        "S2",
        "asymmetric key pair, non-X9.24 use",
    ),
    (
        KeyUsage::PinVerification,
        "V0",
        "PIN verification key, other algorithm",
    ),
    (
        KeyUsage::PinVerificationIbm3624,
        "V1",
        "PIN verification key, IBM 3624",
    ),
    (
        KeyUsage::PinVerificationVisaPvv,
        "V2",
        "PIN verification key, VISA PVV",
    ),
    (
        KeyUsage::PinVerificationX9132Algorithm1,
        "V3",
        "PIN verification key, ANSI X9.132 algorithm 1",
    ),
    (
        KeyUsage::PinVerificationX9132Algorithm2,
        "V4",
        "PIN verification key, ANSI X9.132 algorithm 2",
    ),
    (
        KeyUsage::PinVerificationX9132Algorithm3,
        "V5",
        "PIN verification key, ANSI X9.132 algorithm 3",
    ),
];

impl KeyUsage {
    /// The key usage with these two header characters.
    pub fn from_code(code: [u8; 2]) -> Option<KeyUsage> {
        if code.iter().all(u8::is_ascii_digit) {
            return Some(KeyUsage::Proprietary(code));
        }
        KEY_USAGES
            .iter()
            .find(|(_, text, _)| text.as_bytes() == code)
            .map(|(usage, _, _)| *usage)
    }

    /// The two header characters.
    pub fn code(&self) -> [u8; 2] {
        match self {
            KeyUsage::Proprietary(code) => *code,
            _ => KEY_USAGES
                .iter()
                .find(|(usage, _, _)| usage == self)
                .map_or([b'?', b'?'], |(_, text, _)| {
                    let bytes = text.as_bytes();
                    [bytes[0], bytes[1]]
                }),
        }
    }

    /// What the usage means.
    pub fn description(&self) -> &'static str {
        match self {
            KeyUsage::Proprietary(_) => "proprietary key usage",
            _ => KEY_USAGES
                .iter()
                .find(|(usage, _, _)| usage == self)
                .map_or("", |(_, _, description)| description),
        }
    }
}

impl fmt::Display for KeyUsage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [first, second] = self.code();
        write!(f, "{}{}", char::from(first), char::from(second))
    }
}

/// Algorithm of the wrapped key (header character 8), ANSI X9.143 table 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// A: AES.
    Aes,
    /// D: single DES (keymother refuses to unwrap such keys).
    Des,
    /// E: elliptic curve.
    Ecc,
    /// H: HMAC.
    Hmac,
    /// R: RSA.
    Rsa,
    /// S: DSA.
    Dsa,
    /// T: triple DES.
    Tdes,
}

impl Algorithm {
    /// The header character.
    pub fn code(self) -> char {
        match self {
            Algorithm::Aes => 'A',
            Algorithm::Des => 'D',
            Algorithm::Ecc => 'E',
            Algorithm::Hmac => 'H',
            Algorithm::Rsa => 'R',
            Algorithm::Dsa => 'S',
            Algorithm::Tdes => 'T',
        }
    }

    /// The algorithm with this header character.
    pub fn from_code(code: u8) -> Option<Algorithm> {
        match code {
            b'A' => Some(Algorithm::Aes),
            b'D' => Some(Algorithm::Des),
            b'E' => Some(Algorithm::Ecc),
            b'H' => Some(Algorithm::Hmac),
            b'R' => Some(Algorithm::Rsa),
            b'S' => Some(Algorithm::Dsa),
            b'T' => Some(Algorithm::Tdes),
            _ => None,
        }
    }

    /// The header algorithm of keys of a keymother family.
    pub fn for_family(family: KeyFamily) -> Algorithm {
        match family {
            KeyFamily::Tdes => Algorithm::Tdes,
            KeyFamily::Aes => Algorithm::Aes,
        }
    }

    /// The keymother family of this algorithm, if keymother handles its keys.
    pub fn family(self) -> Option<KeyFamily> {
        match self {
            Algorithm::Tdes => Some(KeyFamily::Tdes),
            Algorithm::Aes => Some(KeyFamily::Aes),
            _ => None,
        }
    }

    /// The algorithm's name.
    pub fn description(self) -> &'static str {
        match self {
            Algorithm::Aes => "AES",
            Algorithm::Des => "DES",
            Algorithm::Ecc => "elliptic curve",
            Algorithm::Hmac => "HMAC",
            Algorithm::Rsa => "RSA",
            Algorithm::Dsa => "DSA",
            Algorithm::Tdes => "TDES",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code())
    }
}

/// Mode of use (header character 9), ANSI X9.143 table 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModeOfUse {
    /// B: encrypt/wrap and decrypt/unwrap.
    EncryptDecrypt,
    /// C: MAC generate and verify.
    MacGenerateVerify,
    /// D: decrypt/unwrap only.
    DecryptOnly,
    /// E: encrypt/wrap only.
    EncryptOnly,
    /// G: MAC generate only.
    MacGenerateOnly,
    /// N: no special restrictions beyond the key usage.
    NoRestrictions,
    /// S: signature only.
    SignatureOnly,
    /// T: both sign and decrypt.
    SignAndDecrypt,
    /// V: verify only.
    VerifyOnly,
    /// X: key derivation.
    KeyDerivation,
    /// Y: create key variants.
    KeyVariants,
}

impl ModeOfUse {
    /// The header character.
    pub fn code(self) -> char {
        match self {
            ModeOfUse::EncryptDecrypt => 'B',
            ModeOfUse::MacGenerateVerify => 'C',
            ModeOfUse::DecryptOnly => 'D',
            ModeOfUse::EncryptOnly => 'E',
            ModeOfUse::MacGenerateOnly => 'G',
            ModeOfUse::NoRestrictions => 'N',
            ModeOfUse::SignatureOnly => 'S',
            ModeOfUse::SignAndDecrypt => 'T',
            ModeOfUse::VerifyOnly => 'V',
            ModeOfUse::KeyDerivation => 'X',
            ModeOfUse::KeyVariants => 'Y',
        }
    }

    /// The mode of use with this header character.
    pub fn from_code(code: u8) -> Option<ModeOfUse> {
        match code {
            b'B' => Some(ModeOfUse::EncryptDecrypt),
            b'C' => Some(ModeOfUse::MacGenerateVerify),
            b'D' => Some(ModeOfUse::DecryptOnly),
            b'E' => Some(ModeOfUse::EncryptOnly),
            b'G' => Some(ModeOfUse::MacGenerateOnly),
            b'N' => Some(ModeOfUse::NoRestrictions),
            b'S' => Some(ModeOfUse::SignatureOnly),
            b'T' => Some(ModeOfUse::SignAndDecrypt),
            b'V' => Some(ModeOfUse::VerifyOnly),
            b'X' => Some(ModeOfUse::KeyDerivation),
            b'Y' => Some(ModeOfUse::KeyVariants),
            _ => None,
        }
    }

    /// What the mode allows.
    pub fn description(self) -> &'static str {
        match self {
            ModeOfUse::EncryptDecrypt => "encrypt and decrypt (wrap and unwrap)",
            ModeOfUse::MacGenerateVerify => "MAC generate and verify",
            ModeOfUse::DecryptOnly => "decrypt / unwrap only",
            ModeOfUse::EncryptOnly => "encrypt / wrap only",
            ModeOfUse::MacGenerateOnly => "MAC generate only",
            ModeOfUse::NoRestrictions => "no special restrictions",
            ModeOfUse::SignatureOnly => "signature only",
            ModeOfUse::SignAndDecrypt => "sign and decrypt",
            ModeOfUse::VerifyOnly => "verify only",
            ModeOfUse::KeyDerivation => "key derivation",
            ModeOfUse::KeyVariants => "create key variants",
        }
    }
}

impl fmt::Display for ModeOfUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code())
    }
}

/// Key version number (header characters 10-11), ANSI X9.143 table 5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyVersion {
    /// "00": key versioning is not used.
    NotUsed,
    /// "c1" to "c9": the block holds key component number 1 to 9.
    Component(u8),
    /// Two letters or digits: the key's version.
    Version([u8; 2]),
}

impl KeyVersion {
    /// Parses the two header characters.
    pub fn from_code(code: [u8; 2]) -> Option<KeyVersion> {
        match code {
            [b'0', b'0'] => Some(KeyVersion::NotUsed),
            [b'c', number @ b'1'..=b'9'] => Some(KeyVersion::Component(number - b'0')),
            [b'c', _] => None,
            _ if code.iter().all(u8::is_ascii_alphanumeric) => Some(KeyVersion::Version(code)),
            _ => None,
        }
    }

    /// The two header characters.
    pub fn code(&self) -> [u8; 2] {
        match self {
            KeyVersion::NotUsed => [b'0', b'0'],
            KeyVersion::Component(number) => [b'c', b'0'.wrapping_add(*number)],
            KeyVersion::Version(code) => *code,
        }
    }
}

impl fmt::Display for KeyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [first, second] = self.code();
        write!(f, "{}{}", char::from(first), char::from(second))
    }
}

/// Exportability (header character 12), ANSI X9.143 table 6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Exportability {
    /// E: exportable under a key-encrypting key in a form meeting ANSI X9.24.
    Exportable,
    /// N: not exportable.
    NonExportable,
    /// S: sensitive; exportable in forms not meeting X9.24 (e.g. ANSI X9.17).
    Sensitive,
}

impl Exportability {
    /// The header character.
    pub fn code(self) -> char {
        match self {
            Exportability::Exportable => 'E',
            Exportability::NonExportable => 'N',
            Exportability::Sensitive => 'S',
        }
    }

    /// What the character means, for people.
    pub fn description(self) -> &'static str {
        match self {
            Exportability::Exportable => "exportable under a trusted key-encryption key",
            Exportability::NonExportable => "not exportable",
            Exportability::Sensitive => "sensitive: exportable in forms not meeting X9.24",
        }
    }

    /// The exportability with this header character.
    pub fn from_code(code: u8) -> Option<Exportability> {
        match code {
            b'E' => Some(Exportability::Exportable),
            b'N' => Some(Exportability::NonExportable),
            b'S' => Some(Exportability::Sensitive),
            _ => None,
        }
    }
}

impl fmt::Display for Exportability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code())
    }
}
