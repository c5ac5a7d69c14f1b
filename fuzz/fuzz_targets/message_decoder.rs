//! Fuzzes the message decoder: any TYPE byte and payload decodes or gives a typed error, and a decoded message re-encodes to the same bytes.
#![no_main]

use keymother_protocol::{Frame, Message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&message_type, payload)) = data.split_first() else {
        return;
    };
    match Message::decode(message_type, payload) {
        Ok(message) => {
            assert_eq!(message.message_type().id(), message_type);
            let encoded = message.encode_payload().expect("a decoded message encodes");
            assert_eq!(encoded, payload, "decoding must be canonical");
            let frame = message
                .to_frame(0x5A)
                .expect("a decoded message fits a frame");
            assert_eq!(frame, Frame::new(0x5A, message_type, payload.to_vec()));
        }
        Err(error) => {
            // Every error can be shown (the appliance sends it as an ERROR detail).
            assert!(!error.to_string().is_empty());
        }
    }
});
