//! The certificates the appliance trusts: one CA per role and their optional CRLs, read from the files `[pki]` names when the daemon starts.

use std::time::SystemTime;

use keymother_pki::der::Decode;
use keymother_pki::x509_cert::Certificate;
use keymother_pki::{Crl, PkiError, Role, TrustAnchors, pem_bundle};
use sha2::Digest;

use crate::config::{ConfigError, PkiSettings, SourcedPath};

/// The trust anchors and CRLs in force. Built once at start; a changed file takes a restart
/// (which the audit trail records as a configuration change: see [`Trust::fingerprint`]).
#[derive(Debug)]
pub struct Trust {
    pub anchors: TrustAnchors,
    /// Checked against terminal device certificates (certificate mode).
    pub device_crl: Option<Crl>,
    /// The KDH CA's CRL (DER), attached to every certificate-mode delivery; empty for none.
    pub kdh_crl: Vec<u8>,
    /// Checked at every operator login: the operator CA's CRL and those of operator
    /// intermediate CAs (`[pki] operator_crl` holds one CRL or a PEM bundle of several).
    pub operator_crls: Vec<Crl>,
    /// Intermediate CA certificates (DER) between operator certificates and the operator CA
    /// (`[pki] operator_intermediates`), offered to every login's path building.
    pub operator_intermediates: Vec<Vec<u8>>,
    /// What is usable but needs attention (a CRL out of date), for the journal and
    /// `--check-config`.
    pub warnings: Vec<String>,
    fingerprint: String,
}

impl Trust {
    /// Reads and checks the files `[pki]` names: each CA must be a usable trust anchor for its
    /// role and no two roles may share one; each CRL must be issued and signed by its role's
    /// CA. Every refusal is a settings error naming the settings file, the line, the key and
    /// the file. A CRL that is out of date (or not yet valid) is only a warning here: every
    /// check that uses it refuses meanwhile, saying so.
    pub fn load(settings: &PkiSettings, now: SystemTime) -> Result<Trust, ConfigError> {
        let device_ca = read(&settings.device_ca)?;
        let kdh_ca = read(&settings.kdh_ca)?;
        let operator_ca = read(&settings.operator_ca)?;
        let by_role = |role: Role| match role {
            Role::TerminalDevice => &settings.device_ca,
            Role::KeyDistributionHost => &settings.kdh_ca,
            Role::Operator => &settings.operator_ca,
        };
        for (role, bytes) in [
            (Role::TerminalDevice, &device_ca),
            (Role::KeyDistributionHost, &kdh_ca),
            (Role::Operator, &operator_ca),
        ] {
            parse_certificate(bytes).map_err(|problem| by_role(role).error(problem))?;
        }
        let anchors = TrustAnchors::new(&device_ca, &kdh_ca, &operator_ca).map_err(|error| {
            match blamed_role(&error) {
                Some(role) => by_role(role).error(error),
                // Not traceable to one file: name the section.
                None => ConfigError {
                    key: "pki".to_owned(),
                    problem: error.to_string(),
                    ..settings.operator_ca.error("")
                },
            }
        })?;
        let mut fingerprint = sha2::Sha256::new();
        let mut warnings = Vec::new();
        for (label, bytes) in [
            ("device_ca", &device_ca),
            ("kdh_ca", &kdh_ca),
            ("operator_ca", &operator_ca),
        ] {
            absorb(&mut fingerprint, label, bytes);
        }
        let mut crl = |path: &Option<SourcedPath>, role: Role, label: &str| {
            let Some(path) = path else {
                return Ok(None);
            };
            let bytes = read(path)?;
            absorb(&mut fingerprint, label, &bytes);
            let crl = Crl::parse(&bytes).map_err(|error| path.error(error))?;
            match anchors.check_crl(role, &crl, now) {
                Ok(()) => {}
                Err(error @ (PkiError::CrlNotYetValid { .. } | PkiError::CrlOutOfDate { .. })) => {
                    warnings.push(format!(
                        "{}: {}: {error}; {role} certificates are refused until it is replaced",
                        path.key,
                        path.path.display()
                    ));
                }
                Err(error) => return Err(path.error(error)),
            }
            Ok(Some((crl, bytes)))
        };
        let device_crl = crl(&settings.device_crl, Role::TerminalDevice, "device_crl")?;
        let kdh_crl = crl(&settings.kdh_crl, Role::KeyDistributionHost, "kdh_crl")?;
        let kdh_crl = match (&kdh_crl, &settings.kdh_crl) {
            (Some((_, bytes)), Some(path)) => {
                crl_der(bytes).map_err(|problem| path.error(problem))?
            }
            _ => Vec::new(),
        };
        let operator_intermediates = match &settings.operator_intermediates {
            Some(path) => {
                let bytes = read(path)?;
                absorb(&mut fingerprint, "operator_intermediates", &bytes);
                intermediates(&bytes).map_err(|problem| path.error(problem))?
            }
            None => Vec::new(),
        };
        let operator_crls = match &settings.operator_crl {
            Some(path) => {
                let bytes = read(path)?;
                absorb(&mut fingerprint, "operator_crl", &bytes);
                let crls = OperatorCrls {
                    anchors: &anchors,
                    intermediates: &operator_intermediates,
                    now,
                };
                crls.load(path, &bytes, &mut warnings)?
            }
            None => Vec::new(),
        };
        Ok(Trust {
            anchors,
            device_crl: device_crl.map(|(crl, _)| crl),
            kdh_crl,
            operator_crls,
            operator_intermediates,
            warnings,
            fingerprint: hex::encode(fingerprint.finalize()),
        })
    }

    /// SHA-256 over every file read, so that a replaced CA or CRL counts as a settings change.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

/// The intermediate CA certificates of a PEM bundle (or one DER certificate), each a CA.
fn intermediates(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let blocks =
        pem_bundle(bytes, "CERTIFICATE", "certificate file").map_err(|error| error.to_string())?;
    for (index, der) in blocks.iter().enumerate() {
        let certificate = Certificate::from_der(der)
            .map_err(|error| format!("block {}: not a certificate: {error}", index + 1))?;
        let is_ca = certificate
            .tbs_certificate()
            .get_extension::<keymother_pki::x509_cert::ext::pkix::BasicConstraints>()
            .is_ok_and(|bc| bc.is_some_and(|(_, bc)| bc.ca));
        if !is_ca {
            return Err(format!(
                "block {}: {} is not a CA certificate (basicConstraints cA=TRUE is missing)",
                index + 1,
                certificate.tbs_certificate().subject()
            ));
        }
    }
    Ok(blocks)
}

/// What the operator CRL file is checked against at start.
struct OperatorCrls<'a> {
    anchors: &'a TrustAnchors,
    intermediates: &'a [Vec<u8>],
    now: SystemTime,
}

impl OperatorCrls<'_> {
    /// The CRLs of `[pki] operator_crl`: one CRL (DER or PEM) or a PEM bundle. The operator
    /// CA's is checked here as before (out of date: a warning); one of an operator
    /// intermediate must name a certificate of `[pki] operator_intermediates` as its issuer
    /// and is checked at each login against that certificate; any other issuer is refused.
    fn load(
        &self,
        path: &SourcedPath,
        bytes: &[u8],
        warnings: &mut Vec<String>,
    ) -> Result<Vec<Crl>, ConfigError> {
        let blocks =
            pem_bundle(bytes, "X509 CRL", "CRL file").map_err(|error| path.error(error))?;
        let root = self
            .anchors
            .ca_certificate(Role::Operator)
            .map(|ca| ca.tbs_certificate().subject().clone());
        let mut crls = Vec::new();
        for (index, der) in blocks.iter().enumerate() {
            let crl = Crl::parse(der).map_err(|error| path.error(error))?;
            if root.as_ref() == Some(crl.issuer()) {
                match self.anchors.check_crl(Role::Operator, &crl, self.now) {
                    Ok(()) => {}
                    Err(
                        error @ (PkiError::CrlNotYetValid { .. } | PkiError::CrlOutOfDate { .. }),
                    ) => warnings.push(format!(
                        "{}: {}: {error}; operator certificates are refused until it is replaced",
                        path.key,
                        path.path.display()
                    )),
                    Err(error) => return Err(path.error(error)),
                }
            } else if !self.intermediates.iter().any(|der| {
                Certificate::from_der(der)
                    .is_ok_and(|ca| ca.tbs_certificate().subject() == crl.issuer())
            }) {
                return Err(path.error(format!(
                    "the CRL in block {} was issued by {}, not by the operator CA nor by a \
                     certificate of pki.operator_intermediates",
                    index + 1,
                    crl.issuer()
                )));
            }
            crls.push(crl);
        }
        Ok(crls)
    }
}

fn read(path: &SourcedPath) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(&path.path).map_err(|error| path.error(format!("cannot be read: {error}")))
}

fn absorb(hasher: &mut sha2::Sha256, label: &str, bytes: &[u8]) {
    hasher.update((label.len() as u64).to_be_bytes());
    hasher.update(label.as_bytes());
    hasher.update((bytes.len() as u64).to_be_bytes());
    hasher.update(bytes);
}

/// DER of a PEM (or DER) object labelled `label`.
fn pem_or_der(bytes: &[u8], label: &str) -> Result<Vec<u8>, String> {
    let trimmed = bytes.trim_ascii_start();
    if !trimmed.starts_with(b"-----BEGIN") {
        return Ok(bytes.to_vec());
    }
    let text = std::str::from_utf8(trimmed).map_err(|_| "PEM that is not text".to_owned())?;
    let (found, document) = keymother_pki::der::Document::from_pem(text)
        .map_err(|error| format!("malformed PEM: {error}"))?;
    if found != label {
        return Err(format!(
            "its PEM block is not labelled {label} (-----BEGIN {label}-----)"
        ));
    }
    Ok(document.as_bytes().to_vec())
}

/// Whether `bytes` hold one certificate, so that a file of something else is blamed on its
/// own key before the anchors are judged together.
fn parse_certificate(bytes: &[u8]) -> Result<(), String> {
    let der = pem_or_der(bytes, "CERTIFICATE")?;
    Certificate::from_der(&der)
        .map(drop)
        .map_err(|error| format!("is not a CA certificate (PEM or DER): {error}"))
}

fn crl_der(bytes: &[u8]) -> Result<Vec<u8>, String> {
    pem_or_der(bytes, "X509 CRL")
}

/// The role whose CA file an anchor error is about: the role it names, the second of two
/// roles sharing a CA.
fn blamed_role(error: &PkiError) -> Option<Role> {
    let named = |what: &str| {
        Role::ALL
            .into_iter()
            .find(|role| what.starts_with(&role.to_string()))
    };
    match error {
        PkiError::BadAnchor { role, .. } | PkiError::BadSignature { role, .. } => Some(*role),
        PkiError::SharedAnchor { second, .. } => Some(*second),
        PkiError::NotRsa { what, .. }
        | PkiError::KeyTooShort { what, .. }
        | PkiError::UnsupportedSignatureAlgorithm { what, .. }
        | PkiError::UnknownCriticalExtension { what, .. }
        | PkiError::BadExtension { what, .. } => named(what),
        _ => None,
    }
}
