//! Test bench: an appliance session and terminal sessions wired back to back through simulated serial lines, with fake vaults (master keys, DUKPT device IDs) as the adapter.
#![allow(
    dead_code,
    unused_imports,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod bench;
mod direct;
mod dukpt_vault;
mod line;
mod vault;

use std::time::Duration;

use keymother_protocol::{
    ApplianceConfig, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_RETRIES, DEFAULT_RESPONSE_TIMEOUT,
    DukptKind, DukptSlot, ErrorCode, Frame, FrameDecoder, HardwareSerial, KeyAlgorithm, Message,
    Mode, Profile, Smn, TerminalConfig,
};

pub use bench::*;
pub use direct::*;
pub use dukpt_vault::*;
pub use line::*;
pub use vault::*;

pub const DEVICE_ID: &str = "KM-0001";
/// An AES transport key's check value (5 bytes, CMAC method), fake.
pub const TTK_KCV: [u8; 5] = [0x1A, 0x2B, 0x3C, 0x4D, 0x5E];

pub fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

pub fn appliance_config() -> ApplianceConfig {
    ApplianceConfig {
        device_id: DEVICE_ID.to_owned(),
        ttk_kcv: TTK_KCV.to_vec(),
        modes: vec![Mode::Tr31],
        idle_timeout: DEFAULT_IDLE_TIMEOUT,
        kdh_credential_token: Vec::new(),
        certificate_requests_per_minute: 0,
        profiles: Vec::new(),
    }
}

pub fn serial(text: &str) -> HardwareSerial {
    text.parse().expect("test serial")
}

pub fn terminal_config(hardware_serial: &str) -> TerminalConfig {
    TerminalConfig {
        hardware_serial: serial(hardware_serial),
        model: "KM-REFERENCE-TERMINAL".parse().expect("test model"),
        modes: vec![Mode::Tr31],
        ttk_kcv: TTK_KCV.to_vec(),
        response_timeout: DEFAULT_RESPONSE_TIMEOUT,
        max_retries: DEFAULT_MAX_RETRIES,
        unconfirmed_key: None,
        unconfirmed_dukpt: Vec::new(),
        krd_credential_token: Vec::new(),
    }
}

/// A profile slot.
pub fn dukpt_slot(label: &str, kind: DukptKind, key_type: KeyAlgorithm) -> DukptSlot {
    DukptSlot {
        label: label.to_owned(),
        kind,
        key_type,
    }
}

/// The bench's profile: the master key, a PIN key (AES DUKPT, AES-128) and a data key (TDES
/// DUKPT), offered to every model.
pub fn three_key_profile() -> Profile {
    Profile {
        name: "POS-3KEY".to_owned(),
        models: Vec::new(),
        master_key: true,
        slots: vec![
            dukpt_slot("PIN", DukptKind::Aes, KeyAlgorithm::Aes128),
            dukpt_slot("DATA", DukptKind::Tdes, KeyAlgorithm::Tdes2Key),
        ],
    }
}

/// An appliance port offering `profile` in mode 3, and tr31.
pub fn profile_appliance_config(profile: Profile) -> ApplianceConfig {
    ApplianceConfig {
        modes: vec![Mode::Profile, Mode::Tr31],
        profiles: vec![profile],
        ..appliance_config()
    }
}

/// A terminal offering profile mode, then tr31.
pub fn profile_terminal_config(hardware_serial: &str) -> TerminalConfig {
    TerminalConfig {
        modes: vec![Mode::Profile, Mode::Tr31],
        ..terminal_config(hardware_serial)
    }
}

/// The BDKs of [`three_key_profile`] in a fake DUKPT vault, with `range` device IDs each.
pub fn dukpt_vault(range: u32) -> FakeDukptVault {
    let mut vault = FakeDukptVault::default();
    vault.load(
        "PIN",
        DukptKind::Aes,
        &[0x12, 0x34, 0x56, 0x78],
        0x9012_3456,
        range,
    );
    vault.load(
        "DATA",
        DukptKind::Tdes,
        &[0xFF, 0xFF, 0x98, 0x76, 0x54],
        0x1_9087,
        range,
    );
    vault
}

/// Decodes every frame in `bytes` (one or more whole frames).
pub fn frames_in(bytes: &[u8]) -> Vec<Frame> {
    let mut decoder = FrameDecoder::new(ms(500));
    decoder
        .push(bytes, Duration::ZERO)
        .into_iter()
        .filter_map(|event| match event {
            keymother_protocol::DecodeEvent::Frame(frame) => Some(frame),
            _ => None,
        })
        .collect()
}

/// The message in a single-frame write.
pub fn message_in(bytes: &[u8]) -> (u8, Message) {
    let frames = frames_in(bytes);
    assert_eq!(frames.len(), 1, "expected one frame in {bytes:02X?}");
    let frame = &frames[0];
    (
        frame.seq,
        Message::from_frame(frame).expect("a valid message"),
    )
}

pub fn hello_for(hardware_serial: &str, mode_ids: Vec<u8>) -> Message {
    Message::Hello(keymother_protocol::Hello {
        protocol_version: 1,
        mode_ids,
        model: "KM-REFERENCE-TERMINAL".parse().expect("test model"),
        hardware_serial: serial(hardware_serial),
        capabilities: keymother_protocol::Capabilities::DEFINED,
    })
}

pub fn dukpt_request(slot: u8) -> Message {
    Message::DukptRequest(keymother_protocol::DukptRequest { slot })
}

pub fn dukpt_confirm(slot: u8, ksn: &[u8], kcv: Vec<u8>) -> Message {
    Message::DukptConfirm(keymother_protocol::DukptConfirm {
        slot,
        ksn: ksn.to_vec(),
        kcv,
    })
}

/// KEY_REQUEST naming `mode_id`, with no mode data.
pub fn key_request_in(mode_id: u8) -> Message {
    Message::KeyRequest(keymother_protocol::KeyRequest {
        mode_id,
        mode_data: Vec::new(),
    })
}

pub fn key_request() -> Message {
    Message::KeyRequest(keymother_protocol::KeyRequest {
        mode_id: 1,
        mode_data: Vec::new(),
    })
}

pub fn confirm_for(hardware_serial: &str, key_index: u32, kcv: Vec<u8>) -> Message {
    Message::Confirm(keymother_protocol::Confirm {
        key_index,
        kcv,
        smn: Smn::new(
            &serial(hardware_serial),
            keymother_protocol::KeyIndex::new(key_index).expect("small index"),
        ),
    })
}

/// The error code of a single ERROR answer.
pub fn error_code(answers: &[(u8, Message)]) -> (u8, ErrorCode, String) {
    match answers {
        [(seq, Message::Error(error))] => (*seq, error.code, error.detail.clone()),
        other => panic!("expected one ERROR, got {other:?}"),
    }
}
