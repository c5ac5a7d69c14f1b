//! X.509 for keymother: one trust anchor per role, certificate and CRL verification.
//!
//! keymother meets three kinds of certificate, each issued by its own CA:
//!
//! | role | issued by | what the leaf's key does | keyUsage required |
//! | --- | --- | --- | --- |
//! | [`Role::TerminalDevice`] | the terminal manufacturer's CA | receives key blocks (TR-34 key transport) | keyEncipherment |
//! | [`Role::KeyDistributionHost`] | the KDH CA | the appliance signs what it sends | digitalSignature |
//! | [`Role::Operator`] | the operator CA | an operator signs commands | digitalSignature |
//!
//! The roles are separate trust anchors ([`TrustAnchors`]): a certificate is only ever checked
//! against the CA of the role it is presented for, so a terminal certificate can never pass as
//! the KDH or as an operator, nor the other way round. The weakness of TR-34 deployments with one
//! shared root (any terminal certificate is also a valid "KDH") is excluded by construction:
//! [`TrustAnchors::new`] refuses two roles sharing a CA certificate, a CA key or a CA name. No
//! extended key usage or policy OID is required: the project has no OID arc of its own, and the
//! anchor already decides the role. When a certificate of one role is presented for another, the
//! error names both ([`PkiError::WrongRole`]).
//!
//! Signatures: RSA PKCS#1 v1.5 with SHA-256 (`sha256WithRSAEncryption`) and RSASSA-PSS with
//! SHA-256 and MGF1-SHA-256; under an EC CA key (P-256 or P-384), ecdsa-with-SHA256 and
//! ecdsa-with-SHA384. RSA keys of fewer than 2048 bits are refused. A role's CA must
//! be self-signed (a leaf may chain to it through up to [`MAX_INTERMEDIATES`] intermediate CAs:
//! [`TrustAnchors::verify_chain`]), have basicConstraints cA=TRUE and keyUsage keyCertSign (and cRLSign to sign
//! a CRL); leaves must not be CAs. Validity periods of the leaf, the CA and the CRL are checked
//! against the instant the caller passes, so tests and an appliance without a network clock
//! decide explicitly what "now" is.
//!
//! Beside verification: [`keys`] (RSA private keys: generation, PKCS#8 clear and encrypted,
//! certificate requests), [`login`] (operator login by challenge and signature),
//! [`tr34`] (ASC X9 TR 34-2019 tokens: certificate-mode delivery of a master key to a terminal) and [`builder`] (certificates and CRLs made by keymother).

mod anchors;
mod bundle;
mod certificate;
mod chain;
mod crl;
mod encoding;
mod error;
mod extensions;
mod names;
mod public_key;
mod role;
mod signature;
mod validity;

pub mod builder;
pub mod keys;
pub mod login;
mod login_key;
#[doc(hidden)]
pub mod testing;
pub mod tr34;

pub use anchors::TrustAnchors;
pub use bundle::{MAX_BUNDLE_BLOCKS, pem_bundle};
pub use certificate::{VerifiedCertificate, certificate_der};
pub use chain::MAX_INTERMEDIATES;
pub use crl::Crl;
pub use error::PkiError;
pub use keys::PrivateKey;
pub use public_key::PublicKey;
pub use role::{Role, Subject};

/// The crates of the public API, re-exported so users get the same versions.
pub use {der, rsa, x509_cert};

/// The smallest RSA modulus accepted, in bits, for CAs and leaves alike.
pub const MIN_RSA_BITS: usize = 2048;

/// The largest RSA key [`PrivateKey::generate`] makes, in bits.
pub const MAX_GENERATED_RSA_BITS: usize = 4096;
