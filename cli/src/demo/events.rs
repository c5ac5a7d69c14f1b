//! The demo's running commentary: each injection the daemon confirms, printed with the time; a profile terminal's keys on one line once the daemon has confirmed them all.

use std::collections::HashMap;

use keymother_daemon::DaemonEvent;

use super::profile::identity_word;

/// What the printer saw once the daemon has stopped.
pub(super) struct Printed {
    /// Confirmed master keys (profile terminals' included).
    pub(super) injections: usize,
    /// Terminals that received every key of their profile.
    pub(super) profiles: usize,
}

/// A profile terminal's line in the making: its master key's part, then its DUKPT keys.
struct ProfileLine {
    master: String,
    operator: Option<String>,
    dukpt: Vec<String>,
}

/// Signals `ready` when the daemon is, then prints each injection the daemon confirms, with
/// the time: at once on the ports in `profile_ports` too, except that a profile terminal's
/// line waits for its last key. Returns what it printed once the daemon has stopped.
pub(super) async fn print_injections(
    mut event_stream: tokio::sync::mpsc::UnboundedReceiver<DaemonEvent>,
    ready: std::sync::mpsc::Sender<()>,
    profile_ports: Vec<String>,
) -> Printed {
    let mut printed = Printed {
        injections: 0,
        profiles: 0,
    };
    // The profile terminal being served on each profile port.
    let mut pending: HashMap<String, ProfileLine> = HashMap::new();
    while let Some(event) = event_stream.recv().await {
        match event {
            DaemonEvent::Ready { .. } => {
                let _ = ready.send(());
            }
            DaemonEvent::Injected {
                port,
                hardware_serial,
                model,
                key_index,
                smn,
                operator,
            } => {
                printed.injections += 1;
                let master = format!(
                    "{port:<8} {model:<14} serial {hardware_serial:<9} key {key_index:08}  SMN {smn}"
                );
                if profile_ports.contains(&port) {
                    let line = ProfileLine {
                        master,
                        operator,
                        dukpt: Vec::new(),
                    };
                    pending.insert(port, line);
                } else {
                    println!(
                        "{}  {master}  operator {}",
                        clock(),
                        operator.as_deref().unwrap_or("-")
                    );
                }
            }
            DaemonEvent::DukptInjected { port, bdk, ksn, .. } => {
                if let Some(line) = pending.get_mut(&port) {
                    line.dukpt
                        .push(format!("{bdk} {} {ksn}", identity_word(&bdk)));
                }
            }
            DaemonEvent::ProfileInjected { port, .. } => {
                printed.profiles += 1;
                if let Some(line) = pending.remove(&port) {
                    println!(
                        "{}  {}  {}  operator {}",
                        clock(),
                        line.master,
                        line.dukpt.join("  "),
                        line.operator.as_deref().unwrap_or("-")
                    );
                }
            }
            _ => {}
        }
    }
    printed
}

/// The time of day, to the millisecond (UTC).
fn clock() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        now.hour(),
        now.minute(),
        now.second(),
        now.millisecond()
    )
}
