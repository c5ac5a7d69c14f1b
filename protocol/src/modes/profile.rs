//! Profile mode (mode 3): device profiles (a master key and DUKPT initial-key slots), their WELCOME layout, and the mode's rules for both sessions.
//!
//! A [`Profile`] names the keys one terminal model receives in one session: the master key as
//! in tr31 mode (when `master_key`), then one DUKPT initial key per [`DukptSlot`], in order.
//! The appliance offers the first of its profiles whose models include the HELLO's model, and
//! sends it in WELCOME's mode data; the terminal checks it can take every slot before asking
//! for anything. The DUKPT keys travel in their own messages (DUKPT_REQUEST, DUKPT_DELIVERY,
//! DUKPT_CONFIRM, DUKPT_CONFIRMED, in `message/`); the sessions run them.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

pub use keymother_domain::KeyAlgorithm;

use super::certificate::{CertificateDelivery, CertificateFreshness};
use super::tr31::{check_transport_key, refuse_delivery_mode_data};
use super::{AfterWelcome, ModeRequest, ModeRules, PortState, RequestRefusal, TerminalAbort};
use crate::appliance::{ApplianceConfig, TerminalIdentity};
use crate::codes::{AbortReason, ErrorCode};
use crate::identity::TerminalModel;
use crate::message::{
    AES_INITIAL_KEY_ID_LENGTH, DecodeError, EncodeError, Field, FieldProblem, MessageType, Reader,
    TDES_KSN_LENGTH, Welcome, Writer,
};
use crate::mode::Mode;
use crate::terminal::TerminalConfig;

/// Most DUKPT slots a profile may have.
pub const MAX_PROFILE_SLOTS: usize = 8;
/// Longest profile name.
pub const MAX_PROFILE_NAME_LENGTH: usize = 32;
/// Longest slot label.
pub const MAX_LABEL_LENGTH: usize = 16;

const PROFILE_NAME_LENGTH: &str = "1 to 32 characters";
const LABEL_LENGTH: &str = "1 to 16 characters";
const LABEL_CHARACTERS: &str = "A-Z, 0-9, - and _";
const MASTER_KEY_VALUES: &str = "0 (no master key) or 1";
const SLOT_COUNTS: &str = "0 to 8 slots, and at least 1 without a master key";
const DUKPT_KINDS: &str = "1 (TDES DUKPT) or 2 (AES DUKPT)";
const KEY_TYPES: &str = "1 to 5";
const TDES_DUKPT_KEY_TYPE: &str = "a TDES DUKPT key is TDES-2KEY (1)";
const AES_DUKPT_KEY_TYPE: &str =
    "an AES DUKPT initial key is AES-128 (3), AES-192 (4) or AES-256 (5)";

/// Which DUKPT a slot's initial key is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DukptKind {
    /// ANSI X9.24-1-2009 TDES DUKPT: a double-length IPEK, identified by a 10-byte initial KSN.
    Tdes,
    /// ANSI X9.24-3-2017 AES DUKPT: an initial key identified by an 8-byte initial key ID.
    Aes,
}

impl DukptKind {
    pub const ALL: [DukptKind; 2] = [DukptKind::Tdes, DukptKind::Aes];

    /// The id carried in a WELCOME slot entry.
    pub fn id(self) -> u8 {
        match self {
            DukptKind::Tdes => 1,
            DukptKind::Aes => 2,
        }
    }

    pub fn from_id(id: u8) -> Option<DukptKind> {
        DukptKind::ALL.into_iter().find(|kind| kind.id() == id)
    }

    /// The name used in logs.
    pub fn name(self) -> &'static str {
        match self {
            DukptKind::Tdes => "TDES DUKPT",
            DukptKind::Aes => "AES DUKPT",
        }
    }

    /// Length of the KSN field of this kind's DUKPT messages: the initial KSN (TDES) or the
    /// initial key ID (AES).
    pub fn ksn_length(self) -> usize {
        match self {
            DukptKind::Tdes => TDES_KSN_LENGTH,
            DukptKind::Aes => AES_INITIAL_KEY_ID_LENGTH,
        }
    }

    /// Whether an initial key of this kind may be of `key_type`: a TDES IPEK is TDES-2KEY; an
    /// AES DUKPT initial key is AES (X9.24-3 derives every intermediate key from it with AES;
    /// TDES keys are only its working keys).
    pub fn allows(self, key_type: KeyAlgorithm) -> bool {
        match self {
            DukptKind::Tdes => key_type == KeyAlgorithm::Tdes2Key,
            DukptKind::Aes => key_type.family() == keymother_domain::KeyFamily::Aes,
        }
    }
}

impl fmt::Display for DukptKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The id of an initial key's type in a WELCOME slot entry.
pub fn key_type_id(key_type: KeyAlgorithm) -> u8 {
    match key_type {
        KeyAlgorithm::Tdes2Key => 1,
        KeyAlgorithm::Tdes3Key => 2,
        KeyAlgorithm::Aes128 => 3,
        KeyAlgorithm::Aes192 => 4,
        KeyAlgorithm::Aes256 => 5,
    }
}

/// The key type with this id, if the protocol defines it.
pub fn key_type_from_id(id: u8) -> Option<KeyAlgorithm> {
    KeyAlgorithm::ALL
        .into_iter()
        .find(|&key_type| key_type_id(key_type) == id)
}

/// One DUKPT initial key of a profile.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DukptSlot {
    /// The slot's name: the BDK's name on the appliance (`PIN`, `DATA`), 1 to 16 of `A`-`Z`,
    /// `0`-`9`, `-`, `_`; unique within a profile. The terminal keeps its initial key under it.
    pub label: String,
    pub kind: DukptKind,
    /// The initial key's algorithm.
    pub key_type: KeyAlgorithm,
}

/// A device profile: the keys one terminal model receives in one profile-mode session.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Profile {
    /// 1 to 32 printable ASCII characters.
    pub name: String,
    /// The terminal models the profile is offered to; empty: any model. Appliance
    /// configuration only: WELCOME does not carry it, and a decoded profile has none.
    pub models: Vec<TerminalModel>,
    /// The session starts with the terminal's master key, as in tr31 mode.
    pub master_key: bool,
    /// The DUKPT initial keys, in the order they are delivered (slot 0 first); at most 8.
    pub slots: Vec<DukptSlot>,
}

impl Profile {
    /// Whether this profile is offered to a terminal of `model`.
    pub fn offers_to(&self, model: &TerminalModel) -> bool {
        self.models.is_empty() || self.models.contains(model)
    }

    /// How many keys a session delivers: the master key (if any) and the slots.
    pub fn key_count(&self) -> usize {
        usize::from(self.master_key) + self.slots.len()
    }

    /// The slot numbered `slot`.
    pub fn slot(&self, slot: u8) -> Option<&DukptSlot> {
        self.slots.get(usize::from(slot))
    }

    /// Checks the profile against the protocol's rules (the errors name the WELCOME field at
    /// fault); what [`encode`](Self::encode) checks, for a configuration to be refused early.
    pub fn check(&self) -> Result<(), EncodeError> {
        self.encode().map(drop)
    }

    /// WELCOME's mode data in profile mode. The models are not sent.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut writer = Writer::new(MessageType::Welcome);
        writer.text(
            Field::ProfileName,
            &self.name,
            1,
            MAX_PROFILE_NAME_LENGTH,
            PROFILE_NAME_LENGTH,
        )?;
        writer.u8(u8::from(self.master_key));
        let count = slot_count(self.master_key, self.slots.len())
            .map_err(|problem| writer.error(Field::SlotCount, problem))?;
        writer.u8(count);
        let mut labels = BTreeSet::new();
        for slot in &self.slots {
            check_key_type(slot.kind, slot.key_type)
                .map_err(|problem| writer.error(Field::KeyType, problem))?;
            check_label(slot.label.as_bytes(), &mut labels)
                .map_err(|problem| writer.error(Field::Label, problem))?;
            writer.u8(slot.kind.id());
            writer.u8(key_type_id(slot.key_type));
            writer.counted(
                Field::Label,
                slot.label.as_bytes(),
                1,
                MAX_LABEL_LENGTH,
                LABEL_LENGTH,
            )?;
        }
        Ok(writer.bytes)
    }

    /// Reads WELCOME's mode data in profile mode.
    pub fn decode(mode_data: &[u8]) -> Result<Profile, DecodeError> {
        let mut reader = Reader {
            message: MessageType::Welcome,
            bytes: mode_data,
        };
        let name = reader.text(
            Field::ProfileNameLength,
            Field::ProfileName,
            1,
            MAX_PROFILE_NAME_LENGTH,
            PROFILE_NAME_LENGTH,
        )?;
        let master_key = match reader.u8(Field::MasterKey)? {
            0 => false,
            1 => true,
            value => {
                return Err(reader.error(
                    Field::MasterKey,
                    FieldProblem::Value {
                        value: u64::from(value),
                        allowed: MASTER_KEY_VALUES,
                    },
                ));
            }
        };
        let count = reader.u8(Field::SlotCount)?;
        slot_count(master_key, usize::from(count))
            .map_err(|problem| reader.error(Field::SlotCount, problem))?;
        let mut labels = BTreeSet::new();
        let slots = (0..count)
            .map(|_| read_slot(&mut reader, &mut labels))
            .collect::<Result<Vec<_>, _>>()?;
        reader.finish()?;
        Ok(Profile {
            name,
            models: Vec::new(),
            master_key,
            slots,
        })
    }
}

fn read_slot(
    reader: &mut Reader<'_>,
    labels: &mut BTreeSet<String>,
) -> Result<DukptSlot, DecodeError> {
    let kind_id = reader.u8(Field::DukptKind)?;
    let kind = DukptKind::from_id(kind_id).ok_or_else(|| {
        reader.error(
            Field::DukptKind,
            FieldProblem::Value {
                value: u64::from(kind_id),
                allowed: DUKPT_KINDS,
            },
        )
    })?;
    let type_id = reader.u8(Field::KeyType)?;
    let key_type = key_type_from_id(type_id).ok_or_else(|| {
        reader.error(
            Field::KeyType,
            FieldProblem::Value {
                value: u64::from(type_id),
                allowed: KEY_TYPES,
            },
        )
    })?;
    check_key_type(kind, key_type).map_err(|problem| reader.error(Field::KeyType, problem))?;
    let label = reader.counted(
        Field::LabelLength,
        Field::Label,
        1,
        MAX_LABEL_LENGTH,
        LABEL_LENGTH,
    )?;
    check_label(label, labels).map_err(|problem| reader.error(Field::Label, problem))?;
    Ok(DukptSlot {
        label: label.iter().map(|&byte| char::from(byte)).collect(),
        kind,
        key_type,
    })
}

/// The slot count byte: at most 8 slots, and at least one key in the profile.
fn slot_count(master_key: bool, count: usize) -> Result<u8, FieldProblem> {
    u8::try_from(count)
        .ok()
        .filter(|&count| usize::from(count) <= MAX_PROFILE_SLOTS && (master_key || count > 0))
        .ok_or(FieldProblem::Value {
            value: count as u64,
            allowed: SLOT_COUNTS,
        })
}

fn check_key_type(kind: DukptKind, key_type: KeyAlgorithm) -> Result<(), FieldProblem> {
    if kind.allows(key_type) {
        return Ok(());
    }
    Err(FieldProblem::Value {
        value: u64::from(key_type_id(key_type)),
        allowed: match kind {
            DukptKind::Tdes => TDES_DUKPT_KEY_TYPE,
            DukptKind::Aes => AES_DUKPT_KEY_TYPE,
        },
    })
}

/// A label: 1 to 16 of `A`-`Z`, `0`-`9`, `-`, `_`, not seen before in the profile.
fn check_label(label: &[u8], seen: &mut BTreeSet<String>) -> Result<(), FieldProblem> {
    if label.is_empty() || label.len() > MAX_LABEL_LENGTH {
        return Err(FieldProblem::Length {
            found: label.len(),
            allowed: LABEL_LENGTH,
        });
    }
    let allowed =
        |byte: &u8| byte.is_ascii_uppercase() || byte.is_ascii_digit() || b"-_".contains(byte);
    if let Some(position) = label.iter().position(|byte| !allowed(byte)) {
        return Err(FieldProblem::Character {
            position: position + 1,
            byte: label[position],
            allowed: LABEL_CHARACTERS,
        });
    }
    let text: String = label.iter().map(|&byte| char::from(byte)).collect();
    if !seen.insert(text.clone()) {
        return Err(FieldProblem::Repeated { value: text });
    }
    Ok(())
}

/// Profile mode's rules for both sessions.
pub(crate) struct ProfileMode;

impl ProfileMode {
    /// The profile the appliance offers `terminal`: the first whose models include its model.
    fn offered<'a>(
        config: &'a ApplianceConfig,
        terminal: &TerminalIdentity,
    ) -> Option<&'a Profile> {
        config
            .profiles
            .iter()
            .find(|profile| profile.offers_to(&terminal.model))
    }
}

impl ModeRules for ProfileMode {
    fn mode(&self) -> Mode {
        Mode::Profile
    }

    /// WELCOME carries the profile; KEY_REQUEST carries nothing, which `accept_request` checks.
    fn carries_mode_data(&self) -> bool {
        true
    }

    /// Only with a profile for the terminal's model.
    fn appliance_can_serve(&self, config: &ApplianceConfig, terminal: &TerminalIdentity) -> bool {
        ProfileMode::offered(config, terminal).is_some()
    }

    fn welcome_data(
        &self,
        config: &ApplianceConfig,
        terminal: &TerminalIdentity,
    ) -> Result<Vec<u8>, EncodeError> {
        ProfileMode::offered(config, terminal).map_or(Ok(Vec::new()), Profile::encode)
    }

    fn session_profile(
        &self,
        config: &ApplianceConfig,
        terminal: &TerminalIdentity,
    ) -> Option<Profile> {
        ProfileMode::offered(config, terminal).cloned()
    }

    /// The master key's KEY_REQUEST carries no mode data.
    fn accept_request(
        &self,
        _config: &ApplianceConfig,
        mode_data: &[u8],
        _now: Duration,
        _port: &mut PortState,
    ) -> Result<ModeRequest, RequestRefusal> {
        if mode_data.is_empty() {
            return Ok(ModeRequest::Profile);
        }
        let error = DecodeError::Field {
            message: MessageType::KeyRequest,
            field: Field::ModeData,
            problem: FieldProblem::TrailingBytes {
                count: mode_data.len(),
            },
        };
        Err(RequestRefusal {
            code: ErrorCode::MALFORMED_MESSAGE,
            detail: error.to_string(),
        })
    }

    fn terminal_can_run(&self, _config: &TerminalConfig) -> bool {
        true
    }

    /// The transport key first (every key of the profile travels under it), then the profile:
    /// one whose fields this version does not know (a DUKPT kind or key type) cannot be taken.
    fn check_welcome(
        &self,
        config: &TerminalConfig,
        welcome: &Welcome,
    ) -> Result<AfterWelcome, TerminalAbort> {
        check_transport_key(config, welcome)?;
        let profile = Profile::decode(&welcome.mode_data).map_err(|error| TerminalAbort {
            reason: AbortReason::UNEXPECTED_RESPONSE,
            detail: error.to_string(),
            failure: format!("profile-mode WELCOME not acceptable: {error}"),
        })?;
        Ok(AfterWelcome::RunProfile(profile))
    }

    fn request_data(
        &self,
        _config: &TerminalConfig,
        _freshness: Option<&CertificateFreshness>,
    ) -> Result<Vec<u8>, EncodeError> {
        Ok(Vec::new())
    }

    /// The master key's delivery carries nothing after the KCV, as in tr31 mode.
    fn open_delivery(
        &self,
        mode_data: &[u8],
    ) -> Result<Option<CertificateDelivery>, TerminalAbort> {
        refuse_delivery_mode_data(Mode::Profile, mode_data)
    }
}

#[cfg(test)]
mod tests;
