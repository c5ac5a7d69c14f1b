//! The tamper response at rest: one transaction records the tamper row and deletes the sealed KEK, TTK, KDH identity and BDK key blocks, so the appliance stays locked until custodians load the keys again.
//!
//! What stays: the storage key (the audit chain's head is still MACed and verified), the
//! inventory (master keys are blocks under the KEK, which the front end still holds, so the
//! same KEK loaded again by its custodians opens them), the SMN registry and the audit trail.
//! What goes: every secret of the appliance's own. See docs/SECURITY.md, "Tamper".

use rusqlite::{OptionalExtension, TransactionBehavior};

use crate::audit::{self, AuditEvent};
use crate::{SecretName, Vault, VaultError, live_key};

/// What a tamper response deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TamperReport {
    /// The tamper row's sequence number in the audit chain.
    pub audit_sequence: u64,
    /// Sealed secrets deleted (KEK, TTK): 0 to 2.
    pub secrets_deleted: u64,
    /// Whether a KDH identity (key pair, certificate) was deleted.
    pub kdh_deleted: bool,
    /// DUKPT BDK key blocks erased (the BDK rows stay; custodians load the keys again).
    pub bdks_erased: u64,
}

/// A tamper the custodians have not yet answered with both key ceremonies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TamperOutstanding {
    /// The input that fired, as recorded.
    pub input: String,
    /// When (RFC 3339, UTC).
    pub at: String,
    pub audit_sequence: u64,
    /// Whether the KEK, and the TTK, were loaded again since.
    pub kek_reloaded: bool,
    pub ttk_reloaded: bool,
}

impl TamperOutstanding {
    /// The ceremonies still needed.
    pub fn missing(&self) -> Vec<SecretName> {
        let mut missing = Vec::new();
        if !self.kek_reloaded {
            missing.push(SecretName::Kek);
        }
        if !self.ttk_reloaded {
            missing.push(SecretName::Ttk);
        }
        missing
    }
}

impl Vault {
    /// The tamper input fired: records a `tamper` row naming `input` and deletes the sealed
    /// KEK and TTK, the KDH identity and every DUKPT BDK's key block, in one transaction; then truncates the write-ahead
    /// log, which still held copies of the deleted pages (`secure_delete` zeroes them in the
    /// database itself). Should the audit chain refuse the row (a head that fails), the
    /// secrets are deleted all the same and the chain's error is returned.
    pub fn tamper(&mut self, input: &str) -> Result<TamperReport, VaultError> {
        let storage_key = live_key(&self.storage_key, &self.data_dir)?;
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let row = match audit::append(
            &transaction,
            storage_key.audit_head(),
            &AuditEvent::Tamper {
                input: input.to_owned(),
            },
        ) {
            Ok(row) => row,
            Err(refused) => {
                // The chain will not take the row (its head fails): the secrets go all the
                // same, unrecorded, and the error says so.
                drop(transaction);
                self.connection.execute_batch(
                    "BEGIN IMMEDIATE; DELETE FROM sealed_secret; DELETE FROM kdh_identity;
                     UPDATE bdk SET key_block = '' WHERE key_block <> ''; COMMIT;",
                )?;
                return Err(refused);
            }
        };
        let secrets_deleted = transaction.execute("DELETE FROM sealed_secret", [])? as u64;
        let kdh_deleted = transaction.execute("DELETE FROM kdh_identity", [])? > 0;
        let bdks_erased = crate::operator::erase_bdks(&transaction)?;
        transaction.commit()?;
        // The deletion is committed; a checkpoint that cannot run now (a reader) leaves the
        // old pages to the next one, which is no reason to report the tamper as failed.
        let _ = self
            .connection
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        Ok(TamperReport {
            audit_sequence: row.sequence,
            secrets_deleted,
            kdh_deleted,
            bdks_erased,
        })
    }

    /// The last tamper, unless both the KEK and the TTK ceremonies were held after it.
    pub fn tamper_outstanding(&self) -> Result<Option<TamperOutstanding>, VaultError> {
        let last: Option<(i64, String, String)> = self
            .connection
            .query_row(
                "SELECT sequence, at, details FROM audit_log WHERE event = 'tamper'
                 ORDER BY sequence DESC LIMIT 1",
                [],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .optional()?;
        let Some((sequence, at, details)) = last else {
            return Ok(None);
        };
        let reloaded = |name: SecretName| -> Result<bool, VaultError> {
            let count: i64 = self.connection.query_row(
                "SELECT count(*) FROM audit_log
                  WHERE event = 'ceremony' AND sequence > ?1 AND details LIKE ?2",
                (sequence, format!("secret={}%", name.as_str())),
                |row| row.get(0),
            )?;
            Ok(count > 0)
        };
        let outstanding = TamperOutstanding {
            input: details
                .strip_prefix("input=")
                .unwrap_or(&details)
                .to_owned(),
            at,
            audit_sequence: sequence as u64,
            kek_reloaded: reloaded(SecretName::Kek)?,
            ttk_reloaded: reloaded(SecretName::Ttk)?,
        };
        Ok((!(outstanding.kek_reloaded && outstanding.ttk_reloaded)).then_some(outstanding))
    }
}
