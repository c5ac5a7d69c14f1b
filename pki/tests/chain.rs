//! Certificate paths through intermediate CAs and EC operator keys, against a site PKI made by the `openssl` command at run time (chain_pki): root → intermediate → operator logs in; missing, expired and revoked intermediates, pathLenConstraint, name constraints and bundles with a bad block are refused, each naming which certificate or block.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod chain_pki;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chain_pki::{CA_EXT, Kind, OPERATOR_EXT, Pki, ROOT_EXT};
use keymother_pki::login::{
    CHALLENGE_LENGTH, Login, LoginError, LoginKey, LoginResponse, login_content, sign_login_with,
    verify_login_chain,
};
use keymother_pki::{Crl, PkiError, Role, TrustAnchors, pem_bundle};

const DEVICE_ID: &str = "KM-CHAIN-01";
const CHALLENGE: [u8; CHALLENGE_LENGTH] = [0x5A; CHALLENGE_LENGTH];

fn anchors(pki: &Pki) -> TrustAnchors {
    TrustAnchors::for_roles(None, None, Some(&pki.pem("root"))).unwrap()
}

fn login_key(pki: &Pki, name: &str) -> LoginKey {
    LoginKey::read(&pki.read(&format!("{name}.key")), None).unwrap()
}

/// Signs a login now with `name`'s key, presenting `certificate_file` (a PEM bundle).
fn signed(pki: &Pki, name: &str, certificate_file: &[u8], at: SystemTime) -> LoginResponse {
    sign_login_with(
        &login_key(pki, name),
        certificate_file,
        DEVICE_ID,
        &CHALLENGE,
        at,
    )
    .unwrap()
}

fn check(
    pki: &Pki,
    response: &LoginResponse,
    appliance_intermediates: &[Vec<u8>],
    crls: &[Crl],
    now: SystemTime,
) -> Result<String, LoginError> {
    let login = Login {
        device_id: DEVICE_ID,
        challenge: &CHALLENGE,
        now,
        window: Duration::from_secs(120),
    };
    verify_login_chain(
        &anchors(pki),
        crls,
        appliance_intermediates,
        &login,
        response,
    )
    .map(|operator| operator.name)
}

fn refusal(result: Result<String, LoginError>) -> PkiError {
    match result {
        Err(LoginError::Certificate(error)) => error,
        other => panic!("expected a certificate refusal, got {other:?}"),
    }
}

#[test]
fn an_rsa_operator_logs_in_through_the_intermediate_in_its_certificate_file() {
    let pki = Pki::three_levels(Kind::Rsa, Kind::Rsa);
    let now = Pki::now();
    let response = signed(&pki, "ann", &pki.bundle(&["ann", "ops-ca"]), now);
    assert_eq!(response.intermediates, [pki.der("ops-ca")]);
    assert_eq!(response.certificate, pki.der("ann"));
    assert_eq!(
        check(&pki, &response, &[], &[], now).unwrap(),
        "Ann Operator"
    );
}

#[test]
fn the_appliances_intermediates_serve_a_login_without_them() {
    let pki = Pki::three_levels(Kind::Rsa, Kind::Rsa);
    let now = Pki::now();
    let response = signed(&pki, "ann", &pki.pem("ann"), now);
    assert!(response.intermediates.is_empty());
    assert_eq!(
        check(&pki, &response, &[pki.der("ops-ca")], &[], now).unwrap(),
        "Ann Operator"
    );
    // Without any intermediate the certificate's issuer is named.
    let error = refusal(check(&pki, &response, &[], &[], now));
    assert!(error.to_string().contains("Ops Issuing CA"), "{error}");
}

#[test]
fn p256_and_p384_operators_log_in_and_p256_intermediates_sign() {
    // P-256 operator under a P-256 intermediate (ecdsa-with-SHA256 on the operator certificate).
    let pki = Pki::three_levels(Kind::P256, Kind::P256);
    let now = Pki::now();
    let key = login_key(&pki, "ann");
    assert_eq!(key.algorithm(), "ECDSA P-256");
    let response = signed(&pki, "ann", &pki.bundle(&["ann", "ops-ca"]), now);
    assert_eq!(
        check(&pki, &response, &[], &[], now).unwrap(),
        "Ann Operator"
    );

    // P-384 operator under a P-384 intermediate signing with SHA-384, under an EC root.
    let pki = Pki::new();
    pki.root("root", Kind::P384, "/O=Site/CN=EC Root CA");
    pki.issue(
        "ops-ca",
        Kind::P384,
        "root",
        "/O=Site/CN=EC Ops CA",
        CA_EXT,
        900,
        2,
        "sha384",
    );
    pki.issue(
        "bob",
        Kind::P384,
        "ops-ca",
        "/O=Site/CN=Bob Operator",
        OPERATOR_EXT,
        300,
        3,
        "sha384",
    );
    assert_eq!(login_key(&pki, "bob").algorithm(), "ECDSA P-384");
    let response = signed(&pki, "bob", &pki.bundle(&["bob", "ops-ca"]), now);
    assert_eq!(
        check(&pki, &response, &[], &[], now).unwrap(),
        "Bob Operator"
    );

    // A tampered EC signature is refused as a bad signature.
    let mut tampered = response.clone();
    let last = tampered.signature.len() - 3;
    tampered.signature[last] ^= 1;
    assert!(matches!(
        check(&pki, &tampered, &[], &[], now),
        Err(LoginError::BadSignature)
    ));
}

/// `openssl ecparam -genkey` writes an `EC PARAMETERS` block before the `EC PRIVATE KEY`:
/// the key is read (P-256 and P-384) and logs in.
#[test]
fn an_ecparam_genkey_key_with_its_ec_parameters_block_logs_in() {
    let pki = Pki::three_levels(Kind::Rsa, Kind::P256);
    let now = Pki::now();
    for (serial, curve) in (20u32..).zip(["prime256v1", "secp384r1"]) {
        let name = format!("bob-{curve}");
        let (key, csr, ext) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.ext"),
        );
        pki.openssl(&["ecparam", "-name", curve, "-genkey", "-out", &key]);
        let text = String::from_utf8(pki.read(&key)).unwrap();
        assert!(
            text.starts_with("-----BEGIN EC PARAMETERS-----")
                && text.contains("-----BEGIN EC PRIVATE KEY-----"),
            "{curve}"
        );
        std::fs::write(pki.path(&ext), OPERATOR_EXT).unwrap();
        pki.openssl(&[
            "req",
            "-new",
            "-key",
            &key,
            "-subj",
            "/O=Site/CN=Bob Operator",
            "-out",
            &csr,
        ]);
        pki.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ops-ca.pem",
            "-CAkey",
            "ops-ca.key",
            "-extfile",
            &ext,
            "-days",
            "300",
            "-set_serial",
            &serial.to_string(),
            "-sha256",
            "-out",
            &format!("{name}.pem"),
        ]);
        let key = LoginKey::read(text.as_bytes(), None).unwrap();
        let certificate = pki.bundle(&[&name, "ops-ca"]);
        let response = sign_login_with(&key, &certificate, DEVICE_ID, &CHALLENGE, now).unwrap();
        assert_eq!(
            check(&pki, &response, &[], &[], now).unwrap(),
            "Bob Operator",
            "{curve}"
        );
    }
}

#[test]
fn an_sec1_ec_private_key_and_an_openssl_signature_are_accepted() {
    let pki = Pki::three_levels(Kind::Rsa, Kind::P256);
    let now = Pki::now();
    // SEC1 "EC PRIVATE KEY", as openssl ec writes it.
    pki.openssl(&["ec", "-in", "ann.key", "-out", "ann.sec1.pem"]);
    let sec1 = pki.read("ann.sec1.pem");
    assert!(String::from_utf8_lossy(&sec1).contains("BEGIN EC PRIVATE KEY"));
    let key = LoginKey::read(&sec1, None).unwrap();
    let response = sign_login_with(
        &key,
        &pki.bundle(&["ann", "ops-ca"]),
        DEVICE_ID,
        &CHALLENGE,
        now,
    )
    .unwrap();
    assert_eq!(
        check(&pki, &response, &[], &[], now).unwrap(),
        "Ann Operator"
    );
    assert!(matches!(
        LoginKey::read(&sec1, Some(b"secret")),
        Err(PkiError::PassphraseNotNeeded)
    ));

    // A signature made by openssl dgst over the login content verifies.
    let signed_at = now.duration_since(UNIX_EPOCH).unwrap().as_secs();
    std::fs::write(
        pki.path("content.bin"),
        login_content(DEVICE_ID, &CHALLENGE, signed_at),
    )
    .unwrap();
    pki.openssl(&[
        "dgst",
        "-sha256",
        "-sign",
        "ann.key",
        "-out",
        "sig.bin",
        "content.bin",
    ]);
    let by_openssl = LoginResponse {
        signature: pki.read("sig.bin"),
        signed_at,
        ..response
    };
    assert_eq!(
        check(&pki, &by_openssl, &[], &[], now).unwrap(),
        "Ann Operator"
    );
}

#[test]
fn a_key_that_is_not_the_certificates_is_refused_before_signing() {
    let pki = Pki::three_levels(Kind::Rsa, Kind::P256);
    pki.key("other", Kind::P256);
    let error = sign_login_with(
        &login_key(&pki, "other"),
        &pki.pem("ann"),
        DEVICE_ID,
        &CHALLENGE,
        Pki::now(),
    )
    .err();
    assert!(
        matches!(error, Some(PkiError::KeyMismatch { .. })),
        "{error:?}"
    );
}

#[test]
fn a_missing_intermediate_is_named() {
    let pki = Pki::three_levels(Kind::Rsa, Kind::Rsa);
    // A second, unrelated intermediate is given; the operator's own is not.
    pki.issue(
        "other-ca",
        Kind::Rsa,
        "root",
        "/O=Site/CN=Other CA",
        CA_EXT,
        900,
        9,
        "sha256",
    );
    let now = Pki::now();
    let response = signed(&pki, "ann", &pki.pem("ann"), now);
    let error = refusal(check(&pki, &response, &[pki.der("other-ca")], &[], now));
    assert!(matches!(error, PkiError::IssuerMissing { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("CN=Ann Operator") && message.contains("CN=Ops Issuing CA"),
        "{message}"
    );
    // Word for word as docs/CONTROL.md gives it.
    assert!(
        message.ends_with(
            "CN=Ops Issuing CA,O=Site, which is neither the operator CA nor among the \
             intermediate CA certificates given"
        ),
        "{message}"
    );
}

#[test]
fn an_expired_intermediate_is_named() {
    let pki = Pki::new();
    pki.root("root", Kind::Rsa, "/O=Site/CN=Site Root CA");
    pki.issue(
        "ops-ca",
        Kind::Rsa,
        "root",
        "/O=Site/CN=Short CA",
        CA_EXT,
        30,
        2,
        "sha256",
    );
    pki.issue(
        "ann",
        Kind::Rsa,
        "ops-ca",
        "/O=Site/CN=Ann Operator",
        OPERATOR_EXT,
        365,
        3,
        "sha256",
    );
    let later = Pki::now() + Duration::from_secs(40 * 86_400);
    let response = signed(&pki, "ann", &pki.bundle(&["ann", "ops-ca"]), later);
    let error = refusal(check(&pki, &response, &[], &[], later));
    let message = error.to_string();
    assert!(
        matches!(&error, PkiError::ChainCertificate { subject, .. } if subject.contains("Short CA")),
        "{message}"
    );
    assert!(message.contains("has expired"), "{message}");
    // The same path is fine today.
    let now = Pki::now();
    let response = signed(&pki, "ann", &pki.bundle(&["ann", "ops-ca"]), now);
    assert!(check(&pki, &response, &[], &[], now).is_ok());
}

#[test]
fn a_revoked_intermediate_or_operator_is_named_by_the_crl_of_its_issuer() {
    let pki = Pki::three_levels(Kind::Rsa, Kind::Rsa);
    let now = Pki::now();
    let response = signed(&pki, "ann", &pki.bundle(&["ann", "ops-ca"]), now);
    // The root's CRL revokes the intermediate.
    let root_crl = Crl::parse(&pki.crl("root", &["ops-ca"])).unwrap();
    let error = refusal(check(&pki, &response, &[], &[root_crl], now));
    let message = error.to_string();
    assert!(
        message.contains("Ops Issuing CA") && message.contains("revoked"),
        "{message}"
    );
    // The intermediate's CRL revokes the operator; the root's lists nothing.
    let pki = Pki::three_levels(Kind::Rsa, Kind::Rsa);
    let clean_root = Crl::parse(&pki.crl("root", &[])).unwrap();
    let ops_crl = Crl::parse(&pki.crl("ops-ca", &["ann"])).unwrap();
    let response = signed(&pki, "ann", &pki.bundle(&["ann", "ops-ca"]), now);
    assert!(check(&pki, &response, &[], std::slice::from_ref(&clean_root), now).is_ok());
    let error = refusal(check(&pki, &response, &[], &[clean_root, ops_crl], now));
    assert!(
        matches!(
            error,
            PkiError::Revoked {
                role: Role::Operator,
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn a_version_1_crl_is_read_and_revokes_like_a_version_2_one() {
    // RFC 5280 5.1.2.1: a v1 CRL has no version field; `openssl ca -gencrl` without a CRL
    // number writes one.
    let pki = Pki::three_levels(Kind::Rsa, Kind::Rsa);
    let now = Pki::now();
    let v1 = Crl::parse(&pki.crl_of_version("ops-ca", &["ann"], 1)).unwrap();
    assert_eq!(v1.version(), 1);
    let clean_root = Crl::parse(&pki.crl_of_version("root", &[], 1)).unwrap();
    let response = signed(&pki, "ann", &pki.bundle(&["ann", "ops-ca"]), now);
    assert!(check(&pki, &response, &[], std::slice::from_ref(&clean_root), now).is_ok());
    let error = refusal(check(&pki, &response, &[], &[clean_root, v1], now));
    assert!(
        matches!(
            error,
            PkiError::Revoked {
                role: Role::Operator,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(Crl::parse(&pki.crl("ops-ca", &[])).unwrap().version(), 2);
}

#[test]
fn path_length_is_honoured() {
    let pki = Pki::new();
    pki.root("root", Kind::Rsa, "/O=Site/CN=Site Root CA");
    let pathlen0 = CA_EXT.replace("CA:true", "CA:true,pathlen:0");
    pki.issue(
        "policy-ca",
        Kind::Rsa,
        "root",
        "/O=Site/CN=Policy CA",
        &pathlen0,
        900,
        2,
        "sha256",
    );
    pki.issue(
        "ops-ca",
        Kind::P256,
        "policy-ca",
        "/O=Site/CN=Ops CA",
        CA_EXT,
        900,
        3,
        "sha256",
    );
    pki.issue(
        "ann",
        Kind::Rsa,
        "ops-ca",
        "/O=Site/CN=Ann Operator",
        OPERATOR_EXT,
        300,
        4,
        "sha256",
    );
    let now = Pki::now();
    let response = signed(
        &pki,
        "ann",
        &pki.bundle(&["ann", "ops-ca", "policy-ca"]),
        now,
    );
    let error = refusal(check(&pki, &response, &[], &[], now));
    let message = error.to_string();
    assert!(
        matches!(&error, PkiError::PathLength { ca, allowed: 0, below: 1 } if ca.contains("Policy CA")),
        "{message}"
    );
    assert!(
        message.contains("allows no intermediate CA certificate below it")
            && message.contains("the path has 1 intermediate CA certificate"),
        "{message}"
    );
    // The same chain with pathlen:1 passes.
    let pki2 = Pki::new();
    pki2.root("root", Kind::Rsa, "/O=Site/CN=Site Root CA");
    let pathlen1 = CA_EXT.replace("CA:true", "CA:true,pathlen:1");
    pki2.issue(
        "policy-ca",
        Kind::Rsa,
        "root",
        "/O=Site/CN=Policy CA",
        &pathlen1,
        900,
        2,
        "sha256",
    );
    pki2.issue(
        "ops-ca",
        Kind::P256,
        "policy-ca",
        "/O=Site/CN=Ops CA",
        CA_EXT,
        900,
        3,
        "sha256",
    );
    pki2.issue(
        "ann",
        Kind::Rsa,
        "ops-ca",
        "/O=Site/CN=Ann Operator",
        OPERATOR_EXT,
        300,
        4,
        "sha256",
    );
    let response = signed(
        &pki2,
        "ann",
        &pki2.bundle(&["ann", "ops-ca", "policy-ca"]),
        now,
    );
    assert_eq!(
        check(&pki2, &response, &[], &[], now).unwrap(),
        "Ann Operator"
    );
}

#[test]
fn name_constraints_are_honoured() {
    let pki = Pki::new();
    pki.root("root", Kind::Rsa, "/O=Site/CN=Site Root CA");
    let constrained = format!(
        "{CA_EXT}nameConstraints=critical,permitted;dirName:site_dn,permitted;email:.site.example,excluded;DNS:lab.site.example\n[site_dn]\nO=Site\n"
    );
    pki.issue(
        "ops-ca",
        Kind::Rsa,
        "root",
        "/O=Site/CN=Ops CA",
        &constrained,
        900,
        2,
        "sha256",
    );
    let now = Pki::now();
    let cases = [
        ("ann", "/O=Site/CN=Ann Operator", "", true),
        ("eve", "/O=Elsewhere/CN=Eve Operator", "", false),
        (
            "dan",
            "/O=Site/CN=Dan Operator",
            "subjectAltName=DNS:bench.lab.site.example\n",
            false,
        ),
        (
            "cat",
            "/O=Site/CN=Cat Operator",
            "subjectAltName=email:cat@ops.site.example\n",
            true,
        ),
        (
            "fay",
            "/O=Site/CN=Fay Operator",
            "subjectAltName=email:fay@mail.example\n",
            false,
        ),
    ];
    for (serial, (name, subject, san, allowed)) in (10u32..).zip(cases) {
        let ext = format!("{OPERATOR_EXT}{san}");
        pki.issue(
            name,
            Kind::Rsa,
            "ops-ca",
            subject,
            &ext,
            300,
            serial,
            "sha256",
        );
        let response = signed(&pki, name, &pki.bundle(&[name, "ops-ca"]), now);
        let result = check(&pki, &response, &[], &[], now);
        if allowed {
            assert!(result.is_ok(), "{name}: {result:?}");
        } else {
            let error = refusal(result);
            assert!(
                matches!(&error, PkiError::NameConstraint { ca, .. } if ca.contains("Ops CA")),
                "{name}: {error}"
            );
        }
    }
    // A critical constraint on IP addresses cannot be honoured: refused.
    let ip = format!("{CA_EXT}nameConstraints=critical,permitted;IP:10.0.0.0/255.0.0.0\n");
    pki.issue(
        "ip-ca",
        Kind::Rsa,
        "root",
        "/O=Site/CN=IP CA",
        &ip,
        900,
        30,
        "sha256",
    );
    pki.issue(
        "gus",
        Kind::Rsa,
        "ip-ca",
        "/O=Site/CN=Gus Operator",
        OPERATOR_EXT,
        300,
        31,
        "sha256",
    );
    let response = signed(&pki, "gus", &pki.bundle(&["gus", "ip-ca"]), now);
    let error = refusal(check(&pki, &response, &[], &[], now));
    assert!(
        matches!(
            &error,
            PkiError::UnsupportedNameConstraint {
                kind: "IP address",
                ..
            }
        ),
        "{error}"
    );
}

/// The nameConstraints of a role's own CA hold for a certificate it issued directly, as they
/// do for a path: an operator logging in, and a device certificate through
/// `TrustAnchors::verify`.
#[test]
fn name_constraints_of_a_role_ca_hold_for_the_certificates_it_issued_directly() {
    let pki = Pki::new();
    let site_only = format!(
        "{ROOT_EXT}nameConstraints=critical,permitted;dirName:site_dn\n[site_dn]\nO=Site\n"
    );
    pki.root_with("root", Kind::Rsa, "/O=Site/CN=Site Root CA", &site_only);
    pki.root_with("dev-root", Kind::Rsa, "/O=Site/CN=Device CA", &site_only);
    let device_ext = "basicConstraints=critical,CA:false\n\
         keyUsage=critical,keyEncipherment\nauthorityKeyIdentifier=keyid\n";
    let leaves = [
        ("ann", "root", "/O=Site/CN=Ann Operator", OPERATOR_EXT),
        ("eve", "root", "/O=Other/CN=Eve Operator", OPERATOR_EXT),
        ("pos-1", "dev-root", "/O=Site/CN=POS 1", device_ext),
        ("pos-2", "dev-root", "/O=Other/CN=POS 2", device_ext),
    ];
    for (serial, (name, issuer, subject, ext)) in (10u32..).zip(leaves) {
        pki.issue(name, Kind::Rsa, issuer, subject, ext, 300, serial, "sha256");
    }
    let now = Pki::now();
    let is_refused_by = |error: &PkiError, ca: &str| {
        matches!(error, PkiError::NameConstraint { ca: named, name, .. }
            if named.contains(ca) && name.contains("O=Other"))
    };
    let ann = signed(&pki, "ann", &pki.pem("ann"), now);
    assert_eq!(check(&pki, &ann, &[], &[], now).unwrap(), "Ann Operator");
    let eve = signed(&pki, "eve", &pki.pem("eve"), now);
    let error = refusal(check(&pki, &eve, &[], &[], now));
    assert!(is_refused_by(&error, "Site Root CA"), "{error}");
    let devices = TrustAnchors::for_roles(Some(&pki.pem("dev-root")), None, None).unwrap();
    devices
        .verify(Role::TerminalDevice, &pki.der("pos-1"), now, None)
        .unwrap();
    let error = devices
        .verify(Role::TerminalDevice, &pki.der("pos-2"), now, None)
        .unwrap_err();
    assert!(is_refused_by(&error, "Device CA"), "{error}");
    let error = devices
        .verify_chain(Role::TerminalDevice, &pki.der("pos-2"), &[], now, &[])
        .unwrap_err();
    assert!(is_refused_by(&error, "Device CA"), "{error}");
}

#[test]
fn an_intermediate_that_is_not_a_ca_or_signed_by_another_key_is_refused() {
    let pki = Pki::new();
    pki.root("root", Kind::Rsa, "/O=Site/CN=Site Root CA");
    let not_ca = "basicConstraints=critical,CA:false\nkeyUsage=critical,keyCertSign\n";
    pki.issue(
        "ops-ca",
        Kind::Rsa,
        "root",
        "/O=Site/CN=Ops CA",
        not_ca,
        900,
        2,
        "sha256",
    );
    pki.issue(
        "ann",
        Kind::Rsa,
        "ops-ca",
        "/O=Site/CN=Ann Operator",
        OPERATOR_EXT,
        300,
        3,
        "sha256",
    );
    let now = Pki::now();
    let response = signed(&pki, "ann", &pki.bundle(&["ann", "ops-ca"]), now);
    let error = refusal(check(&pki, &response, &[], &[], now));
    assert!(
        error.to_string().contains("Ops CA") && error.to_string().contains("not a CA"),
        "{error}"
    );

    // An intermediate of the same name but another key: the operator's signature fails.
    let pki = Pki::three_levels(Kind::Rsa, Kind::Rsa);
    let real = pki.bundle(&["ann"]);
    pki.issue(
        "ops-ca",
        Kind::Rsa,
        "root",
        "/O=Site/CN=Ops Issuing CA",
        CA_EXT,
        900,
        7,
        "sha256",
    );
    let response = signed(&pki, "ann", &real, now);
    let error = refusal(check(&pki, &response, &[pki.der("ops-ca")], &[], now));
    assert!(matches!(error, PkiError::ChainSignature { .. }), "{error}");
}

#[test]
fn a_path_longer_than_the_limit_is_refused() {
    let pki = Pki::new();
    pki.root("ca0", Kind::Rsa, "/O=Site/CN=CA 0");
    for level in 1..=5u32 {
        pki.issue(
            &format!("ca{level}"),
            Kind::P256,
            &format!("ca{}", level - 1),
            &format!("/O=Site/CN=CA {level}"),
            CA_EXT,
            900,
            level + 1,
            "sha256",
        );
    }
    pki.issue(
        "ann",
        Kind::P256,
        "ca5",
        "/O=Site/CN=Ann Operator",
        OPERATOR_EXT,
        300,
        20,
        "sha256",
    );
    let now = Pki::now();
    let names = ["ann", "ca5", "ca4", "ca3", "ca2", "ca1"];
    let response = signed(&pki, "ann", &pki.bundle(&names), now);
    let anchors = TrustAnchors::for_roles(None, None, Some(&pki.pem("ca0"))).unwrap();
    let login = Login {
        device_id: DEVICE_ID,
        challenge: &CHALLENGE,
        now,
        window: Duration::from_secs(120),
    };
    let error = verify_login_chain(&anchors, &[], &[], &login, &response).unwrap_err();
    assert!(
        matches!(
            error,
            LoginError::Certificate(PkiError::ChainTooLong { max: 4, .. })
        ),
        "{error}"
    );
    // Four intermediates are within the limit.
    pki.issue(
        "bob",
        Kind::P256,
        "ca4",
        "/O=Site/CN=Bob Operator",
        OPERATOR_EXT,
        300,
        21,
        "sha256",
    );
    let response = signed(
        &pki,
        "bob",
        &pki.bundle(&["bob", "ca4", "ca3", "ca2", "ca1"]),
        now,
    );
    assert!(verify_login_chain(&anchors, &[], &[], &login, &response).is_ok());
}

#[test]
fn a_bundle_with_a_corrupt_second_block_names_the_block_and_quotes_nothing() {
    let pki = Pki::three_levels(Kind::Rsa, Kind::Rsa);
    let good = pki.bundle(&["ann", "ops-ca"]);
    assert_eq!(pem_bundle(&good, "CERTIFICATE", "bundle").unwrap().len(), 2);
    let text = String::from_utf8(good).unwrap();
    let second = text.rfind("-----BEGIN CERTIFICATE-----").unwrap();
    let line = second + "-----BEGIN CERTIFICATE-----\n".len() + 10;
    let mut corrupt = text.into_bytes();
    corrupt[line] = b'*';
    let error = pem_bundle(&corrupt, "CERTIFICATE", "operator certificate file").unwrap_err();
    assert!(
        matches!(error, PkiError::BadBundleBlock { block: 2, .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.starts_with("block 2 of the operator certificate file"),
        "{message}"
    );
    let base64_line = String::from_utf8_lossy(&corrupt[line - 10..line + 20]).into_owned();
    assert!(!message.contains(&base64_line[..16]), "{message}");
    // The login's certificate file is read the same way.
    let error = sign_login_with(
        &login_key(&pki, "ann"),
        &corrupt,
        DEVICE_ID,
        &CHALLENGE,
        Pki::now(),
    )
    .err();
    assert!(
        matches!(error, Some(PkiError::BadBundleBlock { block: 2, .. })),
        "{error:?}"
    );
    // A truncated DER inside valid armour is named as well; so is a key block in a
    // certificate bundle.
    let key_block = [pki.pem("ann"), pki.read("ann.key")].concat();
    let error = pem_bundle(&key_block, "CERTIFICATE", "bundle").unwrap_err();
    assert!(
        matches!(&error, PkiError::BadBundleBlock { block: 2, detail, .. }
            if detail.contains("not labelled CERTIFICATE") && !detail.contains("PRIVATE KEY")),
        "{error}"
    );
}

#[test]
fn verify_chain_serves_rsa_leaves_of_any_role() {
    let pki = Pki::three_levels(Kind::Rsa, Kind::Rsa);
    let anchors = anchors(&pki);
    let verified = anchors
        .verify_chain(
            Role::Operator,
            &pki.pem("ann"),
            &[pki.der("ops-ca")],
            Pki::now(),
            &[],
        )
        .unwrap();
    assert!(verified.subject_names("Ann Operator"));
    // An EC leaf is refused where an RSA key is needed.
    let pki = Pki::three_levels(Kind::Rsa, Kind::P256);
    let error = anchors_of(&pki)
        .verify_chain(
            Role::Operator,
            &pki.pem("ann"),
            &[pki.der("ops-ca")],
            Pki::now(),
            &[],
        )
        .unwrap_err();
    assert!(matches!(error, PkiError::NotRsa { .. }), "{error}");
}

fn anchors_of(pki: &Pki) -> TrustAnchors {
    anchors(pki)
}

/// Any byte of the second block's Base64 replaced by a character outside Base64: the bundle is
/// refused naming block 2, never block 1, and the message quotes none of the file.
#[test]
fn any_corruption_of_the_second_block_names_block_2() {
    use proptest::prelude::*;
    let pki = Pki::three_levels(Kind::Rsa, Kind::Rsa);
    let text = String::from_utf8(pki.bundle(&["ann", "ops-ca"])).unwrap();
    let body_start = text.rfind("-----BEGIN CERTIFICATE-----").unwrap() + 28;
    let body_end = text.rfind("-----END CERTIFICATE-----").unwrap();
    let positions: Vec<usize> = (body_start..body_end)
        .filter(|&i| text.as_bytes()[i] != b'\n')
        .collect();
    let mut runner = proptest::test_runner::TestRunner::default();
    runner
        .run(
            &(
                0..positions.len(),
                prop::sample::select(vec![b'*', b'!', b'%', b'~']),
            ),
            |(index, byte)| {
                let mut corrupt = text.clone().into_bytes();
                corrupt[positions[index]] = byte;
                let error = pem_bundle(&corrupt, "CERTIFICATE", "bundle").unwrap_err();
                prop_assert!(
                    matches!(error, PkiError::BadBundleBlock { block: 2, .. }),
                    "{error:?}"
                );
                let message = error.to_string();
                let line_start = text[..positions[index]].rfind('\n').unwrap() + 1;
                prop_assert!(!message.contains(&text[line_start..line_start + 12]));
                Ok(())
            },
        )
        .unwrap();
}
