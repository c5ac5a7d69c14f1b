//! BDKs at rest: TR-31 key blocks under the storage key with usage B0 (base derivation key), bound to their name and identifier by the block's authenticated LB and BI fields; loading, listing and unsealing them.

use keymother_crypto::SecretKey;
use keymother_crypto::tr31::{
    Algorithm, BaseDerivationKeyIdentifier, Exportability, Header, KeyUsage, ModeOfUse,
    OptionalBlock, Version,
};
use keymother_domain::{BdkId, BdkName, DeviceRange, Kcv, KeyAlgorithm, KeyFamily};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::allocate::{lowest_free, remaining};
use super::{BdkSource, BdkStatus, DukptError, NewBdk, corrupt, kind_from_stored, kind_name};
use crate::audit::{self, AuditEvent};
use crate::{Vault, VaultError, now_text};

/// A BDK's row, read and checked.
pub(super) struct BdkRow {
    pub(super) name: BdkName,
    pub(super) kind: KeyFamily,
    pub(super) algorithm: KeyAlgorithm,
    pub(super) bdk_id: BdkId,
    pub(super) kcv: Kcv,
    pub(super) range: DeviceRange,
    /// Empty once a tamper or a zeroize destroyed it.
    pub(super) key_block: String,
    pub(super) source: BdkSource,
    pub(super) loaded_at: String,
    /// Every device id of the range below this one is allocated (see migration 6).
    pub(super) allocated_below: i64,
}

const SELECT_BDK: &str = "SELECT name, kind, algorithm, bdk_id, kcv, first_device, last_device,
                                 key_block, source, loaded_at, allocated_below
                            FROM bdk";

/// Reads one row of `bdk` (columns as [`SELECT_BDK`]) and checks every value.
fn bdk_from_sql(row: &rusqlite::Row<'_>) -> Result<BdkRow, DukptError> {
    let name: BdkName = row.get(0)?;
    let kind_text: String = row.get(1)?;
    let kind = kind_from_stored(&kind_text)
        .ok_or_else(|| corrupt(format!("BDK {name} has kind {kind_text:?}")))?;
    let bdk_id_text: String = row.get(3)?;
    let bdk_id = BdkId::from_hex(kind, &bdk_id_text)
        .map_err(|error| corrupt(format!("BDK {name}: stored identifier: {error}")))?;
    let kcv_text: String = row.get(4)?;
    let kcv = Kcv::from_hex(kind, &kcv_text)
        .map_err(|error| corrupt(format!("BDK {name}: stored check value: {error}")))?;
    let range = DeviceRange::from_numbers(kind, row.get(5)?, row.get(6)?)
        .map_err(|error| corrupt(format!("BDK {name}: stored range: {error}")))?;
    let source_text: String = row.get(8)?;
    let source = BdkSource::from_stored(&source_text)
        .ok_or_else(|| corrupt(format!("BDK {name} has source {source_text:?}")))?;
    let algorithm: KeyAlgorithm = row.get(2)?;
    if algorithm.family() != kind {
        return Err(corrupt(format!(
            "BDK {name} is {algorithm} but of kind {kind}"
        )));
    }
    Ok(BdkRow {
        name,
        kind,
        algorithm,
        bdk_id,
        kcv,
        range,
        key_block: row.get(7)?,
        source,
        loaded_at: row.get(9)?,
        allocated_below: row.get(10)?,
    })
}

/// The BDK named `name`, if there is a row for it (destroyed or not).
pub(super) fn read_bdk(
    connection: &Connection,
    name: &BdkName,
) -> Result<Option<BdkRow>, DukptError> {
    let mut statement = connection.prepare_cached(&format!("{SELECT_BDK} WHERE name = ?1"))?;
    let mut rows = statement.query([name])?;
    rows.next()?.map(bdk_from_sql).transpose()
}

/// The BDK named `name`, refusing an unknown or destroyed one.
pub(super) fn live_bdk(connection: &Connection, name: &BdkName) -> Result<BdkRow, DukptError> {
    let row = read_bdk(connection, name)?.ok_or_else(|| DukptError::UnknownBdk(name.clone()))?;
    if row.key_block.is_empty() {
        return Err(DukptError::BdkDestroyed(name.clone()));
    }
    Ok(row)
}

/// The status of a BDK: its record and what is left of its range.
fn status_of(connection: &Connection, row: BdkRow) -> Result<BdkStatus, DukptError> {
    let next_device = lowest_free(connection, &row)?;
    let remaining = remaining(connection, &row)?;
    Ok(BdkStatus {
        destroyed: row.key_block.is_empty(),
        name: row.name,
        kind: row.kind,
        algorithm: row.algorithm,
        bdk_id: row.bdk_id,
        kcv: row.kcv,
        range: row.range,
        source: row.source,
        loaded_at: row.loaded_at,
        next_device,
        remaining,
    })
}

/// The header a BDK is sealed with: usage B0 for key derivation, never exportable, its
/// identifier in the BI block and its name in the LB block, both covered by the block's MAC.
fn sealing_header(name: &BdkName, bdk_id: BdkId, kind: KeyFamily) -> Header {
    let mut header = Header::new(
        Version::D,
        KeyUsage::BaseDerivationKey,
        Algorithm::for_family(kind),
        ModeOfUse::KeyDerivation,
        Exportability::NonExportable,
    );
    header.optional_blocks = vec![
        OptionalBlock::BaseDerivationKeyIdentifier(block_identifier(bdk_id)),
        OptionalBlock::Label(name.to_string()),
    ];
    header
}

fn block_identifier(bdk_id: BdkId) -> BaseDerivationKeyIdentifier {
    match bdk_id {
        BdkId::Tdes(bytes) => BaseDerivationKeyIdentifier::TdesKeySetIdentifier(bytes),
        BdkId::Aes(bytes) => BaseDerivationKeyIdentifier::AesKeyIdentifier(bytes),
    }
}

/// Refuses a BDK whose key, identifier and range are not of one kind, a TDES BDK that is not
/// double-length (ANSI X9.24-1 derives from double-length BDKs only) or whose parts repeat,
/// and a ceremony's BDK without its custodians.
fn check_new_bdk(record: &NewBdk, key: &SecretKey) -> Result<KeyFamily, DukptError> {
    let algorithm = key.algorithm();
    let kind = algorithm.family();
    key.check_strength().map_err(|weak| {
        DukptError::Vault(VaultError::Refused(format!(
            "the BDK {}: {weak}",
            record.name
        )))
    })?;
    if record.source == BdkSource::Ceremony && record.ceremony.is_none() {
        return Err(DukptError::Vault(VaultError::Refused(format!(
            "the BDK {} comes from a ceremony, but its custodians are not named",
            record.name
        ))));
    }
    if kind == KeyFamily::Tdes && algorithm != KeyAlgorithm::Tdes2Key {
        return Err(DukptError::NotDoubleLength {
            name: record.name.clone(),
            algorithm,
        });
    }
    for (what, found) in [
        ("identifier", record.bdk_id.family()),
        ("device range", record.range.family()),
    ] {
        if found != kind {
            return Err(DukptError::KindMismatch {
                name: record.name.clone(),
                key: kind,
                what,
                found,
            });
        }
    }
    Ok(kind)
}

/// Refuses to put `record` over `existing`: a loaded name without `replace`, another kind,
/// or another key while device ids are pending (their terminals would get other keys).
fn check_replacement(
    connection: &Connection,
    record: &NewBdk,
    existing: &BdkRow,
    kind: KeyFamily,
    kcv: Kcv,
) -> Result<(), DukptError> {
    if !existing.key_block.is_empty() && !record.replace {
        return Err(DukptError::AlreadyLoaded(record.name.clone()));
    }
    if existing.kind != kind {
        return Err(DukptError::KindChange {
            name: record.name.clone(),
            loaded: existing.kind,
            new: kind,
        });
    }
    let pending: i64 = connection.query_row(
        "SELECT count(*) FROM dukpt_allocation
          WHERE bdk_name = ?1 AND state IN ('reserved', 'sent')",
        [&record.name],
        |row| row.get(0),
    )?;
    if pending > 0 && existing.kcv != kcv {
        return Err(DukptError::PendingAllocations {
            name: record.name.clone(),
            pending: pending as u64,
        });
    }
    Ok(())
}

impl Vault {
    /// Seals `key` under the storage key as the BDK `record.name`, with its identifier and the
    /// range of device ids it assigns to this appliance, and records `bdk-loaded` in the audit
    /// chain (same transaction). `actor` is whoever loaded it (custodians when `None`).
    ///
    /// Refused: a name already loaded (unless `record.replace`), a TDES key that is not
    /// double-length, an identifier or range of another kind than the key, an identifier
    /// another BDK has, another kind under a known name, and another key under a name whose
    /// device ids are still pending. A name a tamper or zeroize destroyed may be loaded again
    /// without `replace`; its allocations stay, so none of its device ids is given twice.
    pub fn install_bdk(
        &mut self,
        record: &NewBdk,
        key: &SecretKey,
        actor: Option<&str>,
    ) -> Result<BdkStatus, DukptError> {
        let kind = check_new_bdk(record, key)?;
        let kcv = key.kcv();
        let storage_key = crate::live_key(&self.storage_key, &self.data_dir)?;
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let existing = read_bdk(&transaction, &record.name)?;
        if let Some(existing) = &existing {
            check_replacement(&transaction, record, existing, kind, kcv)?;
        }
        let holder: Option<BdkName> = transaction
            .query_row(
                "SELECT name FROM bdk WHERE bdk_id = ?1 AND name <> ?2",
                params![record.bdk_id, record.name],
                |row| row.get(0),
            )
            .optional()?;
        if let Some(by) = holder {
            return Err(DukptError::BdkIdInUse {
                bdk_id: record.bdk_id,
                by,
            });
        }
        let block = storage_key
            .protection()
            .wrap(&sealing_header(&record.name, record.bdk_id, kind), key)
            .map_err(|error| {
                VaultError::Refused(format!("sealing the BDK {}: {error}", record.name))
            })?;
        transaction.execute(
            "INSERT INTO bdk (name, kind, algorithm, bdk_id, kcv, first_device, last_device,
                              key_block, source, loaded_at, allocated_below)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?6)
             ON CONFLICT (name) DO UPDATE SET
                 algorithm = excluded.algorithm, bdk_id = excluded.bdk_id, kcv = excluded.kcv,
                 allocated_below = CASE WHEN excluded.first_device = bdk.first_device
                                        THEN bdk.allocated_below
                                        ELSE excluded.first_device END,
                 first_device = excluded.first_device, last_device = excluded.last_device,
                 key_block = excluded.key_block, source = excluded.source,
                 loaded_at = excluded.loaded_at",
            params![
                record.name,
                kind_name(kind),
                key.algorithm(),
                record.bdk_id,
                kcv,
                record.range.first(),
                record.range.last(),
                block,
                record.source.as_str(),
                now_text()
            ],
        )?;
        audit::append(
            &transaction,
            storage_key.audit_head(),
            &AuditEvent::BdkLoaded {
                bdk: record.name.clone(),
                kind,
                algorithm: key.algorithm(),
                bdk_id: record.bdk_id,
                kcv,
                range: record.range,
                source: record.source,
                replaced: existing.is_some(),
                custodians: record
                    .ceremony
                    .as_ref()
                    .map(|ceremony| ceremony.names_text()),
                operator: actor.map(str::to_owned),
            },
        )?;
        let status = status_of(&transaction, live_bdk(&transaction, &record.name)?)?;
        transaction.commit()?;
        Ok(status)
    }

    /// Every BDK on record (destroyed ones too), by name, with what is left of its range.
    pub fn bdks(&self) -> Result<Vec<BdkStatus>, DukptError> {
        let mut statement = self
            .connection
            .prepare(&format!("{SELECT_BDK} ORDER BY name"))?;
        let mut rows = statement.query([])?;
        let mut statuses = Vec::new();
        while let Some(row) = rows.next()? {
            statuses.push(status_of(&self.connection, bdk_from_sql(row)?)?);
        }
        Ok(statuses)
    }

    /// Unseals the BDK `name`. The block must open under the storage key, carry usage B0, the
    /// BDK's identifier and name, and match the recorded algorithm and check value.
    pub fn load_bdk(&self, name: &BdkName) -> Result<(BdkStatus, SecretKey), DukptError> {
        let storage_key = crate::live_key(&self.storage_key, &self.data_dir)?;
        let row = live_bdk(&self.connection, name)?;
        let unsealable = |reason: &str| DukptError::Unsealable {
            name: name.clone(),
            reason: reason.to_owned(),
        };
        let unwrapped = storage_key
            .protection()
            .unwrap(&row.key_block)
            .map_err(|error| unsealable(&error.to_string()))?;
        let expected = sealing_header(name, row.bdk_id, row.kind);
        let header = &unwrapped.header;
        if header.key_usage != expected.key_usage || header.mode_of_use != expected.mode_of_use {
            return Err(unsealable("it is not sealed as a base derivation key"));
        }
        for id in ["BI", "LB"] {
            if header.optional_block(id) != expected.optional_block(id) {
                return Err(unsealable(
                    "it is sealed for another BDK name or identifier",
                ));
            }
        }
        if unwrapped.key.algorithm() != row.algorithm || unwrapped.key.kcv() != row.kcv {
            return Err(unsealable(
                "its algorithm or check value differs from the recorded one",
            ));
        }
        Ok((status_of(&self.connection, row)?, unwrapped.key))
    }
}
