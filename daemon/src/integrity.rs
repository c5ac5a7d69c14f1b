//! The background integrity check: once keymotherd is READY, the whole vault database is read on a thread of its own (a read-only connection that yields the processor); damage locks the appliance, with an audit row and a journal line.
//!
//! What is checked before READY and what after: docs/SECURITY.md, "Start-up checks". The
//! `vault-check` control request runs the same check at once (docs/CONTROL.md).

use std::sync::Arc;
use std::time::Instant;

use keymother_vault::{IntegrityChecker, IntegrityFailure, IntegrityReport};

use crate::events::DaemonEvent;
use crate::state::Shared;

/// Starts the check on its own thread; returns the checker, to stop it when the daemon
/// stops. `None` for a zeroized vault (it was fully checked when opened, and dispenses
/// nothing) or when the thread cannot be started (said in the journal).
pub(crate) fn start(shared: &Arc<Shared>) -> Option<IntegrityChecker> {
    if shared.dispenser.is_zeroized() {
        return None;
    }
    let checker = shared
        .dispenser
        .with_vault(|vault| vault.integrity_checker());
    let running = checker.clone();
    let shared = Arc::clone(shared);
    let spawned = std::thread::Builder::new()
        .name("keymother-integrity".to_owned())
        .spawn(move || {
            let _ = check(&shared, &running);
        });
    match spawned {
        Ok(_) => Some(checker),
        Err(error) => {
            log::error!(
                event = "integrity-check";
                "the background integrity check could not be started ({error}); the vault was not verified since this start"
            );
            None
        }
    }
}

/// Runs `checker` to the end (blocking) and acts on what it found: a journal line when the
/// vault is whole; when it is damaged, the appliance locks, the audit trail records it and the
/// journal says it.
pub(crate) fn check(
    shared: &Arc<Shared>,
    checker: &IntegrityChecker,
) -> Result<IntegrityReport, IntegrityFailure> {
    let started = Instant::now();
    let outcome = checker.run();
    let milliseconds = started.elapsed().as_millis();
    match &outcome {
        Ok(report) => log::info!(
            event = "integrity-verified", pages = report.pages, milliseconds = milliseconds;
            "the whole vault database was verified in the background: {} {} in {milliseconds} ms",
            report.pages,
            if report.pages == 1 { "page" } else { "pages" }
        ),
        Err(IntegrityFailure::Stopped) => log::info!(
            event = "integrity-stopped";
            "the background integrity check was stopped before it finished"
        ),
        Err(IntegrityFailure::Damaged { findings }) => lock_damaged(shared, findings),
    }
    match &outcome {
        Ok(report) => shared.emit(DaemonEvent::VaultVerified {
            pages: report.pages,
        }),
        Err(IntegrityFailure::Damaged { findings }) => shared.emit(DaemonEvent::VaultDamaged {
            findings: findings.clone(),
        }),
        Err(IntegrityFailure::Stopped) => {}
    }
    outcome
}

/// The vault is damaged: no key flows from now on, the audit trail and the journal say it.
fn lock_damaged(shared: &Arc<Shared>, findings: &str) {
    if !shared.dispenser.mark_damaged(findings) {
        return;
    }
    let recorded = shared
        .dispenser
        .with_vault(|vault| vault.record_integrity_failure(findings));
    match recorded {
        Ok(row) => log::error!(
            event = "vault-damaged", audit_sequence = row.sequence;
            "VAULT DAMAGED: the background integrity check failed ({findings}); no key is dispensed (audit row {}); restore the vault from its backup and call the security officer",
            row.sequence
        ),
        Err(error) => log::error!(
            event = "vault-damaged";
            "VAULT DAMAGED: the background integrity check failed ({findings}); no key is dispensed; the audit trail could not record it: {error}"
        ),
    }
}
