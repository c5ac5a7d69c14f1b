//! The daemon's events and the words they carry: what the adapters (serial, control, bench, display) tell each other through the shared state, as types.

use std::sync::Mutex;

use keymother_domain::{HardwareSerial, KeyIndex};
use keymother_protocol::{CertificateProblem, EndReason, ErrorCode, FailureCause, SessionEvent};
pub use keymother_vault::InjectionFailureCause;
use tokio::sync::mpsc::UnboundedSender;

/// Why keys do not flow, or [`Reason::Ready`]: what the display, `status` and the journal
/// say, chosen from the type and never from the words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    Ready,
    /// The daemon has not reported its state yet (the bench's first view).
    Starting,
    /// The tamper input fired; the key ceremonies must be held again.
    Tampered {
        input: String,
    },
    /// The KEK or the TTK is not loaded.
    Locked,
    /// `[clock] require_trusted` and nothing vouches for the clock: why.
    ClockNotSet {
        why: String,
    },
    /// The inventory is empty.
    NoKeys,
    /// `[bench] require_tamper_input` and the tamper input is not watched: the words of
    /// [`crate::dispenser::Dispenser::tamper_input_missing`].
    TamperInputMissing {
        words: String,
    },
    /// Operator login is required and `[pki]` names no operator CA (the factory settings).
    NoOperatorCa,
    /// Operator login is required and nobody is logged in.
    NoOperator,
    /// No serial port is open.
    NoPort,
    /// The vault was zeroized: nothing is dispensed until it is recommissioned.
    Zeroized,
    /// The background integrity check found the vault damaged: SQLite's findings.
    VaultDamaged {
        findings: String,
    },
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Ready => f.write_str("ready"),
            Reason::Starting => f.write_str("starting"),
            Reason::Tampered { input } => {
                write!(f, "tampered ({input}): load the KEK and the TTK again")
            }
            Reason::Locked => f.write_str("locked: load the KEK and the TTK"),
            Reason::ClockNotSet { why } => f.write_str(&crate::clock::not_set_words(why)),
            Reason::NoKeys => f.write_str("no keys left: import a key file"),
            Reason::TamperInputMissing { words } => f.write_str(words),
            Reason::NoOperatorCa => f.write_str("no operator CA configured: add [pki]"),
            Reason::NoOperator => f.write_str("no operator logged in"),
            Reason::NoPort => f.write_str("no serial port open"),
            Reason::Zeroized => {
                f.write_str("zeroized: recommission the vault (keymother vault recommission)")
            }
            Reason::VaultDamaged { findings } => write!(
                f,
                "vault damaged: the integrity check failed ({findings}); restore the vault and call the security officer"
            ),
        }
    }
}

/// The words compared: for observers (tests, the demo) that look for a reason as `status`
/// shows it.
impl PartialEq<&str> for Reason {
    fn eq(&self, words: &&str) -> bool {
        self == *words
    }
}

impl PartialEq<str> for Reason {
    fn eq(&self, words: &str) -> bool {
        let shown: String = self.to_string();
        shown.as_str() == words
    }
}

/// How far a terminal's injection on a port has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InjectionStep {
    /// HELLO received: a terminal is on the line.
    Hello,
    /// It asked for a key; the appliance is reserving one.
    KeyRequested,
    /// The key went out (sent, or sent again to the same terminal).
    Delivered { key_index: u32 },
    /// The terminal reported its check value; the appliance is checking and recording it.
    Confirming { key_index: u32 },
}

/// The appliance's state as a display shows it: sent whenever any field changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplianceState {
    /// Keys flow now: KEK and TTK loaded, no tamper, keys left, an operator logged in when
    /// one is required, a port open.
    pub ready: bool,
    /// The tamper input fired and the key ceremonies have not been held again since.
    pub tampered: bool,
    /// Why keys do not flow ([`Reason::Ready`] when they do).
    pub reason: Reason,
    /// Available keys in the inventory.
    pub keys_left: u64,
    pub ports_open: usize,
    pub ports_total: usize,
    /// The operator logged in, if any.
    pub operator: Option<String>,
}

/// A delivery its terminal never confirmed: the port, the terminal, the master key sent (if
/// one was: a profile's DUKPT key has no index) and why. The key stays reserved for that
/// terminal; the failure is audited as `injection-failed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnconfirmedDelivery {
    pub port: String,
    pub hardware_serial: HardwareSerial,
    pub key_index: Option<KeyIndex>,
    pub cause: InjectionFailureCause,
}

impl UnconfirmedDelivery {
    /// Why, in plain words: "it stopped answering", "its port was lost", "it sent ABORT".
    pub fn cause_words(&self) -> &'static str {
        match self.cause {
            InjectionFailureCause::IdleTimeout => "it stopped answering",
            InjectionFailureCause::PortLost => "its port was lost (cable pulled?)",
            InjectionFailureCause::Abort => "it sent ABORT",
        }
    }
}

/// The journal's line: "key 00000279 delivered to 123L013K on bench-1 was never confirmed:
/// it stopped answering; the key stays reserved for it".
impl std::fmt::Display for UnconfirmedDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.key_index {
            Some(key_index) => write!(f, "key {key_index} delivered to ")?,
            None => f.write_str("the key delivered to ")?,
        }
        write!(
            f,
            "{} on {} was never confirmed: {}; the key stays reserved for it",
            self.hardware_serial,
            self.port,
            self.cause_words()
        )
    }
}

/// The inventory below the `[bench] low_inventory` warning level: what the journal, systemd's
/// STATUS= and the display say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LowInventory {
    pub keys_left: u64,
    /// The warning level: keys left below it are low.
    pub threshold: u64,
}

impl LowInventory {
    /// `Some` when `keys_left` is below `threshold` (a threshold of 0 never warns).
    pub fn check(keys_left: u64, threshold: u64) -> Option<LowInventory> {
        (keys_left < threshold).then_some(LowInventory {
            keys_left,
            threshold,
        })
    }
}

/// "low inventory: 12 keys left (warning below 100)".
impl std::fmt::Display for LowInventory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys = if self.keys_left == 1 { "key" } else { "keys" };
        write!(
            f,
            "low inventory: {} {keys} left (warning below {})",
            self.keys_left, self.threshold
        )
    }
}

/// What the daemon tells observers: the demo, tests, and the bench (LEDs, buzzer, display).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DaemonEvent {
    /// All ports are being served.
    Ready {
        ports: usize,
    },
    PortOpened {
        port: String,
    },
    PortLost {
        port: String,
        reason: String,
    },
    /// A confirmed injection: the SMN row is committed.
    Injected {
        port: String,
        hardware_serial: String,
        model: String,
        key_index: u32,
        smn: String,
        /// The operator the injection is recorded under, if any.
        operator: Option<String>,
    },
    /// A confirmed DUKPT initial key: its registry row is committed.
    DukptInjected {
        port: String,
        hardware_serial: String,
        /// The BDK's name (the profile slot's label).
        bdk: String,
        /// The initial KSN (TDES) or initial key ID (AES), hex.
        ksn: String,
    },
    /// Every key of a device profile is confirmed for this terminal.
    ProfileInjected {
        port: String,
        hardware_serial: String,
        profile: String,
    },
    /// Anything else the session reported (frames rejected, errors sent, ...).
    Session {
        port: String,
        detail: String,
    },
    /// A terminal's injection moved on.
    InjectionProgress {
        port: String,
        hardware_serial: String,
        step: InjectionStep,
    },
    /// An injection failed: an ERROR other than BUSY was sent to the terminal, or it sent
    /// ABORT before any key was delivered to it (after a delivery, ABORT is a
    /// [`DaemonEvent::DeliveryUnconfirmed`]). `reason` is short and tells the technician what to do ("no operator logged in",
    /// "certificate refused: expired", "KCV mismatch").
    InjectionFailed {
        port: String,
        reason: String,
    },
    /// The port's session ended without a result (idle, a new HELLO, the tamper response).
    PortIdle {
        port: String,
    },
    /// A key was delivered and its terminal never confirmed it: it stopped answering (idle
    /// timeout), its port was lost, or it sent ABORT. Long beep, error LED, error screen.
    DeliveryUnconfirmed(UnconfirmedDelivery),
    /// An operator logged in, or the session ended (logout, expiry, tamper, zeroize).
    OperatorChanged {
        operator: Option<String>,
    },
    /// The appliance's state changed.
    ApplianceState(ApplianceState),
    /// The tamper input fired: the secrets in memory are gone, the sealed ones deleted, the
    /// appliance locked until custodians load the KEK and the TTK again.
    Tamper {
        input: String,
    },
    /// The bench's GPIO or display failed and was switched off; injection carries on.
    BenchWarning {
        warning: String,
    },
    /// The whole-database integrity check (in the background after READY, or `vault-check`)
    /// read every page and found the vault whole.
    VaultVerified {
        pages: u64,
    },
    /// The whole-database integrity check found the vault damaged (SQLite's findings): the
    /// appliance is locked, the audit trail says it.
    VaultDamaged {
        findings: String,
    },
}

/// Where events go: every subscriber sees every event, in one order.
#[derive(Default)]
pub(crate) struct EventBus {
    subscribers: Mutex<Vec<Subscriber>>,
}

pub(crate) enum Subscriber {
    /// An async observer (the demo, tests).
    Task(UnboundedSender<DaemonEvent>),
    /// A thread (the bench).
    Thread(std::sync::mpsc::Sender<DaemonEvent>),
}

impl EventBus {
    pub(crate) fn add(&self, subscriber: Subscriber) {
        self.subscribers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(subscriber);
    }

    /// A receiver for a thread, seeing every event from now on.
    pub(crate) fn subscribe_thread(&self) -> std::sync::mpsc::Receiver<DaemonEvent> {
        let (sender, receiver) = std::sync::mpsc::channel();
        self.add(Subscriber::Thread(sender));
        receiver
    }

    pub(crate) fn publish(&self, event: &DaemonEvent) {
        // Sending never blocks (unbounded); one lock orders events for every subscriber. An
        // observer that went away is dropped: not the daemon's problem.
        self.subscribers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|subscriber| match subscriber {
                Subscriber::Task(sender) => sender.send(event.clone()).is_ok(),
                Subscriber::Thread(sender) => sender.send(event.clone()).is_ok(),
            });
    }
}

/// The structured event a session report means for the bench, if any.
pub(crate) fn structured_event(port: &str, event: &SessionEvent) -> Option<DaemonEvent> {
    let progress = |terminal: &keymother_protocol::TerminalIdentity, step| {
        Some(DaemonEvent::InjectionProgress {
            port: port.to_owned(),
            hardware_serial: terminal.hardware_serial.to_string(),
            step,
        })
    };
    match event {
        SessionEvent::HelloReceived { terminal, .. } => progress(terminal, InjectionStep::Hello),
        SessionEvent::KeyRequested { terminal } => progress(terminal, InjectionStep::KeyRequested),
        SessionEvent::Delivered {
            terminal,
            key_index,
        } => progress(
            terminal,
            InjectionStep::Delivered {
                key_index: *key_index,
            },
        ),
        SessionEvent::ConfirmRequested {
            terminal,
            key_index,
        } => progress(
            terminal,
            InjectionStep::Confirming {
                key_index: *key_index,
            },
        ),
        SessionEvent::ErrorSent { code, cause, .. } if *code != ErrorCode::BUSY => {
            Some(DaemonEvent::InjectionFailed {
                port: port.to_owned(),
                reason: failure_reason(*code, *cause),
            })
        }
        SessionEvent::Aborted {
            terminal,
            unconfirmed_key,
            unconfirmed_dukpt,
            ..
        } if unconfirmed_key.is_some() || unconfirmed_dukpt.is_some() => {
            Some(DaemonEvent::DeliveryUnconfirmed(UnconfirmedDelivery {
                port: port.to_owned(),
                hardware_serial: terminal.hardware_serial.clone(),
                key_index: unconfirmed_key.and_then(KeyIndex::new),
                cause: InjectionFailureCause::Abort,
            }))
        }
        SessionEvent::Aborted { reason, .. } => Some(DaemonEvent::InjectionFailed {
            port: port.to_owned(),
            reason: format!(
                "terminal aborted: {}",
                reason.meaning().unwrap_or("unknown reason")
            ),
        }),
        SessionEvent::ProfileCompleted { terminal, profile } => {
            Some(DaemonEvent::ProfileInjected {
                port: port.to_owned(),
                hardware_serial: terminal.hardware_serial.to_string(),
                profile: profile.clone(),
            })
        }
        SessionEvent::SessionEnded {
            terminal,
            reason: EndReason::Idle,
            unconfirmed_key,
            unconfirmed_dukpt,
        } if unconfirmed_key.is_some() || unconfirmed_dukpt.is_some() => {
            Some(DaemonEvent::DeliveryUnconfirmed(UnconfirmedDelivery {
                port: port.to_owned(),
                hardware_serial: terminal.hardware_serial.clone(),
                key_index: unconfirmed_key.and_then(KeyIndex::new),
                cause: InjectionFailureCause::IdleTimeout,
            }))
        }
        SessionEvent::SessionEnded { .. } => Some(DaemonEvent::PortIdle {
            port: port.to_owned(),
        }),
        _ => None,
    }
}

/// The bench's words for an ERROR sent to a terminal: short, and saying what to do. Chosen
/// from the code and the typed cause, never from the ERROR's detail, so rewording a message
/// cannot change what the technician sees.
pub fn failure_reason(code: ErrorCode, cause: FailureCause) -> String {
    let reason = match (code, cause) {
        (_, FailureCause::NoOperator) => "no operator logged in",
        (_, FailureCause::TamperInputUnwatched) => "tamper input not watched",
        (_, FailureCause::BdkNotLoaded) => "BDK not loaded: hold its ceremony",
        (_, FailureCause::Certificate(problem)) => {
            return format!("certificate refused: {}", certificate_words(problem));
        }
        (ErrorCode::NOT_READY, FailureCause::Code) => "appliance locked",
        (ErrorCode::NO_KEYS_AVAILABLE, _) => "no keys left",
        (ErrorCode::KCV_MISMATCH, _) => "KCV mismatch",
        (ErrorCode::KCV_MISMATCH_QUARANTINED, _) => "KCV mismatch: key quarantined",
        (ErrorCode::SMN_MISMATCH, _) => "SMN mismatch",
        (ErrorCode::KEY_NOT_DELIVERED, _) => "key not delivered to this terminal",
        (ErrorCode::RATE_LIMITED, _) => "too many requests: wait a minute",
        (ErrorCode::DEVICE_NOT_EXPECTED, _) => "not on an expected-device list",
        (ErrorCode::ALREADY_INJECTED, _) => "already injected: grant a re-injection",
        (ErrorCode::SERIAL_BUSY, _) => "serial busy on another port",
        (ErrorCode::KEY_BLOCK_VERSION_UNSUPPORTED, _) => {
            "terminal cannot open this key block version"
        }
        (ErrorCode::UNSUPPORTED_VERSION, _) => "protocol version not supported",
        (ErrorCode::NO_COMMON_MODE, _) => "no common injection mode",
        (ErrorCode::INTERNAL_ERROR, _) => "internal error: see the journal",
        (ErrorCode::CERTIFICATE_REFUSED, FailureCause::Code) => "certificate refused",
        (other, _) => {
            return match other.name() {
                Some(name) => format!("protocol error: {name}"),
                None => format!("error 0x{:04X}", other.0),
            };
        }
    };
    reason.to_owned()
}

/// The short words for a refused device certificate.
fn certificate_words(problem: CertificateProblem) -> &'static str {
    match problem {
        CertificateProblem::NotYetValid => "not yet valid",
        CertificateProblem::Expired => "expired",
        CertificateProblem::Revoked => "revoked",
        CertificateProblem::OtherTerminal => "other terminal",
        CertificateProblem::NotSetUp => "mode not set up",
        CertificateProblem::ClockNotSet => "clock not set",
        CertificateProblem::BadSignature => "bad signature",
        CertificateProblem::BadToken => "bad TR-34 token",
        CertificateProblem::Other => "see the journal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_reasons_are_short_and_actionable() {
        let cases = [
            (
                ErrorCode::NOT_READY,
                FailureCause::NoOperator,
                "no operator logged in",
            ),
            (ErrorCode::NOT_READY, FailureCause::Code, "appliance locked"),
            (
                ErrorCode::NOT_READY,
                FailureCause::BdkNotLoaded,
                "BDK not loaded: hold its ceremony",
            ),
            (
                ErrorCode::NOT_READY,
                FailureCause::TamperInputUnwatched,
                "tamper input not watched",
            ),
            (
                ErrorCode::CERTIFICATE_REFUSED,
                FailureCause::Certificate(CertificateProblem::Expired),
                "certificate refused: expired",
            ),
            (
                ErrorCode::CERTIFICATE_REFUSED,
                FailureCause::Certificate(CertificateProblem::Revoked),
                "certificate refused: revoked",
            ),
            (
                ErrorCode::CERTIFICATE_REFUSED,
                FailureCause::Certificate(CertificateProblem::ClockNotSet),
                "certificate refused: clock not set",
            ),
            (ErrorCode::KCV_MISMATCH, FailureCause::Code, "KCV mismatch"),
            (
                ErrorCode::DEVICE_NOT_EXPECTED,
                FailureCause::Code,
                "not on an expected-device list",
            ),
            (
                ErrorCode::ALREADY_INJECTED,
                FailureCause::Code,
                "already injected: grant a re-injection",
            ),
            (
                ErrorCode::SERIAL_BUSY,
                FailureCause::Code,
                "serial busy on another port",
            ),
            (
                ErrorCode::SEQUENCE_OUT_OF_ORDER,
                FailureCause::Code,
                "protocol error: SEQUENCE_OUT_OF_ORDER",
            ),
            (ErrorCode(0x4242), FailureCause::Code, "error 0x4242"),
        ];
        for (code, cause, expected) in cases {
            assert_eq!(failure_reason(code, cause), expected);
        }
    }
}
