//! The re-injection commands: `reinject-grant` and `reinject-revoke` (operator actions, audited) and `reinject-list`.

use keymother_control as api;
use keymother_vault::{GrantState, KeySlot, ReinjectionGrant};

use super::handlers::{Context, blocking};

/// A grant as the control socket shows it.
fn grant_report(grant: ReinjectionGrant) -> api::ReinjectionGrantReport {
    let (used_for, revoke_reason) = match grant.state {
        GrantState::Used => (grant.closing, None),
        GrantState::Revoked => (None, grant.closing),
        GrantState::Open => (None, None),
    };
    api::ReinjectionGrantReport {
        grant: grant.id,
        hardware_serial: grant.hardware_serial,
        slot: grant.slot.to_string(),
        reason: grant.reason,
        granted_by: grant.granted_by,
        granted_at: grant.granted_at,
        state: grant.state.to_string(),
        closed_at: grant.closed_at,
        closed_by: grant.closed_by,
        used_for,
        revoke_reason,
    }
}

pub(crate) async fn reinject_grant(
    context: &Context,
    request: api::ReinjectGrant,
) -> Result<api::ReinjectionGrantReport, String> {
    let api::ReinjectGrant {
        hardware_serial,
        slot,
        reason,
    } = request;
    let operator = context.acting_operator(true).await?;
    let slot = slot.map_or(KeySlot::Master, KeySlot::Dukpt);
    let dispenser = context.dispenser();
    blocking(move || {
        let grant = dispenser
            .with_vault(|vault| {
                vault.grant_reinjection(&hardware_serial, &slot, &reason, &operator)
            })
            .map_err(|error| error.to_string())?;
        log::warn!(
            event = "reinjection-grant", grant = grant.id, hw_serial = hardware_serial.as_str(),
            slot = slot.name(), operator = operator.as_str();
            "re-injection {} granted to {hardware_serial} for slot {slot} by {operator}: {reason}",
            grant.id
        );
        Ok(grant_report(grant))
    })
    .await?
}

pub(crate) async fn reinject_revoke(
    context: &Context,
    request: api::ReinjectRevoke,
) -> Result<api::ReinjectionGrantReport, String> {
    let api::ReinjectRevoke { grant, reason } = request;
    let operator = context.acting_operator(true).await?;
    let dispenser = context.dispenser();
    blocking(move || {
        let revoked = dispenser
            .with_vault(|vault| vault.revoke_reinjection(grant, &reason, &operator))
            .map_err(|error| error.to_string())?;
        log::warn!(
            event = "reinjection-revoke", grant = grant,
            hw_serial = revoked.hardware_serial.as_str(), operator = operator.as_str();
            "re-injection {grant} of {} revoked by {operator}: {reason}", revoked.hardware_serial
        );
        Ok(grant_report(revoked))
    })
    .await?
}

pub(crate) async fn reinject_list(
    context: &Context,
    request: api::ReinjectList,
) -> Result<Vec<api::ReinjectionGrantReport>, String> {
    let dispenser = context.dispenser();
    blocking(move || {
        let grants = dispenser
            .with_vault(|vault| vault.reinjection_grants(request.all))
            .map_err(|error| error.to_string())?;
        Ok(grants.into_iter().map(grant_report).collect())
    })
    .await?
}
