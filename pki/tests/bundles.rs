//! PEM bundles as openssl writes them: `subject=`/`issuer=` lines (`openssl x509 -subject -issuer`) and `Bag Attributes` lines (`openssl pkcs12 -nokeys`) before the blocks are ignored; a file without any `-----BEGIN ` line is one DER object; a block of another label is named by its number and the label expected, never by the text found.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod chain_pki;

use chain_pki::{Kind, Pki};
use keymother_pki::login::{CHALLENGE_LENGTH, LoginKey, sign_login_with};
use keymother_pki::{PkiError, pem_bundle};

#[test]
fn text_before_the_first_block_is_ignored() {
    let pki = Pki::three_levels(Kind::Rsa, Kind::Rsa);
    let (ann, ops_ca) = (pki.der("ann"), pki.der("ops-ca"));
    let plain = pem_bundle(&pki.bundle(&["ann", "ops-ca"]), "CERTIFICATE", "bundle").unwrap();
    assert_eq!(plain, [ann.clone(), ops_ca.clone()]);

    // `openssl x509 -subject -issuer`: subject= and issuer= lines before each block.
    let annotated: Vec<u8> = ["ann", "ops-ca"]
        .iter()
        .flat_map(|name| {
            pki.openssl(&["x509", "-in", &format!("{name}.pem"), "-subject", "-issuer"])
        })
        .collect();
    assert!(annotated.starts_with(b"subject="));
    assert_eq!(
        pem_bundle(&annotated, "CERTIFICATE", "bundle").unwrap(),
        plain
    );

    // `openssl pkcs12 -nokeys`: Bag Attributes lines before each block.
    pki.openssl(&[
        "pkcs12",
        "-export",
        "-in",
        "ann.pem",
        "-inkey",
        "ann.key",
        "-certfile",
        "ops-ca.pem",
        "-passout",
        "pass:bundle",
        "-out",
        "ann.p12",
    ]);
    let bags = pki.openssl(&[
        "pkcs12",
        "-in",
        "ann.p12",
        "-nokeys",
        "-passin",
        "pass:bundle",
    ]);
    assert!(bags.starts_with(b"Bag Attributes"));
    let mut blocks = pem_bundle(&bags, "CERTIFICATE", "bundle").unwrap();
    blocks.sort();
    let mut expected = plain.clone();
    expected.sort();
    assert_eq!(blocks, expected);

    // A login's certificate file is read the same way.
    let key = LoginKey::read(&pki.read("ann.key"), None).unwrap();
    let response = sign_login_with(
        &key,
        &annotated,
        "KM-BUNDLE-01",
        &[7; CHALLENGE_LENGTH],
        Pki::now(),
    )
    .unwrap();
    assert_eq!(response.certificate, ann);
    assert_eq!(response.intermediates, [ops_ca]);

    // Without any BEGIN line the file is one DER object.
    assert_eq!(pem_bundle(&ann, "CERTIFICATE", "bundle").unwrap(), [ann]);
}

#[test]
fn a_block_of_another_label_is_named_by_number_and_expected_label_only() {
    let pki = Pki::three_levels(Kind::Rsa, Kind::Rsa);
    let odd = b"-----BEGIN TOP SECRET NOTE-----\nMAA=\n-----END TOP SECRET NOTE-----\n";
    let file = [pki.pem("ann"), odd.to_vec()].concat();
    let error = pem_bundle(&file, "CERTIFICATE", "operator certificate file").unwrap_err();
    assert!(
        matches!(error, PkiError::BadBundleBlock { block: 2, .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "block 2 of the operator certificate file is refused: it is not labelled CERTIFICATE \
         (-----BEGIN CERTIFICATE-----)"
    );
    let crl = pki.crl("ops-ca", &[]);
    let crls = [
        keymother_pki::der::pem::encode_string(
            "X509 CRL",
            keymother_pki::der::pem::LineEnding::LF,
            &crl,
        )
        .unwrap()
        .into_bytes(),
        pki.pem("ann"),
    ]
    .concat();
    let error = pem_bundle(&crls, "X509 CRL", "CRL file")
        .unwrap_err()
        .to_string();
    assert_eq!(
        error,
        "block 2 of the CRL file is refused: it is not labelled X509 CRL (-----BEGIN X509 CRL-----)"
    );
}
