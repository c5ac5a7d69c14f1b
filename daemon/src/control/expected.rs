//! The expected-device list commands (PCI PIN 30-3): `expected-import` receives a list's bytes, `expected-close` closes a list, `reconcile` accounts for the lists, and `reconcile-export` sends the sealed reconciliation.

use std::path::Path;

use keymother_control as api;
use keymother_vault::{
    ExpectedList, InjectedKey, KeyRef, ListName, PendingKey, Reconciliation, RefusedDevice,
};

use super::connection::Connection;
use super::handlers::{Context, blocking};
use super::transfer::{ReceiveError, file_label, receive_file, send_file};

/// Reconciliation exports one at a time, as the other exports.
static RECONCILE_EXPORT: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn list_name(text: &str) -> Result<ListName, String> {
    text.parse().map_err(|problem| format!("name: {problem}"))
}

fn list_report(list: &ExpectedList) -> api::ExpectedListReport {
    api::ExpectedListReport {
        name: list.name.to_string(),
        devices: list.devices,
        sealed: list.sealed,
        file_name: list.file.clone(),
        file_sha256: list.file_sha256.clone(),
        imported_at: list.imported_at.clone(),
        imported_by: list.imported_by.clone(),
        closed_at: list.closed_at.clone(),
        closed_by: list.closed_by.clone(),
    }
}

/// `expected-import`: the list file arrives as data lines; the vault imports it whole or
/// not at all (audited either way). Needs an operator session when login is required.
pub(crate) async fn expected_import(
    context: &Context,
    connection: &mut Connection,
    request: api::ExpectedImport,
) -> Result<api::ExpectedListReport, String> {
    let name = list_name(&request.name)?;
    let file = file_label(&request.file_name)?;
    let operator = context.acting_operator(true).await?;
    let bytes = match receive_file(connection, &file, request.size).await {
        Ok(bytes) => bytes,
        Err(ReceiveError::Refused(words)) => return Err(words),
        Err(ReceiveError::Gone(error, _)) => {
            return Err(format!("{file}: the list import was cancelled: {error}"));
        }
    };
    let dispenser = context.dispenser();
    let list = blocking(move || {
        dispenser
            .with_vault(|vault| vault.import_expected_list(&name, &bytes, &file, Some(&operator)))
    })
    .await?
    .map_err(|error| error.to_string())?;
    log::info!(
        event = "expected-import", list = list.name.as_str(), devices = list.devices,
        sealed = list.sealed;
        "expected-device list {} imported from {}: {} serial{}{}",
        list.name, list.file, list.devices, if list.devices == 1 { "" } else { "s" }, if list.sealed { ", sealed" } else { "" }
    );
    Ok(list_report(&list))
}

/// `expected-close`: the list stops letting its serials through. Needs an operator session
/// when login is required.
pub(crate) async fn expected_close(
    context: &Context,
    request: api::ExpectedClose,
) -> Result<api::ExpectedListReport, String> {
    let name = list_name(&request.name)?;
    let operator = context.acting_operator(true).await?;
    let dispenser = context.dispenser();
    let list = blocking(move || {
        dispenser.with_vault(|vault| vault.close_expected_list(&name, Some(&operator)))
    })
    .await?
    .map_err(|error| error.to_string())?;
    log::info!(event = "expected-close", list = list.name.as_str(); "expected-device list {} closed", list.name);
    Ok(list_report(&list))
}

fn key_report(
    serial: &keymother_domain::HardwareSerial,
    key: &KeyRef,
    state: &str,
    port: &str,
    at: &str,
) -> api::ReconciledKey {
    api::ReconciledKey {
        kind: key.kind().to_owned(),
        key: key.key(),
        smn: match key {
            KeyRef::Master(index) => Some(keymother_domain::Smn::new(serial, *index).to_string()),
            KeyRef::Dukpt { .. } => None,
        },
        state: state.to_owned(),
        port: port.to_owned(),
        at: at.to_owned(),
    }
}

fn injected(serial: &keymother_domain::HardwareSerial, key: &InjectedKey) -> api::ReconciledKey {
    key_report(serial, &key.key, "used", &key.port, &key.at)
}

fn pending(serial: &keymother_domain::HardwareSerial, key: &PendingKey) -> api::ReconciledKey {
    key_report(serial, &key.key, &key.state, &key.port, &key.at)
}

fn refused(device: &RefusedDevice) -> api::RefusedDeviceReport {
    api::RefusedDeviceReport {
        hardware_serial: device.hardware_serial.clone(),
        attempts: device.attempts,
        first_at: device.first_at.clone(),
        last_at: device.last_at.clone(),
        last_port: device.last_port.clone(),
    }
}

/// The vault's reconciliation as the control socket shows it.
fn reconcile_report(reconciliation: &Reconciliation) -> api::ReconcileReport {
    let model =
        |model: &Option<keymother_domain::TerminalModel>| model.as_ref().map(ToString::to_string);
    let lists = reconciliation
        .lists
        .iter()
        .map(|list| api::ListReconciliationReport {
            list: list_report(&list.list),
            injected: list
                .injected
                .iter()
                .map(|device| api::InjectedDeviceReport {
                    hardware_serial: device.hardware_serial.clone(),
                    terminal_model: model(&device.terminal_model),
                    keys: device
                        .keys
                        .iter()
                        .map(|key| injected(&device.hardware_serial, key))
                        .collect(),
                    pending: device
                        .pending
                        .iter()
                        .map(|key| pending(&device.hardware_serial, key))
                        .collect(),
                })
                .collect(),
            pending: list
                .pending
                .iter()
                .map(|device| api::PendingDeviceReport {
                    hardware_serial: device.hardware_serial.clone(),
                    terminal_model: model(&device.terminal_model),
                    keys: device
                        .keys
                        .iter()
                        .map(|key| pending(&device.hardware_serial, key))
                        .collect(),
                })
                .collect(),
            missing: list
                .missing
                .iter()
                .map(|device| api::MissingDeviceReport {
                    hardware_serial: device.hardware_serial.clone(),
                    terminal_model: model(&device.terminal_model),
                    line: device.line,
                })
                .collect(),
            refused: list.refused.iter().map(refused).collect(),
        })
        .collect();
    api::ReconcileReport { lists }
}

/// `reconcile`: per list, injected, pending, missing and refused serials.
pub(crate) async fn reconcile(
    context: &Context,
    request: api::Reconcile,
) -> Result<api::ReconcileReport, String> {
    let name = request.name.as_deref().map(list_name).transpose()?;
    let dispenser = context.dispenser();
    let reconciliation =
        blocking(move || dispenser.with_vault(|vault| vault.reconcile(name.as_ref())))
            .await?
            .map_err(|error| error.to_string())?;
    Ok(reconcile_report(&reconciliation))
}

/// `reconcile-export`: the sealed reconciliation goes to the client and is audited
/// (`reconcile-export`) once the client says it has written it.
pub(crate) async fn reconcile_export(
    context: &Context,
    connection: &mut Connection,
    request: api::ReconcileExport,
) -> Result<api::ReconcileExportReport, String> {
    let file = file_label(&request.file_name)?;
    let name = request.name.as_deref().map(list_name).transpose()?;
    let operator = context.acting_operator(true).await?;
    let _one_at_a_time = RECONCILE_EXPORT.lock().await;
    let dispenser = context.dispenser();
    let label = file.clone();
    let (bytes, draft) = blocking(move || {
        dispenser.with_vault(|vault| {
            let mut bytes = Vec::new();
            let draft =
                vault.write_reconcile_export(&mut bytes, name.as_ref(), Path::new(&label))?;
            Ok::<_, keymother_vault::ExportError>((bytes, draft))
        })
    })
    .await?
    .map_err(|error| error.to_string())?;
    if let Err(words) = send_file(connection, &file, &bytes).await {
        log::warn!(event = "reconcile-export-cancelled", file = file.as_str(); "{words}");
        return Err(format!("{words}; the export was not recorded"));
    }
    let dispenser = context.dispenser();
    let (label, recorded_by) = (file.clone(), operator.clone());
    let report = blocking(move || {
        dispenser
            .with_vault(|vault| vault.commit_reconcile_export(&draft, &label, Some(&recorded_by)))
    })
    .await?
    .map_err(|error| error.to_string())?;
    log::info!(
        event = "reconcile-export", rows = report.rows, operator = operator.as_str();
        "{} reconciliation {} exported to {file}", report.rows,
        if report.rows == 1 { "row" } else { "rows" }
    );
    Ok(api::ReconcileExportReport {
        rows: report.rows,
        exported_at: report.exported_at,
        file_sha256: report.file_sha256,
    })
}
