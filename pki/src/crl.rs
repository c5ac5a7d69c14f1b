//! Certificate revocation lists: [`Crl`] parsed from DER or PEM, and checked against its role's CA ([`TrustAnchors::check_crl`]).

use std::time::SystemTime;

use der::{Decode, Reader, SliceReader};
use x509_cert::certificate::Version;
use x509_cert::crl::{CertificateList, TbsCertList};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Time;

use crate::encoding::{first_element, parse_error, to_der};
use crate::extensions::{KNOWN_CRL_EXTENSIONS, check_critical};
use crate::public_key::{PublicKey, verify_signature_by};
use crate::validity::x509_now;
use crate::{PkiError, Role, TrustAnchors};

/// A parsed X.509 CRL (v1 or v2). Its signature and dates are checked by [`TrustAnchors::verify`]
/// (or [`TrustAnchors::check_crl`]) against the role's CA.
#[derive(Clone, Debug)]
pub struct Crl {
    list: CertificateList,
    tbs: Vec<u8>,
}

impl Crl {
    /// Parses a CRL in DER or PEM (`-----BEGIN X509 CRL-----`).
    pub fn parse(bytes: &[u8]) -> Result<Crl, PkiError> {
        let der = to_der(bytes, "X509 CRL", "CRL")?;
        let list = decode_crl(&der).map_err(|e| parse_error("CRL", e))?;
        let tbs = first_element(&der)
            .ok_or_else(|| parse_error("CRL", "no TBSCertList"))?
            .to_vec();
        Ok(Crl { list, tbs })
    }

    /// The CRL's version as it was written: 1 when the TBSCertList has no version field.
    pub fn version(&self) -> u8 {
        match self.list.tbs_cert_list.version {
            Version::V1 => 1,
            Version::V2 => 2,
            Version::V3 => 3,
        }
    }

    /// The issuer's name.
    pub fn issuer(&self) -> &Name {
        &self.list.tbs_cert_list.issuer
    }

    /// Whether `serial` is listed (without any check of the CRL itself).
    pub fn lists(&self, serial: &SerialNumber) -> bool {
        self.revocation_date(serial).is_some()
    }

    /// When `serial` was revoked, if it is listed.
    pub(crate) fn revocation_date(&self, serial: &SerialNumber) -> Option<Time> {
        self.list
            .tbs_cert_list
            .revoked_certificates
            .as_ref()?
            .iter()
            .find(|r| r.serial_number.as_bytes() == serial.as_bytes())
            .map(|r| r.revocation_date)
    }
}

impl TrustAnchors {
    /// Checks a CRL for `role`: issued and signed by the role's CA (which must have cRLSign),
    /// thisUpdate not in the future, nextUpdate present and not passed.
    pub fn check_crl(&self, role: Role, crl: &Crl, now: SystemTime) -> Result<(), PkiError> {
        let anchor = self.required_anchor(role)?;
        let tbs = &crl.list.tbs_cert_list;
        if &tbs.issuer != anchor.certificate.tbs_certificate().subject() {
            return Err(PkiError::CrlWrongIssuer {
                role,
                issuer: tbs.issuer.to_string(),
            });
        }
        if !anchor.crl_sign {
            return Err(PkiError::BadAnchor {
                role,
                detail: "its keyUsage lacks cRLSign, so it cannot sign a CRL".into(),
            });
        }
        crl.check_signed_by(&anchor.public_key, role, now)
    }
}

impl Crl {
    /// Checks this CRL's signature under `key` (its issuer's, whose name the caller has
    /// matched and whose cRLSign it has checked), its critical extensions and its dates.
    pub(crate) fn check_signed_by(
        &self,
        key: &PublicKey,
        role: Role,
        now: SystemTime,
    ) -> Result<(), PkiError> {
        let crl = self;
        let now_dt = x509_now(now)?;
        let tbs = &crl.list.tbs_cert_list;
        verify_signature_by(
            key,
            &crl.list.signature_algorithm,
            &tbs.signature,
            &crl.tbs,
            &crl.list.signature,
            "CRL",
            role,
        )?;
        check_critical(
            tbs.crl_extensions.iter().flatten(),
            &KNOWN_CRL_EXTENSIONS,
            "CRL",
        )?;
        for entry in tbs.revoked_certificates.iter().flatten() {
            check_critical(
                entry.crl_entry_extensions.iter().flatten(),
                &KNOWN_CRL_EXTENSIONS,
                "CRL entry",
            )?;
        }
        if tbs.this_update.to_system_time() > now {
            return Err(PkiError::CrlNotYetValid {
                this_update: tbs.this_update.to_string(),
                now: now_dt.to_string(),
            });
        }
        let next = tbs.next_update.ok_or(PkiError::CrlNoNextUpdate)?;
        if next.to_system_time() < now {
            return Err(PkiError::CrlOutOfDate {
                next_update: next.to_string(),
                now: now_dt.to_string(),
            });
        }
        Ok(())
    }
}

/// Decodes a CRL's DER, version 2 or (without a version field) 1: the one rule for every CRL
/// keymother reads ([`Crl::parse`] and the `X509 CRL` blocks of a PEM bundle). An error is
/// the version 2 decoder's.
pub(crate) fn decode_crl(der: &[u8]) -> der::Result<CertificateList> {
    CertificateList::from_der(der).or_else(|error| decode_v1(der).map_err(|_| error))
}

/// Decodes a version 1 CRL, whose TBSCertList has no version field (RFC 5280 section 5.1.2.1:
/// "version" is OPTIONAL and absent in v1), which x509-cert reads as required. A v1 CRL has no
/// CRL extensions; anything after the revoked certificates is refused as trailing data.
fn decode_v1(der: &[u8]) -> der::Result<CertificateList> {
    let mut reader = SliceReader::new(der)?;
    let list = reader.sequence(|outer| -> der::Result<CertificateList> {
        let tbs_cert_list = outer.sequence(|tbs| -> der::Result<TbsCertList> {
            Ok(TbsCertList {
                version: Version::V1,
                signature: tbs.decode()?,
                issuer: tbs.decode()?,
                this_update: tbs.decode()?,
                next_update: tbs.decode()?,
                revoked_certificates: tbs.decode()?,
                crl_extensions: None,
            })
        })?;
        Ok(CertificateList {
            tbs_cert_list,
            signature_algorithm: outer.decode()?,
            signature: outer.decode()?,
        })
    })?;
    reader.finish()?;
    Ok(list)
}
