//! Expected-device lists on the dispenser (PCI PIN 30-3): with `[dispensing] require_expected_devices`, a terminal whose serial no open list holds is refused before anything is reserved, and the attempt recorded for reconciliation.

use std::sync::atomic::Ordering;

use keymother_protocol::{DispenseRefusal, ModeRequest, TerminalIdentity};

use super::Dispenser;

/// The mode's name, as a refusal records it.
fn mode_name(request: &ModeRequest) -> &'static str {
    match request {
        ModeRequest::Tr31 => "tr31",
        ModeRequest::Certificate(_) => "certificate",
        ModeRequest::Profile => "profile",
    }
}

impl Dispenser {
    /// Whether a terminal must be on an open expected-device list to get a key.
    pub fn set_require_expected_devices(&self, required: bool) {
        self.require_expected_devices
            .store(required, Ordering::Relaxed);
    }

    /// See [`Dispenser::set_require_expected_devices`].
    pub fn expected_devices_required(&self) -> bool {
        self.require_expected_devices.load(Ordering::Relaxed)
    }

    /// Lets the terminal on when lists are not required or an open list holds its serial;
    /// otherwise records the attempt (serial, port, mode, time) and refuses it with
    /// DEVICE_NOT_EXPECTED. Fails closed: a list that cannot be read refuses.
    pub(super) fn admit_device(
        &self,
        terminal: &TerminalIdentity,
        request: &ModeRequest,
        port: &str,
    ) -> Result<(), DispenseRefusal> {
        if !self.expected_devices_required() {
            return Ok(());
        }
        let serial = &terminal.hardware_serial;
        let mut vault = self.vault();
        match vault.open_list_holding(serial) {
            Ok(Some(_)) => Ok(()),
            Ok(None) => {
                if let Err(error) = vault.record_unexpected_device(serial, port, mode_name(request))
                {
                    log::error!(event = "device-not-expected", port = port; "the refusal of {serial} could not be recorded: {error}");
                }
                drop(vault);
                log::warn!(
                    event = "device-not-expected", serial = serial.as_str(), port = port;
                    "{serial} on {port} refused: not on an open expected-device list"
                );
                Err(DispenseRefusal::DeviceNotExpected)
            }
            Err(error) => Err(DispenseRefusal::Internal(format!(
                "the expected-device lists cannot be read: {error}"
            ))),
        }
    }
}
