//! The serial adapter: one task per port feeding an `ApplianceSession`, carrying out its actions in order, reopening a vanished port with backoff.

mod dukpt;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use std::collections::VecDeque;

use keymother_protocol::{
    ApplianceAction, ApplianceConfig, ApplianceSession, DispenseRefusal, HardwareSerial,
    ModeRequest, Smn, TerminalIdentity,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_serial::{DataBits, FlowControl, SerialPortBuilderExt, SerialStream};

use keymother_domain::KeyIndex;
use keymother_protocol::SessionEvent;

use crate::config::{Parity, PortSettings, StopBits};
use crate::events::{DaemonEvent, InjectionFailureCause, UnconfirmedDelivery};
use crate::state::Shared;

/// Shortest and longest wait before reopening a port that failed.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_LONGEST: Duration = Duration::from_secs(5);
/// How often the session is ticked for its timeouts.
const TICK: Duration = Duration::from_millis(20);

fn open(port: &PortSettings) -> Result<SerialStream, tokio_serial::Error> {
    let path = port.path.to_string_lossy();
    tokio_serial::new(path, port.baud)
        .data_bits(DataBits::Eight)
        .parity(match port.parity {
            Parity::None => tokio_serial::Parity::None,
            Parity::Even => tokio_serial::Parity::Even,
            Parity::Odd => tokio_serial::Parity::Odd,
        })
        .stop_bits(match port.stop_bits {
            StopBits::One => tokio_serial::StopBits::One,
            StopBits::Two => tokio_serial::StopBits::Two,
        })
        .flow_control(FlowControl::None)
        .open_native_async()
}

/// Serves one port for ever: open, run sessions until the port fails, wait, reopen.
pub(crate) async fn serve_port(port: PortSettings, shared: Arc<Shared>) {
    let mut backoff = BACKOFF_FIRST;
    loop {
        match open(&port) {
            Ok(stream) => {
                log::info!(
                    event = "port-opened", port = port.name.as_str();
                    "port {} opened ({})", port.name, port.path.display()
                );
                shared.emit(DaemonEvent::PortOpened {
                    port: port.name.clone(),
                });
                backoff = BACKOFF_FIRST;
                let (reason, unconfirmed) = serve_stream(&port, stream, &shared).await;
                log::warn!(event = "port-lost", port = port.name.as_str(); "port {} lost: {reason}", port.name);
                shared.emit(DaemonEvent::PortLost {
                    port: port.name.clone(),
                    reason,
                });
                // A key delivered on it and not confirmed: the bench must hear of the failure.
                if let Some((hardware_serial, key_index)) = unconfirmed {
                    report_unconfirmed(
                        &shared,
                        UnconfirmedDelivery {
                            port: port.name.clone(),
                            hardware_serial,
                            key_index,
                            cause: InjectionFailureCause::PortLost,
                        },
                    )
                    .await;
                }
            }
            Err(error) => {
                log::debug!(event = "open-failed", port = port.name.as_str(); "port {} not opened: {error}", port.name);
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_LONGEST);
    }
}

/// The session settings for `port`: an empty TTK check value while the appliance is locked
/// makes every HELLO get NOT_READY.
fn session_config(port: &PortSettings, shared: &Shared) -> ApplianceConfig {
    let dispenser = &shared.dispenser;
    ApplianceConfig {
        device_id: dispenser.device_id().to_owned(),
        ttk_kcv: dispenser
            .ttk_kcv()
            .map(|kcv| kcv.as_bytes().to_vec())
            .unwrap_or_default(),
        modes: port.modes.clone(),
        idle_timeout: shared.idle_timeout,
        kdh_credential_token: dispenser.kdh_credential_token(),
        certificate_requests_per_minute: shared.certificate_requests_per_minute,
        // Profile mode: the profiles this port offers (none: mode 3 is never chosen).
        profiles: port.profiles.clone(),
    }
}

/// A delivery never confirmed: it goes to the journal and the audit trail (`injection-failed`),
/// then to the observers (long beep, error LED, error screen). The key stays reserved.
async fn report_unconfirmed(shared: &Shared, delivery: UnconfirmedDelivery) {
    let (port, serial, cause) = (
        delivery.port.as_str(),
        delivery.hardware_serial.as_str(),
        delivery.cause.as_str(),
    );
    match delivery.key_index {
        Some(key_index) => log::warn!(
            event = "injection-failed", port = port, hw_serial = serial,
            key_index = key_index.value(), cause = cause;
            "{delivery}"
        ),
        None => log::warn!(
            event = "injection-failed", port = port, hw_serial = serial, cause = cause;
            "{delivery}"
        ),
    }
    let dispenser = Arc::clone(&shared.dispenser);
    let recorded = delivery.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        dispenser.record_injection_failure(
            &recorded.port,
            &recorded.hardware_serial,
            recorded.key_index,
            recorded.cause,
        )
    })
    .await
    .map_err(|error| error.to_string())
    .and_then(|recorded| recorded.map_err(|error| error.to_string()));
    if let Err(error) = outcome {
        log::error!(event = "audit-failed", port = delivery.port.as_str(); "the injection-failed row could not be written: {error}");
    }
    shared.emit(DaemonEvent::DeliveryUnconfirmed(delivery));
}

/// The terminal and the master key (if one) delivered on a port and not confirmed yet.
type Delivered = (HardwareSerial, Option<KeyIndex>);

/// Runs the protocol on an open port until it fails; returns why, and the delivery it left
/// unconfirmed, if any.
async fn serve_stream(
    port: &PortSettings,
    stream: SerialStream,
    shared: &Shared,
) -> (String, Option<Delivered>) {
    let mut generation = shared.dispenser.generation();
    let mut tamper_epoch = shared.dispenser.tamper_epoch();
    let mut worker = PortWorker {
        session: ApplianceSession::new(session_config(port, shared)),
        stream,
        port,
        shared,
        started: Instant::now(),
        reserved_for: None,
        dukpt_reserved: None,
        claimed: None,
        delivered: None,
    };
    let reason = run_stream(&mut worker, &mut generation, &mut tamper_epoch).await;
    (reason, worker.delivered.take())
}

/// The loop of [`serve_stream`]: bytes and ticks in, actions carried out, until the port fails.
async fn run_stream(
    worker: &mut PortWorker<'_>,
    generation: &mut u64,
    tamper_epoch: &mut u64,
) -> String {
    let (port, shared) = (worker.port, worker.shared);
    let mut buffer = vec![0u8; 1024];
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let (actions, busy_since) = tokio::select! {
            read = worker.stream.read(&mut buffer) => match read {
                Ok(0) => return "the port closed".to_owned(),
                Ok(count) => {
                    let busy_since = Instant::now();
                    worker.after_tamper(tamper_epoch);
                    // A HELLO arriving right after a ceremony or a KDH install must see it.
                    if shared.dispenser.generation() != *generation {
                        *generation = shared.dispenser.generation();
                        worker.session.reconfigure(session_config(port, shared));
                    }
                    let now = worker.started.elapsed();
                    (worker.session.handle_bytes(&buffer[..count], now), busy_since)
                }
                Err(error) => return error.to_string(),
            },
            _ = ticker.tick() => {
                worker.after_tamper(tamper_epoch);
                // Keys loaded or zeroized since: terminals must see the change at once.
                if shared.dispenser.generation() != *generation {
                    *generation = shared.dispenser.generation();
                    worker.session.reconfigure(session_config(port, shared));
                }
                let now = worker.started.elapsed();
                (worker.session.handle_tick(now), Instant::now())
            }
        };
        if let Err(error) = worker.carry_out(actions).await {
            return error;
        }
        worker.release_after_session();
        let busy = busy_since.elapsed().as_nanos() as u64;
        shared.stats.busy_nanos.fetch_add(busy, Ordering::Relaxed);
    }
}

/// One open port: its session, its stream, and the terminal a key was last reserved for.
struct PortWorker<'a> {
    session: ApplianceSession,
    stream: SerialStream,
    port: &'a PortSettings,
    shared: &'a Shared,
    started: Instant,
    reserved_for: Option<TerminalIdentity>,
    /// The terminal and slot an initial key was last reserved for (profile mode).
    dukpt_reserved: Option<(TerminalIdentity, keymother_protocol::profile::DukptSlot)>,
    /// The hardware serial this port's session claimed with a reservation (no other port
    /// may inject it until the session ends).
    claimed: Option<HardwareSerial>,
    /// The terminal a key was delivered to and not confirmed yet, and the master key's
    /// index (none for a profile's DUKPT key): a failure if the port is lost now.
    delivered: Option<Delivered>,
}

impl Drop for PortWorker<'_> {
    /// A port that fails or closes ends its session: its serial is free again.
    fn drop(&mut self) {
        if let Some(serial) = self.claimed.take() {
            self.shared
                .dispenser
                .release_serial(&serial, &self.port.name);
        }
    }
}

impl PortWorker<'_> {
    /// Remembers the serial a reservation is asked for: the dispenser claims it for this
    /// port's session.
    fn note_claim(&mut self, terminal: &TerminalIdentity) {
        if self.claimed.as_ref() != Some(&terminal.hardware_serial) {
            self.release_claim();
            self.claimed = Some(terminal.hardware_serial.clone());
        }
    }

    /// Once the session that claimed a serial has ended (idle timeout, ABORT, a HELLO from
    /// another terminal), another port may inject it.
    fn release_after_session(&mut self) {
        let still_open = match (&self.claimed, self.session.terminal()) {
            (Some(serial), Some(terminal)) => terminal.hardware_serial == *serial,
            _ => false,
        };
        if !still_open {
            self.release_claim();
        }
    }

    fn release_claim(&mut self) {
        if let Some(serial) = self.claimed.take() {
            self.shared
                .dispenser
                .release_serial(&serial, &self.port.name);
        }
    }

    /// After a tamper the session is dropped whole, with its cached responses: a delivery
    /// made before is never sent again, and the terminal's next frame must be a HELLO, which
    /// gets NOT_READY.
    fn after_tamper(&mut self, seen: &mut u64) {
        let epoch = self.shared.dispenser.tamper_epoch();
        if epoch == *seen {
            return;
        }
        *seen = epoch;
        self.session = ApplianceSession::new(session_config(self.port, self.shared));
        self.reserved_for = None;
        self.dukpt_reserved = None;
        self.delivered = None;
        self.release_claim();
        log::warn!(event = "tamper", port = self.port.name.as_str(); "port {}: session dropped by the tamper response", self.port.name);
        self.shared.emit(DaemonEvent::PortIdle {
            port: self.port.name.clone(),
        });
    }

    /// Carries out the session's actions in order; adapter results feed back into the session.
    async fn carry_out(&mut self, actions: Vec<ApplianceAction>) -> Result<(), String> {
        let mut queue: VecDeque<ApplianceAction> = actions.into();
        while let Some(action) = queue.pop_front() {
            let follow_up = match action {
                ApplianceAction::Send(bytes) => {
                    self.stream
                        .write_all(&bytes)
                        .await
                        .map_err(|error| error.to_string())?;
                    self.stream
                        .flush()
                        .await
                        .map_err(|error| error.to_string())?;
                    Vec::new()
                }
                ApplianceAction::Reserve { terminal, request } => {
                    self.reserve(terminal, request).await?
                }
                ApplianceAction::MarkSent { key_index } => {
                    self.mark_sent(key_index).await?;
                    Vec::new()
                }
                ApplianceAction::Confirm {
                    terminal,
                    key_index,
                    kcv,
                    smn,
                } => self.confirm(terminal, key_index, kcv, smn).await?,
                ApplianceAction::ReserveDukpt {
                    terminal,
                    slot,
                    dukpt,
                } => self.reserve_dukpt(terminal, slot, dukpt).await?,
                ApplianceAction::MarkDukptSent { ksn, .. } => {
                    self.mark_dukpt_sent(ksn).await?;
                    Vec::new()
                }
                ApplianceAction::ConfirmDukpt {
                    terminal,
                    dukpt,
                    ksn,
                    kcv,
                    ..
                } => self.confirm_dukpt(terminal, dukpt, ksn, kcv).await?,
                ApplianceAction::Report(event) => {
                    log::info!(event = "session", port = self.port.name.as_str(); "{event}");
                    let still_delivered = self.delivered.is_some();
                    self.track_delivery(&event);
                    let structured = crate::events::structured_event(&self.port.name, &event);
                    self.shared.emit(DaemonEvent::Session {
                        port: self.port.name.clone(),
                        detail: event.to_string(),
                    });
                    match structured {
                        Some(DaemonEvent::DeliveryUnconfirmed(delivery)) if still_delivered => {
                            report_unconfirmed(self.shared, delivery).await;
                        }
                        // Its confirmation was refused with an ERROR, already a failure with
                        // its own words (a KCV mismatch, a quarantine): the session just ends.
                        Some(DaemonEvent::DeliveryUnconfirmed(delivery)) => {
                            self.shared.emit(DaemonEvent::PortIdle {
                                port: delivery.port,
                            });
                        }
                        Some(structured) => self.shared.emit(structured),
                        None => {}
                    }
                    Vec::new()
                }
            };
            queue.extend(follow_up);
        }
        Ok(())
    }

    /// Follows what was delivered and not confirmed yet, for a port lost meanwhile.
    fn track_delivery(&mut self, event: &SessionEvent) {
        match event {
            SessionEvent::Delivered {
                terminal,
                key_index,
            } => {
                // Key indexes have eight digits (the vault's); a larger one is not named.
                self.delivered =
                    Some((terminal.hardware_serial.clone(), KeyIndex::new(*key_index)));
            }
            SessionEvent::DukptDelivered { terminal, .. } => {
                let master_pending = self.delivered.as_ref().is_some_and(|(serial, key)| {
                    *serial == terminal.hardware_serial && key.is_some()
                });
                if !master_pending {
                    self.delivered = Some((terminal.hardware_serial.clone(), None));
                }
            }
            // An ERROR to the terminal after the delivery (its confirmation refused) is the
            // failure the bench shows: the delivery is not signalled again.
            SessionEvent::ErrorSent { code, .. }
                if *code != keymother_protocol::ErrorCode::BUSY =>
            {
                self.delivered = None
            }
            SessionEvent::Confirmed { .. }
            | SessionEvent::DukptConfirmed { .. }
            | SessionEvent::Aborted { .. }
            | SessionEvent::SessionEnded { .. } => self.delivered = None,
            _ => {}
        }
    }

    async fn reserve(
        &mut self,
        terminal: TerminalIdentity,
        request: ModeRequest,
    ) -> Result<Vec<ApplianceAction>, String> {
        self.note_claim(&terminal);
        let dispenser = Arc::clone(&self.shared.dispenser);
        let port_name = self.port.name.clone();
        let identity = terminal.clone();
        let epoch = self.shared.dispenser.tamper_epoch();
        let mut outcome =
            tokio::task::spawn_blocking(move || dispenser.reserve(&identity, &request, &port_name))
                .await
                .map_err(|error| format!("reservation task failed: {error}"))?;
        if outcome.is_ok() && self.shared.dispenser.tamper_epoch() != epoch {
            // The tamper came while the key was being reserved: it stays reserved for this
            // terminal, and is not sent.
            if let Ok(delivery) = &outcome {
                log::warn!(
                    event = "delivery-withheld", port = self.port.name.as_str(),
                    hw_serial = terminal.hardware_serial.as_str(), key_index = delivery.key_index;
                    "key {:08} reserved for {} is not sent: tamper", delivery.key_index, terminal.hardware_serial
                );
            }
            outcome = Err(DispenseRefusal::NotReady);
        }
        match &outcome {
            Ok(delivery) => log::info!(
                event = "key-reserved", port = self.port.name.as_str(),
                hw_serial = terminal.hardware_serial.as_str(), key_index = delivery.key_index;
                "key {:08} reserved for {}", delivery.key_index, terminal.hardware_serial
            ),
            Err(refusal) => log::warn!(
                event = "reservation-refused", port = self.port.name.as_str(),
                hw_serial = terminal.hardware_serial.as_str();
                "no key for {}: {refusal:?}", terminal.hardware_serial
            ),
        }
        self.reserved_for = Some(terminal);
        Ok(self
            .session
            .handle_reservation(outcome, self.started.elapsed()))
    }

    async fn mark_sent(&mut self, key_index: u32) -> Result<(), String> {
        let Some(terminal) = self.reserved_for.clone() else {
            return Ok(());
        };
        let dispenser = Arc::clone(&self.shared.dispenser);
        let marked = tokio::task::spawn_blocking(move || dispenser.mark_sent(&terminal, key_index))
            .await
            .map_err(|error| format!("marking task failed: {error}"))?;
        if let Err(error) = marked {
            log::error!(
                "port={} event=mark-sent-failed key_index={key_index:08} error={error}",
                self.port.name
            );
        }
        Ok(())
    }

    async fn confirm(
        &mut self,
        terminal: TerminalIdentity,
        key_index: u32,
        kcv: Vec<u8>,
        smn: Smn,
    ) -> Result<Vec<ApplianceAction>, String> {
        let dispenser = Arc::clone(&self.shared.dispenser);
        let port_name = self.port.name.clone();
        let (identity, reported_smn) = (terminal.clone(), smn.clone());
        let outcome = tokio::task::spawn_blocking(move || {
            dispenser.confirm(&identity, key_index, &kcv, &reported_smn, &port_name)
        })
        .await
        .map_err(|error| format!("confirmation task failed: {error}"))?;
        let (outcome, operator) = match outcome {
            Ok((confirmed, operator)) => (Ok(confirmed), operator),
            Err(refusal) => (Err(refusal), None),
        };
        match &outcome {
            Ok(confirmed) => {
                log::info!(
                    event = "injected", port = self.port.name.as_str(),
                    hw_serial = terminal.hardware_serial.as_str(), key_index = key_index,
                    smn = confirmed.smn.as_str(), operator = operator.as_deref().unwrap_or("");
                    "key {key_index:08} injected into {}, SMN {}{}", terminal.hardware_serial, confirmed.smn,
                    operator.as_deref().map(|name| format!(", operator {name}")).unwrap_or_default()
                );
                self.shared.stats.injections.fetch_add(1, Ordering::Relaxed);
                self.shared.emit(DaemonEvent::Injected {
                    port: self.port.name.clone(),
                    hardware_serial: terminal.hardware_serial.to_string(),
                    model: terminal.model.to_string(),
                    key_index,
                    smn: confirmed.smn.to_string(),
                    operator,
                });
            }
            Err(refusal) => log::warn!(
                event = "confirmation-refused", port = self.port.name.as_str(),
                hw_serial = terminal.hardware_serial.as_str(), key_index = key_index;
                "confirmation of key {key_index:08} by {} refused: {refusal:?}", terminal.hardware_serial
            ),
        }
        Ok(self
            .session
            .handle_confirmation(outcome, self.started.elapsed()))
    }
}
