//! Property tests: what the reference terminal derives from an initial key it was delivered equals what the host side (the calculator's functions) derives from the BDK, for random BDKs, device IDs and counters; and a test PIN block it makes decrypts on the host side.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use keymother_crypto::dukpt::{InitialKeyIdentity, Ksn, aes, tdes};
use keymother_crypto::pin_block::{self, Pan, Pin};
use keymother_crypto::tr31::{KeyBlockProtectionKey, Version};
use keymother_crypto::{KeyAlgorithm, KeyFamily, SecretKey};
use keymother_terminal::dukpt_keys::DukptKey;
use proptest::prelude::*;

/// The initial key of `identity` from `bdk`, delivered to the terminal as the appliance does:
/// a TR-31 B1 block under a TTK, opened by the terminal.
fn delivered(bdk: &SecretKey, identity: InitialKeyIdentity, key_type: KeyAlgorithm) -> DukptKey {
    let initial = identity.derive(bdk, key_type).unwrap();
    let ttk =
        KeyBlockProtectionKey::new(&SecretKey::from_bytes(KeyAlgorithm::Aes256, &[7; 32]).unwrap());
    let block = ttk
        .wrap(&identity.key_block_header(Version::D, key_type), &initial)
        .unwrap();
    DukptKey::open(&ttk, "SLOT", identity, &block, initial.kcv().as_bytes()).unwrap()
}

/// A counter with at most `limit` one-bits (DUKPT skips the others), never 0.
fn counter(bits: u32, limit: u32) -> impl Strategy<Value = u32> {
    proptest::collection::btree_set(0..bits, 1..=limit as usize)
        .prop_map(|set| set.into_iter().fold(0u32, |value, bit| value | (1 << bit)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn tdes_terminal_keys_equal_the_host_s(
        bdk in any::<[u8; 16]>(),
        key_set in 0u64..(1 << 40),
        device in 0u32..(1 << 19),
        counter in counter(21, 10),
    ) {
        let bdk = SecretKey::from_bytes(KeyAlgorithm::Tdes2Key, &bdk).unwrap();
        let identity = InitialKeyIdentity::for_device(KeyFamily::Tdes, key_set, device).unwrap();
        let terminal = delivered(&bdk, identity, KeyAlgorithm::Tdes2Key);
        let Ksn::Tdes(ksn) = terminal.ksn(counter).unwrap() else { panic!("TDES") };
        let host = tdes::transaction_key_from_bdk(&bdk, &ksn).unwrap();
        prop_assert_eq!(terminal.transaction_key(counter).unwrap().kcv(), host.kcv());
        let pan = Pan::new("4012345678909").unwrap();
        let (_, block) = terminal.test_pin_block(counter, &Pin::new("93018").unwrap(), &pan).unwrap();
        let host_pin_key = tdes::derive_working_key(&host, tdes::TdesKeyVariant::Pin).unwrap();
        let (pin, _) = pin_block::decrypt(&host_pin_key, &block, &pan).unwrap();
        prop_assert_eq!(pin.expose_digits(), "93018");
    }

    #[test]
    fn aes_terminal_keys_equal_the_host_s(
        bdk in any::<[u8; 32]>(),
        bdk_id in any::<u32>(),
        device in any::<u32>(),
        counter in counter(32, 16),
        key_type in prop::sample::select(vec![KeyAlgorithm::Aes128, KeyAlgorithm::Aes192, KeyAlgorithm::Aes256]),
    ) {
        let bdk = SecretKey::from_bytes(KeyAlgorithm::Aes256, &bdk).unwrap();
        let identity = InitialKeyIdentity::for_device(KeyFamily::Aes, u64::from(bdk_id), device).unwrap();
        let terminal = delivered(&bdk, identity, key_type);
        let Ksn::Aes(ksn) = terminal.ksn(counter).unwrap() else { panic!("AES") };
        let host_pin_key = aes::working_key_from_bdk(&bdk, key_type, &ksn, aes::AesKeyUsage::PinEncryption, key_type).unwrap();
        prop_assert_eq!(terminal.pin_key(counter).unwrap().kcv(), host_pin_key.kcv());
        let pan = Pan::new("4111111111111111").unwrap();
        let (_, block) = terminal.test_pin_block(counter, &Pin::new("1234").unwrap(), &pan).unwrap();
        let (pin, _) = pin_block::decrypt(&host_pin_key, &block, &pan).unwrap();
        prop_assert_eq!(pin.expose_digits(), "1234");
    }
}
