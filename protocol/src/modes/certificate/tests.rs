//! Unit tests of certificate mode's codec: round trips, every limit and the pass byte refused by field and mode-data offset, and the longest tokens fitting their messages.

use proptest::prelude::*;

use super::*;
use crate::message::{Delivery, KeyRequest, Message};

/// A token as the wire carries it: two-byte big-endian length, then the bytes (built here by
/// hand, independently of the encoder).
fn prefixed(bytes: &[u8]) -> Vec<u8> {
    let mut out = u16::try_from(bytes.len()).unwrap().to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    out
}

/// KEY_REQUEST mode data from its parts, by hand.
fn request_bytes(pass: u8, random_number_token: &[u8], krd_credential_token: &[u8]) -> Vec<u8> {
    let mut out = vec![pass];
    out.extend(prefixed(random_number_token));
    out.extend(prefixed(krd_credential_token));
    out
}

/// The field, mode-data offset and problem of a certificate-mode decode error.
fn located<T: fmt::Debug>(result: Result<T, DecodeError>) -> (Field, usize, FieldProblem) {
    match result {
        Err(DecodeError::ModeField {
            field,
            offset,
            problem,
            ..
        }) => (field, offset, problem),
        other => panic!("expected a mode-data field error, got {other:?}"),
    }
}

fn two_pass_request() -> CertificateRequest {
    CertificateRequest {
        pass: CertificatePass::TwoPass,
        random_number_token: vec![0x30; 26],
        krd_credential_token: vec![0x30; 1200],
    }
}

#[test]
fn the_pass_byte_and_tokens_are_laid_out_as_documented() {
    let request = two_pass_request();
    assert_eq!(
        request.encode().unwrap(),
        request_bytes(2, &[0x30; 26], &[0x30; 1200])
    );
    let one_pass = CertificateRequest {
        pass: CertificatePass::OnePass,
        random_number_token: Vec::new(),
        krd_credential_token: b"CT".to_vec(),
    };
    assert_eq!(one_pass.encode().unwrap(), [1, 0, 0, 0, 2, b'C', b'T']);
    let welcome = CertificateWelcome {
        kdh_credential_token: b"KDH".to_vec(),
    };
    assert_eq!(welcome.encode().unwrap(), [0, 3, b'K', b'D', b'H']);
    let delivery = CertificateDelivery {
        key_token: vec![0xA5; 300],
    };
    assert_eq!(delivery.encode().unwrap(), prefixed(&[0xA5; 300]));
}

#[test]
fn a_pass_byte_other_than_1_or_2_is_refused_at_offset_0() {
    for pass in [0u8, 3, 0x7F, 0xFF] {
        let (field, offset, problem) =
            located(CertificateRequest::decode(&request_bytes(pass, &[], b"CT")));
        assert_eq!((field, offset), (Field::Pass, 0), "pass {pass}");
        assert_eq!(
            problem,
            FieldProblem::Value {
                value: u64::from(pass),
                allowed: PASSES,
            }
        );
    }
    let error = CertificateRequest::decode(&[9, 0, 0, 0, 1, 0]).unwrap_err();
    assert!(
        error.to_string().contains("pass at mode-data offset 0"),
        "{error}"
    );
}

#[test]
fn the_random_number_token_must_be_empty_exactly_when_one_pass() {
    // One-pass with a token.
    let (field, offset, problem) = located(CertificateRequest::decode(&request_bytes(
        1, &[0x30; 5], b"CT",
    )));
    assert_eq!((field, offset), (Field::RandomNumberTokenLength, 1));
    assert!(matches!(problem, FieldProblem::Length { found: 5, .. }));
    // Two-pass without one.
    let (field, offset, problem) =
        located(CertificateRequest::decode(&request_bytes(2, &[], b"CT")));
    assert_eq!((field, offset), (Field::RandomNumberTokenLength, 1));
    assert!(matches!(problem, FieldProblem::Length { found: 0, .. }));
    // Two-pass with one over the limit; at the limit it is accepted.
    let too_long = vec![0x30; MAX_RANDOM_NUMBER_TOKEN_LENGTH + 1];
    let (field, offset, problem) = located(CertificateRequest::decode(&request_bytes(
        2, &too_long, b"CT",
    )));
    assert_eq!((field, offset), (Field::RandomNumberTokenLength, 1));
    assert!(matches!(problem, FieldProblem::Length { found: 65, .. }));
    let longest = vec![0x30; MAX_RANDOM_NUMBER_TOKEN_LENGTH];
    let decoded = CertificateRequest::decode(&request_bytes(2, &longest, b"CT")).unwrap();
    assert_eq!(decoded.random_number_token, longest);
    // The encoder refuses the same.
    let mut one_pass_with_token = two_pass_request();
    one_pass_with_token.pass = CertificatePass::OnePass;
    let error = one_pass_with_token.encode().unwrap_err();
    assert!(error.to_string().contains("random number token"), "{error}");
    let mut two_pass_without = two_pass_request();
    two_pass_without.random_number_token.clear();
    assert!(two_pass_without.encode().is_err());
}

#[test]
fn token_lengths_outside_1_to_the_maximum_are_refused_where_the_length_starts() {
    let longest = vec![0x30; MAX_TOKEN_LENGTH];
    let too_long = vec![0x30; MAX_TOKEN_LENGTH + 1];
    for (token, found) in [(&[][..], 0), (&too_long[..], MAX_TOKEN_LENGTH + 1)] {
        let (field, offset, problem) = located(CertificateRequest::decode(&request_bytes(
            2,
            &[0x30; 26],
            token,
        )));
        assert_eq!(
            (field, offset),
            (Field::KrdCredentialTokenLength, 1 + 2 + 26)
        );
        assert_eq!(
            problem,
            FieldProblem::Length {
                found,
                allowed: TOKEN_LENGTH
            }
        );
        let (field, offset, _) = located(CertificateWelcome::decode(&prefixed(token)));
        assert_eq!((field, offset), (Field::KdhCredentialTokenLength, 0));
        let (field, offset, _) = located(CertificateDelivery::decode(&prefixed(token)));
        assert_eq!((field, offset), (Field::KeyTokenLength, 0));
    }
    assert!(CertificateWelcome::decode(&prefixed(&longest)).is_ok());
    assert!(CertificateDelivery::decode(&prefixed(&longest)).is_ok());
    let error = CertificateDelivery {
        key_token: too_long,
    }
    .encode()
    .unwrap_err();
    assert!(error.to_string().contains("1 to 3584 bytes"), "{error}");
    assert!(
        CertificateWelcome {
            kdh_credential_token: Vec::new()
        }
        .encode()
        .is_err()
    );
}

#[test]
fn trailing_bytes_are_refused_at_the_offset_they_start() {
    let mut bytes = request_bytes(1, &[], b"CT");
    let end = bytes.len();
    bytes.extend_from_slice(&[0, 0, 0]);
    let (field, offset, problem) = located(CertificateRequest::decode(&bytes));
    assert_eq!((field, offset), (Field::ModeData, end));
    assert_eq!(problem, FieldProblem::TrailingBytes { count: 3 });
    let mut bytes = prefixed(b"token");
    bytes.push(0);
    let (field, offset, _) = located(CertificateDelivery::decode(&bytes));
    assert_eq!((field, offset), (Field::ModeData, 7));
    let (field, offset, _) = located(CertificateWelcome::decode(&bytes));
    assert_eq!((field, offset), (Field::ModeData, 7));
}

#[test]
fn every_truncation_names_the_field_it_cuts_and_where_that_field_starts() {
    let bytes = request_bytes(2, &[0x30; 26], &[0x30; 40]);
    for cut in 0..bytes.len() {
        let (field, offset, problem) = located(CertificateRequest::decode(&bytes[..cut]));
        assert_eq!(problem, FieldProblem::Truncated, "cut at {cut}");
        let expected = match cut {
            0 => (Field::Pass, 0),
            1..=2 => (Field::RandomNumberTokenLength, 1),
            3..=28 => (Field::RandomNumberToken, 3),
            29..=30 => (Field::KrdCredentialTokenLength, 29),
            _ => (Field::KrdCredentialToken, 31),
        };
        assert_eq!((field, offset), expected, "cut at {cut}");
    }
    let bytes = prefixed(&[0xA5; 10]);
    for cut in 0..bytes.len() {
        let (field, offset, _) = located(CertificateDelivery::decode(&bytes[..cut]));
        let expected = if cut < 2 {
            (Field::KeyTokenLength, 0)
        } else {
            (Field::KeyToken, 2)
        };
        assert_eq!((field, offset), expected, "cut at {cut}");
    }
}

/// The longest tokens fit their messages, as [`MAX_TOKEN_LENGTH`]'s comment reckons.
#[test]
fn the_longest_tokens_fit_the_payload() {
    let welcome = Message::Welcome(Welcome {
        protocol_version: 1,
        mode_id: Mode::Certificate.id(),
        device_id: "D".repeat(32),
        ttk_kcv: vec![0; 5],
        mode_data: CertificateWelcome {
            kdh_credential_token: vec![0x30; MAX_TOKEN_LENGTH],
        }
        .encode()
        .unwrap(),
    });
    assert_eq!(welcome.encode_payload().unwrap().len(), 3627);
    let request = Message::KeyRequest(KeyRequest {
        mode_id: Mode::Certificate.id(),
        mode_data: CertificateRequest {
            pass: CertificatePass::TwoPass,
            random_number_token: vec![0x30; MAX_RANDOM_NUMBER_TOKEN_LENGTH],
            krd_credential_token: vec![0x30; MAX_TOKEN_LENGTH],
        }
        .encode()
        .unwrap(),
    });
    assert_eq!(request.encode_payload().unwrap().len(), 3654);
    let delivery = |header_length: usize| {
        Message::KeyDelivery(Delivery {
            key_index: 278,
            key_block: "D".repeat(header_length),
            kcv: vec![0; 5],
            mode_data: CertificateDelivery {
                key_token: vec![0x30; MAX_TOKEN_LENGTH],
            }
            .encode()
            .unwrap(),
        })
        .encode_payload()
    };
    assert_eq!(delivery(496).unwrap().len(), 4094);
    let error = delivery(497).unwrap_err();
    assert!(error.to_string().contains("payload"), "{error}");
}

fn any_token(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 1..=max)
}

proptest! {
    #[test]
    fn requests_round_trip_and_re_encode_to_their_bytes(
        two_pass in any::<bool>(),
        random_number_token in any_token(MAX_RANDOM_NUMBER_TOKEN_LENGTH),
        krd_credential_token in any_token(MAX_TOKEN_LENGTH),
    ) {
        let request = CertificateRequest {
            pass: if two_pass { CertificatePass::TwoPass } else { CertificatePass::OnePass },
            random_number_token: if two_pass { random_number_token } else { Vec::new() },
            krd_credential_token,
        };
        let bytes = request.encode().unwrap();
        prop_assert_eq!(
            &bytes,
            &request_bytes(
                request.pass.id(),
                &request.random_number_token,
                &request.krd_credential_token
            )
        );
        prop_assert_eq!(CertificateRequest::decode(&bytes).unwrap(), request);
    }

    #[test]
    fn welcomes_and_deliveries_round_trip(token in any_token(MAX_TOKEN_LENGTH)) {
        let welcome = CertificateWelcome { kdh_credential_token: token.clone() };
        prop_assert_eq!(CertificateWelcome::decode(&welcome.encode().unwrap()).unwrap(), welcome);
        let delivery = CertificateDelivery { key_token: token };
        prop_assert_eq!(CertificateDelivery::decode(&delivery.encode().unwrap()).unwrap(), delivery);
    }

    /// Whatever the bytes, a decode either fails naming a field inside them or re-encodes to
    /// exactly those bytes.
    #[test]
    fn arbitrary_request_bytes_decode_canonically_or_name_a_field_inside_them(
        bytes in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        match CertificateRequest::decode(&bytes) {
            Ok(request) => prop_assert_eq!(request.encode().unwrap(), bytes),
            Err(error) => {
                let offset = error.mode_data_offset().unwrap();
                prop_assert!(offset <= bytes.len(), "{}", error);
                prop_assert!(error.field().is_some());
            }
        }
    }
}
