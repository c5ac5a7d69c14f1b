//! Profile mode over pseudo-terminals: the real daemon delivers a device profile (a master key, an AES and a TDES DUKPT initial key) to reference terminals; device IDs are never shared, the registry holds every confirmed key, and what the terminal derives agrees with the calculator's side.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::HashSet;

use keymother_crypto::dukpt::{InitialKeyIdentity, Ksn, aes, tdes};
use keymother_crypto::pin_block::{self, Pan, Pin};
use keymother_crypto::{KeyAlgorithm, SecretKey};
use keymother_daemon::Settings;
use keymother_protocol::{Mode, TerminalOutcome};
use keymother_terminal::{PtyLine, SoftwareKeyStore, inject};
use keymother_vault::{BdkSource, NewBdk};
use support::{Appliance, InProcessDaemon, pty_pair};

/// ANSI X9.24-1-2009 A.4's BDK (TDES DUKPT).
const TDES_BDK: &str = "0123456789ABCDEFFEDCBA9876543210";
/// ANSI X9.24-3-2017's AES-128 test BDK.
const AES_BDK: &str = "FEDCBA9876543210F1F1F1F1F1F1F1F1";

/// Loads the two BDKs: `DATA` (TDES, key set FFFF987654) and `PIN` (AES, BDK ID 12345678),
/// each with `devices` device IDs starting at the published vectors' device.
fn load_bdks(appliance: &Appliance, devices: u32) {
    let mut vault = appliance.vault();
    let bdks = [
        (
            "DATA",
            KeyAlgorithm::Tdes2Key,
            TDES_BDK,
            "FFFF987654",
            0x1_9087u32,
            5,
        ),
        (
            "PIN",
            KeyAlgorithm::Aes128,
            AES_BDK,
            "12345678",
            0x9012_3456,
            8,
        ),
    ];
    for (name, algorithm, key, bdk_id, first, digits) in bdks {
        let last = first + devices - 1;
        let record = NewBdk {
            name: name.parse().unwrap(),
            bdk_id: bdk_id.parse().unwrap(),
            range: format!("{first:0digits$X}-{last:0digits$X}")
                .parse()
                .unwrap(),
            source: BdkSource::Ceremony,
            replace: false,
            ceremony: Some(
                keymother_vault::CeremonyRecord::named(&["Ann Lee", "Raj Patel"]).unwrap(),
            ),
        };
        let key = SecretKey::from_hex(algorithm, key).unwrap();
        vault.install_bdk(&record, &key, None).unwrap();
    }
}

/// Settings with `count` ports offering the profile PINPAD (master key, PIN, DATA).
fn profile_ports(appliance: &Appliance, count: usize) -> (Vec<PtyLine>, Settings) {
    let directory = appliance.directory.path();
    let mut text = format!(
        "data_dir = {:?}\n[control]\nsocket = {:?}\n[dispensing]\nidle_timeout_seconds = 5\n\
         [operator]\nrequire = false\n\
         [[profile]]\nname = \"PINPAD\"\nmodels = [\"TEST-PINPAD\"]\n\
         dukpt = [{{ bdk = \"PIN\", key_type = \"AES-128\" }}, {{ bdk = \"DATA\", key_type = \"TDES-2KEY\" }}]\n",
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
    (
        lines,
        Settings::from_toml(&text, "keymotherd.toml").unwrap(),
    )
}

/// Runs one terminal in profile mode; returns its outcome.
fn run_profile(
    line: &mut PtyLine,
    appliance: &Appliance,
    serial: &str,
    store: &mut SoftwareKeyStore,
) -> TerminalOutcome {
    let mut config = appliance.terminal(serial);
    config.modes = vec![Mode::Profile, Mode::Tr31];
    inject(line, config, store).unwrap().outcome
}

#[test]
fn a_profile_delivers_a_master_key_and_two_dukpt_initial_keys_to_each_terminal() {
    let appliance = Appliance::provisioned(20);
    load_bdks(&appliance, 16);
    let (lines, settings) = profile_ports(&appliance, 2);
    let daemon = InProcessDaemon::start(settings);
    let handles: Vec<_> = lines
        .into_iter()
        .enumerate()
        .map(|(port, mut line)| {
            let ttk_hex = appliance.transport_key_hex.clone();
            let serials: Vec<String> = (0..3).map(|n| format!("P{port}T{n}")).collect();
            let terminal = appliance.terminal("X");
            std::thread::spawn(move || {
                let mut outcomes = Vec::new();
                for serial in serials {
                    let ttk = SecretKey::from_hex(KeyAlgorithm::Aes256, &ttk_hex).unwrap();
                    let mut store = SoftwareKeyStore::new(&ttk);
                    let mut config = terminal.clone();
                    config.hardware_serial = serial.parse().unwrap();
                    config.modes = vec![Mode::Profile, Mode::Tr31];
                    let outcome = inject(&mut line, config, &mut store).unwrap().outcome;
                    outcomes.push((serial, outcome, store));
                }
                outcomes
            })
        })
        .collect();
    let mut terminals = Vec::new();
    for handle in handles {
        terminals.extend(handle.join().unwrap());
    }
    let rows = appliance.vault().dukpt_rows().unwrap();
    assert_eq!(rows.len(), 12, "two DUKPT keys for each of 6 terminals");
    let ksns: HashSet<String> = rows.iter().map(|row| row.initial_ksn.clone()).collect();
    assert_eq!(ksns.len(), 12, "no initial KSN twice");
    assert_eq!(appliance.vault().smn_rows().unwrap().len(), 6);
    for (serial, outcome, store) in &terminals {
        let TerminalOutcome::ProfileInjected {
            profile,
            master,
            dukpt,
        } = outcome
        else {
            panic!("{serial}: {outcome:?}");
        };
        assert_eq!(profile, "PINPAD");
        assert!(master.is_some());
        assert_eq!(dukpt.len(), 2);
        for key in store.dukpt_keys() {
            assert!(key.is_confirmed());
            let row = rows
                .iter()
                .find(|row| row.initial_ksn == key.identity().to_string())
                .expect("a registry row for each key the terminal holds");
            assert_eq!(row.hardware_serial.as_str(), serial);
            assert_eq!(row.kcv, key.kcv());
        }
    }
    assert!(daemon.saw(|event| matches!(event, keymother_daemon::DaemonEvent::ProfileInjected { profile, .. } if profile == "PINPAD")));
}

#[test]
fn the_first_terminal_gets_the_published_initial_keys_and_its_pin_blocks_decrypt_on_the_host_side()
{
    let appliance = Appliance::provisioned(2);
    load_bdks(&appliance, 4);
    let (mut lines, settings) = profile_ports(&appliance, 1);
    let _daemon = InProcessDaemon::start(settings);
    let mut store = appliance.key_store();
    let outcome = run_profile(&mut lines[0], &appliance, "123L013K", &mut store);
    assert!(
        matches!(outcome, TerminalOutcome::ProfileInjected { .. }),
        "{outcome:?}"
    );
    // The first device IDs of the ranges are the published vectors' devices.
    let data = store.dukpt_key("DATA").unwrap();
    assert_eq!(data.identity().to_string(), "FFFF9876543210E00000");
    let ipek =
        SecretKey::from_hex(KeyAlgorithm::Tdes2Key, "6AC292FAA1315B4D858AB3A3D7D5933A").unwrap();
    assert_eq!(data.kcv(), ipek.kcv());
    let pin = store.dukpt_key("PIN").unwrap();
    assert_eq!(pin.identity().to_string(), "1234567890123456");
    let initial =
        SecretKey::from_hex(KeyAlgorithm::Aes128, "1273671EA26AC29AFA4D1084127652A1").unwrap();
    assert_eq!(pin.kcv(), initial.kcv());
    // A test PIN block from each key decrypts with the keys the host derives from the BDK.
    let pan = Pan::new("4111111111111111").unwrap();
    for (key, bdk) in [(data, TDES_BDK), (pin, AES_BDK)] {
        let counters = match key.identity() {
            InitialKeyIdentity::Tdes(_) => [1, 7, 0x0F_F800],
            InitialKeyIdentity::Aes(_) => [1, 7, 0x2_0000],
        };
        for counter in counters {
            let (ksn, block) = key
                .test_pin_block(counter, &Pin::new("1234").unwrap(), &pan)
                .unwrap();
            let host_key = host_pin_key(bdk, &ksn, key.identity());
            let (decrypted, _) = pin_block::decrypt(&host_key, &block, &pan).unwrap();
            assert_eq!(decrypted.expose_digits(), "1234");
        }
    }
}

/// The PIN key of `ksn` as the host derives it from the BDK.
fn host_pin_key(bdk: &str, ksn: &Ksn, identity: InitialKeyIdentity) -> SecretKey {
    match (ksn, identity) {
        (Ksn::Tdes(ksn), InitialKeyIdentity::Tdes(_)) => {
            let bdk = SecretKey::from_hex(KeyAlgorithm::Tdes2Key, bdk).unwrap();
            let transaction = tdes::transaction_key_from_bdk(&bdk, ksn).unwrap();
            tdes::derive_working_key(&transaction, tdes::TdesKeyVariant::Pin).unwrap()
        }
        (Ksn::Aes(ksn), InitialKeyIdentity::Aes(_)) => {
            let bdk = SecretKey::from_hex(KeyAlgorithm::Aes128, bdk).unwrap();
            aes::working_key_from_bdk(
                &bdk,
                KeyAlgorithm::Aes128,
                ksn,
                aes::AesKeyUsage::PinEncryption,
                KeyAlgorithm::Aes128,
            )
            .unwrap()
        }
        _ => panic!("a KSN of the other kind"),
    }
}

#[test]
fn a_used_up_device_range_is_refused_and_nothing_more_is_given() {
    let appliance = Appliance::provisioned(10);
    load_bdks(&appliance, 1);
    let (mut lines, settings) = profile_ports(&appliance, 1);
    let _daemon = InProcessDaemon::start(settings);
    let mut first = appliance.key_store();
    let outcome = run_profile(&mut lines[0], &appliance, "FIRST1", &mut first);
    assert!(
        matches!(outcome, TerminalOutcome::ProfileInjected { .. }),
        "{outcome:?}"
    );
    let mut second = appliance.key_store();
    let outcome = run_profile(&mut lines[0], &appliance, "SECOND2", &mut second);
    let TerminalOutcome::Failed { reason } = outcome else {
        panic!("{outcome:?}");
    };
    assert!(reason.contains("NO_KEYS_AVAILABLE"), "{reason}");
    assert_eq!(appliance.vault().dukpt_rows().unwrap().len(), 2);
    assert_eq!(appliance.vault().dukpt_allocations().unwrap().len(), 2);
}
