//! `pending`: the keys reserved or sent to a terminal and never confirmed (master keys and DUKPT initial keys), with their port, terminal, model, age and operator.

use std::time::SystemTime;

use keymother_control as api;
use keymother_vault::{PendingInjection, PendingSlot};

use super::handlers::{Context, blocking};

/// Seconds from an RFC 3339 time the vault wrote to `now`; 0 for a time in the future or
/// one that does not read (a clock set back).
fn age_seconds(reserved_at: &str, now: SystemTime) -> u64 {
    time::OffsetDateTime::parse(reserved_at, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(SystemTime::from)
        .and_then(|at| now.duration_since(at).ok())
        .map_or(0, |age| age.as_secs())
}

/// A pending injection as the control socket shows it.
fn entry(pending: PendingInjection, now: SystemTime) -> api::PendingEntry {
    let (kind, key_index, batch_id, bdk, device_id) = match pending.slot {
        PendingSlot::Master {
            key_index,
            batch_id,
        } => (
            api::PendingKind::Master,
            Some(key_index),
            Some(batch_id),
            None,
            None,
        ),
        PendingSlot::Dukpt { bdk, device_id } => (
            api::PendingKind::Dukpt,
            None,
            None,
            Some(bdk),
            Some(device_id),
        ),
    };
    api::PendingEntry {
        kind,
        key_index,
        batch_id,
        bdk,
        device_id,
        hardware_serial: pending.hardware_serial,
        state: pending.state.to_string(),
        port: pending.port,
        terminal_model: pending.terminal_model.map(|model| model.to_string()),
        operator: pending.operator,
        age_seconds: age_seconds(&pending.reserved_at, now),
        reserved_at: pending.reserved_at,
    }
}

pub(crate) async fn pending(
    context: &Context,
    request: api::Pending,
) -> Result<Vec<api::PendingEntry>, String> {
    let dispenser = context.dispenser();
    blocking(move || {
        let pending = dispenser
            .with_vault(|vault| vault.pending_injections())
            .map_err(|error| error.to_string())?;
        let now = keymother_vault::clock::now();
        Ok(pending
            .into_iter()
            .map(|pending| entry(pending, now))
            .filter(|entry| request.port.as_ref().is_none_or(|port| entry.port == *port))
            .filter(|entry| {
                request
                    .older_than_seconds
                    .is_none_or(|seconds| entry.age_seconds >= seconds)
            })
            .collect())
    })
    .await?
}

/// What `void` names: a key by its index, or a terminal by its hardware serial.
pub(crate) enum VoidTarget {
    Index(keymother_domain::KeyIndex),
    Serial(keymother_domain::HardwareSerial),
}

/// Exactly one of `key_index` and `hardware_serial`.
pub(crate) fn void_target(
    key_index: Option<keymother_domain::KeyIndex>,
    hardware_serial: Option<keymother_domain::HardwareSerial>,
) -> Result<VoidTarget, String> {
    match (key_index, hardware_serial) {
        (Some(index), None) => Ok(VoidTarget::Index(index)),
        (None, Some(serial)) => Ok(VoidTarget::Serial(serial)),
        (Some(_), Some(_)) => Err("void: give key_index or hardware_serial, not both".to_owned()),
        (None, None) => Err("void: give key_index or hardware_serial".to_owned()),
    }
}

/// Voids the key `target` names, with the vault's one `void` row.
pub(crate) fn void(
    vault: &mut keymother_vault::Vault,
    target: &VoidTarget,
    reason: &str,
    operator: &str,
) -> Result<keymother_vault::VoidedKey, String> {
    match target {
        VoidTarget::Index(index) => vault
            .void_key(*index, reason, operator)
            .map_err(|error| error.to_string()),
        VoidTarget::Serial(serial) => vault
            .void_key_of_serial(serial, reason, operator)
            .map_err(|error| error.to_string()),
    }
}
