//! Injection benchmark: 1, 8 and 16 reference terminals on pseudo-terminals against the real daemon code, in tr31, certificate or profile mode; rate, daemon time, wire bytes, (certificate mode) the RSA share per injection and (profile mode) the daemon's time per key.
//!
//! Run with `scripts/bench-injection` (which builds keymotherd and this binary in release
//! mode); the figures go to docs/BENCHMARKS.md. The daemon runs as its own process.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use keymother_crypto::dukpt::InitialKeyIdentity;
use keymother_crypto::tr31::{KeyBlockProtectionKey, Version};
use keymother_crypto::{KeyAlgorithm, SecretKey};
use keymother_keyfiles::testing::FileLines;
use keymother_keyfiles::{CreatedAt, GenerateOptions, KeyIndex};
use keymother_pki::testing::TestPki;
use keymother_pki::tr34::{Freshness, KeyTokenInput, build_key_token};
use keymother_pki::{PrivateKey, Role};
use keymother_protocol::{Mode, TerminalConfig, TerminalOutcome};
use keymother_terminal::{CertificateIdentity, CountingLine, PtyLine, SoftwareKeyStore, inject};
use keymother_vault::{BdkSource, NewBdk, SecretName, Vault};

const DEVICE: &str = "KM-BENCH-0001";
/// Bits on the wire per byte with 8N1 framing: start, 8 data, stop.
const BITS_PER_BYTE: f64 = 10.0;
const BAUD: f64 = 115_200.0;

#[derive(Parser)]
struct Arguments {
    /// Concurrent terminals to measure, one port each.
    #[arg(long, value_delimiter = ',', default_value = "1,8,16")]
    terminals: Vec<usize>,
    /// Injections per terminal.
    #[arg(long, default_value_t = 25)]
    injections: usize,
    /// TTK algorithm (TR-31 version D for AES, B for TDES).
    #[arg(long, default_value = "AES-256")]
    ttk_algorithm: String,
    /// The keymotherd binary (default: next to this one; scripts/bench-injection builds it).
    #[arg(long)]
    daemon: Option<PathBuf>,
    /// tr31, certificate (RSA-2048 device and KDH keys, a device certificate per terminal),
    /// or profile (a three-key profile: the master key, an AES-128 and a TDES-2KEY DUKPT
    /// initial key; an injection is a whole profile session).
    #[arg(long, default_value = "tr31")]
    mode: Mode,
}

/// Profile mode's profile: the master key, then one DUKPT initial key from each BDK, loaded
/// with these algorithms under these names (random keys: derivation cost does not depend on
/// the key).
const PROFILE_BDKS: [(&str, KeyAlgorithm, &str, &str); 2] = [
    ("PIN", KeyAlgorithm::Aes128, "12345678", "00000000"),
    ("DATA", KeyAlgorithm::Tdes2Key, "FFFF987654", "00000"),
];

/// The keys a profile session delivers: the master key and one per BDK.
const PROFILE_KEYS: usize = 1 + PROFILE_BDKS.len();

/// Certificate mode's parts: the CAs, one device key for every bench terminal (key
/// generation is not what is measured), the KDH CA certificate terminals trust.
struct CertificateBench {
    pki: TestPki,
    device_key_der: zeroize::Zeroizing<Vec<u8>>,
}

struct Measurement {
    terminals: usize,
    injections: usize,
    seconds: f64,
    /// Wall time the daemon spent handling input (vault commits and their fsyncs included).
    busy_nanos: u64,
    /// CPU time (user + system) of the daemon process.
    cpu_nanos: u64,
    wire_bytes: u64,
}

fn main() -> anyhow::Result<()> {
    let arguments = Arguments::parse();
    let ttk_algorithm: KeyAlgorithm = arguments.ttk_algorithm.parse()?;
    let daemon = match &arguments.daemon {
        Some(path) => path.clone(),
        None => std::env::current_exe()?.with_file_name("keymotherd"),
    };
    let certificate = match arguments.mode {
        Mode::Tr31 | Mode::Profile => None,
        Mode::Certificate => Some(CertificateBench {
            pki: TestPki::generate("injection benchmark")?,
            device_key_der: PrivateKey::generate(2048)?.to_pkcs8_der()?,
        }),
    };
    if let Some(certificate) = &certificate {
        rsa_share_basis(certificate)?;
    }
    let profile = arguments.mode == Mode::Profile;
    if profile {
        if ttk_algorithm.family() != keymother_crypto::KeyFamily::Aes {
            bail!(
                "profile mode's AES-128 initial key needs an AES TTK: TR-31 never wraps a key under a weaker one ({ttk_algorithm})"
            );
        }
        dukpt_share_basis(ttk_algorithm)?;
    }
    println!("mode: {}", arguments.mode);
    if profile {
        println!(
            "an injection is one profile session: {PROFILE_KEYS} keys (the master key, AES-128 and TDES-2KEY DUKPT initial keys)"
        );
    }
    println!(
        "terminals | injections | injections/s | daemon CPU per injection | daemon busy time per injection | bytes on the wire per injection | wire time at 115200 baud | CPU / wire time | busy / wire time{}",
        if profile {
            " | daemon CPU per key | daemon busy time per key"
        } else {
            ""
        }
    );
    println!(
        "---|---|---|---|---|---|---|---|---{}",
        if profile { "|---|---" } else { "" }
    );
    for &terminals in &arguments.terminals {
        let measurement = measure(
            &daemon,
            terminals,
            arguments.injections,
            ttk_algorithm,
            arguments.mode,
            certificate.as_ref(),
        )?;
        let per_injection = measurement.injections as f64;
        let cpu_ms = measurement.cpu_nanos as f64 / per_injection / 1e6;
        let busy_ms = measurement.busy_nanos as f64 / per_injection / 1e6;
        let bytes = measurement.wire_bytes as f64 / per_injection;
        let wire_ms = bytes * BITS_PER_BYTE / BAUD * 1e3;
        let per_key = if profile {
            let keys = PROFILE_KEYS as f64;
            format!(" | {:.3} ms | {:.3} ms", cpu_ms / keys, busy_ms / keys)
        } else {
            String::new()
        };
        println!(
            "{} | {} | {:.0} | {cpu_ms:.3} ms | {busy_ms:.3} ms | {bytes:.0} | {wire_ms:.1} ms | {:.1} % | {:.1} %{per_key}",
            measurement.terminals,
            measurement.injections,
            per_injection / measurement.seconds,
            cpu_ms / wire_ms * 100.0,
            busy_ms / wire_ms * 100.0
        );
    }
    Ok(())
}

/// What the daemon does with RSA per certificate-mode injection, timed in this process on
/// the same keys: verifying the device certificate (RSA public operation), sealing (OAEP
/// encryption, a public operation, and the blinded PSS signature with the KDH key, the one
/// private operation). Printed so the share of the daemon's CPU time per injection follows.
fn rsa_share_basis(bench: &CertificateBench) -> anyhow::Result<()> {
    const ROUNDS: u32 = 200;
    let device_key = PrivateKey::from_pkcs8(&bench.device_key_der, None)?;
    let device = bench
        .pki
        .device_certificate("RSA0SHARE", &device_key.public_key())?;
    let anchors = bench.pki.anchors()?;
    let kdh_key = PrivateKey::generate(2048)?;
    let now = std::time::SystemTime::now();
    let day = Duration::from_secs(86_400);
    let kdh = bench.pki.issue(
        Role::KeyDistributionHost,
        Role::KeyDistributionHost,
        "CN=KDH RSA share",
        &kdh_key.public_key(),
        now - day,
        now + day,
    )?;
    let master_key = SecretKey::generate(KeyAlgorithm::Tdes2Key)?;
    let started = Instant::now();
    let mut verified = None;
    for _ in 0..ROUNDS {
        verified = Some(anchors.verify(Role::TerminalDevice, &device, now, None)?);
    }
    let verify = started.elapsed() / ROUNDS;
    let verified = verified.context("no rounds")?;
    let kdh = anchors.verify(Role::KeyDistributionHost, &kdh, now, None)?;
    let nonce = [7u8; 16];
    let started = Instant::now();
    for index in 0..ROUNDS {
        let input = KeyTokenInput {
            kdh_key: &kdh_key,
            kdh: &kdh,
            krd: &verified,
            freshness: Freshness::TwoPass { nonce: &nonce },
            key_index: KeyIndex::new(index).context("key index")?,
            crl: &[],
        };
        build_key_token(&input, &master_key)?;
    }
    let seal = started.elapsed() / ROUNDS;
    println!(
        "RSA work per certificate-mode injection (timed apart, {ROUNDS} rounds): device certificate check {:.3} ms, TR-34 key token (OAEP encrypt + PKCS#1 v1.5 sign + AES-CBC) {:.3} ms, together {:.3} ms",
        verify.as_secs_f64() * 1e3,
        seal.as_secs_f64() * 1e3,
        (verify + seal).as_secs_f64() * 1e3
    );
    Ok(())
}

/// What the daemon does with DUKPT cryptography per initial key, timed in this process: the
/// BDK unsealed (a TR-31 unwrap under an AES-256 key, as the vault's storage key is, and its
/// check value), the initial key of a new device ID derived once with its check value (a
/// resumed reservation derives it again from the record), and the wrap under the TTK (usage
/// B1 with the KS or IK block). Printed so the share of the daemon's CPU time per key follows.
fn dukpt_share_basis(ttk_algorithm: KeyAlgorithm) -> anyhow::Result<()> {
    const ROUNDS: u32 = 2000;
    let storage_key = KeyBlockProtectionKey::new(&SecretKey::generate(KeyAlgorithm::Aes256)?);
    let ttk = KeyBlockProtectionKey::new(&SecretKey::generate(ttk_algorithm)?);
    let ttk_version = Version::for_protection_key(ttk_algorithm.family());
    let mut parts = Vec::new();
    for (name, algorithm, bdk_id, _) in PROFILE_BDKS {
        let identity = InitialKeyIdentity::for_device(
            algorithm.family(),
            u64::from_str_radix(bdk_id, 16)?,
            1,
        )?;
        // Sealed under a header of the same shape as the vault's (version D, one optional block).
        let sealed = storage_key.wrap(
            &identity.key_block_header(Version::D, algorithm),
            &SecretKey::generate(algorithm)?,
        )?;
        let started = Instant::now();
        for _ in 0..ROUNDS {
            let bdk = storage_key.unwrap(&sealed)?.key;
            std::hint::black_box(bdk.kcv());
            let key = identity.derive(&bdk, algorithm)?;
            std::hint::black_box(key.kcv());
            std::hint::black_box(
                ttk.wrap(&identity.key_block_header(ttk_version, algorithm), &key)?,
            );
        }
        parts.push(format!(
            "{name} ({algorithm}) {:.1} µs",
            started.elapsed().as_secs_f64() * 1e6 / f64::from(ROUNDS)
        ));
    }
    println!(
        "DUKPT cryptography per initial key (timed apart, {ROUNDS} rounds: BDK unsealed, initial key derived with its check value, wrapped under the TTK): {}",
        parts.join(", ")
    );
    Ok(())
}

/// One row of the table: a fresh vault and `terminals` ports, the daemon started as its own
/// process, `per_terminal` injections on each port side by side, the daemon's CPU time and
/// its own statistics once it stops. In profile mode an injection is a profile session: the
/// daemon counts its master key, and the vault must hold a DUKPT row for each initial key.
fn measure(
    daemon_path: &Path,
    terminals: usize,
    per_terminal: usize,
    ttk_algorithm: KeyAlgorithm,
    mode: Mode,
    certificate: Option<&CertificateBench>,
) -> anyhow::Result<Measurement> {
    let work = tempfile::tempdir()?;
    let data_dir = work.path().join("data");
    let sessions = terminals * per_terminal;
    let (ttk, mut extra_settings) =
        prepare_vault(work.path(), &data_dir, sessions, ttk_algorithm, certificate)?;
    let profile = mode == Mode::Profile;
    if profile {
        extra_settings.push_str(&load_bdks(&data_dir, sessions)?);
    }
    let (settings, lines) =
        write_settings(work.path(), &data_dir, terminals, &extra_settings, profile)?;
    let daemon = DaemonProcess::start(daemon_path, &settings, terminals)?;
    let cpu_before = cpu_seconds(daemon.id())?;

    let started = Instant::now();
    let wire_bytes = run_terminals(lines, per_terminal, &ttk, mode, certificate)?;
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(daemon.id())? - cpu_before;
    let (injections, busy_nanos) = daemon.stop()?;
    if injections != sessions {
        bail!("{injections} injections confirmed, expected {sessions}");
    }
    if profile {
        let rows = Vault::open(&data_dir)?.dukpt_rows()?.len();
        let expected = sessions * PROFILE_BDKS.len();
        if rows != expected {
            bail!("{rows} DUKPT initial keys confirmed, expected {expected}");
        }
    }
    Ok(Measurement {
        terminals,
        injections,
        seconds,
        busy_nanos,
        cpu_nanos: (cpu * 1e9) as u64,
        wire_bytes,
    })
}

/// Creates the vault in `data_dir` with a KEK and a TTK and imports a key file of `keys`
/// master keys; in certificate mode installs the KDH identity too. Returns the TTK the
/// terminals share and the settings' `[pki]` section (empty in tr31 and profile mode).
fn prepare_vault(
    work: &Path,
    data_dir: &Path,
    keys: usize,
    ttk_algorithm: KeyAlgorithm,
    certificate: Option<&CertificateBench>,
) -> anyhow::Result<(SecretKey, String)> {
    let mut vault = Vault::create(data_dir, &DEVICE.parse().map_err(anyhow::Error::msg)?)?;
    let kek = SecretKey::generate(KeyAlgorithm::Aes256)?;
    let ttk = SecretKey::generate(ttk_algorithm)?;
    vault.install_secret(
        SecretName::Kek,
        &kek,
        &keymother_vault::CeremonyRecord::named(&["Ann Lee", "Raj Patel"])
            .map_err(anyhow::Error::msg)?,
    )?;
    vault.install_secret(
        SecretName::Ttk,
        &ttk,
        &keymother_vault::CeremonyRecord::named(&["Ann Lee", "Raj Patel"])
            .map_err(anyhow::Error::msg)?,
    )?;
    let options = GenerateOptions {
        batch_id: "BENCH-1".parse().map_err(anyhow::Error::msg)?,
        issuer: "BENCH".parse().map_err(anyhow::Error::msg)?,
        algorithm: KeyAlgorithm::Tdes2Key,
        record_count: keys as u32,
        first_index: KeyIndex::new(1).context("index")?,
        device_id: DEVICE.parse().map_err(anyhow::Error::msg)?,
        created: CreatedAt::new(time::OffsetDateTime::now_utc()),
    };
    let file = work.join("batch.keys");
    std::fs::write(&file, FileLines::generated(&kek, &options)?.sealed(&kek))?;
    vault.import_key_file(&file, &mut |_| {})?;
    let pki_section = match certificate {
        Some(certificate) => install_kdh_identity(&mut vault, certificate, work)?,
        None => String::new(),
    };
    Ok((ttk, pki_section))
}

/// The KDH identity as a custodian installs it: request, signed by the KDH CA. Writes the
/// CAs into `work` and returns the settings' `[pki]` section naming them.
fn install_kdh_identity(
    vault: &mut Vault,
    certificate: &CertificateBench,
    work: &Path,
) -> anyhow::Result<String> {
    let request = vault.create_kdh_request(
        &keymother_pki::builder::name(&format!("CN={DEVICE},OU=KDH"))?,
        2048,
        None,
    )?;
    let signed = certificate.pki.sign_kdh_request(&request)?;
    let verified = certificate.pki.anchors()?.verify(
        Role::KeyDistributionHost,
        &signed,
        std::time::SystemTime::now(),
        None,
    )?;
    vault.install_kdh_certificate(&verified, None)?;
    let files = certificate.pki.write_anchors(work)?;
    Ok(format!(
        "[pki]\ndevice_ca = {:?}\nkdh_ca = {:?}\noperator_ca = {:?}\n",
        files.device_ca, files.kdh_ca, files.operator_ca
    ))
}

/// Random BDKs for profile mode, installed as custodians would, each with a range of
/// `sessions` device IDs; returns the settings' `[[profile]]` BENCH.
fn load_bdks(data_dir: &Path, sessions: usize) -> anyhow::Result<String> {
    let mut vault = Vault::open(data_dir)?;
    let last = u32::try_from(sessions)? - 1;
    let mut slots = Vec::new();
    for (name, algorithm, bdk_id, first) in PROFILE_BDKS {
        let width = first.len();
        let record = NewBdk {
            name: name.parse()?,
            bdk_id: bdk_id.parse()?,
            range: format!("{first}-{last:0width$X}").parse()?,
            source: BdkSource::Ceremony,
            replace: false,
            ceremony: Some(
                keymother_vault::CeremonyRecord::named(&["Ann Lee", "Raj Patel"])
                    .map_err(anyhow::Error::msg)?,
            ),
        };
        vault.install_bdk(&record, &SecretKey::generate(algorithm)?, None)?;
        slots.push(format!(
            "{{ bdk = {name:?}, key_type = {:?} }}",
            algorithm.name()
        ));
    }
    Ok(format!(
        "[[profile]]\nname = \"BENCH\"\ndukpt = [{}]\n",
        slots.join(", ")
    ))
}

/// Opens one pseudo-terminal pair per terminal and writes the daemon's settings file with a
/// port on each (offering the profile BENCH in profile mode); returns the file's path and the
/// terminals' ends.
fn write_settings(
    work: &Path,
    data_dir: &Path,
    terminals: usize,
    extra_settings: &str,
    profile: bool,
) -> anyhow::Result<(PathBuf, Vec<PtyLine>)> {
    let mut text = format!(
        // The benchmark measures dispensing, not operator login.
        "data_dir = {:?}\n[control]\nsocket = {:?}\n[operator]\nrequire = false\n",
        data_dir.display().to_string(),
        work.join("control.sock").display().to_string()
    );
    let mut lines = Vec::new();
    for number in 0..terminals {
        let link = work.join(format!("tty{number}"));
        lines.push(PtyLine::open_pair(&link)?);
        text.push_str(&format!(
            "[[port]]\nname = \"bench-{number}\"\npath = {:?}\n",
            link.display().to_string()
        ));
        if profile {
            text.push_str("profiles = [\"BENCH\"]\n");
        }
    }
    text.push_str(extra_settings);
    let settings = work.join("keymotherd.toml");
    std::fs::write(&settings, text)?;
    Ok((settings, lines))
}

/// The real daemon, as its own process, so its CPU time is its own; its log lines are read
/// on a thread of their own.
struct DaemonProcess {
    child: Child,
    log: std::sync::mpsc::Receiver<String>,
}

impl DaemonProcess {
    /// Starts the daemon and waits until it has opened its `ports` ports.
    fn start(daemon_path: &Path, settings: &Path, ports: usize) -> anyhow::Result<Self> {
        let mut child = Command::new(daemon_path)
            .arg("--config")
            .arg(settings)
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", daemon_path.display()))?;
        let log = BufReader::new(child.stderr.take().context("daemon stderr")?);
        let (log_lines, log_receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in log.lines().map_while(Result::ok) {
                if log_lines.send(line).is_err() {
                    break;
                }
            }
        });
        let mut opened = 0;
        while opened < ports {
            let line = log_receiver
                .recv_timeout(Duration::from_secs(10))
                .context("the daemon did not open its ports")?;
            if line.contains("event=port-opened") {
                opened += 1;
            }
        }
        Ok(Self {
            child,
            log: log_receiver,
        })
    }

    fn id(&self) -> u32 {
        self.child.id()
    }

    /// Stops the daemon with SIGTERM and returns the injections it confirmed and the time it
    /// was busy handling input, in nanoseconds, from the statistics it logs as it stops.
    fn stop(mut self) -> anyhow::Result<(usize, u64)> {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.id())?);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)?;
        let mut busy_nanos = None;
        let mut injections = 0;
        while let Ok(line) = self.log.recv_timeout(Duration::from_secs(10)) {
            if line.contains("event=stopped") {
                injections = field(&line, "injections=")? as usize;
                busy_nanos = Some(field(&line, "busy_microseconds=")? * 1000);
                break;
            }
        }
        self.child.wait()?;
        let busy_nanos = busy_nanos.context("the daemon did not report its statistics")?;
        Ok((injections, busy_nanos))
    }
}

impl Drop for DaemonProcess {
    /// A run that fails midway does not leave the daemon running (it would hold the
    /// benchmark's output open); after [`DaemonProcess::stop`] this finds it gone.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `per_terminal` injections one after another on each port, the ports side by side;
/// returns the bytes sent and received on all the lines.
fn run_terminals(
    lines: Vec<PtyLine>,
    per_terminal: usize,
    ttk: &SecretKey,
    mode: Mode,
    certificate: Option<&CertificateBench>,
) -> anyhow::Result<u64> {
    let threads: Vec<_> = lines
        .into_iter()
        .enumerate()
        .map(|(port, line)| {
            let stores = terminal_stores(port, per_terminal, ttk, certificate);
            std::thread::spawn(move || run_port(line, port, stores?, mode))
        })
        .collect();
    let mut wire_bytes = 0;
    for thread in threads {
        wire_bytes += thread
            .join()
            .map_err(|_| anyhow::anyhow!("terminal thread panicked"))??;
    }
    Ok(wire_bytes)
}

/// The key stores of one port's terminals. Certificate mode: each terminal's store with its
/// own device certificate, made before the clock starts.
fn terminal_stores(
    port: usize,
    per_terminal: usize,
    ttk: &SecretKey,
    certificate: Option<&CertificateBench>,
) -> anyhow::Result<Vec<SoftwareKeyStore>> {
    (0..per_terminal)
        .map(|number| {
            let store = SoftwareKeyStore::new(ttk);
            let Some(certificate) = certificate else {
                return Ok(store);
            };
            let key = PrivateKey::from_pkcs8(&certificate.device_key_der, None)?;
            let device = certificate
                .pki
                .device_certificate(&format!("B{port:02}T{number:05}"), &key.public_key())?;
            let identity = CertificateIdentity::new(
                key,
                &device,
                certificate.pki.ca_certificate(Role::KeyDistributionHost),
            )?;
            Ok(store.with_certificate(identity))
        })
        .collect()
}

/// Injects one port's terminals one after another; returns the bytes on the line.
fn run_port(
    line: PtyLine,
    port: usize,
    stores: Vec<SoftwareKeyStore>,
    mode: Mode,
) -> anyhow::Result<u64> {
    let mut line = CountingLine::new(line);
    for (number, mut key_store) in stores.into_iter().enumerate() {
        let config = TerminalConfig {
            hardware_serial: format!("B{port:02}T{number:05}")
                .parse()
                .map_err(|e| anyhow::anyhow!("{e}"))?,
            model: "BENCH".parse().map_err(|e| anyhow::anyhow!("{e}"))?,
            modes: vec![mode],
            ttk_kcv: key_store.transport_key_kcv().as_bytes().to_vec(),
            response_timeout: Duration::from_secs(2),
            max_retries: 3,
            unconfirmed_key: None,
            unconfirmed_dukpt: Vec::new(),
            krd_credential_token: Vec::new(),
        };
        match inject(&mut line, config, &mut key_store)?.outcome {
            TerminalOutcome::Failed { reason } => bail!("injection failed: {reason}"),
            TerminalOutcome::ProfileInjected { dukpt, .. } if dukpt.len() != PROFILE_BDKS.len() => {
                bail!("a profile session ended with {} DUKPT keys", dukpt.len())
            }
            TerminalOutcome::Injected { .. } | TerminalOutcome::ProfileInjected { .. } => {}
        }
    }
    Ok(line.sent + line.received)
}

/// User plus system CPU seconds of process `pid`, from /proc.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let after_name = stat.rsplit_once(')').context("malformed /proc stat")?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    let per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)?.context("CLK_TCK")?;
    Ok(ticks as f64 / per_second as f64)
}

/// The number after `name` in a log line.
fn field(line: &str, name: &str) -> anyhow::Result<u64> {
    let rest = line
        .split(name)
        .nth(1)
        .with_context(|| format!("no {name} in {line:?}"))?;
    Ok(rest.split_whitespace().next().unwrap_or("").parse()?)
}
