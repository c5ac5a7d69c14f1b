//! The certificates the appliance trusts: one CA per role and their optional CRLs, read from the files `[pki]` names when the daemon starts.

use std::time::SystemTime;

use keymother_pki::der::Decode;
use keymother_pki::x509_cert::Certificate;
use keymother_pki::{Crl, PkiError, Role, TrustAnchors};
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
    /// Checked at every operator login.
    pub operator_crl: Option<Crl>,
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
        let operator_crl = crl(&settings.operator_crl, Role::Operator, "operator_crl")?;
        let kdh_crl = match (&kdh_crl, &settings.kdh_crl) {
            (Some((_, bytes)), Some(path)) => {
                crl_der(bytes).map_err(|problem| path.error(problem))?
            }
            _ => Vec::new(),
        };
        Ok(Trust {
            anchors,
            device_crl: device_crl.map(|(crl, _)| crl),
            kdh_crl,
            operator_crl: operator_crl.map(|(crl, _)| crl),
            warnings,
            fingerprint: hex::encode(fingerprint.finalize()),
        })
    }

    /// SHA-256 over every file read, so that a replaced CA or CRL counts as a settings change.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
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
        return Err(format!("PEM label is {found:?}, expected {label:?}"));
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
