//! X.509 extensions: the critical ones keymother understands, and keyUsage bits named for messages.

use x509_cert::ext::pkix::KeyUsage;

use crate::PkiError;

/// Extensions keymother understands; a certificate with any other extension marked critical
/// is refused, as RFC 5280 section 4.2 requires.
pub(crate) const KNOWN_CERT_EXTENSIONS: [&str; 7] = [
    "2.5.29.14", // subjectKeyIdentifier
    "2.5.29.15", // keyUsage
    "2.5.29.17", // subjectAltName
    "2.5.29.19", // basicConstraints
    "2.5.29.32", // certificatePolicies
    "2.5.29.35", // authorityKeyIdentifier
    "2.5.29.37", // extKeyUsage
];
/// The extensions keymother understands on a CA certificate: those of any certificate and
/// nameConstraints, which [`crate::names`] honours.
pub(crate) const KNOWN_CA_EXTENSIONS: [&str; 8] = [
    "2.5.29.14", // subjectKeyIdentifier
    "2.5.29.15", // keyUsage
    "2.5.29.17", // subjectAltName
    "2.5.29.19", // basicConstraints
    "2.5.29.32", // certificatePolicies
    "2.5.29.35", // authorityKeyIdentifier
    "2.5.29.37", // extKeyUsage
    "2.5.29.30", // nameConstraints
];
/// The same for CRLs and CRL entries (delta CRLs, issuing distribution points and indirect
/// CRLs are not supported, so those critical extensions are refused).
pub(crate) const KNOWN_CRL_EXTENSIONS: [&str; 4] = [
    "2.5.29.20", // cRLNumber
    "2.5.29.35", // authorityKeyIdentifier
    "2.5.29.21", // reasonCode (entry)
    "2.5.29.24", // invalidityDate (entry)
];

/// Refuses the first critical extension whose OID is not in `known`.
pub(crate) fn check_critical<'a>(
    extensions: impl IntoIterator<Item = &'a x509_cert::ext::Extension>,
    known: &[&str],
    what: &str,
) -> Result<(), PkiError> {
    for ext in extensions {
        let oid = ext.extn_id.to_string();
        if ext.critical && !known.contains(&oid.as_str()) {
            return Err(PkiError::UnknownCriticalExtension {
                what: what.to_string(),
                oid,
            });
        }
    }
    Ok(())
}

/// The keyUsage bits that are set, by name, or "none".
pub(crate) fn describe_key_usage(ku: &KeyUsage) -> String {
    let names: Vec<&str> = [
        (ku.digital_signature(), "digitalSignature"),
        (ku.non_repudiation(), "nonRepudiation"),
        (ku.key_encipherment(), "keyEncipherment"),
        (ku.data_encipherment(), "dataEncipherment"),
        (ku.key_agreement(), "keyAgreement"),
        (ku.key_cert_sign(), "keyCertSign"),
        (ku.crl_sign(), "cRLSign"),
        (ku.encipher_only(), "encipherOnly"),
        (ku.decipher_only(), "decipherOnly"),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
    .collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}
