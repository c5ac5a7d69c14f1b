//! Property tests of TR-31 key blocks: every key wraps and unwraps under every compatible KBPK with any optional blocks, and any changed character is caught.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;

use keymother_crypto::tr31::{
    Algorithm, AsymmetricKeyLife, BaseDerivationKeyIdentifier, Certificate, CheckValue,
    CheckValueAlgorithm, DerivationAllowed, Exportability, HashAlgorithm, Header,
    KeyBlockProtectionKey, KeyUsage, KeyVersion, ModeOfUse, OptionalBlock, TimeStamp,
    TimeStampFormat, Tr31Error, Version, WrappingPedigree,
};
use keymother_crypto::{KeyAlgorithm, KeyFamily, SecretKey};

fn key_algorithm() -> impl Strategy<Value = KeyAlgorithm> {
    prop::sample::select(KeyAlgorithm::ALL.to_vec())
}

/// Test key material (`SecretKey` has no `Debug`, which proptest needs to report a failure;
/// these random test keys may be shown).
#[derive(Debug, Clone)]
struct TestKey {
    algorithm: KeyAlgorithm,
    bytes: Vec<u8>,
}

impl TestKey {
    fn secret(&self) -> SecretKey {
        SecretKey::from_bytes(self.algorithm, &self.bytes).unwrap()
    }
}

/// A key of the algorithm, with arbitrary bytes.
fn key_of(algorithm: KeyAlgorithm) -> impl Strategy<Value = TestKey> {
    prop::collection::vec(any::<u8>(), algorithm.key_length())
        .prop_map(move |bytes| TestKey { algorithm, bytes })
}

fn key_usage() -> impl Strategy<Value = KeyUsage> {
    prop_oneof![
        prop::sample::select(vec![
            KeyUsage::BaseDerivationKey,
            KeyUsage::DukptInitialKey,
            KeyUsage::CardVerificationKey,
            KeyUsage::DataEncryption,
            KeyUsage::EmvApplicationCryptograms,
            KeyUsage::KeyEncryption,
            KeyUsage::KeyBlockProtection,
            KeyUsage::Iso9797Mac3,
            KeyUsage::Cmac,
            KeyUsage::PinEncryption,
            KeyUsage::PinVerificationVisaPvv,
        ]),
        (0u8..10, 0u8..10)
            .prop_map(|(first, second)| KeyUsage::Proprietary([b'0' + first, b'0' + second])),
    ]
}

fn mode_of_use() -> impl Strategy<Value = ModeOfUse> {
    prop::sample::select(vec![
        ModeOfUse::EncryptDecrypt,
        ModeOfUse::MacGenerateVerify,
        ModeOfUse::DecryptOnly,
        ModeOfUse::EncryptOnly,
        ModeOfUse::MacGenerateOnly,
        ModeOfUse::NoRestrictions,
        ModeOfUse::SignatureOnly,
        ModeOfUse::SignAndDecrypt,
        ModeOfUse::VerifyOnly,
        ModeOfUse::KeyDerivation,
        ModeOfUse::KeyVariants,
    ])
}

fn key_version() -> impl Strategy<Value = KeyVersion> {
    let alphanumeric = prop::sample::select(
        b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabdefghijklmnopqrstuvwxyz".to_vec(),
    );
    prop_oneof![
        Just(KeyVersion::NotUsed),
        (1u8..=9).prop_map(KeyVersion::Component),
        (alphanumeric.clone(), alphanumeric)
            .prop_filter("00 means no version", |code| *code != (b'0', b'0'))
            .prop_map(|(first, second)| KeyVersion::Version([first, second])),
    ]
}

fn exportability() -> impl Strategy<Value = Exportability> {
    prop::sample::select(vec![
        Exportability::Exportable,
        Exportability::NonExportable,
        Exportability::Sensitive,
    ])
}

fn printable(maximum: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(0x20u8..=0x7E, 0..=maximum)
        .prop_map(|bytes| bytes.into_iter().map(char::from).collect())
}

fn time_stamp() -> impl Strategy<Value = TimeStamp> {
    (
        1970u16..=2099,
        1u8..=12,
        1u8..=28,
        0u8..=23,
        0u8..=59,
        0u8..=59,
        prop::option::of(0u8..=99),
        prop::bool::ANY,
    )
        .prop_map(
            |(year, month, day, hour, minute, second, hundredths, extended)| TimeStamp {
                year,
                month,
                day,
                hour,
                minute,
                second,
                hundredths,
                format: if extended {
                    TimeStampFormat::Extended
                } else {
                    TimeStampFormat::Basic
                },
            },
        )
}

fn check_value() -> impl Strategy<Value = CheckValue> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 1..=3).prop_map(|value| CheckValue {
            algorithm: CheckValueAlgorithm::Legacy,
            value
        }),
        prop::collection::vec(any::<u8>(), 1..=5).prop_map(|value| CheckValue {
            algorithm: CheckValueAlgorithm::Cmac,
            value
        }),
    ]
}

fn base64_text(maximum: usize) -> impl Strategy<Value = String> {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=".to_vec();
    prop::collection::vec(prop::sample::select(alphabet), 1..=maximum)
        .prop_map(|bytes| bytes.into_iter().map(char::from).collect())
}

/// Optional blocks with distinct IDs, in random order, never a PB (wrapping adds its own).
fn optional_blocks() -> impl Strategy<Value = Vec<OptionalBlock>> {
    let first = (
        prop::option::of(
            prop::collection::vec(any::<u8>(), 1..=10).prop_map(OptionalBlock::KeySetIdentifier),
        ),
        prop::option::of(check_value().prop_map(OptionalBlock::KeyCheckValue)),
        prop::option::of(check_value().prop_map(OptionalBlock::ProtectionKeyCheckValue)),
        prop::option::of(time_stamp().prop_map(OptionalBlock::TimeStamp)),
        prop::option::of(time_stamp().prop_map(OptionalBlock::TimeOfCreation)),
        prop::option::of(
            prop::sample::select(HashAlgorithm::ALL.to_vec()).prop_map(OptionalBlock::HmacHash),
        ),
        prop::option::of(any::<[u8; 8]>().prop_map(OptionalBlock::InitialKeyIdentifier)),
        prop::option::of(printable(40).prop_map(OptionalBlock::Label)),
    );
    let second = (
        prop::option::of(
            prop::sample::select(vec!["0000", "01AB", "ZZ99"])
                .prop_map(|text| OptionalBlock::KeyBlockValues(text.to_owned())),
        ),
        prop::option::of(
            prop::sample::select(vec![
                WrappingPedigree::EqualOrGreaterStrength,
                WrappingPedigree::LesserStrength,
                WrappingPedigree::AsymmetricQuantumRisk,
                WrappingPedigree::AsymmetricQuantumRiskAndLesserStrength,
            ])
            .prop_map(OptionalBlock::WrappingPedigree),
        ),
        prop::option::of(
            prop::sample::select(vec![
                AsymmetricKeyLife::Ephemeral,
                AsymmetricKeyLife::Static,
            ])
            .prop_map(OptionalBlock::AsymmetricKeyLife),
        ),
        prop::option::of(
            prop_oneof![
                any::<[u8; 5]>().prop_map(BaseDerivationKeyIdentifier::TdesKeySetIdentifier),
                any::<[u8; 4]>().prop_map(BaseDerivationKeyIdentifier::AesKeyIdentifier),
            ]
            .prop_map(OptionalBlock::BaseDerivationKeyIdentifier),
        ),
        prop::option::of(
            prop::collection::vec(
                (key_usage(), mode_of_use(), exportability()).prop_map(
                    |(key_usage, mode_of_use, exportability)| DerivationAllowed {
                        key_usage,
                        algorithm: Algorithm::Aes,
                        mode_of_use,
                        exportability,
                    },
                ),
                1..=4,
            )
            .prop_map(OptionalBlock::DerivationsAllowed),
        ),
        prop::option::of(
            prop_oneof![
                // Long enough, at times, to need the extended length form.
                base64_text(400).prop_map(Certificate::X509),
                prop::collection::vec(base64_text(120).prop_map(Certificate::X509), 1..=3)
                    .prop_map(Certificate::Chain),
            ]
            .prop_map(OptionalBlock::Certificate),
        ),
        prop::option::of(((0u8..10, 0u8..10), printable(20)).prop_map(
            |((first, second), data)| OptionalBlock::Proprietary {
                id: [b'0' + first, b'0' + second],
                data,
            },
        )),
    );
    (first, second)
        .prop_map(|((a, b, c, d, e, f, g, h), (i, j, k, l, m, n, o))| {
            [a, b, c, d, e, f, g, h, i, j, k, l, m, n, o]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
        })
        .prop_shuffle()
}

fn header_for(kbpk: KeyAlgorithm, key: KeyAlgorithm) -> impl Strategy<Value = Header> {
    let version = match kbpk.family() {
        KeyFamily::Tdes => Version::B,
        KeyFamily::Aes => Version::D,
    };
    let algorithm = match key.family() {
        KeyFamily::Tdes => Algorithm::Tdes,
        KeyFamily::Aes => Algorithm::Aes,
    };
    (
        key_usage(),
        mode_of_use(),
        key_version(),
        exportability(),
        optional_blocks(),
    )
        .prop_map(
            move |(key_usage, mode_of_use, key_version, exportability, optional_blocks)| Header {
                version,
                key_usage,
                algorithm,
                mode_of_use,
                key_version,
                exportability,
                optional_blocks,
            },
        )
}

/// A KBPK algorithm, a key algorithm, the keys and a header of the matching version.
fn case() -> impl Strategy<Value = (TestKey, TestKey, Header)> {
    (key_algorithm(), key_algorithm())
        .prop_flat_map(|(kbpk, key)| (key_of(kbpk), key_of(key), header_for(kbpk, key)))
}

/// Makes any KC and KP blocks state the real check values, as an honest sender would (a
/// wrong one is refused by wrap and unwrap alike; tests/tr31_check_values.rs covers that).
fn with_true_check_values(mut header: Header, kbpk: &SecretKey, key: &SecretKey) -> Header {
    for block in &mut header.optional_blocks {
        match block {
            OptionalBlock::KeyCheckValue(value) => *value = CheckValue::of(key),
            OptionalBlock::ProtectionKeyCheckValue(value) => *value = CheckValue::of(kbpk),
            _ => {}
        }
    }
    header
}

/// A case that keymother must be able to wrap (key no stronger than the KBPK).
fn wrappable_case() -> impl Strategy<Value = (TestKey, TestKey, Header)> {
    case().prop_filter("key stronger than the KBPK", |(kbpk, key, _)| {
        key.algorithm.strength_bits() <= kbpk.algorithm.strength_bits()
    })
}

fn without_padding(header: &Header) -> Header {
    let mut header = header.clone();
    header.optional_blocks.retain(|block| !block.is_padding());
    header
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_key_round_trips_under_every_compatible_kbpk((kbpk, key, header) in case()) {
        let (kbpk, key) = (kbpk.secret(), key.secret());
        let header = with_true_check_values(header, &kbpk, &key);
        let protection = KeyBlockProtectionKey::new(&kbpk);
        let result = protection.wrap(&header, &key);
        if key.algorithm().strength_bits() > kbpk.algorithm().strength_bits() {
            prop_assert_eq!(
                result.err(),
                Some(Tr31Error::ProtectionKeyWeakerThanKey { key: key.algorithm(), kbpk: kbpk.algorithm() })
            );
            return Ok(());
        }
        let block = result.unwrap();
        prop_assert_eq!(block[1..5].parse::<usize>().unwrap(), block.len());
        let unwrapped = protection.unwrap(&block).unwrap();
        prop_assert!(unwrapped.key.same_material_as(&key));
        prop_assert_eq!(without_padding(&unwrapped.header), without_padding(&header));
        // The convenience functions agree.
        let again = keymother_crypto::tr31::unwrap(&kbpk, &block).unwrap();
        prop_assert!(again.key.same_material_as(&key));
        // And the header reads back without the key.
        prop_assert_eq!(Header::from_key_block(&block).unwrap(), unwrapped.header);
    }

    #[test]
    fn any_changed_character_makes_unwrap_fail(
        (kbpk, key, header) in wrappable_case(),
        position in any::<prop::sample::Index>(),
        replacement in 0x20u8..=0x7E,
    ) {
        let (kbpk, key) = (kbpk.secret(), key.secret());
        let header = with_true_check_values(header, &kbpk, &key);
        let protection = KeyBlockProtectionKey::new(&kbpk);
        let block = protection.wrap(&header, &key).unwrap();
        let index = position.index(block.len());
        prop_assume!(block.as_bytes()[index] != replacement);
        let mut altered = block.into_bytes();
        altered[index] = replacement;
        let altered = String::from_utf8(altered).unwrap();
        prop_assert!(protection.unwrap(&altered).is_err(), "accepted {}", altered);
    }

    #[test]
    fn a_block_made_under_one_kbpk_does_not_open_under_another(
        (kbpk, key, header) in wrappable_case(),
        other_bytes in prop::collection::vec(any::<u8>(), 32),
    ) {
        let (kbpk, key) = (kbpk.secret(), key.secret());
        let header = with_true_check_values(header, &kbpk, &key);
        let block = KeyBlockProtectionKey::new(&kbpk).wrap(&header, &key).unwrap();
        let algorithm = kbpk.algorithm();
        let other = SecretKey::from_bytes(algorithm, &other_bytes[..algorithm.key_length()]).unwrap();
        prop_assume!(!other.same_material_as(&kbpk));
        prop_assert_eq!(
            KeyBlockProtectionKey::new(&other).unwrap(&block).err(),
            Some(Tr31Error::MacMismatch)
        );
    }

    #[test]
    fn headers_write_back_the_text_they_were_read_from((_, _, header) in case()) {
        let text = header.to_string();
        let parsed: Header = text.parse().unwrap();
        prop_assert_eq!(&parsed, &header);
        prop_assert_eq!(parsed.to_string(), text);
    }
}
