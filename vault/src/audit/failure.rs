//! The `injection-failed` audit event's cause and fields: a delivered key that its terminal never confirmed (idle timeout, port lost, ABORT). The key stays reserved for the terminal.

use keymother_domain::{HardwareSerial, KeyIndex};

use super::AuditRow;
use super::event::AuditEvent;
use crate::{Vault, VaultError};

/// Why a delivered key went unconfirmed, as the stable word the `cause` field carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InjectionFailureCause {
    /// The terminal sent nothing for the idle timeout after its key was delivered.
    IdleTimeout,
    /// The port closed or failed (cable pulled, adapter unplugged) after the delivery.
    PortLost,
    /// The terminal sent ABORT after its key was delivered.
    Abort,
}

impl InjectionFailureCause {
    /// Every cause, in a fixed order.
    pub const ALL: [InjectionFailureCause; 3] = [
        InjectionFailureCause::IdleTimeout,
        InjectionFailureCause::PortLost,
        InjectionFailureCause::Abort,
    ];

    /// The `cause` field's word: `idle-timeout`, `port-lost` or `abort`.
    pub fn as_str(self) -> &'static str {
        match self {
            InjectionFailureCause::IdleTimeout => "idle-timeout",
            InjectionFailureCause::PortLost => "port-lost",
            InjectionFailureCause::Abort => "abort",
        }
    }
}

impl std::fmt::Display for InjectionFailureCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for InjectionFailureCause {
    type Err = UnknownFailureCause;

    /// Reads the `cause` field back (reports count failures by cause).
    fn from_str(word: &str) -> Result<Self, Self::Err> {
        InjectionFailureCause::ALL
            .into_iter()
            .find(|cause| cause.as_str() == word)
            .ok_or(UnknownFailureCause)
    }
}

/// A `cause` word that is none of `idle-timeout`, `port-lost`, `abort`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not an injection failure cause (expected idle-timeout, port-lost or abort)")]
pub struct UnknownFailureCause;

impl AuditEvent {
    /// The fields of an unconfirmed delivery; empty for any other event
    /// ([`AuditEvent::fields`] calls it for it only).
    pub(super) fn failure_fields(&self) -> Vec<(&'static str, String)> {
        match self {
            AuditEvent::InjectionFailed {
                port,
                hardware_serial,
                key_index,
                cause,
                operator: _,
            } => {
                let mut fields = vec![
                    ("port", port.clone()),
                    ("hardware_serial", hardware_serial.to_string()),
                ];
                if let Some(key_index) = key_index {
                    fields.push(("key_index", key_index.to_string()));
                }
                fields.push(("cause", cause.as_str().to_owned()));
                fields
            }
            _ => Vec::new(),
        }
    }
}

impl Vault {
    /// Records that `hardware_serial` on `port` never confirmed what was delivered to it
    /// (`key_index`, when a master key was), and why. Only the audit row is written: the key
    /// stays reserved (pending) for the terminal, never released or given to another.
    pub fn record_injection_failure(
        &mut self,
        port: &str,
        hardware_serial: &HardwareSerial,
        key_index: Option<KeyIndex>,
        cause: InjectionFailureCause,
        operator: Option<&str>,
    ) -> Result<AuditRow, VaultError> {
        self.record_audit(AuditEvent::InjectionFailed {
            port: port.to_owned(),
            hardware_serial: hardware_serial.clone(),
            key_index,
            cause,
            operator: operator.map(str::to_owned),
        })
    }
}
