//! Profile mode's DUKPT messages: their exact bytes, a typed error naming the field for every malformed field, and what the encoder refuses.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use keymother_protocol::message::{MAX_DUKPT_KEY_BLOCK_LENGTH, MIN_KEY_BLOCK_LENGTH};
use keymother_protocol::{
    DecodeError, DecodeEvent, DukptConfirm, DukptConfirmed, DukptDelivery, DukptRequest,
    EncodeError, Field, FieldProblem, FrameDecoder, Message, MessageType,
};

const KSN: [u8; 10] = [0xFF, 0xFF, 0x98, 0x76, 0x54, 0x32, 0x10, 0xE0, 0x00, 0x00];

fn delivery(key_block: String) -> Message {
    Message::DukptDelivery(DukptDelivery {
        slot: 1,
        ksn: KSN.to_vec(),
        key_block,
        kcv: vec![0xD1, 0xD2, 0xD3],
    })
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

#[test]
fn the_dukpt_messages_have_their_type_ids_and_directions() {
    use keymother_protocol::message::Direction;
    for (kind, id, direction, name) in [
        (
            MessageType::DukptRequest,
            0x16,
            Direction::ToAppliance,
            "DUKPT_REQUEST",
        ),
        (
            MessageType::DukptDelivery,
            0x96,
            Direction::ToTerminal,
            "DUKPT_DELIVERY",
        ),
        (
            MessageType::DukptConfirm,
            0x17,
            Direction::ToAppliance,
            "DUKPT_CONFIRM",
        ),
        (
            MessageType::DukptConfirmed,
            0x97,
            Direction::ToTerminal,
            "DUKPT_CONFIRMED",
        ),
    ] {
        assert_eq!(
            (kind.id(), kind.direction(), kind.name()),
            (id, direction, name)
        );
        assert!(MessageType::ALL.contains(&kind));
    }
}

#[test]
fn each_dukpt_message_has_one_byte_form() {
    let request = Message::DukptRequest(DukptRequest { slot: 1 });
    assert_eq!(request.encode_payload().unwrap(), [1]);
    let confirmed = Message::DukptConfirmed(DukptConfirmed {
        slot: 1,
        ksn: KSN.to_vec(),
    });
    assert_eq!(
        confirmed.encode_payload().unwrap(),
        [&[1, 10][..], &KSN].concat()
    );
    let confirm = Message::DukptConfirm(DukptConfirm {
        slot: 0,
        ksn: vec![1; 8],
        kcv: vec![2; 5],
    });
    assert_eq!(
        confirm.encode_payload().unwrap(),
        [&[0, 8][..], &[1; 8], &[5], &[2; 5]].concat()
    );
    let block = format!(
        "D0144B1TX00N0200KS18FFFF9876543210E00000PB080000{}",
        "0".repeat(96)
    );
    let payload = delivery(block.clone()).encode_payload().unwrap();
    assert_eq!(
        payload,
        [
            &[1, 10][..],
            &KSN,
            &[0, 144],
            block.as_bytes(),
            &[3, 0xD1, 0xD2, 0xD3]
        ]
        .concat()
    );
    for message in [request, confirmed, confirm, delivery(block)] {
        let payload = message.encode_payload().unwrap();
        assert_eq!(
            Message::decode(message.message_type().id(), &payload),
            Ok(message)
        );
    }
}

#[test]
fn dukpt_field_errors_name_the_field() {
    assert_eq!(
        field_error(0x16, &[]),
        (Field::Slot, FieldProblem::Truncated)
    );
    assert_eq!(
        field_error(0x16, &[0, 0]),
        (Field::Payload, FieldProblem::TrailingBytes { count: 1 })
    );
    assert!(matches!(
        field_error(0x97, &[0, 9]),
        (Field::KsnLength, FieldProblem::Length { found: 9, .. })
    ));
    assert_eq!(
        field_error(0x97, &[0, 8, 1]),
        (Field::Ksn, FieldProblem::Truncated)
    );
    assert!(matches!(
        field_error(0x17, &[[0, 8].as_slice(), &[0; 8], &[4]].concat()),
        (Field::KcvLength, FieldProblem::Length { found: 4, .. })
    ));
    let start = [&[0, 10][..], &KSN].concat();
    assert!(matches!(
        field_error(0x96, &[start.as_slice(), &[0, 15]].concat()),
        (
            Field::KeyBlockLength,
            FieldProblem::Length { found: 15, .. }
        )
    ));
    let over = u16::try_from(MAX_DUKPT_KEY_BLOCK_LENGTH + 1)
        .unwrap()
        .to_be_bytes();
    assert_eq!(
        field_error(0x96, &[start.as_slice(), &over].concat()).0,
        Field::KeyBlockLength
    );
    let mut bad_block = [start.as_slice(), &[0, 16], &[b'A'; 16]].concat();
    bad_block[2 + 10 + 2 + 3] = 0x7F;
    assert!(matches!(
        field_error(0x96, &bad_block),
        (
            Field::KeyBlock,
            FieldProblem::Character {
                position: 4,
                byte: 0x7F,
                ..
            }
        )
    ));
    let error = Message::decode(0x17, &[0, 9]).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("DUKPT_CONFIRM KSN length: length 9 is not allowed"),
        "{error}"
    );
}

#[test]
fn the_longest_dukpt_delivery_fits_a_frame_and_a_longer_block_is_refused() {
    let mut frame_message = delivery("A".repeat(MAX_DUKPT_KEY_BLOCK_LENGTH));
    if let Message::DukptDelivery(delivery) = &mut frame_message {
        delivery.kcv = vec![0; 5];
    }
    let bytes = frame_message.encode_frame(7).unwrap();
    assert_eq!(
        bytes.len(),
        keymother_protocol::MAX_FRAME_LENGTH,
        "exactly the largest frame"
    );
    let mut decoder = FrameDecoder::new(Duration::from_millis(500));
    let events = decoder.push(&bytes, Duration::ZERO);
    let [DecodeEvent::Frame(frame)] = &events[..] else {
        panic!("expected one frame, got {events:?}");
    };
    assert_eq!(Message::from_frame(frame).unwrap(), frame_message);
    assert_eq!(MIN_KEY_BLOCK_LENGTH, 16);
    let error = delivery("A".repeat(MAX_DUKPT_KEY_BLOCK_LENGTH + 1))
        .encode_payload()
        .unwrap_err();
    assert!(
        matches!(
            &error,
            EncodeError::Field {
                field: Field::KeyBlock,
                ..
            }
        ),
        "{error}"
    );
    let error = Message::DukptConfirmed(DukptConfirmed {
        slot: 0,
        ksn: vec![0; 9],
    })
    .encode_payload()
    .unwrap_err();
    assert!(error.to_string().contains("DUKPT_CONFIRMED KSN"), "{error}");
}
