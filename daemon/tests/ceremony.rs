//! Named custodians over the control socket: every custodian of every ceremony (KEK, TTK, BDK) named in its audit row, each refused ceremony audited with its reason and custodians, and a loaded key replaced only with `replace`, audited as a replacement.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use keymother_crypto::{KeyAlgorithm, SecretKey, parity};
use keymother_vault::AuditRow;
use serde_json::{Value, json};
use support::operators::{ask, ok, refused};
use support::{Appliance, InProcessDaemon};

/// Two components of `key` (odd parity for TDES), each under its custodian's name, with the
/// component's check value as its form states it.
fn components(key: &SecretKey, names: [&str; 2]) -> Value {
    let bytes = key.expose_secret_bytes();
    let tdes = key.algorithm().family() == keymother_crypto::KeyFamily::Tdes;
    let mut first: Vec<u8> = (0..bytes.len()).map(|_| fastrand::u8(..)).collect();
    if tdes {
        parity::adjust_to_odd(&mut first);
    }
    let mut second: Vec<u8> = bytes.iter().zip(&first).map(|(k, f)| k ^ f).collect();
    if tdes {
        parity::adjust_to_odd(&mut second);
    }
    let entry = |name: &str, part: &[u8]| {
        let kcv = SecretKey::from_bytes(key.algorithm(), part).unwrap().kcv();
        json!({"custodian": name, "component": hex::encode_upper(part), "kcv": kcv.to_string()})
    };
    json!([entry(names[0], &first), entry(names[1], &second)])
}

fn last_row(appliance: &Appliance) -> AuditRow {
    appliance.vault().audit_rows().unwrap().pop().unwrap()
}

struct Bench {
    appliance: Appliance,
    _daemon: InProcessDaemon,
}

impl Bench {
    /// An appliance with its KEK and TTK loaded (AES-256) and the daemon running.
    fn new() -> Bench {
        let appliance = Appliance::provisioned(2);
        let (_lines, settings) = appliance.ports(1);
        let daemon = InProcessDaemon::start(settings);
        Bench {
            appliance,
            _daemon: daemon,
        }
    }

    fn ask(&self, request: &Value) -> Value {
        ask(
            &self.appliance.directory.path().join("control.sock"),
            request,
        )
    }
}

#[test]
fn a_replacement_is_refused_without_replace_and_audited_as_one_with_it() {
    let bench = Bench::new();
    let loaded_kcv = SecretKey::from_hex(KeyAlgorithm::Aes256, &bench.appliance.transport_key_hex)
        .unwrap()
        .kcv();
    let ttk = SecretKey::generate(KeyAlgorithm::Aes256).unwrap();
    let mut request = json!({
        "command": "ceremony",
        "secret": "ttk",
        "algorithm": "AES-256",
        "components": components(&ttk, ["Ann Lee", "Raj Patel"]),
    });
    let error = refused(bench.ask(&request));
    assert_eq!(
        error,
        format!(
            "a TTK is loaded (KCV {loaded_kcv}); a TTK ceremony replaces it only when asked to \
             (keymother ceremony --replace, \"replace\": true)"
        )
    );
    let row = last_row(&bench.appliance);
    assert_eq!(row.event, "ceremony-refused");
    assert_eq!(row.actor, "Ann Lee/Raj Patel");
    assert!(
        row.details
            .starts_with("secret=TTK; custodians=Ann Lee/Raj Patel; reason=a TTK is loaded"),
        "{}",
        row.details
    );
    assert!(
        bench
            .appliance
            .vault()
            .load_secret(keymother_vault::SecretName::Ttk)
            .unwrap()
            .kcv()
            == loaded_kcv
    );

    request["replace"] = json!(true);
    let answer = ok(bench.ask(&request));
    assert_eq!(answer["replaced"], json!(loaded_kcv.to_string()));
    assert_eq!(answer["custodians"], json!(["Ann Lee", "Raj Patel"]));
    let row = last_row(&bench.appliance);
    assert_eq!(
        (row.event.as_str(), row.actor.as_str()),
        ("ceremony", "Ann Lee/Raj Patel")
    );
    assert!(
        row.details.contains(&format!(
            "kcv={}; components=2; custodians=Ann Lee/Raj Patel; component_kcvs=",
            ttk.kcv()
        )) && row
            .details
            .contains(&format!("; replaced={loaded_kcv}; peer=")),
        "{}",
        row.details
    );
}

#[test]
fn every_refused_ceremony_is_audited_with_its_reason_and_custodians() {
    let bench = Bench::new();
    let kek = SecretKey::generate(KeyAlgorithm::Aes256).unwrap();
    let good = components(&kek, ["Ann Lee", "Raj Patel"]);
    let mut typo = good.clone();
    typo[1]["kcv"] = json!("0000000000");
    let mut twice = good.clone();
    twice[1]["custodian"] = json!("ann lee");
    let weak = SecretKey::from_hex(KeyAlgorithm::Tdes2Key, &"0123456789ABCDEF".repeat(2)).unwrap();
    let cases = [
        (
            json!({"command": "ceremony", "secret": "kek", "algorithm": "AES-256",
                   "components": good, "expect_kcv": "0000000000", "replace": true}),
            format!(
                "combined check value is {}, but 0000000000 was expected",
                kek.kcv()
            ),
        ),
        (
            json!({"command": "ceremony", "secret": "kek", "algorithm": "AES-256",
                   "components": typo, "replace": true}),
            "component 2's check value is ".to_owned(),
        ),
        (
            json!({"command": "ceremony", "secret": "kek", "algorithm": "AES-256",
                   "components": twice, "replace": true}),
            "custodian 2 has the name of custodian 1".to_owned(),
        ),
        (
            json!({"command": "ceremony", "secret": "kek", "algorithm": "TDES-2KEY",
                   "components": components(&weak, ["Ann Lee", "Raj Patel"]), "replace": true}),
            "the combined key is weak: the TDES-2KEY key's parts K1 and K2 are equal".to_owned(),
        ),
    ];
    for (request, words) in cases {
        let error = refused(bench.ask(&request));
        assert!(error.contains(&words), "{error}");
        let row = last_row(&bench.appliance);
        assert_eq!(row.event, "ceremony-refused", "{error}");
        assert!(
            row.details.starts_with("secret=KEK; custodians=Ann Lee/"),
            "{}",
            row.details
        );
        assert!(row.details.contains("; reason="), "{}", row.details);
        // Never a component's digits.
        for entry in request["components"].as_array().unwrap() {
            let digits = entry["component"].as_str().unwrap();
            assert!(!row.details.contains(&digits[..12]) && !error.contains(&digits[..12]));
        }
    }
    assert!(bench.appliance.vault().verify_audit().is_ok());
}

#[test]
fn a_bdk_ceremony_names_its_custodians_and_its_refusals_are_audited() {
    let bench = Bench::new();
    let bdk = SecretKey::generate(KeyAlgorithm::Aes128).unwrap();
    let request = json!({
        "command": "bdk-ceremony",
        "name": "PIN",
        "algorithm": "AES-128",
        "bdk_id": "12345678",
        "devices": "90123456-9012FFFF",
        "components": components(&bdk, ["Kim Ng", "Raj Patel"]),
        "expect_kcv": bdk.kcv().to_string(),
    });
    let answer = ok(bench.ask(&request));
    assert_eq!(answer["custodians"], json!(["Kim Ng", "Raj Patel"]));
    let row = last_row(&bench.appliance);
    assert_eq!(
        (row.event.as_str(), row.actor.as_str()),
        ("bdk-loaded", "Kim Ng/Raj Patel")
    );
    assert!(
        row.details
            .ends_with("replaced=no; custodians=Kim Ng/Raj Patel"),
        "{}",
        row.details
    );

    // The same name again without replace: refused and audited.
    let error = refused(bench.ask(&request));
    assert!(error.contains("PIN"), "{error}");
    let row = last_row(&bench.appliance);
    assert_eq!(row.event, "ceremony-refused");
    assert!(
        row.details
            .starts_with("secret=BDK PIN; custodians=Kim Ng/Raj Patel; reason="),
        "{}",
        row.details
    );
}
