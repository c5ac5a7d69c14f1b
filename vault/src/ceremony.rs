//! Key ceremonies on record: the named custodians who entered each component (KEK, TTK and BDK ceremonies), and the audit row of a ceremony that failed.
//!
//! A custodian is named by the name they type at the ceremony, as on the paper form they
//! sign (docs/SECURITY.md, "Key ceremony", says why a typed name rather than a certificate).

use std::fmt;
use std::str::FromStr;

use keymother_crypto::component::{self, Combined, Component};
use keymother_crypto::{Kcv, KeyAlgorithm};
use rusqlite::TransactionBehavior;

use crate::audit::{self, AuditEvent};
use crate::{Vault, VaultError, live_key};

/// A name of this many hex digits or more and nothing else (spaces aside) is refused: it is a
/// component typed at the name prompt (the shortest, single-length DES, has 16).
pub const LOOKS_LIKE_A_COMPONENT: usize = 16;
/// Longest custodian name, in characters.
pub const MAX_CUSTODIAN_NAME: usize = 64;
/// Fewest custodians (components) of a ceremony: dual control.
pub const MIN_CUSTODIANS: usize = 2;
/// Most custodians (components) of a ceremony.
pub const MAX_CUSTODIANS: usize = 9;

/// A custodian's name as typed: 1 to 64 characters, letters (any script), digits, spaces and
/// `.` `'` `-`, not starting or ending with a space, and not 16 or more hex digits alone (a
/// component at the wrong prompt). `/` is not allowed: it separates names in the audit row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustodianName(String);

impl CustodianName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CustodianName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for CustodianName {
    type Err = String;

    /// The error never quotes the text (a custodian may type a component at the name prompt).
    fn from_str(text: &str) -> Result<Self, String> {
        let length = text.chars().count();
        if length == 0 || text.trim().is_empty() {
            return Err("is empty".to_owned());
        }
        if length > MAX_CUSTODIAN_NAME {
            return Err(format!(
                "is {length} characters; at most {MAX_CUSTODIAN_NAME}"
            ));
        }
        if text.trim() != text {
            return Err("starts or ends with a space".to_owned());
        }
        let hex_digits = text.chars().filter(char::is_ascii_hexdigit).count();
        if hex_digits >= LOOKS_LIKE_A_COMPONENT
            && text
                .chars()
                .all(|character| character.is_ascii_hexdigit() || character == ' ')
        {
            return Err(format!(
                "is {hex_digits} hex digits and nothing else: it looks like a key component, not a name"
            ));
        }
        if let Some(position) = text.chars().position(|character| {
            !(character.is_alphanumeric() || matches!(character, ' ' | '.' | '\'' | '-'))
        }) {
            return Err(format!(
                "character {} is not a letter, a digit, a space, '.', ''' or '-'",
                position + 1
            ));
        }
        Ok(CustodianName(text.to_owned()))
    }
}

/// One custodian of a ceremony: their name and, when known, their component's check value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Custodian {
    pub name: CustodianName,
    pub component_kcv: Option<Kcv>,
}

/// Who held a ceremony: its custodians in component order, whether it may replace a loaded
/// key, and the local user who ran the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CeremonyRecord {
    custodians: Vec<Custodian>,
    replace: bool,
    peer: Option<String>,
}

impl CeremonyRecord {
    /// Checks the custodians: 2 to 9, no name twice (letter case aside).
    pub fn new(custodians: Vec<Custodian>) -> Result<CeremonyRecord, String> {
        if !(MIN_CUSTODIANS..=MAX_CUSTODIANS).contains(&custodians.len()) {
            return Err(format!(
                "a ceremony has {MIN_CUSTODIANS} to {MAX_CUSTODIANS} custodians, one per component; got {}",
                custodians.len()
            ));
        }
        for (index, custodian) in custodians.iter().enumerate() {
            let folded = custodian.name.as_str().to_lowercase();
            if let Some(earlier) = custodians[..index]
                .iter()
                .position(|other| other.name.as_str().to_lowercase() == folded)
            {
                return Err(format!(
                    "custodian {} has the name of custodian {}: each component is entered by \
                     another custodian (split knowledge)",
                    index + 1,
                    earlier + 1
                ));
            }
        }
        Ok(CeremonyRecord {
            custodians,
            replace: false,
            peer: None,
        })
    }

    /// Custodians by name only (component check values unknown): for tests, benches and the
    /// demo, whose components are made on the spot.
    pub fn named(names: &[&str]) -> Result<CeremonyRecord, String> {
        let custodians = names
            .iter()
            .enumerate()
            .map(|(index, name)| {
                Ok(Custodian {
                    name: name
                        .parse()
                        .map_err(|error| format!("custodian {}'s name {error}", index + 1))?,
                    component_kcv: None,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        CeremonyRecord::new(custodians)
    }

    /// Allows the ceremony to replace a key that is loaded (`--replace`).
    pub fn replacing(mut self, replace: bool) -> CeremonyRecord {
        self.replace = replace;
        self
    }

    /// Names the local user who ran the ceremony command (the control socket's peer).
    pub fn run_by(mut self, peer: impl Into<String>) -> CeremonyRecord {
        self.peer = Some(peer.into());
        self
    }

    pub fn custodians(&self) -> &[Custodian] {
        &self.custodians
    }

    pub fn replace(&self) -> bool {
        self.replace
    }

    pub fn peer(&self) -> Option<&str> {
        self.peer.as_deref()
    }

    /// The names as the audit row carries them: `Ann Lee/Raj Patel`.
    pub(crate) fn names_text(&self) -> String {
        join_names(
            self.custodians
                .iter()
                .map(|custodian| custodian.name.as_str()),
        )
    }

    /// The components' check values in order, `DA9804B510/87E3DD99B9`, when all are known.
    pub(crate) fn kcvs_text(&self) -> Option<String> {
        self.custodians
            .iter()
            .map(|custodian| custodian.component_kcv.map(|kcv| kcv.to_string()))
            .collect::<Option<Vec<_>>>()
            .map(|kcvs| kcvs.join("/"))
    }
}

/// Custodian names joined as the audit trail shows them.
pub(crate) fn join_names<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names.collect::<Vec<_>>().join("/")
}

/// A ceremony that was refused: what it was for, who entered the components (as they gave
/// their names, checked or not), and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedCeremony {
    /// `KEK`, `TTK` or `BDK <name>`, or what the request said when that did not parse.
    pub secret: String,
    pub custodians: Vec<String>,
    pub reason: String,
    /// The local user who ran the command.
    pub peer: Option<String>,
}

/// One custodian's entry as it arrived: their name, their component in hex, and the
/// component's check value from their form, if given. Nothing is checked yet.
pub struct ComponentEntry<'a> {
    pub custodian: &'a str,
    pub component_hex: &'a str,
    pub form_kcv: Option<&'a str>,
}

/// A ceremony's entries, checked: every component parsed (odd parity for TDES, no repeated
/// TDES parts, its form's check value when given) under its custodian's name.
pub struct CheckedCeremony {
    /// The combined check value the custodians expect, if given.
    pub expected: Option<Kcv>,
    pub components: Vec<Component>,
    pub record: CeremonyRecord,
}

impl CheckedCeremony {
    /// XOR-combines the components; the result must be strong and match `expected`.
    pub fn combine(&self) -> Result<Combined, String> {
        component::combine(&self.components, self.expected).map_err(|error| error.to_string())
    }
}

/// Checks what custodians entered, in order: the algorithm, the expected check value (of the
/// algorithm's family), each custodian's name and component. The one check of a ceremony's
/// input, for keymotherd's `ceremony` and `bdk-ceremony` and the offline `keymother vault
/// ceremony`. Errors name the component by its number and its custodian, never its digits.
pub fn check_ceremony(
    algorithm: &str,
    expect_kcv: Option<&str>,
    entries: &[ComponentEntry<'_>],
    replace: bool,
    peer: Option<&str>,
) -> Result<CheckedCeremony, String> {
    let algorithm: KeyAlgorithm = algorithm
        .parse()
        .map_err(|error: keymother_crypto::AlgorithmError| error.to_string())?;
    let family = algorithm.family();
    let expected = expect_kcv
        .map(|text| Kcv::from_hex(family, text).map_err(|error| format!("expect_kcv: {error}")))
        .transpose()?;
    let mut components = Vec::with_capacity(entries.len());
    let mut custodians = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let number = index + 1;
        let name: CustodianName = entry
            .custodian
            .parse()
            .map_err(|error| format!("custodian {number}'s name {error}"))?;
        let form_kcv = entry
            .form_kcv
            .map(|text| {
                Kcv::from_hex(family, text)
                    .map_err(|error| format!("component {number}'s check value: {error}"))
            })
            .transpose()?;
        let component =
            Component::from_hex_expecting(algorithm, number, entry.component_hex, form_kcv)
                .map_err(|error| format!("{error} (custodian {name})"))?;
        custodians.push(Custodian {
            name,
            component_kcv: Some(component.kcv()),
        });
        components.push(component);
    }
    let mut record = CeremonyRecord::new(custodians)?.replacing(replace);
    if let Some(peer) = peer {
        record = record.run_by(peer);
    }
    Ok(CheckedCeremony {
        expected,
        components,
        record,
    })
}

impl Vault {
    /// Records a refused ceremony (`ceremony-refused`) with its custodians and the reason, in
    /// its own transaction: the refusal itself changed nothing. Returns the row's sequence.
    pub fn record_failed_ceremony(&mut self, failure: &FailedCeremony) -> Result<u64, VaultError> {
        let storage_key = live_key(&self.storage_key, &self.data_dir)?;
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let row = audit::append(
            &transaction,
            storage_key.audit_head(),
            &AuditEvent::CeremonyRefused {
                secret: failure.secret.clone(),
                custodians: join_names(failure.custodians.iter().map(String::as_str)),
                reason: failure.reason.clone(),
                peer: failure.peer.clone(),
            },
        )?;
        transaction.commit()?;
        Ok(row.sequence)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_without_being_quoted() {
        assert!("Ann Lee".parse::<CustodianName>().is_ok());
        assert!("Zoë O'Brien-Smith Jr.".parse::<CustodianName>().is_ok());
        for (text, words) in [
            ("", "is empty"),
            ("   ", "is empty"),
            (" Ann", "starts or ends"),
            ("Ann/Raj", "character 4"),
            ("Ann;DROP", "character 4"),
        ] {
            let error = text.parse::<CustodianName>().unwrap_err();
            assert!(error.contains(words), "{text:?}: {error}");
        }
        // A component typed at the name prompt is refused without being quoted; a short hex
        // word is still a name.
        for component in ["0123456789ABCDEF", "3E5B7C9102B5D6F8 1325466B8AADCEE0"] {
            let error = component.parse::<CustodianName>().unwrap_err();
            assert!(error.contains("looks like a key component"), "{error}");
            assert!(!error.contains(component), "{error}");
        }
        assert!("Abe Dace".parse::<CustodianName>().is_ok());
        assert!("Dee 0123456789ABCDEF".parse::<CustodianName>().is_err());
        assert!("Room 0123456789ABCDEF".parse::<CustodianName>().is_ok());
        let long = "A".repeat(65);
        assert!(
            long.parse::<CustodianName>()
                .unwrap_err()
                .contains("65 characters")
        );
    }

    #[test]
    fn a_ceremony_has_two_to_nine_distinct_custodians() {
        assert!(CeremonyRecord::named(&["Ann Lee"]).is_err());
        assert!(CeremonyRecord::named(&["Ann Lee", "Raj Patel"]).is_ok());
        let error = CeremonyRecord::named(&["Ann Lee", "Raj Patel", "ann lee"]).unwrap_err();
        assert!(
            error.contains("custodian 3 has the name of custodian 1"),
            "{error}"
        );
        let ten: Vec<String> = (0..10).map(|n| format!("Custodian {n}")).collect();
        let ten: Vec<&str> = ten.iter().map(String::as_str).collect();
        assert!(CeremonyRecord::named(&ten).is_err());
        assert!(CeremonyRecord::named(&ten[..9]).is_ok());
    }
}
