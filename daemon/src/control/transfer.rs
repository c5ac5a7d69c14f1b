//! The commands that move a file over the socket: `import` receives the key file's bytes, `export-smn`, `export-dukpt` and `audit-export` send theirs; a client that goes away cancels them.

use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use keymother_control::{self as api, ClientLine, DATA_CHUNK, FileEnd, StreamLine};
use keymother_vault::{AuditEvent, ImportError, ImportProgress};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use super::connection::{Connection, ConnectionError};
use super::handlers::{Context, blocking};

/// SMN exports one at a time: each marks the rows it wrote, and two at once could both
/// write the same "only new" rows.
static SMN_EXPORT: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// DUKPT exports one at a time, for the same reason.
static DUKPT_EXPORT: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Key-file imports one at a time: a second one, once its file has arrived, is refused
/// while the first runs (docs/CONTROL.md).
static IMPORT: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A client's file name, fit to name the file in errors, the log and the audit trail: at
/// most [`api::MAX_FILE_NAME`] bytes, control characters replaced. It is never opened.
pub(super) fn file_label(name: &str) -> Result<String, String> {
    if name.is_empty() {
        return Err("file_name: must name the file".to_owned());
    }
    let mut label: String = name
        .chars()
        .map(|character| {
            if character.is_control() {
                '?'
            } else {
                character
            }
        })
        .collect();
    if label.len() > api::MAX_FILE_NAME {
        let mut cut = api::MAX_FILE_NAME;
        while !label.is_char_boundary(cut) {
            cut -= 1;
        }
        label.truncate(cut);
    }
    Ok(label)
}

/// Records an import that ended before the file had arrived whole: its client gave up
/// (`import-cancelled`) or broke the wire's rules (`import-refused`). `reason` never quotes
/// what was sent.
async fn audit_upload(context: &Context, file: &str, cancelled: bool, reason: String) {
    let dispenser = Arc::clone(&context.shared.dispenser);
    let file = file.to_owned();
    let event = if cancelled {
        AuditEvent::ImportCancelled { file, reason }
    } else {
        AuditEvent::ImportRefused { file, reason }
    };
    let name = event.name();
    let recorded = blocking(move || dispenser.with_vault(|vault| vault.record_audit(event))).await;
    if !matches!(recorded, Ok(Ok(_))) {
        log::error!(event = name; "an unfinished upload could not be audited as {name}");
    }
}

/// The words of a refusal without the file's name before them, for the audit row.
fn without_file<'a>(file: &str, words: &'a str) -> &'a str {
    words
        .strip_prefix(file)
        .and_then(|rest| rest.strip_prefix(": "))
        .unwrap_or(words)
}

/// Receives the `size` bytes of the key file named `file`.
pub(super) async fn receive_file(
    connection: &mut Connection,
    file: &str,
    size: u64,
) -> Result<Zeroizing<Vec<u8>>, ReceiveError> {
    // Refused before a byte is read: too large to take, or to hold in memory here.
    let capacity = usize::try_from(size)
        .ok()
        .filter(|_| size <= api::MAX_KEY_FILE)
        .ok_or_else(|| ReceiveError::Refused(too_large(file, size)))?;
    // Allocated once at its full size: growing it would leave copies behind unwiped.
    let mut bytes = Zeroizing::new(Vec::with_capacity(capacity));
    let mut line = Zeroizing::new(Vec::new());
    while (bytes.len() as u64) < size {
        match connection.read_line(&mut line).await {
            Ok(()) => {}
            Err(ConnectionError::TooLong) => {
                return Err(ReceiveError::Refused(format!(
                    "{file}: a data line is longer than {} bytes",
                    api::MAX_LINE
                )));
            }
            Err(error) => return Err(ReceiveError::Gone(error, bytes.len() as u64)),
        }
        let data = match api::decode_line::<ClientLine>(&line) {
            Ok(ClientLine::Data(data)) => data,
            _ => {
                return Err(ReceiveError::Refused(format!(
                    "{file}: expected the file's next data line ({} of {size} bytes received)",
                    bytes.len()
                )));
            }
        };
        let mut chunk = api::decode_data(&data)
            .map_err(|error| ReceiveError::Refused(format!("{file}: {error}")))?;
        let mut data = data;
        data.zeroize();
        if (bytes.len() + chunk.len()) as u64 > size {
            chunk.zeroize();
            return Err(ReceiveError::Refused(format!(
                "{file}: more data than the {size} bytes announced"
            )));
        }
        bytes.extend_from_slice(&chunk);
        chunk.zeroize();
    }
    Ok(bytes)
}

fn too_large(file: &str, size: u64) -> String {
    format!(
        "{file}: the file is {size} bytes; keymotherd takes key files of at most {} bytes",
        api::MAX_KEY_FILE
    )
}

/// Why a file did not arrive.
pub(super) enum ReceiveError {
    /// The client went away or stalled after this many bytes.
    Gone(ConnectionError, u64),
    /// The client sent something else than the file: these words.
    Refused(String),
}

/// `import`: the key file arrives as data lines, then the vault imports it while progress
/// lines go back; the client going away at any point cancels it, and nothing is stored. The
/// import runs on a connection of its own ([`keymother_vault::Importer`]), without the
/// dispenser's vault: reservations on every port go on while it stages the batch.
pub(crate) async fn import(
    context: &Context,
    connection: &mut Connection,
    request: api::Import,
) -> Result<api::ImportReport, String> {
    let file = file_label(&request.file_name)?;
    let bytes = match receive_file(connection, &file, request.size).await {
        Ok(bytes) => bytes,
        Err(ReceiveError::Refused(words)) => {
            audit_upload(
                context,
                &file,
                false,
                without_file(&file, &words).to_owned(),
            )
            .await;
            return Err(words);
        }
        Err(ReceiveError::Gone(error, received)) => {
            log::warn!(event = "import-cancelled", file = file.as_str(); "{file}: import cancelled during the upload: {error}");
            let reason = format!(
                "cancelled by its client after {received} of {} bytes had arrived",
                request.size
            );
            audit_upload(context, &file, true, reason).await;
            return Err(format!("{file}: the import was cancelled: {error}"));
        }
    };
    let Ok(_one_at_a_time) = IMPORT.try_lock() else {
        let reason = "another import is running; try again when it has ended".to_owned();
        audit_upload(context, &file, false, reason.clone()).await;
        return Err(format!("{file}: {reason}"));
    };
    // The dispenser's vault only to make the importer (the KEK, the audit head's key, a
    // connection of its own); released before the first record is read.
    let dispenser = Arc::clone(&context.shared.dispenser);
    let mut importer = blocking(move || {
        let turn = Box::new(DispenserTurn(Arc::clone(&dispenser)));
        dispenser.with_vault(|vault| {
            vault.importer().map(|importer| {
                importer
                    .beside_live_ports()
                    .taking_turns(turn)
                    .with_worker_start(|| {
                        crate::background::lower_this_thread("an import's record worker")
                    })
            })
        })
    })
    .await?
    .map_err(|error| error.to_string())?;
    let cancel = Arc::new(AtomicBool::new(false));
    let (progress_sender, mut progress) = tokio::sync::watch::channel(ImportProgress {
        records_done: 0,
        records_total: 0,
    });
    let (name, cancelled) = (file.clone(), Arc::clone(&cancel));
    // A thread of its own: it writes each chunk holding the dispenser's turn at the vault,
    // so it keeps the ports' priority (a preempted holder would stall them); its record
    // workers, the processor-heavy part, run at the lowest.
    let (done, mut work) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("keymother-import".to_owned())
        .spawn(move || {
            let outcome = importer.import_key_stream(
                Cursor::new(bytes.as_slice()),
                &name,
                &mut |step| {
                    let _ = progress_sender.send(step);
                },
                &cancelled,
            );
            let _ = done.send(outcome);
        })
        .map_err(|error| format!("{file}: the import could not be started: {error}"))?;
    // The client going away cancels: a progress line it cannot take tells. Its end of file
    // alone does not (a client may close its sending side and still wait for the answer),
    // so then a progress line goes at once, to find out; anything else it sends is dropped.
    let mut listening = true;
    let outcome = loop {
        tokio::select! {
            outcome = &mut work => break outcome,
            Ok(()) = progress.changed() => {
                let step = *progress.borrow_and_update();
                if connection.send(&progress_line(step)).await.is_err() {
                    cancel.store(true, Ordering::Relaxed);
                }
            }
            closed = connection.closed_or_spoke(), if listening => {
                if closed {
                    listening = false;
                    let step = *progress.borrow();
                    if connection.send(&progress_line(step)).await.is_err() {
                        cancel.store(true, Ordering::Relaxed);
                    }
                }
            }
        }
    };
    // The batch, whole or removed: the status and the display count again.
    context.shared.dispenser.touch();
    let report = outcome
        .map_err(|error| format!("the import failed: {error}"))?
        .map_err(|error| {
            if let ImportError::Cancelled { .. } = error {
                log::warn!(event = "import-cancelled", file = file.as_str(); "{error}");
            }
            error.to_string()
        })?;
    log::info!(
        event = "import", batch = report.batch_id.as_str(), records = report.records,
        file_sha256 = report.file_sha256.as_str();
        "batch {} imported: {} key{}", report.batch_id, report.records,
        if report.records == 1 { "" } else { "s" }
    );
    Ok(api::ImportReport {
        batch_id: report.batch_id,
        issuer: report.issuer,
        algorithm: report.algorithm,
        records: report.records,
        first_index: report.first_index,
        last_index: report.last_index,
        file_sha256: report.file_sha256,
    })
}

fn progress_line(step: ImportProgress) -> StreamLine {
    StreamLine::Progress(api::Progress {
        done: u64::from(step.records_done),
        total: u64::from(step.records_total),
    })
}

/// Sends `bytes` as data lines and an end line, then waits for the client's word that it
/// has written them: `Ok` once it says so with the right digest.
pub(super) async fn send_file(
    connection: &mut Connection,
    file: &str,
    bytes: &[u8],
) -> Result<(), String> {
    let sha256 = hex::encode(Sha256::digest(bytes));
    let gone = |error: ConnectionError| format!("{file}: the export was cancelled: {error}");
    for chunk in bytes.chunks(DATA_CHUNK) {
        connection
            .send(&StreamLine::Data(api::encode_data(chunk)))
            .await
            .map_err(gone)?;
    }
    let end = StreamLine::End(FileEnd {
        bytes: bytes.len() as u64,
        sha256: sha256.clone(),
    });
    connection.send(&end).await.map_err(gone)?;
    let mut line = Vec::new();
    connection.read_line(&mut line).await.map_err(gone)?;
    match api::decode_line::<ClientLine>(&line) {
        Ok(ClientLine::Received(received)) if received.sha256 == sha256 => Ok(()),
        Ok(ClientLine::Received(_)) => Err(format!(
            "{file}: the client wrote something else than was sent (SHA-256 differs)"
        )),
        Ok(ClientLine::Abandon(abandon)) => Err(format!(
            "{file}: the client could not write the file: {}",
            abandon.reason
        )),
        _ => Err(format!("{file}: expected a received or abandon line")),
    }
}

/// `export-smn`: the sealed file goes to the client; its rows are marked exported, and the
/// export audited, only once the client says it has written it.
pub(crate) async fn export_smn(
    context: &Context,
    connection: &mut Connection,
    request: api::ExportSmn,
) -> Result<api::SmnExportReport, String> {
    let file = file_label(&request.file_name)?;
    let operator = context.acting_operator(true).await?;
    let _one_at_a_time = SMN_EXPORT.lock().await;
    let dispenser = Arc::clone(&context.shared.dispenser);
    let (label, only_new) = (file.clone(), request.only_new);
    let (bytes, draft) = blocking(move || {
        dispenser.with_vault(|vault| {
            let mut bytes = Vec::new();
            let draft = vault.write_smn_export(&mut bytes, only_new, Path::new(&label))?;
            Ok::<_, keymother_vault::ExportError>((bytes, draft))
        })
    })
    .await?
    .map_err(|error| error.to_string())?;
    if let Err(words) = send_file(connection, &file, &bytes).await {
        log::warn!(event = "export-cancelled", file = file.as_str(); "{words}; no row was marked exported");
        return Err(format!("{words}; no row was marked exported"));
    }
    let dispenser = Arc::clone(&context.shared.dispenser);
    let (label, recorded_by) = (file.clone(), operator.clone());
    let report = blocking(move || {
        dispenser.with_vault(|vault| vault.commit_smn_export(&draft, &label, Some(&recorded_by)))
    })
    .await?
    .map_err(|error| error.to_string())?;
    log::info!(
        event = "export", rows = report.rows, operator = operator.as_str();
        "{} SMN row{} exported to {file}", report.rows,
        if report.rows == 1 { "" } else { "s" }
    );
    Ok(api::SmnExportReport {
        rows: report.rows,
        only_new: report.only_new,
        exported_at: report.exported_at,
        file_sha256: report.file_sha256,
    })
}

/// `export-dukpt`: the sealed file of the DUKPT registry goes to the client; its rows are
/// marked exported, and the export audited (`dukpt-export`), only once the client says it has
/// written it.
pub(crate) async fn export_dukpt(
    context: &Context,
    connection: &mut Connection,
    request: api::ExportDukpt,
) -> Result<api::DukptExportReport, String> {
    let file = file_label(&request.file_name)?;
    let operator = context.acting_operator(true).await?;
    let _one_at_a_time = DUKPT_EXPORT.lock().await;
    let dispenser = Arc::clone(&context.shared.dispenser);
    let (label, only_new) = (file.clone(), request.only_new);
    let (bytes, draft) = blocking(move || {
        dispenser.with_vault(|vault| {
            let mut bytes = Vec::new();
            let draft = vault.write_dukpt_export(&mut bytes, only_new, Path::new(&label))?;
            Ok::<_, keymother_vault::ExportError>((bytes, draft))
        })
    })
    .await?
    .map_err(|error| error.to_string())?;
    if let Err(words) = send_file(connection, &file, &bytes).await {
        log::warn!(event = "dukpt-export-cancelled", file = file.as_str(); "{words}; no row was marked exported");
        return Err(format!("{words}; no row was marked exported"));
    }
    let dispenser = Arc::clone(&context.shared.dispenser);
    let (label, recorded_by) = (file.clone(), operator.clone());
    let report = blocking(move || {
        dispenser.with_vault(|vault| vault.commit_dukpt_export(&draft, &label, Some(&recorded_by)))
    })
    .await?
    .map_err(|error| error.to_string())?;
    log::info!(
        event = "dukpt-export", rows = report.rows, operator = operator.as_str();
        "{} DUKPT rows exported to {file}", report.rows
    );
    Ok(api::DukptExportReport {
        rows: report.rows,
        only_new: report.only_new,
        exported_at: report.exported_at,
        file_sha256: report.file_sha256,
    })
}

/// `audit-export`: the audit trail with its hashes goes to the client.
pub(crate) async fn audit_export(
    context: &Context,
    connection: &mut Connection,
    request: api::AuditExport,
) -> Result<api::AuditExportReport, String> {
    let file = file_label(&request.file_name)?;
    let dispenser = Arc::clone(&context.shared.dispenser);
    let label = file.clone();
    let (bytes, report) = blocking(move || {
        dispenser.with_vault(|vault| {
            let mut bytes = Vec::new();
            let report = vault.write_audit_export(&mut bytes, Path::new(&label))?;
            Ok::<_, keymother_vault::ExportError>((bytes, report))
        })
    })
    .await?
    .map_err(|error| error.to_string())?;
    send_file(connection, &file, &bytes).await?;
    log::info!(event = "audit-export", rows = report.rows; "{} audit rows exported to {file}", report.rows);
    Ok(api::AuditExportReport {
        rows: report.rows,
        verification: report.verification,
        file_sha256: hex::encode(Sha256::digest(&bytes)),
    })
}

/// An import's turn at the vault: the dispenser's own lock, taken after the ports waiting.
struct DispenserTurn(Arc<crate::dispenser::Dispenser>);

impl keymother_vault::WriteTurn for DispenserTurn {
    fn take(&self) -> Box<dyn keymother_vault::HeldTurn + '_> {
        Box::new(self.0.import_turn())
    }
}
