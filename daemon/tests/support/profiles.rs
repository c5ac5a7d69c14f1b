//! Profile-mode benches: test BDKs loaded into the vault, settings whose ports offer a device profile, terminals speaking profile mode, and what the terminals hold checked against the DUKPT allocations and registry.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeSet, HashMap, HashSet};

use keymother_crypto::{Kcv, KeyAlgorithm, SecretKey};
use keymother_daemon::Settings;
use keymother_protocol::{Mode, TerminalConfig, TerminalOutcome};
use keymother_terminal::{PtyLine, SoftwareKeyStore};
use keymother_vault::{BdkSource, KeyState, NewBdk};

use super::{Appliance, pty_pair};

/// A BDK to load: its name on the appliance, key, identifier and first device ID.
pub struct TestBdk {
    pub name: &'static str,
    pub algorithm: KeyAlgorithm,
    pub key: &'static str,
    pub bdk_id: &'static str,
    pub first_device: u32,
    /// Hex digits of a device ID in a range (5 TDES, 8 AES).
    pub digits: usize,
}

/// ANSI X9.24-1-2009 A.4's BDK (TDES DUKPT), key set FFFF987654, from the published device.
pub const DATA: TestBdk = TestBdk {
    name: "DATA",
    algorithm: KeyAlgorithm::Tdes2Key,
    key: "0123456789ABCDEFFEDCBA9876543210",
    bdk_id: "FFFF987654",
    first_device: 0x1_9087,
    digits: 5,
};

/// ANSI X9.24-3-2017's AES-128 test BDK, BDK ID 12345678, from the published device.
pub const PIN: TestBdk = TestBdk {
    name: "PIN",
    algorithm: KeyAlgorithm::Aes128,
    key: "FEDCBA9876543210F1F1F1F1F1F1F1F1",
    bdk_id: "12345678",
    first_device: 0x9012_3456,
    digits: 8,
};

/// The slots of the profile PINPAD: an AES-128 key from PIN, then a TDES-2KEY key from DATA.
pub const PINPAD_SLOTS: &str =
    r#"[{ bdk = "PIN", key_type = "AES-128" }, { bdk = "DATA", key_type = "TDES-2KEY" }]"#;

/// Seals `bdk` into the vault with `devices` device IDs from its first device.
pub fn load_bdk(appliance: &Appliance, bdk: &TestBdk, devices: u32) {
    let last = bdk.first_device + devices - 1;
    let (first, digits) = (bdk.first_device, bdk.digits);
    let record = NewBdk {
        name: bdk.name.parse().unwrap(),
        bdk_id: bdk.bdk_id.parse().unwrap(),
        range: format!("{first:0digits$X}-{last:0digits$X}")
            .parse()
            .unwrap(),
        source: BdkSource::Ceremony,
        replace: false,
        ceremony: Some(keymother_vault::CeremonyRecord::named(&["Ann Lee", "Raj Patel"]).unwrap()),
    };
    let key = SecretKey::from_hex(bdk.algorithm, bdk.key).unwrap();
    appliance.vault().install_bdk(&record, &key, None).unwrap();
}

/// Loads PIN and DATA, each with `devices` device IDs.
pub fn load_bdks(appliance: &Appliance, devices: u32) {
    load_bdk(appliance, &PIN, devices);
    load_bdk(appliance, &DATA, devices);
}

/// Settings with `count` ports offering the profile PINPAD for the model TEST-PINPAD: the
/// master key and the DUKPT `slots` (TOML). Also written to [`Appliance::config_path`], for a
/// daemon run as a process.
pub fn profile_ports(appliance: &Appliance, count: usize, slots: &str) -> (Vec<PtyLine>, Settings) {
    let directory = appliance.directory.path();
    let mut text = format!(
        "data_dir = {:?}\n[control]\nsocket = {:?}\n[dispensing]\nidle_timeout_seconds = 5\n\
         [operator]\nrequire = false\n\
         [[profile]]\nname = \"PINPAD\"\nmodels = [\"TEST-PINPAD\"]\ndukpt = {slots}\n",
        appliance.data_dir,
        directory.join("control.sock")
    );
    let mut lines = Vec::new();
    for number in 0..count {
        let (line, link) = pty_pair(directory, &format!("port-{number}"));
        lines.push(line);
        text.push_str(&format!(
            "[[port]]\nname = \"bench-{number}\"\npath = {link:?}\nprofiles = [\"PINPAD\"]\n"
        ));
    }
    std::fs::write(appliance.config_path(), &text).unwrap();
    (
        lines,
        Settings::from_toml(&text, "keymotherd.toml").unwrap(),
    )
}

/// A terminal of the model TEST-PINPAD offering profile mode, then tr31 mode.
pub fn profile_terminal(appliance: &Appliance, serial: &str) -> TerminalConfig {
    let mut config = appliance.terminal(serial);
    config.modes = vec![Mode::Profile, Mode::Tr31];
    config
}

/// A profile the terminal saw injected: the master key and, per slot, the key it holds.
pub struct InjectedProfile {
    /// The master key's index and SMN.
    pub master: (u32, String),
    /// Each slot's label, initial KSN or key ID (hex) and check value, from the key store.
    pub keys: Vec<(String, String, Kcv)>,
}

/// What one terminal saw over all its sessions.
pub struct ProfileTerminal {
    pub serial: String,
    /// Every (label, initial KSN or key ID) its key store held after a session.
    pub held: BTreeSet<(String, String)>,
    /// Every master key index its key store held after a session.
    pub masters: BTreeSet<u32>,
    /// Sessions run.
    pub sessions: usize,
    /// Sessions that failed while the store held a DUKPT key: the next one resumed it.
    pub failed_holding_dukpt: usize,
    /// Set when a session ended with ProfileInjected.
    pub injected: Option<InjectedProfile>,
}

impl ProfileTerminal {
    pub fn new(serial: &str) -> ProfileTerminal {
        ProfileTerminal {
            serial: serial.to_owned(),
            held: BTreeSet::new(),
            masters: BTreeSet::new(),
            sessions: 0,
            failed_holding_dukpt: 0,
            injected: None,
        }
    }

    /// Records what the store holds after a session that ended with `outcome`; true when the
    /// profile was injected.
    pub fn after_session(&mut self, outcome: &TerminalOutcome, store: &SoftwareKeyStore) -> bool {
        self.sessions += 1;
        for key in store.dukpt_keys() {
            self.held
                .insert((key.label().to_owned(), key.identity().to_string()));
        }
        self.masters
            .extend(store.installed().map(|(index, _)| index));
        let TerminalOutcome::ProfileInjected { master, dukpt, .. } = outcome else {
            if !store.dukpt_keys().is_empty() {
                self.failed_holding_dukpt += 1;
            }
            return false;
        };
        let (index, smn) = master.clone().expect("PINPAD has a master key");
        let mut keys = Vec::new();
        for (label, ksn) in dukpt {
            let key = store
                .dukpt_key(label)
                .expect("the store holds each slot's key");
            assert!(key.is_confirmed(), "{}: {label} not confirmed", self.serial);
            assert_eq!(key.identity().to_bytes(), *ksn, "{}: {label}", self.serial);
            keys.push((label.clone(), key.identity().to_string(), key.kcv()));
        }
        self.injected = Some(InjectedProfile {
            master: (index, smn.to_string()),
            keys,
        });
        true
    }
}

/// Counts of what [`check_profiles`] looked at.
#[derive(Debug)]
pub struct ProfileTally {
    pub injected: usize,
    pub sessions: usize,
    /// Sessions that failed while the terminal held a DUKPT key (resumed by the next one).
    pub failed_holding_dukpt: usize,
    pub allocations: usize,
    pub registry_rows: usize,
}

/// Checks the vault against the terminals: no device ID of a BDK reached two terminals
/// (neither in what the terminals held nor in the allocations), no terminal has two live
/// (non-void) allocations of one BDK, every key a terminal held is allocated to it, and every
/// terminal that saw ProfileInjected has its SMN row and a registry row per slot with the
/// initial KSN and check value its key store holds.
pub fn check_profiles(appliance: &Appliance, terminals: &[ProfileTerminal]) -> ProfileTally {
    let vault = appliance.vault();
    // What the terminals received: no initial key at two hardware serials.
    let mut receivers: HashMap<&(String, String), HashSet<&str>> = HashMap::new();
    for terminal in terminals {
        for key in &terminal.held {
            receivers.entry(key).or_default().insert(&terminal.serial);
        }
    }
    for (key, serials) in &receivers {
        assert_eq!(serials.len(), 1, "initial key {key:?} reached {serials:?}");
    }
    // The allocations: one row per (BDK, device ID) by construction; one live one per
    // (terminal, BDK); and each key a terminal held is allocated to it.
    let allocations = vault.dukpt_allocations().unwrap();
    let mut live: HashMap<(String, String), Vec<String>> = HashMap::new();
    let mut allocated: HashMap<(String, String), String> = HashMap::new();
    for allocation in &allocations {
        let bdk = allocation.bdk.to_string();
        let previous = allocated.insert(
            (bdk.clone(), allocation.initial_ksn.clone()),
            allocation.hardware_serial.to_string(),
        );
        assert!(
            previous.is_none(),
            "{} allocated twice",
            allocation.initial_ksn
        );
        if allocation.state != KeyState::Void {
            live.entry((allocation.hardware_serial.to_string(), bdk))
                .or_default()
                .push(allocation.initial_ksn.clone());
        }
    }
    for ((serial, bdk), ksns) in &live {
        assert_eq!(ksns.len(), 1, "{serial} holds {ksns:?} of BDK {bdk}");
    }
    for (key, serials) in &receivers {
        let serial = serials.iter().next().unwrap();
        assert_eq!(
            allocated.get(key).map(String::as_str),
            Some(*serial),
            "{key:?}"
        );
    }
    check_master_keys(appliance, terminals);
    let registry = check_registry(appliance, terminals, &allocated);
    ProfileTally {
        injected: terminals.iter().filter(|t| t.injected.is_some()).count(),
        sessions: terminals.iter().map(|t| t.sessions).sum(),
        failed_holding_dukpt: terminals.iter().map(|t| t.failed_holding_dukpt).sum(),
        allocations: allocations.len(),
        registry_rows: registry,
    }
}

/// No master key index reached two terminals, and the vault binds each to its terminal.
fn check_master_keys(appliance: &Appliance, terminals: &[ProfileTerminal]) {
    let bound: HashMap<u32, String> = appliance
        .vault()
        .key_assignments()
        .unwrap()
        .into_iter()
        .map(|(index, serial, _)| (index, serial))
        .collect();
    let mut receivers: HashMap<u32, &str> = HashMap::new();
    for terminal in terminals {
        for index in &terminal.masters {
            if let Some(other) = receivers.insert(*index, &terminal.serial) {
                panic!("master key {index} reached {other} and {}", terminal.serial);
            }
            assert_eq!(
                bound.get(index),
                Some(&terminal.serial),
                "master key {index}"
            );
        }
    }
}

/// The registry rows agree with the allocations (one per device ID, and per terminal and
/// BDK) and every injected terminal has its rows; returns how many rows there are.
fn check_registry(
    appliance: &Appliance,
    terminals: &[ProfileTerminal],
    allocated: &HashMap<(String, String), String>,
) -> usize {
    let vault = appliance.vault();
    let rows = vault.dukpt_rows().unwrap();
    let mut by_key = HashMap::new();
    let mut per_terminal = HashSet::new();
    for row in &rows {
        let key = (row.bdk.to_string(), row.initial_ksn.clone());
        assert_eq!(
            allocated.get(&key).map(String::as_str),
            Some(row.hardware_serial.as_str()),
            "registry row {key:?}"
        );
        assert!(by_key.insert(key.clone(), row).is_none(), "{key:?} twice");
        assert!(
            per_terminal.insert((row.hardware_serial.to_string(), row.bdk.to_string())),
            "{} has two registry rows of BDK {}",
            row.hardware_serial,
            row.bdk
        );
    }
    let smn_rows: HashMap<u32, (String, String)> = vault
        .smn_rows()
        .unwrap()
        .into_iter()
        .map(|row| {
            let owner = (row.hardware_serial.to_string(), row.smn.to_string());
            (row.key_index.value(), owner)
        })
        .collect();
    for terminal in terminals {
        let Some(injected) = &terminal.injected else {
            continue;
        };
        let (index, smn) = &injected.master;
        assert_eq!(
            smn_rows.get(index),
            Some(&(terminal.serial.clone(), smn.clone())),
            "{}: SMN row",
            terminal.serial
        );
        for (label, ksn, kcv) in &injected.keys {
            let row = by_key
                .get(&(label.clone(), ksn.clone()))
                .unwrap_or_else(|| {
                    panic!("{}: no registry row for {label} {ksn}", terminal.serial)
                });
            assert_eq!(row.hardware_serial.as_str(), terminal.serial);
            assert_eq!(row.kcv, *kcv, "{}: {label}", terminal.serial);
        }
    }
    rows.len()
}
