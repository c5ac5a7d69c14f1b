//! Who may be given a key now, checked before anything is reserved: one port at a time per hardware serial, and a terminal holding a confirmed key of a slot only under a re-injection grant.
//!
//! A port's session claims its terminal's hardware serial with its first reservation and
//! holds it until the session ends (the serial adapter releases it: a new HELLO from another
//! terminal, an ABORT, the idle timeout, the port closing); the same serial asking on another
//! port meanwhile is refused SERIAL_BUSY, so two ports never share one terminal's key. A
//! tamper drops every claim, as it drops every session. The re-injection rule is the vault's
//! (`keymother_vault::reinjection`), decided again inside the reservation's transaction; the
//! check here refuses early, before a mode's own checks.

use std::collections::HashMap;

use keymother_domain::HardwareSerial;
use keymother_protocol::{DispenseRefusal, TerminalIdentity};
use keymother_vault::{Admission, DispenseError, DukptError, KeySlot};

use super::Dispenser;

/// The hardware serials being injected, each with the port whose session holds it.
#[derive(Debug, Default)]
pub(super) struct SerialClaims {
    held: HashMap<HardwareSerial, String>,
}

impl Dispenser {
    /// Before anything is reserved for `terminal` on `port` in `slot`: claims its serial for
    /// this port (SERIAL_BUSY if another port's session holds it), then refuses a terminal
    /// that already holds a confirmed key of the slot and has no re-injection grant
    /// (ALREADY_INJECTED).
    pub(super) fn admit(
        &self,
        terminal: &TerminalIdentity,
        port: &str,
        slot: &KeySlot,
    ) -> Result<(), DispenseRefusal> {
        let serial = &terminal.hardware_serial;
        self.claim_serial(serial, port)?;
        let admission = self
            .vault()
            .reinjection_admission(serial, slot)
            .map_err(|error| DispenseRefusal::Internal(format!("re-injection check: {error}")))?;
        match admission {
            Admission::AlreadyInjected { injected } => {
                Err(already_injected(serial.clone(), slot, injected))
            }
            Admission::New | Admission::Resume | Admission::Granted { .. } => Ok(()),
        }
    }

    /// Claims `serial` for `port`'s session; refused while another port's session holds it.
    fn claim_serial(&self, serial: &HardwareSerial, port: &str) -> Result<(), DispenseRefusal> {
        let mut claims = self.serial_claims();
        match claims.held.get(serial) {
            Some(holder) if holder != port => Err(DispenseRefusal::SerialBusy {
                port: holder.clone(),
            }),
            Some(_) => Ok(()),
            None => {
                claims.held.insert(serial.clone(), port.to_owned());
                Ok(())
            }
        }
    }

    /// The session on `port` that claimed `serial` has ended: another port may inject it.
    /// A claim another port holds is left alone.
    pub fn release_serial(&self, serial: &HardwareSerial, port: &str) {
        let mut claims = self.serial_claims();
        if claims.held.get(serial).is_some_and(|holder| holder == port) {
            claims.held.remove(serial);
        }
    }

    /// Drops every claim (a tamper drops every session).
    pub(super) fn drop_serial_claims(&self) {
        self.serial_claims().held.clear();
    }
}

/// The refusal of a terminal holding a confirmed key of `slot` (`injected`: its SMN, or its
/// initial KSN or key ID), in the vault's words.
pub(super) fn already_injected(
    hardware_serial: HardwareSerial,
    slot: &KeySlot,
    injected: String,
) -> DispenseRefusal {
    let words = match slot {
        KeySlot::Master => DispenseError::AlreadyInjected {
            hardware_serial,
            smn: injected,
        }
        .to_string(),
        KeySlot::Dukpt(bdk) => DukptError::AlreadyInjected {
            bdk: bdk.clone(),
            hardware_serial,
            initial_ksn: injected,
        }
        .to_string(),
    };
    DispenseRefusal::AlreadyInjected(words)
}
