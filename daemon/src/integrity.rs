//! The background integrity check: once keymotherd is READY, the whole vault database is read on a thread of its own (a read-only connection that yields the processor), then the whole audit chain is walked; damage or a broken chain locks the appliance, with an audit row and a journal line.
//!
//! A walk of the audit chain that passes moves its last verified point forward, so that the
//! next start walks only the rows after it before READY.
//! What is checked before READY and what after: docs/SECURITY.md, "Start-up checks". The
//! `vault-check` control request runs the same check at once (docs/CONTROL.md).

use std::sync::Arc;
use std::time::Instant;

use keymother_vault::{
    AuditChainChecker, AuditFailure, ChainWalkFailure, IntegrityChecker, IntegrityFailure,
    IntegrityReport,
};

use crate::events::DaemonEvent;
use crate::state::Shared;

/// The background check's thread, to stop and wait for when the daemon stops: it holds the
/// daemon's shared state, and with it the vault and its owner lock, until it ends.
pub(crate) struct BackgroundCheck {
    checker: IntegrityChecker,
    thread: std::thread::JoinHandle<()>,
}

impl BackgroundCheck {
    /// Stops the check and the chain walk and waits for their thread to end.
    pub(crate) async fn stop(self) {
        self.checker.stop();
        let thread = self.thread;
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
}

/// Starts the check on its own thread. `None` for a zeroized vault (it was fully checked
/// when opened, and dispenses nothing) or when the thread cannot be started (said in the
/// journal).
pub(crate) fn start(shared: &Arc<Shared>) -> Option<BackgroundCheck> {
    if shared.dispenser.is_zeroized() {
        return None;
    }
    let (checker, walker) = shared.dispenser.with_vault(|vault| {
        let checker = vault.integrity_checker();
        let walker = vault.audit_chain_checker(checker.stop_flag());
        (checker, walker)
    });
    let running = checker.clone();
    let shared = Arc::clone(shared);
    let spawned = std::thread::Builder::new()
        .name("keymother-integrity".to_owned())
        .spawn(move || {
            crate::background::lower_this_thread("the background integrity check");
            // The chain is walked once the pages it lies on were found whole.
            if check(&shared, &running).is_ok() {
                let _ = walk_audit_chain(&shared, &walker);
            }
        });
    match spawned {
        Ok(thread) => Some(BackgroundCheck { checker, thread }),
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

/// Walks the whole audit chain with `walker` (blocking) and acts on what it found: when it
/// passes, the last verified point moves to its last row and the journal says so; when it
/// does not, the appliance locks, the audit trail records it (when the chain's head still
/// lets a row be written) and the journal says it.
pub(crate) fn walk_audit_chain(
    shared: &Arc<Shared>,
    walker: &AuditChainChecker,
) -> Result<u64, ChainWalkFailure> {
    let started = Instant::now();
    let outcome = walker.run().map(|walked| {
        let recorded = shared
            .dispenser
            .with_vault(|vault| vault.record_audit_walk(&walked));
        (walked, recorded)
    });
    let outcome = match outcome {
        // The chain verified; only moving the last verified point failed (the database busy
        // past the wait, or full): that is no broken chain. The point stays where it was,
        // and the next walk or start goes from there.
        Ok((walked, Err(AuditFailure::Vault(error)))) => {
            log::warn!(
                event = "audit-checkpoint-not-moved", rows = walked.rows();
                "the whole audit chain verified in the background ({} rows), but its last verified point could not be moved: {error}",
                walked.rows()
            );
            return Ok(walked.rows());
        }
        Ok((_, recorded)) => recorded.map_err(ChainWalkFailure::Chain),
        Err(failure) => Err(failure),
    };
    let milliseconds = started.elapsed().as_millis();
    match &outcome {
        Ok(report) => log::info!(
            event = "audit-chain-verified", rows = report.rows, milliseconds = milliseconds;
            "the whole audit chain was verified in the background: {} {} in {milliseconds} ms; the last verified point is row {}",
            report.rows,
            if report.rows == 1 { "row" } else { "rows" },
            report.rows
        ),
        Err(ChainWalkFailure::Stopped) => log::info!(
            event = "audit-chain-stopped";
            "the background walk of the audit chain was stopped before it finished"
        ),
        Err(ChainWalkFailure::Chain(failure)) => {
            let findings = format!("the audit chain does not verify: {failure}");
            lock_chain_broken(shared, &failure.to_string(), &findings);
            shared.emit(DaemonEvent::VaultDamaged { findings });
        }
    }
    outcome.map(|report| report.rows)
}

/// The audit chain is broken: no key flows from now on, the audit trail and the journal say it.
fn lock_chain_broken(shared: &Arc<Shared>, failure: &str, findings: &str) {
    if !shared.dispenser.mark_damaged(findings) {
        return;
    }
    let recorded = shared
        .dispenser
        .with_vault(|vault| vault.record_audit_chain_failure(failure));
    match recorded {
        Ok(row) => log::error!(
            event = "audit-tampered", audit_sequence = row.sequence;
            "AUDIT CHAIN BROKEN: the background walk found that {findings}; no key is dispensed (audit row {}); call the security officer",
            row.sequence
        ),
        Err(error) => log::error!(
            event = "audit-tampered";
            "AUDIT CHAIN BROKEN: the background walk found that {findings}; no key is dispensed; the audit trail could not record it: {error}"
        ),
    }
}
