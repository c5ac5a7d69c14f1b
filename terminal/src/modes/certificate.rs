//! Certificate mode on the terminal's side, a TR-34 KRD: check the appliance's KDH credential token (making this session's nonce), then open the key token sent for this device's certificate.

use std::time::SystemTime;

use keymother_crypto::SecretKey;
use keymother_protocol::{CertificateDelivery, CertificateFreshness, InstallRefusal};

use super::Delivered;
use crate::certificate::CertificateIdentity;

/// Checks the appliance's KDH credential token with the terminal's identity, if it has one.
pub(crate) fn verify_appliance(
    identity: Option<&mut CertificateIdentity>,
    kdh_credential_token: &[u8],
) -> Result<CertificateFreshness, String> {
    match identity {
        Some(identity) => identity.verify_appliance(kdh_credential_token, SystemTime::now()),
        None => Err("this terminal has no KDH CA to check against".to_owned()),
    }
}

/// Opens a key token sent to this device (PROTOCOL.md 9.1).
pub(crate) fn open(
    identity: Option<&mut CertificateIdentity>,
    delivered: &Delivered<'_>,
    delivery: &CertificateDelivery,
) -> Result<SecretKey, InstallRefusal> {
    let Some(identity) = identity else {
        return Err(InstallRefusal::NotAuthentic(
            "this terminal has no certificate-mode identity".to_owned(),
        ));
    };
    identity.open(
        delivered.key_index,
        delivered.key_block,
        delivered.announced_kcv,
        delivery,
        SystemTime::now(),
    )
}
