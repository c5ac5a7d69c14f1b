//! RSA private keys (the KDH key, a terminal's device key, an operator's key): generation, PKCS#8 in and out, certificate requests.
//!
//! Keys are read from PKCS#8 only, PEM or DER, in clear (`PRIVATE KEY`) or encrypted under a
//! passphrase (`ENCRYPTED PRIVATE KEY`, PBES2 as `openssl pkcs8 -topk8 -v2 aes-256-cbc` or
//! `openssl pkey -aes256` write it; scrypt is read too). Keys are written as clear PKCS#8 DER
//! (for the caller to seal) or as encrypted PKCS#8 PEM (PBES2 with scrypt N=2^14, r=8, p=1 and
//! AES-256-CBC, which `openssl pkey -passin` reads).
//!
//! A [`PrivateKey`] zeroizes on drop and has neither `Debug` nor `Clone`. Private-key
//! operations are blinded with fresh randomness from the operating system.

use std::fmt::Write as _;

use const_oid::ObjectIdentifier;
use der::{Decode, Encode, EncodePem};
use getrandom04::SysRng;
use getrandom04::rand_core::UnwrapErr;
use pkcs8::pkcs5::{self, pbes2};
use pkcs8::{EncodePrivateKey, EncryptedPrivateKeyInfoRef, PrivateKeyInfoRef};
use rsa::pkcs1::RsaPrivateKeyRef;
use rsa::signature::{RandomizedSigner, SignatureEncoding, Verifier};
use rsa::traits::{PaddingScheme, PublicKeyParts};
use rsa::{Oaep, RsaPrivateKey, RsaPublicKey};
use sha2::Sha256;
use x509_cert::builder::Builder;
use x509_cert::ext::pkix::{KeyUsage, KeyUsages};
use x509_cert::name::Name;
use x509_cert::request::{CertReq, RequestBuilder};
use zeroize::Zeroizing;

use crate::certificate::{RSA_ENCRYPTION, parse_certificate, rsa_key};
use crate::{MAX_GENERATED_RSA_BITS, MIN_RSA_BITS, PkiError, VerifiedCertificate};

/// The salt length of every RSASSA-PSS signature keymother makes or accepts (SHA-256's
/// output length).
pub const PSS_SALT_LENGTH: usize = 32;

/// The largest scrypt memory (128 · r · N bytes) an encrypted key may ask for: a damaged or
/// hostile key file must not make the reader allocate gigabytes. OpenSSL's own limit is 32 MiB.
const MAX_SCRYPT_MEMORY: u64 = 256 * 1024 * 1024;
/// The largest scrypt parallelization parameter accepted.
const MAX_SCRYPT_P: u16 = 16;
/// The largest PBKDF2 iteration count accepted (RFC 8018 section 4.2 calls 10,000,000 the
/// high end for critical keys).
const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;
/// The scrypt cost of keys written by [`PrivateKey::to_encrypted_pkcs8_pem`]: log2 N = 14,
/// r = 8, p = 1 (16 MiB), what RustCrypto's pkcs5 recommends for OpenSSL 3 compatibility.
const SCRYPT_LOG_N: u8 = 14;
const SCRYPT_R: u32 = 8;
const SCRYPT_P: u32 = 1;

const PEM_PLAIN: &str = "PRIVATE KEY";
const PEM_ENCRYPTED: &str = "ENCRYPTED PRIVATE KEY";
const PEM_PKCS1: &str = "RSA PRIVATE KEY";

/// An RSA private key (the appliance's KDH key, a terminal's device key, an operator's key).
///
/// Zeroized on drop (the `rsa` crate clears its private parts); deliberately neither `Debug`
/// nor `Clone`, so it cannot be logged or copied by accident.
pub struct PrivateKey {
    key: RsaPrivateKey,
}

impl PrivateKey {
    /// New key pair from the OS RNG; bits must be 2048..=4096 (else [`PkiError::KeySize`]).
    /// The public exponent is 65537.
    pub fn generate(bits: usize) -> Result<PrivateKey, PkiError> {
        if !(MIN_RSA_BITS..=MAX_GENERATED_RSA_BITS).contains(&bits) {
            return Err(PkiError::KeySize { bits });
        }
        check_random()?;
        // Invariant: the OS RNG answered just above, and getrandom(2) does not fail once it
        // has (it retries EINTR itself), so UnwrapErr never panics in practice. If it ever
        // did, a panic is the only safe answer in the middle of making a key.
        let key = RsaPrivateKey::new(&mut UnwrapErr(SysRng), bits)
            .map_err(|e| PkiError::Rsa(format!("key generation: {e}")))?;
        Ok(PrivateKey { key })
    }

    /// PKCS#8 in PEM ("PRIVATE KEY" or "ENCRYPTED PRIVATE KEY") or DER. An encrypted key
    /// needs `passphrase`.
    ///
    /// Errors, each its own [`PkiError`] variant: encrypted but no passphrase
    /// ([`PassphraseRequired`](PkiError::PassphraseRequired)), wrong passphrase or damaged
    /// ([`WrongPassphrase`](PkiError::WrongPassphrase)), an encryption scheme or cost not
    /// accepted ([`UnsupportedKeyEncryption`](PkiError::UnsupportedKeyEncryption): PBES1,
    /// DES, scrypt above 256 MiB, PBKDF2 above 10,000,000 iterations), not RSA
    /// ([`PrivateKeyNotRsa`](PkiError::PrivateKeyNotRsa)), fewer than [`MIN_RSA_BITS`]
    /// ([`KeyTooShort`](PkiError::KeyTooShort)), PKCS#1 `RSA PRIVATE KEY`
    /// ([`Pkcs1PrivateKey`](PkiError::Pkcs1PrivateKey)), anything else
    /// ([`NotPkcs8`](PkiError::NotPkcs8)).
    ///
    /// A passphrase given for a key stored in clear is **refused**
    /// ([`PassphraseNotNeeded`](PkiError::PassphraseNotNeeded)): whoever gives one believes
    /// the file is protected, and should learn that it is not.
    pub fn from_pkcs8(bytes: &[u8], passphrase: Option<&[u8]>) -> Result<PrivateKey, PkiError> {
        read_pkcs8(bytes, passphrase, from_info)
    }
    /// Unencrypted PKCS#8 DER (for sealing by the caller).
    pub fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, PkiError> {
        let document = self
            .key
            .to_pkcs8_der()
            .map_err(|e| PkiError::Rsa(format!("PKCS#8 encoding: {e}")))?;
        Ok(document.to_bytes())
    }

    /// Encrypted PKCS#8 PEM ("ENCRYPTED PRIVATE KEY"): PBES2 with scrypt (N = 2^14, r = 8,
    /// p = 1, 16-byte random salt) and AES-256-CBC (random IV). `openssl pkey -passin` reads
    /// it (OpenSSL 1.1 or newer).
    pub fn to_encrypted_pkcs8_pem(&self, passphrase: &[u8]) -> Result<String, PkiError> {
        let mut salt = [0u8; 16];
        let mut iv = [0u8; 16];
        fill_random(&mut salt)?;
        fill_random(&mut iv)?;
        let params = pkcs5::scrypt::Params::new(SCRYPT_LOG_N, SCRYPT_R, SCRYPT_P)
            .map_err(|e| PkiError::Rsa(format!("scrypt parameters: {e}")))?;
        let params = pbes2::Parameters::generate_scrypt_aes256cbc(params, &salt, iv)
            .map_err(|e| PkiError::Rsa(format!("PBES2 parameters: {e}")))?;
        let plain = self.to_pkcs8_der()?;
        let info = PrivateKeyInfoRef::from_der(&plain)
            .map_err(|e| PkiError::Rsa(format!("PKCS#8 encoding: {e}")))?;
        let encrypted = info
            .encrypt_with_params(params, passphrase)
            .map_err(|e| PkiError::Rsa(format!("PKCS#8 encryption: {e}")))?;
        let pem = encrypted
            .to_pem(PEM_ENCRYPTED, der::pem::LineEnding::LF)
            .map_err(|e| PkiError::Rsa(format!("PEM encoding: {e}")))?;
        Ok(pem.as_str().to_owned())
    }

    /// The public half.
    pub fn public_key(&self) -> RsaPublicKey {
        self.key.to_public_key()
    }

    /// Bits of the modulus.
    pub fn bits(&self) -> usize {
        self.key.n().bits() as usize
    }

    /// Whether this key's public half is the one in `certificate`.
    pub fn matches(&self, certificate: &VerifiedCertificate) -> bool {
        self.key.as_public_key() == certificate.public_key()
    }

    /// Whether this key's public half is the one in `certificate` (DER or PEM), without
    /// verifying the certificate; false when it does not parse or holds no RSA key. For a
    /// verified certificate, use [`PrivateKey::matches`].
    pub fn matches_certificate(&self, certificate: &[u8]) -> bool {
        parse_certificate(certificate, "certificate")
            .and_then(|c| rsa_key(&c, "certificate"))
            .is_ok_and(|key| &key == self.key.as_public_key())
    }

    /// An RSASSA-PSS signature (SHA-256, MGF1-SHA-256, salt 32) over `message`, blinded, with
    /// fresh randomness for the salt and the blinding.
    /// The key itself, for the certificate builder.
    pub(crate) fn rsa(&self) -> &RsaPrivateKey {
        &self.key
    }

    pub(crate) fn sign_pss(&self, message: &[u8]) -> Result<Vec<u8>, PkiError> {
        // The signing key is a transient copy; RsaPrivateKey zeroizes it when dropped.
        let signer =
            rsa::pss::SigningKey::<Sha256>::new_with_salt_len(self.key.clone(), PSS_SALT_LENGTH);
        let signature = signer
            .try_sign_with_rng(&mut SysRng, message)
            .map_err(|e| PkiError::Rsa(format!("RSASSA-PSS signing: {e}")))?;
        Ok(signature.to_vec())
    }

    /// RSAES-OAEP (SHA-256, MGF1-SHA-256, empty label) decryption, blinded with fresh
    /// randomness. The error is deliberately opaque (no padding detail).
    pub(crate) fn decrypt_oaep(&self, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, ()> {
        Oaep::<Sha256>::new()
            .decrypt(Some(&mut SysRng), &self.key, ciphertext)
            .map(Zeroizing::new)
            .map_err(|_| ())
    }

    fn check_size(key: RsaPrivateKey) -> Result<PrivateKey, PkiError> {
        let key = PrivateKey { key };
        let bits = key.bits();
        if bits < MIN_RSA_BITS {
            return Err(PkiError::KeyTooShort {
                what: "private key".into(),
                bits,
            });
        }
        Ok(key)
    }
}

/// RSASSA-PSS (SHA-256, MGF1-SHA-256, salt 32) verification of `signature` over `message`.
pub(crate) fn verify_pss(key: &RsaPublicKey, message: &[u8], signature: &[u8]) -> bool {
    let Ok(signature) = rsa::pss::Signature::try_from(signature) else {
        return false;
    };
    rsa::pss::VerifyingKey::<Sha256>::new_with_salt_len(key.clone(), PSS_SALT_LENGTH)
        .verify(message, &signature)
        .is_ok()
}

/// RSAES-OAEP (SHA-256, MGF1-SHA-256, empty label) encryption to `key`.
pub(crate) fn encrypt_oaep(key: &RsaPublicKey, message: &[u8]) -> Result<Vec<u8>, PkiError> {
    Oaep::<Sha256>::new()
        .encrypt(&mut SysRng, key, message)
        .map_err(|e| PkiError::Rsa(format!("RSAES-OAEP encryption: {e}")))
}

/// A PKCS#8 private key (PEM or DER, clear or encrypted under `passphrase`) handed to
/// `convert` as a clear PrivateKeyInfo; the errors of [`PrivateKey::from_pkcs8`] for
/// everything but the key's algorithm, which `convert` judges.
pub(crate) fn read_pkcs8<T>(
    bytes: &[u8],
    passphrase: Option<&[u8]>,
    convert: impl Fn(PrivateKeyInfoRef<'_>) -> Result<T, PkiError>,
) -> Result<T, PkiError> {
    let trimmed = bytes.trim_ascii_start();
    if trimmed.starts_with(b"-----BEGIN ") {
        let label = der::pem::decode_label(trimmed).map_err(|e| PkiError::NotPkcs8 {
            detail: format!("malformed PEM: {e}"),
        })?;
        match label {
            PEM_PLAIN | PEM_ENCRYPTED => {}
            PEM_PKCS1 => return Err(PkiError::Pkcs1PrivateKey),
            other => {
                return Err(PkiError::NotPkcs8 {
                    detail: format!("the PEM label is {other:?}"),
                });
            }
        }
        let text = std::str::from_utf8(trimmed).map_err(|_| PkiError::NotPkcs8 {
            detail: "the PEM text is not UTF-8".into(),
        })?;
        let (label, document) =
            der::SecretDocument::from_pem(text).map_err(|e| PkiError::NotPkcs8 {
                detail: format!("malformed PEM: {e}"),
            })?;
        if label == PEM_ENCRYPTED {
            from_encrypted_der(document.as_bytes(), passphrase, convert)
        } else {
            from_plain_der(document.as_bytes(), passphrase, convert)
        }
    } else if PrivateKeyInfoRef::from_der(bytes).is_ok() {
        from_plain_der(bytes, passphrase, convert)
    } else if EncryptedPrivateKeyInfoRef::from_der(bytes).is_ok() {
        from_encrypted_der(bytes, passphrase, convert)
    } else if RsaPrivateKeyRef::from_der(bytes).is_ok() {
        Err(PkiError::Pkcs1PrivateKey)
    } else {
        let detail = match PrivateKeyInfoRef::from_der(bytes) {
            Err(e) => format!("neither PEM nor PKCS#8 DER ({e})"),
            Ok(_) => "neither PEM nor PKCS#8 DER".into(),
        };
        Err(PkiError::NotPkcs8 { detail })
    }
}

/// Fills `buffer` from the OS RNG.
pub(crate) fn fill_random(buffer: &mut [u8]) -> Result<(), PkiError> {
    getrandom04::fill(buffer).map_err(|e| PkiError::Random(e.to_string()))
}

fn check_random() -> Result<(), PkiError> {
    let mut probe = Zeroizing::new([0u8; 32]);
    fill_random(probe.as_mut_slice())
}

/// A clear PKCS#8 PrivateKeyInfo.
fn from_plain_der<T>(
    der: &[u8],
    passphrase: Option<&[u8]>,
    convert: impl Fn(PrivateKeyInfoRef<'_>) -> Result<T, PkiError>,
) -> Result<T, PkiError> {
    let info = PrivateKeyInfoRef::from_der(der).map_err(|e| PkiError::NotPkcs8 {
        detail: e.to_string(),
    })?;
    if passphrase.is_some() {
        return Err(PkiError::PassphraseNotNeeded);
    }
    convert(info)
}

pub(crate) fn from_info(info: PrivateKeyInfoRef<'_>) -> Result<PrivateKey, PkiError> {
    let oid = info.algorithm.oid;
    if oid != RSA_ENCRYPTION {
        return Err(PkiError::PrivateKeyNotRsa {
            algorithm: algorithm_name(oid),
        });
    }
    // The modulus size first, so that a short key is named as such even where the rsa crate
    // would refuse to decode it.
    let parts = RsaPrivateKeyRef::from_der(info.private_key.as_bytes()).map_err(|e| {
        PkiError::BadPrivateKey {
            detail: e.to_string(),
        }
    })?;
    let modulus = parts.modulus.as_bytes();
    let bits = modulus
        .iter()
        .position(|&b| b != 0)
        .and_then(|first| {
            let rest = modulus.len() - first - 1;
            Some(rest * 8 + (8 - modulus.get(first)?.leading_zeros() as usize))
        })
        .unwrap_or(0);
    if bits < MIN_RSA_BITS {
        return Err(PkiError::KeyTooShort {
            what: "private key".into(),
            bits,
        });
    }
    let key = RsaPrivateKey::try_from(info).map_err(|e| PkiError::BadPrivateKey {
        detail: e.to_string(),
    })?;
    PrivateKey::check_size(key)
}

/// An EncryptedPrivateKeyInfo.
fn from_encrypted_der<T>(
    der: &[u8],
    passphrase: Option<&[u8]>,
    convert: impl Fn(PrivateKeyInfoRef<'_>) -> Result<T, PkiError>,
) -> Result<T, PkiError> {
    let info = EncryptedPrivateKeyInfoRef::from_der(der).map_err(|e| PkiError::NotPkcs8 {
        detail: format!("malformed ENCRYPTED PRIVATE KEY: {e}"),
    })?;
    let Some(passphrase) = passphrase else {
        return Err(PkiError::PassphraseRequired);
    };
    check_encryption_cost(&info.encryption_algorithm)?;
    let plain = info.decrypt(passphrase).map_err(|e| match e {
        pkcs8::Error::EncryptedPrivateKey(
            pkcs5::Error::UnsupportedAlgorithm { .. }
            | pkcs5::Error::NoPbes1CryptSupport
            | pkcs5::Error::AlgorithmParametersInvalid { .. },
        ) => PkiError::UnsupportedKeyEncryption {
            detail: e.to_string(),
        },
        // A wrong passphrase shows as bad CBC padding or, rarely, as padding that happens to
        // be valid over bytes that are not DER: the same answer for both.
        _ => PkiError::WrongPassphrase,
    })?;
    // Decrypted bytes that are not a PrivateKeyInfo: wrong passphrase or damage, too.
    let info =
        PrivateKeyInfoRef::from_der(plain.as_bytes()).map_err(|_| PkiError::WrongPassphrase)?;
    convert(info)
}

/// Refuses PBES1 and KDF costs that would make reading the key a denial of service.
fn check_encryption_cost(scheme: &pkcs5::EncryptionScheme) -> Result<(), PkiError> {
    let unsupported = |detail: String| PkiError::UnsupportedKeyEncryption { detail };
    let params = match scheme {
        pkcs5::EncryptionScheme::Pbes2(params) => params,
        other => {
            return Err(unsupported(format!(
                "{} is not PBES2 (PBES1 is obsolete)",
                other.oid()
            )));
        }
    };
    if let Some(scrypt) = params.kdf.scrypt() {
        let memory = 128u64
            .saturating_mul(u64::from(scrypt.block_size))
            .saturating_mul(scrypt.cost_parameter);
        if memory > MAX_SCRYPT_MEMORY || scrypt.parallelization > MAX_SCRYPT_P {
            return Err(unsupported(format!(
                "scrypt N={} r={} p={} needs {} MiB; at most {} MiB and p <= {MAX_SCRYPT_P} are allowed",
                scrypt.cost_parameter,
                scrypt.block_size,
                scrypt.parallelization,
                memory / (1024 * 1024),
                MAX_SCRYPT_MEMORY / (1024 * 1024)
            )));
        }
    }
    if let Some(pbkdf2) = params.kdf.pbkdf2()
        && pbkdf2.iteration_count > MAX_PBKDF2_ITERATIONS
    {
        return Err(unsupported(format!(
            "PBKDF2 with {} iterations; at most {MAX_PBKDF2_ITERATIONS} are allowed",
            pbkdf2.iteration_count
        )));
    }
    Ok(())
}

fn algorithm_name(oid: ObjectIdentifier) -> String {
    let name = match oid.to_string().as_str() {
        "1.2.840.10045.2.1" => Some("EC"),
        "1.3.101.112" => Some("Ed25519"),
        "1.3.101.113" => Some("Ed448"),
        "1.3.101.110" => Some("X25519"),
        "1.2.840.10040.4.1" => Some("DSA"),
        "1.2.840.113549.1.1.10" => Some("RSASSA-PSS"),
        _ => None,
    };
    let mut text = oid.to_string();
    if let Some(name) = name {
        let _ = write!(text, ", {name}");
    }
    text
}

/// A PKCS#10 certificate signing request (DER) for `key` with `subject`, signed with the key
/// (RSA PKCS#1 v1.5 SHA-256, `sha256WithRSAEncryption`), asking in an extensionRequest
/// attribute for keyUsage digitalSignature (critical): what a KDH key needs.
pub fn certificate_request(key: &PrivateKey, subject: &Name) -> Result<Vec<u8>, PkiError> {
    request(key, subject)?
        .to_der()
        .map_err(|e| PkiError::Build(e.to_string()))
}

/// The same as PEM ("CERTIFICATE REQUEST").
pub fn certificate_request_pem(key: &PrivateKey, subject: &Name) -> Result<String, PkiError> {
    request(key, subject)?
        .to_pem(der::pem::LineEnding::LF)
        .map_err(|e| PkiError::Build(e.to_string()))
}

fn request(key: &PrivateKey, subject: &Name) -> Result<CertReq, PkiError> {
    let build = |e: &dyn std::fmt::Display| PkiError::Build(format!("certificate request: {e}"));
    let mut builder = RequestBuilder::new(subject.clone()).map_err(|e| build(&e))?;
    builder
        .add_extension(&KeyUsage(KeyUsages::DigitalSignature.into()))
        .map_err(|e| build(&e))?;
    // PKCS#1 v1.5 signing in the rsa crate is blinded with the OS RNG. The signing key is a
    // transient copy that zeroizes when dropped.
    let signer = rsa::pkcs1v15::SigningKey::<Sha256>::new(key.key.clone());
    builder
        .build::<_, rsa::pkcs1v15::Signature>(&signer)
        .map_err(|e| build(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    static_assertions::assert_not_impl_any!(PrivateKey: std::fmt::Debug, Clone, Copy);

    #[test]
    fn sizes_outside_the_range_are_refused_before_any_work() {
        for bits in [0, 1024, 2047, 4097, 8192] {
            assert_eq!(
                PrivateKey::generate(bits).err(),
                Some(PkiError::KeySize { bits })
            );
        }
        let message = PkiError::KeySize { bits: 1024 }.to_string();
        assert!(
            message.contains("1024") && message.contains("2048 to 4096"),
            "{message}"
        );
    }

    #[test]
    fn garbage_is_not_pkcs8() {
        for bytes in [&b""[..], b"hello", b"\x30\x03\x02\x01\x00"] {
            assert!(
                matches!(
                    PrivateKey::from_pkcs8(bytes, None),
                    Err(PkiError::NotPkcs8 { .. })
                ),
                "{bytes:?}"
            );
        }
        let pem = "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n";
        let err = PrivateKey::from_pkcs8(pem.as_bytes(), None).err();
        assert!(
            matches!(&err, Some(PkiError::NotPkcs8 { detail }) if detail.contains("CERTIFICATE")),
            "{:?}",
            err
        );
    }
}
