//! The BDK commands: `bdk-ceremony` (custodians load a DUKPT base derivation key from components, with its identifier and this appliance's device-ID range), `bdk-import` (the front end's sealed BDK file) and `bdk-status`.

use keymother_control as api;
use keymother_crypto::KeyFamily;
use keymother_vault::{BdkSource, BdkStatus, NewBdk};

use super::ceremony::{check_entries, record_refusal};
use super::connection::Connection;
use super::handlers::{Context, blocking};
use super::transfer::{ReceiveError, file_label, receive_file};

/// What `bdk-status` and `bdk-ceremony` say about a BDK.
fn report(status: BdkStatus) -> api::BdkReport {
    api::BdkReport {
        kind: match status.kind {
            KeyFamily::Tdes => "TDES",
            KeyFamily::Aes => "AES",
        }
        .to_owned(),
        algorithm: status.algorithm.name().to_owned(),
        name: status.name,
        bdk_id: status.bdk_id,
        kcv: status.kcv,
        devices: status.range,
        next_device: status.next_device,
        remaining: status.remaining,
        source: status.source.as_str().to_owned(),
        loaded_at: status.loaded_at,
        destroyed: status.destroyed,
    }
}

pub(crate) async fn bdk_ceremony(
    context: &Context,
    request: api::BdkCeremony,
) -> Result<api::BdkCeremonyReport, String> {
    let outcome = hold_bdk_ceremony(context, &request).await;
    if let Err(reason) = &outcome {
        let secret = format!("BDK {}", request.name);
        record_refusal(context, secret, &request.components, reason).await;
    }
    outcome
}

/// The BDK ceremony itself: checked, combined, sealed. Any refusal comes back as its words.
async fn hold_bdk_ceremony(
    context: &Context,
    request: &api::BdkCeremony,
) -> Result<api::BdkCeremonyReport, String> {
    let checked = check_entries(
        &request.algorithm,
        request.expect_kcv.as_deref(),
        &request.components,
        request.replace,
        &context.peer,
    )?;
    let custodians: Vec<String> = checked
        .record
        .custodians()
        .iter()
        .map(|custodian| custodian.name.to_string())
        .collect();
    let record = NewBdk {
        name: request.name.clone(),
        bdk_id: request.bdk_id,
        range: request.devices,
        source: BdkSource::Ceremony,
        replace: request.replace,
        ceremony: Some(checked.record.clone()),
    };
    let count = custodians.len();
    let dispenser = context.dispenser();
    blocking(move || {
        let combined = checked.combine()?;
        let installed = dispenser
            .install_bdk(&record, &combined.key, None)
            .map_err(|error| error.to_string())?;
        log::info!(
            event = "bdk-ceremony", bdk = installed.name.as_str(),
            algorithm = installed.algorithm.name(), kcv = installed.kcv.to_string().as_str(),
            components = count, custodians = custodians.join("/").as_str();
            "BDK {} loaded from {count} components by {}, KCV {}, devices {}",
            installed.name, custodians.join(", "), installed.kcv, installed.range
        );
        Ok(api::BdkCeremonyReport {
            component_kcvs: combined
                .component_kcvs
                .iter()
                .map(ToString::to_string)
                .collect(),
            parity_adjusted: combined.parity_adjusted,
            custodians,
            bdk: report(installed),
        })
    })
    .await?
}

pub(crate) async fn bdk_status(
    context: &Context,
    _: api::BdkStatus,
) -> Result<Vec<api::BdkReport>, String> {
    let dispenser = context.dispenser();
    blocking(move || {
        dispenser
            .bdks()
            .map(|bdks| bdks.into_iter().map(report).collect())
            .map_err(|error| error.to_string())
    })
    .await?
}

pub(crate) async fn bdk_import(
    context: &Context,
    connection: &mut Connection,
    request: api::BdkImport,
) -> Result<api::BdkReport, String> {
    let file = file_label(&request.file_name)?;
    if request.size > api::MAX_BDK_FILE {
        return Err(format!(
            "{file}: the file is {} bytes; keymotherd takes BDK files of at most {} bytes",
            request.size,
            api::MAX_BDK_FILE
        ));
    }
    let bytes = match receive_file(connection, &file, request.size).await {
        Ok(bytes) => bytes,
        Err(ReceiveError::Refused(words)) => return Err(words),
        Err(ReceiveError::Gone(error, _)) => {
            return Err(format!("{file}: the BDK import was cancelled: {error}"));
        }
    };
    let dispenser = context.dispenser();
    let replace = request.replace;
    blocking(move || {
        let installed = dispenser
            .import_bdk_file(&bytes, &file, replace, None)
            .map_err(|error| error.to_string())?;
        log::info!(
            event = "bdk-import", bdk = installed.name.as_str(), file = file.as_str(),
            kcv = installed.kcv.to_string().as_str();
            "BDK {} imported from {file}, KCV {}, devices {}",
            installed.name, installed.kcv, installed.range
        );
        Ok(report(installed))
    })
    .await?
}
