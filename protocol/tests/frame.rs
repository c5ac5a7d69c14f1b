//! The frame codec: layout, CRC parameters, round trips, and resynchronisation after garbage, damage, truncation, oversize lengths and silence.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use keymother_protocol::frame::{MAX_PAYLOAD_LENGTH, MIN_BODY_LENGTH};
use keymother_protocol::{
    DecodeEvent, Frame, FrameDecoder, FrameError, FrameRejection, MAX_BODY_LENGTH,
    MAX_FRAME_LENGTH, STX, crc32,
};
use proptest::prelude::*;

const TIMEOUT: Duration = Duration::from_millis(500);

fn at(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

fn frames(events: &[DecodeEvent]) -> Vec<Frame> {
    events
        .iter()
        .filter_map(|event| match event {
            DecodeEvent::Frame(frame) => Some(frame.clone()),
            _ => None,
        })
        .collect()
}

fn rejections(events: &[DecodeEvent]) -> Vec<FrameRejection> {
    events
        .iter()
        .filter_map(|event| match event {
            DecodeEvent::Rejected(rejection) => Some(*rejection),
            _ => None,
        })
        .collect()
}

/// Feeds `bytes` in one go, then lets the inter-byte timeout pass.
fn decode_all(bytes: &[u8]) -> Vec<DecodeEvent> {
    let mut decoder = FrameDecoder::new(TIMEOUT);
    let mut events = decoder.push(bytes, at(0));
    events.extend(decoder.tick(at(10_000)));
    assert_eq!(decoder.pending_len(), 0);
    events
}

fn sample() -> Frame {
    Frame::new(7, 0x02, vec![0x01])
}

#[test]
fn crc_parameters_give_the_catalogue_check_value() {
    // CRC-32/ISO-HDLC: poly 0x04C11DB7, init 0xFFFFFFFF, refin/refout true, xorout 0xFFFFFFFF.
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    assert_eq!(crc32(b""), 0);
}

#[test]
fn frame_layout() {
    let bytes = sample().encode().unwrap();
    let crc = crc32(&[0x00, 0x03, 0x07, 0x02, 0x01]);
    let mut expected = vec![STX, 0x00, 0x03, 0x07, 0x02, 0x01];
    expected.extend_from_slice(&crc.to_be_bytes());
    assert_eq!(bytes, expected);
}

#[test]
fn largest_frame_encodes_and_one_more_byte_does_not() {
    let largest = Frame::new(0, 1, vec![0xAA; MAX_PAYLOAD_LENGTH]);
    let bytes = largest.encode().unwrap();
    assert_eq!(bytes.len(), MAX_FRAME_LENGTH);
    assert_eq!(frames(&decode_all(&bytes)), vec![largest]);
    let too_big = Frame::new(0, 1, vec![0xAA; MAX_PAYLOAD_LENGTH + 1]);
    assert_eq!(
        too_big.encode(),
        Err(FrameError::TooLarge {
            body_length: MAX_BODY_LENGTH + 1
        })
    );
}

#[test]
fn garbage_before_a_frame_is_counted() {
    let mut bytes = b"xyz".to_vec();
    bytes.extend(sample().encode().unwrap());
    let events = decode_all(&bytes);
    assert_eq!(
        events,
        vec![
            DecodeEvent::Rejected(FrameRejection::GarbageSkipped { count: 3 }),
            DecodeEvent::Frame(sample()),
        ]
    );
}

#[test]
fn impossible_lengths_drop_only_the_stx() {
    for length in [0u16, 1] {
        let mut bytes = vec![STX];
        bytes.extend_from_slice(&length.to_be_bytes());
        bytes.extend(sample().encode().unwrap());
        let events = decode_all(&bytes);
        assert_eq!(
            rejections(&events)[0],
            FrameRejection::LengthTooShort { length }
        );
        assert_eq!(frames(&events), vec![sample()]);
    }
}

#[test]
fn oversize_length_drops_only_the_stx() {
    let mut bytes = vec![STX, 0x10, 0x01]; // 4097
    bytes.extend(sample().encode().unwrap());
    let mut decoder = FrameDecoder::new(TIMEOUT);
    let events = decoder.push(&bytes, at(0));
    assert_eq!(
        rejections(&events)[0],
        FrameRejection::Oversize { length: 4097 }
    );
    // Found at once, without waiting for a timeout.
    assert_eq!(frames(&events), vec![sample()]);
}

#[test]
fn a_real_oversize_frame_is_recognised_by_its_crc() {
    let length: u16 = 6000;
    let mut bytes = vec![STX];
    bytes.extend_from_slice(&length.to_be_bytes());
    bytes.extend_from_slice(&[0x33, 0x02]);
    bytes.resize(3 + usize::from(length), 0x55);
    let crc = crc32(&bytes[1..]);
    bytes.extend_from_slice(&crc.to_be_bytes());
    let mut decoder = FrameDecoder::new(TIMEOUT);
    let mut events = Vec::new();
    for chunk in bytes.chunks(97) {
        events.extend(decoder.push(chunk, at(0)));
        assert!(decoder.pending_len() <= MAX_FRAME_LENGTH);
    }
    assert!(events.contains(&DecodeEvent::FrameTooLarge {
        seq: 0x33,
        message_type: 0x02,
        length
    }));
    // The same with one body byte damaged: only noise, no FrameTooLarge.
    bytes[100] ^= 1;
    let events = decode_all(&bytes);
    assert!(
        !events
            .iter()
            .any(|event| matches!(event, DecodeEvent::FrameTooLarge { .. }))
    );
}

#[test]
fn a_flipped_byte_anywhere_loses_that_frame_only() {
    let damaged_frame = Frame::new(1, 0x03, b"damaged payload".to_vec());
    let next = Frame::new(2, 0x03, b"the next frame".to_vec());
    let original = damaged_frame.encode().unwrap();
    for position in 0..original.len() {
        for flip in [0x01u8, 0x80, 0xFF] {
            let mut bytes = original.clone();
            bytes[position] ^= flip;
            bytes.extend(next.encode().unwrap());
            let events = decode_all(&bytes);
            assert_eq!(
                frames(&events),
                vec![next.clone()],
                "flip {flip:02X} at {position}: {events:?}"
            );
            // Damage after the length field is a CRC failure, reported as such.
            if position >= 3 {
                assert!(
                    rejections(&events).iter().any(FrameRejection::is_bad_crc),
                    "flip {flip:02X} at {position}: {events:?}"
                );
            }
        }
    }
}

#[test]
fn a_truncated_frame_does_not_hide_the_next_one() {
    let first = Frame::new(1, 0x03, vec![0x11; 40]);
    let second = Frame::new(2, 0x03, vec![0x22; 40]);
    let first_bytes = first.encode().unwrap();
    for cut in 1..first_bytes.len() {
        let mut bytes = first_bytes[..cut].to_vec();
        bytes.extend(second.encode().unwrap());
        let events = decode_all(&bytes);
        assert_eq!(frames(&events), vec![second.clone()], "cut at {cut}");
    }
}

#[test]
fn inter_byte_timeout_drops_a_partial_frame() {
    let bytes = sample().encode().unwrap();
    let mut decoder = FrameDecoder::new(TIMEOUT);
    assert!(decoder.push(&bytes[..4], at(0)).is_empty());
    assert_eq!(decoder.deadline(), Some(at(500)));
    assert!(decoder.tick(at(499)).is_empty());
    let events = decoder.tick(at(500));
    assert_eq!(
        events[0],
        DecodeEvent::Rejected(FrameRejection::InterByteTimeout { pending: 4 })
    );
    assert_eq!(decoder.pending_len(), 0);
    assert_eq!(decoder.deadline(), None);
    // The rest of the frame arriving late is garbage; a whole frame after it decodes.
    // (its CRC bytes may hold an STX that waits for more bytes: the next timeout settles it).
    let mut late = bytes[4..].to_vec();
    late.extend(sample().encode().unwrap());
    let mut events = decoder.push(&late, at(600));
    events.extend(decoder.tick(at(1_100)));
    assert_eq!(frames(&events), vec![sample()]);
}

#[test]
fn inter_byte_timeout_applies_without_a_tick() {
    let bytes = sample().encode().unwrap();
    let mut decoder = FrameDecoder::new(TIMEOUT);
    decoder.push(&bytes[..4], at(0));
    // The next bytes come too late: the stale partial frame is dropped before they are read.
    let events = decoder.push(&bytes, at(2_000));
    assert_eq!(
        events[0],
        DecodeEvent::Rejected(FrameRejection::InterByteTimeout { pending: 4 })
    );
    assert_eq!(frames(&events), vec![sample()]);
}

#[test]
fn slow_bytes_within_the_timeout_still_make_a_frame() {
    let bytes = sample().encode().unwrap();
    let mut decoder = FrameDecoder::new(TIMEOUT);
    let mut events = Vec::new();
    for (index, byte) in bytes.iter().enumerate() {
        events.extend(decoder.push(&[*byte], at(index as u64 * 400)));
    }
    assert_eq!(events, vec![DecodeEvent::Frame(sample())]);
}

#[test]
fn a_timed_out_false_start_releases_the_frame_it_swallowed() {
    // A noise STX announcing 4000 bytes, then a real frame, then silence: after the timeout the
    // real frame is found.
    let mut bytes = vec![STX, 0x0F, 0xA0];
    bytes.extend(sample().encode().unwrap());
    let mut decoder = FrameDecoder::new(TIMEOUT);
    assert!(frames(&decoder.push(&bytes, at(0))).is_empty());
    assert_eq!(frames(&decoder.tick(at(500))), vec![sample()]);
}

fn arb_frame() -> impl Strategy<Value = Frame> {
    (
        any::<u8>(),
        any::<u8>(),
        prop::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(seq, message_type, payload)| Frame::new(seq, message_type, payload))
}

/// Splits `bytes` at the given cut points.
fn chunked(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut points: Vec<usize> = cuts.iter().map(|cut| cut % (bytes.len() + 1)).collect();
    points.sort_unstable();
    let mut chunks = Vec::new();
    let mut start = 0;
    for point in points {
        chunks.push(bytes[start..point].to_vec());
        start = point;
    }
    chunks.push(bytes[start..].to_vec());
    chunks
}

proptest! {
    #[test]
    fn round_trip(frame in arb_frame()) {
        let bytes = frame.encode().unwrap();
        prop_assert_eq!(bytes.len(), frame.payload.len() + MIN_BODY_LENGTH + 7);
        prop_assert_eq!(decode_all(&bytes), vec![DecodeEvent::Frame(frame)]);
    }

    #[test]
    fn round_trip_of_large_payloads(
        payload in prop::collection::vec(any::<u8>(), 3000..=MAX_PAYLOAD_LENGTH),
    ) {
        let frame = Frame::new(1, 2, payload);
        prop_assert_eq!(frames(&decode_all(&frame.encode().unwrap())), vec![frame]);
    }

    #[test]
    fn frames_survive_any_chunking(
        list in prop::collection::vec(arb_frame(), 1..6),
        cuts in prop::collection::vec(any::<usize>(), 0..20),
    ) {
        let bytes: Vec<u8> = list.iter().flat_map(|frame| frame.encode().unwrap()).collect();
        let mut decoder = FrameDecoder::new(TIMEOUT);
        let mut events = Vec::new();
        for chunk in chunked(&bytes, &cuts) {
            events.extend(decoder.push(&chunk, at(1)));
        }
        prop_assert_eq!(events, list.into_iter().map(DecodeEvent::Frame).collect::<Vec<_>>());
    }

    /// Every valid frame inside noise is eventually found, in order.
    #[test]
    fn every_frame_in_noise_is_found(
        pieces in prop::collection::vec(
            (prop::collection::vec(any::<u8>(), 0..60), arb_frame(), any::<bool>()),
            1..6,
        ),
        tail in prop::collection::vec(any::<u8>(), 0..60),
        cuts in prop::collection::vec(any::<usize>(), 0..20),
    ) {
        let mut bytes = Vec::new();
        let mut expected = Vec::new();
        for (garbage, frame, stx_heavy) in pieces {
            // Half of the garbage is full of STX bytes, the hardest case.
            let garbage: Vec<u8> = if stx_heavy {
                garbage.iter().map(|byte| if byte % 3 == 0 { STX } else { *byte }).collect()
            } else {
                garbage
            };
            bytes.extend(garbage);
            bytes.extend(frame.encode().unwrap());
            expected.push(frame);
        }
        bytes.extend(tail);
        let mut decoder = FrameDecoder::new(TIMEOUT);
        let mut events = Vec::new();
        for chunk in chunked(&bytes, &cuts) {
            events.extend(decoder.push(&chunk, at(1)));
            prop_assert!(decoder.pending_len() <= MAX_FRAME_LENGTH);
        }
        events.extend(decoder.tick(at(1) + TIMEOUT));
        let found = frames(&events);
        // The expected frames appear in order (noise forming an extra valid frame would need a
        // CRC-32 collision).
        let mut remaining = found.iter();
        for frame in &expected {
            prop_assert!(
                remaining.any(|candidate| candidate == frame),
                "frame {:?} not found in order; found {:?}", frame, found
            );
        }
        prop_assert_eq!(found.len(), expected.len());
    }

    #[test]
    fn random_bytes_never_grow_the_buffer(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..600), 0..30),
    ) {
        let mut decoder = FrameDecoder::new(TIMEOUT);
        for (index, chunk) in chunks.iter().enumerate() {
            decoder.push(chunk, at(index as u64 * 100));
            prop_assert!(decoder.pending_len() < MAX_FRAME_LENGTH);
        }
    }
}
