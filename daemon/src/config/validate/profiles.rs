//! The `[[profile]]` list checked: each device profile's name, the terminal models it is for, whether it has the master key, and its DUKPT slots (a BDK's name and the initial key's type).

use std::collections::HashSet;

use keymother_domain::{BdkName, KeyAlgorithm, KeyFamily, TerminalModel};
use keymother_protocol::profile::{DukptKind, DukptSlot, MAX_PROFILE_SLOTS, Profile};

use super::Validator;
use crate::config::ConfigError;
use crate::config::merged::Sourced;
use crate::config::raw::{RawDukptSlot, RawProfile};

impl Validator<'_> {
    /// `[[profile]]`: none is fine (no port then offers mode 3).
    pub(super) fn profiles(
        &self,
        raw: Option<Sourced<Vec<RawProfile>>>,
    ) -> Result<Vec<Profile>, ConfigError> {
        let Some(raw) = raw else {
            return Ok(Vec::new());
        };
        let file = raw.file;
        let mut names = HashSet::new();
        let mut profiles = Vec::with_capacity(raw.value.len());
        for (number, profile) in raw.value.into_iter().enumerate() {
            profiles.push(self.profile(file, number, profile, &mut names)?);
        }
        Ok(profiles)
    }

    fn profile(
        &self,
        file: usize,
        number: usize,
        profile: RawProfile,
        names: &mut HashSet<String>,
    ) -> Result<Profile, ConfigError> {
        let key = |field: &str| format!("profile[{number}].{field}");
        let profile_at = profile.name.span().start;
        let name = profile.name.get_ref().clone();
        let name_ok = !name.is_empty()
            && name.len() <= 32
            && name.chars().all(|c| (' '..='~').contains(&c) && c != ' ');
        if !name_ok {
            return Err(self.error_in(
                file,
                profile.name.span().start,
                &key("name"),
                format!("{name:?} must be 1 to 32 printable characters without spaces"),
            ));
        }
        if !names.insert(name.clone()) {
            return Err(self.error_in(
                file,
                profile.name.span().start,
                &key("name"),
                format!("{name:?} names another profile too"),
            ));
        }
        let mut models = Vec::new();
        for (index, model) in profile
            .models
            .map(|m| m.into_inner())
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let parsed: TerminalModel = model.get_ref().parse().map_err(|error| {
                self.error_in(
                    file,
                    model.span().start,
                    &key(&format!("models[{index}]")),
                    format!("{error}"),
                )
            })?;
            models.push(parsed);
        }
        let master_key = profile.master_key.is_none_or(|value| *value.get_ref());
        let mut dukpt = Vec::new();
        let slots = profile
            .dukpt
            .map(|slots| slots.into_inner())
            .unwrap_or_default();
        if slots.len() > MAX_PROFILE_SLOTS {
            return Err(self.error_in(
                file,
                0,
                &key("dukpt"),
                format!(
                    "{} slots; a profile has at most {MAX_PROFILE_SLOTS}",
                    slots.len()
                ),
            ));
        }
        for (index, slot) in slots.into_iter().enumerate() {
            dukpt.push(self.dukpt_slot(file, &key(&format!("dukpt[{index}]")), slot)?);
        }
        if !master_key && dukpt.is_empty() {
            return Err(self.error_in(
                file,
                profile.name.span().start,
                &key("dukpt"),
                "a profile without the master key needs at least one DUKPT slot".to_owned(),
            ));
        }
        let profile = Profile {
            name,
            models,
            master_key,
            slots: dukpt,
        };
        profile
            .check()
            .map_err(|error| self.error_in(file, profile_at, &key("dukpt"), format!("{error}")))?;
        Ok(profile)
    }

    fn dukpt_slot(
        &self,
        file: usize,
        key: &str,
        slot: RawDukptSlot,
    ) -> Result<DukptSlot, ConfigError> {
        let bdk: BdkName = slot.bdk.get_ref().parse().map_err(|error| {
            self.error_in(
                file,
                slot.bdk.span().start,
                &format!("{key}.bdk"),
                format!("{error}"),
            )
        })?;
        let key_type: KeyAlgorithm = slot.key_type.get_ref().parse().map_err(|error| {
            self.error_in(
                file,
                slot.key_type.span().start,
                &format!("{key}.key_type"),
                format!("{error}"),
            )
        })?;
        // TDES DUKPT (X9.24-1) makes TDES-2KEY initial keys; AES DUKPT (X9.24-3) AES ones.
        let kind = match key_type {
            KeyAlgorithm::Tdes2Key => DukptKind::Tdes,
            other if other.family() == KeyFamily::Aes => DukptKind::Aes,
            other => {
                return Err(self.error_in(
                    file,
                    slot.key_type.span().start,
                    &format!("{key}.key_type"),
                    format!("{other} is no DUKPT initial key: TDES DUKPT keys are TDES-2KEY, AES DUKPT keys AES-128, AES-192 or AES-256"),
                ));
            }
        };
        Ok(DukptSlot {
            label: bdk.as_str().to_owned(),
            kind,
            key_type,
        })
    }
}
