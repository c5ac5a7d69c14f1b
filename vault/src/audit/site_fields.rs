//! The audit fields of the site controls' events: expected-device lists and reconciliation, re-injection grants, and the zeroize lifecycle (final exports, recommissioning).

use super::event::AuditEvent;

impl AuditEvent {
    /// The fields of expected-device lists and their reconciliation; empty for any other
    /// event ([`AuditEvent::fields`] calls it for these only).
    pub(super) fn expected_fields(&self) -> Vec<(&'static str, String)> {
        let yes_no = |flag: bool| if flag { "yes" } else { "no" }.to_owned();
        match self {
            AuditEvent::ExpectedImport {
                list,
                devices,
                sealed,
                file,
                file_sha256,
                operator: _,
            } => vec![
                ("list", list.clone()),
                ("devices", devices.to_string()),
                ("sealed", yes_no(*sealed)),
                ("file", file.clone()),
                ("file_sha256", file_sha256.clone()),
            ],
            AuditEvent::ExpectedImportRefused {
                list,
                file,
                reason,
                operator: _,
            } => vec![
                ("list", list.clone()),
                ("file", file.clone()),
                ("reason", reason.clone()),
            ],
            AuditEvent::ExpectedClose {
                list,
                devices,
                injected,
                pending,
                missing,
                refused,
                operator: _,
            } => vec![
                ("list", list.clone()),
                ("devices", devices.to_string()),
                ("injected", injected.to_string()),
                ("pending", pending.to_string()),
                ("missing", missing.to_string()),
                ("refused", refused.to_string()),
            ],
            AuditEvent::ReconcileExport {
                list,
                file,
                rows,
                file_sha256,
                operator: _,
            } => vec![
                ("list", list.clone()),
                ("file", file.clone()),
                ("rows", rows.to_string()),
                ("file_sha256", file_sha256.clone()),
            ],
            _ => Vec::new(),
        }
    }

    /// The fields of re-injection grants: granted, revoked, used; empty for any other event
    /// ([`AuditEvent::fields`] calls it for these only).
    pub(super) fn reinjection_fields(&self) -> Vec<(&'static str, String)> {
        match self {
            AuditEvent::ReinjectionGranted {
                grant,
                hardware_serial,
                slot,
                reason,
                operator: _,
            }
            | AuditEvent::ReinjectionRevoked {
                grant,
                hardware_serial,
                slot,
                reason,
                operator: _,
            } => vec![
                ("grant", grant.to_string()),
                ("hardware_serial", hardware_serial.to_string()),
                ("slot", slot.to_string()),
                ("reason", reason.clone()),
            ],
            AuditEvent::ReinjectionUsed {
                grant,
                hardware_serial,
                slot,
                key,
                port,
                operator: _,
            } => vec![
                ("grant", grant.to_string()),
                ("hardware_serial", hardware_serial.to_string()),
                ("slot", slot.to_string()),
                ("key", key.clone()),
                ("port", port.clone()),
            ],
            _ => Vec::new(),
        }
    }

    /// The fields of the zeroize lifecycle: the final exports a zeroize seals, the vault that
    /// succeeds a zeroized one; empty for any other event ([`AuditEvent::fields`] calls it for
    /// these only).
    pub(super) fn lifecycle_fields(&self) -> Vec<(&'static str, String)> {
        match self {
            AuditEvent::FinalExport {
                registry,
                rows,
                only_new,
                file_sha256,
                operator: _,
            } => vec![
                ("registry", registry.as_str().to_owned()),
                ("rows", rows.to_string()),
                ("only_new", if *only_new { "yes" } else { "no" }.to_owned()),
                ("file_sha256", file_sha256.clone()),
            ],
            AuditEvent::Recommission {
                archive,
                archive_sha256,
                previous_device_id,
                last_sequence,
                last_hash,
                reason,
                operator: _,
            } => vec![
                ("archive", archive.clone()),
                ("archive_sha256", archive_sha256.clone()),
                ("previous_device_id", previous_device_id.clone()),
                ("last_sequence", last_sequence.to_string()),
                ("last_hash", last_hash.clone()),
                ("reason", reason.clone()),
            ],
            _ => Vec::new(),
        }
    }
}
