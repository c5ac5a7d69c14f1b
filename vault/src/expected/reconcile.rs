//! Reconciliation of expected-device lists: per list, each listed serial injected, pending or missing, and the serials refused while the list was open.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use keymother_domain::{HardwareSerial, KeyIndex, Smn, TerminalModel};
use rusqlite::{Connection, params};

use super::{ExpectedDevice, ExpectedError, ExpectedList, LIST_COLUMNS, ListName, list_from_row};
use crate::{Vault, VaultError};

/// A key a listed serial got or is getting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRef {
    /// A master key, by its index (the SMN is the serial followed by it).
    Master(KeyIndex),
    /// A DUKPT initial key: the BDK's name and the device ID (hex).
    Dukpt { bdk: String, device_id: String },
}

impl KeyRef {
    /// `master` or `dukpt`.
    pub fn kind(&self) -> &'static str {
        match self {
            KeyRef::Master(_) => "master",
            KeyRef::Dukpt { .. } => "dukpt",
        }
    }

    /// The key index (8 digits), or `BDK/DEVICE-ID`.
    pub fn key(&self) -> String {
        match self {
            KeyRef::Master(index) => index.to_string(),
            KeyRef::Dukpt { bdk, device_id } => format!("{bdk}/{device_id}"),
        }
    }
}

impl fmt::Display for KeyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyRef::Master(index) => write!(f, "key {index}"),
            KeyRef::Dukpt { bdk, device_id } => write!(f, "DUKPT {bdk} device {device_id}"),
        }
    }
}

/// A key confirmed while the list was open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectedKey {
    pub key: KeyRef,
    pub port: String,
    /// When the terminal confirmed it.
    pub at: String,
}

impl InjectedKey {
    /// The SMN of a master key given to `serial`.
    pub fn smn(&self, serial: &HardwareSerial) -> Option<Smn> {
        match self.key {
            KeyRef::Master(index) => Some(Smn::new(serial, index)),
            KeyRef::Dukpt { .. } => None,
        }
    }
}

/// A key reserved for a listed serial, or sent to it, and not confirmed (now).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingKey {
    pub key: KeyRef,
    /// `reserved` or `sent`.
    pub state: String,
    pub port: String,
    /// When it was reserved.
    pub at: String,
}

/// A listed serial with at least one key confirmed while the list was open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectedDevice {
    pub hardware_serial: HardwareSerial,
    pub terminal_model: Option<TerminalModel>,
    pub keys: Vec<InjectedKey>,
    /// Keys it also has pending (a DUKPT slot not yet confirmed, say).
    pub pending: Vec<PendingKey>,
}

/// A listed serial with nothing confirmed but a key reserved or sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingDevice {
    pub hardware_serial: HardwareSerial,
    pub terminal_model: Option<TerminalModel>,
    pub keys: Vec<PendingKey>,
}

/// A serial refused while the list was open because no open list held it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedDevice {
    pub hardware_serial: HardwareSerial,
    /// How many key requests were refused.
    pub attempts: u64,
    pub first_at: String,
    pub last_at: String,
    /// The port of the last attempt.
    pub last_port: String,
}

/// One list accounted for: every listed serial is injected, pending or missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListReconciliation {
    pub list: ExpectedList,
    pub injected: Vec<InjectedDevice>,
    pub pending: Vec<PendingDevice>,
    /// Listed, never injected, nothing pending.
    pub missing: Vec<ExpectedDevice>,
    pub refused: Vec<RefusedDevice>,
}

/// How many serials are in each group of a list's reconciliation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub injected: u64,
    pub pending: u64,
    pub missing: u64,
    pub refused: u64,
}

impl ListReconciliation {
    pub fn counts(&self) -> Counts {
        Counts {
            injected: self.injected.len() as u64,
            pending: self.pending.len() as u64,
            missing: self.missing.len() as u64,
            refused: self.refused.len() as u64,
        }
    }
}

/// The reconciliation of one list or of all of them, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconciliation {
    pub lists: Vec<ListReconciliation>,
}

/// A list's window: the rowids after its `*_from` and up to its `*_to` (open: no end).
struct Window {
    smn: (i64, Option<i64>),
    dukpt: (i64, Option<i64>),
    refusal: (i64, Option<i64>),
}

fn window(connection: &Connection, name: &ListName) -> rusqlite::Result<Window> {
    connection.query_row(
        "SELECT smn_from, smn_to, dukpt_from, dukpt_to, refusal_from, refusal_to
           FROM expected_list WHERE name = ?1",
        [name.as_str()],
        |row| {
            Ok(Window {
                smn: (row.get(0)?, row.get(1)?),
                dukpt: (row.get(2)?, row.get(3)?),
                refusal: (row.get(4)?, row.get(5)?),
            })
        },
    )
}

/// A stored value that breaks the schema's rules.
fn corrupt(what: &str) -> VaultError {
    VaultError::Corrupt(format!("expected-device reconciliation: {what}"))
}

fn serial(text: &str) -> Result<HardwareSerial, VaultError> {
    text.parse()
        .map_err(|_| corrupt("a stored hardware serial is not A-Z 0-9"))
}

/// The listed serials in file order.
fn listed(connection: &Connection, name: &ListName) -> Result<Vec<ExpectedDevice>, VaultError> {
    let mut statement = connection.prepare(
        "SELECT hardware_serial, terminal_model, line FROM expected_device
          WHERE list = ?1 ORDER BY line",
    )?;
    let mut rows = statement.query([name.as_str()])?;
    let mut devices = Vec::new();
    while let Some(row) = rows.next()? {
        let model: Option<String> = row.get(1)?;
        devices.push(ExpectedDevice {
            hardware_serial: serial(&row.get::<_, String>(0)?)?,
            terminal_model: model
                .map(|model| model.parse().map_err(|_| corrupt("a stored model")))
                .transpose()?,
            line: row.get::<_, i64>(2)? as u64,
        });
    }
    Ok(devices)
}

/// A key index as stored.
fn key_index(value: i64) -> Result<KeyIndex, VaultError> {
    KeyIndex::try_from(value).map_err(|_| corrupt("a stored key index has more than 8 digits"))
}

/// The device ID of a DUKPT row in hex, as wide as its BDK's kind.
const DEVICE_ID_HEX: &str = "CASE (SELECT kind FROM bdk WHERE name = x.bdk_name)
     WHEN 'tdes' THEN printf('%05X', x.device_id) ELSE printf('%08X', x.device_id) END";

/// Keys of listed serials confirmed within the window, by serial.
fn injected_keys(
    connection: &Connection,
    name: &ListName,
    window: &Window,
) -> Result<HashMap<String, Vec<InjectedKey>>, VaultError> {
    let mut found: HashMap<String, Vec<InjectedKey>> = HashMap::new();
    let mut masters = connection.prepare(
        "SELECT x.hardware_serial, x.key_index, x.port, x.injected_at
           FROM smn_registry x JOIN expected_device d
             ON d.list = ?1 AND d.hardware_serial = x.hardware_serial
          WHERE x.rowid > ?2 AND (?3 IS NULL OR x.rowid <= ?3) ORDER BY x.rowid",
    )?;
    let mut rows = masters.query(params![name.as_str(), window.smn.0, window.smn.1])?;
    while let Some(row) = rows.next()? {
        found.entry(row.get(0)?).or_default().push(InjectedKey {
            key: KeyRef::Master(key_index(row.get(1)?)?),
            port: row.get(2)?,
            at: row.get(3)?,
        });
    }
    let mut slots = connection.prepare(&format!(
        "SELECT x.hardware_serial, x.bdk_name, {DEVICE_ID_HEX}, x.port, x.injected_at
           FROM dukpt_registry x JOIN expected_device d
             ON d.list = ?1 AND d.hardware_serial = x.hardware_serial
          WHERE x.rowid > ?2 AND (?3 IS NULL OR x.rowid <= ?3) ORDER BY x.rowid"
    ))?;
    let mut rows = slots.query(params![name.as_str(), window.dukpt.0, window.dukpt.1])?;
    while let Some(row) = rows.next()? {
        found.entry(row.get(0)?).or_default().push(InjectedKey {
            key: KeyRef::Dukpt {
                bdk: row.get(1)?,
                device_id: row.get(2)?,
            },
            port: row.get(3)?,
            at: row.get(4)?,
        });
    }
    Ok(found)
}

/// Keys of listed serials reserved or sent and not confirmed, now, by serial.
fn pending_keys(
    connection: &Connection,
    name: &ListName,
) -> Result<HashMap<String, Vec<PendingKey>>, VaultError> {
    let mut found: HashMap<String, Vec<PendingKey>> = HashMap::new();
    let mut masters = connection.prepare(
        "SELECT x.hardware_serial, x.key_index, x.state, x.port, x.reserved_at
           FROM key_inventory x JOIN expected_device d
             ON d.list = ?1 AND d.hardware_serial = x.hardware_serial
          WHERE x.state IN ('reserved', 'sent') ORDER BY x.key_index",
    )?;
    let mut rows = masters.query([name.as_str()])?;
    while let Some(row) = rows.next()? {
        found.entry(row.get(0)?).or_default().push(PendingKey {
            key: KeyRef::Master(key_index(row.get(1)?)?),
            state: row.get(2)?,
            port: row.get::<_, Option<String>>(3)?.unwrap_or_default(),
            at: row.get::<_, Option<String>>(4)?.unwrap_or_default(),
        });
    }
    let mut slots = connection.prepare(&format!(
        "SELECT x.hardware_serial, x.bdk_name, {DEVICE_ID_HEX}, x.state, x.port, x.reserved_at
           FROM dukpt_allocation x JOIN expected_device d
             ON d.list = ?1 AND d.hardware_serial = x.hardware_serial
          WHERE x.state IN ('reserved', 'sent') ORDER BY x.bdk_name, x.device_id"
    ))?;
    let mut rows = slots.query([name.as_str()])?;
    while let Some(row) = rows.next()? {
        found.entry(row.get(0)?).or_default().push(PendingKey {
            key: KeyRef::Dukpt {
                bdk: row.get(1)?,
                device_id: row.get(2)?,
            },
            state: row.get(3)?,
            port: row.get(4)?,
            at: row.get(5)?,
        });
    }
    Ok(found)
}

/// The serials refused within the window, by serial.
fn refused(connection: &Connection, window: &Window) -> Result<Vec<RefusedDevice>, VaultError> {
    let mut statement = connection.prepare(
        "SELECT hardware_serial, port, refused_at FROM expected_refusal
          WHERE rowid > ?1 AND (?2 IS NULL OR rowid <= ?2) ORDER BY rowid",
    )?;
    let mut rows = statement.query(params![window.refusal.0, window.refusal.1])?;
    let mut by_serial: BTreeMap<String, RefusedDevice> = BTreeMap::new();
    while let Some(row) = rows.next()? {
        let text: String = row.get(0)?;
        let (port, at): (String, String) = (row.get(1)?, row.get(2)?);
        match by_serial.get_mut(&text) {
            Some(device) => {
                device.attempts += 1;
                device.last_at = at;
                device.last_port = port;
            }
            None => {
                let device = RefusedDevice {
                    hardware_serial: serial(&text)?,
                    attempts: 1,
                    first_at: at.clone(),
                    last_at: at,
                    last_port: port,
                };
                by_serial.insert(text, device);
            }
        }
    }
    Ok(by_serial.into_values().collect())
}

/// Accounts for every serial of `list` (its window as stored).
pub(super) fn reconcile_list(
    connection: &Connection,
    list: &ExpectedList,
) -> Result<ListReconciliation, VaultError> {
    let window = window(connection, &list.name)?;
    let mut injected_by_serial = injected_keys(connection, &list.name, &window)?;
    let mut pending_by_serial = pending_keys(connection, &list.name)?;
    let mut reconciliation = ListReconciliation {
        list: list.clone(),
        injected: Vec::new(),
        pending: Vec::new(),
        missing: Vec::new(),
        refused: refused(connection, &window)?,
    };
    for device in listed(connection, &list.name)? {
        let serial = device.hardware_serial.as_str();
        let pending = pending_by_serial.remove(serial).unwrap_or_default();
        match injected_by_serial.remove(serial) {
            Some(keys) => reconciliation.injected.push(InjectedDevice {
                hardware_serial: device.hardware_serial,
                terminal_model: device.terminal_model,
                keys,
                pending,
            }),
            None if !pending.is_empty() => reconciliation.pending.push(PendingDevice {
                hardware_serial: device.hardware_serial,
                terminal_model: device.terminal_model,
                keys: pending,
            }),
            None => reconciliation.missing.push(device),
        }
    }
    Ok(reconciliation)
}

impl Vault {
    /// The reconciliation of the list `name`, or of every list when `None`, oldest first.
    pub fn reconcile(&self, name: Option<&ListName>) -> Result<Reconciliation, ExpectedError> {
        // One read snapshot for every list.
        let snapshot = self.connection.unchecked_transaction()?;
        let lists = match name {
            Some(name) => {
                let list = snapshot
                    .query_row(
                        &format!("SELECT {LIST_COLUMNS} FROM expected_list WHERE name = ?1"),
                        [name.as_str()],
                        list_from_row,
                    )
                    .map_err(|error| match error {
                        rusqlite::Error::QueryReturnedNoRows => {
                            ExpectedError::Refused(format!("no list is named {name}"))
                        }
                        other => other.into(),
                    })?;
                vec![list]
            }
            None => {
                let mut statement = snapshot.prepare(&format!(
                    "SELECT {LIST_COLUMNS} FROM expected_list ORDER BY imported_at, name"
                ))?;
                statement
                    .query_map([], list_from_row)?
                    .collect::<Result<Vec<_>, _>>()?
            }
        };
        let lists = lists
            .iter()
            .map(|list| reconcile_list(&snapshot, list))
            .collect::<Result<_, _>>()?;
        Ok(Reconciliation { lists })
    }
}
