//! The control socket: newline-delimited JSON requests from the `keymother` CLI, one per connection, from members of the operators' group only.
//!
//! The daemon is the only owner of the vault and of every secret; the CLI is a thin client.
//! Requests never change anything unless they are well formed and allowed; a bad request gets
//! an error answer naming what was wrong, and the daemon carries on serving its ports.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use base64ct::{Base64, Encoding};

use keymother_crypto::Kcv;
use keymother_crypto::component::{self, Component};
use keymother_vault::{KeyState, SecretName};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use zeroize::Zeroize;

use crate::operator::{OperatorSession, rfc3339};
use crate::runtime::Shared;
use keymother_pki::login::{CHALLENGE_LENGTH, LoginResponse};

/// Longest request line accepted (components for a 9-part ceremony fit easily).
const MAX_REQUEST: usize = 64 * 1024;
/// The KDH key size when the request does not say (TR-34 asks for at least 2048 bits).
const DEFAULT_KDH_BITS: usize = 2048;

/// DER as PEM with the given label.
fn pem(label: &str, der: &[u8]) -> String {
    use keymother_pki::der::pem::{LineEnding, encode_string};
    // Encoding to PEM fails only for labels with invalid characters; these are constants.
    encode_string(label, LineEnding::LF, der).unwrap_or_default()
}

/// A certificate given as PEM text.
fn decode_certificate(text: &str) -> Result<Vec<u8>, String> {
    keymother_pki::certificate_der(text.as_bytes()).map_err(|error| format!("certificate: {error}"))
}

/// Where the socket is and who may use it.
#[derive(Debug, Clone)]
pub struct ControlSettings {
    pub socket: PathBuf,
    /// Members of this group (and root, and the daemon's own user) may send requests.
    pub group: String,
}

/// A request from the CLI. Unknown fields and commands are refused.
#[derive(Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    Status {},
    Ceremony {
        secret: String,
        algorithm: String,
        components: Vec<String>,
        expect_kcv: Option<String>,
    },
    Import {
        path: PathBuf,
    },
    Inventory {},
    SmnRows {},
    ExportSmn {
        path: PathBuf,
        #[serde(default)]
        only_new: bool,
    },
    AuditVerify {},
    AuditExport {
        path: PathBuf,
    },
    Void {
        key_index: u32,
        reason: String,
    },
    Zeroize {
        /// Must be the appliance's device id: a zeroize cannot happen by accident.
        confirm_device_id: String,
        reason: String,
    },
    /// Makes the KDH key pair and returns its certificate request (PEM); with no subject, the
    /// request names the device id.
    KdhRequest {
        subject: Option<String>,
        bits: Option<usize>,
    },
    /// Installs the KDH certificate (PEM or base64 DER) for the pending key pair.
    KdhInstall {
        certificate: String,
    },
    /// The KDH identity: subject, request (PEM) and certificate details.
    KdhStatus {},
    /// A single-use challenge for an operator login (docs/SECURITY.md, "Operators").
    LoginChallenge {},
    /// The operator's signed answer to a challenge.
    Login {
        /// The operator certificate, DER, in standard base64.
        certificate: String,
        /// The challenge answered, 64 hex digits.
        challenge: String,
        /// When the operator signed, Unix seconds by the operator's clock.
        signed_at: u64,
        /// RSASSA-PSS (SHA-256, salt 32) over the login content, standard base64.
        signature: String,
    },
    /// Ends the operator session.
    Logout {},
}

impl Request {
    /// Wipes any component material the request carried.
    fn wipe(&mut self) {
        if let Request::Ceremony { components, .. } = self {
            for component in components.iter_mut() {
                component.zeroize();
            }
        }
    }
}

/// Binds the socket (replacing a stale one) and restricts it to the group; `None`, logged,
/// when that fails (the daemon serves its ports all the same). Done before the daemon says
/// it is ready, so a client started after that finds the socket.
pub(crate) fn open_control(settings: &ControlSettings) -> Option<UnixListener> {
    match bind(settings) {
        Ok(listener) => {
            log::info!("event=control-socket path={}", settings.socket.display());
            Some(listener)
        }
        Err(error) => {
            log::error!(
                "event=control-socket-failed path={} error=\"{error}\"",
                settings.socket.display()
            );
            None
        }
    }
}

/// Serves the bound socket.
/// Whether the tamper input is watched, for `status`.
fn tamper_input_json(dispenser: &crate::dispenser::Dispenser) -> Value {
    use crate::dispenser::TamperWatch;
    let required = dispenser.tamper_input_required();
    match dispenser.tamper_watch() {
        TamperWatch::NoInput => json!({"state": "none", "required": required}),
        TamperWatch::Watched { input } => {
            json!({"state": "watched", "input": input, "required": required})
        }
        TamperWatch::Unwatched { input, reason } => {
            json!({"state": "not watched", "input": input, "reason": reason, "required": required})
        }
    }
}

pub(crate) async fn serve_control(
    listener: UnixListener,
    settings: ControlSettings,
    shared: Arc<Shared>,
) {
    let group_id = group_id(&settings.group);
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let shared = Arc::clone(&shared);
                let group = settings.group.clone();
                tokio::spawn(async move {
                    if let Err(error) = serve_client(stream, &shared, group_id, &group).await {
                        log::warn!("event=control-client-error error=\"{error}\"");
                    }
                });
            }
            Err(error) => log::warn!("event=control-accept-failed error=\"{error}\""),
        }
    }
}

fn bind(settings: &ControlSettings) -> std::io::Result<UnixListener> {
    if let Some(parent) = settings.socket.parent() {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::remove_file(&settings.socket) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
        _ => {}
    }
    let listener = UnixListener::bind(&settings.socket)?;
    match group_id(&settings.group) {
        Some(gid) => {
            nix::unistd::chown(&settings.socket, None, Some(gid)).map_err(std::io::Error::from)?;
            std::fs::set_permissions(&settings.socket, std::fs::Permissions::from_mode(0o660))?;
        }
        None => {
            log::warn!(
                "event=control-group-missing group={} consequence=\"only root and the daemon's user may use the socket\"",
                settings.group
            );
            std::fs::set_permissions(&settings.socket, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(listener)
}

fn group_id(name: &str) -> Option<nix::unistd::Gid> {
    nix::unistd::Group::from_name(name)
        .ok()
        .flatten()
        .map(|group| group.gid)
}

/// Whether the peer may send requests: root, the daemon's own user, or a member of the group
/// (primary or supplementary, from the group database: SO_PEERCRED gives only the primary
/// group, and the unit's ProtectProc=invisible hides other processes' /proc entries).
fn peer_allowed(stream: &UnixStream, group: Option<nix::unistd::Gid>) -> bool {
    let Ok(credentials) = stream.peer_cred() else {
        return false;
    };
    let uid = credentials.uid();
    if uid == 0 || uid == nix::unistd::getuid().as_raw() {
        return true;
    }
    let Some(group) = group else {
        return false;
    };
    if credentials.gid() == group.as_raw() {
        return true;
    }
    let Ok(Some(user)) = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) else {
        return false;
    };
    let Ok(name) = std::ffi::CString::new(user.name) else {
        return false;
    };
    nix::unistd::getgrouplist(&name, user.gid)
        .map(|groups| groups.contains(&group))
        .unwrap_or(false)
}

async fn answer(stream: &mut UnixStream, value: &Value) -> std::io::Result<()> {
    let mut line = value.to_string();
    line.push('\n');
    stream.write_all(line.as_bytes()).await
}

fn failure(message: impl std::fmt::Display) -> Value {
    json!({ "ok": false, "error": message.to_string() })
}

fn success(result: Value) -> Value {
    json!({ "ok": true, "result": result })
}

async fn serve_client(
    mut stream: UnixStream,
    shared: &Arc<Shared>,
    group_id: Option<nix::unistd::Gid>,
    group: &str,
) -> std::io::Result<()> {
    let mut line = Vec::new();
    let read = {
        let mut reader = BufReader::new(&mut stream).take(MAX_REQUEST as u64 + 1);
        reader.read_until(b'\n', &mut line).await?
    };
    // The request is read before the peer is judged, so a refused client still gets its
    // answer instead of a broken pipe; nothing in it is acted on.
    if !peer_allowed(&stream, group_id) {
        line.zeroize();
        log::warn!(event = "control-refused"; "control request refused: client not in group {group}");
        return answer(
            &mut stream,
            &failure(format!(
                "permission denied: only members of group {group} may control keymotherd"
            )),
        )
        .await;
    }
    if read > MAX_REQUEST {
        line.zeroize();
        return answer(
            &mut stream,
            &failure(format!("request longer than {MAX_REQUEST} bytes")),
        )
        .await;
    }
    let parsed: Result<Request, _> = serde_json::from_slice(&line);
    line.zeroize();
    let mut request = match parsed {
        Ok(request) => request,
        Err(error) => {
            // serde's message can quote a value from the request (a component sent as a
            // string where a list belongs): the client may hear it, the log only gets where.
            log::warn!(
                event = "control-malformed";
                "malformed control request ({:?} error at line {} column {})",
                error.classify(),
                error.line(),
                error.column()
            );
            return answer(&mut stream, &failure(format!("malformed request: {error}"))).await;
        }
    };
    let peer = peer_name(&stream);
    let outcome = handle(&mut request, &mut stream, shared, &peer).await;
    request.wipe();
    let response = match outcome {
        Ok(result) => success(result),
        Err(message) => failure(message),
    };
    answer(&mut stream, &response).await
}

/// Runs a blocking vault operation off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| format!("the operation failed: {error}"))
}

/// The Unix user on the other end: recorded as the operator of what it asks for when no
/// operator session is open, and as the one who tried a refused login.
fn peer_name(stream: &UnixStream) -> String {
    let Ok(credentials) = stream.peer_cred() else {
        return "unknown".to_owned();
    };
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(credentials.uid()))
        .ok()
        .flatten()
        .map_or_else(|| format!("uid {}", credentials.uid()), |user| user.name)
}

/// An operator session as the control socket shows it.
fn session_json(session: &OperatorSession) -> Value {
    json!({
        "name": session.name,
        "subject": session.subject,
        "serial": session.serial,
        "since": rfc3339(session.since),
        "until": rfc3339(session.until),
    })
}

/// Who a control action is recorded under: the operator logged in, else the local user.
/// With operator login required, `needs_session` actions are refused without a session.
async fn acting_operator(
    shared: &Arc<Shared>,
    peer: &str,
    needs_session: bool,
) -> Result<String, String> {
    let dispenser = Arc::clone(&shared.dispenser);
    let session = blocking(move || dispenser.operator_session(SystemTime::now())).await?;
    match session {
        Some(session) => Ok(session.name),
        None if needs_session && shared.dispenser.operator_required() => Err(
            "no operator is logged in: operator login is required on this appliance; log in first (keymother operator login)"
                .to_owned(),
        ),
        None => Ok(peer.to_owned()),
    }
}

/// Decodes standard base64 for `field`.
fn base64_field(field: &str, text: &str) -> Result<Vec<u8>, String> {
    Base64::decode_vec(text.trim()).map_err(|_| format!("{field}: not standard base64"))
}

/// The login answer from a `login` request's fields.
fn login_response(
    certificate: &str,
    challenge: &str,
    signed_at: u64,
    signature: &str,
) -> Result<LoginResponse, String> {
    let challenge: [u8; CHALLENGE_LENGTH] = hex::decode(challenge.trim())
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| format!("challenge: must be {} hex digits", 2 * CHALLENGE_LENGTH))?;
    Ok(LoginResponse {
        certificate: base64_field("certificate", certificate)?,
        challenge,
        signed_at,
        signature: base64_field("signature", signature)?,
    })
}

async fn handle(
    request: &mut Request,
    stream: &mut UnixStream,
    shared: &Arc<Shared>,
    peer: &str,
) -> Result<Value, String> {
    let peer = peer.to_owned();
    let dispenser = Arc::clone(&shared.dispenser);
    match request {
        Request::Status {} => {
            let status = blocking(move || {
                dispenser.with_vault(|vault| -> Result<Value, String> {
                    let inventory = vault.inventory().map_err(|error| error.to_string())?;
                    let mut secrets = serde_json::Map::new();
                    for name in SecretName::ALL {
                        let info = vault.secret_info(name).map_err(|error| error.to_string())?;
                        secrets.insert(
                            name.to_string(),
                            match info {
                                Some(info) => json!({"algorithm": info.algorithm.name(), "kcv": info.kcv.to_string(), "components": info.component_count, "loaded_at": info.loaded_at}),
                                None => Value::Null,
                            },
                        );
                    }
                    let keys: serde_json::Map<String, Value> = KeyState::ALL
                        .into_iter()
                        .map(|state| (state.to_string(), json!(inventory.count(state))))
                        .collect();
                    Ok(json!({
                        "device_id": vault.device_id().to_string(),
                        "secrets": secrets,
                        "keys": keys,
                        "smn_rows": vault.smn_rows().map_err(|error| error.to_string())?.len(),
                    }))
                })
            })
            .await??;
            let mut status = status;
            let sessions = Arc::clone(&shared.dispenser);
            let session = blocking(move || sessions.operator_session(SystemTime::now())).await?;
            status["operator"] = session.as_ref().map_or(Value::Null, session_json);
            status["operator_required"] = json!(shared.dispenser.operator_required());
            status["operator_ca"] = json!(shared.dispenser.trust().is_some());
            // What keeps keys from flowing, as the display says it ("ready" when nothing).
            let computing = Arc::clone(shared);
            let appliance = blocking(move || computing.appliance_state()).await?;
            status["reason"] = json!(appliance.reason);
            // KEK and TTK are loaded (the key ceremonies' "ready").
            status["ready"] = json!(shared.dispenser.ttk_kcv().is_some());
            let (state, tampered) = match shared.dispenser.readiness() {
                crate::dispenser::Readiness::Unlocked if appliance.ready => ("ready", None),
                // Unlocked, and something else holds the keys back: `reason` says what.
                crate::dispenser::Readiness::Unlocked => ("waiting", None),
                crate::dispenser::Readiness::Locked => ("locked", None),
                crate::dispenser::Readiness::Tampered(input) => ("tampered", Some(input)),
            };
            status["state"] = json!(state);
            status["tampered"] = json!(tampered);
            status["tamper_input"] = tamper_input_json(&shared.dispenser);
            status["ports"] = json!(shared.port_states());
            status["injections_since_start"] = json!(shared.stats.injections.load(std::sync::atomic::Ordering::Relaxed));
            Ok(status)
        }
        Request::Ceremony {
            secret,
            algorithm,
            components,
            expect_kcv,
        } => {
            let name: SecretName = secret.parse()?;
            let algorithm: keymother_crypto::KeyAlgorithm =
                algorithm.parse().map_err(|error: keymother_crypto::KeyError| error.to_string())?;
            let expected = expect_kcv
                .as_deref()
                .map(|text| Kcv::from_hex(algorithm.family(), text).map_err(|error| format!("expect_kcv: {error}")))
                .transpose()?;
            let parsed = components
                .iter()
                .enumerate()
                .map(|(index, text)| Component::from_hex(algorithm, index + 1, text))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|error| error.to_string())?;
            let count = parsed.len();
            let outcome = blocking(move || -> Result<Value, String> {
                let combined = component::combine(&parsed, expected).map_err(|error| error.to_string())?;
                let (installed, ready) = dispenser
                    .install_secret(name, &combined.key, count)
                    .map_err(|error| error.to_string())?;
                log::info!(
                    event = "ceremony", secret = name.to_string().as_str(),
                    algorithm = installed.algorithm.name(), kcv = installed.kcv.to_string().as_str(),
                    components = count;
                    "{name} loaded from {count} components, KCV {}", installed.kcv
                );
                Ok(json!({
                    "secret": name.to_string(),
                    "algorithm": installed.algorithm.name(),
                    "component_kcvs": combined.component_kcvs.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "kcv": installed.kcv.to_string(),
                    "parity_adjusted": combined.parity_adjusted,
                    "ready": ready,
                    "tampered": dispenser.tampered(),
                }))
            })
            .await??;
            Ok(outcome)
        }
        Request::Import { path } => {
            let path = path.clone();
            let (progress_sender, mut progress) = tokio::sync::mpsc::unbounded_channel();
            let import = tokio::task::spawn_blocking(move || {
                dispenser.with_vault(|vault| {
                    vault.import_key_file(&path, &mut |step| {
                        let _ = progress_sender.send((step.records_done, step.records_total));
                    })
                })
            });
            while let Some((done, total)) = progress.recv().await {
                answer(stream, &json!({"progress": {"done": done, "total": total}}))
                    .await
                    .map_err(|error| error.to_string())?;
            }
            let report = import
                .await
                .map_err(|error| format!("the import failed: {error}"))?
                .map_err(|error| error.to_string())?;
            log::info!(
                event = "import", batch = report.batch_id.as_str(), records = report.records,
                file_sha256 = report.file_sha256.as_str();
                "batch {} imported: {} keys", report.batch_id, report.records
            );
            Ok(json!({
                "batch_id": report.batch_id,
                "issuer": report.issuer,
                "algorithm": report.algorithm,
                "records": report.records,
                "first_index": report.first_index,
                "last_index": report.last_index,
                "file_sha256": report.file_sha256,
            }))
        }
        Request::Inventory {} => blocking(move || {
            dispenser.with_vault(|vault| -> Result<Value, String> {
                let inventory = vault.inventory().map_err(|error| error.to_string())?;
                Ok(json!({
                    "keys": KeyState::ALL.into_iter().map(|state| (state.to_string(), json!(inventory.count(state)))).collect::<serde_json::Map<_, _>>(),
                    "batches": inventory.batches.iter().map(|batch| json!({
                        "batch_id": batch.batch_id,
                        "issuer": batch.issuer,
                        "algorithm": batch.algorithm,
                        "records": batch.record_count,
                        "available": batch.available,
                        "imported_at": batch.imported_at,
                    })).collect::<Vec<_>>(),
                }))
            })
        })
        .await?,
        Request::ExportSmn { path, only_new } => {
            let (path, only_new) = (path.clone(), *only_new);
            let operator = acting_operator(shared, &peer, true).await?;
            blocking(move || {
                let report = dispenser
                    .with_vault(|vault| vault.export_smn(&path, only_new, Some(&operator)))
                    .map_err(|error| error.to_string())?;
                log::info!(
                    event = "export", rows = report.rows, operator = operator.as_str();
                    "{} SMN rows exported to {}", report.rows, report.path.display()
                );
                Ok(json!({
                    "path": report.path,
                    "rows": report.rows,
                    "only_new": report.only_new,
                    "exported_at": report.exported_at,
                    "file_sha256": report.file_sha256,
                }))
            })
            .await?
        }
        Request::AuditVerify {} => blocking(move || {
            dispenser.with_vault(|vault| match vault.verify_audit() {
                Ok(report) => Ok(json!({
                    "rows": report.rows,
                    "head_hash": report.head_hash,
                    "head_mac": format!("{:?}", report.head_mac),
                })),
                Err(failure) => {
                    log::error!(event = "audit-verify-failed"; "the audit chain does not verify: {failure}");
                    Err(format!("the audit chain does not verify: {failure}"))
                }
            })
        })
        .await?,
        Request::AuditExport { path } => {
            let path = path.clone();
            blocking(move || {
                let report = dispenser
                    .with_vault(|vault| vault.export_audit(&path))
                    .map_err(|error| error.to_string())?;
                Ok(json!({"path": path, "rows": report.rows, "verification": report.verification}))
            })
            .await?
        }
        Request::Void { key_index, reason } => {
            let (key_index, reason) = (*key_index, reason.clone());
            let operator = acting_operator(shared, &peer, true).await?;
            blocking(move || {
                let voided = dispenser
                    .with_vault(|vault| vault.void_key(key_index, &reason, &operator))
                    .map_err(|error| error.to_string())?;
                log::warn!(
                    event = "void", key_index = key_index, hw_serial = voided.hardware_serial.as_str(),
                    operator = operator.as_str();
                    "key {key_index:08} of {} voided: {reason}", voided.hardware_serial
                );
                Ok(json!({
                    "key_index": voided.key_index,
                    "hardware_serial": voided.hardware_serial,
                    "previous_state": voided.previous_state.to_string(),
                }))
            })
            .await?
        }
        Request::Zeroize {
            confirm_device_id,
            reason,
        } => {
            if confirm_device_id.as_str() != dispenser.device_id() {
                return Err(format!(
                    "zeroize refused: confirm with this appliance's device id ({}), not {confirm_device_id:?}",
                    dispenser.device_id()
                ));
            }
            let reason = reason.clone();
            // Never needs a session: destroying the keys must always be possible.
            let operator = acting_operator(shared, &peer, false).await?;
            blocking(move || {
                // The session ends first: after the zeroize nothing can be audited any more.
                dispenser.end_operator_sessions(&format!("zeroize: {reason}"));
                let report = dispenser
                    .with_vault(|vault| vault.zeroize(&reason, Some(&operator)))
                    .map_err(|error| error.to_string())?;
                // The keys in memory go too; terminals get NOT_READY from now on.
                let _ = dispenser.reload_keys();
                dispenser.reload_kdh();
                log::warn!(event = "zeroize", operator = operator.as_str(); "appliance zeroized: {reason}");
                Ok(json!({
                    "secrets_deleted": report.secrets_deleted,
                    "key_blocks_erased": report.key_blocks_erased,
                }))
            })
            .await?
        }
        Request::KdhRequest { subject, bits } => {
            let subject = subject
                .clone()
                .unwrap_or_else(|| format!("CN={},OU=KDH", dispenser.device_id()));
            let name = keymother_pki::builder::name(&subject)
                .map_err(|error| format!("subject {subject:?}: {error}"))?;
            let bits = bits.unwrap_or(DEFAULT_KDH_BITS);
            let operator = acting_operator(shared, &peer, false).await?;
            blocking(move || {
                let request = dispenser
                    .with_vault(|vault| vault.create_kdh_request(&name, bits, Some(&operator)))
                    .map_err(|error| error.to_string())?;
                dispenser.reload_kdh();
                log::warn!(
                    event = "kdh-request", operator = operator.as_str();
                    "new KDH key pair ({bits} bits) for {subject}; certificate mode is off until its certificate is installed"
                );
                Ok(json!({"subject": subject, "bits": bits, "request": pem("CERTIFICATE REQUEST", &request)}))
            })
            .await?
        }
        Request::KdhInstall { certificate } => {
            let certificate = decode_certificate(certificate)?;
            let operator = acting_operator(shared, &peer, false).await?;
            blocking(move || {
                let trust = dispenser.trust().ok_or_else(|| {
                    "no [pki] trust anchors are configured: the KDH certificate cannot be checked"
                        .to_owned()
                })?;
                let verified = trust
                    .anchors
                    .verify(
                        keymother_pki::Role::KeyDistributionHost,
                        &certificate,
                        std::time::SystemTime::now(),
                        None,
                    )
                    .map_err(|error| format!("the KDH certificate is refused: {error}"))?;
                dispenser
                    .with_vault(|vault| vault.install_kdh_certificate(&verified, Some(&operator)))
                    .map_err(|error| error.to_string())?;
                dispenser.reload_kdh();
                let subject = verified.subject().to_string();
                log::warn!(
                    event = "kdh-certificate", operator = operator.as_str();
                    "KDH certificate for {subject} installed; certificate mode is on"
                );
                Ok(json!({
                    "subject": subject,
                    "serial": verified.serial().as_bytes().iter().map(|byte| format!("{byte:02X}")).collect::<String>(),
                    "certificate_mode": !dispenser.kdh_certificate().is_empty(),
                }))
            })
            .await?
        }
        Request::KdhStatus {} => blocking(move || {
            let status = dispenser
                .with_vault(|vault| vault.kdh_status())
                .map_err(|error| error.to_string())?;
            Ok(match status {
                None => Value::Null,
                Some(status) => json!({
                    "subject": status.subject,
                    "bits": status.bits,
                    "requested_at": status.requested_at,
                    "request": pem("CERTIFICATE REQUEST", &status.certificate_request),
                    "certificate_installed_at": status.installed_at,
                    "certificate_mode": !dispenser.kdh_certificate().is_empty(),
                }),
            })
        })
        .await?,
        Request::SmnRows {} => blocking(move || {
            dispenser.with_vault(|vault| -> Result<Value, String> {
                let rows = vault.smn_rows().map_err(|error| error.to_string())?;
                Ok(json!(rows.iter().map(|row| json!({
                    "smn": row.smn,
                    "hardware_serial": row.hardware_serial,
                    "key_index": row.key_index,
                    "kcv": row.kcv,
                    "batch_id": row.batch_id,
                    "port": row.port,
                    "terminal_model": row.terminal_model,
                    "injected_at": row.injected_at,
                    "operator": row.operator,
                })).collect::<Vec<_>>()))
            })
        })
        .await?,
        Request::LoginChallenge {} => {
            let (challenge, window) = dispenser
                .login_challenge(SystemTime::now())
                .map_err(|failure| failure.to_string())?;
            Ok(json!({
                "challenge": hex::encode(challenge.bytes),
                "device_id": dispenser.device_id(),
                "window_seconds": window.as_secs(),
                "expires_at": rfc3339(challenge.expires_at),
            }))
        }
        Request::Login {
            certificate,
            challenge,
            signed_at,
            signature,
        } => {
            let response = login_response(certificate, challenge, *signed_at, signature)?;
            let session = blocking(move || dispenser.login(&response, &peer, SystemTime::now()))
                .await?
                .map_err(|failure| format!("login refused: {failure}"))?;
            Ok(session_json(&session))
        }
        Request::Logout {} => {
            let ended = blocking(move || dispenser.logout(&peer, SystemTime::now())).await?;
            Ok(json!({ "logged_out": ended.as_ref().map_or(Value::Null, session_json) }))
        }
    }
}
