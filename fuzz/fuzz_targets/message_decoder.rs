//! Fuzzes the message decoder: any TYPE byte and payload decodes or gives a typed error, and a decoded message re-encodes to the same bytes; certificate mode's fields and profile mode's profile too.
#![no_main]

use keymother_protocol::{
    CertificateDelivery, CertificateRequest, CertificateWelcome, Frame, Message, Mode, Profile,
};
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
            certificate_mode_data(&message);
            profile_mode_data(&message);
        }
        Err(error) => {
            // Every error can be shown (the appliance sends it as an ERROR detail).
            assert!(!error.to_string().is_empty());
        }
    }
});

/// Certificate mode's fields decode canonically or give a typed error.
fn certificate_mode_data(message: &Message) {
    match message {
        Message::Welcome(welcome) if welcome.mode_id == Mode::Certificate.id() => {
            if let Ok(fields) = CertificateWelcome::decode(&welcome.mode_data) {
                assert_eq!(fields.encode().expect("re-encodes"), welcome.mode_data);
            }
        }
        Message::KeyRequest(request) if request.mode_id == Mode::Certificate.id() => {
            if let Ok(fields) = CertificateRequest::decode(&request.mode_data) {
                assert_eq!(fields.encode().expect("re-encodes"), request.mode_data);
            }
        }
        Message::KeyDelivery(delivery) => {
            if let Ok(fields) = CertificateDelivery::decode(&delivery.mode_data) {
                assert_eq!(fields.encode().expect("re-encodes"), delivery.mode_data);
            }
        }
        _ => {}
    }
}

/// Profile mode's WELCOME fields (the profile) decode canonically or give a typed error.
fn profile_mode_data(message: &Message) {
    if let Message::Welcome(welcome) = message {
        if welcome.mode_id == Mode::Profile.id() {
            if let Ok(profile) = Profile::decode(&welcome.mode_data) {
                assert_eq!(profile.encode().expect("re-encodes"), welcome.mode_data);
            }
        }
    }
}
