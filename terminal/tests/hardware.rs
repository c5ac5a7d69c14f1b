//! Against a real appliance on a real serial port, only with `--features hardware-tests`:
//! `KEYMOTHER_TEST_PORT=/dev/ttyUSB0 KEYMOTHER_TEST_TTK=<AES-256 hex> cargo test -p keymother-terminal --features hardware-tests`.
#![cfg(feature = "hardware-tests")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use keymother_crypto::{KeyAlgorithm, SecretKey};
use keymother_protocol::{Mode, TerminalConfig, TerminalOutcome};
use keymother_terminal::{SerialLine, SoftwareKeyStore, inject};

#[test]
fn a_real_appliance_injects_a_key() {
    let port =
        std::env::var("KEYMOTHER_TEST_PORT").expect("KEYMOTHER_TEST_PORT names the serial port");
    let ttk = std::env::var("KEYMOTHER_TEST_TTK").expect("KEYMOTHER_TEST_TTK holds the TTK in hex");
    let ttk = SecretKey::from_hex(KeyAlgorithm::Aes256, &ttk).unwrap();
    let mut store = SoftwareKeyStore::new(&ttk);
    let mut line = SerialLine::open(&port, 115200).unwrap();
    let serial = format!("HW{:06}", std::process::id() % 1_000_000);
    let config = TerminalConfig {
        hardware_serial: serial.parse().unwrap(),
        model: "HARDWARE-TEST".parse().unwrap(),
        modes: vec![Mode::Tr31],
        ttk_kcv: store.transport_key_kcv().as_bytes().to_vec(),
        response_timeout: Duration::from_secs(2),
        max_retries: 3,
        unconfirmed_key: None,
        unconfirmed_dukpt: Vec::new(),
        krd_credential_token: Vec::new(),
    };
    match inject(&mut line, config, &mut store).unwrap().outcome {
        TerminalOutcome::Injected { smn, .. } => assert!(smn.to_string().starts_with(&serial)),
        TerminalOutcome::Failed { reason } => panic!("injection failed: {reason}"),
        other => panic!("tr31 only here: {other:?}"),
    }
}
