//! Properties of DUKPT and PIN blocks for random BDKs, key IDs, counters, PINs and PANs: the device's path (initial key, then transaction key) meets the host's (straight from the BDK), bad counters are refused, PIN blocks round-trip.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use keymother_crypto::dukpt::{
    AesKsn, DukptError, InitialKeyId, Ksn, TdesKsn,
    aes::{self, AesKeyUsage},
    tdes::{self, TdesKeyVariant},
};
use keymother_crypto::pin_block::{self, Pan, Pin, PinBlockFormat};
use keymother_crypto::{KeyAlgorithm, KeyFamily, SecretKey};
use proptest::prelude::*;

/// A counter of `bits` bits with 1 to `max_ones` one-bits, at random positions.
fn valid_counter(bits: u32, max_ones: usize) -> impl Strategy<Value = u32> {
    proptest::sample::subsequence((0..bits).collect::<Vec<_>>(), 1..=max_ones)
        .prop_map(|positions| positions.into_iter().fold(0u32, |c, bit| c | 1 << bit))
}

/// A counter of `bits` bits with more than `max_ones` one-bits.
fn overfull_counter(bits: u32, max_ones: usize) -> impl Strategy<Value = u32> {
    proptest::sample::subsequence((0..bits).collect::<Vec<_>>(), max_ones + 1..=bits as usize)
        .prop_map(|positions| positions.into_iter().fold(0u32, |c, bit| c | 1 << bit))
}

/// Test key material (`SecretKey` has no `Debug`, which proptest needs to report a failure).
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

fn tdes_bdk() -> impl Strategy<Value = TestKey> {
    any::<[u8; 16]>().prop_map(|bytes| TestKey {
        algorithm: KeyAlgorithm::Tdes2Key,
        bytes: bytes.to_vec(),
    })
}

fn tdes_ksn(counter: impl Strategy<Value = u32>) -> impl Strategy<Value = TdesKsn> {
    (0..1u64 << 40, 0..1u32 << 19, counter).prop_map(|(key_set_id, device_id, counter)| {
        TdesKsn::from_parts(key_set_id, device_id, counter).unwrap()
    })
}

/// An AES BDK of any AES type.
fn aes_bdk() -> impl Strategy<Value = TestKey> {
    (
        prop::sample::select(vec![
            KeyAlgorithm::Aes128,
            KeyAlgorithm::Aes192,
            KeyAlgorithm::Aes256,
        ]),
        any::<[u8; 32]>(),
    )
        .prop_map(|(algorithm, bytes)| TestKey {
            algorithm,
            bytes: bytes[..algorithm.key_length()].to_vec(),
        })
}

fn aes_ksn(counter: impl Strategy<Value = u32>) -> impl Strategy<Value = AesKsn> {
    (any::<u32>(), any::<u32>(), counter).prop_map(|(bdk_id, derivation_id, counter)| {
        AesKsn::new(InitialKeyId::from_parts(bdk_id, derivation_id), counter)
    })
}

fn pin() -> impl Strategy<Value = String> {
    "[0-9]{4,12}"
}

fn pan() -> impl Strategy<Value = String> {
    "[0-9]{12,19}"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn tdes_device_and_host_derive_the_same_keys(
        bdk in tdes_bdk(),
        ksn in tdes_ksn(valid_counter(21, 10)),
    ) {
        let bdk = bdk.secret();
        // The device: loaded with the IPEK of its initial KSN.
        let ipek = tdes::derive_initial_key(&bdk, &ksn.initial()).unwrap();
        let device_key = tdes::derive_transaction_key(&ipek, &ksn).unwrap();
        // The host: the BDK and the full KSN the device sent.
        let host_key = tdes::transaction_key_from_bdk(&bdk, &ksn).unwrap();
        prop_assert!(device_key.same_material_as(&host_key));
        // Every working key differs from the transaction key and from the others.
        let mut seen = vec![device_key.expose_secret_hex()];
        for variant in TdesKeyVariant::ALL {
            let key = tdes::derive_working_key(&device_key, variant).unwrap();
            prop_assert!(!seen.contains(&key.expose_secret_hex()), "{variant:?}");
            seen.push(key.expose_secret_hex());
        }
    }

    #[test]
    fn tdes_counters_with_more_than_ten_one_bits_are_refused(
        bdk in tdes_bdk(),
        ksn in tdes_ksn(overfull_counter(21, 10)),
    ) {
        let bdk = bdk.secret();
        let refused = tdes::transaction_key_from_bdk(&bdk, &ksn).err();
        let is_too_many = matches!(refused, Some(DukptError::TooManyOneBits { limit: 10, .. }));
        prop_assert!(is_too_many);
    }

    #[test]
    fn tdes_pin_variant_flips_only_bytes_7_and_15(
        bdk in tdes_bdk(),
        ksn in tdes_ksn(valid_counter(21, 10)),
    ) {
        let bdk = bdk.secret();
        let key = tdes::transaction_key_from_bdk(&bdk, &ksn).unwrap();
        let pin_key = tdes::derive_working_key(&key, TdesKeyVariant::Pin).unwrap();
        let flipped: Vec<usize> = key
            .expose_secret_bytes()
            .iter()
            .zip(pin_key.expose_secret_bytes())
            .enumerate()
            .filter(|(_, (a, b))| *a ^ *b == 0xFF)
            .map(|(index, _)| index)
            .collect();
        prop_assert_eq!(flipped, vec![7, 15]);
    }

    #[test]
    fn aes_device_and_host_derive_the_same_keys(
        bdk in aes_bdk(),
        ksn in aes_ksn(valid_counter(32, 16)),
        initial_pick in 0usize..3,
        working_pick in 0usize..5,
        usage in prop::sample::select(AesKeyUsage::WORKING.to_vec()),
    ) {
        let bdk = bdk.secret();
        let initial_types = aes::allowed_initial_key_types(bdk.algorithm());
        let initial_type = initial_types[initial_pick % initial_types.len()];
        let working_types = aes::allowed_working_key_types(initial_type);
        let working_type = working_types[working_pick % working_types.len()];
        // The device: its initial key and key ID, then the counter's key.
        let initial_key = aes::derive_initial_key(&bdk, &ksn.key_id(), initial_type).unwrap();
        let transaction_key = aes::derive_transaction_key(&initial_key, &ksn).unwrap();
        let device_key =
            aes::derive_working_key(&transaction_key, &ksn, usage, working_type).unwrap();
        // The host: the BDK and the full KSN.
        let host_key =
            aes::working_key_from_bdk(&bdk, initial_type, &ksn, usage, working_type).unwrap();
        prop_assert!(device_key.same_material_as(&host_key));
        prop_assert_eq!(device_key.algorithm(), working_type);
        prop_assert_eq!(transaction_key.algorithm(), initial_type);
    }

    #[test]
    fn aes_counters_with_more_than_sixteen_one_bits_are_refused(
        bdk in aes_bdk(),
        ksn in aes_ksn(overfull_counter(32, 16)),
    ) {
        let bdk = bdk.secret();
        let refused = aes::working_key_from_bdk(
            &bdk,
            bdk.algorithm(),
            &ksn,
            AesKeyUsage::PinEncryption,
            KeyAlgorithm::Aes128,
        )
        .err();
        let is_too_many = matches!(refused, Some(DukptError::TooManyOneBits { limit: 16, .. }));
        prop_assert!(is_too_many);
    }

    #[test]
    fn aes_keys_stronger_than_their_source_are_refused(
        bdk in aes_bdk(),
        key_id in any::<[u8; 8]>(),
        wanted in prop::sample::select(KeyAlgorithm::ALL.to_vec()),
    ) {
        let bdk = bdk.secret();
        let key_id = InitialKeyId::from_bytes(key_id);
        let result = aes::derive_initial_key(&bdk, &key_id, wanted);
        let allowed = aes::allowed_initial_key_types(bdk.algorithm()).contains(&wanted);
        prop_assert_eq!(result.is_ok(), allowed);
        if wanted.family() == KeyFamily::Aes && !allowed {
            let is_stronger = matches!(result, Err(DukptError::StrongerThanSource { .. }));
            prop_assert!(is_stronger);
        }
    }

    #[test]
    fn ksns_print_and_parse_back(ksn in tdes_ksn(0..1u32 << 21), aes in aes_ksn(any::<u32>())) {
        prop_assert_eq!(ksn.to_string().parse::<Ksn>().unwrap(), Ksn::Tdes(ksn));
        prop_assert_eq!(aes.to_string().parse::<Ksn>().unwrap(), Ksn::Aes(aes));
        let rebuilt = TdesKsn::from_parts(ksn.key_set_id(), ksn.device_id(), ksn.counter()).unwrap();
        prop_assert_eq!(rebuilt, ksn);
    }

    #[test]
    fn next_is_the_least_greater_valid_counter(start in 0..=TdesKsn::MAX_COUNTER) {
        let ksn = TdesKsn::from_parts(0xFFFF987654, 0x1234, start).unwrap();
        let end = match ksn.next() {
            Some(next) => {
                prop_assert_eq!(next.initial(), ksn.initial());
                next.counter()
            }
            None => TdesKsn::MAX_COUNTER + 1,
        };
        prop_assert!(end > start);
        prop_assert!(end > TdesKsn::MAX_COUNTER || end.count_ones() <= 10);
        prop_assert!((start + 1..end).all(|counter| counter.count_ones() > 10));
    }

    #[test]
    fn format0_pin_blocks_round_trip(bdk in tdes_bdk(), pin in pin(), pan in pan()) {
        let bdk = bdk.secret();
        let (pin, pan) = (Pin::new(&pin).unwrap(), Pan::new(&pan).unwrap());
        let block = pin_block::format0_encrypt(&bdk, &pin, &pan).unwrap();
        let back = pin_block::format0_decrypt(&bdk, &block, &pan).unwrap();
        prop_assert_eq!(back.expose_digits(), pin.expose_digits());
    }

    #[test]
    fn format4_pin_blocks_round_trip_with_fresh_fill(bdk in aes_bdk(), pin in pin(), pan in pan()) {
        let bdk = bdk.secret();
        let (pin, pan) = (Pin::new(&pin).unwrap(), Pan::new(&pan).unwrap());
        let first = pin_block::format4_encrypt(&bdk, &pin, &pan).unwrap();
        let second = pin_block::format4_encrypt(&bdk, &pin, &pan).unwrap();
        prop_assert_ne!(first, second, "the fill is random");
        let (back, format) = pin_block::decrypt(&bdk, &first, &pan).unwrap();
        prop_assert_eq!(format, PinBlockFormat::Iso4);
        prop_assert_eq!(back.expose_digits(), pin.expose_digits());
    }

    #[test]
    fn a_device_pin_block_decrypts_at_the_host(
        tdes_bdk in tdes_bdk(),
        tdes_ksn in tdes_ksn(valid_counter(21, 10)),
        aes_bdk in aes_bdk(),
        aes_ksn in aes_ksn(valid_counter(32, 16)),
        pin in pin(),
        pan in pan(),
    ) {
        let (tdes_bdk, aes_bdk) = (tdes_bdk.secret(), aes_bdk.secret());
        let (pin, pan) = (Pin::new(&pin).unwrap(), Pan::new(&pan).unwrap());
        // TDES: the device's PIN key from its IPEK, format 0; the host's from the BDK.
        let ipek = tdes::derive_initial_key(&tdes_bdk, &tdes_ksn).unwrap();
        let device = tdes::derive_transaction_key(&ipek, &tdes_ksn).unwrap();
        let device_pin_key = tdes::derive_working_key(&device, TdesKeyVariant::Pin).unwrap();
        let block = pin_block::format0_encrypt(&device_pin_key, &pin, &pan).unwrap();
        let host = tdes::transaction_key_from_bdk(&tdes_bdk, &tdes_ksn).unwrap();
        let host_pin_key = tdes::derive_working_key(&host, TdesKeyVariant::Pin).unwrap();
        let (back, _) = pin_block::decrypt(&host_pin_key, &block, &pan).unwrap();
        prop_assert_eq!(back.expose_digits(), pin.expose_digits());
        // AES: an AES-128 PIN key, format 4.
        let initial_key =
            aes::derive_initial_key(&aes_bdk, &aes_ksn.key_id(), aes_bdk.algorithm()).unwrap();
        let device = aes::derive_transaction_key(&initial_key, &aes_ksn).unwrap();
        let usage = AesKeyUsage::PinEncryption;
        let device_pin_key =
            aes::derive_working_key(&device, &aes_ksn, usage, KeyAlgorithm::Aes128).unwrap();
        let block = pin_block::format4_encrypt(&device_pin_key, &pin, &pan).unwrap();
        let host_pin_key = aes::working_key_from_bdk(
            &aes_bdk,
            aes_bdk.algorithm(),
            &aes_ksn,
            usage,
            KeyAlgorithm::Aes128,
        )
        .unwrap();
        let (back, _) = pin_block::decrypt(&host_pin_key, &block, &pan).unwrap();
        prop_assert_eq!(back.expose_digits(), pin.expose_digits());
    }
}
