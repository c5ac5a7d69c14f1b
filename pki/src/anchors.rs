//! Trust anchors: one CA certificate per role ([`TrustAnchors`]), and a leaf certificate verified against its role's CA.

use std::fmt;
use std::time::SystemTime;

use der::Decode;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage};
use x509_cert::{Certificate, TbsCertificate};

use crate::certificate::rsa_key;
use crate::encoding::{first_element, parse_error, to_der};
use crate::extensions::{
    KNOWN_CA_EXTENSIONS, KNOWN_CERT_EXTENSIONS, check_critical, describe_key_usage,
};
use crate::names::{check_names, constraints_of};
use crate::public_key::{PublicKey, public_key, verify_signature_by};
use crate::validity::{check_validity, x509_now};
use crate::{Crl, PkiError, Role, Subject, VerifiedCertificate};

/// A role's CA: its certificate, its key (RSA, or EC on P-256 or P-384), and whether its
/// keyUsage allows cRLSign.
pub(crate) struct Anchor {
    pub(crate) certificate: Certificate,
    pub(crate) public_key: PublicKey,
    pub(crate) crl_sign: bool,
}

/// One CA certificate per [`Role`].
pub struct TrustAnchors {
    device: Option<Anchor>,
    kdh: Option<Anchor>,
    operator: Option<Anchor>,
}

impl fmt::Debug for TrustAnchors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("TrustAnchors");
        for role in Role::ALL {
            d.field(
                &role.to_string(),
                &self.anchor(role).map_or_else(
                    || "none".to_string(),
                    |a| a.certificate.tbs_certificate().subject().to_string(),
                ),
            );
        }
        d.finish()
    }
}

impl TrustAnchors {
    /// Takes the three CA certificates (each DER or PEM). Each must be a self-signed RSA CA
    /// (basicConstraints cA=TRUE, keyUsage keyCertSign, key of at least 2048 bits), and no two
    /// roles may share a CA key or a CA name.
    pub fn new(device_ca: &[u8], kdh_ca: &[u8], operator_ca: &[u8]) -> Result<Self, PkiError> {
        TrustAnchors::for_roles(Some(device_ca), Some(kdh_ca), Some(operator_ca))
    }

    /// Like [`TrustAnchors::new`], for the roles given only: a terminal knows just the KDH CA
    /// (`for_roles(None, Some(kdh_ca), None)`). Verifying a certificate or a CRL of a role
    /// without a CA is refused ([`PkiError::NoAnchor`]); a certificate of a role without a CA
    /// presented for another role is reported as [`PkiError::UnknownIssuer`], since its issuer
    /// is not known. At least one CA must be given.
    pub fn for_roles(
        device_ca: Option<&[u8]>,
        kdh_ca: Option<&[u8]>,
        operator_ca: Option<&[u8]>,
    ) -> Result<Self, PkiError> {
        let parse =
            |role: Role, bytes: Option<&[u8]>| bytes.map(|b| Anchor::parse(role, b)).transpose();
        let anchors = TrustAnchors {
            device: parse(Role::TerminalDevice, device_ca)?,
            kdh: parse(Role::KeyDistributionHost, kdh_ca)?,
            operator: parse(Role::Operator, operator_ca)?,
        };
        if Role::ALL.iter().all(|&role| anchors.anchor(role).is_none()) {
            return Err(PkiError::NoAnchors);
        }
        for (i, &first) in Role::ALL.iter().enumerate() {
            for &second in &Role::ALL[i + 1..] {
                let (Some(a), Some(b)) = (anchors.anchor(first), anchors.anchor(second)) else {
                    continue;
                };
                if a.public_key == b.public_key {
                    return Err(PkiError::SharedAnchor {
                        first,
                        second,
                        what: "a public key",
                    });
                }
                if a.certificate.tbs_certificate().subject()
                    == b.certificate.tbs_certificate().subject()
                {
                    return Err(PkiError::SharedAnchor {
                        first,
                        second,
                        what: "a subject name",
                    });
                }
            }
        }
        Ok(anchors)
    }

    /// The CA certificate of `role`, if one was given.
    pub fn ca_certificate(&self, role: Role) -> Option<&Certificate> {
        self.anchor(role).map(|a| &a.certificate)
    }

    fn anchor(&self, role: Role) -> Option<&Anchor> {
        match role {
            Role::TerminalDevice => self.device.as_ref(),
            Role::KeyDistributionHost => self.kdh.as_ref(),
            Role::Operator => self.operator.as_ref(),
        }
    }

    pub(crate) fn required_anchor(&self, role: Role) -> Result<&Anchor, PkiError> {
        self.anchor(role).ok_or(PkiError::NoAnchor { role })
    }

    /// Verifies `leaf` (DER or PEM) as a certificate of `role` at the instant `now`: the
    /// signature by the role's CA, the validity periods of the leaf and the CA, the leaf's
    /// basicConstraints and keyUsage, and, when `crl` is given, the CRL (issuer, signature,
    /// thisUpdate/nextUpdate) and the leaf's serial on it.
    pub fn verify(
        &self,
        role: Role,
        leaf: &[u8],
        now: SystemTime,
        crl: Option<&Crl>,
    ) -> Result<VerifiedCertificate, PkiError> {
        let der = to_der(leaf, "CERTIFICATE", "certificate")?;
        let (certificate, key) = self.verify_direct(role, &der, now, crl, false)?;
        let PublicKey::Rsa(public_key) = key else {
            // verify_direct(.., false) returns RSA keys only.
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

    /// [`TrustAnchors::verify`] of a leaf (DER) issued by the role's CA itself; its key may be
    /// EC when `any_key` is set (operator login), else it must be RSA.
    pub(crate) fn verify_direct(
        &self,
        role: Role,
        der: &[u8],
        now: SystemTime,
        crl: Option<&Crl>,
        any_key: bool,
    ) -> Result<(Certificate, PublicKey), PkiError> {
        let now_dt = x509_now(now)?;
        let certificate = Certificate::from_der(der).map_err(|e| parse_error("certificate", e))?;
        let tbs = first_element(der).ok_or_else(|| parse_error("certificate", "no TBS"))?;
        let tbs_cert = certificate.tbs_certificate();
        let what = format!("{role} certificate");

        // 1. Issued by this role's CA, and no other.
        let anchor = self.issuing_anchor(role, &certificate, tbs, &what)?;

        // 2. Validity of the CA and the leaf.
        check_validity(Subject::Ca, &anchor.certificate, now, &now_dt)?;
        check_validity(Subject::Leaf, &certificate, now, &now_dt)?;

        // 3. No critical extension unknown to us; not a CA; keyUsage right for the role.
        check_leaf_extensions(role, tbs_cert, &what)?;

        // 3b. The nameConstraints of the role's CA hold for the leaf (as they do in a path).
        let ca_subject = anchor.certificate.tbs_certificate().subject().to_string();
        if let Some(constraints) =
            constraints_of(anchor.certificate.tbs_certificate(), &ca_subject)?
        {
            check_names(&constraints, &ca_subject, tbs_cert, &what)?;
        }

        // 4. The subject's key: RSA, or for an operator's login also EC.
        let key = if any_key {
            public_key(&certificate, &what)?
        } else {
            PublicKey::Rsa(rsa_key(&certificate, &what)?)
        };

        // 5. Revocation.
        if let Some(crl) = crl {
            self.check_crl(role, crl, now)?;
            if let Some(date) = crl.revocation_date(tbs_cert.serial_number()) {
                return Err(PkiError::Revoked {
                    role,
                    serial: tbs_cert.serial_number().to_string(),
                    date: date.to_string(),
                });
            }
        }

        Ok((certificate, key))
    }

    /// The anchor of `role`, after checking that its CA issued `certificate` (whose signed
    /// bytes are `tbs`). A certificate issued by another role's CA is [`PkiError::WrongRole`];
    /// one issued by no known CA is [`PkiError::UnknownIssuer`].
    fn issuing_anchor(
        &self,
        role: Role,
        certificate: &Certificate,
        tbs: &[u8],
        what: &str,
    ) -> Result<&Anchor, PkiError> {
        let tbs_cert = certificate.tbs_certificate();
        let anchor = self.required_anchor(role)?;
        let issued_by = |a: &Anchor| {
            tbs_cert.issuer() == a.certificate.tbs_certificate().subject()
                && verify_signature_by(
                    &a.public_key,
                    certificate.signature_algorithm(),
                    tbs_cert.signature(),
                    tbs,
                    certificate.signature(),
                    what,
                    role,
                )
                .is_ok()
        };
        if !issued_by(anchor) {
            if let Some(&presented) = Role::ALL
                .iter()
                .find(|&&r| r != role && self.anchor(r).is_some_and(issued_by))
            {
                return Err(PkiError::WrongRole {
                    expected: role,
                    presented,
                });
            }
            if tbs_cert.issuer() != anchor.certificate.tbs_certificate().subject() {
                return Err(PkiError::UnknownIssuer {
                    role,
                    issuer: tbs_cert.issuer().to_string(),
                });
            }
            // Same issuer name: report the precise signature failure.
            verify_signature_by(
                &anchor.public_key,
                certificate.signature_algorithm(),
                tbs_cert.signature(),
                tbs,
                certificate.signature(),
                what,
                role,
            )?;
        }
        Ok(anchor)
    }
}

/// Checks a leaf's extensions for `role`: no critical extension keymother does not understand,
/// not a CA (basicConstraints), and a keyUsage with the role's bit and without keyCertSign or
/// cRLSign. `what` names the certificate in errors.
pub(crate) fn check_leaf_extensions(
    role: Role,
    tbs_cert: &TbsCertificate,
    what: &str,
) -> Result<(), PkiError> {
    check_critical(
        tbs_cert.extensions().into_iter().flatten(),
        &KNOWN_CERT_EXTENSIONS,
        what,
    )?;
    let bc = tbs_cert
        .get_extension::<BasicConstraints>()
        .map_err(|_| PkiError::BadExtension {
            what: what.to_string(),
            extension: "basicConstraints",
        })?;
    if let Some((_, bc)) = bc
        && bc.ca
    {
        return Err(PkiError::LeafIsCa { role });
    }
    let ku = tbs_cert
        .get_extension::<KeyUsage>()
        .map_err(|_| PkiError::BadExtension {
            what: what.to_string(),
            extension: "keyUsage",
        })?;
    let Some((_, ku)) = ku else {
        return Err(PkiError::KeyUsageMissing {
            role,
            required: role.required_key_usage(),
            present: "no keyUsage extension".into(),
        });
    };
    if ku.key_cert_sign() {
        return Err(PkiError::KeyUsageForbidden {
            role,
            usage: "keyCertSign",
        });
    }
    if ku.crl_sign() {
        return Err(PkiError::KeyUsageForbidden {
            role,
            usage: "cRLSign",
        });
    }
    if !role.has_required_key_usage(&ku) {
        return Err(PkiError::KeyUsageMissing {
            role,
            required: role.required_key_usage(),
            present: describe_key_usage(&ku),
        });
    }
    Ok(())
}

impl Anchor {
    fn parse(role: Role, bytes: &[u8]) -> Result<Anchor, PkiError> {
        let bad = |detail: String| PkiError::BadAnchor { role, detail };
        let der = to_der(bytes, "CERTIFICATE", "CA certificate")?;
        let certificate =
            Certificate::from_der(&der).map_err(|e| parse_error("CA certificate", e))?;
        let tbs = first_element(&der).ok_or_else(|| parse_error("CA certificate", "no TBS"))?;
        let what = format!("{role} CA certificate");
        let public_key = public_key(&certificate, &what)?;
        let t = certificate.tbs_certificate();
        if t.issuer() != t.subject() {
            return Err(bad(
                "it is not self-signed (issuer differs from subject)".into()
            ));
        }
        verify_signature_by(
            &public_key,
            certificate.signature_algorithm(),
            t.signature(),
            tbs,
            certificate.signature(),
            &what,
            role,
        )
        .map_err(|e| bad(format!("its self-signature fails: {e}")))?;
        check_critical(
            t.extensions().into_iter().flatten(),
            &KNOWN_CA_EXTENSIONS,
            &what,
        )?;
        match t.get_extension::<BasicConstraints>() {
            Ok(Some((_, bc))) if bc.ca => {}
            Ok(_) => return Err(bad("basicConstraints cA=TRUE is missing".into())),
            Err(_) => return Err(bad("basicConstraints is malformed".into())),
        }
        let crl_sign = match t.get_extension::<KeyUsage>() {
            Ok(Some((_, ku))) if ku.key_cert_sign() => ku.crl_sign(),
            Ok(_) => return Err(bad("keyUsage keyCertSign is missing".into())),
            Err(_) => return Err(bad("keyUsage is malformed".into())),
        };
        Ok(Anchor {
            certificate,
            public_key,
            crl_sign,
        })
    }
}
