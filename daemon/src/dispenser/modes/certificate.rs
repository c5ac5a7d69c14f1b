//! Certificate mode: the TR-34 KRD credential token's device certificate verified before anything is reserved (anchors, CRL, a set clock, the terminal's hardware serial), then the master key sent in a TR-34 key token signed with the KDH key.

use std::sync::Arc;

use keymother_pki::tr34::{self, Freshness, KeyTokenInput};
use keymother_pki::{PkiError, Role, VerifiedCertificate};
use keymother_protocol::{
    CertificateDelivery, CertificatePass, CertificateProblem, CertificateRefusal,
    CertificateRequest, Delivery, DispenseRefusal, TerminalIdentity,
};

use super::{ClearKey, Mode};
use crate::dispenser::Dispenser;
use crate::dispenser::secrets::LoadedKdh;
use crate::trust::Trust;

/// Certificate mode for one request: the verified device, with the KDH identity and the trust
/// anchors it was verified against, and the terminal's nonce (two-pass; `None`: one-pass).
struct Certificate {
    device: VerifiedCertificate,
    kdh: Arc<LoadedKdh>,
    trust: Arc<Trust>,
    nonce: Option<Vec<u8>>,
}

/// The device certificate a KRD credential token carries, and the nonce of a two-pass
/// request's random number token; a token that does not parse is refused as `BadToken`.
fn read_tokens(
    request: &CertificateRequest,
) -> Result<(Vec<u8>, Option<Vec<u8>>), DispenseRefusal> {
    let bad_token = |what: &str, error: &tr34::Tr34Error| {
        refused(CertificateProblem::BadToken, format!("the {what}: {error}"))
    };
    let credential = tr34::parse_credential_token(&request.krd_credential_token)
        .map_err(|error| bad_token("KRD credential token", &error))?;
    let [device_certificate] = credential.certificates.as_slice() else {
        return Err(refused(
            CertificateProblem::BadToken,
            format!(
                "the KRD credential token carries {} certificates; it must carry the device certificate alone",
                credential.certificates.len()
            ),
        ));
    };
    let nonce = match request.pass {
        CertificatePass::OnePass => None,
        CertificatePass::TwoPass => Some(
            tr34::parse_random_number_token(&request.random_number_token)
                .map_err(|error| bad_token("random number token", &error))?,
        ),
    };
    Ok((device_certificate.clone(), nonce))
}

/// Checks a terminal's tokens and device certificate: the manufacturer CA, validity, key
/// usage, the CRL, and that it names the terminal's hardware serial. Nothing is reserved before.
pub(super) fn prepare(
    dispenser: &Dispenser,
    terminal: &TerminalIdentity,
    request: &CertificateRequest,
) -> Result<Box<dyn Mode>, DispenseRefusal> {
    let (Some(trust), Some(kdh)) = (dispenser.trust(), dispenser.kdh()) else {
        return Err(refused(
            CertificateProblem::NotSetUp,
            "certificate mode is not set up on this appliance".to_owned(),
        ));
    };
    dispenser
        .clock()
        .check()
        .map_err(|why| refused(CertificateProblem::ClockNotSet, why))?;
    let (device_certificate, nonce) = read_tokens(request)?;
    let verified = trust
        .anchors
        .verify(
            Role::TerminalDevice,
            &device_certificate,
            keymother_vault::clock::now(),
            trust.device_crl.as_ref(),
        )
        .map_err(|error| refused(problem_of(&error), error.to_string()))?;
    let serial = terminal.hardware_serial.as_str();
    if !verified.subject_names(serial) {
        return Err(refused(
            CertificateProblem::OtherTerminal,
            format!(
                "the device certificate is for {}, not for hardware serial {serial}",
                verified.subject()
            ),
        ));
    }
    Ok(Box::new(Certificate {
        device: verified,
        kdh,
        trust,
        nonce,
    }))
}

/// A CERTIFICATE_REFUSED refusal: the problem as a type (for the bench), the detail as text
/// (for the terminal and the journal).
fn refused(problem: CertificateProblem, detail: String) -> DispenseRefusal {
    DispenseRefusal::CertificateRefused(CertificateRefusal { problem, detail })
}

/// The problem a verification error names, as the bench shows it.
fn problem_of(error: &PkiError) -> CertificateProblem {
    match error {
        // A CRL not yet valid reads "not yet valid" on the bench too, as it always has.
        PkiError::NotYetValid { .. } | PkiError::CrlNotYetValid { .. } => {
            CertificateProblem::NotYetValid
        }
        PkiError::Expired { .. } => CertificateProblem::Expired,
        PkiError::Revoked { .. } => CertificateProblem::Revoked,
        PkiError::BadSignature { .. } => CertificateProblem::BadSignature,
        _ => CertificateProblem::Other,
    }
}

impl Mode for Certificate {
    fn deliver(&self, key: &ClearKey<'_>) -> Result<Delivery, DispenseRefusal> {
        let freshness = match &self.nonce {
            Some(nonce) => Freshness::TwoPass { nonce },
            None => Freshness::OnePass {
                signing_time: keymother_vault::clock::now(),
            },
        };
        let token = tr34::build_key_token(
            &KeyTokenInput {
                kdh_key: &self.kdh.key,
                kdh: &self.kdh.verified,
                krd: &self.device,
                freshness,
                key_index: key.key_index,
                crl: &self.trust.kdh_crl,
            },
            key.master_key,
        )
        .map_err(|error| key.refusal("cannot be sent in a TR-34 key token", &error))?;
        let mode_data = CertificateDelivery {
            key_token: token.der,
        }
        .encode()
        .map_err(|error| key.refusal("cannot be framed", &error))?;
        Ok(Delivery {
            key_index: key.key_index.value(),
            key_block: token.header,
            kcv: token.kcv,
            mode_data,
        })
    }
}
