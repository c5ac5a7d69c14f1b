//! Certificate paths through intermediate CAs up to a role's self-signed CA ([`TrustAnchors::verify_chain`]): path building, and the checks RFC 5280 section 6 makes on every certificate of the path.
//!
//! The path is built from the leaf upwards: the issuer of each certificate is the role's CA
//! when the names match, else an intermediate whose subject is that issuer name and whose key
//! verifies the signature. At most [`MAX_INTERMEDIATES`] intermediates lie between the leaf
//! and the role's CA. Then, top down: every intermediate is within its validity period, is a
//! CA (basicConstraints cA=TRUE) with keyUsage keyCertSign and no critical extension keymother
//! does not understand, and has no more intermediates below it than its pathLenConstraint (the
//! role's CA's pathLenConstraint counts too); the name constraints of every CA hold for every
//! certificate below it ([`crate::names`]); the leaf is checked as a leaf of its role; and,
//! for every certificate whose issuer has a CRL among those given, the CRL (signature by that
//! issuer, which needs cRLSign, and its dates) and the certificate's serial on it.

use std::time::SystemTime;

use der::Decode;
use x509_cert::Certificate;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage};

use crate::anchors::{Anchor, check_leaf_extensions};
use crate::certificate::rsa_key;
use crate::encoding::{first_element, parse_error, serial_hex, to_der};
use crate::extensions::{KNOWN_CA_EXTENSIONS, check_critical};
use crate::names::{check_names, constraints_of};
use crate::public_key::{PublicKey, public_key, verify_signature_by};
use crate::validity::{check_validity, x509_now};
use crate::{Crl, PkiError, Role, Subject, TrustAnchors, VerifiedCertificate};

/// The most intermediate CA certificates between a leaf and its role's CA.
pub const MAX_INTERMEDIATES: usize = 4;

/// One certificate of a path, with what the checks need.
struct Link {
    certificate: Certificate,
    der: Vec<u8>,
    subject: String,
}

/// A CA of the path: an intermediate or the role's CA.
struct Ca<'a> {
    certificate: &'a Certificate,
    key: PublicKey,
    subject: String,
}

impl TrustAnchors {
    /// Verifies `leaf` (DER or PEM) as a certificate of `role` at `now`, through the
    /// intermediate CA certificates `intermediates` (DER, any order; those not on the path are
    /// ignored) up to the role's CA, with the CRLs `crls` (each applies to the certificates
    /// its issuer issued). A leaf issued by the role's CA itself is checked as
    /// [`TrustAnchors::verify`] does, with the CRL the role's CA issued. The leaf's key must be
    /// RSA. The checks are listed in the module documentation; each refusal names the
    /// certificate by its subject.
    pub fn verify_chain(
        &self,
        role: Role,
        leaf: &[u8],
        intermediates: &[Vec<u8>],
        now: SystemTime,
        crls: &[Crl],
    ) -> Result<VerifiedCertificate, PkiError> {
        let (certificate, key) = self.verify_path(role, leaf, intermediates, now, crls, false)?;
        let PublicKey::Rsa(public_key) = key else {
            // verify_path(.., false) returns RSA keys only.
            return Err(PkiError::NotRsa {
                what: format!("{role} certificate"),
                detail: "not an RSA key".into(),
            });
        };
        Ok(VerifiedCertificate {
            role,
            certificate,
            public_key,
        })
    }

    /// [`TrustAnchors::verify_chain`], the leaf's key RSA or (with `any_key`) EC.
    pub(crate) fn verify_path(
        &self,
        role: Role,
        leaf: &[u8],
        intermediates: &[Vec<u8>],
        now: SystemTime,
        crls: &[Crl],
        any_key: bool,
    ) -> Result<(Certificate, PublicKey), PkiError> {
        let der = to_der(leaf, "CERTIFICATE", "certificate")?;
        let certificate = Certificate::from_der(&der).map_err(|e| parse_error("certificate", e))?;
        let anchor = self.required_anchor(role)?;
        let root = anchor.certificate.tbs_certificate().subject();
        let issuer = certificate.tbs_certificate().issuer();
        let crl = crls.iter().find(|crl| crl.issuer() == root);
        if issuer == root || intermediates.is_empty() {
            // No path to build: as verify() (an unknown issuer is UnknownIssuer, naming it).
            return self.verify_direct(role, &der, now, crl, any_key);
        }
        let issuer_given = intermediates.iter().any(|der| {
            Certificate::from_der(der).is_ok_and(|ca| ca.tbs_certificate().subject() == issuer)
        });
        if !issuer_given {
            // Another role's certificate is named as such; anything else lacks its issuer.
            return Err(match self.verify_direct(role, &der, now, crl, any_key) {
                Err(PkiError::UnknownIssuer { .. }) | Ok(_) => PkiError::IssuerMissing {
                    role,
                    subject: certificate.tbs_certificate().subject().to_string(),
                    issuer: issuer.to_string(),
                },
                Err(other) => other,
            });
        }
        let now_dt = x509_now(now)?;
        let leaf = Link {
            subject: certificate.tbs_certificate().subject().to_string(),
            certificate,
            der,
        };
        let candidates = intermediates
            .iter()
            .map(|der| {
                let certificate = Certificate::from_der(der)
                    .map_err(|e| parse_error("intermediate CA certificate", e))?;
                Ok(Link {
                    subject: certificate.tbs_certificate().subject().to_string(),
                    certificate,
                    der: der.clone(),
                })
            })
            .collect::<Result<Vec<_>, PkiError>>()?;
        let path = build_path(role, anchor, &leaf, &candidates)?;
        // path[0] issued the leaf; the role's CA issued the last one.
        let mut cas: Vec<Ca<'_>> = path
            .iter()
            .map(|link| Ca {
                certificate: &link.link.certificate,
                key: link.key.clone(),
                subject: link.link.subject.clone(),
            })
            .collect();
        cas.push(Ca {
            certificate: &anchor.certificate,
            key: anchor.public_key.clone(),
            subject: root.to_string(),
        });
        // Top down: the role's CA's pathLenConstraint, then each intermediate.
        path_length(&anchor.certificate, &root.to_string(), path.len())?;
        for (below, link) in path.iter().enumerate().rev() {
            check_intermediate(link.link, below, now, &now_dt)?;
        }
        let what = format!("{role} certificate");
        check_validity(Subject::Leaf, &leaf.certificate, now, &now_dt)?;
        check_leaf_extensions(role, leaf.certificate.tbs_certificate(), &what)?;
        let key = if any_key {
            public_key(&leaf.certificate, &what)?
        } else {
            PublicKey::Rsa(rsa_key(&leaf.certificate, &what)?)
        };
        // Name constraints of each CA over everything below it.
        let below: Vec<(&Certificate, String)> = std::iter::once((&leaf.certificate, what))
            .chain(path.iter().map(|link| {
                (
                    &link.link.certificate,
                    format!("intermediate CA certificate {}", link.link.subject),
                )
            }))
            .collect();
        for (level, ca) in cas.iter().enumerate() {
            if let Some(constraints) =
                constraints_of(ca.certificate.tbs_certificate(), &ca.subject)?
            {
                for (certificate, name) in &below[..=level] {
                    check_names(
                        &constraints,
                        &ca.subject,
                        certificate.tbs_certificate(),
                        name,
                    )?;
                }
            }
        }
        check_revocation(role, &below, &cas, crls, now)?;
        Ok((leaf.certificate, key))
    }
}

/// A link of a built path: the intermediate and its key.
struct PathLink<'a> {
    link: &'a Link,
    key: PublicKey,
}

/// The intermediates from the leaf's issuer up to the one the role's CA issued, each one's
/// signature on the certificate below it checked.
fn build_path<'a>(
    role: Role,
    anchor: &Anchor,
    leaf: &Link,
    candidates: &'a [Link],
) -> Result<Vec<PathLink<'a>>, PkiError> {
    let root = anchor.certificate.tbs_certificate().subject();
    let mut path: Vec<PathLink<'a>> = Vec::new();
    let mut used = vec![false; candidates.len()];
    let mut current = leaf;
    loop {
        let issuer = current.certificate.tbs_certificate().issuer();
        if issuer == root {
            signed_by(current, &anchor.public_key, &root.to_string(), role)?;
            return Ok(path);
        }
        if path.len() == crate::MAX_INTERMEDIATES {
            return Err(PkiError::ChainTooLong {
                role,
                max: crate::MAX_INTERMEDIATES,
            });
        }
        let mut named = candidates
            .iter()
            .enumerate()
            .filter(|(index, link)| {
                !used[*index] && link.certificate.tbs_certificate().subject() == issuer
            })
            .peekable();
        if named.peek().is_none() {
            return Err(PkiError::IssuerMissing {
                role,
                subject: current.subject.clone(),
                issuer: issuer.to_string(),
            });
        }
        let mut last_error = None;
        let mut found = None;
        for (index, link) in named {
            let key = public_key(
                &link.certificate,
                &format!("intermediate CA certificate {}", link.subject),
            )?;
            match signed_by(current, &key, &link.subject, role) {
                Ok(()) => {
                    found = Some((index, link, key));
                    break;
                }
                Err(error) => last_error = Some(error),
            }
        }
        let Some((index, link, key)) = found else {
            return Err(last_error.unwrap_or(PkiError::IssuerMissing {
                role,
                subject: current.subject.clone(),
                issuer: issuer.to_string(),
            }));
        };
        used[index] = true;
        path.push(PathLink { link, key });
        current = link;
    }
}

/// Whether `issuer_key` (of `issuer`) signed `link`.
fn signed_by(link: &Link, key: &PublicKey, issuer: &str, role: Role) -> Result<(), PkiError> {
    let tbs = first_element(&link.der).ok_or_else(|| parse_error("certificate", "no TBS"))?;
    verify_signature_by(
        key,
        link.certificate.signature_algorithm(),
        link.certificate.tbs_certificate().signature(),
        tbs,
        link.certificate.signature(),
        &format!("certificate {}", link.subject),
        role,
    )
    .map_err(|error| match error {
        PkiError::BadSignature { .. } => PkiError::ChainSignature {
            subject: link.subject.clone(),
            issuer: issuer.to_string(),
        },
        other => other,
    })
}

/// Refuses a CA whose pathLenConstraint allows fewer intermediates than `below`.
fn path_length(certificate: &Certificate, subject: &str, below: usize) -> Result<(), PkiError> {
    if let Ok(Some((_, bc))) = certificate
        .tbs_certificate()
        .get_extension::<BasicConstraints>()
        && let Some(allowed) = bc.path_len_constraint
        && below > usize::from(allowed)
    {
        return Err(PkiError::PathLength {
            ca: subject.to_string(),
            allowed,
            below,
        });
    }
    Ok(())
}

/// The checks on one intermediate with `below` intermediates under it.
fn check_intermediate(
    link: &Link,
    below: usize,
    now: SystemTime,
    now_dt: &der::DateTime,
) -> Result<(), PkiError> {
    let refused = |detail: String| PkiError::ChainCertificate {
        subject: link.subject.clone(),
        detail,
    };
    check_validity(Subject::Ca, &link.certificate, now, now_dt)
        .map_err(|error| refused(error.to_string()))?;
    let tbs = link.certificate.tbs_certificate();
    check_critical(
        tbs.extensions().into_iter().flatten(),
        &KNOWN_CA_EXTENSIONS,
        &format!("intermediate CA certificate {}", link.subject),
    )?;
    match tbs.get_extension::<BasicConstraints>() {
        Ok(Some((_, bc))) if bc.ca => {}
        Ok(_) => {
            return Err(refused(
                "it is not a CA (basicConstraints cA=TRUE is missing)".into(),
            ));
        }
        Err(_) => {
            return Err(refused(
                "its basicConstraints is malformed or repeated".into(),
            ));
        }
    }
    path_length(&link.certificate, &link.subject, below)?;
    match tbs.get_extension::<KeyUsage>() {
        Ok(Some((_, ku))) if ku.key_cert_sign() => Ok(()),
        Ok(_) => Err(refused("its keyUsage lacks keyCertSign".into())),
        Err(_) => Err(refused("its keyUsage is malformed or repeated".into())),
    }
}

/// For every certificate of the path whose issuer has a CRL in `crls`: the CRL, and the
/// certificate's serial on it. `below[i]` was issued by `cas[i]`.
fn check_revocation(
    role: Role,
    below: &[(&Certificate, String)],
    cas: &[Ca<'_>],
    crls: &[Crl],
    now: SystemTime,
) -> Result<(), PkiError> {
    for (level, (certificate, _)) in below.iter().enumerate() {
        let Some(ca) = cas.get(level) else { continue };
        let issuer = ca.certificate.tbs_certificate().subject();
        let Some(crl) = crls.iter().find(|crl| crl.issuer() == issuer) else {
            continue;
        };
        let crl_refused = |detail: String| PkiError::ChainCrl {
            issuer: ca.subject.clone(),
            detail,
        };
        let crl_sign = matches!(
            ca.certificate.tbs_certificate().get_extension::<KeyUsage>(),
            Ok(Some((_, ku))) if ku.crl_sign()
        );
        if !crl_sign {
            return Err(crl_refused(
                "its issuer's keyUsage lacks cRLSign, so it cannot sign a CRL".into(),
            ));
        }
        crl.check_signed_by(&ca.key, role, now)
            .map_err(|error| crl_refused(error.to_string()))?;
        let tbs = certificate.tbs_certificate();
        if let Some(date) = crl.revocation_date(tbs.serial_number()) {
            if level == 0 {
                return Err(PkiError::Revoked {
                    role,
                    serial: tbs.serial_number().to_string(),
                    date: date.to_string(),
                });
            }
            return Err(PkiError::ChainCertificate {
                subject: tbs.subject().to_string(),
                detail: format!(
                    "it was revoked on {date} (serial {})",
                    serial_hex(tbs.serial_number())
                ),
            });
        }
    }
    Ok(())
}
