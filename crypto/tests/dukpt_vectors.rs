//! Published DUKPT vectors from tests/vectors/dukpt_*.txt: TDES (X9.24-1-2009 A.4) and AES (X9.24-3-2017 supplement) keys, PIN blocks and MACs, every high-counter row included.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use des::cipher::{BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use keymother_crypto::dukpt::{
    AesKsn, DukptError, InitialKeyId, TdesKsn,
    aes::{self, AesKeyUsage},
    tdes::{self, TdesKeyVariant},
};
use keymother_crypto::pin_block::{self, Pan, Pin};
use keymother_crypto::{KeyAlgorithm, KeyFamily, SecretKey};

/// One vector: its fields and the line it starts on (for failure messages).
struct Stanza {
    line: usize,
    fields: BTreeMap<String, String>,
}

impl Stanza {
    fn get(&self, field: &str) -> Option<&str> {
        self.fields.get(field).map(String::as_str)
    }

    fn field(&self, field: &str) -> &str {
        self.get(field)
            .unwrap_or_else(|| panic!("vector at line {} has no `{field}`", self.line))
    }

    fn describe(&self) -> String {
        format!("{} (line {})", self.field("name"), self.line)
    }

    fn is_high_counter(&self) -> bool {
        self.get("high_counter") == Some("yes")
    }
}

fn load(file: &str) -> Vec<Stanza> {
    let path = format!("{}/tests/vectors/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"));
    let mut stanzas = Vec::new();
    let mut current: Option<Stanza> = None;
    for (index, line) in text.lines().enumerate() {
        if line.starts_with('#') {
            continue;
        }
        if line.trim().is_empty() {
            stanzas.extend(current.take());
            continue;
        }
        let (name, value) = line
            .split_once(" = ")
            .unwrap_or_else(|| panic!("{path}:{}: expected `field = value`", index + 1));
        let stanza = current.get_or_insert_with(|| Stanza {
            line: index + 1,
            fields: BTreeMap::new(),
        });
        assert!(
            stanza
                .fields
                .insert(name.to_owned(), value.to_owned())
                .is_none(),
            "{path}:{}: `{name}` twice",
            index + 1
        );
    }
    stanzas.extend(current);
    stanzas
}

fn hex_of(key: &SecretKey) -> String {
    key.expose_secret_hex().to_string()
}

/// ANSI X9.19 MAC (ISO 9797-1 MAC algorithm 3, padding method 1) under a double-length key,
/// its leftmost 4 bytes: the MAC A.4 publishes. Test code only, on RustCrypto's DES.
fn x9_19_mac(key: &SecretKey, data: &[u8]) -> String {
    let bytes = key.expose_secret_bytes();
    let left = des::Des::new_from_slice(&bytes[..8]).unwrap();
    let right = des::Des::new_from_slice(&bytes[8..]).unwrap();
    let mut state = [0u8; 8];
    for chunk in data.chunks(8) {
        for (byte, input) in state.iter_mut().zip(chunk) {
            *byte ^= input;
        }
        left.encrypt_block((&mut state).into());
    }
    right.decrypt_block((&mut state).into());
    left.encrypt_block((&mut state).into());
    hex::encode_upper(&state[..4])
}

#[test]
fn tdes_x9_24_1_annex_a4() {
    let stanzas = load("dukpt_tdes.txt");
    let (device, transactions) = stanzas.split_first().unwrap();
    let bdk = SecretKey::from_hex(KeyAlgorithm::Tdes2Key, device.field("bdk")).unwrap();
    let initial_ksn: TdesKsn = device.field("initial_ksn").parse().unwrap();
    let initial_key = tdes::derive_initial_key(&bdk, &initial_ksn).unwrap();
    assert_eq!(hex_of(&initial_key), device.field("initial_key"));
    let pin = Pin::new(device.field("pin")).unwrap();
    let pan = Pan::new(device.field("pan")).unwrap();
    assert_eq!(
        hex::encode_upper(pin_block::format0_clear_block(&pin, &pan).as_slice()),
        device.field("clear_pin_block")
    );
    let mac_data = device.field("mac_data").as_bytes();

    let mut high_counters = 0;
    for (index, stanza) in transactions.iter().enumerate() {
        let name = stanza.describe();
        let ksn: TdesKsn = stanza.field("ksn").parse().unwrap();
        assert_eq!(ksn.initial(), initial_ksn, "{name}");
        // The IPEK from any of the device's KSNs is the same: the counter is cleared first.
        let ipek = tdes::derive_initial_key(&bdk, &ksn).unwrap();
        assert!(ipek.same_material_as(&initial_key), "{name}");
        let key = tdes::derive_transaction_key(&initial_key, &ksn).unwrap();
        assert_eq!(hex_of(&key), stanza.field("transaction_key"), "{name}");
        let from_bdk = tdes::transaction_key_from_bdk(&bdk, &ksn).unwrap();
        assert!(from_bdk.same_material_as(&key), "{name}");

        let pin_key = tdes::derive_working_key(&key, TdesKeyVariant::Pin).unwrap();
        let block = pin_block::format0_encrypt(&pin_key, &pin, &pan).unwrap();
        assert_eq!(
            hex::encode_upper(block),
            stanza.field("pin_block"),
            "{name}"
        );
        let decrypted = pin_block::format0_decrypt(&pin_key, &block, &pan).unwrap();
        assert_eq!(decrypted.expose_digits(), "1234", "{name}");

        let request = tdes::derive_working_key(&key, TdesKeyVariant::MacRequest).unwrap();
        assert_eq!(
            x9_19_mac(&request, mac_data),
            stanza.field("mac_request"),
            "{name}"
        );
        let response = tdes::derive_working_key(&key, TdesKeyVariant::MacResponse).unwrap();
        assert_eq!(
            x9_19_mac(&response, mac_data),
            stanza.field("mac_response"),
            "{name}"
        );

        // Within a sequence, each row's KSN is the next valid one after the row before.
        if let Some(next) = transactions.get(index + 1)
            && next.is_high_counter() == stanza.is_high_counter()
        {
            assert_eq!(ksn.next().unwrap().to_string(), next.field("ksn"), "{name}");
        }
        high_counters += usize::from(stanza.is_high_counter());
    }
    assert_eq!(transactions.len(), 34, "21 initial and 13 rollover rows");
    assert_eq!(high_counters, 13, "every A.4.3 rollover row");
}

/// The working key a field such as `pin_key_aes128` names: usage and key type.
fn working_key_field(field: &str) -> Option<(AesKeyUsage, KeyAlgorithm)> {
    let (usage, key_type) = field.rsplit_once("_key_")?;
    let usage = match usage {
        "pin" => AesKeyUsage::PinEncryption,
        "mac_generation" => AesKeyUsage::MacGeneration,
        "data_encrypt" => AesKeyUsage::DataEncrypt,
        _ => return None,
    };
    let key_type = match key_type {
        "aes128" => KeyAlgorithm::Aes128,
        "aes256" => KeyAlgorithm::Aes256,
        "tdes2" => KeyAlgorithm::Tdes2Key,
        "tdes3" => KeyAlgorithm::Tdes3Key,
        _ => return None,
    };
    Some((usage, key_type))
}

/// Checks the device stanza of an AES file: initial key, update keys, PIN block fields.
/// Returns the BDK, the initial key and the PIN block example's PIN, PAN and fill.
fn check_aes_device(device: &Stanza) -> (SecretKey, SecretKey, Pin, Pan, [u8; 8]) {
    let bdk = SecretKey::from_hex_in_family(KeyFamily::Aes, device.field("bdk")).unwrap();
    let key_id: InitialKeyId = device.field("initial_key_id").parse().unwrap();
    let initial_key = aes::derive_initial_key(&bdk, &key_id, bdk.algorithm()).unwrap();
    assert_eq!(hex_of(&initial_key), device.field("initial_key"));
    let mut update_keys = 0;
    for (field, expected) in &device.fields {
        let Some(key_type) = field.strip_prefix("update_key_") else {
            continue;
        };
        let key_type = match key_type {
            "aes128" => KeyAlgorithm::Aes128,
            "aes256" => KeyAlgorithm::Aes256,
            "tdes2" => KeyAlgorithm::Tdes2Key,
            "tdes3" => KeyAlgorithm::Tdes3Key,
            other => panic!("unknown update key type {other}"),
        };
        let update_key = aes::derive_update_key(&initial_key, &key_id, key_type).unwrap();
        assert_eq!(&hex_of(&update_key), expected, "{field}");
        update_keys += 1;
    }
    assert!(update_keys >= 2, "{}", device.describe());
    let pin = Pin::new(device.field("pin")).unwrap();
    let pan = Pan::new(device.field("pan")).unwrap();
    let fill: [u8; 8] = hex::decode(device.field("pin_fill"))
        .unwrap()
        .try_into()
        .unwrap();
    (bdk, initial_key, pin, pan, fill)
}

/// Checks every transaction of an AES file; returns how many rows and high-counter rows.
fn check_aes_file(file: &str) -> (usize, usize) {
    let stanzas = load(file);
    let (device, transactions) = stanzas.split_first().unwrap();
    let (bdk, initial_key, pin, pan, fill) = check_aes_device(device);
    let mut high_counters = 0;
    for stanza in transactions {
        let name = stanza.describe();
        let ksn: AesKsn = stanza.field("ksn").parse().unwrap();
        let key = aes::derive_transaction_key(&initial_key, &ksn).unwrap();
        assert_eq!(hex_of(&key), stanza.field("transaction_key"), "{name}");
        let mut working_keys = 0;
        for (field, expected) in &stanza.fields {
            let Some((usage, key_type)) = working_key_field(field) else {
                continue;
            };
            let working = aes::derive_working_key(&key, &ksn, usage, key_type).unwrap();
            assert_eq!(&hex_of(&working), expected, "{name}: {field}");
            let from_bdk =
                aes::working_key_from_bdk(&bdk, bdk.algorithm(), &ksn, usage, key_type).unwrap();
            assert!(from_bdk.same_material_as(&working), "{name}: {field}");
            working_keys += 1;
        }
        assert!(
            working_keys >= 3 || stanza.is_high_counter(),
            "{name}: no working keys"
        );
        if let Some(expected) = stanza.get("pin_block") {
            let pin_key = aes::derive_working_key(
                &key,
                &ksn,
                AesKeyUsage::PinEncryption,
                KeyAlgorithm::Aes128,
            )
            .unwrap();
            let block = pin_block::format4_encrypt_with_fill(&pin_key, &pin, &pan, &fill).unwrap();
            assert_eq!(hex::encode_upper(block), expected, "{name}");
            let decrypted = pin_block::format4_decrypt(&pin_key, &block, &pan).unwrap();
            assert_eq!(decrypted.expose_digits(), pin.expose_digits(), "{name}");
        }
        high_counters += usize::from(stanza.is_high_counter());
    }
    // Counter 1FFFF, between the boundary rows, has 17 one-bits: refused.
    let ksn: AesKsn = "12345678901234560001FFFF".parse().unwrap();
    assert!(matches!(
        aes::derive_transaction_key(&initial_key, &ksn),
        Err(DukptError::TooManyOneBits { ones: 17, .. })
    ));
    (transactions.len(), high_counters)
}

#[test]
fn aes128_x9_24_3_supplement() {
    let stanzas = load("dukpt_aes128.txt");
    let device = &stanzas[0];
    assert_eq!(
        device.field("pin_field"),
        format!("441234AAAAAAAAAA{}", device.field("pin_fill"))
    );
    assert_eq!(check_aes_file("dukpt_aes128.txt"), (15, 7));
}

#[test]
fn aes256_x9_24_3_supplement() {
    assert_eq!(check_aes_file("dukpt_aes256.txt"), (15, 7));
}
