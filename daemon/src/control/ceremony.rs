//! The `ceremony` command (KEK and TTK), and what it shares with `bdk-ceremony`: each component checked under its custodian's name, and every refusal audited with its reason and custodians.

use keymother_control as api;
use keymother_vault::{
    CheckedCeremony, ComponentEntry, FailedCeremony, SecretName, check_ceremony,
};

use super::handlers::{Context, blocking};

/// Checks a request's components with the vault's one check ([`check_ceremony`]).
pub(super) fn check_entries(
    algorithm: &str,
    expect_kcv: Option<&str>,
    entries: &[api::CustodianComponent],
    replace: bool,
    peer: &str,
) -> Result<CheckedCeremony, String> {
    let entries: Vec<ComponentEntry<'_>> = entries
        .iter()
        .map(|entry| ComponentEntry {
            custodian: &entry.custodian,
            component_hex: entry.component.expose_secret(),
            form_kcv: entry.kcv.as_deref(),
        })
        .collect();
    check_ceremony(algorithm, expect_kcv, &entries, replace, Some(peer))
}

/// Records a refused ceremony in the audit trail (`ceremony-refused`), naming its custodians
/// as they gave their names. A vault that cannot record it (zeroized, a forged head) is
/// logged; the refusal stands either way.
pub(super) async fn record_refusal(
    context: &Context,
    secret: String,
    entries: &[api::CustodianComponent],
    reason: &str,
) {
    let failure = FailedCeremony {
        secret,
        custodians: entries
            .iter()
            .map(|entry| entry.custodian.clone())
            .collect(),
        reason: reason.to_owned(),
        peer: Some(context.peer.clone()),
    };
    log::warn!(
        event = "ceremony-refused", secret = failure.secret.as_str(), peer = context.peer.as_str();
        "{} ceremony refused: {reason}", failure.secret
    );
    let dispenser = context.dispenser();
    let recorded = blocking(move || {
        dispenser
            .with_vault(|vault| vault.record_failed_ceremony(&failure))
            .map_err(|error| error.to_string())
    })
    .await;
    match recorded {
        Ok(Ok(_)) => {}
        Ok(Err(error)) | Err(error) => log::error!(
            event = "ceremony-refusal-unrecorded";
            "the refused ceremony could not be audited: {error}"
        ),
    }
}

pub(crate) async fn ceremony(
    context: &Context,
    request: api::Ceremony,
) -> Result<api::CeremonyReport, String> {
    let secret = request.secret.to_uppercase();
    let outcome = hold_ceremony(context, &request).await;
    if let Err(reason) = &outcome {
        record_refusal(context, secret, &request.components, reason).await;
    }
    outcome
}

/// The ceremony itself: checked, combined, sealed. Any refusal comes back as its words.
async fn hold_ceremony(
    context: &Context,
    request: &api::Ceremony,
) -> Result<api::CeremonyReport, String> {
    let name: SecretName = request.secret.parse()?;
    let checked = check_entries(
        &request.algorithm,
        request.expect_kcv.as_deref(),
        &request.components,
        request.replace,
        &context.peer,
    )?;
    let dispenser = context.dispenser();
    blocking(move || {
        let combined = checked.combine()?;
        let record = checked.record;
        let (installed, ready) = dispenser
            .install_secret(name, &combined.key, &record)
            .map_err(|error| error.to_string())?;
        let custodians: Vec<String> = record
            .custodians()
            .iter()
            .map(|custodian| custodian.name.to_string())
            .collect();
        log::info!(
            event = "ceremony", secret = name.to_string().as_str(),
            algorithm = installed.algorithm.name(), kcv = installed.kcv.to_string().as_str(),
            components = custodians.len(), custodians = custodians.join("/").as_str();
            "{name} loaded from {} components by {}, KCV {}{}",
            custodians.len(), custodians.join(", "), installed.kcv,
            installed.replaced.map(|old| format!(", replacing KCV {old}")).unwrap_or_default()
        );
        Ok(api::CeremonyReport {
            secret: name.to_string(),
            algorithm: installed.algorithm.name().to_owned(),
            component_kcvs: combined
                .component_kcvs
                .iter()
                .map(ToString::to_string)
                .collect(),
            kcv: installed.kcv.to_string(),
            parity_adjusted: combined.parity_adjusted,
            ready,
            tampered: dispenser.tampered(),
            custodians,
            replaced: installed.replaced.map(|kcv| kcv.to_string()),
        })
    })
    .await?
}
