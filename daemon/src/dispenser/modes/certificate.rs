//! Certificate mode: the device certificate verified before anything is reserved (anchors, CRL, a set clock, the terminal's hardware serial), then the master key sealed for the terminal under the KDH key.

use std::sync::Arc;

use keymother_pki::key_transport::{DeliveryContext, seal_for_terminal};
use keymother_pki::{PkiError, Role, VerifiedCertificate};
use keymother_protocol::{
    CertificateDelivery, CertificateProblem, CertificateRefusal, CertificateRequest, Delivery,
    DispenseRefusal, TerminalIdentity,
};

use super::{ClearKey, Mode};
use crate::dispenser::Dispenser;
use crate::dispenser::secrets::LoadedKdh;
use crate::trust::Trust;

/// Certificate mode for one request: the verified device, with the KDH identity and the trust
/// anchors it was verified against, and the terminal's nonce.
struct Certificate {
    device: VerifiedCertificate,
    kdh: Arc<LoadedKdh>,
    trust: Arc<Trust>,
    nonce: [u8; keymother_protocol::NONCE_LENGTH],
}

/// Checks a terminal's device certificate: the manufacturer CA, validity, key usage, the
/// CRL, and that it names the terminal's hardware serial. Nothing is reserved before.
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
    let verified = trust
        .anchors
        .verify(
            Role::TerminalDevice,
            &request.device_certificate,
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
        nonce: request.nonce,
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
        let context = DeliveryContext {
            hardware_serial: key.hardware_serial,
            nonce: &self.nonce,
            key_index: key.key_index.value(),
        };
        let sealed = seal_for_terminal(
            &self.kdh.key,
            &self.device,
            &context,
            key.master_key,
            &self.trust.kdh_crl,
        )
        .map_err(|error| key.refusal("cannot be sealed for the terminal", &error))?;
        let mode_data = CertificateDelivery {
            nonce: sealed.nonce,
            encrypted_key: sealed.encrypted_key,
            signature: sealed.signature,
            crl: sealed.crl,
        }
        .encode()
        .map_err(|error| key.refusal("cannot be framed", &error))?;
        Ok(Delivery {
            key_index: key.key_index.value(),
            key_block: sealed.key_block,
            kcv: sealed.kcv,
            mode_data,
        })
    }
}
