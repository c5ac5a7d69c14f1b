//! End-to-end tests of `keymother tr34 inspect` and `keymother tr34 build`: the TR-34-2019 Annex B samples, a round trip on a PKI made here, the refusals, and openssl's view of a token we built.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cli_common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use keymother_crypto::{KeyFamily, SecretKey};
use keymother_domain::KeyIndex;
use keymother_pki::der::Decode;
use keymother_pki::testing::{TestPki, pem};
use keymother_pki::tr34::{
    ExpectedFreshness, key_block_header, open_key_token, parse_credential_token,
    random_number_token,
};
use keymother_pki::x509_cert::Certificate;
use keymother_pki::{PrivateKey, Role, TrustAnchors};

use cli_common::{keymother, stderr, stdout};

const DAY: Duration = Duration::from_secs(86_400);

/// The test key the built tokens deliver (a TDES-2KEY test key, never a production one).
const TEST_KEY: &str = "0123456789ABCDEFFEDCBA9876543210";

/// Runs keymother, expecting `code`; returns standard output.
fn expect(arguments: &[&str], stdin: &str, code: i32) -> Output {
    let output = keymother(arguments, stdin);
    assert_eq!(
        output.status.code(),
        Some(code),
        "keymother {arguments:?}\nstdout: {}\nstderr: {}",
        stdout(&output),
        stderr(&output)
    );
    output
}

/// The value of the line "label: value" (the first one).
fn field<'a>(text: &'a str, label: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|line| line.strip_prefix(label)?.strip_prefix(": "))
}

fn path_text(path: &Path) -> &str {
    path.to_str().unwrap()
}

// ---------------------------------------------------------------------------------------------
// The Annex B samples, from the TR-34 library's vector files (their sources are named there).

fn vector_path(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../pki/tests/vectors/tr34/{file}"))
}

/// A `.hex` vector file's bytes (lines starting with '#' are comments).
fn hex_vector(name: &str) -> Vec<u8> {
    let path = vector_path(&format!("{name}.hex"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let hex: String = text.lines().filter(|line| !line.starts_with('#')).collect();
    hex::decode(hex.trim()).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

/// A value of annex_b_values.txt ("name = value" lines).
fn annex_b(name: &str) -> String {
    let path = vector_path("annex_b_values.txt");
    let text = std::fs::read_to_string(&path).unwrap();
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once(" = "))
        .find(|(key, _)| key.trim() == name)
        .map(|(_, value)| value.trim().to_owned())
        .unwrap_or_else(|| panic!("{path:?}: no value {name}"))
}

/// The sample, written as DER into `directory`.
fn sample_file(directory: &Path, name: &str) -> PathBuf {
    let path = directory.join(format!("{name}.der"));
    std::fs::write(&path, hex_vector(name)).unwrap();
    path
}

/// The sample KDH 1 certificate (PEM), taken from the B.6 KDH credential token.
fn kdh_1_certificate(directory: &Path) -> PathBuf {
    let credential = parse_credential_token(&hex_vector("b_6_kdh_1_w_crl_pem")).unwrap();
    let path = directory.join("kdh-1.pem");
    std::fs::write(&path, pem("CERTIFICATE", &credential.certificates[0])).unwrap();
    path
}

fn subject_of(certificate_pem: &Path) -> String {
    let der = keymother_pki::certificate_der(&std::fs::read(certificate_pem).unwrap()).unwrap();
    let certificate = Certificate::from_der(&der).unwrap();
    certificate.tbs_certificate().subject().to_string()
}

/// PEM text with `label`, in lines of `width` Base64 characters ending in `end`.
fn pem_text(label: &str, der: &[u8], width: usize, end: &str) -> String {
    use base64ct::{Base64, Encoding};
    let body = Base64::encode_string(der);
    let mut text = format!("-----BEGIN {label}-----{end}");
    for line in body.as_bytes().chunks(width) {
        text.push_str(std::str::from_utf8(line).unwrap());
        text.push_str(end);
    }
    text.push_str(&format!("-----END {label}-----{end}"));
    text
}

fn rfc3339(time: SystemTime) -> String {
    time::OffsetDateTime::from(time)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// 2019-06-01T00:00:00Z: inside the sample certificates' validity (they expired in 2020).
const SAMPLE_TIME: &str = "2019-06-01T00:00:00Z";

const TWO_PASS_2019: (&str, &str, &str) = (
    "b_9_two_pass_token",
    "two-pass key token",
    "TR-34-2019 (inner structures with their SEQUENCE)",
);

#[test]
fn inspect_identifies_every_annex_b_token_and_its_wire_form() {
    let form_2019 = TWO_PASS_2019.2;
    let form_2012 = "X9_TR34_2012 (inner structures without their SEQUENCE)";
    let samples = [
        ("b_6_kdh_1_w_crl_pem", "KDH credential token", form_2019),
        (
            "b_7_krd_credential_token_1_p7b",
            "KRD credential token",
            form_2019,
        ),
        ("b_8_one_pass_key_token", "one-pass key token", form_2019),
        TWO_PASS_2019,
        (
            "b_10_tr34_sample_rbt_ca_unbind_pem",
            "rebind token",
            form_2012,
        ),
        ("b_11_sample_rbt_kdh_pem", "rebind token", form_2012),
        (
            "b_12_krd_random_number_token",
            "KRD random number token",
            form_2019,
        ),
        ("b_13_ubt_ca_unbind", "unbind token", form_2012),
        ("b_14_ubt_kdh_unbind", "unbind token", form_2019),
    ];
    let directory = tempfile::tempdir().unwrap();
    for (name, kind, form) in samples {
        let file = sample_file(directory.path(), name);
        let text = stdout(&expect(&["tr34", "inspect", path_text(&file)], "", 0));
        assert_eq!(field(&text, "token"), Some(kind), "{name}:\n{text}");
        assert_eq!(field(&text, "wire form"), Some(form), "{name}:\n{text}");
        // One "label: value" a line, sections separated by one blank line.
        for line in text.lines() {
            assert!(line.is_empty() || line.contains(": "), "{name}: {line:?}");
        }
        assert!(
            !text.contains("\n\n\n") && !text.starts_with('\n'),
            "{text}"
        );
    }
}

#[test]
fn inspect_shows_the_nonce_header_and_signing_time_and_reads_pem_with_any_label() {
    let directory = tempfile::tempdir().unwrap();
    let der = hex_vector("b_9_two_pass_token");
    let file = directory.path().join("b9.pem");
    let forms = [
        ("PKCS7", 64, "\n"),
        ("CMS", 76, "\r\n"),
        ("TR-34 TWO PASS TOKEN", 64, "\n"),
    ];
    for (label, width, end) in forms {
        std::fs::write(&file, pem_text(label, &der, width, end)).unwrap();
        expect(&["tr34", "inspect", path_text(&file)], "", 0);
    }
    let text = stdout(&expect(&["tr34", "inspect", path_text(&file)], "", 0));
    assert_eq!(field(&text, "token"), Some(TWO_PASS_2019.1), "{text}");
    assert_eq!(
        field(&text, "random number"),
        Some(annex_b("nonce").as_str())
    );
    assert_eq!(
        field(&text, "key block header"),
        Some(annex_b("header").as_str())
    );
    let krd = format!(
        "issuer {}, serial {}",
        annex_b("krd_issuer"),
        annex_b("krd_serial")
    );
    assert_eq!(field(&text, "recipient"), Some(krd.as_str()), "{text}");
    let kdh = format!(
        "issuer {}, serial {}",
        annex_b("kdh_issuer"),
        annex_b("kdh_serial")
    );
    assert_eq!(field(&text, "signer"), Some(kdh.as_str()), "{text}");
    let same_as_der = {
        let der_file = sample_file(directory.path(), "b_9_two_pass_token");
        stdout(&expect(&["tr34", "inspect", path_text(&der_file)], "", 0))
    };
    assert_eq!(text, same_as_der);

    let file = sample_file(directory.path(), "b_8_one_pass_key_token");
    let text = stdout(&expect(&["tr34", "inspect", path_text(&file)], "", 0));
    let signing_time = UNIX_EPOCH + Duration::from_secs(annex_b("signing_time").parse().unwrap());
    assert_eq!(
        field(&text, "signing time"),
        Some(rfc3339(signing_time).as_str())
    );
    assert_eq!(field(&text, "random number"), None, "{text}");
}

#[test]
fn inspect_verifies_the_sample_signatures_with_kdh_1_at_a_pinned_time() {
    let directory = tempfile::tempdir().unwrap();
    let kdh_1 = kdh_1_certificate(directory.path());
    let verified = format!("verified with {}", subject_of(&kdh_1));
    for name in ["b_8_one_pass_key_token", "b_9_two_pass_token"] {
        let file = sample_file(directory.path(), name);
        let arguments = [
            "tr34",
            "inspect",
            path_text(&file),
            "--signer-certificate",
            path_text(&kdh_1),
            "--at",
            SAMPLE_TIME,
        ];
        let text = stdout(&expect(&arguments, "", 0));
        assert_eq!(
            field(&text, "signature"),
            Some(verified.as_str()),
            "{name}:\n{text}"
        );
        assert_eq!(field(&text, "checked at"), Some(SAMPLE_TIME));
        // Now the certificate has expired: refused, exit status 1.
        let output = expect(&arguments[..5], "", 1);
        assert!(
            field(&stdout(&output), "signature")
                .is_some_and(|s| s.starts_with("not verified") && s.contains("not valid at")),
            "{}",
            stdout(&output)
        );
    }
}

#[test]
fn inspect_refuses_a_sample_with_one_flipped_byte_or_another_signer() {
    let directory = tempfile::tempdir().unwrap();
    let kdh_1 = kdh_1_certificate(directory.path());
    let der = hex_vector("b_9_two_pass_token");
    let iv = hex::decode("0123456789ABCDEF").unwrap();
    let iv_at = der.windows(8).position(|w| w == iv.as_slice()).unwrap();
    // The last byte is the signature's; 20 bytes after the IV lie in the encrypted content.
    let cases = [
        (der.len() - 1, "does not verify"),
        (iv_at + 20, "messageDigest"),
    ];
    for (offset, why) in cases {
        let mut flipped = der.clone();
        flipped[offset] ^= 0x01;
        let file = directory.path().join(format!("flipped-{offset}.der"));
        std::fs::write(&file, &flipped).unwrap();
        let arguments = [
            "tr34",
            "inspect",
            path_text(&file),
            "--signer-certificate",
            path_text(&kdh_1),
            "--at",
            SAMPLE_TIME,
        ];
        let output = expect(&arguments, "", 1);
        let signature = field(&stdout(&output), "signature").unwrap().to_owned();
        assert!(
            signature.starts_with("not verified") && signature.contains(why),
            "byte {offset}: {signature}"
        );
        assert!(
            stderr(&output).contains(path_text(&file)),
            "{}",
            stderr(&output)
        );
    }
    // The KRD 1 certificate is not the signer.
    let credential = parse_credential_token(&hex_vector("b_7_krd_credential_token_1_p7b")).unwrap();
    let krd_1 = directory.path().join("krd-1.der");
    std::fs::write(&krd_1, &credential.certificates[0]).unwrap();
    let file = sample_file(directory.path(), "b_9_two_pass_token");
    let output = expect(
        &[
            "tr34",
            "inspect",
            path_text(&file),
            "--signer-certificate",
            path_text(&krd_1),
            "--at",
            SAMPLE_TIME,
        ],
        "",
        1,
    );
    assert!(
        field(&stdout(&output), "signature")
            .unwrap()
            .contains("not by the KDH")
    );
}

#[test]
fn inspect_errors_name_the_file_and_are_usage_errors() {
    let directory = tempfile::tempdir().unwrap();
    let missing = directory.path().join("missing.der");
    let output = expect(&["tr34", "inspect", path_text(&missing)], "", 2);
    assert!(stderr(&output).contains(&format!("FILE: {}", path_text(&missing))));
    let not_a_token = directory.path().join("not-a-token.der");
    std::fs::write(
        &not_a_token,
        hex_vector("b_2_2_2_1_tr34_sample_tdea_encrypted_content_file"),
    )
    .unwrap();
    let output = expect(&["tr34", "inspect", path_text(&not_a_token)], "", 2);
    let message = stderr(&output);
    assert!(
        message.contains(path_text(&not_a_token)) && message.contains("byte offset"),
        "{message}"
    );
    let file = sample_file(directory.path(), "b_9_two_pass_token");
    let output = expect(
        &[
            "tr34",
            "inspect",
            path_text(&file),
            "--signer-certificate",
            path_text(&file),
            "--at",
            "yesterday",
        ],
        "",
        2,
    );
    assert!(stderr(&output).contains("--at: not an RFC 3339 time"));
}

// ---------------------------------------------------------------------------------------------
// build, on a PKI made here.

/// A KDH and a KRD (terminal) with their CAs, as files.
struct Bench {
    directory: tempfile::TempDir,
    kdh_key: PathBuf,
    kdh_certificate: PathBuf,
    kdh_ca: PathBuf,
    krd_key: PrivateKey,
    krd_key_file: PathBuf,
    krd_certificate: PathBuf,
    krd_ca: PathBuf,
    crl: PathBuf,
    /// A terminal certificate from another manufacturer CA.
    foreign_krd_certificate: PathBuf,
    anchors: TrustAnchors,
}

/// The passphrase of the bench's KDH key (a test value).
const PASSPHRASE: &str = "kdh test passphrase";

fn bench() -> &'static Bench {
    static BENCH: OnceLock<Bench> = OnceLock::new();
    BENCH.get_or_init(|| {
        let pki = TestPki::generate("tr34 cli test").unwrap();
        let directory = tempfile::tempdir().unwrap();
        let anchors = pki.write_anchors(directory.path()).unwrap();
        let write = |name: &str, text: &str| {
            let path = directory.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let now = SystemTime::now();
        let kdh_key = PrivateKey::generate(2048).unwrap();
        let kdh_der = pki
            .issue(
                Role::KeyDistributionHost,
                Role::KeyDistributionHost,
                "CN=Test KDH,O=keymother test",
                &kdh_key.public_key(),
                now - DAY,
                now + 365 * DAY,
            )
            .unwrap();
        let krd_key = PrivateKey::generate(2048).unwrap();
        let krd_der = pki
            .device_certificate("KRD0000001", &krd_key.public_key())
            .unwrap();
        let other = TestPki::generate("another manufacturer").unwrap();
        let foreign = other
            .device_certificate("KRD0000002", &krd_key.public_key())
            .unwrap();
        let krd_pkcs8 = krd_key.to_pkcs8_der().unwrap();
        Bench {
            kdh_key: write(
                "kdh-key.pem",
                &kdh_key
                    .to_encrypted_pkcs8_pem(PASSPHRASE.as_bytes())
                    .unwrap(),
            ),
            kdh_certificate: write("kdh.pem", &pem("CERTIFICATE", &kdh_der)),
            kdh_ca: anchors.kdh_ca,
            krd_key_file: write("krd-key.pem", &pem("PRIVATE KEY", &krd_pkcs8)),
            krd_key,
            krd_certificate: write("krd.pem", &pem("CERTIFICATE", &krd_der)),
            krd_ca: anchors.device_ca,
            crl: write(
                "kdh-ca.crl",
                &pem(
                    "X509 CRL",
                    &pki.crl(Role::KeyDistributionHost, &[]).unwrap(),
                ),
            ),
            foreign_krd_certificate: write("foreign-krd.pem", &pem("CERTIFICATE", &foreign)),
            anchors: pki.anchors().unwrap(),
            directory,
        }
    })
}

/// `keymother tr34 build` with the bench's files; `extra` adds or overrides.
fn build(bench: &Bench, out: &Path, extra: &[&str], stdin: &str) -> Output {
    let defaults = [
        ("--kdh-key", path_text(&bench.kdh_key)),
        ("--kdh-key-passphrase-env", "KDH_TEST_PASSPHRASE"),
        ("--kdh-certificate", path_text(&bench.kdh_certificate)),
        ("--kdh-ca", path_text(&bench.kdh_ca)),
        ("--krd-certificate", path_text(&bench.krd_certificate)),
        ("--krd-ca", path_text(&bench.krd_ca)),
        ("--crl", path_text(&bench.crl)),
        ("--key", TEST_KEY),
        ("--out", path_text(out)),
    ];
    let mut arguments = vec!["tr34", "build"];
    for (option, value) in defaults {
        if !extra.contains(&option) {
            arguments.extend([option, value]);
        }
    }
    arguments.extend_from_slice(extra);
    let mut child = Command::new(env!("CARGO_BIN_EXE_keymother"))
        .args(&arguments)
        .env_remove("KEYMOTHER_SOCKET")
        .env("KDH_TEST_PASSPHRASE", PASSPHRASE)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn out_path(bench: &Bench, name: &str) -> PathBuf {
    bench.directory.path().join(name)
}

/// Opens a token as the KRD would, returning the key's hex and the header.
fn open_as_krd(bench: &Bench, token: &[u8], expected: &ExpectedFreshness<'_>) -> (String, String) {
    let kdh_pem = std::fs::read(&bench.kdh_certificate).unwrap();
    let kdh = bench
        .anchors
        .verify(Role::KeyDistributionHost, &kdh_pem, SystemTime::now(), None)
        .unwrap();
    let krd =
        keymother_pki::certificate_der(&std::fs::read(&bench.krd_certificate).unwrap()).unwrap();
    let opened = open_key_token(
        &bench.krd_key,
        &krd,
        &kdh,
        &bench.anchors,
        SystemTime::now(),
        expected,
        token,
    )
    .unwrap_or_else(|e| panic!("the KRD refuses the token: {e}"));
    (opened.key.expose_secret_hex().to_string(), opened.header)
}

#[test]
fn build_then_inspect_and_open_a_two_pass_token() {
    let bench = bench();
    let out = out_path(bench, "two-pass.der");
    let nonce = "00112233445566778899AABBCCDDEEFF";
    let output = build(
        bench,
        &out,
        &["--nonce", nonce, "--key-index", "42", "--key", "-"],
        &format!("{TEST_KEY}\n"),
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let printed = stdout(&output);
    assert!(!printed.contains(TEST_KEY) && !stderr(&output).contains(TEST_KEY));
    let key = SecretKey::from_hex_in_family(KeyFamily::Tdes, TEST_KEY).unwrap();
    let header = key_block_header(KeyFamily::Tdes, KeyIndex::new(42).unwrap()).unwrap();
    assert_eq!(
        field(&printed, "key block header"),
        Some(header.as_str()),
        "{printed}"
    );
    assert_eq!(field(&printed, "kcv"), Some(key.kcv().to_string().as_str()));
    assert_eq!(field(&printed, "random number"), Some(nonce));
    assert!(
        field(&printed, "written")
            .unwrap()
            .starts_with(path_text(&out))
    );

    let text = stdout(&expect(
        &[
            "tr34",
            "inspect",
            path_text(&out),
            "--signer-certificate",
            path_text(&bench.kdh_certificate),
        ],
        "",
        0,
    ));
    assert_eq!(field(&text, "token"), Some(TWO_PASS_2019.1));
    assert_eq!(field(&text, "wire form"), Some(TWO_PASS_2019.2));
    assert_eq!(field(&text, "random number"), Some(nonce));
    assert_eq!(field(&text, "key block header"), Some(header.as_str()));
    let verified = format!("verified with {}", subject_of(&bench.kdh_certificate));
    assert_eq!(field(&text, "signature"), Some(verified.as_str()), "{text}");
    assert!(!text.contains(TEST_KEY));

    let token = std::fs::read(&out).unwrap();
    let nonce = hex::decode(nonce).unwrap();
    let (opened, opened_header) =
        open_as_krd(bench, &token, &ExpectedFreshness::TwoPass { nonce: &nonce });
    assert_eq!(
        (opened.as_str(), opened_header.as_str()),
        (TEST_KEY, header.as_str())
    );
}

#[test]
fn build_takes_the_nonce_from_a_random_number_token_or_signs_the_time_for_one_pass() {
    let bench = bench();
    let nonce = hex::decode("A1A2A3A4A5A6A7A8B1B2B3B4").unwrap();
    let rnt = out_path(bench, "random-number-token.der");
    std::fs::write(&rnt, random_number_token(&nonce).unwrap()).unwrap();
    let out = out_path(bench, "from-rnt.pem");
    let output = build(
        bench,
        &out,
        &["--random-number-token", path_text(&rnt), "--pem"],
        "",
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let token = keymother_pki::tr34::pem_to_der(&std::fs::read(&out).unwrap()).unwrap();
    assert!(
        std::fs::read_to_string(&out)
            .unwrap()
            .starts_with("-----BEGIN CMS-----")
    );
    open_as_krd(bench, &token, &ExpectedFreshness::TwoPass { nonce: &nonce });

    let out = out_path(bench, "one-pass.der");
    let before = SystemTime::now() - Duration::from_secs(1);
    let output = build(bench, &out, &["--one-pass"], "");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let printed = stdout(&output);
    assert_eq!(field(&printed, "token"), Some("one-pass key token"));
    let text = stdout(&expect(&["tr34", "inspect", path_text(&out)], "", 0));
    assert_eq!(field(&text, "token"), Some("one-pass key token"));
    assert_eq!(
        field(&text, "signing time"),
        field(&printed, "signing time")
    );
    let token = std::fs::read(&out).unwrap();
    let expected = ExpectedFreshness::OnePass {
        max_skew: Duration::from_secs(300),
        after: Some(before - Duration::from_secs(1)),
    };
    let (opened, _) = open_as_krd(bench, &token, &expected);
    assert_eq!(opened, TEST_KEY);
}

#[test]
fn build_refuses_wrong_ca_wrong_role_bad_nonce_shared_ca_and_an_existing_out() {
    let bench = bench();
    let out = out_path(bench, "refused.der");
    let nonce = ["--nonce", "00112233445566778899AABBCCDDEEFF"];
    // (extra arguments, exit status, words of the message)
    let foreign = path_text(&bench.foreign_krd_certificate);
    let kdh = path_text(&bench.kdh_certificate);
    let krd_ca = path_text(&bench.krd_ca);
    let long_nonce = "AB".repeat(33);
    let cases: Vec<(Vec<&str>, i32, Vec<&str>)> = vec![
        (
            vec!["--krd-certificate", foreign, nonce[0], nonce[1]],
            1,
            vec![
                "--krd-certificate",
                foreign,
                "not issued by the terminal device CA",
            ],
        ),
        (
            vec!["--krd-certificate", kdh, nonce[0], nonce[1]],
            1,
            vec![
                "--krd-certificate",
                kdh,
                "presented as a terminal device certificate",
            ],
        ),
        (
            vec![
                "--kdh-certificate",
                path_text(&bench.krd_certificate),
                nonce[0],
                nonce[1],
            ],
            1,
            vec![
                "--kdh-certificate",
                "presented as a key distribution host (KDH) certificate",
            ],
        ),
        (
            vec!["--nonce", &long_nonce],
            2,
            vec!["--nonce", "8 to 32 bytes; got 33"],
        ),
        (
            // Checked before the key is asked for (standard input is empty).
            vec!["--nonce", "00112233445566", "--key", "-"],
            2,
            vec!["--nonce", "got 7"],
        ),
        (
            vec!["--nonce", "0011zz"],
            2,
            vec!["--nonce: not hexadecimal"],
        ),
        (vec!["--one-pass", "--key", "0123"], 2, vec!["--key"]),
        (
            vec!["--one-pass", "--kdh-ca", krd_ca],
            2,
            vec!["--kdh-ca/--krd-ca", "share"],
        ),
        (vec![], 2, vec!["--nonce", "--one-pass"]),
    ];
    for (extra, code, words) in cases {
        let output = build(bench, &out, &extra, "");
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(code), "{extra:?}: {message}");
        for word in words {
            assert!(
                message.contains(word),
                "{extra:?}: {word:?} not in {message}"
            );
        }
        assert!(!out.exists(), "{extra:?} wrote a token");
        assert!(!message.contains(TEST_KEY));
    }
    // An existing --out is kept unless --force.
    std::fs::write(&out, "keep me").unwrap();
    let output = build(bench, &out, &["--one-pass"], "");
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("exists; give another file, or --force to replace it"));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "keep me");
    let output = build(bench, &out, &["--one-pass", "--force"], "");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_ne!(std::fs::read(&out).unwrap(), b"keep me");
}

// ---------------------------------------------------------------------------------------------
// openssl's view of a token we built.

/// Runs openssl; `None` when it is not installed.
fn openssl(arguments: &[&str]) -> Option<Output> {
    match Command::new("openssl").args(arguments).output() {
        Ok(output) => {
            assert!(
                output.status.success(),
                "openssl {arguments:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            Some(output)
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(error) => panic!("openssl: {error}"),
    }
}

/// DER TLV of `tag` around `contents`.
fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let length = contents.len();
    if length < 0x80 {
        out.push(length as u8);
    } else {
        let bytes: Vec<u8> = length
            .to_be_bytes()
            .into_iter()
            .skip_while(|&b| b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(contents);
    out
}

#[test]
fn openssl_verifies_a_built_token_and_decrypts_its_key_block_with_the_krd_key() {
    let bench = bench();
    let out = out_path(bench, "for-openssl.der");
    let output = build(bench, &out, &["--nonce", "0102030405060708"], "");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let envelope = out_path(bench, "for-openssl.envelope");
    let verified = openssl(&[
        "cms",
        "-verify",
        "-binary",
        "-inform",
        "DER",
        "-in",
        path_text(&out),
        "-certfile",
        path_text(&bench.kdh_certificate),
        "-CAfile",
        path_text(&bench.kdh_ca),
        "-purpose",
        "any",
        "-out",
        path_text(&envelope),
    ]);
    let Some(verified) = verified else {
        eprintln!("openssl is not installed: skipping the openssl check");
        return;
    };
    assert!(String::from_utf8_lossy(&verified.stderr).contains("Verification successful"));
    // The signed content is the EnvelopedData; openssl decrypts it as a ContentInfo.
    let enveloped_data_oid = [
        0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x03,
    ];
    let mut contents = enveloped_data_oid.to_vec();
    contents.extend(tlv(0xA0, &std::fs::read(&envelope).unwrap()));
    let content_info = out_path(bench, "for-openssl.p7m");
    std::fs::write(&content_info, tlv(0x30, &contents)).unwrap();
    let key_block = out_path(bench, "for-openssl.keyblock");
    openssl(&[
        "cms",
        "-decrypt",
        "-binary",
        "-inform",
        "DER",
        "-in",
        path_text(&content_info),
        "-recip",
        path_text(&bench.krd_certificate),
        "-inkey",
        path_text(&bench.krd_key_file),
        "-out",
        path_text(&key_block),
    ])
    .unwrap();
    // The TR-34 key block: SEQUENCE { version, idKDH, clearKey OCTET STRING, header attribute }.
    let parsed = openssl(&["asn1parse", "-inform", "DER", "-in", path_text(&key_block)]).unwrap();
    let listing = String::from_utf8(parsed.stdout).unwrap();
    let octet_strings: Vec<&str> = listing
        .lines()
        .filter(|line| line.contains("OCTET STRING") && line.contains("d=1"))
        .filter_map(|line| line.split("[HEX DUMP]:").nth(1))
        .collect();
    assert_eq!(octet_strings, [TEST_KEY], "{listing}");
    let header = key_block_header(KeyFamily::Tdes, KeyIndex::ZERO).unwrap();
    assert!(listing.contains(&header), "{listing}");
}

/// docs/TR34.md's worked example is what `inspect` prints for the Annex B.9 sample.
#[test]
fn the_worked_example_in_tr34_md_is_what_inspect_prints() {
    let directory = tempfile::tempdir().unwrap();
    let token = sample_file(directory.path(), "b_9_two_pass_token");
    let output = keymother(&["tr34", "inspect", token.to_str().unwrap()], "");
    assert!(output.status.success(), "{}", stderr(&output));
    let document =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/TR34.md"))
            .unwrap();
    let begin = "<!-- inspect-b9:begin -->\n```text\n";
    let start = document.find(begin).expect("the example's begin marker") + begin.len();
    let end = document[start..]
        .find("```\n<!-- inspect-b9:end -->")
        .expect("the example's end marker");
    assert_eq!(document[start..start + end], stdout(&output));
}
