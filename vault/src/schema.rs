//! Versioned schema migrations, applied in order inside transactions; `PRAGMA user_version` records the version.

use rusqlite::{Connection, Transaction};

use crate::VaultError;
use crate::audit;
use crate::storage_key::StorageKey;

/// Migrations by version: entry `n` takes the schema from version `n` to `n + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: device identity, sealed secrets, batches and the master-key inventory.
    "CREATE TABLE device_identity (
         singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
         device_id TEXT NOT NULL,
         created_at TEXT NOT NULL
     ) STRICT;
     CREATE TABLE sealed_secret (
         name TEXT PRIMARY KEY CHECK (name IN ('KEK', 'TTK')),
         algorithm TEXT NOT NULL,
         kcv TEXT NOT NULL,
         key_block TEXT NOT NULL,
         component_count INTEGER NOT NULL CHECK (component_count BETWEEN 2 AND 9),
         loaded_at TEXT NOT NULL
     ) STRICT;
     CREATE TABLE batch (
         batch_id TEXT PRIMARY KEY,
         issuer TEXT NOT NULL,
         algorithm TEXT NOT NULL,
         record_count INTEGER NOT NULL CHECK (record_count > 0),
         kek_kcv TEXT NOT NULL,
         created_at TEXT NOT NULL,
         imported_at TEXT NOT NULL,
         file_name TEXT NOT NULL,
         file_sha256 TEXT NOT NULL
     ) STRICT;
     CREATE TABLE key_inventory (
         key_index INTEGER PRIMARY KEY CHECK (key_index BETWEEN 0 AND 99999999),
         batch_id TEXT NOT NULL REFERENCES batch (batch_id),
         source_line INTEGER NOT NULL,
         key_block TEXT NOT NULL,
         kcv TEXT NOT NULL,
         state TEXT NOT NULL DEFAULT 'available'
             CHECK (state IN ('available', 'reserved', 'sent', 'used', 'quarantined', 'void'))
     ) STRICT;",
    // 2: dispensing. A key is bound to one terminal when reserved and never to another;
    // the SMN registry records each confirmed injection and is never rewritten.
    "ALTER TABLE key_inventory ADD COLUMN hardware_serial TEXT;
     ALTER TABLE key_inventory ADD COLUMN port TEXT;
     ALTER TABLE key_inventory ADD COLUMN reserved_at TEXT;
     ALTER TABLE key_inventory ADD COLUMN failed_confirmations INTEGER NOT NULL DEFAULT 0;
     CREATE INDEX key_inventory_available ON key_inventory (key_index) WHERE state = 'available';
     CREATE UNIQUE INDEX key_inventory_one_pending_key_per_terminal
         ON key_inventory (hardware_serial) WHERE state IN ('reserved', 'sent');
     CREATE TRIGGER key_inventory_terminal_is_permanent
         BEFORE UPDATE OF hardware_serial ON key_inventory
         WHEN OLD.hardware_serial IS NOT NULL AND NEW.hardware_serial IS NOT OLD.hardware_serial
         BEGIN SELECT RAISE(ABORT, 'a key bound to a terminal is never bound to another'); END;
     CREATE TRIGGER key_inventory_no_return_to_available
         BEFORE UPDATE OF state ON key_inventory
         WHEN OLD.state <> 'available' AND NEW.state = 'available'
         BEGIN SELECT RAISE(ABORT, 'a dispensed key never becomes available again'); END;
     CREATE TABLE smn_registry (
         smn TEXT PRIMARY KEY,
         hardware_serial TEXT NOT NULL,
         key_index INTEGER NOT NULL UNIQUE REFERENCES key_inventory (key_index),
         kcv TEXT NOT NULL,
         batch_id TEXT NOT NULL,
         port TEXT NOT NULL,
         terminal_model TEXT NOT NULL,
         injected_at TEXT NOT NULL
     ) STRICT;
     CREATE TRIGGER smn_registry_never_rewritten BEFORE UPDATE ON smn_registry
         BEGIN SELECT RAISE(ABORT, 'SMN rows are never rewritten'); END;
     CREATE TRIGGER smn_registry_never_deleted BEFORE DELETE ON smn_registry
         BEGIN SELECT RAISE(ABORT, 'SMN rows are never deleted'); END;",
    // 3: the audit chain with its MACed head, and the record of SMN exports. Neither the
    // chain nor the export record is ever rewritten; the head only moves forward (audit.rs).
    "CREATE TABLE audit_log (
         sequence INTEGER PRIMARY KEY CHECK (sequence >= 1),
         at TEXT NOT NULL,
         event TEXT NOT NULL,
         actor TEXT NOT NULL,
         details TEXT NOT NULL,
         previous_hash TEXT NOT NULL,
         hash TEXT NOT NULL
     ) STRICT;
     CREATE TRIGGER audit_log_never_rewritten BEFORE UPDATE ON audit_log
         BEGIN SELECT RAISE(ABORT, 'audit rows are never rewritten'); END;
     CREATE TRIGGER audit_log_never_deleted BEFORE DELETE ON audit_log
         BEGIN SELECT RAISE(ABORT, 'audit rows are never deleted'); END;
     CREATE TABLE audit_head (
         singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
         last_sequence INTEGER NOT NULL CHECK (last_sequence >= 0),
         last_hash TEXT NOT NULL,
         mac TEXT NOT NULL
     ) STRICT;
     CREATE TRIGGER audit_head_never_deleted BEFORE DELETE ON audit_head
         BEGIN SELECT RAISE(ABORT, 'the audit head is never deleted'); END;
     CREATE TRIGGER audit_head_only_moves_forward BEFORE UPDATE ON audit_head
         WHEN NEW.last_sequence <> OLD.last_sequence + 1
         BEGIN SELECT RAISE(ABORT, 'the audit head moves forward one row at a time'); END;
     CREATE TABLE smn_export (
         smn TEXT NOT NULL REFERENCES smn_registry (smn),
         exported_at TEXT NOT NULL,
         file TEXT NOT NULL
     ) STRICT;
     CREATE INDEX smn_export_by_smn ON smn_export (smn);
     CREATE TRIGGER smn_export_never_rewritten BEFORE UPDATE ON smn_export
         BEGIN SELECT RAISE(ABORT, 'SMN export records are never rewritten'); END;
     CREATE TRIGGER smn_export_never_deleted BEFORE DELETE ON smn_export
         BEGIN SELECT RAISE(ABORT, 'SMN export records are never deleted'); END;",
    // 4: the KDH identity for certificate mode (one row): the sealed key pair, its request,
    // and the certificate once installed.
    "CREATE TABLE kdh_identity (
         id INTEGER PRIMARY KEY CHECK (id = 1),
         sealed_private_key TEXT NOT NULL,
         subject TEXT NOT NULL,
         bits INTEGER NOT NULL,
         certificate_request BLOB NOT NULL,
         requested_at TEXT NOT NULL,
         certificate BLOB,
         installed_at TEXT
     ) STRICT;",
    // 5: operators. A key remembers the operator whose session it was reserved under (set
    // with the reservation, never changed); each SMN row names the operator of its
    // injection. NULL where no operator was logged in (operator login not required, or rows
    // older than this version). The SMN registry's triggers keep covering the new column.
    "ALTER TABLE key_inventory ADD COLUMN operator TEXT;
     ALTER TABLE smn_registry ADD COLUMN operator TEXT;
     CREATE TRIGGER key_inventory_operator_is_permanent
         BEFORE UPDATE OF operator ON key_inventory
         WHEN OLD.operator IS NOT NULL AND NEW.operator IS NOT OLD.operator
         BEGIN SELECT RAISE(ABORT, 'the operator of a reservation is never changed'); END;",
    // 6: DUKPT. Base derivation keys sealed under the storage key (usage B0), each with the
    // range of device ids it assigns to this appliance; an allocation binds one device id of
    // one BDK to one terminal for good, with the initial key's facts; the registry records
    // each confirmed injection and is never rewritten. A BDK row stays (its key block is
    // blanked by a tamper or a zeroize) so that no device id of it is ever allocated twice.
    "CREATE TABLE bdk (
         name TEXT PRIMARY KEY
             CHECK (length(name) BETWEEN 1 AND 16 AND name NOT GLOB '*[^A-Z0-9_-]*'),
         kind TEXT NOT NULL CHECK (kind IN ('tdes', 'aes')),
         algorithm TEXT NOT NULL,
         bdk_id TEXT NOT NULL UNIQUE
             CHECK (length(bdk_id) = CASE kind WHEN 'tdes' THEN 10 ELSE 8 END),
         kcv TEXT NOT NULL,
         first_device INTEGER NOT NULL CHECK (first_device >= 0),
         last_device INTEGER NOT NULL CHECK (last_device >= first_device
             AND last_device <= CASE kind WHEN 'tdes' THEN 524287 ELSE 4294967295 END),
         key_block TEXT NOT NULL,
         source TEXT NOT NULL CHECK (source IN ('ceremony', 'file')),
         loaded_at TEXT NOT NULL,
         -- Where the search for a free device id starts: every id from first_device up to
         -- here is allocated. A hint that keeps allocation fast; the primary key of
         -- dukpt_allocation, not this, is what keeps an id from being given twice.
         allocated_below INTEGER NOT NULL
     ) STRICT;
     CREATE TRIGGER bdk_never_deleted BEFORE DELETE ON bdk
         BEGIN SELECT RAISE(ABORT, 'a BDK row is never deleted; its allocations name it'); END;
     CREATE TRIGGER bdk_kind_is_permanent BEFORE UPDATE OF kind ON bdk
         WHEN NEW.kind IS NOT OLD.kind
         BEGIN SELECT RAISE(ABORT, 'a BDK name keeps its kind'); END;
     CREATE TABLE dukpt_allocation (
         bdk_name TEXT NOT NULL REFERENCES bdk (name),
         device_id INTEGER NOT NULL CHECK (device_id BETWEEN 0 AND 4294967295),
         hardware_serial TEXT NOT NULL,
         state TEXT NOT NULL DEFAULT 'reserved'
             CHECK (state IN ('reserved', 'sent', 'used', 'void', 'quarantined')),
         initial_ksn TEXT NOT NULL UNIQUE,
         key_type TEXT NOT NULL,
         kcv TEXT NOT NULL,
         port TEXT NOT NULL,
         operator TEXT,
         reserved_at TEXT NOT NULL,
         failed_confirmations INTEGER NOT NULL DEFAULT 0 CHECK (failed_confirmations >= 0),
         PRIMARY KEY (bdk_name, device_id)
     ) STRICT;
     CREATE UNIQUE INDEX dukpt_allocation_one_pending_per_terminal
         ON dukpt_allocation (bdk_name, hardware_serial) WHERE state IN ('reserved', 'sent');
     CREATE TRIGGER dukpt_allocation_within_range BEFORE INSERT ON dukpt_allocation
         WHEN NOT EXISTS (SELECT 1 FROM bdk WHERE name = NEW.bdk_name
                            AND NEW.device_id BETWEEN first_device AND last_device)
         BEGIN SELECT RAISE(ABORT, 'a device id outside its BDK''s range is never allocated'); END;
     CREATE TRIGGER dukpt_allocation_starts_reserved BEFORE INSERT ON dukpt_allocation
         WHEN NEW.state IS NOT 'reserved' OR NEW.failed_confirmations IS NOT 0
         BEGIN SELECT RAISE(ABORT, 'an allocation starts reserved'); END;
     CREATE TRIGGER dukpt_allocation_device_is_permanent
         BEFORE UPDATE OF bdk_name, device_id ON dukpt_allocation
         WHEN NEW.bdk_name IS NOT OLD.bdk_name OR NEW.device_id IS NOT OLD.device_id
         BEGIN SELECT RAISE(ABORT, 'an allocation''s BDK and device id never change'); END;
     CREATE TRIGGER dukpt_allocation_terminal_is_permanent
         BEFORE UPDATE OF hardware_serial ON dukpt_allocation
         WHEN NEW.hardware_serial IS NOT OLD.hardware_serial
         BEGIN SELECT RAISE(ABORT, 'a device id bound to a terminal is never bound to another'); END;
     CREATE TRIGGER dukpt_allocation_initial_key_is_permanent
         BEFORE UPDATE OF initial_ksn, key_type, kcv, port, operator, reserved_at ON dukpt_allocation
         WHEN NEW.initial_ksn IS NOT OLD.initial_ksn OR NEW.key_type IS NOT OLD.key_type
           OR NEW.kcv IS NOT OLD.kcv OR NEW.port IS NOT OLD.port
           OR NEW.operator IS NOT OLD.operator OR NEW.reserved_at IS NOT OLD.reserved_at
         BEGIN SELECT RAISE(ABORT, 'an allocation''s initial key and reservation never change'); END;
     CREATE TRIGGER dukpt_allocation_state_never_goes_back
         BEFORE UPDATE OF state ON dukpt_allocation
         WHEN NEW.state IS NOT OLD.state
          AND (OLD.state IN ('used', 'void', 'quarantined') OR NEW.state = 'reserved')
         BEGIN SELECT RAISE(ABORT, 'an allocation''s state never goes back'); END;
     CREATE TRIGGER dukpt_allocation_failures_are_kept
         BEFORE UPDATE OF failed_confirmations ON dukpt_allocation
         WHEN NEW.failed_confirmations < OLD.failed_confirmations
         BEGIN SELECT RAISE(ABORT, 'failed confirmations are never forgotten'); END;
     CREATE TRIGGER dukpt_allocation_never_deleted BEFORE DELETE ON dukpt_allocation
         BEGIN SELECT RAISE(ABORT, 'allocations are never deleted'); END;
     CREATE TABLE dukpt_registry (
         hardware_serial TEXT NOT NULL,
         bdk_name TEXT NOT NULL,
         bdk_id TEXT NOT NULL,
         device_id INTEGER NOT NULL,
         initial_ksn TEXT NOT NULL UNIQUE,
         key_type TEXT NOT NULL,
         kcv TEXT NOT NULL,
         port TEXT NOT NULL,
         terminal_model TEXT NOT NULL,
         operator TEXT,
         injected_at TEXT NOT NULL,
         UNIQUE (bdk_name, device_id),
         FOREIGN KEY (bdk_name, device_id) REFERENCES dukpt_allocation (bdk_name, device_id)
     ) STRICT;
     CREATE TRIGGER dukpt_registry_records_a_confirmed_allocation BEFORE INSERT ON dukpt_registry
         WHEN NOT EXISTS (SELECT 1 FROM dukpt_allocation
                           WHERE bdk_name = NEW.bdk_name AND device_id = NEW.device_id
                             AND hardware_serial = NEW.hardware_serial AND state = 'used'
                             AND initial_ksn = NEW.initial_ksn AND key_type = NEW.key_type
                             AND kcv = NEW.kcv)
         BEGIN SELECT RAISE(ABORT, 'a DUKPT registry row records a confirmed allocation of its terminal'); END;
     CREATE TRIGGER dukpt_registry_never_rewritten BEFORE UPDATE ON dukpt_registry
         BEGIN SELECT RAISE(ABORT, 'DUKPT registry rows are never rewritten'); END;
     CREATE TRIGGER dukpt_registry_never_deleted BEFORE DELETE ON dukpt_registry
         BEGIN SELECT RAISE(ABORT, 'DUKPT registry rows are never deleted'); END;",
    // 7: the record of DUKPT exports (dukpt/export.rs): which registry rows, by their initial
    // KSN or key ID, went into which file, so that an only-new export leaves them out. Never
    // rewritten, like the record of SMN exports.
    "CREATE TABLE dukpt_export (
         initial_ksn TEXT NOT NULL REFERENCES dukpt_registry (initial_ksn),
         exported_at TEXT NOT NULL,
         file TEXT NOT NULL
     ) STRICT;
     CREATE INDEX dukpt_export_by_initial_ksn ON dukpt_export (initial_ksn);
     CREATE TRIGGER dukpt_export_never_rewritten BEFORE UPDATE ON dukpt_export
         BEGIN SELECT RAISE(ABORT, 'DUKPT export records are never rewritten'); END;
     CREATE TRIGGER dukpt_export_never_deleted BEFORE DELETE ON dukpt_export
         BEGIN SELECT RAISE(ABORT, 'DUKPT export records are never deleted'); END;",
    // Expected-device lists (expected/): the serials an injection run may serve (PCI PIN
    // 30-3), each list with the registries' and the refusals' highest rowids when it opened
    // and when it closed (its window, free of the clock); the serials refused because no
    // open list held them. A list is never changed but closed once; no serial is on two open
    // lists; nothing here is rewritten or deleted.
    "CREATE TABLE expected_list (
         name TEXT PRIMARY KEY
             CHECK (length(name) BETWEEN 1 AND 32 AND name NOT GLOB '*[^A-Za-z0-9._-]*'),
         devices INTEGER NOT NULL CHECK (devices >= 1),
         sealed INTEGER NOT NULL CHECK (sealed IN (0, 1)),
         file TEXT NOT NULL,
         file_sha256 TEXT NOT NULL,
         imported_at TEXT NOT NULL,
         imported_by TEXT,
         smn_from INTEGER NOT NULL,
         dukpt_from INTEGER NOT NULL,
         refusal_from INTEGER NOT NULL,
         closed_at TEXT,
         closed_by TEXT,
         smn_to INTEGER,
         dukpt_to INTEGER,
         refusal_to INTEGER,
         CHECK ((closed_at IS NULL) = (smn_to IS NULL)
            AND (closed_at IS NULL) = (dukpt_to IS NULL)
            AND (closed_at IS NULL) = (refusal_to IS NULL))
     ) STRICT;
     CREATE TRIGGER expected_list_never_deleted BEFORE DELETE ON expected_list
         BEGIN SELECT RAISE(ABORT, 'expected-device lists are never deleted'); END;
     CREATE TRIGGER expected_list_only_closes_once BEFORE UPDATE ON expected_list
         WHEN OLD.closed_at IS NOT NULL OR NEW.closed_at IS NULL
           OR NEW.name IS NOT OLD.name OR NEW.devices IS NOT OLD.devices
           OR NEW.sealed IS NOT OLD.sealed OR NEW.file IS NOT OLD.file
           OR NEW.file_sha256 IS NOT OLD.file_sha256 OR NEW.imported_at IS NOT OLD.imported_at
           OR NEW.imported_by IS NOT OLD.imported_by OR NEW.smn_from IS NOT OLD.smn_from
           OR NEW.dukpt_from IS NOT OLD.dukpt_from OR NEW.refusal_from IS NOT OLD.refusal_from
         BEGIN SELECT RAISE(ABORT, 'an expected-device list is never changed, only closed once'); END;
     CREATE TABLE expected_device (
         list TEXT NOT NULL REFERENCES expected_list (name),
         hardware_serial TEXT NOT NULL CHECK (length(hardware_serial) BETWEEN 1 AND 24
             AND hardware_serial NOT GLOB '*[^A-Z0-9]*'),
         terminal_model TEXT,
         line INTEGER NOT NULL CHECK (line >= 1),
         PRIMARY KEY (list, hardware_serial)
     ) STRICT, WITHOUT ROWID;
     CREATE INDEX expected_device_by_serial ON expected_device (hardware_serial);
     CREATE TRIGGER expected_device_on_one_open_list BEFORE INSERT ON expected_device
         WHEN EXISTS (SELECT 1 FROM expected_device d JOIN expected_list l ON l.name = d.list
                       WHERE d.hardware_serial = NEW.hardware_serial AND d.list IS NOT NEW.list
                         AND l.closed_at IS NULL)
         BEGIN SELECT RAISE(ABORT, 'a serial is on at most one open expected-device list'); END;
     CREATE TRIGGER expected_device_never_rewritten BEFORE UPDATE ON expected_device
         BEGIN SELECT RAISE(ABORT, 'expected devices are never rewritten'); END;
     CREATE TRIGGER expected_device_never_deleted BEFORE DELETE ON expected_device
         BEGIN SELECT RAISE(ABORT, 'expected devices are never deleted'); END;
     CREATE TABLE expected_refusal (
         hardware_serial TEXT NOT NULL,
         port TEXT NOT NULL,
         mode TEXT NOT NULL,
         refused_at TEXT NOT NULL
     ) STRICT;
     CREATE TRIGGER expected_refusal_never_rewritten BEFORE UPDATE ON expected_refusal
         BEGIN SELECT RAISE(ABORT, 'refused devices are never rewritten'); END;
     CREATE TRIGGER expected_refusal_never_deleted BEFORE DELETE ON expected_refusal
         BEGIN SELECT RAISE(ABORT, 'refused devices are never deleted'); END;",
    // batch withdrawal (withdrawal.rs): an operator takes the available keys of a batch out
    // of service for good. They become 'void' and are marked withdrawn (so they are counted
    // apart from keys voided one by one); keys reserved or sent finish normally. Nothing but
    // its withdrawal takes a key of a withdrawn batch out of 'available', a withdrawn key never
    // changes state again, no key joins a withdrawn batch (since version 16 guarded by the
    // staging, below), and the record is never rewritten.
    "CREATE TABLE batch_withdrawal (
         batch_id TEXT PRIMARY KEY REFERENCES batch (batch_id),
         withdrawn_at TEXT NOT NULL,
         keys INTEGER NOT NULL CHECK (keys > 0),
         reason TEXT NOT NULL CHECK (length(trim(reason)) > 0),
         operator TEXT NOT NULL CHECK (length(trim(operator)) > 0)
     ) STRICT;
     CREATE TRIGGER batch_withdrawal_never_rewritten BEFORE UPDATE ON batch_withdrawal
         BEGIN SELECT RAISE(ABORT, 'a batch withdrawal is never rewritten'); END;
     CREATE TRIGGER batch_withdrawal_never_deleted BEFORE DELETE ON batch_withdrawal
         BEGIN SELECT RAISE(ABORT, 'a batch withdrawal is never deleted'); END;
     ALTER TABLE key_inventory ADD COLUMN withdrawn INTEGER NOT NULL DEFAULT 0
         CHECK (withdrawn IN (0, 1));
     CREATE TRIGGER key_inventory_withdrawal_is_permanent
         BEFORE UPDATE OF withdrawn ON key_inventory
         WHEN OLD.withdrawn = 1 AND NEW.withdrawn IS NOT 1
         BEGIN SELECT RAISE(ABORT, 'a withdrawn key stays withdrawn'); END;
     CREATE TRIGGER key_inventory_withdrawn_only_from_available
         BEFORE UPDATE OF withdrawn ON key_inventory
         WHEN NEW.withdrawn = 1 AND OLD.withdrawn = 0
          AND (OLD.state <> 'available' OR NEW.state <> 'void'
               OR NOT EXISTS (SELECT 1 FROM batch_withdrawal WHERE batch_id = OLD.batch_id))
         BEGIN SELECT RAISE(ABORT, 'only an available key of a withdrawn batch is withdrawn, and it becomes void'); END;
     CREATE TRIGGER key_inventory_withdrawn_batch_dispenses_nothing
         BEFORE UPDATE OF state ON key_inventory
         WHEN OLD.state = 'available' AND NEW.state <> 'available' AND NEW.withdrawn = 0
          AND EXISTS (SELECT 1 FROM batch_withdrawal WHERE batch_id = OLD.batch_id)
         BEGIN SELECT RAISE(ABORT, 'a key of a withdrawn batch is never dispensed'); END;
     CREATE TRIGGER key_inventory_withdrawn_key_never_changes_state
         BEFORE UPDATE OF state ON key_inventory
         WHEN OLD.withdrawn = 1 AND NEW.state IS NOT OLD.state
         BEGIN SELECT RAISE(ABORT, 'a withdrawn key never changes state'); END;
     CREATE TRIGGER key_inventory_no_key_joins_a_withdrawn_batch
         BEFORE INSERT ON key_inventory
         WHEN NEW.withdrawn <> 0
           OR EXISTS (SELECT 1 FROM batch_withdrawal WHERE batch_id = NEW.batch_id)
         BEGIN SELECT RAISE(ABORT, 'no key joins a withdrawn batch'); END;",
    // Re-injection control (reinjection.rs): a terminal that holds a confirmed key of a slot
    // (`master`, or a BDK's name) gets another only under an operator's grant for that
    // serial and slot, which admits one reservation. A grant is open, then used or revoked,
    // never reopened or deleted. The key or allocation it admitted names it for good; the
    // registry row of that key names the row it replaces (same terminal, same slot), and a
    // row is replaced at most once.
    "CREATE TABLE reinjection_grant (
         id INTEGER PRIMARY KEY,
         hardware_serial TEXT NOT NULL,
         slot TEXT NOT NULL,
         reason TEXT NOT NULL CHECK (length(reason) BETWEEN 1 AND 1024),
         granted_by TEXT NOT NULL,
         granted_at TEXT NOT NULL,
         state TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'used', 'revoked')),
         closed_at TEXT,
         closed_by TEXT,
         closing TEXT
     ) STRICT;
     CREATE UNIQUE INDEX reinjection_grant_one_open
         ON reinjection_grant (hardware_serial, slot) WHERE state = 'open';
     CREATE TRIGGER reinjection_grant_starts_open BEFORE INSERT ON reinjection_grant
         WHEN NEW.state IS NOT 'open' OR NEW.closed_at IS NOT NULL
         BEGIN SELECT RAISE(ABORT, 'a re-injection grant starts open'); END;
     CREATE TRIGGER reinjection_grant_closes_once BEFORE UPDATE ON reinjection_grant
         WHEN OLD.state IS NOT 'open' OR NEW.state NOT IN ('used', 'revoked')
           OR NEW.hardware_serial IS NOT OLD.hardware_serial OR NEW.slot IS NOT OLD.slot
           OR NEW.reason IS NOT OLD.reason OR NEW.granted_by IS NOT OLD.granted_by
           OR NEW.granted_at IS NOT OLD.granted_at OR NEW.id IS NOT OLD.id
         BEGIN SELECT RAISE(ABORT, 'a re-injection grant is only ever closed, once'); END;
     CREATE TRIGGER reinjection_grant_never_deleted BEFORE DELETE ON reinjection_grant
         BEGIN SELECT RAISE(ABORT, 're-injection grants are never deleted'); END;
     CREATE INDEX key_inventory_by_terminal ON key_inventory (hardware_serial)
         WHERE hardware_serial IS NOT NULL;
     CREATE INDEX smn_registry_by_terminal ON smn_registry (hardware_serial);
     CREATE INDEX dukpt_allocation_by_terminal ON dukpt_allocation (bdk_name, hardware_serial);
     CREATE INDEX dukpt_registry_by_terminal ON dukpt_registry (bdk_name, hardware_serial);
     ALTER TABLE key_inventory ADD COLUMN reinjection_grant INTEGER;
     CREATE UNIQUE INDEX key_inventory_one_key_per_grant
         ON key_inventory (reinjection_grant) WHERE reinjection_grant IS NOT NULL;
     CREATE TRIGGER key_inventory_grant_is_permanent
         BEFORE UPDATE OF reinjection_grant ON key_inventory
         WHEN OLD.reinjection_grant IS NOT NULL
          AND NEW.reinjection_grant IS NOT OLD.reinjection_grant
         BEGIN SELECT RAISE(ABORT, 'the grant a key was reserved under never changes'); END;
     CREATE TRIGGER key_inventory_reinjection_needs_a_grant
         BEFORE UPDATE OF state ON key_inventory
         WHEN OLD.state = 'available' AND NEW.state = 'reserved'
          AND EXISTS (SELECT 1 FROM key_inventory AS held
                       WHERE held.hardware_serial = NEW.hardware_serial AND held.state = 'used')
          AND NOT EXISTS (SELECT 1 FROM reinjection_grant AS g
                           WHERE g.id = NEW.reinjection_grant
                             AND g.hardware_serial = NEW.hardware_serial AND g.slot = 'master')
         BEGIN SELECT RAISE(ABORT, 'a terminal holding a confirmed master key gets another only under a re-injection grant'); END;
     ALTER TABLE dukpt_allocation ADD COLUMN reinjection_grant INTEGER;
     CREATE UNIQUE INDEX dukpt_allocation_one_per_grant
         ON dukpt_allocation (reinjection_grant) WHERE reinjection_grant IS NOT NULL;
     CREATE TRIGGER dukpt_allocation_grant_is_permanent
         BEFORE UPDATE OF reinjection_grant ON dukpt_allocation
         WHEN NEW.reinjection_grant IS NOT OLD.reinjection_grant
         BEGIN SELECT RAISE(ABORT, 'the grant an allocation was reserved under never changes'); END;
     CREATE TRIGGER dukpt_allocation_reinjection_needs_a_grant
         BEFORE INSERT ON dukpt_allocation
         WHEN EXISTS (SELECT 1 FROM dukpt_allocation AS held
                       WHERE held.bdk_name = NEW.bdk_name
                         AND held.hardware_serial = NEW.hardware_serial AND held.state = 'used')
          AND NOT EXISTS (SELECT 1 FROM reinjection_grant AS g
                           WHERE g.id = NEW.reinjection_grant
                             AND g.hardware_serial = NEW.hardware_serial
                             AND g.slot = NEW.bdk_name)
         BEGIN SELECT RAISE(ABORT, 'a terminal holding a confirmed initial key of a BDK gets another only under a re-injection grant'); END;
     ALTER TABLE smn_registry ADD COLUMN replaces TEXT;
     CREATE UNIQUE INDEX smn_registry_replaced_once
         ON smn_registry (replaces) WHERE replaces IS NOT NULL;
     CREATE TRIGGER smn_registry_replaces_its_terminals_row BEFORE INSERT ON smn_registry
         WHEN NEW.replaces IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM smn_registry AS earlier
                           WHERE earlier.smn = NEW.replaces
                             AND earlier.hardware_serial = NEW.hardware_serial)
         BEGIN SELECT RAISE(ABORT, 'an SMN row replaces only an earlier row of its terminal'); END;
     ALTER TABLE dukpt_registry ADD COLUMN replaces TEXT;
     CREATE UNIQUE INDEX dukpt_registry_replaced_once
         ON dukpt_registry (replaces) WHERE replaces IS NOT NULL;
     CREATE TRIGGER dukpt_registry_replaces_its_terminals_row BEFORE INSERT ON dukpt_registry
         WHEN NEW.replaces IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM dukpt_registry AS earlier
                           WHERE earlier.initial_ksn = NEW.replaces
                             AND earlier.hardware_serial = NEW.hardware_serial
                             AND earlier.bdk_name = NEW.bdk_name)
         BEGIN SELECT RAISE(ABORT, 'a DUKPT registry row replaces only an earlier row of its terminal and BDK'); END;",
    // The zeroize lifecycle (zeroized.rs, recommission.rs). `final_export`: the SMN and DUKPT
    // exports a zeroize seals under the KEK just before destroying it, so that a zeroized
    // vault still delivers its registries sealed. `predecessor`: the zeroized vault a
    // recommissioned one succeeds, archived beside it, with the head of its audit chain, so
    // that the two chains link. Neither is ever rewritten or deleted.
    "CREATE TABLE final_export (
         registry TEXT NOT NULL CHECK (registry IN ('smn', 'dukpt')),
         only_new INTEGER NOT NULL CHECK (only_new IN (0, 1)),
         rows INTEGER NOT NULL CHECK (rows >= 0),
         exported_at TEXT NOT NULL,
         file_sha256 TEXT NOT NULL CHECK (length(file_sha256) = 64),
         content BLOB NOT NULL,
         audit_sequence INTEGER NOT NULL,
         PRIMARY KEY (registry, only_new)
     ) STRICT;
     CREATE TRIGGER final_export_never_rewritten BEFORE UPDATE ON final_export
         BEGIN SELECT RAISE(ABORT, 'final exports are never rewritten'); END;
     CREATE TRIGGER final_export_never_deleted BEFORE DELETE ON final_export
         BEGIN SELECT RAISE(ABORT, 'final exports are never deleted'); END;
     CREATE TABLE predecessor (
         archive TEXT PRIMARY KEY,
         archive_sha256 TEXT NOT NULL CHECK (length(archive_sha256) = 64),
         device_id TEXT NOT NULL,
         last_sequence INTEGER NOT NULL CHECK (last_sequence >= 0),
         last_hash TEXT NOT NULL CHECK (length(last_hash) = 64),
         audit_sequence INTEGER NOT NULL,
         recommissioned_at TEXT NOT NULL
     ) STRICT;
     CREATE TRIGGER predecessor_never_rewritten BEFORE UPDATE ON predecessor
         BEGIN SELECT RAISE(ABORT, 'a predecessor record is never rewritten'); END;
     CREATE TRIGGER predecessor_never_deleted BEFORE DELETE ON predecessor
         BEGIN SELECT RAISE(ABORT, 'a predecessor record is never deleted'); END;",
    // Pending injections (pending.rs, report.rs): a master key records the model of the
    // terminal it was reserved for (from its HELLO), set with the reservation and never
    // changed; NULL for keys reserved before this version. An index finds the keys reserved
    // or sent and not confirmed.
    "ALTER TABLE key_inventory ADD COLUMN terminal_model TEXT;
     CREATE TRIGGER key_inventory_terminal_model_is_permanent
         BEFORE UPDATE OF terminal_model ON key_inventory
         WHEN OLD.terminal_model IS NOT NULL AND NEW.terminal_model IS NOT OLD.terminal_model
         BEGIN SELECT RAISE(ABORT, 'the terminal model of a reservation is never changed'); END;
     CREATE INDEX key_inventory_pending ON key_inventory (reserved_at)
         WHERE state IN ('reserved', 'sent');",
    // The audit chain's last verified point (audit/checkpoint.rs): the sequence and hash of
    // the last row of a whole-chain walk that passed, MACed under the audit head's key with
    // its own label. One row; it only moves forward and is never deleted. The index finds
    // the last row of an event (tamper, software, config-change, integrity...) without
    // reading the whole chain at every start.
    "CREATE TABLE audit_checkpoint (
         singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
         sequence INTEGER NOT NULL CHECK (sequence >= 1),
         hash TEXT NOT NULL CHECK (length(hash) = 64),
         mac TEXT NOT NULL,
         verified_at TEXT NOT NULL
     ) STRICT;
     CREATE TRIGGER audit_checkpoint_never_deleted BEFORE DELETE ON audit_checkpoint
         BEGIN SELECT RAISE(ABORT, 'the audit checkpoint is never deleted'); END;
     CREATE TRIGGER audit_checkpoint_only_moves_forward BEFORE UPDATE ON audit_checkpoint
         WHEN NEW.sequence < OLD.sequence
           OR (NEW.sequence = OLD.sequence AND NEW.hash IS NOT OLD.hash)
         BEGIN SELECT RAISE(ABORT, 'the audit checkpoint only moves forward'); END;
     CREATE INDEX audit_log_by_event ON audit_log (event);",
    // The inventory's state CHECK in the same meaning without an IN list (Rust code, below).
    STATE_CHECK_MIGRATION,
    // Staged imports (import.rs, staging.rs): a batch whose keys are still arriving has a
    // `batch_staging` row, written with its batch row and deleted in the one small
    // transaction that makes the batch whole (its seal verified). Until then none of its keys
    // leaves 'available' (the database itself refuses to dispense, void or withdraw one), and
    // only such a batch, and its keys, are ever deleted: a refused, cancelled or interrupted
    // import removes them (deleting the batch row deletes its staging row). `staged` counts
    // its keys, kept in the transactions that write or delete them, so that the count of
    // available keys leaves them out without reading them.
    "CREATE TABLE batch_staging (
         batch_id TEXT PRIMARY KEY REFERENCES batch (batch_id) ON DELETE CASCADE,
         started_at TEXT NOT NULL,
         staged INTEGER NOT NULL DEFAULT 0 CHECK (staged >= 0)
     ) STRICT;
     CREATE TRIGGER key_inventory_staged_batch_dispenses_nothing
         BEFORE UPDATE OF state ON key_inventory
         WHEN OLD.state = 'available' AND NEW.state <> 'available'
          AND EXISTS (SELECT 1 FROM batch_staging WHERE batch_id = OLD.batch_id)
         BEGIN SELECT RAISE(ABORT, 'a key of a batch still being imported is never dispensed'); END;
     CREATE TRIGGER batch_withdrawal_not_of_a_staged_batch BEFORE INSERT ON batch_withdrawal
         WHEN EXISTS (SELECT 1 FROM batch_staging WHERE batch_id = NEW.batch_id)
         BEGIN SELECT RAISE(ABORT, 'a batch still being imported cannot be withdrawn'); END;
     CREATE TRIGGER key_inventory_only_staged_keys_deleted BEFORE DELETE ON key_inventory
         WHEN NOT EXISTS (SELECT 1 FROM batch_staging WHERE batch_id = OLD.batch_id)
         BEGIN SELECT RAISE(ABORT, 'only a key of a batch still being imported is ever deleted'); END;
     CREATE TRIGGER batch_only_staged_deleted BEFORE DELETE ON batch
         WHEN NOT EXISTS (SELECT 1 FROM batch_staging WHERE batch_id = OLD.batch_id)
         BEGIN SELECT RAISE(ABORT, 'only a batch still being imported is ever deleted'); END;",
    // Keys join only a batch still being imported, and such a batch cannot be withdrawn
    // (above): the insert trigger that kept keys out of a withdrawn batch ran for every key
    // imported (7,400 instructions a row, a quarter of the import's database work) to guard
    // what the staging already guards. The importer checks each chunk that its batch still
    // stages; a key of a withdrawn batch is still never dispensed (its own trigger).
    "DROP TRIGGER IF EXISTS key_inventory_no_key_joins_a_withdrawn_batch;",
];

/// The SQL of the migration that rewrites key_inventory's state CHECK: nothing, the work is
/// [`rewrite_state_check`]'s, run after it by [`after_sql`].
const STATE_CHECK_MIGRATION: &str =
    "-- key_inventory's state CHECK, rewritten without an IN list (schema.rs rewrite_state_check)";

/// The version [`STATE_CHECK_MIGRATION`] brings the schema to (a unit test checks the entry).
const STATE_CHECK_VERSION: i64 = 14;

/// key_inventory's state CHECK as migration 1 wrote it. For an IN list of more than two
/// values SQLite builds a temporary b-tree of the list for every row it checks: about a
/// third of the cost of inserting a key.
const STATE_CHECK_IN_LIST: &str =
    "CHECK (state IN ('available', 'reserved', 'sent', 'used', 'quarantined', 'void'))";

/// The same constraint as comparisons, which SQLite evaluates in place. `state` is a
/// NOT NULL TEXT column of a STRICT table, so every row satisfies both or neither.
const STATE_CHECK_COMPARISONS: &str = "CHECK (state = 'available' OR state = 'reserved' \
     OR state = 'sent' OR state = 'used' OR state = 'quarantined' OR state = 'void')";

/// The version that introduced the audit chain: its migration also starts the chain.
pub(crate) const AUDIT_VERSION: i64 = 3;

/// The schema version this build writes.
pub(crate) const LATEST_VERSION: i64 = MIGRATIONS.len() as i64;

/// The schema version of an open database.
pub(crate) fn version(connection: &Connection) -> Result<i64, VaultError> {
    Ok(connection.query_row("PRAGMA user_version", [], |row| row.get(0))?)
}

/// Brings the database up to [`LATEST_VERSION`], refusing one written by a newer build. The
/// audit migration starts the chain with a head MACed under the storage key and, for a vault
/// that already existed, a first row saying so. A zeroized vault has no storage key: it is
/// brought up to date only past the audit migration (`storage_key` `None`).
pub(crate) fn migrate(
    connection: &mut Connection,
    storage_key: Option<&StorageKey>,
) -> Result<(), VaultError> {
    let current = version(connection)?;
    if current > LATEST_VERSION {
        return Err(VaultError::SchemaTooNew {
            found: current,
            supported: LATEST_VERSION,
        });
    }
    for (version, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let reached = version as i64 + 1;
        let transaction = connection.transaction()?;
        transaction.execute_batch(sql)?;
        after_sql(reached, current, &transaction, storage_key)?;
        transaction.pragma_update(None, "user_version", reached)?;
        transaction.commit()?;
    }
    Ok(())
}

/// The work of a migration that its SQL cannot do, run in its transaction after the SQL:
/// the audit chain's start ([`AUDIT_VERSION`]) and the state CHECK's rewrite
/// ([`STATE_CHECK_VERSION`]). `current` is the version the vault had before `migrate`.
fn after_sql(
    reached: i64,
    current: i64,
    transaction: &Transaction<'_>,
    storage_key: Option<&StorageKey>,
) -> Result<(), VaultError> {
    match reached {
        AUDIT_VERSION => start_audit_chain(current, transaction, storage_key),
        STATE_CHECK_VERSION => rewrite_state_check(transaction),
        _ => Ok(()),
    }
}

/// Starts the audit chain with a head MACed under the storage key and, for a vault that
/// already existed (`current` > 0), a first row saying so.
fn start_audit_chain(
    current: i64,
    transaction: &Transaction<'_>,
    storage_key: Option<&StorageKey>,
) -> Result<(), VaultError> {
    let storage_key = storage_key.ok_or_else(|| {
        VaultError::Refused(format!(
            "the vault's schema version {current} predates the audit chain, which needs the storage key: a zeroized vault this old cannot be upgraded"
        ))
    })?;
    audit::start_chain(transaction, storage_key.audit_head())?;
    if current > 0 {
        audit::append(
            transaction,
            storage_key.audit_head(),
            &audit::AuditEvent::ConfigChange {
                what: format!(
                    "audit chain started on an existing vault (schema {current} to {AUDIT_VERSION})"
                ),
                operator: None,
            },
        )?;
    }
    Ok(())
}

/// Replaces key_inventory's state CHECK ([`STATE_CHECK_IN_LIST`]) by its comparisons
/// ([`STATE_CHECK_COMPARISONS`]) in the table's stored SQL, the way SQLite's documentation
/// changes a CHECK constraint (ALTER TABLE, "Making Other Kinds Of Table Schema Changes"):
/// the schema is written directly and its version bumped by one so that every connection
/// reloads it. Rows are untouched: each satisfies both forms. A table that already has the
/// comparisons (a vault taken back to an older version by a test, then upgraded again) is
/// left as it is; one with neither form is not the vault this build expects and is refused.
fn rewrite_state_check(transaction: &Transaction<'_>) -> Result<(), VaultError> {
    let unexpected = |what: &str| {
        VaultError::Corrupt(format!(
            "key_inventory's state constraint {what}; this build cannot upgrade the vault's schema past version {}",
            STATE_CHECK_VERSION - 1
        ))
    };
    let stored = inventory_sql(transaction)?;
    match stored.matches(STATE_CHECK_IN_LIST).count() {
        0 if stored.contains(STATE_CHECK_COMPARISONS) => return Ok(()),
        0 => return Err(unexpected("is not the one this build wrote")),
        1 => {}
        _ => return Err(unexpected("appears more than once")),
    }
    let rewritten = stored.replacen(STATE_CHECK_IN_LIST, STATE_CHECK_COMPARISONS, 1);
    // writable_schema belongs to the connection, not the transaction: it is turned off
    // again whatever the write did.
    transaction.pragma_update(None, "writable_schema", true)?;
    let written = write_inventory_sql(transaction, &stored, &rewritten);
    transaction.pragma_update(None, "writable_schema", false)?;
    if written? != 1 {
        return Err(unexpected(
            "could not be rewritten (no single table row matched)",
        ));
    }
    let now = inventory_sql(transaction)?;
    if now.contains(STATE_CHECK_IN_LIST) || !now.contains(STATE_CHECK_COMPARISONS) {
        return Err(unexpected("was not rewritten"));
    }
    Ok(())
}

/// Replaces key_inventory's stored statement `stored` by `rewritten` (writable_schema on)
/// and, if exactly one row changed, bumps the schema version by one so that the schema is
/// reloaded. Returns the number of rows changed.
fn write_inventory_sql(
    transaction: &Transaction<'_>,
    stored: &str,
    rewritten: &str,
) -> Result<usize, VaultError> {
    let schema_version: i64 =
        transaction.query_row("PRAGMA schema_version", [], |row| row.get(0))?;
    let changed = transaction.execute(
        "UPDATE sqlite_schema SET sql = ?1
         WHERE type = 'table' AND name = 'key_inventory' AND sql = ?2",
        (rewritten, stored),
    )?;
    if changed == 1 {
        transaction.pragma_update(None, "schema_version", schema_version + 1)?;
    }
    Ok(changed)
}

/// The stored `CREATE TABLE` statement of key_inventory.
fn inventory_sql(transaction: &Transaction<'_>) -> Result<String, VaultError> {
    Ok(transaction.query_row(
        "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = 'key_inventory'",
        [],
        |row| row.get(0),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_check_version_names_its_migration() {
        assert_eq!(
            MIGRATIONS[STATE_CHECK_VERSION as usize - 1],
            STATE_CHECK_MIGRATION
        );
    }

    #[test]
    fn the_state_check_in_list_is_the_one_migration_1_wrote() {
        assert!(MIGRATIONS[0].contains(STATE_CHECK_IN_LIST));
    }
}
