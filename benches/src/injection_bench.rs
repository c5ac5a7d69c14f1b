//! Injection benchmark: 1, 8 and 16 reference terminals on pseudo-terminals against the real daemon code, in tr31 or certificate mode; rate, daemon time, wire bytes and (certificate mode) the RSA share per injection.
//!
//! Run with `scripts/bench-injection` (which builds keymotherd and this binary in release
//! mode); the figures go to docs/BENCHMARKS.md. The daemon runs as its own process.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use keymother_crypto::{KeyAlgorithm, SecretKey};
use keymother_keyfiles::testing::FileLines;
use keymother_keyfiles::{CreatedAt, GenerateOptions, KeyIndex};
use keymother_pki::key_transport::{DeliveryContext, seal_for_terminal};
use keymother_pki::testing::TestPki;
use keymother_pki::{PrivateKey, Role};
use keymother_protocol::{Mode, TerminalConfig, TerminalOutcome};
use keymother_terminal::{CertificateIdentity, CountingLine, PtyLine, SoftwareKeyStore, inject};
use keymother_vault::{SecretName, Vault};

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
    /// tr31, or certificate (RSA-2048 device and KDH keys, a device certificate per terminal).
    #[arg(long, default_value = "tr31")]
    mode: Mode,
}

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
        Mode::Tr31 => None,
        Mode::Certificate => Some(CertificateBench {
            pki: TestPki::generate("injection benchmark")?,
            device_key_der: PrivateKey::generate(2048)?.to_pkcs8_der()?,
        }),
        other => bail!("the benchmark runs tr31 or certificate mode, not {other}"),
    };
    if let Some(certificate) = &certificate {
        rsa_share_basis(certificate)?;
    }
    println!("mode: {}", arguments.mode);
    println!(
        "terminals | injections | injections/s | daemon CPU per injection | daemon busy time per injection | bytes on the wire per injection | wire time at 115200 baud | CPU / wire time | busy / wire time"
    );
    println!("---|---|---|---|---|---|---|---|---");
    for &terminals in &arguments.terminals {
        let measurement = measure(
            &daemon,
            terminals,
            arguments.injections,
            ttk_algorithm,
            certificate.as_ref(),
        )?;
        let per_injection = measurement.injections as f64;
        let cpu_ms = measurement.cpu_nanos as f64 / per_injection / 1e6;
        let busy_ms = measurement.busy_nanos as f64 / per_injection / 1e6;
        let bytes = measurement.wire_bytes as f64 / per_injection;
        let wire_ms = bytes * BITS_PER_BYTE / BAUD * 1e3;
        println!(
            "{} | {} | {:.0} | {cpu_ms:.3} ms | {busy_ms:.3} ms | {bytes:.0} | {wire_ms:.1} ms | {:.1} % | {:.1} %",
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
    let master_key = SecretKey::generate(KeyAlgorithm::Tdes2Key)?;
    let now = std::time::SystemTime::now();
    let started = Instant::now();
    let mut verified = None;
    for _ in 0..ROUNDS {
        verified = Some(anchors.verify(Role::TerminalDevice, &device, now, None)?);
    }
    let verify = started.elapsed() / ROUNDS;
    let verified = verified.context("no rounds")?;
    let nonce = [7u8; 32];
    let started = Instant::now();
    for index in 0..ROUNDS {
        let context = DeliveryContext {
            hardware_serial: "RSA0SHARE",
            nonce: &nonce,
            key_index: index,
        };
        seal_for_terminal(&kdh_key, &verified, &context, &master_key, &[])?;
    }
    let seal = started.elapsed() / ROUNDS;
    println!(
        "RSA work per certificate-mode injection (timed apart, {ROUNDS} rounds): device certificate check {:.3} ms, seal (OAEP encrypt + blinded PSS sign + TR-31 wrap) {:.3} ms, together {:.3} ms",
        verify.as_secs_f64() * 1e3,
        seal.as_secs_f64() * 1e3,
        (verify + seal).as_secs_f64() * 1e3
    );
    Ok(())
}

fn measure(
    daemon_path: &Path,
    terminals: usize,
    per_terminal: usize,
    ttk_algorithm: KeyAlgorithm,
    certificate: Option<&CertificateBench>,
) -> anyhow::Result<Measurement> {
    let work = tempfile::tempdir()?;
    let data_dir = work.path().join("data");
    let mut vault = Vault::create(&data_dir, &DEVICE.parse().map_err(anyhow::Error::msg)?)?;
    let kek = SecretKey::generate(KeyAlgorithm::Aes256)?;
    let ttk = SecretKey::generate(ttk_algorithm)?;
    vault.install_secret(SecretName::Kek, &kek, 2)?;
    vault.install_secret(SecretName::Ttk, &ttk, 2)?;
    let options = GenerateOptions {
        batch_id: "BENCH-1".parse().map_err(anyhow::Error::msg)?,
        issuer: "BENCH".parse().map_err(anyhow::Error::msg)?,
        algorithm: KeyAlgorithm::Tdes2Key,
        record_count: (terminals * per_terminal) as u32,
        first_index: KeyIndex::new(1).context("index")?,
        device_id: DEVICE.parse().map_err(anyhow::Error::msg)?,
        created: CreatedAt::new(time::OffsetDateTime::now_utc()),
    };
    let file = work.path().join("batch.keys");
    std::fs::write(&file, FileLines::generated(&kek, &options)?.sealed(&kek))?;
    vault.import_key_file(&file, &mut |_| {})?;
    let mut pki_section = String::new();
    if let Some(certificate) = certificate {
        // The KDH identity as a custodian installs it: request, signed by the KDH CA.
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
        let files = certificate.pki.write_anchors(work.path())?;
        pki_section = format!(
            "[pki]\ndevice_ca = {:?}\nkdh_ca = {:?}\noperator_ca = {:?}\n",
            files.device_ca, files.kdh_ca, files.operator_ca
        );
    }
    drop(vault);

    let mut text = format!(
        // The benchmark measures dispensing, not operator login.
        "data_dir = {:?}\n[control]\nsocket = {:?}\n[operator]\nrequire = false\n",
        data_dir.display().to_string(),
        work.path().join("control.sock").display().to_string()
    );
    let mut lines = Vec::new();
    for number in 0..terminals {
        let link = work.path().join(format!("tty{number}"));
        lines.push(PtyLine::open_pair(&link)?);
        text.push_str(&format!(
            "[[port]]\nname = \"bench-{number}\"\npath = {:?}\n",
            link.display().to_string()
        ));
    }
    text.push_str(&pki_section);
    let settings = work.path().join("keymotherd.toml");
    std::fs::write(&settings, text)?;

    // The real daemon, as its own process, so its CPU time is its own.
    let mut daemon = Command::new(daemon_path)
        .arg("--config")
        .arg(&settings)
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", daemon_path.display()))?;
    let log = BufReader::new(daemon.stderr.take().context("daemon stderr")?);
    let (log_lines, log_receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in log.lines().map_while(Result::ok) {
            if log_lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut opened = 0;
    while opened < terminals {
        let line = log_receiver
            .recv_timeout(Duration::from_secs(10))
            .context("the daemon did not open its ports")?;
        if line.contains("event=port-opened") {
            opened += 1;
        }
    }
    let cpu_before = cpu_seconds(daemon.id())?;

    let started = Instant::now();
    let threads: Vec<_> = lines
        .into_iter()
        .enumerate()
        .map(|(port, line)| {
            // Certificate mode: each terminal's store with its own device certificate, made
            // before the clock starts.
            let stores = (0..per_terminal)
                .map(|number| {
                    let store = SoftwareKeyStore::new(&ttk);
                    let Some(certificate) = certificate else {
                        return Ok(store);
                    };
                    let key = PrivateKey::from_pkcs8(&certificate.device_key_der, None)?;
                    let device = certificate.pki.device_certificate(
                        &format!("B{port:02}T{number:05}"),
                        &key.public_key(),
                    )?;
                    let identity = CertificateIdentity::new(
                        key,
                        &device,
                        certificate.pki.ca_certificate(Role::KeyDistributionHost),
                    )?;
                    Ok(store.with_certificate(identity))
                })
                .collect::<anyhow::Result<Vec<SoftwareKeyStore>>>();
            let mode = if certificate.is_some() {
                Mode::Certificate
            } else {
                Mode::Tr31
            };
            std::thread::spawn(move || -> anyhow::Result<u64> {
                let mut line = CountingLine::new(line);
                for (number, mut key_store) in stores?.into_iter().enumerate() {
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
                        device_certificate: Vec::new(),
                    };
                    if let TerminalOutcome::Failed { reason } =
                        inject(&mut line, config, &mut key_store)?.outcome
                    {
                        bail!("injection failed: {reason}");
                    }
                }
                Ok(line.sent + line.received)
            })
        })
        .collect();
    let mut wire_bytes = 0;
    for thread in threads {
        wire_bytes += thread
            .join()
            .map_err(|_| anyhow::anyhow!("terminal thread panicked"))??;
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(daemon.id())? - cpu_before;
    let pid = nix::unistd::Pid::from_raw(i32::try_from(daemon.id())?);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)?;
    let mut busy_nanos = None;
    let mut injections = 0;
    while let Ok(line) = log_receiver.recv_timeout(Duration::from_secs(10)) {
        if line.contains("event=stopped") {
            injections = field(&line, "injections=")? as usize;
            busy_nanos = Some(field(&line, "busy_microseconds=")? * 1000);
            break;
        }
    }
    daemon.wait()?;
    let busy_nanos = busy_nanos.context("the daemon did not report its statistics")?;
    if injections != terminals * per_terminal {
        bail!(
            "{injections} injections confirmed, expected {}",
            terminals * per_terminal
        );
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
