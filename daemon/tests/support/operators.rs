//! Operator credentials for tests: the pki crate's openssl-made CAs and test-only keys, operator certificates issued from them at chosen dates, and the login client over the control socket.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use base64ct::{Base64, Encoding};
use keymother_pki::builder::{Issuance, leaf_certificate, name};
use keymother_pki::login::{LoginResponse, sign_login};
use keymother_pki::rsa::RsaPrivateKey;
use keymother_pki::rsa::pkcs8::DecodePrivateKey;
use keymother_pki::{PrivateKey, Role};
use serde_json::{Value, json};

/// A file of the pki crate's test fixtures (public test data).
pub fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../pki/tests/fixtures")
        .join(name)
}

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture_path(name)).unwrap()
}

/// The `[pki]` section with the fixture CAs, and `[operator]` requiring login plus `operator`
/// (more `[operator]` keys, e.g. `session_limit_seconds = 1\n`).
pub fn pki_sections(operator: &str) -> String {
    format!(
        "[pki]\ndevice_ca = {:?}\nkdh_ca = {:?}\noperator_ca = {:?}\n[operator]\nrequire = true\n{operator}",
        fixture_path("ca-device.pem"),
        fixture_path("ca-kdh.pem"),
        fixture_path("ca-operator.pem"),
    )
}

/// A CA's test-only private key.
pub fn ca_key(role: Role) -> RsaPrivateKey {
    let file = match role {
        Role::TerminalDevice => "test-only-ca-device.key",
        Role::KeyDistributionHost => "test-only-ca-kdh.key",
        Role::Operator => "test-only-ca-operator.key",
    };
    RsaPrivateKey::from_pkcs8_pem(std::str::from_utf8(&fixture(file)).unwrap()).unwrap()
}

/// The test-only operator key (the key of `operator.der`).
pub fn operator_key() -> PrivateKey {
    PrivateKey::from_pkcs8(&fixture("test-only-operator.key"), None).unwrap()
}

/// Whole seconds from now (X.509 times have no fractions).
pub fn seconds_from_now(seconds: i64) -> SystemTime {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    SystemTime::UNIX_EPOCH + Duration::from_secs((now + seconds) as u64)
}

/// An operator certificate for the test-only operator key, common name `common_name`,
/// valid from `not_before` to `not_after`, issued by the operator CA.
pub fn operator_certificate(
    common_name: &str,
    serial: u8,
    not_before: SystemTime,
    not_after: SystemTime,
) -> Vec<u8> {
    leaf_certificate(
        Role::Operator,
        &name(&format!("CN={common_name},O=keymother test")).unwrap(),
        &operator_key().public_key(),
        &fixture("ca-operator.pem"),
        &ca_key(Role::Operator),
        &Issuance {
            serial: vec![serial],
            not_before,
            not_after,
        },
    )
    .unwrap()
}

/// An operator certificate valid for a day either side of now.
pub fn good_certificate(common_name: &str, serial: u8) -> Vec<u8> {
    operator_certificate(
        common_name,
        serial,
        seconds_from_now(-86400),
        seconds_from_now(86400),
    )
}

/// One request over the control socket, its answer.
pub fn ask(socket: &Path, request: &Value) -> Value {
    let mut stream = UnixStream::connect(socket).unwrap();
    stream.write_all(format!("{request}\n").as_bytes()).unwrap();
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).unwrap();
    serde_json::from_str(&answer).unwrap()
}

/// A result, or the panic naming the error.
pub fn ok(answer: Value) -> Value {
    assert_eq!(answer["ok"], true, "{answer}");
    answer["result"].clone()
}

/// The error of a refused request.
pub fn refused(answer: Value) -> String {
    assert_eq!(answer["ok"], false, "accepted: {answer}");
    answer["error"].as_str().unwrap().to_owned()
}

/// A login challenge and the device id it is for.
pub fn challenge(socket: &Path) -> ([u8; 32], String) {
    let result = ok(ask(socket, &json!({"command": "login-challenge"})));
    let bytes: [u8; 32] = hex::decode(result["challenge"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    (bytes, result["device_id"].as_str().unwrap().to_owned())
}

/// The `login` request carrying `response`.
pub fn login_request(response: &LoginResponse) -> Value {
    json!({
        "command": "login",
        "certificate": Base64::encode_string(&response.certificate),
        "challenge": hex::encode(response.challenge),
        "signed_at": response.signed_at,
        "signature": Base64::encode_string(&response.signature),
    })
}

/// A signed answer to a fresh challenge, as `keymother operator login` makes it.
pub fn signed(socket: &Path, key: &PrivateKey, certificate: &[u8]) -> LoginResponse {
    let (bytes, device_id) = challenge(socket);
    sign_login(key, certificate, &device_id, &bytes, SystemTime::now()).unwrap()
}

/// Logs in with the test-only operator key and `certificate`; the answer.
pub fn login(socket: &Path, certificate: &[u8]) -> Value {
    ask(
        socket,
        &login_request(&signed(socket, &operator_key(), certificate)),
    )
}

/// The status's operator (null when none).
pub fn status_operator(socket: &Path) -> Value {
    ok(ask(socket, &json!({"command": "status"})))["operator"].clone()
}
