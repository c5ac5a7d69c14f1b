//! The serial adapter's DUKPT steps: a profile session's DUKPT_REQUEST reserves the slot's initial key on the dispenser, its sending is recorded, and DUKPT_CONFIRM is checked and recorded.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use keymother_protocol::profile::DukptSlot;
use keymother_protocol::{ApplianceAction, DispenseRefusal, TerminalIdentity};

use super::PortWorker;
use crate::events::DaemonEvent;

impl PortWorker<'_> {
    pub(super) async fn reserve_dukpt(
        &mut self,
        terminal: TerminalIdentity,
        slot: u8,
        dukpt: DukptSlot,
    ) -> Result<Vec<ApplianceAction>, String> {
        self.note_claim(&terminal);
        let dispenser = Arc::clone(&self.shared.dispenser);
        let port_name = self.port.name.clone();
        let (identity, wanted) = (terminal.clone(), dukpt.clone());
        let epoch = dispenser.tamper_epoch();
        let mut outcome = tokio::task::spawn_blocking(move || {
            dispenser.reserve_dukpt(&identity, slot, &wanted, &port_name)
        })
        .await
        .map_err(|error| format!("reservation task failed: {error}"))?;
        if outcome.is_ok() && self.shared.dispenser.tamper_epoch() != epoch {
            // As for master keys: reserved for this terminal, and not sent after a tamper.
            outcome = Err(DispenseRefusal::NotReady);
        }
        match &outcome {
            Ok(delivery) => log::info!(
                event = "dukpt-reserved", port = self.port.name.as_str(),
                hw_serial = terminal.hardware_serial.as_str(), bdk = dukpt.label.as_str(),
                ksn = hex::encode_upper(&delivery.ksn).as_str();
                "initial key {} of BDK {} reserved for {}",
                hex::encode_upper(&delivery.ksn), dukpt.label, terminal.hardware_serial
            ),
            Err(refusal) => log::warn!(
                event = "dukpt-refused", port = self.port.name.as_str(),
                hw_serial = terminal.hardware_serial.as_str(), bdk = dukpt.label.as_str();
                "no initial key of BDK {} for {}: {refusal}", dukpt.label, terminal.hardware_serial
            ),
        }
        self.dukpt_reserved = Some((terminal, dukpt));
        Ok(self
            .session
            .handle_dukpt_reservation(outcome, self.started.elapsed()))
    }

    pub(super) async fn mark_dukpt_sent(&mut self, ksn: Vec<u8>) -> Result<(), String> {
        let Some((terminal, dukpt)) = self.dukpt_reserved.clone() else {
            return Ok(());
        };
        let dispenser = Arc::clone(&self.shared.dispenser);
        let marked =
            tokio::task::spawn_blocking(move || dispenser.mark_dukpt_sent(&terminal, &dukpt, &ksn))
                .await
                .map_err(|error| format!("marking task failed: {error}"))?;
        if let Err(error) = marked {
            log::error!(
                event = "dukpt-mark-sent-failed", port = self.port.name.as_str();
                "port {}: recording a sent initial key failed: {error}", self.port.name
            );
        }
        Ok(())
    }

    pub(super) async fn confirm_dukpt(
        &mut self,
        terminal: TerminalIdentity,
        dukpt: DukptSlot,
        ksn: Vec<u8>,
        kcv: Vec<u8>,
    ) -> Result<Vec<ApplianceAction>, String> {
        let dispenser = Arc::clone(&self.shared.dispenser);
        let port_name = self.port.name.clone();
        let (identity, slot) = (terminal.clone(), dukpt.clone());
        let outcome = tokio::task::spawn_blocking(move || {
            dispenser.confirm_dukpt(&identity, &slot, &ksn, &kcv, &port_name)
        })
        .await
        .map_err(|error| format!("confirmation task failed: {error}"))?;
        match &outcome {
            Ok(confirmed) => {
                log::info!(
                    event = "dukpt-injected", port = self.port.name.as_str(),
                    hw_serial = terminal.hardware_serial.as_str(), bdk = dukpt.label.as_str(),
                    ksn = confirmed.initial_ksn.as_str(),
                    operator = confirmed.operator.as_deref().unwrap_or("");
                    "initial key {} of BDK {} injected into {}",
                    confirmed.initial_ksn, dukpt.label, terminal.hardware_serial
                );
                self.shared
                    .stats
                    .dukpt_injections
                    .fetch_add(1, Ordering::Relaxed);
                self.shared.emit(DaemonEvent::DukptInjected {
                    port: self.port.name.clone(),
                    hardware_serial: terminal.hardware_serial.to_string(),
                    bdk: dukpt.label.clone(),
                    ksn: confirmed.initial_ksn.clone(),
                });
            }
            Err(refusal) => log::warn!(
                event = "dukpt-confirmation-refused", port = self.port.name.as_str(),
                hw_serial = terminal.hardware_serial.as_str(), bdk = dukpt.label.as_str();
                "confirmation of an initial key of BDK {} by {} refused: {refusal}",
                dukpt.label, terminal.hardware_serial
            ),
        }
        Ok(self
            .session
            .handle_dukpt_confirmation(outcome.map(drop), self.started.elapsed()))
    }
}
