//! Operator login through a site's PKI against the real daemon: an openssl-made root → intermediate → operator chain logs in over the control socket (intermediates sent with the login or set in `[pki] operator_intermediates`), RSA, P-256 and P-384 operators; a missing or revoked intermediate is refused naming it; a bad block in the settings' bundle is named; version 1 CRLs in `[pki] operator_crl` are read and revoke; a CA file of another PEM label is named by the label expected.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../pki/tests/chain_pki/mod.rs"]
mod chain_pki;
mod support;

use std::path::PathBuf;
use std::time::SystemTime;

use base64ct::{Base64, Encoding};
use chain_pki::{Kind, Pki};
use keymother_daemon::Settings;
use keymother_daemon::trust::Trust;
use keymother_pki::login::{LoginKey, LoginResponse, sign_login_with};
use serde_json::{Value, json};
use support::operators::{ask, challenge, fixture_path, ok, refused, status_operator};
use support::{Appliance, InProcessDaemon};

/// The `[pki]` section: the fixture device and KDH CAs, the openssl PKI's root as the
/// operator CA, and `more` (`operator_intermediates = ...`, `operator_crl = ...`).
fn sections(pki: &Pki, more: &str) -> String {
    format!(
        "[pki]\ndevice_ca = {:?}\nkdh_ca = {:?}\noperator_ca = {:?}\n{more}[operator]\nrequire = true\n",
        fixture_path("ca-device.pem"),
        fixture_path("ca-kdh.pem"),
        pki.path("root.pem"),
    )
}

/// A path setting line.
fn setting(key: &str, path: PathBuf) -> String {
    format!("{key} = {path:?}\n")
}

struct Bench {
    _appliance: Appliance,
    _daemon: InProcessDaemon,
    socket: PathBuf,
}

impl Bench {
    fn start(sections: &str) -> Bench {
        let appliance = Appliance::provisioned(2);
        let (_lines, settings) = appliance.ports_with(1, sections);
        let daemon = InProcessDaemon::start(settings);
        let socket = appliance.directory.path().join("control.sock");
        Bench {
            _appliance: appliance,
            _daemon: daemon,
            socket,
        }
    }

    /// Logs in with `name`'s key presenting `certificate_file`, as `keymother operator login`
    /// does: the intermediates of a bundle travel in the request's `intermediates`.
    fn login(&self, pki: &Pki, name: &str, certificate_file: &[u8]) -> Value {
        let key = LoginKey::read(&pki.read(&format!("{name}.key")), None).unwrap();
        let (bytes, device_id) = challenge(&self.socket);
        let response = sign_login_with(
            &key,
            certificate_file,
            &device_id,
            &bytes,
            SystemTime::now(),
        )
        .unwrap();
        ask(&self.socket, &request(&response))
    }
}

fn request(response: &LoginResponse) -> Value {
    let mut request = json!({
        "command": "login",
        "certificate": Base64::encode_string(&response.certificate),
        "challenge": hex::encode(response.challenge),
        "signed_at": response.signed_at,
        "signature": Base64::encode_string(&response.signature),
    });
    if !response.intermediates.is_empty() {
        request["intermediates"] = response
            .intermediates
            .iter()
            .map(|der| Value::from(Base64::encode_string(der)))
            .collect();
    }
    request
}

#[test]
fn an_openssl_three_level_pki_logs_in_with_the_intermediate_sent_along() {
    let pki = Pki::three_levels(Kind::Rsa, Kind::Rsa);
    let bench = Bench::start(&sections(&pki, ""));
    let session = ok(bench.login(&pki, "ann", &pki.bundle(&["ann", "ops-ca"])));
    assert_eq!(session["name"], "Ann Operator", "{session}");
    assert_eq!(status_operator(&bench.socket)["name"], "Ann Operator");

    // Without the intermediate the daemon does not know the operator's issuer, and says which.
    let error = refused(bench.login(&pki, "ann", &pki.pem("ann")));
    assert!(
        error.contains("login refused") && error.contains("CN=Ops Issuing CA"),
        "{error}"
    );
}

#[test]
fn ec_operators_log_in_through_the_intermediates_in_the_settings() {
    for (kind, name) in [(Kind::P256, "P-256"), (Kind::P384, "P-384")] {
        let pki = Pki::three_levels(Kind::P256, kind);
        pki.issue(
            "other-ca",
            Kind::Rsa,
            "root",
            "/O=Site/CN=Other CA",
            chain_pki::CA_EXT,
            900,
            8,
            "sha256",
        );
        std::fs::write(
            pki.path("intermediates.pem"),
            pki.bundle(&["other-ca", "ops-ca"]),
        )
        .unwrap();
        let bench = Bench::start(&sections(
            &pki,
            &setting("operator_intermediates", pki.path("intermediates.pem")),
        ));
        let session = ok(bench.login(&pki, "ann", &pki.pem("ann")));
        assert_eq!(session["name"], "Ann Operator", "{name}: {session}");
    }
}

#[test]
fn a_revoked_intermediate_is_refused_naming_it() {
    let pki = Pki::three_levels(Kind::Rsa, Kind::P256);
    // The CRL file holds the root's CRL (revoking the intermediate) and the intermediate's.
    let root_crl = pki.crl("root", &["ops-ca"]);
    let ops_crl = pki.crl("ops-ca", &[]);
    let pem = |der: &[u8]| {
        keymother_pki::der::pem::encode_string(
            "X509 CRL",
            keymother_pki::der::pem::LineEnding::LF,
            der,
        )
        .unwrap()
    };
    std::fs::write(
        pki.path("operator-crls.pem"),
        pem(&root_crl) + &pem(&ops_crl),
    )
    .unwrap();
    std::fs::write(pki.path("intermediates.pem"), pki.pem("ops-ca")).unwrap();
    let more = setting("operator_intermediates", pki.path("intermediates.pem"))
        + &setting("operator_crl", pki.path("operator-crls.pem"));
    let bench = Bench::start(&sections(&pki, &more));
    let error = refused(bench.login(&pki, "ann", &pki.pem("ann")));
    assert!(
        error.contains("intermediate CA certificate CN=Ops Issuing CA,O=Site is refused")
            && error.contains("revoked"),
        "{error}"
    );
    assert_eq!(status_operator(&bench.socket), Value::Null);
}

#[test]
fn the_settings_bundles_are_checked_at_start_naming_the_bad_block() {
    let pki = Pki::three_levels(Kind::Rsa, Kind::Rsa);
    let good = String::from_utf8(pki.bundle(&["ops-ca", "root"])).unwrap();
    let second = good.rfind("-----BEGIN CERTIFICATE-----").unwrap() + 40;
    let mut corrupt = good.clone().into_bytes();
    corrupt[second] = b'!';
    std::fs::write(pki.path("corrupt.pem"), &corrupt).unwrap();
    std::fs::write(pki.path("leaf.pem"), pki.bundle(&["ops-ca", "ann"])).unwrap();
    let now = SystemTime::now();
    let load = |file: &str| {
        let text = format!(
            "data_dir = {:?}\n{}[[port]]\nname = \"bench-0\"\npath = \"/dev/ttyUSB0\"\n",
            pki.path("data"),
            sections(&pki, &setting("operator_intermediates", pki.path(file)))
        );
        let settings = Settings::from_toml(&text, "keymotherd.toml").unwrap();
        Trust::load(settings.pki.as_ref().unwrap(), now)
            .map(|trust| trust.operator_intermediates.len())
    };
    let error = load("corrupt.pem").unwrap_err().to_string();
    assert!(
        error.contains("pki.operator_intermediates")
            && error.contains("block 2 of the certificate file"),
        "{error}"
    );
    let error = load("leaf.pem").unwrap_err().to_string();
    assert!(
        error.contains("block 2")
            && error.contains("CN=Ann Operator")
            && error.contains("not a CA"),
        "{error}"
    );
    std::fs::write(pki.path("good.pem"), good).unwrap();
    assert_eq!(load("good.pem").unwrap(), 2);
}

/// A version 1 CRL (no version field, as `openssl ca -gencrl` writes without a CRL number) in
/// `[pki] operator_crl` is read at start, in a PEM bundle and alone in DER, and revokes.
#[test]
fn version_1_crls_in_the_settings_are_read_and_revoke() {
    let pki = Pki::three_levels(Kind::Rsa, Kind::Rsa);
    let root_crl = pki.crl_of_version("root", &[], 1);
    let ops_crl = pki.crl_of_version("ops-ca", &["ann"], 1);
    assert_eq!(keymother_pki::Crl::parse(&ops_crl).unwrap().version(), 1);
    let pem = |der: &[u8]| {
        keymother_pki::der::pem::encode_string(
            "X509 CRL",
            keymother_pki::der::pem::LineEnding::LF,
            der,
        )
        .unwrap()
    };
    std::fs::write(
        pki.path("operator-crls.pem"),
        pem(&root_crl) + &pem(&ops_crl),
    )
    .unwrap();
    std::fs::write(pki.path("root-crl.der"), &root_crl).unwrap();
    std::fs::write(pki.path("intermediates.pem"), pki.pem("ops-ca")).unwrap();
    let intermediates = setting("operator_intermediates", pki.path("intermediates.pem"));
    let more = intermediates.clone() + &setting("operator_crl", pki.path("operator-crls.pem"));
    let bench = Bench::start(&sections(&pki, &more));
    let error = refused(bench.login(&pki, "ann", &pki.pem("ann")));
    assert!(
        error.contains("operator certificate with serial") && error.contains("revoked"),
        "{error}"
    );
    assert_eq!(status_operator(&bench.socket), Value::Null);
    drop(bench);

    let more = intermediates + &setting("operator_crl", pki.path("root-crl.der"));
    let bench = Bench::start(&sections(&pki, &more));
    let session = ok(bench.login(&pki, "ann", &pki.pem("ann")));
    assert_eq!(session["name"], "Ann Operator", "{session}");
}

/// A CA file holding a PEM block of another label is refused naming the setting and the label
/// expected, never quoting the label found (the file's text).
#[test]
fn a_ca_file_of_another_pem_label_names_the_label_expected() {
    let pki = Pki::three_levels(Kind::Rsa, Kind::Rsa);
    let crl = keymother_pki::der::pem::encode_string(
        "X509 CRL",
        keymother_pki::der::pem::LineEnding::LF,
        &pki.crl("root", &[]),
    )
    .unwrap();
    std::fs::write(pki.path("root.pem"), crl).unwrap();
    let text = format!(
        "data_dir = {:?}\n{}[[port]]\nname = \"bench-0\"\npath = \"/dev/ttyUSB0\"\n",
        pki.path("data"),
        sections(&pki, "")
    );
    let settings = Settings::from_toml(&text, "keymotherd.toml").unwrap();
    let error = Trust::load(settings.pki.as_ref().unwrap(), SystemTime::now())
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("pki.operator_ca")
            && error.contains(
                "its PEM block is not labelled CERTIFICATE (-----BEGIN CERTIFICATE-----)"
            )
            && !error.contains("X509 CRL"),
        "{error}"
    );
}
