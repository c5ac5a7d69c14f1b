//! Fuzzes the key file reader: arbitrary bytes are read to the end or refused, never a panic or unbounded memory.
#![no_main]

use keymother_crypto::{KeyAlgorithm, SecretKey};
use keymother_keyfiles::{KeyFileReader, RecordOpener, SealKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let kek = SecretKey::from_hex(KeyAlgorithm::Aes128, "000102030405060708090A0B0C0D0E0F").expect("fixed key");
    let Ok(mut reader) = KeyFileReader::open(data, "fuzz.keys", &SealKey::derive(&kek)) else { return };
    let opener = RecordOpener::new(&kek, reader.header()).ok();
    while let Ok(Some(record)) = reader.next_record() {
        if let Some(opener) = &opener {
            let _ = opener.open(record);
        }
    }
});
