//! Certificate-mode key transport: seal and open with openssl-made and project-built
//! certificates, every refusal with its error, and openssl checking our OAEP and PSS (and us
//! checking openssl's PSS).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use getrandom04::SysRng;
use getrandom04::rand_core::UnwrapErr;
use keymother_crypto::{KeyAlgorithm, SecretKey};
use keymother_pki::builder::{self, Issuance};
use keymother_pki::key_transport::{
    DeliveryContext, KeyTransportError, NONCE_LENGTH, SealedKey, open_from_appliance,
    seal_for_terminal, signed_content,
};
use keymother_pki::{PkiError, PrivateKey, Role, TrustAnchors, VerifiedCertificate};
use rsa::RsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use rsa::traits::RandomizedEncryptor;
use sha2::{Digest, Sha256};

const NONCE: [u8; NONCE_LENGTH] = [0xA5; NONCE_LENGTH];

fn context() -> DeliveryContext<'static> {
    DeliveryContext {
        hardware_serial: "123L013K",
        nonce: &NONCE,
        key_index: 278,
    }
}

/// Everything one side or the other holds.
struct Setup {
    anchors: TrustAnchors,
    device_key: PrivateKey,
    device: VerifiedCertificate,
    kdh_key: PrivateKey,
    kdh: VerifiedCertificate,
}

fn openssl_setup() -> Setup {
    Setup {
        anchors: anchors(),
        device_key: leaf_key("device"),
        device: verified(Role::TerminalDevice, "device.der"),
        kdh_key: leaf_key("kdh"),
        kdh: verified(Role::KeyDistributionHost, "kdh.der"),
    }
}

fn ca_key(role: Role) -> RsaPrivateKey {
    let file = match role {
        Role::TerminalDevice => "test-only-ca-device.key",
        Role::KeyDistributionHost => "test-only-ca-kdh.key",
        Role::Operator => "test-only-ca-operator.key",
    };
    RsaPrivateKey::from_pkcs8_pem(std::str::from_utf8(&fixture(file)).unwrap()).unwrap()
}

fn good(serial: u8) -> Issuance {
    Issuance {
        serial: vec![serial],
        not_before: at(1_735_689_600),
        not_after: at(2_051_222_400),
    }
}

/// Project-built CAs and leaves for keys generated here.
fn project_setup() -> Setup {
    let cas: Vec<Vec<u8>> = Role::ALL
        .iter()
        .map(|&role| {
            let name = builder::name(&format!("CN=project {role} CA,O=keymother test")).unwrap();
            builder::ca_certificate(&name, &ca_key(role), &good(1)).unwrap()
        })
        .collect();
    let anchors = TrustAnchors::new(&cas[0], &cas[1], &cas[2]).unwrap();
    let device_key = PrivateKey::generate(2048).unwrap();
    let kdh_key = PrivateKey::generate(2048).unwrap();
    let device = builder::leaf_certificate(
        Role::TerminalDevice,
        &builder::name("CN=terminal 123L013K").unwrap(),
        &device_key.public_key(),
        &cas[0],
        &ca_key(Role::TerminalDevice),
        &good(2),
    )
    .unwrap();
    let kdh = builder::leaf_certificate(
        Role::KeyDistributionHost,
        &builder::name("CN=keymother KM-0001").unwrap(),
        &kdh_key.public_key(),
        &cas[1],
        &ca_key(Role::KeyDistributionHost),
        &good(3),
    )
    .unwrap();
    Setup {
        device: anchors
            .verify(Role::TerminalDevice, &device, now(), None)
            .unwrap(),
        kdh: anchors
            .verify(Role::KeyDistributionHost, &kdh, now(), None)
            .unwrap(),
        anchors,
        device_key,
        kdh_key,
    }
}

impl Setup {
    fn seal(&self, master_key: &SecretKey, crl: &[u8]) -> SealedKey {
        seal_for_terminal(&self.kdh_key, &self.device, &context(), master_key, crl).unwrap()
    }

    fn open(&self, sealed: &SealedKey) -> Result<SecretKey, KeyTransportError> {
        open_from_appliance(
            &self.device_key,
            &self.kdh,
            &self.anchors,
            now(),
            &context(),
            sealed,
        )
    }

    /// Signs `sealed` again with the KDH key after a change, so the checks after the
    /// signature's can be reached (a faulty or hostile appliance). Only for the openssl setup,
    /// whose KDH key is a fixture.
    fn resign(&self, sealed: &mut SealedKey) {
        let content = signed_content(
            &context(),
            &sealed.key_block,
            &sealed.kcv,
            &sealed.encrypted_key,
            &sealed.crl,
        );
        let key = RsaPrivateKey::from_pkcs8_pem(
            std::str::from_utf8(&fixture("test-only-kdh.key")).unwrap(),
        )
        .unwrap();
        let signer = rsa::pss::SigningKey::<Sha256>::new_with_salt_len(key, 32);
        sealed.signature = signer.sign(&content).to_vec();
    }
}

/// RSAES-OAEP (SHA-256, MGF1-SHA-256, empty label) with the rsa crate directly.
fn encrypt_oaep(key: &rsa::RsaPublicKey, message: &[u8]) -> Vec<u8> {
    rsa::oaep::EncryptingKey::<Sha256>::new(key.clone())
        .encrypt_with_rng(&mut UnwrapErr(SysRng), message)
        .unwrap()
}

const ALGORITHMS: [KeyAlgorithm; 5] = [
    KeyAlgorithm::Tdes2Key,
    KeyAlgorithm::Tdes3Key,
    KeyAlgorithm::Aes128,
    KeyAlgorithm::Aes192,
    KeyAlgorithm::Aes256,
];

fn round_trips(setup: &Setup) {
    for algorithm in ALGORITHMS {
        let master_key = SecretKey::generate(algorithm).unwrap();
        let sealed = setup.seal(&master_key, &[]);
        assert_eq!(sealed.nonce, NONCE);
        assert_eq!(sealed.kcv, master_key.kcv().as_bytes());
        assert_eq!(sealed.encrypted_key.len(), 256);
        assert_eq!(sealed.signature.len(), 256);
        let family = if algorithm.family() == keymother_crypto::KeyFamily::Tdes {
            'T'
        } else {
            'A'
        };
        assert_eq!(
            &sealed.key_block[..1],
            "D",
            "version D: {}",
            sealed.key_block
        );
        assert_eq!(
            &sealed.key_block[5..12],
            format!("K0{family}D00N"),
            "{}",
            sealed.key_block
        );
        let opened = setup.open(&sealed).unwrap();
        assert_eq!(opened.algorithm(), algorithm);
        assert!(opened.same_material_as(&master_key), "{algorithm}");
    }
}

#[test]
fn round_trip_with_openssl_made_certificates() {
    round_trips(&openssl_setup());
}

#[test]
fn round_trip_with_project_built_certificates() {
    round_trips(&project_setup());
}

#[test]
fn round_trip_with_an_attached_crl() {
    let setup = openssl_setup();
    let crl = pem_to_der(&fixture("ca-kdh.crl.pem"));
    let master_key = SecretKey::generate(KeyAlgorithm::Tdes2Key).unwrap();
    let sealed = setup.seal(&master_key, &crl);
    assert_eq!(sealed.crl, crl);
    assert!(setup.open(&sealed).unwrap().same_material_as(&master_key));
    // The CRL is covered by the signature: removing it breaks the signature.
    let mut stripped = sealed.clone();
    stripped.crl.clear();
    assert!(matches!(
        setup.open(&stripped),
        Err(KeyTransportError::BadSignature)
    ));
}

#[test]
fn nonce_mismatch() {
    let setup = openssl_setup();
    let sealed = setup.seal(&SecretKey::generate(KeyAlgorithm::Aes256).unwrap(), &[]);
    let other = [0x5A; NONCE_LENGTH];
    let other_context = DeliveryContext {
        nonce: &other,
        ..context()
    };
    let err = open_from_appliance(
        &setup.device_key,
        &setup.kdh,
        &setup.anchors,
        now(),
        &other_context,
        &sealed,
    )
    .err()
    .unwrap();
    assert!(matches!(err, KeyTransportError::NonceMismatch), "{err:?}");
    assert!(err.to_string().contains("nonce"), "{err}");
    // The echoed nonce changed on the way: the same refusal, before anything else is looked at.
    let mut changed = sealed.clone();
    changed.nonce[0] ^= 1;
    assert!(matches!(
        setup.open(&changed),
        Err(KeyTransportError::NonceMismatch)
    ));
    // Another serial or key index than the delivery was made for: the signature fails.
    for other_context in [
        DeliveryContext {
            hardware_serial: "123L013L",
            ..context()
        },
        DeliveryContext {
            key_index: 279,
            ..context()
        },
    ] {
        let err = open_from_appliance(
            &setup.device_key,
            &setup.kdh,
            &setup.anchors,
            now(),
            &other_context,
            &sealed,
        )
        .err()
        .unwrap();
        assert!(matches!(err, KeyTransportError::BadSignature), "{err:?}");
    }
}

#[test]
fn wrong_device_key_does_not_decrypt() {
    let setup = openssl_setup();
    let sealed = setup.seal(&SecretKey::generate(KeyAlgorithm::Aes128).unwrap(), &[]);
    let err = open_from_appliance(
        &leaf_key("operator"),
        &setup.kdh,
        &setup.anchors,
        now(),
        &context(),
        &sealed,
    )
    .err()
    .unwrap();
    assert!(
        matches!(err, KeyTransportError::KeyDoesNotDecrypt),
        "{err:?}"
    );
    assert!(err.to_string().contains("does not decrypt"), "{err}");
}

#[test]
fn tampering_with_any_signed_field_breaks_the_signature() {
    let setup = openssl_setup();
    let crl = pem_to_der(&fixture("ca-kdh.crl.pem"));
    let sealed = setup.seal(&SecretKey::generate(KeyAlgorithm::Tdes3Key).unwrap(), &crl);
    let mut cases: Vec<(&str, SealedKey)> = Vec::new();
    let mut s = sealed.clone();
    // A hex digit of the encrypted key data: 'A' <-> 'B' stays valid TR-31 syntax.
    let position = 40;
    let c = s.key_block.as_bytes()[position];
    let replacement = if c == b'A' { "B" } else { "A" };
    s.key_block.replace_range(position..=position, replacement);
    cases.push(("key block", s));
    let mut s = sealed.clone();
    s.encrypted_key[17] ^= 0x80;
    cases.push(("encrypted key", s));
    let mut s = sealed.clone();
    s.signature[200] ^= 0x01;
    cases.push(("signature", s));
    let mut s = sealed.clone();
    s.kcv[0] ^= 0x01;
    cases.push(("KCV", s));
    let mut s = sealed.clone();
    s.signature.pop();
    cases.push(("truncated signature", s));
    for (what, tampered) in cases {
        let err = setup.open(&tampered).err().unwrap();
        assert!(
            matches!(err, KeyTransportError::BadSignature),
            "{what}: {err:?}"
        );
    }
}

#[test]
fn tampered_crl_bytes_are_refused_as_a_crl() {
    let setup = openssl_setup();
    let crl = pem_to_der(&fixture("ca-kdh.crl.pem"));
    let sealed = setup.seal(&SecretKey::generate(KeyAlgorithm::Aes256).unwrap(), &crl);
    // A byte of the CRL's own signature: the CRL is refused (checked before the delivery's
    // signature, which the change breaks too).
    let mut s = sealed.clone();
    let last = s.crl.len() - 10;
    s.crl[last] ^= 0x01;
    let err = setup.open(&s).err().unwrap();
    assert!(
        matches!(
            &err,
            KeyTransportError::Crl(PkiError::BadSignature { what, role: Role::KeyDistributionHost }) if what == "CRL"
        ),
        "{err:?}"
    );
    // Broken DER: a parse error.
    let mut s = sealed.clone();
    s.crl.truncate(s.crl.len() / 2);
    let err = setup.open(&s).err().unwrap();
    assert!(
        matches!(
            err,
            KeyTransportError::Crl(PkiError::Parse { what: "CRL", .. })
        ),
        "{err:?}"
    );
    assert!(err.to_string().starts_with("the CRL attached"), "{err}");
}

#[test]
fn checks_after_the_signature_each_have_their_error() {
    let setup = openssl_setup();
    let master_key = SecretKey::generate(KeyAlgorithm::Aes128).unwrap();
    let sealed = setup.seal(&master_key, &[]);
    // Re-signed by the real KDH (a faulty or hostile appliance), so the later checks are reached.
    let mut s = sealed.clone();
    setup.resign(&mut s);
    assert!(setup.open(&s).unwrap().same_material_as(&master_key));

    let mut s = sealed.clone();
    s.encrypted_key = vec![0x42; 256];
    setup.resign(&mut s);
    assert!(matches!(
        setup.open(&s),
        Err(KeyTransportError::KeyDoesNotDecrypt)
    ));

    let mut s = sealed.clone();
    let position = 40;
    let c = s.key_block.as_bytes()[position];
    let replacement = if c == b'A' { "B" } else { "A" };
    s.key_block.replace_range(position..=position, replacement);
    setup.resign(&mut s);
    let err = setup.open(&s).err().unwrap();
    assert!(
        matches!(&err, KeyTransportError::KeyBlock(text) if text.to_lowercase().contains("mac")),
        "{err:?}"
    );

    let mut s = sealed.clone();
    s.kcv[4] ^= 0x01;
    setup.resign(&mut s);
    assert!(matches!(
        setup.open(&s),
        Err(KeyTransportError::KcvMismatch)
    ));

    // An ephemeral key of the wrong length, properly encrypted and signed.
    let mut s = sealed.clone();
    s.encrypted_key = encrypt_oaep(setup.device.public_key(), &[7; 16]);
    setup.resign(&mut s);
    assert!(matches!(
        setup.open(&s),
        Err(KeyTransportError::EphemeralKeyLength { found: 16 })
    ));
}

#[test]
fn key_block_attributes_are_enforced() {
    use keymother_crypto::tr31::{
        Algorithm, Exportability, Header, KeyBlockProtectionKey, KeyUsage, ModeOfUse, Version,
    };
    let setup = openssl_setup();
    let master_key = SecretKey::generate(KeyAlgorithm::Aes128).unwrap();
    let ephemeral = SecretKey::generate(KeyAlgorithm::Aes256).unwrap();
    // An exportable PIN key instead of a non-exportable decrypt-only K0.
    let header = Header::new(
        Version::D,
        KeyUsage::PinEncryption,
        Algorithm::Aes,
        ModeOfUse::EncryptDecrypt,
        Exportability::Exportable,
    );
    let key_block = KeyBlockProtectionKey::new(&ephemeral)
        .wrap(&header, &master_key)
        .unwrap();
    let encrypted_key = encrypt_oaep(setup.device.public_key(), ephemeral.expose_secret_bytes());
    let mut sealed = SealedKey {
        key_block,
        kcv: master_key.kcv().as_bytes().to_vec(),
        nonce: NONCE,
        encrypted_key,
        signature: Vec::new(),
        crl: Vec::new(),
    };
    setup.resign(&mut sealed);
    let err = setup.open(&sealed).err().unwrap();
    assert!(
        matches!(&err, KeyTransportError::KeyBlockHeader { header } if header.starts_with("D0000P0AB00E")),
        "{err:?}"
    );
}

fn kdh_serial(setup: &Setup) -> String {
    setup
        .kdh
        .serial()
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

#[test]
fn crl_refusals() {
    let setup = openssl_setup();
    let master_key = SecretKey::generate(KeyAlgorithm::Tdes2Key).unwrap();
    // The KDH is on the attached CRL.
    let sealed = setup.seal(
        &master_key,
        &pem_to_der(&fixture("ca-kdh-revoked-kdh.crl.pem")),
    );
    let err = setup.open(&sealed).err().unwrap();
    match &err {
        KeyTransportError::KdhRevoked { serial } => assert_eq!(serial, &kdh_serial(&setup)),
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("revoked"), "{err}");
    // Out of date.
    let sealed = setup.seal(&master_key, &pem_to_der(&fixture("ca-kdh-stale.crl.pem")));
    assert!(matches!(
        setup.open(&sealed),
        Err(KeyTransportError::Crl(PkiError::CrlOutOfDate { .. }))
    ));
    // From the wrong CA (the device CA's).
    let sealed = setup.seal(&master_key, &fixture("ca-device.crl.der"));
    assert!(matches!(
        setup.open(&sealed),
        Err(KeyTransportError::Crl(PkiError::CrlWrongIssuer {
            role: Role::KeyDistributionHost,
            ..
        }))
    ));
    // Not a CRL at all: the appliance refuses to attach it.
    let err = seal_for_terminal(
        &setup.kdh_key,
        &setup.device,
        &context(),
        &master_key,
        b"not a CRL",
    )
    .err()
    .unwrap();
    assert!(
        matches!(err, KeyTransportError::Crl(PkiError::Parse { .. })),
        "{err:?}"
    );
}

#[test]
fn project_built_crl_revoking_the_kdh() {
    let setup = project_setup();
    let kdh_ca = setup
        .anchors
        .ca_certificate(Role::KeyDistributionHost)
        .unwrap()
        .clone();
    let kdh_ca = der::Encode::to_der(&kdh_ca).unwrap();
    let crl = builder::crl(
        &kdh_ca,
        &ca_key(Role::KeyDistributionHost),
        2,
        at(NOW_UNIX - 86_400),
        at(NOW_UNIX + 86_400),
        &[(setup.kdh.serial().as_bytes().to_vec(), at(NOW_UNIX - 60))],
    )
    .unwrap();
    let sealed = setup.seal(&SecretKey::generate(KeyAlgorithm::Aes256).unwrap(), &crl);
    assert!(matches!(
        setup.open(&sealed),
        Err(KeyTransportError::KdhRevoked { .. })
    ));
    // A CRL that does not list it lets the delivery through.
    let crl = builder::crl(
        &kdh_ca,
        &ca_key(Role::KeyDistributionHost),
        3,
        at(NOW_UNIX - 86_400),
        at(NOW_UNIX + 86_400),
        &[(vec![0x77], at(NOW_UNIX - 60))],
    )
    .unwrap();
    let master_key = SecretKey::generate(KeyAlgorithm::Aes256).unwrap();
    let sealed = setup.seal(&master_key, &crl);
    assert!(setup.open(&sealed).unwrap().same_material_as(&master_key));
}

#[test]
fn signature_by_a_key_that_is_not_the_kdhs() {
    let setup = openssl_setup();
    let master_key = SecretKey::generate(KeyAlgorithm::Aes128).unwrap();
    // Sealed and signed with the operator's key (a valid certificate of another role).
    let sealed = seal_for_terminal(
        &leaf_key("operator"),
        &setup.device,
        &context(),
        &master_key,
        &[],
    )
    .unwrap();
    assert!(matches!(
        setup.open(&sealed),
        Err(KeyTransportError::BadSignature)
    ));
    // And the operator's certificate offered as the sender's: refused as not a KDH.
    let err = open_from_appliance(
        &setup.device_key,
        &verified(Role::Operator, "operator.der"),
        &setup.anchors,
        now(),
        &context(),
        &sealed,
    )
    .err()
    .unwrap();
    assert!(matches!(err, KeyTransportError::NotKdh), "{err:?}");
    // The appliance seals only to terminal device certificates.
    let err = seal_for_terminal(&setup.kdh_key, &setup.kdh, &context(), &master_key, &[])
        .err()
        .unwrap();
    assert!(
        matches!(
            err,
            KeyTransportError::NotTerminalDevice {
                role: Role::KeyDistributionHost
            }
        ),
        "{err:?}"
    );
}

#[test]
fn openssl_decrypts_our_encrypted_key_and_checks_our_signature() {
    let setup = openssl_setup();
    let master_key = SecretKey::generate(KeyAlgorithm::Tdes2Key).unwrap();
    let crl = pem_to_der(&fixture("ca-kdh.crl.pem"));
    let sealed = setup.seal(&master_key, &crl);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("ek.bin"), &sealed.encrypted_key).unwrap();
    let device_key = fixture_path("test-only-device.key");
    let Some((_, ephemeral, _)) = openssl(
        d,
        &[
            "pkeyutl",
            "-decrypt",
            "-inkey",
            device_key.to_str().unwrap(),
            "-pkeyopt",
            "rsa_padding_mode:oaep",
            "-pkeyopt",
            "rsa_oaep_md:sha256",
            "-pkeyopt",
            "rsa_mgf1_md:sha256",
            "-in",
            "ek.bin",
        ],
        true,
    ) else {
        return;
    };
    // What openssl decrypted is the KE: it opens the key block.
    assert_eq!(ephemeral.len(), 32);
    let ephemeral = SecretKey::from_bytes(KeyAlgorithm::Aes256, &ephemeral).unwrap();
    let unwrapped = keymother_crypto::tr31::unwrap(&ephemeral, &sealed.key_block).unwrap();
    assert!(unwrapped.key.same_material_as(&master_key));

    // Our signature, checked by openssl over the signed content.
    let content = signed_content(
        &context(),
        &sealed.key_block,
        &sealed.kcv,
        &sealed.encrypted_key,
        &sealed.crl,
    );
    std::fs::write(d.join("content.bin"), &content).unwrap();
    std::fs::write(d.join("sig.bin"), &sealed.signature).unwrap();
    std::fs::write(
        d.join("kdh.pem"),
        der_to_pem("CERTIFICATE", &fixture("kdh.der")),
    )
    .unwrap();
    let (_, public, _) =
        openssl(d, &["x509", "-in", "kdh.pem", "-pubkey", "-noout"], true).unwrap();
    std::fs::write(d.join("kdh.pub"), public).unwrap();
    let (_, stdout, _) = openssl(
        d,
        &[
            "dgst",
            "-sha256",
            "-verify",
            "kdh.pub",
            "-sigopt",
            "rsa_padding_mode:pss",
            "-sigopt",
            "rsa_pss_saltlen:32",
            "-signature",
            "sig.bin",
            "content.bin",
        ],
        true,
    )
    .unwrap();
    assert!(String::from_utf8_lossy(&stdout).contains("Verified OK"));
    // A firmware that hashes first and verifies the digest (pkeyutl) agrees.
    std::fs::write(d.join("digest.bin"), Sha256::digest(&content)).unwrap();
    let (_, stdout, _) = openssl(
        d,
        &[
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            "kdh.pub",
            "-pkeyopt",
            "rsa_padding_mode:pss",
            "-pkeyopt",
            "rsa_pss_saltlen:32",
            "-pkeyopt",
            "digest:sha256",
            "-in",
            "digest.bin",
            "-sigfile",
            "sig.bin",
        ],
        true,
    )
    .unwrap();
    assert!(String::from_utf8_lossy(&stdout).contains("Signature Verified Successfully"));
}

#[test]
fn a_signature_made_by_openssl_passes_our_check() {
    let setup = openssl_setup();
    let master_key = SecretKey::generate(KeyAlgorithm::Aes256).unwrap();
    let mut sealed = setup.seal(&master_key, &[]);
    let content = signed_content(
        &context(),
        &sealed.key_block,
        &sealed.kcv,
        &sealed.encrypted_key,
        &sealed.crl,
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("digest.bin"), Sha256::digest(&content)).unwrap();
    let kdh_key = fixture_path("test-only-kdh.key");
    let Some(_) = openssl(
        d,
        &[
            "pkeyutl",
            "-sign",
            "-inkey",
            kdh_key.to_str().unwrap(),
            "-pkeyopt",
            "rsa_padding_mode:pss",
            "-pkeyopt",
            "rsa_pss_saltlen:32",
            "-pkeyopt",
            "digest:sha256",
            "-in",
            "digest.bin",
            "-out",
            "sig.bin",
        ],
        true,
    ) else {
        return;
    };
    sealed.signature = std::fs::read(d.join("sig.bin")).unwrap();
    assert!(setup.open(&sealed).unwrap().same_material_as(&master_key));
    // openssl's signature over another delivery's content does not pass.
    sealed.kcv[0] ^= 1;
    assert!(matches!(
        setup.open(&sealed),
        Err(KeyTransportError::BadSignature)
    ));
}

#[test]
fn a_terminal_knowing_only_the_kdh_ca_opens_deliveries() {
    let setup = openssl_setup();
    let terminal_anchors =
        TrustAnchors::for_roles(None, Some(&fixture("ca-kdh.pem")), None).unwrap();
    let kdh = terminal_anchors
        .verify(Role::KeyDistributionHost, &fixture("kdh.der"), now(), None)
        .unwrap();
    let master_key = SecretKey::generate(KeyAlgorithm::Tdes3Key).unwrap();
    let sealed = setup.seal(&master_key, &pem_to_der(&fixture("ca-kdh.crl.pem")));
    let opened = open_from_appliance(
        &setup.device_key,
        &kdh,
        &terminal_anchors,
        now(),
        &context(),
        &sealed,
    )
    .ok()
    .unwrap();
    assert!(opened.same_material_as(&master_key));
    // Nothing else can be verified with these anchors.
    assert_eq!(
        terminal_anchors
            .verify(Role::TerminalDevice, &fixture("device.der"), now(), None)
            .err(),
        Some(PkiError::NoAnchor {
            role: Role::TerminalDevice
        })
    );
    // A device certificate offered as the KDH's: its issuer is unknown here.
    assert!(matches!(
        terminal_anchors.verify(
            Role::KeyDistributionHost,
            &fixture("device.der"),
            now(),
            None
        ),
        Err(PkiError::UnknownIssuer { .. })
    ));
    assert!(terminal_anchors.ca_certificate(Role::Operator).is_none());
    assert_eq!(
        TrustAnchors::for_roles(None, None, None).err(),
        Some(PkiError::NoAnchors)
    );
    // The terminal's own key and certificate, before any verification.
    let device_der = keymother_pki::certificate_der(
        &der_to_pem("CERTIFICATE", &fixture("device.der")).into_bytes(),
    )
    .unwrap();
    assert_eq!(device_der, fixture("device.der"));
    assert!(setup.device_key.matches_certificate(&device_der));
    assert!(
        setup
            .device_key
            .matches_certificate(der_to_pem("CERTIFICATE", &device_der).as_bytes())
    );
    assert!(!setup.kdh_key.matches_certificate(&device_der));
    assert!(!setup.device_key.matches_certificate(b"garbage"));
    assert!(keymother_pki::certificate_der(b"garbage").is_err());
}
