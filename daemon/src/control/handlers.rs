//! One small function per command without a file: each takes its typed request and returns its typed answer, or the words of a refusal.

use std::sync::Arc;

use base64ct::{Base64, Encoding};
use keymother_control as api;
use keymother_pki::login::{CHALLENGE_LENGTH, LoginResponse};
use keymother_vault::KeyState;

use crate::dispenser::{Dispenser, Readiness, TamperWatch};
use crate::operator::{OperatorSession, rfc3339};
use crate::state::Shared;

/// The KDH key size when the request does not say (TR-34 asks for at least 2048 bits).
const DEFAULT_KDH_BITS: usize = 2048;

/// What a request's handler may use: the daemon's state and who is asking.
pub(crate) struct Context {
    pub(crate) shared: Arc<Shared>,
    /// The local user on the other end of the socket.
    pub(crate) peer: String,
}

impl Context {
    pub(crate) fn dispenser(&self) -> Arc<Dispenser> {
        Arc::clone(&self.shared.dispenser)
    }

    /// Who a control action is recorded under: the operator logged in, else the local user.
    /// With operator login required, `needs_session` actions are refused without a session.
    pub(crate) async fn acting_operator(&self, needs_session: bool) -> Result<String, String> {
        let dispenser = self.dispenser();
        let session =
            blocking(move || dispenser.operator_session(keymother_vault::clock::now())).await?;
        match session {
            Some(session) => Ok(session.name),
            // A zeroized vault records nothing, so nobody can log in; what it still does
            // (reading and delivering what the zeroize sealed) goes on without a session.
            None if needs_session
                && self.shared.dispenser.operator_required()
                && !self.shared.dispenser.is_zeroized() =>
            {
                Err(
                "no operator is logged in: operator login is required on this appliance; log in first (keymother operator login)"
                    .to_owned(),
            )
            }
            None => Ok(self.peer.clone()),
        }
    }
}

/// Runs a blocking vault operation off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| format!("the operation failed: {error}"))
}

/// DER as PEM with the given label.
fn pem(label: &str, der: &[u8]) -> String {
    use keymother_pki::der::pem::{LineEnding, encode_string};
    // Encoding to PEM fails only for labels with invalid characters; these are constants.
    encode_string(label, LineEnding::LF, der).unwrap_or_default()
}

/// An operator session as the control socket shows it.
fn session_report(session: &OperatorSession) -> api::SessionReport {
    api::SessionReport {
        name: session.name.clone(),
        subject: session.subject.clone(),
        serial: session.serial.clone(),
        since: rfc3339(session.since),
        until: rfc3339(session.until),
    }
}

/// Keys per state, by the states' names, and `erased`: keys a zeroize erased before use.
fn key_counts(
    inventory: &keymother_vault::InventorySummary,
) -> std::collections::BTreeMap<String, u64> {
    KeyState::ALL
        .into_iter()
        .map(|state| (state.to_string(), inventory.count(state)))
        .chain([("erased".to_owned(), inventory.erased)])
        .collect()
}

/// Whether the tamper input is watched, for `status`.
fn tamper_input(dispenser: &Dispenser) -> api::TamperInput {
    let required = dispenser.tamper_input_required();
    let (state, input, reason) = match dispenser.tamper_watch() {
        TamperWatch::NoInput => (api::TamperInputState::None, None, None),
        TamperWatch::Watched { input } => (api::TamperInputState::Watched, Some(input), None),
        TamperWatch::Unwatched { input, reason } => {
            (api::TamperInputState::NotWatched, Some(input), Some(reason))
        }
    };
    api::TamperInput {
        state,
        input,
        reason,
        required,
    }
}

/// The vault's part of `status`.
struct VaultStatus {
    device_id: String,
    secrets: std::collections::BTreeMap<String, Option<api::SecretStatus>>,
    keys: std::collections::BTreeMap<String, u64>,
    smn_rows: u64,
    /// Keys available now (what the display's low-inventory warning counts).
    available: u64,
}

/// Read on the dispenser's status reader, not its vault: a `status` never stalls the ports.
fn vault_status(dispenser: &Dispenser) -> Result<VaultStatus, String> {
    let counts = dispenser
        .vault_counts()
        .map_err(|error| error.to_string())?;
    let secrets = counts
        .secrets
        .into_iter()
        .map(|(name, info)| {
            (
                name.to_string(),
                info.map(|info| api::SecretStatus {
                    algorithm: info.algorithm.name().to_owned(),
                    kcv: info.kcv.to_string(),
                    components: info.component_count,
                    loaded_at: info.loaded_at,
                }),
            )
        })
        .collect();
    Ok(VaultStatus {
        device_id: dispenser.device_id().to_owned(),
        secrets,
        keys: key_counts(&counts.inventory),
        smn_rows: counts.smn_rows,
        available: counts.available,
    })
}

pub(crate) async fn status(context: &Context, _: api::Status) -> Result<api::StatusReport, String> {
    let dispenser = context.dispenser();
    let stored = match blocking(move || vault_status(&dispenser)).await? {
        Ok(stored) => stored,
        // A damaged vault may not read at all: `state` and `reason` still say why nothing
        // flows; the counts it cannot read are left empty.
        Err(_) if context.shared.dispenser.vault_damaged().is_some() => VaultStatus {
            device_id: context.shared.dispenser.device_id().to_owned(),
            secrets: std::collections::BTreeMap::new(),
            keys: std::collections::BTreeMap::new(),
            smn_rows: 0,
            available: 0,
        },
        Err(error) => return Err(error),
    };
    let dispenser = context.dispenser();
    let session =
        blocking(move || dispenser.operator_session(keymother_vault::clock::now())).await?;
    // What keeps keys from flowing, as the display says it ("ready" when nothing).
    let shared = Arc::clone(&context.shared);
    let appliance = blocking(move || shared.appliance_state()).await?;
    let dispenser = &context.shared.dispenser;
    let (state, tampered) = match dispenser.readiness() {
        Readiness::Unlocked if appliance.ready => (api::ApplianceState::Ready, None),
        // Unlocked, and something else holds the keys back: `reason` says what.
        Readiness::Unlocked => (api::ApplianceState::Waiting, None),
        Readiness::Locked => (api::ApplianceState::Locked, None),
        Readiness::Tampered(input) => (api::ApplianceState::Tampered, Some(input)),
        Readiness::Zeroized => (api::ApplianceState::Zeroized, None),
        Readiness::Damaged(_) => (api::ApplianceState::Damaged, None),
    };
    Ok(api::StatusReport {
        control_version: api::CONTROL_VERSION,
        device_id: stored.device_id,
        state,
        reason: appliance.reason.to_string(),
        // KEK and TTK are loaded (the key ceremonies' "ready").
        ready: dispenser.ttk_kcv().is_some(),
        tampered,
        secrets: stored.secrets,
        keys: stored.keys,
        smn_rows: stored.smn_rows,
        operator: session.as_ref().map(session_report),
        operator_required: dispenser.operator_required(),
        operator_ca: dispenser.trust().is_some(),
        tamper_input: tamper_input(dispenser),
        ports: context.shared.port_states(),
        injections_since_start: context
            .shared
            .stats
            .injections
            .load(std::sync::atomic::Ordering::Relaxed),
        clock: clock_report(dispenser.clock()),
        // The same rule and threshold as the display, the journal and STATUS= (state.rs).
        low_inventory: context.shared.low_inventory(stored.available).is_some(),
        low_inventory_threshold: context.shared.low_inventory,
    })
}

/// The clock, for `status`.
fn clock_report(clock: &crate::clock::Clock) -> api::ClockReport {
    use crate::clock::{ClockSource, ClockTrust};
    let (trusted, source, detail) = match clock.trust() {
        ClockTrust::Trusted(ClockSource::System) => (
            true,
            "system",
            "the system clock ([clock] require_trusted = false)".to_owned(),
        ),
        ClockTrust::Trusted(ClockSource::Rtc { device }) => {
            (true, "rtc", format!("set at boot by {device}"))
        }
        ClockTrust::Trusted(ClockSource::DualControl { witnesses, at }) => (
            true,
            "dual-control",
            format!("set to {} by {witnesses}", rfc3339(at)),
        ),
        ClockTrust::NotSet { reason } => (false, "not set", reason),
    };
    api::ClockReport {
        now: rfc3339(keymother_vault::clock::now()),
        trusted,
        required: clock.required(),
        source: source.to_owned(),
        detail,
    }
}

/// An RFC 3339 time from a client.
fn parse_time(field: &str, text: &str) -> Result<std::time::SystemTime, String> {
    time::OffsetDateTime::parse(text.trim(), &time::format_description::well_known::Rfc3339)
        .map(std::time::SystemTime::from)
        .map_err(|_| format!("{field}: not an RFC 3339 time such as 2026-12-06T10:15:00Z"))
}

pub(crate) async fn clock_set(
    context: &Context,
    request: api::ClockSet,
) -> Result<api::ClockSetReport, String> {
    use crate::clock::{ClockStep, Witness};
    let witness = Witness {
        name: request.name.trim().to_owned(),
        role: request.role.parse()?,
        peer: context.peer.clone(),
        reading: parse_time("time", &request.time)?,
        backwards: request.backwards,
    };
    let dispenser = context.dispenser();
    let step = blocking(move || dispenser.witness_time(witness)).await??;
    Ok(match step {
        ClockStep::Waiting { first, expires_in } => api::ClockSetReport {
            state: api::ClockSetState::Waiting,
            witnesses: first,
            old: None,
            new: None,
            expires_in_seconds: Some(expires_in.as_secs()),
        },
        ClockStep::Set {
            old,
            new,
            witnesses,
            ..
        } => api::ClockSetReport {
            state: api::ClockSetState::Set,
            witnesses,
            old: Some(rfc3339(old)),
            new: Some(rfc3339(new)),
            expires_in_seconds: None,
        },
    })
}

pub(crate) async fn inventory(
    context: &Context,
    _: api::Inventory,
) -> Result<api::InventoryReport, String> {
    let dispenser = context.dispenser();
    blocking(move || {
        let inventory = dispenser
            .with_vault(|vault| vault.inventory())
            .map_err(|error| error.to_string())?;
        Ok(api::InventoryReport {
            keys: key_counts(&inventory),
            batches: inventory
                .batches
                .iter()
                .map(|batch| api::BatchReport {
                    batch_id: batch.batch_id.clone(),
                    issuer: batch.issuer.clone(),
                    algorithm: batch.algorithm.clone(),
                    records: batch.record_count,
                    available: batch.available,
                    withdrawn: batch.withdrawn,
                    imported_at: batch.imported_at.clone(),
                })
                .collect(),
        })
    })
    .await?
}

pub(crate) async fn smn_rows(
    context: &Context,
    _: api::SmnRows,
) -> Result<Vec<api::SmnRow>, String> {
    let dispenser = context.dispenser();
    blocking(move || {
        let rows = dispenser
            .with_vault(|vault| vault.smn_rows())
            .map_err(|error| error.to_string())?;
        Ok(rows
            .into_iter()
            .map(|row| api::SmnRow {
                smn: row.smn,
                hardware_serial: row.hardware_serial,
                key_index: row.key_index,
                kcv: row.kcv,
                batch_id: row.batch_id,
                port: row.port,
                terminal_model: row.terminal_model,
                injected_at: row.injected_at,
                operator: row.operator,
                replaces: row.replaces,
                replaced_by: row.replaced_by,
                reinjection_grant: row.reinjection_grant.as_ref().map(|(grant, _)| *grant),
                reinjection_reason: row.reinjection_grant.map(|(_, reason)| reason),
            })
            .collect())
    })
    .await?
}

pub(crate) async fn audit_verify(
    context: &Context,
    _: api::AuditVerify,
) -> Result<api::AuditVerifyReport, String> {
    let dispenser = context.dispenser();
    blocking(move || {
        dispenser.with_vault(|vault| match vault.verify_audit() {
            Ok(report) => Ok(api::AuditVerifyReport {
                rows: report.rows,
                head_hash: report.head_hash,
                head_mac: match report.head_mac {
                    keymother_vault::HeadMacStatus::Verified => api::HeadMac::Verified,
                    keymother_vault::HeadMacStatus::NotChecked => api::HeadMac::NotChecked,
                },
            }),
            Err(failure) => {
                log::error!(event = "audit-verify-failed"; "the audit chain does not verify: {failure}");
                Err(format!("the audit chain does not verify: {failure}"))
            }
        })
    })
    .await?
}

pub(crate) async fn void(context: &Context, request: api::Void) -> Result<api::VoidReport, String> {
    let api::Void {
        key_index,
        hardware_serial,
        reason,
    } = request;
    let operator = context.acting_operator(true).await?;
    let which = super::pending::void_target(key_index, hardware_serial)?;
    let dispenser = context.dispenser();
    blocking(move || {
        let voided = dispenser
            .with_vault(|vault| super::pending::void(vault, &which, &reason, &operator))?;
        let key_index = voided.key_index;
        log::warn!(
            event = "void", key_index = key_index.value(), hw_serial = voided.hardware_serial.as_str(),
            operator = operator.as_str();
            "key {key_index} of {} voided: {reason}", voided.hardware_serial
        );
        Ok(api::VoidReport {
            key_index: voided.key_index,
            hardware_serial: voided.hardware_serial,
            previous_state: voided.previous_state.to_string(),
        })
    })
    .await?
}

pub(crate) async fn zeroize(
    context: &Context,
    request: api::Zeroize,
) -> Result<api::ZeroizeReport, String> {
    let dispenser = context.dispenser();
    if request.confirm_device_id != dispenser.device_id() {
        return Err(format!(
            "zeroize refused: confirm with this appliance's device id ({}), not {:?}",
            dispenser.device_id(),
            request.confirm_device_id
        ));
    }
    let reason = request.reason;
    // Never needs a session: destroying the keys must always be possible.
    let operator = context.acting_operator(false).await?;
    blocking(move || {
        // The session ends first: after the zeroize nothing can be audited any more.
        dispenser.end_operator_sessions(&format!("zeroize: {reason}"));
        let report = dispenser
            .with_vault(|vault| vault.zeroize(&reason, Some(&operator)))
            .map_err(|error| error.to_string())?;
        dispenser.mark_zeroized();
        if let Some(problem) = &report.final_export_problem {
            log::error!(event = "zeroize"; "{problem}");
        }
        // The keys in memory go too; terminals get NOT_READY from now on.
        let _ = dispenser.reload_keys();
        dispenser.reload_kdh();
        log::warn!(event = "zeroize", operator = operator.as_str(); "appliance zeroized: {reason}");
        Ok(api::ZeroizeReport {
            secrets_deleted: report.secrets_deleted,
            key_blocks_erased: report.key_blocks_erased,
            final_exports: report.final_exports,
        })
    })
    .await?
}

pub(crate) async fn kdh_request(
    context: &Context,
    request: api::KdhRequest,
) -> Result<api::KdhRequestReport, String> {
    let dispenser = context.dispenser();
    let subject = request
        .subject
        .unwrap_or_else(|| format!("CN={},OU=KDH", dispenser.device_id()));
    let name = keymother_pki::builder::name(&subject)
        .map_err(|error| format!("subject {subject:?}: {error}"))?;
    let bits = request.bits.unwrap_or(DEFAULT_KDH_BITS);
    let operator = context.acting_operator(false).await?;
    blocking(move || {
        let request = dispenser
            .with_vault(|vault| vault.create_kdh_request(&name, bits, Some(&operator)))
            .map_err(|error| error.to_string())?;
        dispenser.reload_kdh();
        log::warn!(
            event = "kdh-request", operator = operator.as_str();
            "new KDH key pair ({bits} bits) for {subject}; certificate mode is off until its certificate is installed"
        );
        Ok(api::KdhRequestReport {
            subject,
            bits,
            request: pem("CERTIFICATE REQUEST", &request),
        })
    })
    .await?
}

pub(crate) async fn kdh_install(
    context: &Context,
    request: api::KdhInstall,
) -> Result<api::KdhInstallReport, String> {
    // Its validity is judged by the clock: not before the clock is vouched for.
    context.shared.dispenser.clock().check()?;
    let text = request.certificate.trim();
    let certificate = if text.starts_with("-----BEGIN") {
        keymother_pki::certificate_der(text.as_bytes())
            .map_err(|error| format!("certificate: {error}"))?
    } else {
        let der = base64_field("certificate", text)?;
        keymother_pki::certificate_der(&der).map_err(|error| format!("certificate: {error}"))?
    };
    let operator = context.acting_operator(false).await?;
    let dispenser = context.dispenser();
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
                keymother_vault::clock::now(),
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
        Ok(api::KdhInstallReport {
            subject,
            serial: hex::encode_upper(verified.serial().as_bytes()),
            certificate_mode: !dispenser.kdh_certificate().is_empty(),
        })
    })
    .await?
}

pub(crate) async fn kdh_status(
    context: &Context,
    _: api::KdhStatus,
) -> Result<Option<api::KdhStatusReport>, String> {
    let dispenser = context.dispenser();
    blocking(move || {
        let status = dispenser
            .with_vault(|vault| vault.kdh_status())
            .map_err(|error| error.to_string())?;
        Ok(status.map(|status| api::KdhStatusReport {
            subject: status.subject,
            bits: status.bits,
            requested_at: status.requested_at,
            request: pem("CERTIFICATE REQUEST", &status.certificate_request),
            certificate_installed_at: status.installed_at,
            certificate_mode: !dispenser.kdh_certificate().is_empty(),
        }))
    })
    .await?
}

pub(crate) async fn login_challenge(
    context: &Context,
    _: api::LoginChallenge,
) -> Result<api::ChallengeReport, String> {
    let dispenser = &context.shared.dispenser;
    let (challenge, window) = dispenser
        .login_challenge(keymother_vault::clock::now())
        .map_err(|failure| failure.to_string())?;
    Ok(api::ChallengeReport {
        challenge: hex::encode(challenge.bytes),
        device_id: dispenser.device_id().to_owned(),
        window_seconds: window.as_secs(),
        expires_at: rfc3339(challenge.expires_at),
    })
}

/// Decodes standard base64 for `field`.
fn base64_field(field: &str, text: &str) -> Result<Vec<u8>, String> {
    Base64::decode_vec(text.trim()).map_err(|_| format!("{field}: not standard base64"))
}

/// The login answer from a `login` request's fields.
fn login_response(request: &api::Login) -> Result<LoginResponse, String> {
    let challenge: [u8; CHALLENGE_LENGTH] = hex::decode(request.challenge.trim())
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| format!("challenge: must be {} hex digits", 2 * CHALLENGE_LENGTH))?;
    Ok(LoginResponse {
        certificate: base64_field("certificate", &request.certificate)?,
        challenge,
        signed_at: request.signed_at,
        signature: base64_field("signature", &request.signature)?,
        intermediates: request
            .intermediates
            .iter()
            .enumerate()
            .map(|(index, text)| base64_field(&format!("intermediates[{index}]"), text))
            .collect::<Result<_, _>>()?,
    })
}

pub(crate) async fn login(
    context: &Context,
    request: api::Login,
) -> Result<api::SessionReport, String> {
    let response = login_response(&request)?;
    let dispenser = context.dispenser();
    let peer = context.peer.clone();
    let session =
        blocking(move || dispenser.login(&response, &peer, keymother_vault::clock::now()))
            .await?
            .map_err(|failure| format!("login refused: {failure}"))?;
    Ok(session_report(&session))
}

pub(crate) async fn logout(context: &Context, _: api::Logout) -> Result<api::LogoutReport, String> {
    let dispenser = context.dispenser();
    let peer = context.peer.clone();
    let ended = blocking(move || dispenser.logout(&peer, keymother_vault::clock::now())).await?;
    Ok(api::LogoutReport {
        logged_out: ended.as_ref().map(session_report),
    })
}

pub(crate) async fn vault_check(
    context: &Context,
    _: api::VaultCheck,
) -> Result<api::VaultCheckReport, String> {
    let shared = Arc::clone(&context.shared);
    blocking(move || {
        let checker = shared
            .dispenser
            .with_vault(|vault| vault.integrity_checker());
        crate::integrity::check(&shared, &checker)
            .map(|report| api::VaultCheckReport {
                pages: report.pages,
            })
            .map_err(|failure| match failure {
                keymother_vault::IntegrityFailure::Damaged { findings } => format!(
                    "the vault database is damaged ({findings}): the appliance is locked; restore the vault and call the security officer"
                ),
                stopped => stopped.to_string(),
            })
    })
    .await?
}
