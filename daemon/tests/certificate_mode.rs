//! Certificate mode end to end: the real daemon on pseudo-terminal ports, a KDH identity made by the daemon and signed by a test KDH CA, reference terminals with device certificates; every refusal ends with nothing dispensed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, SystemTime};

use keymother_daemon::{DaemonEvent, Settings};
use keymother_pki::testing::{TestPki, pem, serial_of};
use keymother_pki::{PrivateKey, Role};
use keymother_protocol::{
    CertificateDelivery, CertificatePass, DecodeEvent, FrameDecoder, Message, Mode, TerminalConfig,
    TerminalOutcome,
};
use keymother_terminal::{CertificateIdentity, Line, PtyLine, SoftwareKeyStore, inject};
use keymother_vault::KeyState;
use support::{Appliance, InProcessDaemon};

const DAY: Duration = Duration::from_secs(86_400);

fn ask(socket: &Path, request: serde_json::Value) -> serde_json::Value {
    let mut stream = UnixStream::connect(socket).unwrap();
    writeln!(stream, "{request}").unwrap();
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).unwrap();
    serde_json::from_str(&answer).unwrap()
}

/// An appliance with `keys` keys, its daemon on `ports` ports with the test PKI's anchors
/// (and a device CRL revoking `revoked`), and a KDH certificate installed the way a
/// custodian would: request from the daemon, signed by the KDH CA, installed back.
struct Bench {
    appliance: Appliance,
    pki: TestPki,
    lines: Vec<PtyLine>,
    daemon: Option<InProcessDaemon>,
    /// What the daemon started with, for a restart.
    settings: Settings,
    /// One device key for every test terminal: key generation is not what is tested.
    device_key_der: zeroize::Zeroizing<Vec<u8>>,
}

impl Bench {
    fn new(keys: u32, ports: usize, revoked: &[Vec<u8>]) -> Bench {
        let pki = TestPki::generate("certificate-mode test").unwrap();
        let device_key = PrivateKey::generate(2048).unwrap();
        Bench::with(keys, ports, pki, device_key, |_| revoked.to_vec(), |_| {})
    }

    /// `adjust` changes the daemon's settings before it starts.
    fn with(
        keys: u32,
        ports: usize,
        pki: TestPki,
        device_key: PrivateKey,
        revoked: impl FnOnce(&TestPki) -> Vec<Vec<u8>>,
        adjust: fn(&mut Settings),
    ) -> Bench {
        let appliance = Appliance::provisioned(keys);
        let directory = appliance.directory.path();
        let files = pki.write_anchors(directory).unwrap();
        let crl = directory.join("device-ca.crl");
        std::fs::write(&crl, pki.crl(Role::TerminalDevice, &revoked(&pki)).unwrap()).unwrap();
        let (lines, _) = appliance.ports(ports);
        let mut text = std::fs::read_to_string(appliance.config_path()).unwrap();
        text.push_str(&format!(
            "[pki]\ndevice_ca = {:?}\nkdh_ca = {:?}\noperator_ca = {:?}\ndevice_crl = {crl:?}\n",
            files.device_ca, files.kdh_ca, files.operator_ca
        ));
        let mut settings = Settings::from_toml(&text, "keymotherd.toml").unwrap();
        adjust(&mut settings);
        let daemon = Some(InProcessDaemon::start(settings.clone()));
        let bench = Bench {
            device_key_der: device_key.to_pkcs8_der().unwrap(),
            appliance,
            pki,
            lines,
            daemon,
            settings,
        };
        bench.install_kdh();
        bench
    }

    fn daemon(&self) -> &InProcessDaemon {
        self.daemon.as_ref().expect("the daemon runs")
    }

    /// Stops the daemon and starts it again on the same vault and settings.
    fn restart(&mut self) {
        self.daemon = None;
        self.daemon = Some(InProcessDaemon::start(self.settings.clone()));
    }

    fn socket(&self) -> std::path::PathBuf {
        self.appliance.directory.path().join("control.sock")
    }

    /// Grants `serial` one re-injection of its master key, as an operator would.
    fn grant_reinjection(&self, serial: &str) {
        let answer = ask(
            &self.socket(),
            serde_json::json!({"command": "reinject-grant", "hardware_serial": serial, "reason": "replay test"}),
        );
        assert_eq!(answer["ok"], true, "{answer}");
    }

    fn install_kdh(&self) {
        let answer = ask(
            &self.socket(),
            serde_json::json!({"command": "kdh-request"}),
        );
        let request = answer["result"]["request"].as_str().unwrap().to_owned();
        let certificate = self.pki.sign_kdh_request(request.as_bytes()).unwrap();
        let answer = ask(
            &self.socket(),
            serde_json::json!({"command": "kdh-install", "certificate": pem("CERTIFICATE", &certificate)}),
        );
        assert_eq!(answer["result"]["certificate_mode"], true, "{answer}");
    }

    fn device_key(&self) -> PrivateKey {
        PrivateKey::from_pkcs8(&self.device_key_der, None).unwrap()
    }

    /// A terminal that offers certificate mode only, with a good device certificate, asking
    /// for two-pass key tokens.
    fn terminal(&self, serial: &str) -> (TerminalConfig, SoftwareKeyStore) {
        self.terminal_asking(serial, CertificatePass::TwoPass)
    }

    /// A terminal that offers certificate mode only, asking for `pass` key tokens.
    fn terminal_asking(
        &self,
        serial: &str,
        pass: CertificatePass,
    ) -> (TerminalConfig, SoftwareKeyStore) {
        let key = self.device_key();
        let certificate = self
            .pki
            .device_certificate(serial, &key.public_key())
            .unwrap();
        let identity = CertificateIdentity::new(
            key,
            &certificate,
            self.pki.ca_certificate(Role::KeyDistributionHost),
        )
        .unwrap()
        .with_pass(pass);
        let mut config = self.appliance.terminal(serial);
        config.modes = vec![Mode::Certificate];
        (
            config,
            self.appliance.key_store().with_certificate(identity),
        )
    }

    fn used_keys_and_rows(&self) -> (u64, usize) {
        let vault = self.appliance.vault();
        (
            vault.inventory().unwrap().count(KeyState::Used),
            vault.smn_rows().unwrap().len(),
        )
    }

    fn untouched_keys(&self) -> u64 {
        self.appliance
            .vault()
            .inventory()
            .unwrap()
            .count(KeyState::Available)
    }
}

fn failure(outcome: &TerminalOutcome) -> &str {
    match outcome {
        TerminalOutcome::Failed { reason } => reason,
        other => panic!("expected a failure, got {other}"),
    }
}

/// A terminal's serial, settings and key store.
type Terminal = (String, TerminalConfig, SoftwareKeyStore);
/// A terminal's serial, how its injection ended, and what its store holds.
type Finished = (
    String,
    TerminalOutcome,
    Option<(u32, keymother_crypto::Kcv)>,
);

#[test]
fn several_terminals_at_once_get_their_keys_in_certificate_mode() {
    let mut bench = Bench::new(12, 4, &[]);
    let lines = std::mem::take(&mut bench.lines);
    let work: Vec<(PtyLine, Vec<Terminal>)> = lines
        .into_iter()
        .enumerate()
        .map(|(port, line)| {
            // Two-pass key tokens (a nonce), then one-pass ones (a signing time).
            let terminals = [CertificatePass::TwoPass, CertificatePass::OnePass]
                .into_iter()
                .enumerate()
                .map(|(round, pass)| {
                    let serial = format!("CM{port}{round}X");
                    let (config, store) = bench.terminal_asking(&serial, pass);
                    (serial, config, store)
                })
                .collect();
            (line, terminals)
        })
        .collect();
    let results: Vec<Finished> = std::thread::scope(|scope| {
        let handles: Vec<_> = work
            .into_iter()
            .map(|(mut line, terminals)| {
                scope.spawn(move || {
                    let mut results = Vec::new();
                    for (serial, config, mut store) in terminals {
                        let outcome = inject(&mut line, config, &mut store).unwrap().outcome;
                        results.push((serial, outcome, store.installed()));
                    }
                    results
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| handle.join().unwrap())
            .collect()
    });
    let rows = bench.appliance.vault().smn_rows().unwrap();
    assert_eq!(rows.len(), 8);
    for (serial, outcome, installed) in &results {
        let TerminalOutcome::Injected {
            key_index,
            smn,
            kcv,
        } = outcome
        else {
            panic!("{serial}: {outcome}");
        };
        let row = rows.iter().find(|row| row.smn == smn.as_str()).unwrap();
        assert_eq!(&row.hardware_serial, serial);
        assert_eq!(row.key_index, *key_index);
        let hex: String = kcv.iter().map(|byte| format!("{byte:02X}")).collect();
        assert_eq!(
            row.kcv, hex,
            "the terminal holds the key the vault recorded"
        );
        assert_eq!(installed.as_ref().unwrap().0, *key_index);
    }
    assert!(bench.daemon().saw(|event| matches!(
        event,
        DaemonEvent::Session { detail, .. } if detail.contains("in mode certificate")
    )));
    let mut indexes: Vec<u32> = rows.iter().map(|row| row.key_index.value()).collect();
    indexes.dedup();
    assert_eq!(indexes.len(), 8, "no key twice");
}

/// Runs one terminal whose device certificate is `certificate` (the key store keeps its own,
/// good identity for checking the appliance); the appliance must refuse it before reserving.
fn refused_device_certificate(bench: &mut Bench, serial: &str, certificate: Vec<u8>) -> String {
    let available = bench.untouched_keys();
    let (mut config, mut store) = bench.terminal(serial);
    config.krd_credential_token = keymother_pki::tr34::krd_credential_token(&certificate).unwrap();
    let outcome = inject(&mut bench.lines[0], config, &mut store)
        .unwrap()
        .outcome;
    let reason = failure(&outcome).to_owned();
    assert!(reason.contains("CERTIFICATE_REFUSED"), "{reason}");
    assert_eq!(
        bench.untouched_keys(),
        available,
        "nothing reserved: {reason}"
    );
    assert_eq!(bench.used_keys_and_rows(), (0, 0));
    assert!(store.installed().is_none());
    reason
}

#[test]
fn device_certificates_the_appliance_must_refuse_are_refused_with_nothing_reserved() {
    let pki = TestPki::generate("refusals").unwrap();
    let device_key = PrivateKey::generate(2048).unwrap();
    let public = device_key.public_key();
    let revoked_certificate = pki.device_certificate("REVOKED1", &public).unwrap();
    let revoked_serial = serial_of(&revoked_certificate).unwrap();
    let mut bench = Bench::with(4, 1, pki, device_key, |_| vec![revoked_serial], |_| {});
    let now = SystemTime::now();
    let pki = &bench.pki;
    let device = |subject: &str, role: Role, issuer: Role, from: SystemTime, until: SystemTime| {
        pki.issue(role, issuer, subject, &public, from, until)
            .unwrap()
    };
    let other = TestPki::generate("another manufacturer").unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "EXPIRED1",
            device(
                "CN=EXPIRED1",
                Role::TerminalDevice,
                Role::TerminalDevice,
                now - 400 * DAY,
                now - DAY,
            ),
            "has expired",
        ),
        (
            "LATER001",
            device(
                "CN=LATER001",
                Role::TerminalDevice,
                Role::TerminalDevice,
                now + DAY,
                now + 400 * DAY,
            ),
            "not yet valid",
        ),
        (
            "OTHERCA1",
            other.device_certificate("OTHERCA1", &public).unwrap(),
            "not issued by the terminal device CA",
        ),
        ("REVOKED1", revoked_certificate, "revoked"),
        (
            // Issued by the manufacturer CA, but as a signing certificate: no keyEncipherment.
            "USAGE001",
            device(
                "CN=USAGE001",
                Role::KeyDistributionHost,
                Role::TerminalDevice,
                now - DAY,
                now + DAY,
            ),
            "keyEncipherment",
        ),
        (
            // A KDH certificate presented as a device certificate.
            "ROLE0001",
            device(
                "CN=ROLE0001",
                Role::KeyDistributionHost,
                Role::KeyDistributionHost,
                now - DAY,
                now + DAY,
            ),
            "presented as a terminal device certificate",
        ),
        (
            // Good, but for another terminal.
            "SERIAL01",
            pki.device_certificate("SOMEONE2", &public).unwrap(),
            "not for hardware serial SERIAL01",
        ),
    ];
    let mut corrupted = pki.device_certificate("BADSIG01", &public).unwrap();
    let last = corrupted.len() - 1;
    corrupted[last] ^= 0x01;
    let mut cases = cases;
    cases.push(("BADSIG01", corrupted, "signature"));
    for (serial, certificate, expected) in cases {
        let reason = refused_device_certificate(&mut bench, serial, certificate);
        assert!(
            reason.contains(expected),
            "{serial}: expected {expected:?} in {reason}"
        );
    }
}

#[test]
fn the_certificate_request_limit_per_port_comes_from_the_settings() {
    let pki = TestPki::generate("rate limit").unwrap();
    let device_key = PrivateKey::generate(2048).unwrap();
    let mut bench = Bench::with(
        6,
        1,
        pki,
        device_key,
        |_| Vec::new(),
        |settings| settings.certificate_requests_per_minute = 2,
    );
    for serial in ["RATE0001", "RATE0002"] {
        let (config, mut store) = bench.terminal(serial);
        let outcome = inject(&mut bench.lines[0], config, &mut store)
            .unwrap()
            .outcome;
        assert!(
            matches!(outcome, TerminalOutcome::Injected { .. }),
            "{outcome}"
        );
    }
    // The third key request within the minute on this port is refused before any RSA work.
    let available = bench.untouched_keys();
    let (config, mut store) = bench.terminal("RATE0003");
    let outcome = inject(&mut bench.lines[0], config, &mut store)
        .unwrap()
        .outcome;
    assert!(failure(&outcome).contains("RATE_LIMITED"), "{outcome}");
    assert!(store.installed().is_none());
    assert_eq!(bench.untouched_keys(), available);
    assert_eq!(bench.used_keys_and_rows(), (2, 2));
}

#[test]
fn a_terminal_that_does_not_trust_the_appliance_aborts_before_asking() {
    let mut bench = Bench::new(2, 1, &[]);
    let key = bench.device_key();
    let certificate = bench
        .pki
        .device_certificate("DOUBT001", &key.public_key())
        .unwrap();
    // The terminal was loaded with another KDH CA.
    let stranger = TestPki::generate("stranger").unwrap();
    let identity = CertificateIdentity::new(
        key,
        &certificate,
        stranger.ca_certificate(Role::KeyDistributionHost),
    )
    .unwrap();
    let mut config = bench.appliance.terminal("DOUBT001");
    config.modes = vec![Mode::Certificate];
    let mut store = bench.appliance.key_store().with_certificate(identity);
    let available = bench.untouched_keys();
    let outcome = inject(&mut bench.lines[0], config, &mut store)
        .unwrap()
        .outcome;
    assert!(
        failure(&outcome).contains("KDH certificate was refused"),
        "{outcome}"
    );
    assert_eq!(bench.untouched_keys(), available);
    assert!(bench.daemon().saw(|event| matches!(
        event,
        DaemonEvent::Session { detail, .. } if detail.contains("aborted") && detail.contains("KDH certificate was refused")
    )));
}

/// A man in the middle on the terminal's line: decodes each frame going either way and lets
/// `tamper` change the message before it is re-framed (with a good CRC).
struct Middle<'a> {
    line: &'a mut PtyLine,
    decoder: FrameDecoder,
    ready: VecDeque<u8>,
    tamper: Box<dyn FnMut(&mut Message) + 'a>,
}

impl<'a> Middle<'a> {
    fn new(line: &'a mut PtyLine, tamper: impl FnMut(&mut Message) + 'a) -> Self {
        Middle {
            line,
            decoder: FrameDecoder::new(Duration::from_millis(500)),
            ready: VecDeque::new(),
            tamper: Box::new(tamper),
        }
    }

    fn pass(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for event in self.decoder.push(bytes, Duration::ZERO) {
            if let DecodeEvent::Frame(frame) = event {
                let mut message = Message::from_frame(&frame).unwrap();
                (self.tamper)(&mut message);
                out.extend(message.encode_frame(frame.seq).unwrap());
            }
        }
        out
    }
}

impl Line for Middle<'_> {
    fn read_within(&mut self, buffer: &mut [u8], timeout: Duration) -> std::io::Result<usize> {
        if self.ready.is_empty() {
            let mut raw = [0u8; 4096];
            let count = self.line.read_within(&mut raw, timeout)?;
            let passed = self.pass(&raw[..count]);
            self.ready.extend(passed);
        }
        let count = self.ready.len().min(buffer.len());
        for (slot, byte) in buffer.iter_mut().zip(self.ready.drain(..count)) {
            *slot = byte;
        }
        Ok(count)
    }

    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        // The terminal writes whole frames: tamper with them on the way out too.
        let mut decoder = FrameDecoder::new(Duration::from_millis(500));
        let mut out = Vec::new();
        for event in decoder.push(bytes, Duration::ZERO) {
            if let DecodeEvent::Frame(frame) = event {
                let mut message = Message::from_frame(&frame).unwrap();
                (self.tamper)(&mut message);
                out.extend(message.encode_frame(frame.seq).unwrap());
            }
        }
        self.line.write_all(&out)
    }
}

/// Changes the certificate-mode fields of a KEY_DELIVERY.
fn in_delivery(message: &mut Message, change: &mut dyn FnMut(&mut CertificateDelivery)) {
    if let Message::KeyDelivery(delivery) = message {
        let mut fields = CertificateDelivery::decode(&delivery.mode_data).unwrap();
        change(&mut fields);
        delivery.mode_data = fields.encode().unwrap();
    }
}

/// Runs one terminal through a man in the middle; the terminal must fail, and no key may be
/// used or recorded.
fn tampered(bench: &mut Bench, serial: &str, tamper: impl FnMut(&mut Message)) -> String {
    let (config, mut store) = bench.terminal(serial);
    let (used, rows) = bench.used_keys_and_rows();
    let outcome = {
        let mut middle = Middle::new(&mut bench.lines[0], tamper);
        inject(&mut middle, config, &mut store).unwrap().outcome
    };
    assert_eq!(
        bench.used_keys_and_rows(),
        (used, rows),
        "nothing dispensed"
    );
    failure(&outcome).to_owned()
}

#[test]
fn tampered_or_replayed_deliveries_and_a_wrong_kcv_dispense_nothing() {
    let mut bench = Bench::new(10, 1, &[]);

    // The signature is the token's last bytes.
    let reason = tampered(&mut bench, "SIGN0001", |message| {
        in_delivery(message, &mut |fields| {
            let last = fields.key_token.len() - 17;
            fields.key_token[last] ^= 0x01;
        })
    });
    assert!(reason.contains("signature does not verify"), "{reason}");

    // Every byte of the token is covered: a flip in the enveloped key block (the middle of
    // the token) is caught before anything is decrypted.
    let reason = tampered(&mut bench, "KEYBLK01", |message| {
        in_delivery(message, &mut |fields| {
            let middle = fields.key_token.len() / 3;
            fields.key_token[middle] ^= 0x01;
        })
    });
    assert!(
        reason.contains("not authentic") && reason.contains("messageDigest"),
        "{reason}"
    );

    // The header KEY_DELIVERY announces must be the one the token signs.
    let reason = tampered(&mut bench, "HEADER01", |message| {
        if let Message::KeyDelivery(delivery) = message {
            delivery.key_block = delivery.key_block.replacen("K0", "P0", 1);
        }
    });
    assert!(
        reason.contains("not the one the key token signs"),
        "{reason}"
    );

    // Another key index than the token binds.
    let reason = tampered(&mut bench, "INDEX001", |message| {
        if let Message::KeyDelivery(delivery) = message {
            delivery.key_index ^= 1;
        }
    });
    assert!(reason.contains("key index"), "{reason}");

    let reason = tampered(&mut bench, "KCVCONF1", |message| {
        if let Message::Confirm(confirm) = message {
            confirm.kcv[0] ^= 0xFF;
        }
    });
    assert!(reason.contains("KCV_MISMATCH"), "{reason}");

    // A replayed delivery: record one terminal's complete, genuine injection, then answer its
    // next session with the recorded delivery.
    let recorded = std::cell::RefCell::new(None);
    let (config, mut store) = bench.terminal("REPLAY01");
    {
        let mut middle = Middle::new(&mut bench.lines[0], |message| {
            if let Message::KeyDelivery(delivery) = message {
                *recorded.borrow_mut() = Some(delivery.clone());
            }
        });
        let outcome = inject(&mut middle, config.clone(), &mut store)
            .unwrap()
            .outcome;
        assert!(
            matches!(outcome, TerminalOutcome::Injected { .. }),
            "{outcome}"
        );
    }
    let old = recorded.borrow().clone().unwrap();
    // REPLAY01 holds its confirmed key: its next session gets a key only under a grant.
    bench.grant_reinjection("REPLAY01");
    let (_, mut fresh_store) = bench.terminal("REPLAY01");
    let before = bench.used_keys_and_rows();
    let outcome = {
        let mut middle = Middle::new(&mut bench.lines[0], |message| {
            if let Message::KeyDelivery(delivery) = message {
                *delivery = old.clone();
            }
        });
        inject(&mut middle, config, &mut fresh_store)
            .unwrap()
            .outcome
    };
    assert!(
        failure(&outcome).contains("random number is not the one this device sent"),
        "{outcome}"
    );
    assert!(fresh_store.installed().is_none());
    assert_eq!(bench.used_keys_and_rows(), before);

    // One-pass: a recorded key token replayed to the terminal that accepted it is refused by
    // its signing time, which is not after the last one the terminal accepted.
    let recorded = std::cell::RefCell::new(None);
    let (config, mut store) = bench.terminal_asking("REPLAY02", CertificatePass::OnePass);
    {
        let mut middle = Middle::new(&mut bench.lines[0], |message| {
            if let Message::KeyDelivery(delivery) = message {
                *recorded.borrow_mut() = Some(delivery.clone());
            }
        });
        let outcome = inject(&mut middle, config.clone(), &mut store)
            .unwrap()
            .outcome;
        assert!(
            matches!(outcome, TerminalOutcome::Injected { .. }),
            "{outcome}"
        );
    }
    let old = recorded.borrow().clone().unwrap();
    bench.grant_reinjection("REPLAY02");
    let before = bench.used_keys_and_rows();
    let outcome = {
        let mut middle = Middle::new(&mut bench.lines[0], |message| {
            if let Message::KeyDelivery(delivery) = message {
                *delivery = old.clone();
            }
        });
        inject(&mut middle, config, &mut store).unwrap().outcome
    };
    assert!(failure(&outcome).contains("a replay"), "{outcome}");
    assert_eq!(bench.used_keys_and_rows(), before);
}

/// Runs the openssl command-line tool in `directory`; `None` when openssl is not installed.
fn openssl(directory: &Path, arguments: &[&str]) -> Option<()> {
    let output = match std::process::Command::new("openssl")
        .args(arguments)
        .current_dir(directory)
        .output()
    {
        Ok(output) => output,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return None,
        Err(error) => panic!("openssl: {error}"),
    };
    assert!(
        output.status.success(),
        "openssl {arguments:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(())
}

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../pki/tests/fixtures")
        .join(name)
}

/// Everything made by the openssl command-line tool: the three CAs (the pki fixtures), the
/// KDH certificate signed from the daemon's own request, the device certificates and the
/// manufacturer CA's CRL; the appliance and the reference terminal accept and refuse with them
/// exactly as with the project's own.
#[test]
fn certificates_and_a_crl_made_with_openssl_work_end_to_end() {
    let appliance = Appliance::provisioned(4);
    let directory = appliance.directory.path().to_path_buf();
    let run = |arguments: &[&str]| openssl(&directory, arguments);
    std::fs::write(
        directory.join("ext.cnf"),
        "[device_ext]\nbasicConstraints = critical, CA:FALSE\nkeyUsage = critical, keyEncipherment\n\
         [kdh_ext]\nbasicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\n",
    )
    .unwrap();
    // Three device certificates from the manufacturer CA, for the fixture device key.
    for (serial, number) in [
        ("OSSL0001", "0x5101"),
        ("OSSL0002", "0x5102"),
        ("OSSL0003", "0x5103"),
    ] {
        let subject = format!("/CN={serial}/O=keymother test");
        let key = fixture("test-only-device.key");
        if run(&[
            "req",
            "-new",
            "-key",
            key.to_str().unwrap(),
            "-subj",
            &subject,
            "-out",
            &format!("{serial}.csr"),
        ])
        .is_none()
        {
            eprintln!("openssl is not installed; skipping");
            return;
        }
        run(&[
            "x509",
            "-req",
            "-in",
            &format!("{serial}.csr"),
            "-CA",
            fixture("ca-device.pem").to_str().unwrap(),
            "-CAkey",
            fixture("test-only-ca-device.key").to_str().unwrap(),
            "-set_serial",
            number,
            "-days",
            "30",
            "-sha256",
            "-extfile",
            "ext.cnf",
            "-extensions",
            "device_ext",
            "-out",
            &format!("{serial}.pem"),
        ]);
    }
    // The manufacturer CA revokes the second one: `openssl ca -gencrl` over an index listing it.
    let now = time::OffsetDateTime::now_utc();
    let stamp = |at: time::OffsetDateTime| {
        format!(
            "{:02}{:02}{:02}{:02}{:02}{:02}Z",
            at.year() % 100,
            u8::from(at.month()),
            at.day(),
            at.hour(),
            at.minute(),
            at.second()
        )
    };
    std::fs::write(
        directory.join("index.txt"),
        format!(
            "R\t{}\t{}\t5102\tunknown\t/CN=OSSL0002/O=keymother test\n",
            stamp(now + time::Duration::days(30)),
            stamp(now - time::Duration::hours(1))
        ),
    )
    .unwrap();
    std::fs::write(directory.join("crlnumber"), "01\n").unwrap();
    std::fs::write(
        directory.join("ca.cnf"),
        "[ca]\ndefault_ca = this\n[this]\ndatabase = index.txt\ncrlnumber = crlnumber\n\
         default_md = sha256\ndefault_crl_days = 30\n",
    )
    .unwrap();
    run(&[
        "ca",
        "-gencrl",
        "-config",
        "ca.cnf",
        "-cert",
        fixture("ca-device.pem").to_str().unwrap(),
        "-keyfile",
        fixture("test-only-ca-device.key").to_str().unwrap(),
        "-out",
        "device.crl",
    ]);

    let (mut lines, _) = appliance.ports(1);
    let mut text = std::fs::read_to_string(appliance.config_path()).unwrap();
    text.push_str(&format!(
        "[pki]\ndevice_ca = {:?}\nkdh_ca = {:?}\noperator_ca = {:?}\ndevice_crl = {:?}\n",
        fixture("ca-device.pem"),
        fixture("ca-kdh.pem"),
        fixture("ca-operator.pem"),
        directory.join("device.crl"),
    ));
    let _daemon = InProcessDaemon::start(Settings::from_toml(&text, "keymotherd.toml").unwrap());
    let socket = directory.join("control.sock");
    // The KDH CA (openssl) signs the request the daemon made.
    let answer = ask(&socket, serde_json::json!({"command": "kdh-request"}));
    std::fs::write(
        directory.join("kdh.csr"),
        answer["result"]["request"].as_str().unwrap(),
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "kdh.csr",
        "-CA",
        fixture("ca-kdh.pem").to_str().unwrap(),
        "-CAkey",
        fixture("test-only-ca-kdh.key").to_str().unwrap(),
        "-set_serial",
        "0x6101",
        "-days",
        "30",
        "-sha256",
        "-extfile",
        "ext.cnf",
        "-extensions",
        "kdh_ext",
        "-out",
        "kdh.pem",
    ]);
    let answer = ask(
        &socket,
        serde_json::json!({"command": "kdh-install", "certificate": std::fs::read_to_string(directory.join("kdh.pem")).unwrap()}),
    );
    assert_eq!(answer["result"]["certificate_mode"], true, "{answer}");

    let terminal = |serial: &str, pass: CertificatePass| {
        let identity = CertificateIdentity::load(
            &fixture("test-only-device.key"),
            None,
            &directory.join(format!("{serial}.pem")),
            &fixture("ca-kdh.pem"),
        )
        .unwrap()
        .with_pass(pass);
        let mut config = appliance.terminal(serial);
        config.modes = vec![Mode::Certificate];
        (config, appliance.key_store().with_certificate(identity))
    };
    // A two-pass and a one-pass key token.
    for (serial, pass) in [
        ("OSSL0001", CertificatePass::TwoPass),
        ("OSSL0003", CertificatePass::OnePass),
    ] {
        let (config, mut store) = terminal(serial, pass);
        let outcome = inject(&mut lines[0], config, &mut store).unwrap().outcome;
        assert!(
            matches!(outcome, TerminalOutcome::Injected { .. }),
            "{serial}: {outcome}"
        );
    }
    let (config, mut store) = terminal("OSSL0002", CertificatePass::TwoPass);
    let outcome = inject(&mut lines[0], config, &mut store).unwrap().outcome;
    assert!(failure(&outcome).contains("revoked"), "{outcome}");
    let vault = appliance.vault();
    assert_eq!(vault.smn_rows().unwrap().len(), 2);
    assert_eq!(vault.inventory().unwrap().count(KeyState::Available), 2);
}

/// The KDH CA's CRL the appliance attaches to every delivery: a current one that does not list
/// the appliance lets terminals inject; once it lists the appliance's KDH certificate,
/// terminals refuse its deliveries and nothing is dispensed.
#[test]
fn terminals_check_the_kdh_crl_the_appliance_attaches() {
    let pki = TestPki::generate("KDH CRL").unwrap();
    let device_key = PrivateKey::generate(2048).unwrap();
    let bench = Bench::with(4, 1, pki, device_key, |_| Vec::new(), |_| {});
    let status = ask(
        &bench.socket(),
        serde_json::json!({"command": "kdh-status"}),
    );
    assert_eq!(status["result"]["certificate_mode"], true, "{status}");
    let kdh_certificate = bench
        .appliance
        .vault()
        .kdh_status()
        .unwrap()
        .unwrap()
        .certificate
        .unwrap();
    let kdh_serial = serial_of(&kdh_certificate).unwrap();
    let Bench {
        appliance,
        pki,
        daemon,
        device_key_der,
        ..
    } = bench;
    drop(daemon);

    let restart = |revoked: Vec<Vec<u8>>, ports_name: &str| {
        let crl = appliance
            .directory
            .path()
            .join(format!("kdh-{ports_name}.crl"));
        std::fs::write(&crl, pki.crl(Role::KeyDistributionHost, &revoked).unwrap()).unwrap();
        let (lines, _) = appliance.ports(1);
        let files = pki.write_anchors(appliance.directory.path()).unwrap();
        let mut text = std::fs::read_to_string(appliance.config_path()).unwrap();
        text.push_str(&format!(
            "[pki]\ndevice_ca = {:?}\nkdh_ca = {:?}\noperator_ca = {:?}\nkdh_crl = {crl:?}\n",
            files.device_ca, files.kdh_ca, files.operator_ca
        ));
        let daemon = InProcessDaemon::start(Settings::from_toml(&text, "keymotherd.toml").unwrap());
        (lines, daemon)
    };
    let terminal = |serial: &str| {
        let key = PrivateKey::from_pkcs8(&device_key_der, None).unwrap();
        let certificate = pki.device_certificate(serial, &key.public_key()).unwrap();
        let identity = CertificateIdentity::new(
            key,
            &certificate,
            pki.ca_certificate(Role::KeyDistributionHost),
        )
        .unwrap();
        let mut config = appliance.terminal(serial);
        config.modes = vec![Mode::Certificate];
        (config, appliance.key_store().with_certificate(identity))
    };

    let (mut lines, daemon) = restart(Vec::new(), "clean");
    let (config, mut store) = terminal("CRLOK001");
    let outcome = inject(&mut lines[0], config, &mut store).unwrap().outcome;
    assert!(
        matches!(outcome, TerminalOutcome::Injected { .. }),
        "{outcome}"
    );
    drop(daemon);

    let (mut lines, _daemon) = restart(vec![kdh_serial], "revoked");
    let (config, mut store) = terminal("CRLNO001");
    let outcome = inject(&mut lines[0], config, &mut store).unwrap().outcome;
    assert!(failure(&outcome).contains("revoked"), "{outcome}");
    assert!(store.installed().is_none());
    let vault = appliance.vault();
    assert_eq!(
        vault.smn_rows().unwrap().len(),
        1,
        "only the first terminal's key"
    );
    assert_eq!(vault.inventory().unwrap().count(KeyState::Used), 1);
}

/// `[clock] require_trusted`, with a real-time clock (a stand-in of /sys/class/rtc beside the
/// vault) that set the time at boot.
fn clock_vouched_for_by_an_rtc(settings: &mut Settings) {
    let rtc_class = settings.data_dir.parent().unwrap().join("rtc");
    std::fs::create_dir_all(rtc_class.join("rtc0")).unwrap();
    std::fs::write(rtc_class.join("rtc0").join("hctosys"), "1\n").unwrap();
    settings.clock.require_trusted = true;
    settings.clock.rtc_class = rtc_class;
}

#[test]
fn a_clock_nothing_vouches_for_refuses_device_certificates_with_nothing_reserved() {
    let pki = TestPki::generate("clock test").unwrap();
    let device_key = PrivateKey::generate(2048).unwrap();
    let mut bench = Bench::with(
        3,
        1,
        pki,
        device_key,
        |_| Vec::new(),
        clock_vouched_for_by_an_rtc,
    );
    // Booted again without the RTC having set the time (a flat battery, a module removed).
    let rtc_class = bench.settings.clock.rtc_class.clone();
    std::fs::write(rtc_class.join("rtc0").join("hctosys"), "0\n").unwrap();
    bench.restart();
    let certificate = bench
        .pki
        .device_certificate("CLOCK001", &bench.device_key().public_key())
        .unwrap();
    let reason = refused_device_certificate(&mut bench, "CLOCK001", certificate);
    assert!(reason.contains("clock not set"), "{reason}");
    // Vouched for again at the next boot: the same terminal gets its key.
    std::fs::write(rtc_class.join("rtc0").join("hctosys"), "1\n").unwrap();
    bench.restart();
    let (config, mut store) = bench.terminal("CLOCK001");
    let outcome = inject(&mut bench.lines[0], config, &mut store)
        .unwrap()
        .outcome;
    assert!(
        matches!(outcome, TerminalOutcome::Injected { .. }),
        "{outcome}"
    );
}
