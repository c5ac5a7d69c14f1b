//! Expected-device lists: plain and sealed lists imported whole or not at all (errors name the line, never quote it), one open list per serial, closing, reconciliation by each list's window, and the sealed reconciliation export.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;
mod typed;
#[allow(unused_imports)]
use typed::*;

use keymother_crypto::{KeyAlgorithm, SecretKey};
use keymother_vault::{
    ExpectedError, ListName, RowStatus, Vault, seal_expected_list, verify_reconcile_export,
};
use support::{Bench, DEVICE};

fn name(text: &str) -> ListName {
    text.parse().unwrap()
}

fn import(bench: &mut Bench, list: &str, text: &str) -> Result<(), ExpectedError> {
    bench
        .vault
        .import_expected_list(&name(list), text.as_bytes(), "run.csv", Some("Alice"))
        .map(|_| ())
}

fn audit_events(vault: &Vault) -> Vec<(String, String)> {
    vault
        .audit_rows()
        .unwrap()
        .into_iter()
        .map(|row| (row.event, row.details))
        .collect()
}

fn device_rows(bench: &Bench) -> i64 {
    bench
        .raw()
        .query_row("SELECT count(*) FROM expected_device", [], |row| row.get(0))
        .unwrap()
}

#[test]
fn a_plain_list_is_imported_whole_and_audited() {
    let mut bench = Bench::new(3);
    let list = bench
        .vault
        .import_expected_list(
            &name("RUN-1"),
            b"serial,model\r\nA0001,PX-9 Pro\r\nA0002,\r\nA0003,V240M\r\n",
            "/media/usb/run-1.csv",
            Some("Alice"),
        )
        .unwrap();
    assert_eq!(
        (list.devices, list.sealed, list.is_open()),
        (3, false, true)
    );
    assert_eq!(bench.vault.expected_lists().unwrap(), vec![list.clone()]);
    let (event, details) = audit_events(&bench.vault).pop().unwrap();
    assert_eq!(event, "expected-import");
    assert!(
        details.starts_with(
            "list=RUN-1; devices=3; sealed=no; file=/media/usb/run-1.csv; file_sha256="
        ),
        "{details}"
    );
    assert!(details.ends_with("; operator=Alice"), "{details}");
    assert_eq!(
        bench.vault.open_list_holding(&as_serial("A0002")).unwrap(),
        Some(name("RUN-1"))
    );
    assert_eq!(
        bench.vault.open_list_holding(&as_serial("A0009")).unwrap(),
        None
    );
}

#[test]
fn bad_lines_are_named_never_quoted_and_nothing_is_imported() {
    let cases: &[(&str, &str)] = &[
        (
            "serial\nA0001\nsecret-7f3a\n",
            "run.csv: line 3: the hardware serial: character 1 is not allowed; allowed are A-Z and 0-9",
        ),
        (
            "serial\nA0001\nA0001\n",
            "run.csv: line 3: the same hardware serial as line 2",
        ),
        (
            "serial\nA0001\n\nA0002\n",
            "run.csv: line 3: the line is empty",
        ),
        (
            "serial,model\nA0001\n",
            "run.csv: line 2: expected 2 comma-separated fields (serial,model), found 1",
        ),
        (
            "serial\nA0001,EXTRA99\n",
            "run.csv: line 2: expected 1 comma-separated field (serial), found 2",
        ),
        (
            "hardware,id\nA0001\n",
            "run.csv: line 1: expected the column line \"serial\" or \"serial,model\"",
        ),
        ("serial\n", "run.csv: line 2: the list holds no serials"),
        (
            "",
            "run.csv: line 1: the file ends before its column line (\"serial\" or \"serial,model\")",
        ),
        (
            "serial\nA0001\nA\u{e9}0002\n",
            "run.csv: line 3: byte 2 is not printable ASCII",
        ),
        (
            "serial,model\nA0001,\"PX-9\"\n",
            "run.csv: line 2: quoted fields are not supported; write the values as they are",
        ),
        (
            "serial\nABCDEFGHIJKLMNOPQRSTUVWXYZ\n",
            "run.csv: line 2: the hardware serial is 26 characters long; at most 24 are allowed",
        ),
        (
            "serial\n# KEY 0123456789ABCDEF\n",
            "run.csv: line 2: a comment line; a list holds one serial per line",
        ),
        (
            "# KEYMOTHER-KEYFILE/1\n",
            "run.csv: line 1: this is not an expected-device list (a sealed one starts with \"# KEYMOTHER-EXPECTED-DEVICES/1\")",
        ),
    ];
    let mut bench = Bench::new(1);
    for (text, expected) in cases {
        let before = bench.audit_count();
        let error = import(&mut bench, "RUN-1", text).unwrap_err();
        assert_eq!(error.to_string(), *expected, "for {text:?}");
        for secret in ["secret-7f3a", "0123456789ABCDEF", "EXTRA99", "PX-9"] {
            assert!(
                !error.to_string().contains(secret),
                "{error} quotes the file"
            );
        }
        assert_eq!(device_rows(&bench), 0);
        assert!(bench.vault.expected_lists().unwrap().is_empty());
        let events = audit_events(&bench.vault);
        assert_eq!(events.len(), before + 1);
        let (event, details) = events.last().unwrap();
        assert_eq!(event, "expected-import-refused");
        let reason = expected
            .strip_prefix("run.csv: ")
            .unwrap()
            .replace('%', "%25")
            .replace(';', "%3B")
            .replace(',', "%2C")
            .replace('"', "%22")
            .replace('=', "%3D");
        assert_eq!(
            details,
            &format!("list=RUN-1; file=run.csv; reason={reason}; operator=Alice")
        );
    }
}

#[test]
fn a_serial_is_on_one_open_list_and_names_are_never_reused() {
    let mut bench = Bench::new(1);
    import(&mut bench, "RUN-1", "serial\nA0001\nA0002\n").unwrap();
    let error = import(&mut bench, "RUN-2", "serial\nB0001\nA0002\n").unwrap_err();
    assert_eq!(
        error.to_string(),
        "run.csv: line 3: this serial is already on the open list RUN-1; close that list first or leave the serial out"
    );
    assert_eq!(bench.vault.expected_lists().unwrap().len(), 1);
    let error = import(&mut bench, "RUN-1", "serial\nC0001\n").unwrap_err();
    assert_eq!(
        error.to_string(),
        "a list named RUN-1 was imported before; list names are never reused"
    );
    let closed = bench
        .vault
        .close_expected_list(&name("RUN-1"), Some("Bob"))
        .unwrap();
    assert!(!closed.is_open());
    assert_eq!(closed.closed_by.as_deref(), Some("Bob"));
    assert_eq!(
        bench.vault.open_list_holding(&as_serial("A0002")).unwrap(),
        None
    );
    import(&mut bench, "RUN-2", "serial\nB0001\nA0002\n").unwrap();
    let error = bench
        .vault
        .close_expected_list(&name("RUN-1"), None)
        .unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("the list RUN-1 was closed at "),
        "{error}"
    );
    assert!(
        bench
            .vault
            .close_expected_list(&name("NOPE"), None)
            .is_err()
    );
    assert!("bad name!".parse::<ListName>().is_err());
    assert!("".parse::<ListName>().is_err());
}

fn sealed_list(kek: &SecretKey, device: &str) -> String {
    seal_expected_list(
        "serial,model\nA0001,PX-9 Pro\nA0002,PX-9 Pro\n",
        &device.parse().unwrap(),
        kek,
    )
}

#[test]
fn a_sealed_list_is_checked_under_the_kek_before_its_rows() {
    let mut bench = Bench::new(1);
    let kek = SecretKey::from_hex(KeyAlgorithm::Aes256, &bench.kek.expose_secret_hex()).unwrap();
    let good = sealed_list(&kek, DEVICE);
    assert!(
        good.starts_with("# KEYMOTHER-EXPECTED-DEVICES/1\n# device-id: KM-TEST-0001\n# kek-kcv: ")
    );
    let other_kek = SecretKey::generate(KeyAlgorithm::Aes256).unwrap();
    let altered = good.replacen("A0002", "A0003", 1);
    let seal_line = good.lines().count();
    let cases = [
        (
            sealed_list(&kek, "KM-OTHER-0002"),
            "run.csv: line 2: the list is for device KM-OTHER-0002, but this appliance is KM-TEST-0001".to_owned(),
        ),
        (
            sealed_list(&other_kek, DEVICE),
            format!(
                "run.csv: line 3: the list was sealed under the KEK with check value {}, not under this appliance's KEK ({})",
                other_kek.kcv(),
                kek.kcv()
            ),
        ),
        (
            altered,
            format!("run.csv: line {seal_line}: the seal does not verify: the list was altered after it was sealed"),
        ),
        (
            good.lines().take(seal_line - 1).map(|line| format!("{line}\n")).collect(),
            format!("run.csv: line {seal_line}: the sealed list ends without its seal line; it may be truncated"),
        ),
        (
            format!("{good}A0009\n"),
            format!("run.csv: line {}: nothing may follow the seal line (line {seal_line})", seal_line + 1),
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(
            import(&mut bench, "RUN-1", &text).unwrap_err().to_string(),
            expected
        );
        assert_eq!(device_rows(&bench), 0);
    }
    let list = bench
        .vault
        .import_expected_list(&name("RUN-1"), good.as_bytes(), "run.csv", None)
        .unwrap();
    assert_eq!((list.devices, list.sealed), (2, true));
    assert!(
        audit_events(&bench.vault)
            .last()
            .unwrap()
            .1
            .contains("sealed=yes")
    );
}

#[test]
fn reconciliation_accounts_for_every_listed_serial_within_the_lists_window() {
    let mut bench = Bench::new(10);
    // Injected before the list existed: not the list's.
    bench.inject("A0001");
    import(
        &mut bench,
        "RUN-1",
        "serial,model\nA0001,PX-9\nA0002,PX-9\nA0003,\nA0004,\n",
    )
    .unwrap();
    let second = bench.inject("A0002");
    bench.send("A0003");
    bench
        .vault
        .record_unexpected_device(&as_serial("Z9999"), "bench-2", "tr31")
        .unwrap();
    bench
        .vault
        .record_unexpected_device(&as_serial("Z9999"), "bench-3", "tr31")
        .unwrap();
    let reconciliation = bench.vault.reconcile(Some(&name("RUN-1"))).unwrap();
    let list = &reconciliation.lists[0];
    let serials = |devices: Vec<String>| devices.join(" ");
    assert_eq!(
        serials(
            list.injected
                .iter()
                .map(|d| d.hardware_serial.to_string())
                .collect()
        ),
        "A0002"
    );
    assert_eq!(
        list.injected[0].keys[0].key.key(),
        second.key_index.to_string()
    );
    assert_eq!(
        list.injected[0].keys[0]
            .smn(&as_serial("A0002"))
            .unwrap()
            .to_string(),
        second.smn.to_string()
    );
    assert_eq!(
        serials(
            list.pending
                .iter()
                .map(|d| d.hardware_serial.to_string())
                .collect()
        ),
        "A0003"
    );
    assert_eq!(list.pending[0].keys[0].state, "sent");
    assert_eq!(
        serials(
            list.missing
                .iter()
                .map(|d| d.hardware_serial.to_string())
                .collect()
        ),
        "A0001 A0004"
    );
    assert_eq!(list.refused.len(), 1);
    assert_eq!(
        (list.refused[0].attempts, list.refused[0].last_port.as_str()),
        (2, "bench-3")
    );

    let closed = bench
        .vault
        .close_expected_list(&name("RUN-1"), Some("Bob"))
        .unwrap();
    assert!(closed.closed_at.is_some());
    let (event, details) = audit_events(&bench.vault).pop().unwrap();
    assert_eq!(event, "expected-close");
    assert_eq!(
        details,
        "list=RUN-1; devices=4; injected=1; pending=1; missing=2; refused=1; operator=Bob"
    );
    // After the close: neither an injection nor a refusal is the list's any more.
    bench.inject("A0004");
    bench
        .vault
        .record_unexpected_device(&as_serial("Z8888"), "bench-2", "tr31")
        .unwrap();
    let after = bench.vault.reconcile(None).unwrap();
    assert_eq!(after.lists[0].counts(), list.counts());
}

#[test]
fn the_reconciliation_export_verifies_under_the_kek_and_holds_the_counts() {
    let mut bench = Bench::new(10);
    import(
        &mut bench,
        "RUN-1",
        "serial,model\nA0001,PX-9 Pro\nA0002,\nA0003,\n",
    )
    .unwrap();
    bench.inject("A0001");
    bench.send("A0002");
    bench
        .vault
        .record_unexpected_device(&as_serial("Z9999"), "bench-2", "certificate")
        .unwrap();
    let mut bytes = Vec::new();
    let draft = bench
        .vault
        .write_reconcile_export(&mut bytes, None, std::path::Path::new("rec.csv"))
        .unwrap();
    assert_eq!(draft.rows, 4);
    let before = bench.audit_count();
    let report = bench
        .vault
        .commit_reconcile_export(&draft, "rec.csv", Some("Alice"))
        .unwrap();
    assert_eq!(bench.audit_count(), before + 1);
    let (event, details) = audit_events(&bench.vault).pop().unwrap();
    assert_eq!(event, "reconcile-export");
    assert!(
        details.starts_with("list=all; file=rec.csv; rows=4; file_sha256="),
        "{details}"
    );
    assert_eq!(report.file_sha256, draft.file_sha256);

    let verified = verify_reconcile_export(bytes.as_slice(), "rec.csv", &bench.kek).unwrap();
    assert_eq!(verified.device_id, DEVICE);
    assert_eq!(verified.list, None);
    let statuses: Vec<(RowStatus, String)> = verified
        .rows
        .iter()
        .map(|row| (row.status, row.hardware_serial.to_string()))
        .collect();
    assert_eq!(
        statuses,
        vec![
            (RowStatus::Injected, "A0001".to_owned()),
            (RowStatus::Pending, "A0002".to_owned()),
            (RowStatus::Missing, "A0003".to_owned()),
            (RowStatus::Refused, "Z9999".to_owned()),
        ]
    );
    assert_eq!(verified.counts()[&name("RUN-1")], [1, 1, 1, 1]);
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(text.contains(",PX-9%20Pro,master,"), "{text}");

    // Altered, or checked under another KEK: refused, naming the line.
    let altered = text.replacen("A0003", "A0004", 1);
    let error = verify_reconcile_export(altered.as_bytes(), "rec.csv", &bench.kek).unwrap_err();
    assert!(
        error.to_string().contains("the seal does not verify"),
        "{error}"
    );
    let other = SecretKey::generate(KeyAlgorithm::Aes256).unwrap();
    let error = verify_reconcile_export(bytes.as_slice(), "rec.csv", &other).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("rec.csv: line 3: the file was sealed under the KEK"),
        "{error}"
    );
    let truncated: String = text
        .lines()
        .take(9)
        .map(|line| format!("{line}\n"))
        .collect();
    let error = verify_reconcile_export(truncated.as_bytes(), "rec.csv", &bench.kek).unwrap_err();
    assert!(
        error.to_string().contains("without its seal line"),
        "{error}"
    );
}

#[test]
fn the_schema_keeps_lists_devices_and_refusals_as_recorded() {
    let mut bench = Bench::new(1);
    import(&mut bench, "RUN-1", "serial\nA0001\n").unwrap();
    bench
        .vault
        .record_unexpected_device(&as_serial("Z9999"), "bench-2", "tr31")
        .unwrap();
    let raw = bench.raw();
    for statement in [
        "DELETE FROM expected_list",
        "UPDATE expected_list SET devices = 9",
        "UPDATE expected_list SET closed_at = NULL",
        "DELETE FROM expected_device",
        "UPDATE expected_device SET hardware_serial = 'B0001'",
        "DELETE FROM expected_refusal",
        "UPDATE expected_refusal SET hardware_serial = 'A0001'",
        "INSERT INTO expected_list (name, devices, sealed, file, file_sha256, imported_at,
             smn_from, dukpt_from, refusal_from) VALUES ('RUN-2', 1, 0, 'f', 'x', 't', 0, 0, 0);
         INSERT INTO expected_device VALUES ('RUN-2', 'A0001', NULL, 2)",
    ] {
        assert!(
            raw.execute_batch(statement).is_err(),
            "{statement} was allowed"
        );
    }
    // Closing once is allowed; a second close is not.
    bench
        .vault
        .close_expected_list(&name("RUN-1"), None)
        .unwrap();
    assert!(
        raw.execute_batch("UPDATE expected_list SET closed_at = 'later'")
            .is_err()
    );
}
