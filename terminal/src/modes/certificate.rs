//! Certificate mode on the terminal's side: verify the appliance's KDH certificate (making this session's nonce), then open the delivery sealed for this device's certificate.

use std::time::SystemTime;

use keymother_crypto::SecretKey;
use keymother_protocol::certificate::NONCE_LENGTH;
use keymother_protocol::{CertificateDelivery, InstallRefusal};

use super::Delivered;
use crate::certificate::CertificateIdentity;

/// Verifies the appliance's KDH certificate with the terminal's identity, if it has one.
pub(crate) fn verify_appliance(
    identity: Option<&mut CertificateIdentity>,
    kdh_certificate: &[u8],
) -> Result<[u8; NONCE_LENGTH], String> {
    match identity {
        Some(identity) => identity.verify_appliance(kdh_certificate, SystemTime::now()),
        None => Err("this terminal has no KDH CA to check against".to_owned()),
    }
}

/// Opens a delivery sealed for this device (PROTOCOL.md 9.1).
pub(crate) fn open(
    identity: Option<&CertificateIdentity>,
    hardware_serial: &str,
    delivered: &Delivered<'_>,
    delivery: &CertificateDelivery,
) -> Result<SecretKey, InstallRefusal> {
    let Some(identity) = identity else {
        return Err(InstallRefusal::NotAuthentic(
            "this terminal has no certificate-mode identity".to_owned(),
        ));
    };
    identity.open(
        hardware_serial,
        delivered.key_index,
        delivered.key_block,
        delivered.announced_kcv,
        delivery,
        SystemTime::now(),
    )
}
