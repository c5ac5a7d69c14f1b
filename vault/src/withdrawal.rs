//! Batch withdrawal: an operator takes the keys of a batch that are still available out of service for good, with a reason; keys already reserved or sent finish normally.
//!
//! A withdrawn key becomes `void` and is marked `withdrawn`, so `status` and `inventory` count
//! it apart from keys voided one by one. Migration 8's triggers back this up: a key of a
//! withdrawn batch never leaves `available` except by its withdrawal, a withdrawn key never
//! changes state again, no key is added to a withdrawn batch, and the withdrawal record is
//! never rewritten or deleted.

use keymother_domain::BatchId;
use rusqlite::{OptionalExtension, TransactionBehavior, params};

use crate::audit::{self, AuditEvent};
use crate::{Vault, VaultError, live_key, now_text};

/// What a withdrawal did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WithdrawnBatch {
    pub batch_id: BatchId,
    /// Keys taken out of service (they were available).
    pub withdrawn: u64,
    /// Keys of the batch reserved or sent to a terminal: they finish normally.
    pub pending: u64,
    /// Keys of the batch already used (confirmed) or otherwise out of service.
    pub used: u64,
    /// The `batch-withdrawn` row's sequence number in the audit chain.
    pub audit_sequence: u64,
}

/// A withdrawal was refused; nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum WithdrawError {
    #[error("batch {0} was never imported")]
    UnknownBatch(BatchId),
    /// Its keys are still arriving (a staged import, import.rs): none is dispensable yet.
    #[error("batch {0} is still being imported; it can be withdrawn once its import has ended")]
    StillImporting(BatchId),
    #[error("batch {batch} was already withdrawn on {at}")]
    AlreadyWithdrawn { batch: BatchId, at: String },
    #[error(
        "batch {batch} has no available key to withdraw ({pending} reserved or sent, which finish normally; {used} used or out of service)"
    )]
    NothingAvailable {
        batch: BatchId,
        pending: u64,
        used: u64,
    },
    #[error("withdrawing batch {0} needs a reason")]
    NoReason(BatchId),
    #[error("withdrawing batch {0} needs the operator's name")]
    NoOperator(BatchId),
    #[error(transparent)]
    Vault(#[from] VaultError),
}

impl From<rusqlite::Error> for WithdrawError {
    fn from(error: rusqlite::Error) -> Self {
        WithdrawError::Vault(VaultError::Database(error))
    }
}

impl Vault {
    /// Withdraws every key of `batch` that is still available, in one transaction with its
    /// `batch-withdrawn` audit row: they become void (marked withdrawn) and are never
    /// dispensed. Keys reserved or sent to a terminal are left to finish (confirm, or be
    /// voided one by one). Refused for an unknown batch, one withdrawn before, one with no
    /// available key, one still being imported, or without a reason or an operator.
    pub fn withdraw_batch(
        &mut self,
        batch: &BatchId,
        reason: &str,
        operator: &str,
    ) -> Result<WithdrawnBatch, WithdrawError> {
        if reason.trim().is_empty() {
            return Err(WithdrawError::NoReason(batch.clone()));
        }
        if operator.trim().is_empty() {
            return Err(WithdrawError::NoOperator(batch.clone()));
        }
        let storage_key = live_key(&self.storage_key, &self.data_dir)?;
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let known: Option<i64> = transaction
            .query_row(
                "SELECT 1 FROM batch WHERE batch_id = ?1",
                [batch.as_str()],
                |row| row.get(0),
            )
            .optional()?;
        if known.is_none() {
            return Err(WithdrawError::UnknownBatch(batch.clone()));
        }
        let staging: Option<i64> = transaction
            .query_row(
                "SELECT 1 FROM batch_staging WHERE batch_id = ?1",
                [batch.as_str()],
                |row| row.get(0),
            )
            .optional()?;
        if staging.is_some() {
            return Err(WithdrawError::StillImporting(batch.clone()));
        }
        let earlier: Option<String> = transaction
            .query_row(
                "SELECT withdrawn_at FROM batch_withdrawal WHERE batch_id = ?1",
                [batch.as_str()],
                |row| row.get(0),
            )
            .optional()?;
        if let Some(at) = earlier {
            return Err(WithdrawError::AlreadyWithdrawn {
                batch: batch.clone(),
                at,
            });
        }
        let (available, pending, used): (i64, i64, i64) = transaction.query_row(
            "SELECT count(*) FILTER (WHERE state = 'available'),
                    count(*) FILTER (WHERE state IN ('reserved', 'sent')),
                    count(*) FILTER (WHERE state NOT IN ('available', 'reserved', 'sent'))
               FROM key_inventory WHERE batch_id = ?1",
            [batch.as_str()],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )?;
        let (pending, used) = (pending as u64, used as u64);
        if available == 0 {
            return Err(WithdrawError::NothingAvailable {
                batch: batch.clone(),
                pending,
                used,
            });
        }
        transaction.execute(
            "INSERT INTO batch_withdrawal (batch_id, withdrawn_at, keys, reason, operator)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![batch.as_str(), now_text(), available, reason, operator],
        )?;
        let withdrawn = transaction.execute(
            "UPDATE key_inventory SET state = 'void', withdrawn = 1
              WHERE batch_id = ?1 AND state = 'available'",
            [batch.as_str()],
        )? as i64;
        if withdrawn != available {
            return Err(VaultError::Corrupt(format!(
                "batch {batch}: {available} keys were available but {withdrawn} were withdrawn"
            ))
            .into());
        }
        let row = audit::append(
            &transaction,
            storage_key.audit_head(),
            &AuditEvent::BatchWithdrawn {
                batch: batch.to_string(),
                keys: available as u64,
                pending,
                reason: reason.to_owned(),
                operator: operator.to_owned(),
            },
        )?;
        transaction.commit()?;
        Ok(WithdrawnBatch {
            batch_id: batch.clone(),
            withdrawn: available as u64,
            pending,
            used,
            audit_sequence: row.sequence,
        })
    }
}
