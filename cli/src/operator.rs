//! Operator login from the bench (source document 003): the operator's certificate and private key answer keymotherd's challenge over the control socket.
//!
//! `login` asks the daemon for a challenge (one connection), signs it with the time using
//! `keymother_pki::login::sign_login`, and sends certificate, challenge, time and signature
//! back (a second connection). The private key and its passphrase stay in this process and
//! are wiped after use; only public values reach the daemon.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use base64ct::{Base64, Encoding};
use clap::Subcommand;
use keymother_control as api;
use keymother_pki::PkiError;
use keymother_pki::login::{CHALLENGE_LENGTH, LoginKey, sign_login_with};
use zeroize::Zeroizing;

use crate::arguments::argument_error;
use crate::client::call;
use crate::prompt::read_secret;

#[derive(Subcommand)]
pub enum OperatorCommand {
    /// Logs the operator in: signs keymotherd's challenge with the operator's key. A new
    /// login ends the session before it.
    Login {
        /// The operator certificate (PEM or DER), or a PEM bundle: the operator certificate
        /// first, then the intermediate CA certificates up to the operator CA.
        #[arg(long, value_name = "FILE")]
        certificate: PathBuf,
        /// The operator's private key, RSA or EC (P-256, P-384): PKCS#8, PEM or DER, in clear
        /// or encrypted under a passphrase, or an EC key as SEC1 PEM (EC PRIVATE KEY).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// A file whose first line is the key's passphrase. Without it, an encrypted key's
        /// passphrase is asked for without echo (or read from standard input when piped).
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
    },
    /// Ends the operator session.
    Logout,
    /// Who is logged in, until when, and whether a login is required.
    Status {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

/// An operator's certificate and private key, read from files.
pub struct Credential {
    /// As read: PEM or DER.
    pub certificate: Vec<u8>,
    /// RSA, or EC on P-256 or P-384.
    pub key: LoginKey,
}

/// The first line of a passphrase file, without its line ending.
fn passphrase_from_file(path: &Path) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    let bytes = Zeroizing::new(
        std::fs::read(path).map_err(|error| argument_error("--passphrase-file", error))?,
    );
    let line = bytes.split(|&byte| byte == b'\n').next().unwrap_or(&[]);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    Ok(Zeroizing::new(line.to_vec()))
}

impl Credential {
    /// Reads both files. An encrypted key takes its passphrase from `passphrase_file`, or
    /// from the person at the terminal (no echo), or from standard input when piped.
    pub fn load(
        certificate: &Path,
        key: &Path,
        passphrase_file: Option<&Path>,
    ) -> anyhow::Result<Credential> {
        let certificate = std::fs::read(certificate).map_err(|error| {
            argument_error(
                "--certificate",
                format!("{}: {error}", certificate.display()),
            )
        })?;
        let key_name = key.display().to_string();
        let bytes = Zeroizing::new(
            std::fs::read(key)
                .map_err(|error| argument_error("--key", format!("{key_name}: {error}")))?,
        );
        let refused = |error: PkiError| argument_error("--key", format!("{key_name}: {error}"));
        let passphrase = match passphrase_file {
            Some(file) => Some(passphrase_from_file(file)?),
            None => None,
        };
        let key = match LoginKey::read(&bytes, passphrase.as_ref().map(|p| p.as_slice())) {
            Err(PkiError::PassphraseRequired) => {
                let typed = read_secret(&format!("passphrase for {key_name}: "))?;
                LoginKey::read(&bytes, Some(typed.as_bytes())).map_err(refused)?
            }
            other => other.map_err(refused)?,
        };
        Ok(Credential { certificate, key })
    }
}

/// Logs in at the daemon on `socket`: challenge, signature, login. `certificate` is the
/// operator certificate file as read (a PEM bundle sends its intermediates along). The
/// session as the daemon reports it (name, subject, serial, since, until).
pub fn login(
    socket: &Path,
    certificate: &[u8],
    key: &LoginKey,
) -> anyhow::Result<api::SessionReport> {
    let issued = call(socket, api::LoginChallenge {})?;
    let challenge: [u8; CHALLENGE_LENGTH] = hex::decode(&issued.challenge)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| anyhow::anyhow!("keymotherd sent a malformed challenge"))?;
    let signed_at = signing_time(&issued, SystemTime::now());
    let response = sign_login_with(key, certificate, &issued.device_id, &challenge, signed_at)
        .map_err(|error| match error {
            PkiError::KeyMismatch { .. } => argument_error("--key", error),
            other => argument_error("--certificate", other),
        })?;
    call(
        socket,
        api::Login {
            certificate: Base64::encode_string(&response.certificate),
            challenge: hex::encode(response.challenge),
            signed_at: response.signed_at,
            signature: Base64::encode_string(&response.signature),
            intermediates: response
                .intermediates
                .iter()
                .map(|der| Base64::encode_string(der))
                .collect(),
        },
    )
}

/// The time to sign a login with: this machine's clock, or, when it lies more than 30 s
/// from the appliance's (an appliance without a real-time clock whose clock two people set:
/// its own system clock stays wrong, and this command often runs on it), the appliance's
/// time when it issued the challenge (its `expires_at` less the window).
fn signing_time(issued: &api::ChallengeReport, now: SystemTime) -> SystemTime {
    let Ok(expires) = time::OffsetDateTime::parse(
        &issued.expires_at,
        &time::format_description::well_known::Rfc3339,
    ) else {
        return now;
    };
    let appliance =
        SystemTime::from(expires) - std::time::Duration::from_secs(issued.window_seconds);
    let apart = match appliance.duration_since(now) {
        Ok(ahead) => ahead,
        Err(behind) => behind.duration(),
    };
    if apart > std::time::Duration::from_secs(30) {
        eprintln!(
            "this machine's clock is {} s from the appliance's: signing with the appliance's time",
            apart.as_secs()
        );
        appliance
    } else {
        now
    }
}

/// One line about a session: "Ann Operator (certificate serial 41) since ... until ...".
pub fn describe(session: &api::SessionReport) -> String {
    format!(
        "{} (certificate serial {}) since {} until {}",
        session.name, session.serial, session.since, session.until
    )
}

/// What `operator status --json` prints: the operator part of `status`.
#[derive(serde::Serialize)]
struct OperatorSummary<'a> {
    operator: &'a Option<api::SessionReport>,
    operator_required: bool,
    operator_ca: bool,
}

pub fn run(socket: &Path, command: OperatorCommand) -> anyhow::Result<()> {
    match command {
        OperatorCommand::Login {
            certificate,
            key,
            passphrase_file,
        } => {
            let credential = Credential::load(&certificate, &key, passphrase_file.as_deref())?;
            let session = login(socket, &credential.certificate, &credential.key)?;
            println!("logged in: {}", describe(&session));
            Ok(())
        }
        OperatorCommand::Logout => {
            let result = call(socket, api::Logout {})?;
            match &result.logged_out {
                None => println!("no operator was logged in"),
                Some(session) => println!("logged out: {}", describe(session)),
            }
            Ok(())
        }
        OperatorCommand::Status { json } => {
            let status = call(socket, api::Status {})?;
            if json {
                let summary = OperatorSummary {
                    operator: &status.operator,
                    operator_required: status.operator_required,
                    operator_ca: status.operator_ca,
                };
                println!("{}", serde_json::to_string_pretty(&summary)?);
                return Ok(());
            }
            println!("{}", operator_line(&status));
            Ok(())
        }
    }
}

/// The status line about the operator.
pub fn operator_line(status: &api::StatusReport) -> String {
    session_line(
        status.operator.as_ref(),
        status.operator_required,
        status.operator_ca,
    )
}

fn session_line(operator: Option<&api::SessionReport>, required: bool, ca: bool) -> String {
    match operator {
        None if required && !ca => "operator: nobody can log in: no operator CA is \
             configured ([pki] operator_ca), so no key is dispensed"
            .to_owned(),
        None if required => {
            "operator: nobody logged in (login required: no key is dispensed)".to_owned()
        }
        None => "operator: nobody logged in (login not required)".to_owned(),
        Some(session) => format!("operator: {}", describe(session)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_is_signed_with_the_appliances_time_when_this_clock_is_far_off() {
        let issued = |expires_at: &str| api::ChallengeReport {
            challenge: "00".repeat(32),
            device_id: "KM-0001".to_owned(),
            window_seconds: 120,
            expires_at: expires_at.to_owned(),
        };
        let at = |text: &str| {
            SystemTime::from(
                time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                    .unwrap(),
            )
        };
        // Close enough: this machine's own clock.
        let now = at("2026-12-06T10:00:10Z");
        assert_eq!(signing_time(&issued("2026-12-06T10:02:00Z"), now), now);
        // Eight months behind (a Pi without an RTC, its clock set by two people).
        let behind = at("2026-04-13T00:00:00Z");
        assert_eq!(
            signing_time(&issued("2026-12-06T10:02:00Z"), behind),
            at("2026-12-06T10:00:00Z")
        );
        assert_eq!(signing_time(&issued("not a time"), behind), behind);
    }

    /// Runs openssl in `dir` (the image's Debian package; nothing is skipped without it).
    fn openssl(dir: &Path, args: &[&str]) {
        let status = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("the openssl command must be installed");
        assert!(status.status.success(), "openssl {args:?}");
    }

    #[test]
    fn ec_operator_keys_are_read_as_pkcs8_and_sec1_and_sign_a_login() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for (curve, algorithm) in [("P-256", "ECDSA P-256"), ("P-384", "ECDSA P-384")] {
            openssl(
                d,
                &[
                    "genpkey",
                    "-algorithm",
                    "EC",
                    "-pkeyopt",
                    &format!("ec_paramgen_curve:{curve}"),
                    "-out",
                    "op.key",
                ],
            );
            openssl(d, &["ec", "-in", "op.key", "-out", "op.sec1.pem"]);
            openssl(
                d,
                &[
                    "req",
                    "-x509",
                    "-new",
                    "-key",
                    "op.key",
                    "-subj",
                    "/CN=EC Operator",
                    "-days",
                    "2",
                    "-addext",
                    "keyUsage=critical,digitalSignature",
                    "-out",
                    "op.pem",
                ],
            );
            for key in ["op.key", "op.sec1.pem"] {
                let credential = Credential::load(&d.join("op.pem"), &d.join(key), None).unwrap();
                assert_eq!(credential.key.algorithm(), algorithm, "{key}");
                let response = sign_login_with(
                    &credential.key,
                    &credential.certificate,
                    "KM-0001",
                    &[7; CHALLENGE_LENGTH],
                    SystemTime::now(),
                )
                .unwrap();
                assert!(response.intermediates.is_empty());
            }
        }
        // An EC key on another curve is refused, naming the --key file.
        openssl(
            d,
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:secp256k1",
                "-out",
                "k1.key",
            ],
        );
        let error = Credential::load(&d.join("op.pem"), &d.join("k1.key"), None)
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.contains("--key") && error.contains("not accepted for operator login"),
            "{error}"
        );
    }

    #[test]
    fn the_operator_line_says_when_nobody_can_log_in() {
        let line = |required: bool, ca: bool| session_line(None, required, ca);
        assert_eq!(
            line(true, false),
            "operator: nobody can log in: no operator CA is configured ([pki] operator_ca), so no key is dispensed"
        );
        assert_eq!(
            line(true, true),
            "operator: nobody logged in (login required: no key is dispensed)"
        );
        assert_eq!(
            line(false, false),
            "operator: nobody logged in (login not required)"
        );
    }
}
