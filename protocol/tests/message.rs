//! Messages: round trips for every type, canonical bytes, and a typed error naming the field for every malformed field.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use keymother_protocol::message::{
    Capabilities, MAX_DETAIL_LENGTH, MAX_KEY_BLOCK_LENGTH, MIN_KEY_BLOCK_LENGTH,
};
use keymother_protocol::{
    Abort, AbortReason, Confirm, Confirmed, DecodeError, Delivery, DukptConfirm, DukptConfirmed,
    DukptDelivery, DukptRequest, EncodeError, ErrorCode, ErrorMessage, Field, FieldProblem,
    HardwareSerial, Hello, IdentityError, KeyRequest, Message, MessageType, Smn, TerminalModel,
    Welcome,
};
use proptest::prelude::*;

fn serial_strategy() -> impl Strategy<Value = HardwareSerial> {
    "[A-Z0-9]{1,24}".prop_map(|text| text.parse().unwrap())
}

fn model_strategy() -> impl Strategy<Value = TerminalModel> {
    "[ -~]{1,32}".prop_map(|text| text.parse().unwrap())
}

fn smn_strategy() -> impl Strategy<Value = Smn> {
    (serial_strategy(), 0u32..=99_999_999).prop_map(|(serial, index)| {
        Smn::new(&serial, keymother_protocol::KeyIndex::new(index).unwrap())
    })
}

fn kcv_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 3),
        prop::collection::vec(any::<u8>(), 5)
    ]
}

fn detail_strategy() -> impl Strategy<Value = String> {
    "[ -~]{0,200}"
}

fn message_strategy() -> impl Strategy<Value = Message> {
    prop_oneof![
        (
            prop::collection::vec(any::<u8>(), 1..=32),
            model_strategy(),
            serial_strategy(),
            any::<u16>()
        )
            .prop_map(|(mode_ids, model, hardware_serial, capabilities)| {
                Message::Hello(Hello {
                    protocol_version: 1,
                    mode_ids,
                    model,
                    hardware_serial,
                    capabilities: Capabilities::from_bits(capabilities),
                })
            }),
        prop_oneof![
            Just(Message::KeyRequest(KeyRequest {
                mode_id: 1,
                mode_data: vec![]
            })),
            (2u8.., prop::collection::vec(any::<u8>(), 0..100)).prop_map(|(mode_id, mode_data)| {
                Message::KeyRequest(KeyRequest { mode_id, mode_data })
            }),
        ],
        (0u32..=99_999_999, kcv_strategy(), smn_strategy()).prop_map(|(key_index, kcv, smn)| {
            Message::Confirm(Confirm {
                key_index,
                kcv,
                smn,
            })
        }),
        (any::<u8>(), detail_strategy()).prop_map(|(reason, detail)| {
            Message::Abort(Abort {
                reason: AbortReason(reason),
                detail,
            })
        }),
        (any::<u8>(), "[ -~]{1,32}", kcv_strategy()).prop_map(
            |(protocol_version, device_id, ttk_kcv)| {
                Message::Welcome(Welcome {
                    protocol_version,
                    mode_id: 1,
                    device_id,
                    ttk_kcv,
                    mode_data: Vec::new(),
                })
            }
        ),
        (
            any::<u8>(),
            2u8..,
            "[ -~]{1,32}",
            kcv_strategy(),
            prop::collection::vec(any::<u8>(), 0..100)
        )
            .prop_map(
                |(protocol_version, mode_id, device_id, ttk_kcv, mode_data)| {
                    Message::Welcome(Welcome {
                        protocol_version,
                        mode_id,
                        device_id,
                        ttk_kcv,
                        mode_data,
                    })
                }
            ),
        (
            0u32..=99_999_999,
            "[ -~]{16,300}",
            kcv_strategy(),
            prop::collection::vec(any::<u8>(), 0..100)
        )
            .prop_map(|(key_index, key_block, kcv, mode_data)| {
                Message::KeyDelivery(Delivery {
                    key_index,
                    key_block,
                    kcv,
                    mode_data,
                })
            }),
        (0u32..=99_999_999, smn_strategy())
            .prop_map(|(key_index, smn)| Message::Confirmed(Confirmed { key_index, smn })),
        Just(Message::Ack),
        (any::<u16>(), detail_strategy()).prop_map(|(code, detail)| {
            Message::Error(ErrorMessage {
                code: ErrorCode(code),
                detail,
            })
        }),
        Just(Message::Nak),
        dukpt_message_strategy(),
    ]
}

fn ksn_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 8),
        prop::collection::vec(any::<u8>(), 10)
    ]
}

/// Profile mode's four messages.
fn dukpt_message_strategy() -> impl Strategy<Value = Message> {
    prop_oneof![
        any::<u8>().prop_map(|slot| Message::DukptRequest(DukptRequest { slot })),
        (any::<u8>(), ksn_strategy(), "[ -~]{16,300}", kcv_strategy()).prop_map(
            |(slot, ksn, key_block, kcv)| {
                Message::DukptDelivery(DukptDelivery {
                    slot,
                    ksn,
                    key_block,
                    kcv,
                })
            }
        ),
        (any::<u8>(), ksn_strategy(), kcv_strategy())
            .prop_map(|(slot, ksn, kcv)| Message::DukptConfirm(DukptConfirm { slot, ksn, kcv })),
        (any::<u8>(), ksn_strategy())
            .prop_map(|(slot, ksn)| Message::DukptConfirmed(DukptConfirmed { slot, ksn })),
    ]
}

proptest! {
    #[test]
    fn every_message_round_trips(message in message_strategy(), seq in any::<u8>()) {
        let payload = message.encode_payload().unwrap();
        let type_id = message.message_type().id();
        let decoded = Message::decode(type_id, &payload).unwrap();
        prop_assert_eq!(&decoded, &message);
        prop_assert_eq!(decoded.encode_payload().unwrap(), payload);
        // And through a frame.
        let frame = message.to_frame(seq).unwrap();
        prop_assert_eq!(frame.seq, seq);
        prop_assert_eq!(Message::from_frame(&frame).unwrap(), message);
    }

    #[test]
    fn decoding_never_panics_and_is_canonical(
        type_id in any::<u8>(),
        payload in prop::collection::vec(any::<u8>(), 0..120),
    ) {
        if let Ok(message) = Message::decode(type_id, &payload) {
            prop_assert_eq!(message.message_type().id(), type_id);
            prop_assert_eq!(message.encode_payload().unwrap(), payload);
        }
    }

    #[test]
    fn a_cut_payload_is_truncated_or_invalid_never_accepted(
        message in message_strategy(),
        cut in any::<prop::sample::Index>(),
    ) {
        let payload = message.encode_payload().unwrap();
        prop_assume!(!payload.is_empty());
        let short = &payload[..cut.index(payload.len())];
        // Some shorter payloads are valid messages of their own (a shorter detail, say); they
        // must then be a different message.
        if let Ok(other) = Message::decode(message.message_type().id(), short) {
            prop_assert_ne!(other, message);
        }
    }
}

fn hello_payload() -> Vec<u8> {
    Message::Hello(Hello {
        protocol_version: 1,
        mode_ids: vec![1],
        model: "M".parse().unwrap(),
        hardware_serial: "123L013K".parse().unwrap(),
        capabilities: Capabilities::TR31_VERSION_B,
    })
    .encode_payload()
    .unwrap()
}

fn field_error(type_id: u8, payload: &[u8]) -> (Field, FieldProblem) {
    match Message::decode(type_id, payload) {
        Err(DecodeError::Field {
            field,
            problem,
            message,
        }) => {
            assert_eq!(message.id(), type_id);
            (field, problem)
        }
        other => panic!("expected a field error, got {other:?}"),
    }
}

fn length_problem(found: usize) -> impl Fn(&FieldProblem) -> bool {
    move |problem| matches!(problem, FieldProblem::Length { found: f, .. } if *f == found)
}

#[test]
fn unknown_type() {
    assert_eq!(
        Message::decode(0x42, &[]),
        Err(DecodeError::UnknownType(0x42))
    );
    assert_eq!(
        Message::decode(0x00, &[]),
        Err(DecodeError::UnknownType(0x00))
    );
}

#[test]
fn hello_errors_name_each_field() {
    let hello = hello_payload(); // 01 01 01 01 'M' 08 "123L013K" 00 01
    assert_eq!(
        field_error(0x11, &[]),
        (Field::ProtocolVersion, FieldProblem::Truncated)
    );
    assert_eq!(
        Message::decode(0x11, &[2]),
        Err(DecodeError::UnsupportedVersion(2))
    );
    assert_eq!(
        Message::decode(0x11, &[0, 1, 1]),
        Err(DecodeError::UnsupportedVersion(0))
    );
    let (field, problem) = field_error(0x11, &[1, 0]);
    assert!(field == Field::ModeCount && length_problem(0)(&problem));
    let (field, problem) = field_error(0x11, &[1, 33]);
    assert!(field == Field::ModeCount && length_problem(33)(&problem));
    assert_eq!(
        field_error(0x11, &[1, 2, 1]),
        (Field::ModeIds, FieldProblem::Truncated)
    );
    assert_eq!(
        field_error(0x11, &hello[..3]),
        (Field::ModelLength, FieldProblem::Truncated)
    );
    let mut bad = hello.clone();
    bad[3] = 0;
    let (field, problem) = field_error(0x11, &bad);
    assert!(field == Field::ModelLength && length_problem(0)(&problem));
    let mut bad = hello.clone();
    bad[4] = 0x7F;
    assert_eq!(
        field_error(0x11, &bad),
        (
            Field::Model,
            FieldProblem::Character {
                position: 1,
                byte: 0x7F,
                allowed: "printable ASCII 0x20-0x7E"
            }
        )
    );
    let mut bad = hello.clone();
    bad[5] = 25;
    let (field, problem) = field_error(0x11, &bad);
    assert!(field == Field::SerialLength && length_problem(25)(&problem));
    let mut bad = hello.clone();
    bad[8] = b'l';
    assert!(matches!(
        field_error(0x11, &bad),
        (
            Field::HardwareSerial,
            FieldProblem::Identity(IdentityError::BadCharacter {
                position: 3,
                found: 'l',
                ..
            })
        )
    ));
    assert_eq!(
        field_error(0x11, &hello[..hello.len() - 1]),
        (Field::Capabilities, FieldProblem::Truncated)
    );
    let mut long = hello.clone();
    long.push(0);
    assert_eq!(
        field_error(0x11, &long),
        (Field::Payload, FieldProblem::TrailingBytes { count: 1 })
    );
}

fn confirm_payload() -> Vec<u8> {
    Message::Confirm(Confirm {
        key_index: 278,
        kcv: vec![1, 2, 3],
        smn: "123L013K00000278".parse().unwrap(),
    })
    .encode_payload()
    .unwrap()
}

#[test]
fn confirm_errors_name_each_field() {
    let confirm = confirm_payload(); // idx(4) 03 kcv(3) 10 smn(16)
    assert_eq!(
        field_error(0x13, &confirm[..3]),
        (Field::KeyIndex, FieldProblem::Truncated)
    );
    let mut bad = confirm.clone();
    bad[..4].copy_from_slice(&100_000_000u32.to_be_bytes());
    assert_eq!(
        field_error(0x13, &bad),
        (
            Field::KeyIndex,
            FieldProblem::OutOfRange {
                value: 100_000_000,
                max: 99_999_999
            }
        )
    );
    let mut bad = confirm.clone();
    bad[4] = 4;
    let (field, problem) = field_error(0x13, &bad);
    assert!(field == Field::KcvLength && length_problem(4)(&problem));
    assert_eq!(
        field_error(0x13, &confirm[..6]),
        (Field::Kcv, FieldProblem::Truncated)
    );
    let mut bad = confirm.clone();
    bad[8] = 8;
    let (field, problem) = field_error(0x13, &bad);
    assert!(field == Field::SmnLength && length_problem(8)(&problem));
    let mut bad = confirm.clone();
    let last = bad.len() - 1;
    bad[last] = b'X';
    assert!(matches!(
        field_error(0x13, &bad),
        (
            Field::Smn,
            FieldProblem::Identity(IdentityError::SmnIndexNotDigits {
                position: 16,
                found: 'X'
            })
        )
    ));
    assert_eq!(
        field_error(0x13, &confirm[..20]),
        (Field::Smn, FieldProblem::Truncated)
    );
}

#[test]
fn key_request_errors() {
    assert_eq!(
        field_error(0x12, &[]),
        (Field::Mode, FieldProblem::Truncated)
    );
    assert_eq!(
        field_error(0x12, &[1, 0]),
        (Field::Payload, FieldProblem::TrailingBytes { count: 1 })
    );
    // A later mode's data is carried as it is.
    assert_eq!(
        Message::decode(0x12, &[2, 9, 9]),
        Ok(Message::KeyRequest(KeyRequest {
            mode_id: 2,
            mode_data: vec![9, 9]
        }))
    );
}

#[test]
fn abort_and_error_errors() {
    assert_eq!(
        field_error(0x14, &[]),
        (Field::Reason, FieldProblem::Truncated)
    );
    assert_eq!(
        field_error(0x14, &[1]),
        (Field::DetailLength, FieldProblem::Truncated)
    );
    let (field, problem) = field_error(0x14, &[1, 201]);
    assert!(field == Field::DetailLength && length_problem(201)(&problem));
    assert_eq!(
        field_error(0x14, &[1, 2, b'a']),
        (Field::Detail, FieldProblem::Truncated)
    );
    assert!(matches!(
        field_error(0x14, &[1, 2, b'a', b'\n']),
        (
            Field::Detail,
            FieldProblem::Character {
                position: 2,
                byte: b'\n',
                ..
            }
        )
    ));
    assert_eq!(
        field_error(0x9F, &[0]),
        (Field::Code, FieldProblem::Truncated)
    );
    assert_eq!(
        field_error(0x9F, &[0, 1]),
        (Field::DetailLength, FieldProblem::Truncated)
    );
    assert!(matches!(
        field_error(0x9F, &[0, 1, 1, 0x80]),
        (Field::Detail, FieldProblem::Character { byte: 0x80, .. })
    ));
    assert_eq!(
        Message::decode(0x9F, &[0x12, 0x34, 0]),
        Ok(Message::Error(ErrorMessage {
            code: ErrorCode(0x1234),
            detail: String::new()
        }))
    );
}

#[test]
fn welcome_errors() {
    assert_eq!(
        field_error(0x91, &[1]),
        (Field::Mode, FieldProblem::Truncated)
    );
    let (field, problem) = field_error(0x91, &[1, 1, 0]);
    assert!(field == Field::DeviceIdLength && length_problem(0)(&problem));
    let (field, problem) = field_error(0x91, &[1, 1, 33]);
    assert!(field == Field::DeviceIdLength && length_problem(33)(&problem));
    assert_eq!(
        field_error(0x91, &[1, 1, 1, b'K']),
        (Field::TtkKcvLength, FieldProblem::Truncated)
    );
    let (field, problem) = field_error(0x91, &[1, 1, 1, b'K', 0]);
    assert!(field == Field::TtkKcvLength && length_problem(0)(&problem));
    assert_eq!(
        field_error(0x91, &[1, 1, 1, b'K', 5, 1]),
        (Field::TtkKcv, FieldProblem::Truncated)
    );
}

#[test]
fn key_delivery_and_confirmed_errors() {
    let mut payload = 1u32.to_be_bytes().to_vec();
    payload.extend_from_slice(&15u16.to_be_bytes());
    let (field, problem) = field_error(0x92, &payload);
    assert!(field == Field::KeyBlockLength && length_problem(15)(&problem));
    let mut payload = 1u32.to_be_bytes().to_vec();
    payload.extend_from_slice(&16u16.to_be_bytes());
    payload.extend_from_slice(b"D0000K0AD00N000");
    assert_eq!(
        field_error(0x92, &payload),
        (Field::KeyBlock, FieldProblem::Truncated)
    );
    payload.push(0x00);
    assert!(matches!(
        field_error(0x92, &payload),
        (
            Field::KeyBlock,
            FieldProblem::Character {
                position: 16,
                byte: 0,
                ..
            }
        )
    ));
    *payload.last_mut().unwrap() = b'0';
    assert_eq!(
        field_error(0x92, &payload),
        (Field::KcvLength, FieldProblem::Truncated)
    );
    assert_eq!(
        field_error(0x93, &[0, 0, 0, 1]),
        (Field::SmnLength, FieldProblem::Truncated)
    );
    assert_eq!(
        field_error(0x93, &[0xFF, 0xFF, 0xFF, 0xFF]),
        (
            Field::KeyIndex,
            FieldProblem::OutOfRange {
                value: 0xFFFF_FFFF,
                max: 99_999_999
            }
        )
    );
}

#[test]
fn ack_and_nak_are_empty() {
    assert_eq!(Message::decode(0x94, &[]), Ok(Message::Ack));
    assert_eq!(Message::decode(0x15, &[]), Ok(Message::Nak));
    assert_eq!(
        field_error(0x15, &[0]),
        (Field::Payload, FieldProblem::TrailingBytes { count: 1 })
    );
    assert_eq!(
        field_error(0x94, &[0, 0]),
        (Field::Payload, FieldProblem::TrailingBytes { count: 2 })
    );
}

#[test]
fn errors_read_well() {
    let mut bad = hello_payload();
    bad[8] = b'l';
    let error = Message::decode(0x11, &bad).unwrap_err();
    assert_eq!(
        error.to_string(),
        "HELLO hardware serial: hardware serial: character 3 is 'l'; allowed: A-Z and 0-9"
    );
    assert_eq!(error.field(), Some(Field::HardwareSerial));
}

#[test]
fn encoding_refuses_what_the_protocol_cannot_carry() {
    let detail = |message: Message| match message.encode_payload() {
        Err(EncodeError::Field { field, .. }) => field,
        other => panic!("expected an encode error, got {other:?}"),
    };
    assert_eq!(
        detail(Message::Error(ErrorMessage {
            code: ErrorCode::INTERNAL_ERROR,
            detail: "x".repeat(MAX_DETAIL_LENGTH + 1)
        })),
        Field::Detail
    );
    assert_eq!(
        detail(Message::Abort(Abort {
            reason: AbortReason::CANCELLED,
            detail: "tab\t".into()
        })),
        Field::Detail
    );
    assert_eq!(
        detail(Message::Confirm(Confirm {
            key_index: 1,
            kcv: vec![0; 4],
            smn: "A00000001".parse().unwrap()
        })),
        Field::Kcv
    );
    assert_eq!(
        detail(Message::Confirmed(Confirmed {
            key_index: 100_000_000,
            smn: "A00000001".parse().unwrap()
        })),
        Field::KeyIndex
    );
    for length in [MIN_KEY_BLOCK_LENGTH - 1, MAX_KEY_BLOCK_LENGTH + 1] {
        assert_eq!(
            detail(Message::KeyDelivery(Delivery {
                key_index: 1,
                key_block: "B".repeat(length),
                kcv: vec![0; 3],
                mode_data: Vec::new(),
            })),
            Field::KeyBlock
        );
    }
    // The longest key block fits a frame exactly.
    let longest = Message::KeyDelivery(Delivery {
        key_index: 1,
        key_block: "B".repeat(MAX_KEY_BLOCK_LENGTH),
        kcv: vec![0; 5],
        mode_data: Vec::new(),
    });
    assert_eq!(
        longest.encode_frame(0).unwrap().len(),
        keymother_protocol::MAX_FRAME_LENGTH
    );
    assert_eq!(
        detail(Message::Welcome(Welcome {
            protocol_version: 1,
            mode_id: 1,
            device_id: String::new(),
            ttk_kcv: vec![0; 3],
            mode_data: Vec::new(),
        })),
        Field::DeviceId
    );
    // tr31 (mode 1) has no mode data, in WELCOME as in KEY_REQUEST.
    assert_eq!(
        detail(Message::Welcome(Welcome {
            protocol_version: 1,
            mode_id: 1,
            device_id: "KM".to_owned(),
            ttk_kcv: vec![0; 3],
            mode_data: vec![0],
        })),
        Field::ModeData
    );
    assert_eq!(
        detail(Message::Hello(Hello {
            protocol_version: 1,
            mode_ids: vec![],
            model: "M".parse().unwrap(),
            hardware_serial: "S".parse().unwrap(),
            capabilities: Capabilities::NONE
        })),
        Field::ModeIds
    );
    assert_eq!(
        detail(Message::KeyRequest(KeyRequest {
            mode_id: 1,
            mode_data: vec![0]
        })),
        Field::ModeData
    );
}

#[test]
fn type_ids_are_distinct_and_named() {
    let mut ids: Vec<u8> = MessageType::ALL.iter().map(|kind| kind.id()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), MessageType::ALL.len());
    for kind in MessageType::ALL {
        assert_eq!(MessageType::from_id(kind.id()), Some(kind));
    }
    for code in ErrorCode::ALL {
        assert!(code.name().is_some() && code.meaning().is_some());
    }
    assert_eq!(ErrorCode(0x7777).to_string(), "0x7777 (unknown error code)");
}
