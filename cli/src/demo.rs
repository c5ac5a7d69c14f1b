//! The demo: key ceremony, the front end's key file, a verified import and the refusals that protect the inventory, an operator login, and injection over serial (tr31, certificate and profile mode).

mod events;
mod profile;
mod screens;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keymother_crypto::component::{self, Component};
use keymother_crypto::{KeyAlgorithm, SecretKey};
use keymother_daemon::{Settings, Stats};
use keymother_keyfiles::DeviceId;
use keymother_pki::testing::{AnchorFiles, TestPki};
use keymother_pki::{PrivateKey, Role};
use keymother_protocol::{CertificatePass, Mode, TerminalConfig, TerminalOutcome};
use keymother_terminal::{PtyLine, SoftwareKeyStore, inject};
use keymother_vault::{CeremonyRecord, SecretName, Vault};

use crate::arguments::argument_error;
use crate::keyfile::{options, write_key_file};
use crate::operator::{Credential, describe, login};
use crate::vault::{import_with_progress, print_inventory, print_report};

const DEVICE_ID: &str = "KM-DEMO-0001";

fn step(title: &str) {
    println!();
    println!("== {title}");
}

/// The demo's custodians, by name (a ceremony records who entered each component).
const DEMO_CUSTODIANS: [&str; 3] = ["Ann Lee", "Raj Patel", "Kim Ng"];

/// Runs a ceremony with freshly generated components; prints check values only.
fn ceremony(
    vault: &mut Vault,
    name: SecretName,
    algorithm: KeyAlgorithm,
    count: usize,
) -> anyhow::Result<()> {
    let components = (0..count)
        .map(|_| Component::generate(algorithm))
        .collect::<Result<Vec<_>, _>>()?;
    for (number, component) in components.iter().enumerate() {
        println!(
            "custodian {} types component {} of {count} ({algorithm}), KCV {}",
            DEMO_CUSTODIANS[number],
            number + 1,
            component.kcv()
        );
    }
    let combined = component::combine(&components, None)?;
    let custodians =
        CeremonyRecord::named(&DEMO_CUSTODIANS[..count]).map_err(anyhow::Error::msg)?;
    let installed = vault.install_secret(name, &combined.key, &custodians)?;
    println!(
        "{name} loaded from {count} components: {} KCV {} (sealed under the device storage key)",
        installed.algorithm, installed.kcv
    );
    Ok(())
}

/// Master keys the demo's terminals take: one each, on every port (the profile port's
/// terminals included: the profile starts with the master key).
fn keys_needed(terminals_per_port: usize) -> usize {
    PORTS * terminals_per_port
}

/// Refuses `--keys` too few for the terminals the demo will run, before anything starts.
fn check_enough_keys(keys: u32, terminals_per_port: usize) -> anyhow::Result<()> {
    let needed = keys_needed(terminals_per_port);
    if usize::try_from(keys).is_ok_and(|keys| keys >= needed) {
        return Ok(());
    }
    let terminals = if needed == 1 { "terminal" } else { "terminals" };
    Err(argument_error(
        "--keys",
        format!(
            "{keys} is too few: the demo injects {needed} {terminals} ({terminals_per_port} on \
             each of its {PORTS} ports, --terminals-per-port), one master key each; give \
             --keys {needed} or more"
        ),
    ))
}

pub fn run(keys: u32, dir: Option<PathBuf>, terminals_per_port: usize) -> anyhow::Result<()> {
    check_enough_keys(keys, terminals_per_port)?;
    let started = Instant::now();
    let temporary = tempfile::tempdir()?;
    // The daemon's settings take absolute paths only: a relative --dir is made absolute
    // here, once, against the current directory.
    let work = match dir {
        Some(dir) => std::path::absolute(&dir)
            .map_err(|error| argument_error("--dir", format!("{}: {error}", dir.display())))?,
        None => temporary.path().to_path_buf(),
    };
    std::fs::create_dir_all(&work)?;
    let data_dir = work.join("vault");
    println!("keymother demo in {}", work.display());

    step("1. the appliance's vault");
    let device_id: DeviceId = DEVICE_ID.parse().map_err(anyhow::Error::msg)?;
    let mut vault = Vault::create(&data_dir, &device_id)?;
    println!(
        "vault created for device {DEVICE_ID} (data directory mode 0700, storage key mode 0600)"
    );

    step("2. key ceremonies (split knowledge, dual control)");
    ceremony(&mut vault, SecretName::Kek, KeyAlgorithm::Aes256, 3)?;
    ceremony(&mut vault, SecretName::Ttk, KeyAlgorithm::Aes256, 2)?;

    step("3. the front end writes a key file for this appliance");
    // The front end holds the same KEK (it was shared by these components); the demo reads
    // it back from the vault to play the front end's part.
    let kek: SecretKey = vault.load_secret(SecretName::Kek)?;
    let key_file = work.join("batch-0001.keys");
    let batch = options(
        "TDES-2KEY",
        keys,
        1,
        DEVICE_ID,
        "DEMO-0001",
        "DEMO ACQUIRER FRONT END",
    )?;
    write_key_file(&key_file, &batch, &kek, true)?;

    step("4. import: seal, every key's check value, duplicates, device binding; all or nothing");
    let report = import_with_progress(&mut vault, &key_file)?;
    print_report(&report);
    print_inventory(&vault.inventory()?);

    step("5. what the vault refuses (each leaves the inventory unchanged)");
    let before = vault.inventory()?;
    let refusals = demo_refusals(&work, &kek, keys)?;
    for (what, path) in refusals {
        match vault.import_key_file(&path, &mut |_| {}) {
            Ok(_) => anyhow::bail!("the vault accepted {what}; it must not"),
            Err(error) => println!("{what}:\n  refused: {error}"),
        }
    }
    anyhow::ensure!(
        vault.inventory()? == before,
        "a refused import changed the inventory"
    );
    println!(
        "inventory unchanged: {}",
        counted(before.total(), "key", "keys")
    );

    step("6. the operator's credential: an operator CA and a certificate for the demo operator");
    let pki = demo_pki(&work)?;

    step(
        "7. injection: the daemon on pseudo-terminal ports, reference terminals on the other ends",
    );
    drop(vault);
    let printed = inject_over_serial(&work, &data_dir, &pki, terminals_per_port)?;
    let injected = printed.injections;

    step("summary");
    let vault = Vault::open(&data_dir)?;
    let inventory = vault.inventory()?;
    let rows = vault.smn_rows()?;
    anyhow::ensure!(
        rows.len() == injected,
        "{injected} injections but {} SMN rows",
        rows.len()
    );
    anyhow::ensure!(
        rows.iter()
            .all(|row| row.operator.as_deref() == Some(DEMO_OPERATOR)),
        "an SMN row does not name the operator"
    );
    println!(
        "{} injected over {PORTS} ports, {} ready for the front end, {} used, {} left, \
         device {DEVICE_ID}, in {:.1?}",
        counted(injected, "terminal", "terminals"),
        counted(rows.len(), "SMN row", "SMN rows"),
        counted(
            inventory.count(keymother_vault::KeyState::Used),
            "key",
            "keys"
        ),
        counted(
            inventory.count(keymother_vault::KeyState::Available),
            "key",
            "keys"
        ),
        started.elapsed()
    );
    report_summary(&vault, rows.len())?;
    profile::summary(
        &vault,
        printed.profiles,
        &port_name(profile::PROFILE_PORT),
        DEMO_OPERATOR,
    )?;
    println!(
        "every injection is recorded under operator {DEMO_OPERATOR} (SMN rows and audit trail)"
    );
    Ok(())
}

/// The report a shift supervisor would read (`keymother report`) over the whole demo, checked
/// against the SMN registry: one line per operator, batch, model and port.
fn report_summary(vault: &Vault, smn_rows: usize) -> anyhow::Result<()> {
    let everything = keymother_vault::ReportPeriod {
        from: "2000-01-01T00:00:00Z".to_owned(),
        to: "9999-12-31T00:00:00Z".to_owned(),
    };
    let report = vault.report(&everything)?;
    anyhow::ensure!(
        report.totals.injections == smn_rows as u64,
        "the report counts {} injections but the registry holds {smn_rows} SMN rows",
        report.totals.injections
    );
    println!("the report over the demo (keymother report), per operator, batch, model and port:");
    for row in &report.rows {
        let group = &row.group;
        let part = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".to_owned());
        println!(
            "  {} {} {} {}: {}, {}, {} pending, {} voided",
            part(&group.operator),
            part(&group.batch_id),
            part(&group.terminal_model),
            part(&group.port),
            counted(row.counts.injections, "injection", "injections"),
            counted(row.counts.failures, "failure", "failures"),
            row.counts.pending,
            row.counts.voided
        );
    }
    println!(
        "  total: {}, as many as the registry's SMN rows",
        counted(report.totals.injections, "injection", "injections")
    );
    Ok(())
}

/// `count` with its noun: "1 key", "2 keys".
fn counted<N: PartialEq + From<u8> + std::fmt::Display>(count: N, one: &str, many: &str) -> String {
    let noun = if count == N::from(1) { one } else { many };
    format!("{count} {noun}")
}

/// The demo operator's name (the certificate's common name).
const DEMO_OPERATOR: &str = "Demo Operator";

/// The demo operator key's passphrase (demo only: it is written next to the key).
const DEMO_PASSPHRASE: &str = "demo-only passphrase";

/// What the demo's `[pki]` needs and the operator's credential, as files in the work directory.
struct DemoPki {
    /// The CAs themselves: the KDH CA signs the appliance's request, the manufacturer CA the
    /// demo terminals' device certificates.
    pki: TestPki,
    anchors: AnchorFiles,
    operator_certificate: PathBuf,
    operator_key: PathBuf,
    passphrase: PathBuf,
}

/// Generates one CA per role (the appliance's trust anchors need all three, each its own)
/// and an operator certificate with its key, encrypted under a passphrase, as an operator
/// would carry them.
fn demo_pki(work: &Path) -> anyhow::Result<DemoPki> {
    let directory = work.join("pki");
    std::fs::create_dir_all(&directory)?;
    let pki = TestPki::generate("keymother demo")?;
    let anchors = pki.write_anchors(&directory)?;
    for (role, path) in [
        (Role::TerminalDevice, &anchors.device_ca),
        (Role::KeyDistributionHost, &anchors.kdh_ca),
        (Role::Operator, &anchors.operator_ca),
    ] {
        println!("{role} CA: {}", path.display());
    }
    let operator_key = PrivateKey::generate(2048)?;
    let certificate = pki.operator_certificate(DEMO_OPERATOR, &operator_key.public_key())?;
    let operator_certificate = directory.join("operator.der");
    std::fs::write(&operator_certificate, &certificate)?;
    let key_path = directory.join("operator.key");
    std::fs::write(
        &key_path,
        operator_key.to_encrypted_pkcs8_pem(DEMO_PASSPHRASE.as_bytes())?,
    )?;
    let passphrase = directory.join("operator.passphrase");
    std::fs::write(&passphrase, format!("{DEMO_PASSPHRASE}\n"))?;
    println!(
        "operator certificate for {DEMO_OPERATOR}: {}, its key encrypted under a passphrase: {}",
        operator_certificate.display(),
        key_path.display()
    );
    Ok(DemoPki {
        pki,
        anchors,
        operator_certificate,
        operator_key: key_path,
        passphrase,
    })
}

/// Ports the demo opens.
const PORTS: usize = 4;

/// The name of port `number` (1-based).
fn port_name(number: usize) -> String {
    format!("bench-{number}")
}

/// How a port's terminals ask for their keys.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PortMode {
    Tr31,
    /// The profile [`profile::PROFILE`]: the master key and two DUKPT initial keys.
    Profile,
    Certificate,
}

impl PortMode {
    /// Port `number` (1-based): the profile port, tr31 on the rest of the first half,
    /// certificate mode on the second half.
    fn of(number: usize) -> PortMode {
        if number == profile::PROFILE_PORT {
            PortMode::Profile
        } else if number > PORTS / 2 {
            PortMode::Certificate
        } else {
            PortMode::Tr31
        }
    }
}

/// Opens pseudo-terminal pairs, starts the real daemon on their slave ends, runs reference
/// terminals on the master ends, and prints each injection as the daemon confirms it.
fn inject_over_serial(
    work: &Path,
    data_dir: &Path,
    pki: &DemoPki,
    terminals_per_port: usize,
) -> anyhow::Result<events::Printed> {
    let socket = work.join("control.sock");
    let (settings, mut lines) = write_settings(work, data_dir, &socket, pki)?;

    let vault = Vault::open(data_dir)?;
    let transport_key = vault.load_secret(SecretName::Ttk)?;
    drop(vault);

    let daemon = DemoDaemon::start(settings)?;
    refuse_before_login(&mut lines[0], &transport_key)?;
    log_in(&socket, pki)?;
    install_kdh_certificate(&socket, pki)?;
    profile::load_bdks(&socket, terminals_per_port)?;
    let (total, profiles, lines) = run_terminals(lines, &transport_key, pki, terminals_per_port)?;
    drop(transport_key);
    // The last injection's INJECTED screen, before the logout locks the display; the lines
    // stay open until then (a closed one is a pulled cable: "no serial port open").
    daemon.screens.wait_for_injected(Duration::from_secs(3));
    log_out(&socket)?;
    drop(lines);
    daemon.save_bench(work)?;
    daemon.stop(total, profiles)
}

/// Opens one pseudo-terminal pair per port and writes the daemon's settings: the vault,
/// the control socket, the demo's trust anchors, operator login required, the device
/// profile, and the ports (one of them offering the profile).
fn write_settings(
    work: &Path,
    data_dir: &Path,
    socket: &Path,
    pki: &DemoPki,
) -> anyhow::Result<(Settings, Vec<PtyLine>)> {
    let mut lines = Vec::new();
    let mut settings_text = format!(
        "data_dir = {:?}\n\n[control]\nsocket = {:?}\n\n\
         [pki]\ndevice_ca = {:?}\nkdh_ca = {:?}\noperator_ca = {:?}\n\n\
         [operator]\nrequire = true\n",
        data_dir.display().to_string(),
        socket.display().to_string(),
        pki.anchors.device_ca.display().to_string(),
        pki.anchors.kdh_ca.display().to_string(),
        pki.anchors.operator_ca.display().to_string(),
    );
    settings_text.push_str(&profile::settings_section());
    for number in 1..=PORTS {
        let link = work.join(format!("ttyBENCH{number}"));
        lines.push(PtyLine::open_pair(&link)?);
        settings_text.push_str(&format!(
            "\n[[port]]\nname = \"{}\"\npath = {:?}\nbaud = 115200\n",
            port_name(number),
            link.display().to_string()
        ));
        if PortMode::of(number) == PortMode::Profile {
            settings_text.push_str(&format!("profiles = [{:?}]\n", profile::PROFILE));
        }
    }
    let settings_path = work.join("keymotherd.toml");
    std::fs::write(&settings_path, &settings_text)?;
    let settings = Settings::load(&settings_path)?;
    println!(
        "settings {} with {PORTS} ports and the device profile {}, operator login required; starting the daemon",
        settings_path.display(),
        profile::PROFILE
    );
    Ok((settings, lines))
}

/// The real daemon running in this process on the demo's ports, with the bench hardware
/// simulated, and a task printing each injection as the daemon confirms it.
struct DemoDaemon {
    runtime: tokio::runtime::Runtime,
    stop: tokio::sync::oneshot::Sender<()>,
    daemon: tokio::task::JoinHandle<Result<(), keymother_daemon::OpenError>>,
    /// Counts the injections and the profiles it printed.
    printer: tokio::task::JoinHandle<events::Printed>,
    signals: keymother_gpio::SimulatedSignals,
    /// Every screen the bench display showed.
    screens: screens::ScreenLog,
}

impl DemoDaemon {
    /// Starts the daemon and waits until it is ready.
    fn start(settings: Settings) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (events, event_stream) = tokio::sync::mpsc::unbounded_channel();
        // The bench hardware, simulated: LEDs and buzzer recorded, screens kept in memory.
        let signals = keymother_gpio::SimulatedSignals::new();
        let screens = screens::ScreenLog::default();
        let daemon = runtime.spawn(keymother_daemon::run_with(
            settings,
            async {
                let _ = stopped.await;
            },
            Some(events),
            Arc::new(Stats::default()),
            keymother_daemon::BenchBackends {
                signals: Some(Box::new(signals.clone())),
                open_signals: None,
                display: Some(screens.sink()),
            },
        ));
        let (ready, daemon_ready) = std::sync::mpsc::channel();
        let profile_ports = (1..=PORTS)
            .filter(|&number| PortMode::of(number) == PortMode::Profile)
            .map(port_name)
            .collect();
        let printer = runtime.spawn(events::print_injections(event_stream, ready, profile_ports));
        daemon_ready
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| anyhow::anyhow!("the daemon did not start"))?;
        Ok(Self {
            runtime,
            stop,
            daemon,
            printer,
            signals,
            screens,
        })
    }

    /// What the bench showed: the screens as PNG files named after what each shows
    /// (`NNN-injected.png`), the buzzer's beeps.
    fn save_bench(&self, work: &Path) -> anyhow::Result<()> {
        let screens = work.join("screens");
        std::fs::create_dir_all(&screens)?;
        let shown = self.screens.save(&screens)?;
        let beeps = self
            .signals
            .signals()
            .iter()
            .filter(|signal| {
                matches!(
                    signal,
                    keymother_gpio::Signal::Beep(keymother_gpio::Beep::Short)
                )
            })
            .count();
        println!(
            "bench (simulated): {shown} {} shown, saved as PNG in {}; {beeps} short {} so far",
            if shown == 1 { "screen" } else { "screens" },
            screens.display(),
            if beeps == 1 { "beep" } else { "beeps" },
        );
        Ok(())
    }

    /// Stops the daemon and checks it confirmed as many injections and profiles as the
    /// terminals made; returns what it printed.
    fn stop(self, total: usize, profiles: usize) -> anyhow::Result<events::Printed> {
        let _ = self.stop.send(());
        self.runtime.block_on(self.daemon)??;
        let printed = self.runtime.block_on(self.printer)?;
        anyhow::ensure!(
            printed.injections == total,
            "{total} terminals injected but the daemon confirmed {}",
            printed.injections
        );
        anyhow::ensure!(
            printed.profiles == profiles,
            "{profiles} terminals received their profile but the daemon confirmed {}",
            printed.profiles
        );
        Ok(printed)
    }
}

/// Before anyone logs in, a terminal is turned away and nothing is reserved.
fn refuse_before_login(line: &mut PtyLine, transport_key: &SecretKey) -> anyhow::Result<()> {
    let mut key_store = SoftwareKeyStore::new(transport_key);
    let early = demo_terminal("9EARLY01", &key_store)?;
    match inject(line, early, &mut key_store)?.outcome {
        TerminalOutcome::Failed { reason } => {
            println!("a terminal asking before any operator logged in:\n  refused: {reason}")
        }
        TerminalOutcome::Injected { .. } | TerminalOutcome::ProfileInjected { .. } => {
            anyhow::bail!("a key was dispensed with no operator logged in")
        }
    }
    Ok(())
}

/// The operator logs in as `keymother operator login` does: the daemon's challenge,
/// signed with the operator's key, over the control socket.
fn log_in(socket: &Path, pki: &DemoPki) -> anyhow::Result<()> {
    let credential = Credential::load(
        &pki.operator_certificate,
        &pki.operator_key,
        Some(&pki.passphrase),
    )?;
    let session = login(socket, &credential.certificate, &credential.key)?;
    drop(credential);
    println!("operator logged in: {}", describe(&session));
    Ok(())
}

/// Certificate mode: the appliance makes its KDH key pair, the KDH CA signs the request,
/// the certificate goes back in, as `keymother kdh request` and `kdh install` do.
fn install_kdh_certificate(socket: &Path, pki: &DemoPki) -> anyhow::Result<()> {
    let request = crate::client::call(socket, keymother_control::KdhRequest::default())?;
    let kdh_certificate = pki.pki.sign_kdh_request(request.request.as_bytes())?;
    let installed = crate::client::call(
        socket,
        keymother_control::KdhInstall {
            certificate: keymother_pki::testing::pem("CERTIFICATE", &kdh_certificate),
        },
    )?;
    println!(
        "KDH certificate installed for {} (key pair made in the vault, request signed by the KDH CA); certificate mode on",
        installed.subject
    );
    Ok(())
}

/// Runs `terminals_per_port` reference terminals one after another on each port, the ports
/// side by side: tr31 terminals and the profile terminals on the first half, certificate-mode
/// terminals on the rest. Returns how many were injected, and how many of them received the
/// whole profile.
fn run_terminals(
    lines: Vec<PtyLine>,
    transport_key: &SecretKey,
    pki: &DemoPki,
    terminals_per_port: usize,
) -> anyhow::Result<(usize, usize, Vec<PtyLine>)> {
    println!(
        "port bench-1: tr31 terminals (the key under the shared TTK); bench-{}: {} terminals in profile mode (profile {}: the master key, a PIN key from BDK PIN and a data key from BDK DATA, each under the TTK); bench-3, bench-4: REF-PINPAD-X509 terminals with device certificates (certificate mode: TR-34 key tokens, two-pass on bench-3, one-pass on bench-4)",
        profile::PROFILE_PORT,
        profile::PROFILE_MODEL,
        profile::PROFILE
    );
    // One device key for every demo terminal (each has its own certificate): key generation
    // is not what the demo shows.
    let device_key = PrivateKey::generate(2048)?.to_pkcs8_der()?;

    let terminals: Vec<_> = lines
        .into_iter()
        .enumerate()
        .map(|(port, line)| {
            // Serials in the style of the source document's example, 123L013K.
            let serials: Vec<String> = (0..terminals_per_port)
                .map(|number| format!("{}{:02}L{:03}K", port + 1, number, 13 + number))
                .collect();
            let mode = PortMode::of(port + 1);
            let stores = serials
                .iter()
                .map(|serial| {
                    // bench-3 asks for two-pass TR-34 key tokens, bench-4 for one-pass ones.
                    let pass = (mode == PortMode::Certificate).then_some(if port + 1 == 4 {
                        CertificatePass::OnePass
                    } else {
                        CertificatePass::TwoPass
                    });
                    terminal_key_store(serial, transport_key, pass, &device_key, pki)
                })
                .collect::<anyhow::Result<Vec<SoftwareKeyStore>>>();
            std::thread::spawn(move || {
                let mut line = line;
                let outcome = stores.and_then(|stores| run_port(&mut line, serials, stores, mode));
                (outcome, line)
            })
        })
        .collect();
    let (mut total, mut profiles, mut lines) = (0, 0, Vec::new());
    for terminal in terminals {
        let (outcome, line) = terminal
            .join()
            .map_err(|_| anyhow::anyhow!("a terminal thread panicked"))?;
        let (done, with_profile) = outcome?;
        total += done;
        profiles += with_profile;
        lines.push(line);
    }
    // Kept open by the caller until the bench has shown the last injection.
    Ok((total, profiles, lines))
}

/// A demo terminal's key store: the shared TTK, and in certificate mode (`pass`: the key
/// tokens it asks for) the terminal's own device certificate, issued for its serial by the
/// demo's device CA.
fn terminal_key_store(
    serial: &str,
    transport_key: &SecretKey,
    pass: Option<CertificatePass>,
    device_key: &[u8],
    pki: &DemoPki,
) -> anyhow::Result<SoftwareKeyStore> {
    let store = SoftwareKeyStore::new(transport_key);
    let Some(pass) = pass else {
        return Ok(store);
    };
    let key = PrivateKey::from_pkcs8(device_key, None)?;
    let device = pki.pki.device_certificate(serial, &key.public_key())?;
    let identity = keymother_terminal::CertificateIdentity::new(
        key,
        &device,
        pki.pki.ca_certificate(Role::KeyDistributionHost),
    )?
    .with_pass(pass);
    Ok(store.with_certificate(identity))
}

/// Injects the terminals of one port one after another; any failure ends the port's run.
/// Returns how many were injected and how many of them received a whole profile (each
/// DUKPT key confirmed and kept by the terminal).
fn run_port(
    line: &mut PtyLine,
    serials: Vec<String>,
    stores: Vec<SoftwareKeyStore>,
    mode: PortMode,
) -> anyhow::Result<(usize, usize)> {
    let (mut done, mut profiles) = (0, 0);
    for (serial, mut key_store) in serials.into_iter().zip(stores) {
        let mut config = demo_terminal(&serial, &key_store)?;
        let model = match mode {
            PortMode::Tr31 => None,
            PortMode::Certificate => {
                config.modes = vec![Mode::Certificate];
                Some("REF-PINPAD-X509")
            }
            PortMode::Profile => {
                config.modes = vec![Mode::Profile, Mode::Tr31];
                Some(profile::PROFILE_MODEL)
            }
        };
        if let Some(model) = model {
            config.model = model.parse().map_err(|error| anyhow::anyhow!("{error}"))?;
        }
        match inject(line, config, &mut key_store)?.outcome {
            TerminalOutcome::Injected { .. } if mode != PortMode::Profile => done += 1,
            TerminalOutcome::ProfileInjected { dukpt, .. } if mode == PortMode::Profile => {
                let kept = key_store.dukpt_keys();
                anyhow::ensure!(
                    kept.len() == dukpt.len() && kept.iter().all(|key| key.is_confirmed()),
                    "terminal {serial} does not hold its {} DUKPT keys",
                    dukpt.len()
                );
                done += 1;
                profiles += 1;
            }
            TerminalOutcome::Failed { reason } => {
                anyhow::bail!("terminal {serial} failed: {reason}");
            }
            other => anyhow::bail!("terminal {serial} ended in another mode: {other}"),
        }
    }
    Ok((done, profiles))
}

/// The operator logs out over the control socket.
fn log_out(socket: &Path) -> anyhow::Result<()> {
    let ended = crate::client::call(socket, keymother_control::Logout {})?;
    match &ended.logged_out {
        Some(session) => println!("operator logged out: {}", describe(session)),
        None => println!("operator logged out: the session had already ended"),
    }
    Ok(())
}

/// A reference terminal's settings.
fn demo_terminal(serial: &str, key_store: &SoftwareKeyStore) -> anyhow::Result<TerminalConfig> {
    Ok(TerminalConfig {
        hardware_serial: serial.parse().map_err(|error| anyhow::anyhow!("{error}"))?,
        model: "REF-PINPAD-1"
            .parse()
            .map_err(|error| anyhow::anyhow!("{error}"))?,
        modes: vec![Mode::Tr31],
        ttk_kcv: key_store.transport_key_kcv().as_bytes().to_vec(),
        response_timeout: Duration::from_millis(500),
        max_retries: 5,
        unconfirmed_key: None,
        unconfirmed_dukpt: Vec::new(),
        krd_credential_token: Vec::new(),
    })
}

/// Files the vault must refuse: the same batch again, a tampered copy, a file for another
/// appliance, and one with an index already in the inventory.
fn demo_refusals(
    work: &std::path::Path,
    kek: &SecretKey,
    keys: u32,
) -> anyhow::Result<Vec<(&'static str, PathBuf)>> {
    let original = work.join("batch-0001.keys");

    let fresh = work.join("batch-0004.keys");
    let batch = options(
        "TDES-2KEY",
        keys,
        keys + 100,
        DEVICE_ID,
        "DEMO-0004",
        "DEMO ACQUIRER FRONT END",
    )?;
    write_key_file(&fresh, &batch, kek, false)?;
    let tampered = work.join("batch-0004-tampered.keys");
    let mut bytes = std::fs::read(&fresh)?;
    let middle = bytes.len() / 2;
    bytes[middle] = if bytes[middle] == b'0' { b'1' } else { b'0' };
    std::fs::write(&tampered, bytes)?;

    let other_device = work.join("batch-0002-other-device.keys");
    let batch = options(
        "TDES-2KEY",
        10,
        keys + 1,
        "KM-OTHER-0002",
        "DEMO-0002",
        "DEMO ACQUIRER FRONT END",
    )?;
    write_key_file(&other_device, &batch, kek, false)?;

    let overlapping = work.join("batch-0003-overlap.keys");
    let batch = options(
        "TDES-2KEY",
        10,
        keys.saturating_sub(4).max(1),
        DEVICE_ID,
        "DEMO-0003",
        "DEMO ACQUIRER FRONT END",
    )?;
    write_key_file(&overlapping, &batch, kek, false)?;

    Ok(vec![
        ("the same file again", original),
        ("a copy with one byte changed in transit", tampered),
        ("a file made for another appliance", other_device),
        (
            "a file reusing key indexes already in the inventory",
            overlapping,
        ),
    ])
}
