//! The operator's private key for login ([`LoginKey`]): RSA as [`PrivateKey`] reads it, or ECDSA on P-256 or P-384 from PKCS#8 (clear or encrypted) or SEC1 (`EC PRIVATE KEY`).

use rsa::signature::{SignatureEncoding, Signer};

use crate::keys::{from_info, read_pkcs8};
use crate::public_key::{EC_PUBLIC_KEY, PublicKey};
use crate::{PkiError, PrivateKey};

const PEM_SEC1: &str = "EC PRIVATE KEY";
const BEGIN_EC_PARAMETERS: &[u8] = b"-----BEGIN EC PARAMETERS-----";
const END_EC_PARAMETERS: &[u8] = b"-----END EC PARAMETERS-----";

/// An operator's login key. Like [`PrivateKey`], it zeroizes on drop (the ecdsa crate clears
/// its signing keys) and has neither `Debug` nor `Clone`.
pub enum LoginKey {
    /// RSA: logins are signed with RSASSA-PSS (SHA-256, salt 32).
    Rsa(PrivateKey),
    /// ECDSA on P-256: logins are signed with SHA-256.
    P256(p256::ecdsa::SigningKey),
    /// ECDSA on P-384: logins are signed with SHA-384.
    P384(p384::ecdsa::SigningKey),
}

impl LoginKey {
    /// Reads an RSA or EC private key: PKCS#8 (PEM `PRIVATE KEY` / `ENCRYPTED PRIVATE KEY`,
    /// or DER) as [`PrivateKey::from_pkcs8`] does, the same errors included, or an EC key in
    /// SEC1 PEM (`EC PRIVATE KEY`, as `openssl ecparam -genkey` writes it, the `EC PARAMETERS`
    /// blocks before it skipped; never encrypted, so a passphrase for it is refused like one
    /// for a clear PKCS#8 key). EC keys must be on
    /// P-256 or P-384; other algorithms and curves are [`PkiError::UnsupportedPrivateKey`].
    pub fn read(bytes: &[u8], passphrase: Option<&[u8]>) -> Result<LoginKey, PkiError> {
        let bytes = after_ec_parameters(bytes).unwrap_or(bytes);
        let trimmed = bytes.trim_ascii_start();
        if trimmed.starts_with(b"-----BEGIN ")
            && der::pem::decode_label(trimmed).is_ok_and(|label| label == PEM_SEC1)
        {
            return sec1(trimmed, passphrase);
        }
        read_pkcs8(bytes, passphrase, |info| {
            if info.algorithm.oid != EC_PUBLIC_KEY {
                return from_info(info)
                    .map(LoginKey::Rsa)
                    .map_err(|error| match error {
                        PkiError::PrivateKeyNotRsa { algorithm } => {
                            PkiError::UnsupportedPrivateKey { algorithm }
                        }
                        other => other,
                    });
            }
            if let Ok(key) = p256::SecretKey::try_from(info.clone()) {
                return Ok(LoginKey::P256(key.into()));
            }
            if let Ok(key) = p384::SecretKey::try_from(info) {
                return Ok(LoginKey::P384(key.into()));
            }
            Err(PkiError::UnsupportedPrivateKey {
                algorithm: "EC on a curve other than P-256 and P-384, or malformed".into(),
            })
        })
    }

    /// "RSA", "ECDSA P-256" or "ECDSA P-384".
    pub fn algorithm(&self) -> &'static str {
        self.public_key().algorithm()
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        match self {
            LoginKey::Rsa(key) => PublicKey::Rsa(key.public_key()),
            LoginKey::P256(key) => PublicKey::P256(*key.verifying_key()),
            LoginKey::P384(key) => PublicKey::P384(*key.verifying_key()),
        }
    }

    /// The login signature over `message`: RSASSA-PSS for RSA, DER-encoded ECDSA (RFC 6979
    /// nonces) with SHA-256 on P-256 or SHA-384 on P-384.
    pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, PkiError> {
        match self {
            LoginKey::Rsa(key) => key.sign_pss(message),
            LoginKey::P256(key) => {
                let signature: p256::ecdsa::Signature = key.sign(message);
                Ok(signature.to_der().to_vec())
            }
            LoginKey::P384(key) => {
                let signature: p384::ecdsa::Signature = key.sign(message);
                Ok(signature.to_der().to_vec())
            }
        }
    }
}

/// `bytes` after the `EC PARAMETERS` PEM blocks it starts with (`openssl ecparam -genkey`
/// writes one before the key; the key names its curve itself, so they are skipped), or `None`
/// when it starts with none or one of them has no END line (then the key is read as is and
/// refused as what it is).
fn after_ec_parameters(bytes: &[u8]) -> Option<&[u8]> {
    let mut rest = bytes.trim_ascii_start();
    let mut skipped = false;
    while rest.starts_with(BEGIN_EC_PARAMETERS) {
        let end = rest
            .windows(END_EC_PARAMETERS.len())
            .position(|window| window == END_EC_PARAMETERS)?;
        rest = rest[end + END_EC_PARAMETERS.len()..].trim_ascii_start();
        skipped = true;
    }
    skipped.then_some(rest)
}

/// An `EC PRIVATE KEY` (SEC1) PEM.
fn sec1(pem: &[u8], passphrase: Option<&[u8]>) -> Result<LoginKey, PkiError> {
    let text = std::str::from_utf8(pem).map_err(|_| PkiError::NotPkcs8 {
        detail: "the PEM text is not UTF-8".into(),
    })?;
    if text.contains("Proc-Type:") {
        return Err(PkiError::UnsupportedKeyEncryption {
            detail: "an EC PRIVATE KEY with legacy PEM encryption".into(),
        });
    }
    if passphrase.is_some() {
        return Err(PkiError::PassphraseNotNeeded);
    }
    let (_, document) = der::SecretDocument::from_pem(text).map_err(|e| PkiError::NotPkcs8 {
        detail: format!("malformed EC PRIVATE KEY PEM: {e}"),
    })?;
    let der = document.as_bytes();
    // Each curve's decoder checks the named curve and the key's length.
    if let Ok(key) = p256::SecretKey::from_sec1_der(der) {
        return Ok(LoginKey::P256(key.into()));
    }
    if let Ok(key) = p384::SecretKey::from_sec1_der(der) {
        return Ok(LoginKey::P384(key.into()));
    }
    Err(PkiError::UnsupportedPrivateKey {
        algorithm: "EC on a curve other than P-256 and P-384, or malformed".into(),
    })
}
