//! Name constraints (RFC 5280 section 4.2.1.10) of the CAs in a path, applied to every certificate below them: directoryName, dNSName and rfc822Name subtrees.
//!
//! A certificate's names are its subject (a directoryName, unless empty), the dNSName and
//! rfc822Name entries of its subjectAltName, and the emailAddress attributes of its subject
//! (as rfc822Name). For each name type a CA constrains: with permitted subtrees of that type,
//! every name of the type must lie in one of them; no name may lie in an excluded subtree.
//! A directoryName lies in a subtree when the subtree's RDNs begin its own (RDNs compared
//! exactly); a dNSName when it equals the subtree or ends with "." and the subtree (compared
//! without case); an rfc822Name constraint is a whole mailbox, a host (the part after "@"
//! equals it) or a domain starting with "." (the host ends with it). A subtree of any other
//! type (IP address, URI, otherName, ...) is refused, since keymother cannot honour it; so is
//! a subtree with minimum other than 0 or a maximum.

use const_oid::ObjectIdentifier;
use x509_cert::TbsCertificate;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{NameConstraints, SubjectAltName};
use x509_cert::name::Name;

use crate::PkiError;

const EMAIL_ADDRESS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.1");

/// One name of a certificate, of a type keymother constrains.
enum CertName {
    Directory(Name),
    Dns(String),
    Email(String),
}

impl CertName {
    fn text(&self) -> String {
        match self {
            CertName::Directory(name) => format!("directory name {name}"),
            CertName::Dns(name) => format!("DNS name {name}"),
            CertName::Email(name) => format!("email address {name}"),
        }
    }
}

/// The nameConstraints of the CA `ca_subject` (from its TBS), if it has any; refused when
/// malformed or when it constrains a name type keymother does not support.
pub(crate) fn constraints_of(
    tbs: &TbsCertificate,
    ca_subject: &str,
) -> Result<Option<NameConstraints>, PkiError> {
    let constraints = tbs
        .get_extension::<NameConstraints>()
        .map_err(|_| PkiError::BadExtension {
            what: format!("CA certificate {ca_subject}"),
            extension: "nameConstraints",
        })?
        .map(|(_, constraints)| constraints);
    if let Some(constraints) = &constraints {
        let subtrees = constraints
            .permitted_subtrees
            .iter()
            .chain(constraints.excluded_subtrees.iter())
            .flatten();
        for subtree in subtrees {
            let kind = match &subtree.base {
                GeneralName::DirectoryName(_)
                | GeneralName::DnsName(_)
                | GeneralName::Rfc822Name(_) => None,
                GeneralName::IpAddress(_) => Some("IP address"),
                GeneralName::UniformResourceIdentifier(_) => Some("URI"),
                GeneralName::OtherName(_) => Some("otherName"),
                GeneralName::EdiPartyName(_) => Some("ediPartyName"),
                GeneralName::RegisteredId(_) => Some("registeredID"),
            };
            let kind = kind.or((subtree.minimum != 0 || subtree.maximum.is_some())
                .then_some("subtree with a minimum or maximum"));
            if let Some(kind) = kind {
                return Err(PkiError::UnsupportedNameConstraint {
                    ca: ca_subject.to_string(),
                    kind,
                });
            }
        }
    }
    Ok(constraints)
}

/// Refuses `tbs` (named `what`) when one of its names breaks `constraints` of the CA `ca`.
pub(crate) fn check_names(
    constraints: &NameConstraints,
    ca: &str,
    tbs: &TbsCertificate,
    what: &str,
) -> Result<(), PkiError> {
    for name in names_of(tbs, what)? {
        let same_type: Vec<&GeneralName> = constraints
            .permitted_subtrees
            .iter()
            .flatten()
            .map(|subtree| &subtree.base)
            .filter(|base| same_kind(&name, base))
            .collect();
        let violation = |detail: &'static str| PkiError::NameConstraint {
            ca: ca.to_string(),
            what: what.to_string(),
            name: name.text(),
            detail,
        };
        if !same_type.is_empty() && !same_type.iter().any(|base| within(&name, base)) {
            return Err(violation("outside its permitted subtrees"));
        }
        let excluded = constraints
            .excluded_subtrees
            .iter()
            .flatten()
            .any(|subtree| within(&name, &subtree.base));
        if excluded {
            return Err(violation("inside one of its excluded subtrees"));
        }
    }
    Ok(())
}

fn names_of(tbs: &TbsCertificate, what: &str) -> Result<Vec<CertName>, PkiError> {
    let mut names = Vec::new();
    if !tbs.subject().is_empty() {
        names.push(CertName::Directory(tbs.subject().clone()));
    }
    for attribute in tbs.subject().iter() {
        if attribute.oid == EMAIL_ADDRESS
            && let Ok(value) = attribute.value.decode_as::<der::asn1::Ia5String>()
        {
            names.push(CertName::Email(value.to_string()));
        }
    }
    let san = tbs
        .get_extension::<SubjectAltName>()
        .map_err(|_| PkiError::BadExtension {
            what: what.to_string(),
            extension: "subjectAltName",
        })?;
    for name in san.into_iter().flat_map(|(_, san)| san.0) {
        match name {
            GeneralName::DnsName(dns) => names.push(CertName::Dns(dns.to_string())),
            GeneralName::Rfc822Name(email) => names.push(CertName::Email(email.to_string())),
            GeneralName::DirectoryName(dn) => names.push(CertName::Directory(dn)),
            _ => {}
        }
    }
    Ok(names)
}

fn same_kind(name: &CertName, base: &GeneralName) -> bool {
    matches!(
        (name, base),
        (CertName::Directory(_), GeneralName::DirectoryName(_))
            | (CertName::Dns(_), GeneralName::DnsName(_))
            | (CertName::Email(_), GeneralName::Rfc822Name(_))
    )
}

fn within(name: &CertName, base: &GeneralName) -> bool {
    match (name, base) {
        (CertName::Directory(name), GeneralName::DirectoryName(base)) => {
            let mut rdns = name.iter_rdn();
            base.iter_rdn().all(|rdn| rdns.next() == Some(rdn))
        }
        (CertName::Dns(name), GeneralName::DnsName(base)) => dns_within(
            &name.to_ascii_lowercase(),
            &base.to_string().to_ascii_lowercase(),
        ),
        (CertName::Email(name), GeneralName::Rfc822Name(base)) => {
            let name = name.to_ascii_lowercase();
            let base = base.to_string().to_ascii_lowercase();
            if base.contains('@') {
                return name == base;
            }
            let host = name
                .rsplit_once('@')
                .map_or(name.as_str(), |(_, host)| host);
            if base.starts_with('.') {
                host.ends_with(&base)
            } else {
                host == base
            }
        }
        _ => false,
    }
}

fn dns_within(name: &str, base: &str) -> bool {
    let base = base.trim_start_matches('.');
    base.is_empty()
        || name == base
        || name
            .strip_suffix(base)
            .is_some_and(|prefix| prefix.ends_with('.'))
}

#[cfg(test)]
mod tests {
    use super::dns_within;

    #[test]
    fn dns_subtrees_match_whole_labels() {
        assert!(dns_within("bench.example.com", "example.com"));
        assert!(dns_within("example.com", "example.com"));
        assert!(dns_within("a.example.com", ".example.com"));
        assert!(!dns_within("badexample.com", "example.com"));
        assert!(!dns_within("example.org", "example.com"));
    }
}
