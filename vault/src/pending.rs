//! Pending injections: master keys and DUKPT initial keys reserved or sent to a terminal that has not confirmed them, and voiding a terminal's pending master key by its hardware serial.

use keymother_domain::{
    BatchId, BdkName, DukptDeviceId, HardwareSerial, KeyFamily, KeyIndex, TerminalModel,
};
use rusqlite::params;

use crate::operator::{VoidError, VoidedKey};
use crate::{KeyState, Vault, VaultError};

/// What a pending injection holds for its terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PendingSlot {
    /// A terminal master key (modes `tr31`, `certificate`, and a profile's master key).
    Master {
        key_index: KeyIndex,
        batch_id: BatchId,
    },
    /// A DUKPT initial key of a device profile: the BDK and the device id reserved of it.
    Dukpt {
        bdk: BdkName,
        device_id: DukptDeviceId,
    },
}

/// A key reserved or sent to a terminal that has not confirmed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingInjection {
    pub slot: PendingSlot,
    pub hardware_serial: HardwareSerial,
    /// [`KeyState::Reserved`] (reserved, the delivery may not have left) or
    /// [`KeyState::Sent`] (delivered, never confirmed).
    pub state: KeyState,
    /// The port it was reserved on.
    pub port: String,
    /// The terminal's model as its HELLO gave it, when the reservation recorded it (master
    /// keys reserved by this version; `None` for older rows and DUKPT initial keys).
    pub terminal_model: Option<TerminalModel>,
    /// The operator whose session it was reserved under; `None` when nobody was logged in.
    pub operator: Option<String>,
    /// When it was reserved, RFC 3339 (UTC).
    pub reserved_at: String,
}

/// `void` by hardware serial was refused; nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum VoidSerialError {
    #[error(
        "hardware serial {0} has no pending master key (nothing reserved or sent to it waits for a confirmation)"
    )]
    NoPendingKey(HardwareSerial),
    #[error(
        "hardware serial {serial} has {count} pending master keys; void them one by one by key index"
    )]
    SeveralPendingKeys {
        serial: HardwareSerial,
        count: usize,
    },
    #[error(transparent)]
    Void(#[from] VoidError),
    #[error(transparent)]
    Vault(#[from] VaultError),
}

impl From<rusqlite::Error> for VoidSerialError {
    fn from(error: rusqlite::Error) -> Self {
        VoidSerialError::Vault(VaultError::Database(error))
    }
}

/// A stored state of a pending row.
fn pending_state(state: &str) -> Result<KeyState, VaultError> {
    KeyState::from_stored(state)
        .filter(|state| matches!(state, KeyState::Reserved | KeyState::Sent))
        .ok_or_else(|| VaultError::Corrupt(format!("a pending key has state {state:?}")))
}

/// An optional stored model, checked again.
fn stored_model(model: Option<String>) -> Result<Option<TerminalModel>, VaultError> {
    model
        .map(|model| {
            model.parse::<TerminalModel>().map_err(|_| {
                VaultError::Corrupt(
                    "a pending key's stored model is not a terminal model".to_owned(),
                )
            })
        })
        .transpose()
}

impl Vault {
    /// Every master key and DUKPT initial key reserved or sent to a terminal and not
    /// confirmed, oldest reservation first.
    pub fn pending_injections(&self) -> Result<Vec<PendingInjection>, VaultError> {
        let mut pending = self.pending_master_keys()?;
        pending.extend(self.pending_dukpt()?);
        pending.sort_by(|a, b| a.reserved_at.cmp(&b.reserved_at));
        Ok(pending)
    }

    fn pending_master_keys(&self) -> Result<Vec<PendingInjection>, VaultError> {
        let mut statement = self.connection.prepare(
            "SELECT key_index, batch_id, hardware_serial, state, port, terminal_model, operator,
                    reserved_at
               FROM key_inventory
              WHERE state IN ('reserved', 'sent') AND hardware_serial IS NOT NULL
              ORDER BY reserved_at, key_index",
        )?;
        let rows = statement
            .query_map([], |row| {
                Ok((
                    row.get::<_, KeyIndex>(0)?,
                    row.get::<_, BatchId>(1)?,
                    row.get::<_, HardwareSerial>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, Option<String>>(4)?,
                    row.get::<_, Option<String>>(5)?,
                    row.get::<_, Option<String>>(6)?,
                    row.get::<_, Option<String>>(7)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(
                |(key_index, batch_id, serial, state, port, model, operator, reserved_at)| {
                    Ok(PendingInjection {
                        slot: PendingSlot::Master {
                            key_index,
                            batch_id,
                        },
                        hardware_serial: serial,
                        state: pending_state(&state)?,
                        port: port.unwrap_or_default(),
                        terminal_model: stored_model(model)?,
                        operator,
                        reserved_at: reserved_at.unwrap_or_default(),
                    })
                },
            )
            .collect()
    }

    fn pending_dukpt(&self) -> Result<Vec<PendingInjection>, VaultError> {
        let mut statement = self.connection.prepare(
            "SELECT a.bdk_name, b.kind, a.device_id, a.hardware_serial, a.state, a.port,
                    a.operator, a.reserved_at
               FROM dukpt_allocation AS a JOIN bdk AS b ON b.name = a.bdk_name
              WHERE a.state IN ('reserved', 'sent')
              ORDER BY a.reserved_at, a.bdk_name, a.device_id",
        )?;
        let rows = statement
            .query_map([], |row| {
                Ok((
                    row.get::<_, BdkName>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, HardwareSerial>(3)?,
                    row.get::<_, String>(4)?,
                    row.get::<_, String>(5)?,
                    row.get::<_, Option<String>>(6)?,
                    row.get::<_, String>(7)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(
                |(bdk, kind, device, serial, state, port, operator, reserved_at)| {
                    let family = if kind == "tdes" {
                        KeyFamily::Tdes
                    } else {
                        KeyFamily::Aes
                    };
                    let device_id = DukptDeviceId::from_number(family, device).map_err(|_| {
                        VaultError::Corrupt(format!(
                            "BDK {bdk}: a stored device id is out of range"
                        ))
                    })?;
                    Ok(PendingInjection {
                        slot: PendingSlot::Dukpt { bdk, device_id },
                        hardware_serial: serial,
                        state: pending_state(&state)?,
                        port,
                        terminal_model: None,
                        operator,
                        reserved_at,
                    })
                },
            )
            .collect()
    }

    /// Voids the pending master key of the terminal with `hardware_serial`, exactly as
    /// [`Vault::void_key`] voids it by index (same checks, same `void` audit row). Refused,
    /// changing nothing, when the terminal has no pending master key, or more than one.
    pub fn void_key_of_serial(
        &mut self,
        hardware_serial: &HardwareSerial,
        reason: &str,
        operator: &str,
    ) -> Result<VoidedKey, VoidSerialError> {
        let indexes: Vec<KeyIndex> = self
            .connection
            .prepare(
                "SELECT key_index FROM key_inventory
                  WHERE hardware_serial = ?1 AND state IN ('reserved', 'sent')
                  ORDER BY key_index",
            )?
            .query_map(params![hardware_serial], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        match indexes.as_slice() {
            [] => Err(VoidSerialError::NoPendingKey(hardware_serial.clone())),
            // The vault has one owner and this is its only connection: the key found is the
            // one voided (void_key checks its state again in its own transaction).
            [key_index] => Ok(self.void_key(*key_index, reason, operator)?),
            several => Err(VoidSerialError::SeveralPendingKeys {
                serial: hardware_serial.clone(),
                count: several.len(),
            }),
        }
    }
}
