//! What the bench display shows: the daemon's [`BenchView`] mapped to one of keymother-display's screens, and the sink that puts it on a panel.

use keymother_display::{BenchDisplay, LockReason, NotConfirmedCause, Panel, Screen};

use crate::config::{BenchSettings, DisplayKind};
use crate::events::{InjectionFailureCause, InjectionStep, Reason, UnconfirmedDelivery};
use crate::view::{BenchView, DisplayError, DisplaySink};

/// The error screen of a delivery its terminal never confirmed: the port, the terminal's
/// serial, why, and the key kept for it. `keymother display-preview` draws its `error-long`
/// example with this function too.
pub fn not_confirmed_screen(delivery: &UnconfirmedDelivery) -> Screen {
    Screen::NotConfirmed {
        port: delivery.port.clone(),
        hardware_serial: delivery.hardware_serial.to_string(),
        key_index: delivery.key_index.map(|index| index.value()),
        cause: match delivery.cause {
            InjectionFailureCause::IdleTimeout => NotConfirmedCause::StoppedAnswering,
            InjectionFailureCause::PortLost => NotConfirmedCause::PortLost,
            InjectionFailureCause::Abort => NotConfirmedCause::Aborted,
        },
    }
}

/// The screen for `view`, most urgent first: tamper, starting, an injection in progress, the
/// last failure (a success clears it), what keeps the appliance from being ready, the last
/// injection (with the keys left in an inverted status bar when they are low: the result is
/// never hidden by the warning), low inventory, ready.
pub fn screen_for(view: &BenchView) -> Screen {
    if view.tampered {
        return Screen::Tamper;
    }
    if view.reason == Reason::Starting {
        return Screen::Booting {
            version: env!("CARGO_PKG_VERSION").to_owned(),
        };
    }
    if let Some((port, activity)) = view.active.iter().next() {
        return Screen::Injecting {
            port: port.clone(),
            hardware_serial: activity.hardware_serial.clone(),
            step: match activity.step {
                InjectionStep::Hello => keymother_display::InjectionStep::Hello,
                InjectionStep::KeyRequested => keymother_display::InjectionStep::KeyRequested,
                InjectionStep::Delivered { .. } => keymother_display::InjectionStep::Delivered,
                InjectionStep::Confirming { .. } => keymother_display::InjectionStep::Confirming,
            },
        };
    }
    if let Some(error) = &view.last_error {
        if let Some(delivery) = &error.unconfirmed {
            return not_confirmed_screen(delivery);
        }
        return Screen::Error {
            port: Some(error.port.clone()),
            reason: error.reason.clone(),
        };
    }
    // The last key went: its result stays, saying no key is left, until a terminal asks.
    let out_of_keys = !view.ready && view.reason == Reason::NoKeys;
    let keep_result = out_of_keys && view.last_injection.is_some();
    if !(view.ready || keep_result) {
        return not_ready_screen(&view.reason);
    }
    if let Some(last) = &view.last_injection {
        return Screen::Injected {
            port: last.port.clone(),
            key_index: last.key_index,
            smn: last.smn.clone(),
            low_inventory: (view.low_inventory || out_of_keys).then_some(view.keys_left),
        };
    }
    if view.low_inventory {
        return Screen::LowInventory {
            keys_left: view.keys_left,
            ports_open: view.ports_open,
            operator: view.operator.clone(),
        };
    }
    Screen::Ready {
        keys_left: view.keys_left,
        ports_open: view.ports_open,
        ports_total: view.ports_total,
        operator: view.operator.clone(),
    }
}

/// The screen for what keeps keys from flowing.
fn not_ready_screen(reason: &Reason) -> Screen {
    let error = |words: &str| Screen::Error {
        port: None,
        reason: words.to_owned(),
    };
    match reason {
        // Without an operator CA nobody can log in either; `keymother status` says why.
        Reason::NoOperator | Reason::NoOperatorCa => Screen::Locked {
            reason: LockReason::NoOperator,
        },
        Reason::NoKeys => error(&Reason::NoKeys.to_string()),
        Reason::NoPort => error("no serial port open: check the bench cables"),
        Reason::ClockNotSet { .. } => {
            error("clock not set: two people set it (keymother clock set)")
        }
        Reason::TamperInputMissing { .. } => error("tamper input not watched: check the GPIO"),
        Reason::Zeroized => Screen::Locked {
            reason: LockReason::Zeroized,
        },
        Reason::VaultDamaged { .. } => error("vault damaged: call the security officer"),
        Reason::Tampered { .. } | Reason::Locked | Reason::Starting | Reason::Ready => {
            Screen::Locked {
                reason: LockReason::NoKeys,
            }
        }
    }
}

/// The bench display as the daemon's display sink. [`BenchDisplay`] logs a failing panel once
/// and tries again with the next screen, so the sink itself never fails.
pub struct PanelDisplay {
    display: BenchDisplay,
}

impl PanelDisplay {
    pub fn new(display: BenchDisplay) -> Self {
        PanelDisplay { display }
    }
}

impl DisplaySink for PanelDisplay {
    fn show(&mut self, view: &BenchView) -> Result<(), DisplayError> {
        self.display.show(&screen_for(view));
        Ok(())
    }
}

/// A display sink showing the screens on `panel` (tests and the demo: a
/// [`keymother_display::MemoryPanel`] handle).
pub fn display_on(panel: impl Panel + 'static) -> Box<dyn DisplaySink> {
    Box::new(PanelDisplay::new(BenchDisplay::new(panel)))
}

/// The display `[bench] display` names (the runtime opens it; tests and the demo bring their own).
pub(crate) fn open_display(settings: &BenchSettings) -> Option<Box<dyn DisplaySink>> {
    match settings.display {
        DisplayKind::None => None,
        // A panel that cannot be opened leaves a display without one: one warning, and the
        // appliance works on.
        DisplayKind::Ssd1306 => Some(Box::new(PanelDisplay::new(
            keymother_display::BenchDisplay::open_ssd1306(&settings.i2c_bus, settings.i2c_address),
        ))),
        DisplayKind::Memory => Some(display_on(keymother_display::MemoryPanel::new())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::{LastError, LastInjection, PortActivity};

    fn ready_view() -> BenchView {
        let mut view = BenchView::new(2, 100);
        view.ready = true;
        view.reason = Reason::Ready;
        view.keys_left = 500;
        view.ports_open = 2;
        view.operator = Some("Alice".to_owned());
        view
    }

    #[test]
    fn each_state_has_its_screen_and_the_most_urgent_wins() {
        let starting = BenchView::new(2, 100);
        assert!(matches!(screen_for(&starting), Screen::Booting { .. }));
        let mut view = ready_view();
        assert_eq!(
            screen_for(&view),
            Screen::Ready {
                keys_left: 500,
                ports_open: 2,
                ports_total: 2,
                operator: Some("Alice".to_owned())
            }
        );
        view.last_injection = Some(LastInjection {
            port: "bench-1".to_owned(),
            hardware_serial: "123L013K".to_owned(),
            key_index: 278,
            smn: "123L013K00000278".to_owned(),
            operator: None,
        });
        assert!(matches!(
            screen_for(&view),
            Screen::Injected {
                key_index: 278,
                low_inventory: None,
                ..
            }
        ));
        // Low inventory never hides the result: it shows in the injected screen's bar.
        view.low_inventory = true;
        assert!(matches!(
            screen_for(&view),
            Screen::Injected {
                key_index: 278,
                low_inventory: Some(500),
                ..
            }
        ));
        view.last_error = Some(LastError {
            port: "bench-2".to_owned(),
            reason: "KCV mismatch".to_owned(),
            unconfirmed: None,
        });
        assert!(matches!(screen_for(&view), Screen::Error { .. }));
        view.last_error = Some(LastError {
            port: "bench-2".to_owned(),
            reason: "it stopped answering".to_owned(),
            unconfirmed: Some(stopped_answering()),
        });
        assert_eq!(
            screen_for(&view),
            Screen::NotConfirmed {
                port: "bench-3".to_owned(),
                hardware_serial: "123L013K".to_owned(),
                key_index: Some(279),
                cause: NotConfirmedCause::StoppedAnswering,
            }
        );
        view.active.insert(
            "bench-1".to_owned(),
            PortActivity {
                hardware_serial: "T2".to_owned(),
                step: InjectionStep::Delivered { key_index: 279 },
            },
        );
        assert!(matches!(
            screen_for(&view),
            Screen::Injecting {
                step: keymother_display::InjectionStep::Delivered,
                ..
            }
        ));
        view.tampered = true;
        assert_eq!(screen_for(&view), Screen::Tamper);
    }

    fn stopped_answering() -> UnconfirmedDelivery {
        UnconfirmedDelivery {
            port: "bench-3".to_owned(),
            hardware_serial: "123L013K".parse().unwrap(),
            key_index: keymother_domain::KeyIndex::new(279),
            cause: InjectionFailureCause::IdleTimeout,
        }
    }

    #[test]
    fn low_inventory_has_its_screen_until_a_terminal_is_injected() {
        let mut view = ready_view();
        view.low_inventory = true;
        assert!(matches!(
            screen_for(&view),
            Screen::LowInventory { keys_left: 500, .. }
        ));
    }

    #[test]
    fn the_last_key_keeps_its_injected_screen_with_no_key_left() {
        let mut view = ready_view();
        view.ready = false;
        view.reason = Reason::NoKeys;
        view.keys_left = 0;
        assert!(matches!(screen_for(&view), Screen::Error { .. }));
        view.last_injection = Some(LastInjection {
            port: "bench-1".to_owned(),
            hardware_serial: "123L013K".to_owned(),
            key_index: 300,
            smn: "123L013K00000300".to_owned(),
            operator: None,
        });
        assert!(matches!(
            screen_for(&view),
            Screen::Injected {
                key_index: 300,
                low_inventory: Some(0),
                ..
            }
        ));
        // Any other reason not to dispense outranks the result.
        view.reason = Reason::NoOperator;
        assert!(matches!(screen_for(&view), Screen::Locked { .. }));
    }

    /// `keymother display-preview` shows as `error-long` exactly the screen the daemon shows
    /// for a terminal that stopped answering after its delivery.
    #[test]
    fn the_error_long_preview_is_the_daemons_screen() {
        let gallery = keymother_display::gallery();
        let preview = gallery
            .iter()
            .find(|(name, _)| *name == "error-long")
            .map(|(_, screen)| screen.clone());
        assert_eq!(preview, Some(not_confirmed_screen(&stopped_answering())));
        let mut view = ready_view();
        view.last_error = Some(LastError {
            port: "bench-3".to_owned(),
            reason: "it stopped answering".to_owned(),
            unconfirmed: Some(stopped_answering()),
        });
        assert_eq!(Some(screen_for(&view)), preview);
    }

    #[test]
    fn what_keeps_the_appliance_from_being_ready_is_shown() {
        let mut view = ready_view();
        view.ready = false;
        for (reason, expected) in [
            (
                Reason::NoOperator,
                Screen::Locked {
                    reason: LockReason::NoOperator,
                },
            ),
            (
                Reason::NoOperatorCa,
                Screen::Locked {
                    reason: LockReason::NoOperator,
                },
            ),
            (
                Reason::Locked,
                Screen::Locked {
                    reason: LockReason::NoKeys,
                },
            ),
            (
                Reason::Zeroized,
                Screen::Locked {
                    reason: LockReason::Zeroized,
                },
            ),
            (
                Reason::NoKeys,
                Screen::Error {
                    port: None,
                    reason: "no keys left: import a key file".to_owned(),
                },
            ),
            (
                Reason::TamperInputMissing {
                    words: "tamper input GPIO23 not watched: the GPIO failed: gone".to_owned(),
                },
                Screen::Error {
                    port: None,
                    reason: "tamper input not watched: check the GPIO".to_owned(),
                },
            ),
            (
                Reason::VaultDamaged {
                    findings: "database disk image is malformed".to_owned(),
                },
                Screen::Error {
                    port: None,
                    reason: "vault damaged: call the security officer".to_owned(),
                },
            ),
        ] {
            view.reason = reason.clone();
            assert_eq!(screen_for(&view), expected, "{reason}");
        }
    }
}
