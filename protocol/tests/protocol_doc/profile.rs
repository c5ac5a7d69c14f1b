//! The profile-mode worked example of docs/PROTOCOL.md: a session with a master key, an AES DUKPT slot and a TDES DUKPT slot, run through the real sessions, and the field-by-field reading of its frames.

use keymother_protocol::{
    ApplianceAction, ApplianceConfig, ApplianceSession, Confirmed, Delivery, DukptDelivery,
    DukptKind, DukptSlot, KeyAlgorithm, KeyIndex, Message, Mode, Profile, Smn, TerminalAction,
    TerminalConfig, TerminalOutcome, TerminalSession, Welcome, profile::key_type_from_id,
};

use super::{
    Cursor, EXAMPLE_KEY_BLOCK, EXAMPLE_KEY_INDEX, EXAMPLE_MK_KCV, EXAMPLE_TTK_KCV, appliance, at,
    sent_by_appliance, sent_by_terminal, terminal_config, text,
};

/// The initial key ID of the AES DUKPT example: BDK ID `12345678`, derivation ID `90123456`
/// (the ANSI X9.24-3-2017 test vectors').
pub(super) const AES_INITIAL_KEY_ID: [u8; 8] = [0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56];
/// The initial KSN of the TDES DUKPT example (ANSI X9.24-1-2009 Annex A).
pub(super) const TDES_INITIAL_KSN: [u8; 10] =
    [0xFF, 0xFF, 0x98, 0x76, 0x54, 0x32, 0x10, 0xE0, 0x00, 0x00];
/// Placeholder check values (not the keys' real ones).
const PIN_KCV: [u8; 5] = [0xC1, 0xC2, 0xC3, 0xC4, 0xC5];
const DATA_KCV: [u8; 3] = [0xD1, 0xD2, 0xD3];
/// Placeholder initial-key blocks: real TR-31 version D headers (usage B1, mode of use X,
/// exportability N) with the IK or KS block and a padding block, in front of a fake body.
const BODY: &str = concat!(
    "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF",
    "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF",
);

fn example_profile() -> Profile {
    Profile {
        name: "ACME-T100-POS".to_owned(),
        models: vec!["ACME T100".parse().unwrap()],
        master_key: true,
        slots: vec![
            DukptSlot {
                label: "PIN".to_owned(),
                kind: DukptKind::Aes,
                key_type: KeyAlgorithm::Aes128,
            },
            DukptSlot {
                label: "DATA".to_owned(),
                kind: DukptKind::Tdes,
                key_type: KeyAlgorithm::Tdes2Key,
            },
        ],
    }
}

fn delivery(slot: u8) -> DukptDelivery {
    match slot {
        0 => DukptDelivery {
            slot,
            ksn: AES_INITIAL_KEY_ID.to_vec(),
            key_block: format!("D0144B1AX00N0200IK141234567890123456PB0C00000000{BODY}"),
            kcv: PIN_KCV.to_vec(),
        },
        _ => DukptDelivery {
            slot,
            ksn: TDES_INITIAL_KSN.to_vec(),
            key_block: format!("D0144B1TX00N0200KS18FFFF9876543210E00000PB080000{BODY}"),
            kcv: DATA_KCV.to_vec(),
        },
    }
}

/// Runs the profile session; `tr31` are the tr31 example's KEY_DELIVERY, CONFIRM and CONFIRMED,
/// which the profile's master key repeats byte for byte (so they are not shown again).
pub(super) fn examples(tr31: &[Vec<u8>; 3]) -> Vec<(String, Vec<u8>)> {
    let delivery_of_master = Delivery {
        key_index: EXAMPLE_KEY_INDEX,
        key_block: EXAMPLE_KEY_BLOCK.to_owned(),
        kcv: EXAMPLE_MK_KCV.to_vec(),
        mode_data: Vec::new(),
    };
    let confirmed_master = Confirmed {
        key_index: EXAMPLE_KEY_INDEX,
        smn: Smn::new(
            &"123L013K".parse().unwrap(),
            KeyIndex::new(EXAMPLE_KEY_INDEX).unwrap(),
        ),
    };
    let mut frames = Vec::new();
    let mut push = |title: &str, bytes: &[u8]| frames.push((title.to_owned(), bytes.to_vec()));
    let mut terminal = TerminalSession::new(TerminalConfig {
        modes: vec![Mode::Profile, Mode::Tr31],
        ..terminal_config(&EXAMPLE_TTK_KCV)
    });
    let mut appliance = ApplianceSession::new(ApplianceConfig {
        modes: vec![Mode::Profile, Mode::Tr31],
        profiles: vec![example_profile()],
        ..appliance().config().clone()
    });
    let hello = sent_by_terminal(&terminal.start(at(0)));
    push("HELLO offering profile mode, then tr31", &hello);
    let welcome = sent_by_appliance(&appliance.handle_bytes(&hello, at(10)));
    push("WELCOME choosing profile mode, with the profile", &welcome);
    let key_request = sent_by_terminal(&terminal.handle_bytes(&welcome, at(20)));
    push("KEY_REQUEST in profile mode (the master key)", &key_request);
    appliance.handle_bytes(&key_request, at(30));
    let key_delivery =
        sent_by_appliance(&appliance.handle_reservation(Ok(delivery_of_master), at(40)));
    terminal.handle_bytes(&key_delivery, at(50));
    let confirm =
        sent_by_terminal(&terminal.handle_key_installed(Ok(EXAMPLE_MK_KCV.to_vec()), at(60)));
    appliance.handle_bytes(&confirm, at(70));
    let confirmed = sent_by_appliance(&appliance.handle_confirmation(Ok(confirmed_master), at(80)));
    assert_eq!([key_delivery, confirm, confirmed.clone()], *tr31);
    let mut from_appliance = confirmed;
    let mut now = 90;
    for (slot, label) in [(0u8, "PIN, AES DUKPT"), (1, "DATA, TDES DUKPT")] {
        let request = sent_by_terminal(&terminal.handle_bytes(&from_appliance, at(now)));
        push(
            &format!("DUKPT_REQUEST for slot {slot} ({label})"),
            &request,
        );
        let actions = appliance.handle_bytes(&request, at(now + 10));
        assert!(matches!(
            actions.last(),
            Some(ApplianceAction::ReserveDukpt { .. })
        ));
        let dukpt_delivery = sent_by_appliance(
            &appliance.handle_dukpt_reservation(Ok(delivery(slot)), at(now + 20)),
        );
        push(
            &format!("DUKPT_DELIVERY for slot {slot} ({label})"),
            &dukpt_delivery,
        );
        let actions = terminal.handle_bytes(&dukpt_delivery, at(now + 30));
        let Some(TerminalAction::InstallDukptKey { kcv, .. }) = actions.last() else {
            panic!("expected InstallDukptKey, got {actions:?}");
        };
        let dukpt_confirm =
            sent_by_terminal(&terminal.handle_dukpt_installed(Ok(kcv.clone()), at(now + 40)));
        push(&format!("DUKPT_CONFIRM for slot {slot}"), &dukpt_confirm);
        appliance.handle_bytes(&dukpt_confirm, at(now + 50));
        from_appliance =
            sent_by_appliance(&appliance.handle_dukpt_confirmation(Ok(()), at(now + 60)));
        push(&format!("DUKPT_CONFIRMED for slot {slot}"), &from_appliance);
        now += 100;
    }
    let actions = terminal.handle_bytes(&from_appliance, at(now));
    assert!(matches!(
        actions.last(),
        Some(TerminalAction::Finished(
            TerminalOutcome::ProfileInjected { .. }
        ))
    ));
    frames
}

/// WELCOME's profile, field by field.
pub(super) fn annotate_welcome(c: &mut Cursor<'_>, welcome: &Welcome) {
    let profile = Profile::decode(&welcome.mode_data).unwrap();
    let n = c.length();
    c.take("profile name length", 1, n.to_string());
    c.take("profile name", n, text(profile.name.as_bytes()));
    let master = if profile.master_key {
        "1 (the master key first)"
    } else {
        "0 (none)"
    };
    c.take("master key", 1, master.to_owned());
    c.take("slot count", 1, profile.slots.len().to_string());
    for (number, slot) in profile.slots.iter().enumerate() {
        c.take(
            &format!("slot {number} DUKPT kind"),
            1,
            format!("{} ({})", slot.kind.id(), slot.kind),
        );
        let key_type = key_type_from_id(c.bytes[c.at]).unwrap();
        c.take(
            &format!("slot {number} key type"),
            1,
            format!("{} ({key_type})", c.bytes[c.at]),
        );
        let n = c.length();
        c.take(&format!("slot {number} label length"), 1, n.to_string());
        c.take(
            &format!("slot {number} label"),
            n,
            text(slot.label.as_bytes()),
        );
    }
}

/// A DUKPT message, field by field.
pub(super) fn annotate_dukpt(c: &mut Cursor<'_>, message: &Message) {
    let (slot, ksn, key_block, kcv) = match message {
        Message::DukptRequest(request) => (request.slot, None, None, None),
        Message::DukptDelivery(delivery) => (
            delivery.slot,
            Some(&delivery.ksn),
            Some(&delivery.key_block),
            Some(&delivery.kcv),
        ),
        Message::DukptConfirm(confirm) => {
            (confirm.slot, Some(&confirm.ksn), None, Some(&confirm.kcv))
        }
        Message::DukptConfirmed(confirmed) => (confirmed.slot, Some(&confirmed.ksn), None, None),
        other => panic!("{other:?} is not a DUKPT message"),
    };
    c.take("slot", 1, slot.to_string());
    if let Some(ksn) = ksn {
        c.take("KSN length", 1, ksn.len().to_string());
        let what = if ksn.len() == 10 {
            "initial KSN (TDES DUKPT)"
        } else {
            "initial key ID (AES DUKPT)"
        };
        let digits: String = ksn.iter().map(|byte| format!("{byte:02X}")).collect();
        c.take("KSN", ksn.len(), format!("`{digits}`, the {what}"));
    }
    if let Some(key_block) = key_block {
        c.take("key block length", 2, key_block.len().to_string());
        c.take("key block", key_block.len(), text(key_block.as_bytes()));
    }
    if let Some(kcv) = kcv {
        c.take("KCV length", 1, kcv.len().to_string());
        c.take("KCV", kcv.len(), String::new());
    }
}
