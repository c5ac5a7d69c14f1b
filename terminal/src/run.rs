//! Driving one injection: the sans-IO terminal session over a line, with the key store doing the cryptography.

use std::collections::VecDeque;
use std::io;
use std::time::{Duration, Instant};

use keymother_protocol::{TerminalAction, TerminalConfig, TerminalOutcome, TerminalSession};

use crate::key_store::SoftwareKeyStore;
use crate::line::Line;
use crate::modes::{self, Delivered};

/// Longest single wait on the line, so timeouts are checked often enough.
const POLL: Duration = Duration::from_millis(20);

/// How one injection attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injection {
    pub outcome: TerminalOutcome,
    pub elapsed: Duration,
}

/// Runs one injection on `line` until the session finishes (injected or failed). I/O errors
/// other than an unplugged line end it early. A key the store holds unconfirmed from an
/// earlier attempt is confirmed rather than a new one asked for.
///
/// A store with a file is saved after every change and before the appliance hears of it: an
/// installed key before its CONFIRM is sent, a confirmation once CONFIRMED arrived. A store
/// that cannot be saved ends the run (an error of kind `Other`) without confirming, as a pad
/// that lost power would: the key stays pending for this terminal on the appliance.
pub fn inject<L: Line>(
    line: &mut L,
    mut config: TerminalConfig,
    key_store: &mut SoftwareKeyStore,
) -> io::Result<Injection> {
    if config.unconfirmed_key.is_none() {
        config.unconfirmed_key = key_store.unconfirmed();
    }
    if config.unconfirmed_dukpt.is_empty() {
        config.unconfirmed_dukpt = key_store.unconfirmed_dukpt();
    }
    if config.krd_credential_token.is_empty() {
        if let Some(identity) = key_store.certificate() {
            config.krd_credential_token = identity.krd_credential_token().to_vec();
        }
    }
    let started = Instant::now();
    let mut session = TerminalSession::new(config).with_capabilities(key_store.capabilities());
    let mut pending: VecDeque<TerminalAction> = session.start(started.elapsed()).into();
    let mut buffer = [0u8; 2048];
    loop {
        while let Some(action) = pending.pop_front() {
            match action {
                TerminalAction::Send(bytes) => line.write_all(&bytes)?,
                TerminalAction::InstallKey {
                    key_index,
                    key_block,
                    kcv,
                    certificate,
                } => {
                    let delivered = Delivered {
                        key_index,
                        key_block: &key_block,
                        announced_kcv: &kcv,
                        certificate: certificate.as_ref(),
                    };
                    let installed = key_store.install_delivery(&delivered);
                    if installed.is_ok() {
                        save(key_store)?;
                    }
                    pending.extend(session.handle_key_installed(installed, started.elapsed()));
                }
                TerminalAction::VerifyAppliance {
                    kdh_credential_token,
                    ..
                } => {
                    let verdict = modes::certificate::verify_appliance(
                        key_store.certificate(),
                        &kdh_credential_token,
                    );
                    pending.extend(session.handle_appliance_verified(verdict, started.elapsed()));
                }
                TerminalAction::InstallDukptKey {
                    label,
                    ksn,
                    key_block,
                    kcv,
                    ..
                } => {
                    let installed = key_store.install_dukpt(&label, &ksn, &key_block, &kcv);
                    if installed.is_ok() {
                        save(key_store)?;
                    }
                    pending.extend(session.handle_dukpt_installed(installed, started.elapsed()));
                }
                TerminalAction::Report(_) => {}
                TerminalAction::Finished(outcome) => {
                    match outcome {
                        TerminalOutcome::Injected { .. } => {
                            key_store.mark_confirmed();
                            save(key_store)?;
                        }
                        TerminalOutcome::ProfileInjected { .. } => {
                            key_store.mark_profile_confirmed();
                            save(key_store)?;
                        }
                        _ => {}
                    }
                    return Ok(Injection {
                        outcome,
                        elapsed: started.elapsed(),
                    });
                }
            }
        }
        let now = started.elapsed();
        let wait = session
            .next_deadline()
            .map_or(POLL, |deadline| deadline.saturating_sub(now))
            .clamp(Duration::from_millis(1), POLL);
        let count = line.read_within(&mut buffer, wait)?;
        let now = started.elapsed();
        let actions = if count > 0 {
            session.handle_bytes(&buffer[..count], now)
        } else {
            session.handle_tick(now)
        };
        pending.extend(actions);
    }
}

/// Saves the store file, if the store has one.
fn save(key_store: &SoftwareKeyStore) -> io::Result<()> {
    key_store.save().map_err(io::Error::other)
}
