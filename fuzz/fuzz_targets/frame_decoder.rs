//! Fuzzes the frame decoder: arbitrary bytes, valid frames and ticks in any order never panic, the buffer stays bounded, and a clean frame after resolved noise is always found.
#![no_main]

use std::time::Duration;

use keymother_protocol::{DecodeEvent, Frame, FrameDecoder, MAX_BODY_LENGTH, MAX_FRAME_LENGTH};
use libfuzzer_sys::fuzz_target;

/// Chunk sizes a control byte can ask for.
const SIZES: [usize; 8] = [1, 2, 5, 16, 64, 256, 1024, 4096];

fn check(events: &[DecodeEvent]) {
    for event in events {
        match event {
            DecodeEvent::Frame(frame) => {
                // What the decoder accepts is a frame the encoder makes, byte for byte.
                let bytes = frame.encode().expect("a decoded frame fits");
                let mut again = FrameDecoder::new(Duration::from_millis(500));
                assert_eq!(
                    again.push(&bytes, Duration::ZERO),
                    vec![DecodeEvent::Frame(frame.clone())]
                );
            }
            DecodeEvent::FrameTooLarge { length, .. } => {
                assert!(usize::from(*length) > MAX_BODY_LENGTH)
            }
            DecodeEvent::Rejected(_) => {}
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut decoder = FrameDecoder::new(Duration::from_millis(500));
    let mut now = Duration::ZERO;
    let mut rest = data;
    // Each step: a control byte, then the bytes it takes. Bits 0-3: time passing (x 40 ms);
    // bits 4-6: chunk size class; bit 7: special (class 0: a tick; otherwise the chunk is sent
    // wrapped in a valid frame, SEQ and TYPE from its first bytes).
    while let Some((&control, tail)) = rest.split_first() {
        now += Duration::from_millis(u64::from(control & 0x0F) * 40);
        let size = SIZES[usize::from(control >> 4 & 0x07)];
        let special = control & 0x80 != 0;
        if special && size == 1 {
            rest = tail;
            let events = decoder.tick(now);
            check(&events);
            continue;
        }
        let (chunk, tail) = tail.split_at(size.min(tail.len()));
        rest = tail;
        let events = if special {
            let frame = match chunk {
                [seq, message_type, payload @ ..] => {
                    Frame::new(*seq, *message_type, payload.to_vec())
                }
                _ => Frame::new(0, 0, Vec::new()),
            };
            let Ok(bytes) = frame.encode() else { continue };
            let idle = decoder.pending_len() == 0;
            // Pushed with no time passing, so a stale partial frame cannot be in the way.
            let events = decoder.push(&bytes, now);
            if idle {
                assert!(
                    events.contains(&DecodeEvent::Frame(frame)),
                    "a clean frame on an idle decoder must come out: {events:?}"
                );
            }
            events
        } else {
            decoder.push(chunk, now)
        };
        check(&events);
        assert!(decoder.pending_len() < MAX_FRAME_LENGTH);
    }
    check(&decoder.tick(now + Duration::from_secs(1)));
    assert_eq!(decoder.pending_len(), 0);
});
