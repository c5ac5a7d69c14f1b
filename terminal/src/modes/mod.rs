//! One module per key mode on the terminal's side: how a delivery of that mode becomes a master key in the key store, behind [`open`], the one place the modes are told apart.

pub(crate) mod certificate;
pub(crate) mod tr31;

use keymother_crypto::SecretKey;
use keymother_protocol::{CertificateDelivery, InstallRefusal};

use crate::key_store::SoftwareKeyStore;

/// A key the appliance delivered, as the session hands it to the terminal's caller.
pub struct Delivered<'a> {
    pub key_index: u32,
    /// The key block (text) as it arrived.
    pub key_block: &'a str,
    /// The check value the appliance announced.
    pub announced_kcv: &'a [u8],
    /// Certificate mode's part of the delivery; `None` in tr31 mode.
    pub certificate: Option<&'a CertificateDelivery>,
}

/// Opens `delivered` with what the key store holds for its mode.
pub(crate) fn open(
    store: &mut SoftwareKeyStore,
    delivered: &Delivered<'_>,
) -> Result<SecretKey, InstallRefusal> {
    match delivered.certificate {
        None => tr31::open(store.transport_key(), delivered),
        Some(delivery) => certificate::open(store.certificate(), delivered, delivery),
    }
}
