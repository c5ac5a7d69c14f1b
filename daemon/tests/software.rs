//! keymotherd records its own build (version and executable SHA-256) in the audit trail the first time it runs on a vault, as after an update with keymother-update, and only then.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use sha2::{Digest, Sha256};
use support::Appliance;
use support::process::{own_group, settings_text, start_process, stop};

#[test]
fn a_new_build_is_recorded_once() {
    let appliance = Appliance::provisioned(1);
    let group = own_group();
    let (text, _port) = settings_text(&appliance, &group);
    let software_rows = || {
        appliance
            .vault()
            .audit_rows()
            .unwrap()
            .into_iter()
            .filter(|row| row.event == "software")
            .collect::<Vec<_>>()
    };
    assert!(software_rows().is_empty());
    for _ in 0..2 {
        let (daemon, _log) = start_process(&appliance, &text, &[]);
        stop(daemon);
    }
    let rows = software_rows();
    assert_eq!(rows.len(), 1, "{rows:#?}");
    let binary = std::fs::read(env!("CARGO_BIN_EXE_keymotherd")).unwrap();
    let expected = format!(
        "version={}; binary_sha256={}",
        env!("CARGO_PKG_VERSION"),
        hex::encode(Sha256::digest(&binary))
    );
    assert_eq!(rows[0].details, expected);
    assert_eq!(rows[0].actor, "system");
    appliance.vault().verify_audit().unwrap();
}
