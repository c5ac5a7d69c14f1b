//! The audit chain: hash-chained rows, a head MACed under a key derived from the storage key, verification that names the broken row, and the security officer's export.
//!
//! Row `n` stores `hash = SHA-256(encoding of sequence, at, event, actor, details,
//! previous_hash)` and `previous_hash` = row `n - 1`'s hash (64 zeros for row 1), so an
//! edited, inserted or deleted row breaks the chain where it happened. Deleting the newest
//! rows leaves a shorter chain that is still consistent; the head (last sequence, last hash)
//! therefore carries an HMAC under a key derived from the device storage key, which someone
//! who can write the database but not read the storage key cannot forge. Every row is
//! appended, and the head moved, in the same transaction as the action it records. The
//! encodings and the export file are specified in docs/SMN-EXPORT.md ("The audit export").

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::{BufReader, Read, Write};
use std::path::Path;

use hmac::Mac;
use keymother_crypto::{Kcv, KeyAlgorithm};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use sha2::{Digest, Sha256};

use crate::export_file::{ExportError, ExportFileError, LineReader, write_atomically};
use crate::mac::{AUDIT_HEAD_LABEL, MacKey, verify_hex};
use crate::{SecretName, Vault, VaultError, now_text};

/// The `previous_hash` of the first row: 64 zeros.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// First line of an audit export.
pub const AUDIT_EXPORT_MAGIC: &str = "# KEYMOTHER-AUDIT-EXPORT/1";

/// The column line of an audit export.
pub const AUDIT_EXPORT_COLUMNS: &str = "sequence,at,event,actor,details,previous_hash,hash";

/// Domain separation for a row's hash.
const ROW_DOMAIN: &[u8] = b"KEYMOTHER-AUDIT-ROW/1\x00";

/// Longest value kept in `details` or `actor`, in bytes before escaping; longer ones are cut
/// and end in `...` (a reason typed at length, a file name).
const MAX_VALUE: usize = 1024;

/// Longest audit export line, line feed included: far above what the value cap allows.
const MAX_AUDIT_LINE: usize = 64 * 1024;

/// How many recent rows the verifier remembers to tell an inserted row from a rewritten one.
const RECENT_ROWS: usize = 64;

/// A security event, recorded in the chain. Never carries key material: names, indexes,
/// check values, batch ids, SMNs and reasons only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditEvent {
    /// Custodians loaded the KEK or the TTK from components.
    Ceremony {
        secret: SecretName,
        algorithm: KeyAlgorithm,
        kcv: Kcv,
        components: u32,
    },
    /// A key file was imported whole.
    Import {
        batch: String,
        records: u32,
        file_sha256: String,
    },
    /// A key file was refused; nothing was stored.
    ImportRefused { file: String, reason: String },
    /// An import was cancelled by its client (disconnected or interrupted); nothing was stored.
    ImportCancelled { file: String, reason: String },
    /// A terminal confirmed its key; its SMN row was written.
    Injection {
        key_index: u32,
        hardware_serial: String,
        smn: String,
        port: String,
        operator: Option<String>,
    },
    /// An SMN export file was written and its rows marked exported.
    Export {
        file: String,
        rows: u64,
        only_new: bool,
        file_sha256: String,
        operator: Option<String>,
    },
    /// An operator voided a key that was reserved or sent but never confirmed.
    Void {
        key_index: u32,
        reason: String,
        operator: String,
    },
    /// An operator proved possession of an operator certificate; a session opened.
    Login {
        /// The certificate's common name: what injection and control rows name.
        operator: String,
        /// The certificate's subject and serial (hex), telling apart operators of one name.
        subject: String,
        serial: String,
        /// When the session ends at the latest (RFC 3339).
        until: String,
    },
    /// An operator's session ended: logged out, expired, replaced by a new login, tamper or
    /// zeroize.
    Logout { operator: String, reason: String },
    /// A login was refused; no session opened. `peer` is the local user who asked.
    LoginRefused { peer: String, reason: String },
    /// The tamper input fired.
    Tamper { input: String },
    /// The tamper input is not watched any more, or could not be watched from the start: its
    /// GPIO failed or could not be opened.
    TamperInputLost { input: String, reason: String },
    /// The tamper input is watched again after it was lost.
    TamperInputRestored { input: String },
    /// The device's secrets and storage key are being destroyed.
    Zeroize {
        reason: String,
        operator: Option<String>,
    },
    /// A new KDH key pair was made and its certificate request written.
    KdhRequest {
        subject: String,
        bits: u32,
        request_sha256: String,
        /// What the new key pair replaced.
        replaced: String,
        operator: Option<String>,
    },
    /// The KDH CA's certificate for the appliance's key pair was installed.
    KdhCertificate {
        subject: String,
        serial: String,
        issuer: String,
        not_after: String,
        certificate_sha256: String,
        operator: Option<String>,
    },
    /// The appliance's clock was set under dual control: from `old` to `new` (RFC 3339), on
    /// the word of two people (`witnesses`: names, roles and local users).
    ClockSet {
        old: String,
        new: String,
        witnesses: String,
    },
    /// keymotherd started as a build the audit trail has not seen before: installed, or
    /// updated (`keymother-update`). `binary_sha256` is the executable's digest.
    Software {
        version: String,
        binary_sha256: String,
    },
    /// A setting changed, or the vault itself was created or upgraded.
    ConfigChange {
        what: String,
        operator: Option<String>,
    },
}

impl AuditEvent {
    /// The `event` column of a zeroize row.
    pub(crate) const ZEROIZE_NAME: &'static str = "zeroize";

    /// The event's name in the `event` column.
    pub fn name(&self) -> &'static str {
        match self {
            AuditEvent::Ceremony { .. } => "ceremony",
            AuditEvent::Import { .. } => "import",
            AuditEvent::ImportRefused { .. } => "import-refused",
            AuditEvent::ImportCancelled { .. } => "import-cancelled",
            AuditEvent::Injection { .. } => "injection",
            AuditEvent::Export { .. } => "export",
            AuditEvent::Void { .. } => "void",
            AuditEvent::Login { .. } => "login",
            AuditEvent::Logout { .. } => "logout",
            AuditEvent::LoginRefused { .. } => "login-refused",
            AuditEvent::Tamper { .. } => "tamper",
            AuditEvent::TamperInputLost { .. } => "tamper-input-lost",
            AuditEvent::TamperInputRestored { .. } => "tamper-input-restored",
            AuditEvent::Zeroize { .. } => AuditEvent::ZEROIZE_NAME,
            AuditEvent::ClockSet { .. } => "clock-set",
            AuditEvent::Software { .. } => "software",
            AuditEvent::ConfigChange { .. } => "config-change",
            AuditEvent::KdhRequest { .. } => "kdh-request",
            AuditEvent::KdhCertificate { .. } => "kdh-certificate",
        }
    }

    /// Who acted: the operator's name, `custodians` for ceremonies and imports, or `system`.
    pub fn actor(&self) -> String {
        let operator_or_system =
            |operator: &Option<String>| operator.as_deref().unwrap_or("system").to_owned();
        match self {
            AuditEvent::Ceremony { .. }
            | AuditEvent::Import { .. }
            | AuditEvent::ImportRefused { .. }
            | AuditEvent::ImportCancelled { .. } => "custodians".to_owned(),
            AuditEvent::Injection { operator, .. }
            | AuditEvent::Export { operator, .. }
            | AuditEvent::Zeroize { operator, .. }
            | AuditEvent::ConfigChange { operator, .. }
            | AuditEvent::KdhRequest { operator, .. }
            | AuditEvent::KdhCertificate { operator, .. } => operator_or_system(operator),
            AuditEvent::Tamper { .. }
            | AuditEvent::TamperInputLost { .. }
            | AuditEvent::TamperInputRestored { .. } => "system".to_owned(),
            AuditEvent::Void { operator, .. }
            | AuditEvent::Login { operator, .. }
            | AuditEvent::Logout { operator, .. } => operator.clone(),
            AuditEvent::LoginRefused { peer, .. } => peer.clone(),
            AuditEvent::ClockSet { .. } => "custodians".to_owned(),
            AuditEvent::Software { .. } => "system".to_owned(),
        }
    }

    /// The event's fields in their fixed order, unescaped: what goes into `details`, and what
    /// the daemon puts into the journal as structured fields.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        let mut fields = match self {
            AuditEvent::Ceremony {
                secret,
                algorithm,
                kcv,
                components,
            } => vec![
                ("secret", secret.to_string()),
                ("algorithm", algorithm.name().to_owned()),
                ("kcv", kcv.to_string()),
                ("components", components.to_string()),
            ],
            AuditEvent::Import {
                batch,
                records,
                file_sha256,
            } => vec![
                ("batch", batch.clone()),
                ("records", records.to_string()),
                ("file_sha256", file_sha256.clone()),
            ],
            AuditEvent::ImportRefused { file, reason }
            | AuditEvent::ImportCancelled { file, reason } => {
                vec![("file", file.clone()), ("reason", reason.clone())]
            }
            AuditEvent::Injection {
                key_index,
                hardware_serial,
                smn,
                port,
                operator: _,
            } => vec![
                ("key_index", format!("{key_index:08}")),
                ("hardware_serial", hardware_serial.clone()),
                ("smn", smn.clone()),
                ("port", port.clone()),
            ],
            AuditEvent::Export {
                file,
                rows,
                only_new,
                file_sha256,
                operator: _,
            } => vec![
                ("file", file.clone()),
                ("rows", rows.to_string()),
                ("only_new", if *only_new { "yes" } else { "no" }.to_owned()),
                ("file_sha256", file_sha256.clone()),
            ],
            AuditEvent::Void {
                key_index,
                reason,
                operator: _,
            } => vec![
                ("key_index", format!("{key_index:08}")),
                ("reason", reason.clone()),
            ],
            AuditEvent::Login {
                operator: _,
                subject,
                serial,
                until,
            } => vec![
                ("subject", subject.clone()),
                ("serial", serial.clone()),
                ("until", until.clone()),
            ],
            AuditEvent::Logout {
                operator: _,
                reason,
            } => vec![("reason", reason.clone())],
            AuditEvent::LoginRefused { peer, reason } => {
                vec![("reason", reason.clone()), ("peer", peer.clone())]
            }
            AuditEvent::Tamper { input } | AuditEvent::TamperInputRestored { input } => {
                vec![("input", input.clone())]
            }
            AuditEvent::TamperInputLost { input, reason } => {
                vec![("input", input.clone()), ("reason", reason.clone())]
            }
            AuditEvent::Zeroize {
                reason,
                operator: _,
            } => vec![("reason", reason.clone())],
            AuditEvent::ClockSet {
                old,
                new,
                witnesses,
            } => vec![
                ("old", old.clone()),
                ("new", new.clone()),
                ("witnesses", witnesses.clone()),
            ],
            AuditEvent::Software {
                version,
                binary_sha256,
            } => vec![
                ("version", version.clone()),
                ("binary_sha256", binary_sha256.clone()),
            ],
            AuditEvent::ConfigChange { what, operator: _ } => vec![("what", what.clone())],
            AuditEvent::KdhRequest {
                subject,
                bits,
                request_sha256,
                replaced,
                operator: _,
            } => vec![
                ("subject", subject.clone()),
                ("bits", bits.to_string()),
                ("request_sha256", request_sha256.clone()),
                ("replaced", replaced.clone()),
            ],
            AuditEvent::KdhCertificate {
                subject,
                serial,
                issuer,
                not_after,
                certificate_sha256,
                operator: _,
            } => vec![
                ("subject", subject.clone()),
                ("serial", serial.clone()),
                ("issuer", issuer.clone()),
                ("not_after", not_after.clone()),
                ("certificate_sha256", certificate_sha256.clone()),
            ],
        };
        // The operator is the actor; it is repeated in details so a row reads on its own.
        match self {
            AuditEvent::Injection {
                operator: Some(operator),
                ..
            }
            | AuditEvent::Export {
                operator: Some(operator),
                ..
            }
            | AuditEvent::Zeroize {
                operator: Some(operator),
                ..
            }
            | AuditEvent::KdhRequest {
                operator: Some(operator),
                ..
            }
            | AuditEvent::KdhCertificate {
                operator: Some(operator),
                ..
            }
            | AuditEvent::ConfigChange {
                operator: Some(operator),
                ..
            }
            | AuditEvent::Void { operator, .. }
            | AuditEvent::Login { operator, .. }
            | AuditEvent::Logout { operator, .. } => fields.push(("operator", operator.clone())),
            _ => {}
        }
        fields
    }

    /// The canonical `details` text: `key=value` pairs joined by `"; "`, values escaped.
    pub fn details(&self) -> String {
        self.fields()
            .into_iter()
            .map(|(key, value)| format!("{key}={}", escape(&value)))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Escapes a value for `details` or `actor`: `%`, `;`, `=`, `,`, `"` and every byte outside
/// printable ASCII become `%XX`, so a value can neither end its pair early nor break a CSV
/// field. Values are cut at [`MAX_VALUE`] bytes.
pub(crate) fn escape(value: &str) -> String {
    let mut cut = value.len().min(MAX_VALUE);
    while !value.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut escaped = String::with_capacity(cut + 3);
    for byte in value[..cut].bytes() {
        let plain =
            (0x20..=0x7E).contains(&byte) && !matches!(byte, b'%' | b';' | b'=' | b',' | b'"');
        if plain {
            escaped.push(char::from(byte));
        } else {
            let _ = write!(escaped, "%{byte:02X}");
        }
    }
    if cut < value.len() {
        escaped.push_str("...");
    }
    escaped
}

/// One row of the audit chain, as stored and as exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub sequence: u64,
    /// RFC 3339, UTC, whole seconds.
    pub at: String,
    pub event: String,
    pub actor: String,
    pub details: String,
    pub previous_hash: String,
    pub hash: String,
}

impl AuditRow {
    /// The hash this row's content calls for (lower-case hex), to compare with `hash`.
    pub fn computed_hash(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(ROW_DOMAIN);
        hasher.update(self.sequence.to_be_bytes());
        for field in [
            &self.at,
            &self.event,
            &self.actor,
            &self.details,
            &self.previous_hash,
        ] {
            hasher.update((field.len() as u64).to_be_bytes());
            hasher.update(field.as_bytes());
        }
        hex::encode(hasher.finalize())
    }
}

/// Whether the head's MAC was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadMacStatus {
    /// The head verified under the storage key: no row was removed from the end, and the
    /// chain was not rewritten, by anyone without the storage key.
    Verified,
    /// The storage key is gone (the vault was zeroized) or this is an offline export: the
    /// chain is consistent, but truncation or a consistent rewrite cannot be ruled out.
    NotChecked,
}

/// A chain that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditReport {
    /// Rows in the chain (also the last sequence number).
    pub rows: u64,
    /// The last row's hash as the head records it.
    pub head_hash: String,
    pub head_mac: HeadMacStatus,
}

/// "row 3 was" or "rows 3 to 5 were", for messages about a run of rows.
fn rows_were(first: u64, last: u64) -> String {
    if first == last {
        format!("row {first} was")
    } else {
        format!("rows {first} to {last} were")
    }
}

/// What is wrong with the chain, naming the row.
#[derive(Debug, thiserror::Error)]
pub enum AuditFailure {
    #[error("audit row {sequence} was edited: its content does not match its hash")]
    RowEdited { sequence: u64 },
    #[error(
        "audit {} inserted: row {} links to row {}",
        rows_were(*first, *last),
        last + 1,
        first - 1
    )]
    RowsInserted { first: u64, last: u64 },
    #[error(
        "audit row {sequence} does not link to row {}: row {} was rewritten (its hash recomputed), or rows were removed or inserted before row {sequence}",
        sequence - 1,
        sequence - 1
    )]
    LinkBroken { sequence: u64 },
    #[error("audit row 1 does not start the chain: its previous hash is not 64 zeros")]
    BadGenesis,
    #[error("audit {} deleted: the chain jumps from row {} to row {}", rows_were(*first, *last), first - 1, last + 1)]
    RowsMissing { first: u64, last: u64 },
    #[error("audit row {sequence} is out of order (after row {after})")]
    OutOfOrder { sequence: u64, after: u64 },
    #[error("audit row {sequence} has an impossible sequence number")]
    BadSequence { sequence: i64 },
    #[error("the audit head is missing: the chain's end cannot be checked")]
    HeadMissing,
    #[error(
        "the audit head (last row {last_sequence}) does not verify under the storage key: it was forged, so the chain was rewritten or cut and the head adjusted"
    )]
    HeadForged { last_sequence: u64 },
    #[error(
        "audit {} deleted from the end of the chain: the head records row {last}",
        rows_were(*first, *last)
    )]
    RowsTruncated { first: u64, last: u64 },
    #[error(
        "audit {} inserted after the head's last row {}",
        rows_were(*first, *last),
        first - 1
    )]
    RowsBeyondHead { first: u64, last: u64 },
    #[error(
        "audit row {sequence} is not the row the head records: row {sequence} or the chain before it was rewritten"
    )]
    HeadMismatch { sequence: u64 },
    #[error(transparent)]
    Vault(#[from] VaultError),
}

impl AuditFailure {
    /// The row the failure is about (for the head: the row it records), if any.
    pub fn sequence(&self) -> Option<u64> {
        match self {
            AuditFailure::RowEdited { sequence }
            | AuditFailure::LinkBroken { sequence }
            | AuditFailure::OutOfOrder { sequence, .. }
            | AuditFailure::HeadMismatch { sequence } => Some(*sequence),
            AuditFailure::RowsInserted { first, .. }
            | AuditFailure::RowsMissing { first, .. }
            | AuditFailure::RowsTruncated { first, .. }
            | AuditFailure::RowsBeyondHead { first, .. } => Some(*first),
            AuditFailure::BadGenesis => Some(1),
            AuditFailure::HeadForged { last_sequence } => Some(*last_sequence),
            AuditFailure::BadSequence { .. }
            | AuditFailure::HeadMissing
            | AuditFailure::Vault(_) => None,
        }
    }
}

impl From<rusqlite::Error> for AuditFailure {
    fn from(error: rusqlite::Error) -> Self {
        AuditFailure::Vault(VaultError::Database(error))
    }
}

/// The head as stored.
struct Head {
    last_sequence: u64,
    last_hash: String,
    mac: String,
}

fn head_mac(key: &MacKey, last_sequence: u64, last_hash: &str) -> hmac::Hmac<Sha256> {
    let mut mac = key.start();
    mac.update(AUDIT_HEAD_LABEL);
    mac.update(&[0]);
    mac.update(&last_sequence.to_be_bytes());
    mac.update(last_hash.as_bytes());
    mac
}

fn head_mac_hex(key: &MacKey, last_sequence: u64, last_hash: &str) -> String {
    hex::encode(
        head_mac(key, last_sequence, last_hash)
            .finalize()
            .into_bytes(),
    )
}

fn head_verifies(key: &MacKey, head: &Head) -> bool {
    verify_hex(
        head_mac(key, head.last_sequence, &head.last_hash),
        &head.mac,
    )
}

fn read_head(connection: &Connection) -> Result<Option<Head>, VaultError> {
    let head: Option<(i64, String, String)> = connection
        .prepare_cached("SELECT last_sequence, last_hash, mac FROM audit_head WHERE singleton = 1")?
        .query_row([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .optional()?;
    head.map(|(last_sequence, last_hash, mac)| {
        Ok(Head {
            last_sequence: u64::try_from(last_sequence).map_err(|_| {
                VaultError::AuditTampered(format!("the audit head records row {last_sequence}"))
            })?,
            last_hash,
            mac,
        })
    })
    .transpose()
}

/// Starts an empty chain: the head at row 0 with the genesis hash, MACed.
pub(crate) fn start_chain(connection: &Connection, key: &MacKey) -> Result<(), VaultError> {
    connection.execute(
        "INSERT INTO audit_head (singleton, last_sequence, last_hash, mac) VALUES (1, 0, ?1, ?2)",
        params![GENESIS_HASH, head_mac_hex(key, 0, GENESIS_HASH)],
    )?;
    Ok(())
}

/// Appends `event` inside the caller's transaction and moves the head. Refuses to build on
/// a head that does not verify or does not match the last row: that would bless a forgery.
pub(crate) fn append(
    connection: &Connection,
    key: &MacKey,
    event: &AuditEvent,
) -> Result<AuditRow, VaultError> {
    let head = read_head(connection)?
        .ok_or_else(|| VaultError::AuditTampered("the audit head is missing".to_owned()))?;
    if !head_verifies(key, &head) {
        return Err(VaultError::AuditTampered(format!(
            "the audit head (row {}) does not verify under the storage key",
            head.last_sequence
        )));
    }
    if head.last_sequence > 0 {
        let last: Option<String> = connection
            .prepare_cached("SELECT hash FROM audit_log WHERE sequence = ?1")?
            .query_row([head.last_sequence as i64], |row| row.get(0))
            .optional()?;
        if last.as_deref() != Some(head.last_hash.as_str()) {
            return Err(VaultError::AuditTampered(format!(
                "audit row {} is missing or is not the row the head records",
                head.last_sequence
            )));
        }
    }
    let mut row = AuditRow {
        sequence: head.last_sequence + 1,
        at: now_text(),
        event: event.name().to_owned(),
        actor: escape(&event.actor()),
        details: event.details(),
        previous_hash: head.last_hash,
        hash: String::new(),
    };
    row.hash = row.computed_hash();
    connection
        .prepare_cached(
            "INSERT INTO audit_log (sequence, at, event, actor, details, previous_hash, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            row.sequence as i64,
            row.at,
            row.event,
            row.actor,
            row.details,
            row.previous_hash,
            row.hash
        ])?;
    connection
        .prepare_cached(
            "UPDATE audit_head SET last_sequence = ?1, last_hash = ?2, mac = ?3 WHERE singleton = 1",
        )?
        .execute(params![
            row.sequence as i64,
            row.hash,
            head_mac_hex(key, row.sequence, &row.hash)
        ])?;
    Ok(row)
}

/// Walks a chain row by row, remembering just enough to name what broke.
struct ChainWalk {
    expected: u64,
    previous_hash: String,
    recent: VecDeque<(u64, String)>,
}

impl ChainWalk {
    fn new() -> ChainWalk {
        ChainWalk {
            expected: 1,
            previous_hash: GENESIS_HASH.to_owned(),
            recent: VecDeque::with_capacity(RECENT_ROWS),
        }
    }

    fn push(&mut self, row: AuditRow) -> Result<(), AuditFailure> {
        if row.sequence > self.expected {
            return Err(AuditFailure::RowsMissing {
                first: self.expected,
                last: row.sequence - 1,
            });
        }
        if row.sequence < self.expected {
            return Err(AuditFailure::OutOfOrder {
                sequence: row.sequence,
                after: self.expected - 1,
            });
        }
        if row.previous_hash != self.previous_hash {
            // A row that links to an older row: the rows between were inserted (and the rest
            // renumbered to make room).
            if let Some((linked, _)) = self
                .recent
                .iter()
                .rev()
                .find(|(_, hash)| *hash == row.previous_hash)
            {
                return Err(AuditFailure::RowsInserted {
                    first: linked + 1,
                    last: row.sequence - 1,
                });
            }
            return Err(if row.sequence == 1 {
                AuditFailure::BadGenesis
            } else {
                AuditFailure::LinkBroken {
                    sequence: row.sequence,
                }
            });
        }
        if row.computed_hash() != row.hash {
            return Err(AuditFailure::RowEdited {
                sequence: row.sequence,
            });
        }
        if self.recent.len() == RECENT_ROWS {
            self.recent.pop_front();
        }
        self.recent.push_back((row.sequence, row.hash.clone()));
        self.previous_hash = row.hash;
        self.expected += 1;
        Ok(())
    }

    /// Checks the head against the end of the chain; `key` is `None` when the MAC cannot be
    /// checked (no storage key, or an offline export).
    fn finish(
        self,
        head: Option<&Head>,
        key: Option<&MacKey>,
    ) -> Result<AuditReport, AuditFailure> {
        let head = head.ok_or(AuditFailure::HeadMissing)?;
        let head_mac = match key {
            Some(key) if !head_verifies(key, head) => {
                return Err(AuditFailure::HeadForged {
                    last_sequence: head.last_sequence,
                });
            }
            Some(_) => HeadMacStatus::Verified,
            None => HeadMacStatus::NotChecked,
        };
        let last = self.expected - 1;
        if head.last_sequence > last {
            return Err(AuditFailure::RowsTruncated {
                first: last + 1,
                last: head.last_sequence,
            });
        }
        if head.last_sequence < last {
            return Err(AuditFailure::RowsBeyondHead {
                first: head.last_sequence + 1,
                last,
            });
        }
        if head.last_hash != self.previous_hash {
            return Err(AuditFailure::HeadMismatch { sequence: last });
        }
        Ok(AuditReport {
            rows: last,
            head_hash: head.last_hash.clone(),
            head_mac,
        })
    }
}

const SELECT_ROWS: &str = "SELECT sequence, at, event, actor, details, previous_hash, hash
                             FROM audit_log ORDER BY sequence";

fn row_from_sql(row: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, AuditRow)> {
    Ok((
        row.get(0)?,
        AuditRow {
            sequence: 0,
            at: row.get(1)?,
            event: row.get(2)?,
            actor: row.get(3)?,
            details: row.get(4)?,
            previous_hash: row.get(5)?,
            hash: row.get(6)?,
        },
    ))
}

fn with_sequence((sequence, row): (i64, AuditRow)) -> Result<AuditRow, AuditFailure> {
    let valid = u64::try_from(sequence).map_err(|_| AuditFailure::BadSequence { sequence })?;
    Ok(AuditRow {
        sequence: valid,
        ..row
    })
}

/// Verifies the stored chain and head inside the caller's read transaction.
fn verify_stored(
    connection: &Connection,
    key: Option<&MacKey>,
) -> Result<AuditReport, AuditFailure> {
    let mut walk = ChainWalk::new();
    let mut statement = connection.prepare(SELECT_ROWS)?;
    for row in statement.query_map([], row_from_sql)? {
        walk.push(with_sequence(row?)?)?;
    }
    let head = read_head(connection)?;
    walk.finish(head.as_ref(), key)
}

/// What an audit export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditExportReport {
    pub rows: u64,
    /// The verification line written into the file: the chain's state at export time.
    pub verification: String,
}

/// An audit export file did not verify.
#[derive(Debug, thiserror::Error)]
pub enum AuditExportError {
    /// The file is malformed: names the file and the line.
    #[error(transparent)]
    File(#[from] ExportFileError),
    /// The file is well formed but its chain is broken.
    #[error("{file}: {failure}")]
    Chain { file: String, failure: AuditFailure },
}

impl Vault {
    /// Appends `event` to the audit chain in its own transaction. Vault operations that are
    /// security events (ceremony, import, injection, export, void, zeroize) record themselves
    /// inside their own transactions; this is for events that happen outside the vault
    /// (login, logout, tamper, configuration changes).
    pub fn record_audit(&mut self, event: AuditEvent) -> Result<AuditRow, VaultError> {
        let key = crate::live_key(&self.storage_key, &self.data_dir)?;
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let row = append(&transaction, key.audit_head(), &event)?;
        transaction.commit()?;
        Ok(row)
    }

    /// Walks the whole chain and checks the head: the first edited, inserted or deleted row,
    /// or a forged head, is reported by its sequence number. After a zeroize the head's MAC
    /// can no longer be checked; the report says so ([`HeadMacStatus::NotChecked`]).
    pub fn verify_audit(&self) -> Result<AuditReport, AuditFailure> {
        // One read transaction: rows and head from the same snapshot.
        let transaction = self.connection.unchecked_transaction()?;
        let key = self.storage_key.as_ref().map(|key| key.audit_head());
        verify_stored(&transaction, key)
    }

    /// Every audit row, oldest first.
    /// The details of the most recent row of `event` (e.g. "config-change"), if any.
    pub fn last_audit_details(&self, event: &str) -> Result<Option<String>, VaultError> {
        Ok(self
            .connection
            .query_row(
                "SELECT details FROM audit_log WHERE event = ?1 ORDER BY sequence DESC LIMIT 1",
                [event],
                |row| row.get(0),
            )
            .optional()?)
    }

    /// When the last audit row was written: the time the appliance's clock must never be set
    /// before without saying so.
    pub fn last_audit_at(&self) -> Result<Option<std::time::SystemTime>, VaultError> {
        let at: Option<String> = self
            .connection
            .query_row(
                "SELECT at FROM audit_log ORDER BY sequence DESC LIMIT 1",
                [],
                |row| row.get(0),
            )
            .optional()?;
        Ok(at.and_then(|at| {
            time::OffsetDateTime::parse(&at, &time::format_description::well_known::Rfc3339)
                .ok()
                .map(std::time::SystemTime::from)
        }))
    }

    pub fn audit_rows(&self) -> Result<Vec<AuditRow>, VaultError> {
        let mut statement = self.connection.prepare(SELECT_ROWS)?;
        let rows = statement
            .query_map([], row_from_sql)?
            .map(|row| {
                let row = row?;
                with_sequence(row).map_err(|failure| VaultError::AuditTampered(failure.to_string()))
            })
            .collect::<Result<_, VaultError>>()?;
        Ok(rows)
    }

    /// Writes the chain to `path` for the security officer (docs/SMN-EXPORT.md, "The audit
    /// export"): a comment header with the head and the verification result, then one CSV
    /// line per row with both hashes, so the chain can be re-verified offline. Written
    /// atomically; a broken chain is exported too, with the failure in its header.
    pub fn export_audit(&self, path: &Path) -> Result<AuditExportReport, ExportError> {
        write_atomically(path, |out: &mut dyn Write| {
            self.write_audit_export(out, path)
        })
    }

    /// Writes the audit export (as [`Vault::export_audit`] does) to `out`; `label` names the
    /// destination in write errors. Changes nothing.
    pub fn write_audit_export(
        &self,
        out: &mut dyn Write,
        label: &Path,
    ) -> Result<AuditExportReport, ExportError> {
        let path = label;
        let transaction = self.connection.unchecked_transaction()?;
        let key = self.storage_key.as_ref().map(|key| key.audit_head());
        let verification = match verify_stored(&transaction, key) {
            Ok(AuditReport {
                head_mac: HeadMacStatus::Verified,
                ..
            }) => "ok; head MAC verified under the storage key".to_owned(),
            Ok(AuditReport {
                head_mac: HeadMacStatus::NotChecked,
                ..
            }) => "ok; head MAC not checked (no storage key: the vault was zeroized)".to_owned(),
            Err(AuditFailure::Vault(error)) => return Err(error.into()),
            Err(failure) => format!("FAILED: {failure}"),
        };
        let head = read_head(&transaction)?;
        let count: i64 =
            transaction.query_row("SELECT count(*) FROM audit_log", [], |row| row.get(0))?;
        let mut statement = transaction.prepare(SELECT_ROWS)?;
        let exported_at = now_text();
        let io = |source| ExportError::writing(path, source);
        let mut header = format!(
            "{AUDIT_EXPORT_MAGIC}\n# device-id: {}\n# exported-at: {exported_at}\n# row-count: {count}\n",
            self.device_id()
        );
        match &head {
            Some(head) => {
                let _ = writeln!(
                    header,
                    "# head: sequence={}; hash={}",
                    head.last_sequence, head.last_hash
                );
            }
            None => header.push_str("# head: missing\n"),
        }
        let _ = writeln!(header, "# verification: {verification}");
        header.push_str(AUDIT_EXPORT_COLUMNS);
        header.push('\n');
        out.write_all(header.as_bytes()).map_err(io)?;
        let mut rows = 0u64;
        for row in statement.query_map([], row_from_sql)? {
            let (sequence, row) = row?;
            writeln!(
                out,
                "{sequence},{},{},{},{},{},{}",
                row.at, row.event, row.actor, row.details, row.previous_hash, row.hash
            )
            .map_err(io)?;
            rows += 1;
        }
        Ok(AuditExportReport { rows, verification })
    }
}

/// Re-verifies an audit export offline: parses it (errors name the line), walks its chain
/// and checks it against the head line. The head's MAC cannot be checked without the
/// device's storage key, so compare the head hash with one recorded independently (a
/// previous export, the appliance's display) to rule out a consistently rewritten file.
pub fn verify_audit_export<R: Read>(
    reader: R,
    name: &str,
) -> Result<AuditReport, AuditExportError> {
    let mut lines = LineReader::new(BufReader::new(reader), name, MAX_AUDIT_LINE);
    let (_, magic) = lines.header_line("")?;
    if magic != AUDIT_EXPORT_MAGIC {
        return Err(lines_error(
            name,
            1,
            format!(
                "this is not a keymother audit export (first line is {magic:?}, expected {AUDIT_EXPORT_MAGIC:?})"
            ),
        )
        .into());
    }
    lines.header_line("# device-id: ")?;
    lines.header_line("# exported-at: ")?;
    let (count_line, count_text) = lines.header_line("# row-count: ")?;
    let count: u64 = count_text.parse().map_err(|_| {
        lines_error(
            name,
            count_line,
            format!("row-count {count_text:?} is not a number"),
        )
    })?;
    let (head_line, head_text) = lines.header_line("# head: ")?;
    let head = parse_head(&head_text).map_err(|problem| lines_error(name, head_line, problem))?;
    lines.header_line("# verification: ")?;
    let (columns_line, columns) = lines.header_line("")?;
    if columns != AUDIT_EXPORT_COLUMNS {
        return Err(lines_error(
            name,
            columns_line,
            format!("expected the column line {AUDIT_EXPORT_COLUMNS:?}, found {columns:?}"),
        )
        .into());
    }
    let chain_failure = |failure| AuditExportError::Chain {
        file: name.to_owned(),
        failure,
    };
    let mut walk = ChainWalk::new();
    let mut rows = 0u64;
    while let Some(line) = lines.next_line()? {
        let row = parse_audit_line(line.text())
            .map_err(|problem| lines_error(name, line.number(), problem))?;
        rows += 1;
        walk.push(row).map_err(chain_failure)?;
    }
    if rows != count {
        return Err(lines_error(
            name,
            count_line,
            format!("row-count says {count} rows, the file holds {rows}"),
        )
        .into());
    }
    walk.finish(head.as_ref(), None).map_err(chain_failure)
}

fn lines_error(name: &str, line: u64, problem: String) -> ExportFileError {
    ExportFileError {
        file: name.to_owned(),
        line,
        problem,
    }
}

fn parse_head(text: &str) -> Result<Option<Head>, String> {
    if text == "missing" {
        return Ok(None);
    }
    let malformed = || format!("expected \"sequence=N; hash=H\" or \"missing\", found {text:?}");
    let (sequence, hash) = text
        .strip_prefix("sequence=")
        .and_then(|rest| rest.split_once("; hash="))
        .ok_or_else(malformed)?;
    Ok(Some(Head {
        last_sequence: sequence.parse().map_err(|_| malformed())?,
        last_hash: hash.to_owned(),
        mac: String::new(),
    }))
}

fn parse_audit_line(text: &str) -> Result<AuditRow, String> {
    let fields: Vec<&str> = text.split(',').collect();
    let [sequence, at, event, actor, details, previous_hash, hash] = fields.as_slice() else {
        return Err(format!(
            "expected 7 comma-separated fields, found {}",
            fields.len()
        ));
    };
    Ok(AuditRow {
        sequence: sequence
            .parse()
            .map_err(|_| format!("sequence {sequence:?} is not a number"))?,
        at: (*at).to_owned(),
        event: (*event).to_owned(),
        actor: (*actor).to_owned(),
        details: (*details).to_owned(),
        previous_hash: (*previous_hash).to_owned(),
        hash: (*hash).to_owned(),
    })
}

/// Reads the last audit event of a database without the storage key (to tell a zeroized
/// vault from a missing key file).
pub(crate) fn last_event(connection: &Connection) -> Option<String> {
    connection
        .query_row(
            "SELECT event FROM audit_log ORDER BY sequence DESC LIMIT 1",
            [],
            |row| row.get(0),
        )
        .ok()
}
