//! The requests: one struct per command, gathered in [`Request`], each tied to its answer by [`Call`].

use keymother_domain::{BatchId, BdkId, BdkName, DeviceRange, HardwareSerial, KeyIndex};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::response::*;
use crate::secret::CustodianComponent;

/// How a command's file travels, besides its request and answer lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    /// No file.
    None,
    /// The client sends the file after the request, as `data` lines (`import`).
    Upload,
    /// The daemon sends the file before its answer, as `data` lines and an `end` line, and
    /// waits for the client's `received` line (`export-smn`, `audit-export`, `export-dukpt`).
    Download,
}

/// A request and the type of its answer's `result`.
pub trait Call: Serialize + Into<Request> {
    /// What the daemon answers in `result`.
    type Answer: Serialize + DeserializeOwned;
    /// Whether a file travels with it, and which way.
    const TRANSFER: Transfer = Transfer::None;
}

/// Every request, as the daemon reads it: `{"command": "<kebab-case name>", ...fields}`.
/// Unknown commands and unknown fields are refused.
#[derive(Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case")]
pub enum Request {
    Status(Status),
    Ceremony(Ceremony),
    Import(Import),
    Inventory(Inventory),
    SmnRows(SmnRows),
    ExportSmn(ExportSmn),
    AuditVerify(AuditVerify),
    AuditExport(AuditExport),
    Void(Void),
    Zeroize(Zeroize),
    KdhRequest(KdhRequest),
    KdhInstall(KdhInstall),
    KdhStatus(KdhStatus),
    LoginChallenge(LoginChallenge),
    Login(Login),
    Logout(Logout),
    ClockSet(ClockSet),
    BdkCeremony(BdkCeremony),
    BdkStatus(BdkStatus),
    BdkImport(BdkImport),
    ExportDukpt(ExportDukpt),
    ExpectedImport(ExpectedImport),
    ExpectedClose(ExpectedClose),
    Reconcile(Reconcile),
    ReconcileExport(ReconcileExport),
    BatchWithdraw(BatchWithdraw),
    ReinjectGrant(ReinjectGrant),
    ReinjectList(ReinjectList),
    ReinjectRevoke(ReinjectRevoke),
    Pending(Pending),
    Report(Report),
    VaultCheck(VaultCheck),
}

impl Request {
    /// The command's name on the wire.
    pub fn command(&self) -> &'static str {
        match self {
            Request::Status(_) => "status",
            Request::Ceremony(_) => "ceremony",
            Request::Import(_) => "import",
            Request::Inventory(_) => "inventory",
            Request::SmnRows(_) => "smn-rows",
            Request::ExportSmn(_) => "export-smn",
            Request::AuditVerify(_) => "audit-verify",
            Request::AuditExport(_) => "audit-export",
            Request::Void(_) => "void",
            Request::Zeroize(_) => "zeroize",
            Request::KdhRequest(_) => "kdh-request",
            Request::KdhInstall(_) => "kdh-install",
            Request::KdhStatus(_) => "kdh-status",
            Request::LoginChallenge(_) => "login-challenge",
            Request::Login(_) => "login",
            Request::Logout(_) => "logout",
            Request::ClockSet(_) => "clock-set",
            Request::BdkCeremony(_) => "bdk-ceremony",
            Request::BdkStatus(_) => "bdk-status",
            Request::BdkImport(_) => "bdk-import",
            Request::ExportDukpt(_) => "export-dukpt",
            Request::ExpectedImport(_) => "expected-import",
            Request::ExpectedClose(_) => "expected-close",
            Request::Reconcile(_) => "reconcile",
            Request::ReconcileExport(_) => "reconcile-export",
            Request::BatchWithdraw(_) => "batch-withdraw",
            Request::ReinjectGrant(_) => "reinject-grant",
            Request::ReinjectList(_) => "reinject-list",
            Request::ReinjectRevoke(_) => "reinject-revoke",
            Request::Pending(_) => "pending",
            Request::Report(_) => "report",
            Request::VaultCheck(_) => "vault-check",
        }
    }
}

/// Declares a request struct's answer and transfer, and its place in [`Request`].
macro_rules! call {
    ($request:ident => $answer:ty) => {
        call!($request => $answer, Transfer::None);
    };
    ($request:ident => $answer:ty, $transfer:expr) => {
        impl Call for $request {
            type Answer = $answer;
            const TRANSFER: Transfer = $transfer;
        }
        impl From<$request> for Request {
            fn from(request: $request) -> Request {
                Request::$request(request)
            }
        }
    };
}

/// The appliance's state: keys, secrets, operator, ports, tamper input.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Status {}
call!(Status => StatusReport);

/// A key ceremony: the custodians' components of the KEK or the TTK, combined by the daemon.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ceremony {
    /// `kek` or `ttk`.
    pub secret: String,
    /// The key's algorithm: `TDES-2KEY`, `TDES-3KEY`, `AES-128`, `AES-192` or `AES-256`.
    pub algorithm: String,
    /// Each custodian's name and component, in order.
    pub components: Vec<CustodianComponent>,
    /// The combined key's check value the custodians expect; refused if it differs.
    #[serde(default)]
    pub expect_kcv: Option<String>,
    /// Replace the key loaded under this name; without it a loaded KEK or TTK is refused.
    #[serde(default)]
    pub replace: bool,
}
call!(Ceremony => CeremonyReport);

/// A key file, whose bytes follow the request as `data` lines: `size` bytes in all.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Import {
    /// The file's name as the operator gave it: it names the file in errors and the audit
    /// trail, and is never opened.
    pub file_name: String,
    /// The file's length in bytes.
    pub size: u64,
}
call!(Import => ImportReport, Transfer::Upload);

/// Keys per state and per batch.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inventory {}
call!(Inventory => InventoryReport);

/// The SMN registry, one row per confirmed injection.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmnRows {}
call!(SmnRows => Vec<SmnRow>);

/// The sealed SMN file for the front end, streamed back to the client; its rows are marked
/// exported once the client says it has the file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportSmn {
    /// Where the client writes it, for the audit row; the daemon never opens it.
    pub file_name: String,
    /// Only rows never exported before.
    #[serde(default)]
    pub only_new: bool,
}
call!(ExportSmn => SmnExportReport, Transfer::Download);

/// Checks the audit chain.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditVerify {}
call!(AuditVerify => AuditVerifyReport);

/// The audit trail with its hashes, streamed back to the client.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditExport {
    /// Where the client writes it, for the log; the daemon never opens it.
    pub file_name: String,
}
call!(AuditExport => AuditExportReport, Transfer::Download);

/// Voids a key that was reserved or sent but never confirmed: the key by its index, or the
/// pending master key of a terminal by its hardware serial (exactly one of the two).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Void {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_index: Option<KeyIndex>,
    /// The terminal whose one pending master key is voided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardware_serial: Option<HardwareSerial>,
    /// Why (recorded in the audit trail).
    pub reason: String,
}
call!(Void => VoidReport);

/// Destroys every secret and master key on the appliance.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Zeroize {
    /// Must be the appliance's device id: a zeroize cannot happen by accident.
    pub confirm_device_id: String,
    /// Why (recorded in the audit trail).
    pub reason: String,
}
call!(Zeroize => ZeroizeReport);

/// Makes the KDH key pair and returns its certificate request.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KdhRequest {
    /// The request's subject (RFC 4514); without it, `CN=<device id>,OU=KDH`.
    #[serde(default)]
    pub subject: Option<String>,
    /// The RSA key size; without it, 2048.
    #[serde(default)]
    pub bits: Option<usize>,
}
call!(KdhRequest => KdhRequestReport);

/// Installs the KDH certificate for the pending key pair.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KdhInstall {
    /// The certificate: PEM, or its DER in standard base64.
    pub certificate: String,
}
call!(KdhInstall => KdhInstallReport);

/// The KDH identity, or `null` when there is none.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KdhStatus {}
call!(KdhStatus => Option<KdhStatusReport>);

/// A single-use challenge for an operator login.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginChallenge {}
call!(LoginChallenge => ChallengeReport);

/// The operator's signed answer to a challenge.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    /// The operator certificate, DER, in standard base64.
    pub certificate: String,
    /// The challenge answered, 64 hex digits.
    pub challenge: String,
    /// When the operator signed, Unix seconds by the operator's clock.
    pub signed_at: u64,
    /// RSASSA-PSS (SHA-256, salt 32) over the login content, standard base64; for an EC
    /// operator key, ECDSA (DER) with SHA-256 (P-256) or SHA-384 (P-384).
    pub signature: String,
    /// Intermediate CA certificates between the operator certificate and the operator CA,
    /// each DER in standard base64; absent or empty for none (older clients send none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub intermediates: Vec<String>,
}
call!(Login => SessionReport);

/// Ends the operator session.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Logout {}
call!(Logout => LogoutReport);

/// One person's reading of the time, to set the appliance's clock under dual control: the
/// first reading waits for a second person's; once two agree, the clock is set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockSet {
    /// The time read from the person's own watch or phone, RFC 3339
    /// (`2026-12-06T10:15:00Z`, or with an offset: `2026-12-06T11:15:00+01:00`).
    pub time: String,
    /// The person's name, as the audit trail records it.
    pub name: String,
    /// `operator` or `custodian`.
    pub role: String,
    /// The person means to set the clock back (before the appliance's clock or the last
    /// audit record): both readings must say so.
    #[serde(default)]
    pub backwards: bool,
}
call!(ClockSet => ClockSetReport);

/// A BDK ceremony: the custodians' components of a DUKPT base derivation key, combined by the
/// daemon, with its identifier and the range of device IDs assigned to this appliance.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BdkCeremony {
    /// The name device profiles use for it (`PIN`, `DATA`).
    pub name: BdkName,
    /// `TDES-2KEY` (ANSI X9.24-1 DUKPT) or `AES-128`, `AES-192`, `AES-256` (X9.24-3).
    pub algorithm: String,
    /// TDES: the 40-bit key set identifier (10 hex digits); AES: the 32-bit BDK ID (8).
    pub bdk_id: BdkId,
    /// The device IDs this appliance may give out, `first-last` in hex (TDES: 5 digits each,
    /// at most 7FFFF; AES: 8 digits each).
    pub devices: DeviceRange,
    /// Each custodian's name and component, in order.
    pub components: Vec<CustodianComponent>,
    /// The combined key's check value the custodians expect; refused if it differs.
    #[serde(default)]
    pub expect_kcv: Option<String>,
    /// Replace a BDK already loaded under this name.
    #[serde(default)]
    pub replace: bool,
}
call!(BdkCeremony => BdkCeremonyReport);

/// The BDKs loaded, with how many device IDs each has left.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BdkStatus {}
call!(BdkStatus => Vec<BdkReport>);

/// A BDK file from the front end (keyfiles/FORMAT.md, "BDK files"), whose bytes follow the
/// request as `data` lines: `size` bytes in all.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BdkImport {
    /// The file's name as the custodian gave it: it names the file in errors and is never
    /// opened.
    pub file_name: String,
    /// The file's length in bytes, at most [`crate::MAX_BDK_FILE`].
    pub size: u64,
    /// Replace a BDK already loaded under the file's name.
    #[serde(default)]
    pub replace: bool,
}
call!(BdkImport => BdkReport, Transfer::Upload);
/// The sealed DUKPT file for the front end (the registry of confirmed DUKPT injections),
/// streamed back to the client; its rows are marked exported once the client says it has the
/// file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportDukpt {
    /// Where the client writes it, for the audit row; the daemon never opens it.
    pub file_name: String,
    /// Only rows never exported before.
    #[serde(default)]
    pub only_new: bool,
}
call!(ExportDukpt => DukptExportReport, Transfer::Download);

/// An expected-device list for an injection run (keyfiles/FORMAT.md, "Expected-device
/// lists"): a CSV of hardware serials, plain or sealed under the KEK, whose bytes follow the
/// request as `data` lines: `size` bytes in all.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedImport {
    /// The list's name (`RUN-2026-12-06`): 1 to 32 characters `A-Z a-z 0-9 . _ -`, never
    /// used before on this appliance.
    pub name: String,
    /// The file's name as the operator gave it: it names the file in errors and the audit
    /// trail, and is never opened.
    pub file_name: String,
    /// The file's length in bytes, at most [`crate::MAX_KEY_FILE`].
    pub size: u64,
}
call!(ExpectedImport => ExpectedListReport, Transfer::Upload);

/// Closes an open expected-device list: its serials are refused from now on (unless another
/// open list holds them) and its reconciliation window ends.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedClose {
    pub name: String,
}
call!(ExpectedClose => ExpectedListReport);

/// Per expected-device list: what was injected, what is pending, what is missing, and which
/// serials were refused while it was open.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reconcile {
    /// One list; without it, every list.
    #[serde(default)]
    pub name: Option<String>,
}
call!(Reconcile => ReconcileReport);

/// The reconciliation as a sealed file for the front end, streamed back to the client; the
/// export is audited once the client says it has the file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcileExport {
    /// One list; without it, every list.
    #[serde(default)]
    pub name: Option<String>,
    /// Where the client writes it, for the audit row; the daemon never opens it.
    pub file_name: String,
}
call!(ReconcileExport => ReconcileExportReport, Transfer::Download);

/// Withdraws the keys of a batch that are still available: they are never dispensed. Keys
/// already reserved or sent finish normally.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchWithdraw {
    pub batch_id: BatchId,
    /// Why (recorded in the audit trail).
    pub reason: String,
}
call!(BatchWithdraw => BatchWithdrawReport);

/// Grants one re-injection to a terminal that already holds a confirmed key of a slot: its
/// next reservation of that slot gets a new key (audited; operator only).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReinjectGrant {
    pub hardware_serial: HardwareSerial,
    /// The DUKPT slot, by its BDK's name; absent (or `null`): the master key, whatever the
    /// mode delivers it in.
    #[serde(default)]
    pub slot: Option<BdkName>,
    /// Why (recorded with the grant and in the audit trail).
    pub reason: String,
}
call!(ReinjectGrant => ReinjectionGrantReport);

/// The re-injection grants: the open ones, or all.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReinjectList {
    /// Used and revoked grants too.
    #[serde(default)]
    pub all: bool,
}
call!(ReinjectList => Vec<ReinjectionGrantReport>);

/// Revokes an open re-injection grant (audited; operator only).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReinjectRevoke {
    /// The grant's number.
    pub grant: u64,
    /// Why (recorded in the audit trail).
    pub reason: String,
}
call!(ReinjectRevoke => ReinjectionGrantReport);

/// The keys reserved or sent to a terminal and never confirmed (master keys and DUKPT
/// initial keys), oldest first.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pending {
    /// Only those reserved on this port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    /// Only those reserved at least this many seconds ago.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub older_than_seconds: Option<u64>,
}
call!(Pending => Vec<PendingEntry>);

/// Which period a report covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReportSpan {
    /// Since the login of the operator logged in now; with nobody logged in, the last 8
    /// hours. Up to now.
    #[default]
    Shift,
    /// One day, 00:00 to 24:00 UTC: `day`, or today by the appliance's clock.
    Day,
    /// From `from` (or the beginning) to `to` (or now).
    Range,
}

/// Master-key injections, failures, pending and voided keys of a period, per operator,
/// batch, terminal model and port.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    #[serde(default)]
    pub period: ReportSpan,
    /// With `day`: the date, `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub day: Option<String>,
    /// With `range`: the start (included), RFC 3339 or a date (`YYYY-MM-DD`, its 00:00 UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// With `range`: the end (excluded), RFC 3339 or a date (`YYYY-MM-DD`: up to the end of
    /// that day, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}
call!(Report => ReportAnswer);

/// Runs the whole-database integrity check now (the one keymotherd runs in the background
/// after every start) and waits for its result; damage locks the appliance.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultCheck {}
call!(VaultCheck => VaultCheckReport);
