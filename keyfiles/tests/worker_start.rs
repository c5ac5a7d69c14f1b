//! `open_records_in_order_with` runs its start function first on every worker thread that opens records, and on no other thread.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::sync::Mutex;

use keymother_crypto::{KeyAlgorithm, SecretKey};
use keymother_keyfiles::testing::FileLines;
use keymother_keyfiles::{
    CreatedAt, GenerateOptions, KeyIndex, RecordOpener, SealKey, open_records_in_order_with,
};

/// The threads the start function ran on, and the threads records were opened on.
static STARTED_ON: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

fn thread_name() -> String {
    format!("{:?}", std::thread::current().id())
}

fn note_start() {
    STARTED_ON.lock().unwrap().insert(thread_name());
}

#[test]
fn the_start_function_runs_on_each_worker_and_not_on_the_callers_thread() {
    let kek = SecretKey::generate(KeyAlgorithm::Aes256).unwrap();
    let lines = FileLines::generated(
        &kek,
        &GenerateOptions {
            batch_id: "B-WORKERS-1".parse().unwrap(),
            issuer: "TEST FRONT END".parse().unwrap(),
            algorithm: KeyAlgorithm::Tdes2Key,
            // Several chunks of 512, so that every worker gets one.
            record_count: 3000,
            first_index: KeyIndex::new(1).unwrap(),
            device_id: "KM-TEST-0001".parse().unwrap(),
            created: CreatedAt::new(time::OffsetDateTime::now_utc()),
        },
    )
    .unwrap();
    let bytes = lines.sealed(&kek);
    let mut reader = keymother_keyfiles::KeyFileReader::open(
        bytes.as_slice(),
        "workers.keys",
        &SealKey::derive(&kek),
    )
    .unwrap();
    let opener = RecordOpener::new(&kek, reader.header()).unwrap();
    let mut stored = 0u32;
    let outcome =
        open_records_in_order_with::<_, ()>(&mut reader, &opener, note_start, &mut |_| {
            stored += 1;
            Ok(())
        });
    assert!(outcome.is_ok());
    assert_eq!(stored, 3000);
    let started = STARTED_ON.lock().unwrap().clone();
    let workers = std::thread::available_parallelism()
        .map(std::num::NonZeroUsize::get)
        .unwrap_or(1)
        .clamp(1, 8);
    assert_eq!(started.len(), workers, "once on each worker thread");
    assert!(
        !started.contains(&thread_name()),
        "never on the caller's thread (the reader and the store)"
    );
}
