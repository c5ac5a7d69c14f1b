//! The control socket: newline-delimited JSON requests from the `keymother` command (docs/CONTROL.md), one per connection, from members of the operators' group only.
//!
//! The daemon is the only owner of the vault and of every secret; the CLI is a thin client.
//! Requests never change anything unless they are well formed and allowed; a bad request gets
//! an error answer naming what was wrong, and the daemon carries on serving its ports. The
//! daemon opens no path a client names: files travel over the socket ([`transfer`]). Every
//! connection is bounded: its line length, its idle time, and how many are open at once.

mod batch;
mod ceremony;
mod connection;
mod dukpt;
mod expected;
mod handlers;
mod limiter;
mod pending;
mod reinjection;
mod report;
mod transfer;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use keymother_control::{self as api, Answer, Call, MAX_CONNECTIONS, MAX_LINE, Request};
use tokio::net::{UnixListener, UnixStream};
use zeroize::Zeroize;

use crate::state::Shared;
use connection::{Connection, ConnectionError};
use handlers::Context;
use limiter::{Limiter, Slot};

/// Where the socket is and who may use it.
#[derive(Debug, Clone)]
pub struct ControlSettings {
    pub socket: PathBuf,
    /// Members of this group (and root, and the daemon's own user) may send requests.
    pub group: String,
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

/// Serves the bound socket: each connection in a task of its own, at most
/// [`MAX_CONNECTIONS`] at once. When accepting fails (no file descriptor left), it waits,
/// longer each time up to a second, and says so once per episode.
pub(crate) async fn serve_control(
    listener: UnixListener,
    settings: ControlSettings,
    shared: Arc<Shared>,
) {
    let group_id = group_id(&settings.group);
    let group: Arc<str> = Arc::from(settings.group.as_str());
    let limiter = Limiter::new(MAX_CONNECTIONS);
    let mut failures = 0u64;
    let mut pause = Duration::from_millis(10);
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                if failures > 0 {
                    log::warn!(
                        event = "control-accept-resumed", failures = failures;
                        "control connections are accepted again after {failures} failed attempts"
                    );
                    failures = 0;
                    pause = Duration::from_millis(10);
                }
                match limiter.admit() {
                    Some(slot) => {
                        let (shared, group) = (Arc::clone(&shared), Arc::clone(&group));
                        tokio::spawn(serve_client(stream, slot, shared, group_id, group));
                    }
                    None => {
                        tokio::spawn(refuse_busy(stream));
                    }
                }
                // Let the connections' tasks run between two accepts, evicted ones included.
                tokio::task::yield_now().await;
            }
            Err(error) => {
                if failures == 0 {
                    log::error!(
                        event = "control-accept-paused";
                        "cannot accept control connections ({error}); trying again, less often, until it works"
                    );
                }
                failures += 1;
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// Answers a connection beyond the cap, briefly, and closes it.
async fn refuse_busy(stream: UnixStream) {
    let (reader, writer) = stream.into_split();
    let mut connection = Connection::new(reader, writer);
    let answer = Answer::failure(format!(
        "keymotherd is busy: {MAX_CONNECTIONS} control connections are in use; try again"
    ));
    if let Ok(Ok(())) = tokio::time::timeout(Duration::from_secs(1), connection.send(&answer)).await
    {
        connection.finish().await;
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

/// Serves one connection: its request, any file, and the answer.
async fn serve_client(
    stream: UnixStream,
    slot: Slot,
    shared: Arc<Shared>,
    group_id: Option<nix::unistd::Gid>,
    group: Arc<str>,
) {
    let allowed = peer_allowed(&stream, group_id);
    let peer = peer_name(&stream);
    let (reader, writer) = stream.into_split();
    let mut connection = Connection::new(reader, writer);
    let mut line = Vec::new();
    let read = tokio::select! {
        read = connection.read_line(&mut line) => read,
        () = slot.evicted() => Err(ConnectionError::Closed),
    };
    slot.busy();
    // The request is read before the peer is judged, so a refused client still gets its
    // answer instead of a broken pipe; nothing in it is acted on.
    let answer = match read {
        Ok(()) if !allowed => {
            log::warn!(event = "control-refused"; "control request refused: client not in group {group}");
            Answer::failure(format!(
                "permission denied: only members of group {group} may control keymotherd"
            ))
        }
        Ok(()) => {
            let parsed = api::parse_request(&line);
            line.zeroize();
            match parsed {
                Ok(request) => {
                    let context = Context { shared, peer };
                    dispatch(&context, &mut connection, request).await
                }
                Err(error) => {
                    // The words may quote the request (a component where a list belongs): the
                    // client hears them, the log does not.
                    log::warn!(event = "control-malformed"; "malformed control request refused");
                    Answer::failure(error)
                }
            }
        }
        Err(ConnectionError::TooLong) => {
            Answer::failure(format!("request longer than {MAX_LINE} bytes"))
        }
        // Silent, evicted or gone: nothing was asked, nothing is said (and nothing logged:
        // a flood of idle connections must not flood the journal).
        Err(_) => return,
    };
    line.zeroize();
    if connection.send(&answer).await.is_ok() {
        connection.finish().await;
    }
}

/// The answer of a command: its typed result, or the words of its refusal.
fn reply<C: Call>(result: Result<C::Answer, String>) -> Answer {
    match result {
        Ok(result) => Answer::success(&result),
        Err(words) => Answer::failure(words),
    }
}

/// Runs one request. Each command's handler returns the answer type its request declares
/// ([`Call::Answer`]), so a handler and the CLI cannot disagree about a field.
async fn dispatch(context: &Context, connection: &mut Connection, request: Request) -> Answer {
    use handlers as h;
    match request {
        Request::Status(r) => reply::<api::Status>(h::status(context, r).await),
        Request::Ceremony(r) => reply::<api::Ceremony>(ceremony::ceremony(context, r).await),
        Request::Import(r) => reply::<api::Import>(transfer::import(context, connection, r).await),
        Request::Inventory(r) => reply::<api::Inventory>(h::inventory(context, r).await),
        Request::SmnRows(r) => reply::<api::SmnRows>(h::smn_rows(context, r).await),
        Request::ExportSmn(r) => {
            reply::<api::ExportSmn>(transfer::export_smn(context, connection, r).await)
        }
        Request::AuditVerify(r) => reply::<api::AuditVerify>(h::audit_verify(context, r).await),
        Request::AuditExport(r) => {
            reply::<api::AuditExport>(transfer::audit_export(context, connection, r).await)
        }
        Request::Void(r) => reply::<api::Void>(h::void(context, r).await),
        Request::Zeroize(r) => reply::<api::Zeroize>(h::zeroize(context, r).await),
        Request::KdhRequest(r) => reply::<api::KdhRequest>(h::kdh_request(context, r).await),
        Request::KdhInstall(r) => reply::<api::KdhInstall>(h::kdh_install(context, r).await),
        Request::KdhStatus(r) => reply::<api::KdhStatus>(h::kdh_status(context, r).await),
        Request::LoginChallenge(r) => {
            reply::<api::LoginChallenge>(h::login_challenge(context, r).await)
        }
        Request::Login(r) => reply::<api::Login>(h::login(context, r).await),
        Request::Logout(r) => reply::<api::Logout>(h::logout(context, r).await),
        Request::ClockSet(r) => reply::<api::ClockSet>(h::clock_set(context, r).await),
        Request::BdkCeremony(r) => reply::<api::BdkCeremony>(dukpt::bdk_ceremony(context, r).await),
        Request::BdkStatus(r) => reply::<api::BdkStatus>(dukpt::bdk_status(context, r).await),
        Request::BdkImport(r) => {
            reply::<api::BdkImport>(dukpt::bdk_import(context, connection, r).await)
        }
        Request::ExportDukpt(r) => {
            reply::<api::ExportDukpt>(transfer::export_dukpt(context, connection, r).await)
        }
        Request::ExpectedImport(r) => {
            reply::<api::ExpectedImport>(expected::expected_import(context, connection, r).await)
        }
        Request::ExpectedClose(r) => {
            reply::<api::ExpectedClose>(expected::expected_close(context, r).await)
        }
        Request::Reconcile(r) => reply::<api::Reconcile>(expected::reconcile(context, r).await),
        Request::ReconcileExport(r) => {
            reply::<api::ReconcileExport>(expected::reconcile_export(context, connection, r).await)
        }
        Request::BatchWithdraw(r) => {
            reply::<api::BatchWithdraw>(batch::batch_withdraw(context, r).await)
        }
        Request::ReinjectGrant(r) => {
            reply::<api::ReinjectGrant>(reinjection::reinject_grant(context, r).await)
        }
        Request::ReinjectList(r) => {
            reply::<api::ReinjectList>(reinjection::reinject_list(context, r).await)
        }
        Request::ReinjectRevoke(r) => {
            reply::<api::ReinjectRevoke>(reinjection::reinject_revoke(context, r).await)
        }
        Request::Pending(r) => reply::<api::Pending>(pending::pending(context, r).await),
        Request::Report(r) => reply::<api::Report>(report::report(context, r).await),
        Request::VaultCheck(r) => reply::<api::VaultCheck>(h::vault_check(context, r).await),
    }
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
