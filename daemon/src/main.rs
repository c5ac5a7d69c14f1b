//! keymotherd: the appliance daemon. Owns the vault and every secret; serves the serial ports.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use keymother_daemon::config::LogTarget;
use keymother_daemon::trust::Trust;
use keymother_daemon::{Settings, Stats, run};

#[derive(Parser)]
#[command(name = "keymotherd", version, about = "keymother appliance daemon")]
struct Arguments {
    /// The settings file.
    #[arg(long, default_value = "/etc/keymother/keymotherd.toml")]
    config: PathBuf,
    /// Check a settings file (PATH, or the one --config names) with its drop-ins and the CA
    /// and CRL files its [pki] section names, and exit: non-zero with file, line and key on
    /// any error; warnings (e.g. operator login required without [pki]) go to stderr.
    #[arg(long, value_name = "PATH", num_args = 0..=1)]
    check_config: Option<Option<PathBuf>>,
}

/// Writes one line to standard error, ignoring failure: `eprintln!` panics when the write
/// fails, and a reader that went away (a closed pipe: EPIPE, since Rust ignores SIGPIPE) must
/// not take the daemon down with it. The line is written whole, in one call where it can be.
fn say(line: std::fmt::Arguments<'_>) {
    let mut text = line.to_string();
    text.push('\n');
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// Logging to stderr when the journal is not there: the message, then its structured fields.
/// Nothing is lost but the line when standard error is gone (see [`say`]).
struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        struct Fields(String);
        impl<'kvs> log::kv::VisitSource<'kvs> for Fields {
            fn visit_pair(
                &mut self,
                key: log::kv::Key<'kvs>,
                value: log::kv::Value<'kvs>,
            ) -> Result<(), log::kv::Error> {
                self.0.push_str(&format!(" {key}={value}"));
                Ok(())
            }
        }
        let mut fields = Fields(String::new());
        let _ = record.key_values().visit(&mut fields);
        say(format_args!(
            "keymotherd {} {}{}",
            record.level(),
            record.args(),
            fields.0
        ));
    }

    fn flush(&self) {}
}

static LOGGER: StderrLogger = StderrLogger;

/// The journal when keymotherd runs under systemd (structured fields: PORT, KEY_INDEX, SMN,
/// HW_SERIAL, OPERATOR, BATCH, EVENT), plain stderr otherwise.
fn start_logging(target: LogTarget, level: log::LevelFilter) {
    log::set_max_level(level);
    let journal = match target {
        LogTarget::Journal => true,
        LogTarget::Stderr => false,
        LogTarget::Auto => systemd_journal_logger::connected_to_journal(),
    };
    if journal {
        match systemd_journal_logger::JournalLog::new() {
            Ok(journal) => {
                if journal
                    .with_syslog_identifier("keymotherd".to_owned())
                    .install()
                    .is_ok()
                {
                    return;
                }
            }
            Err(error) => say(format_args!(
                "keymotherd: the journal is not usable ({error}); logging to stderr"
            )),
        }
    }
    let _ = log::set_logger(&LOGGER);
}

/// Process hardening before any secret is touched: nothing the process holds may reach a
/// core dump, swap or another process's ptrace. Failures are logged and the daemon goes on:
/// the unit's own limits (LimitCORE=0, LimitMEMLOCK) back these up.
fn harden() {
    use nix::sys::mman::{MlockAllFlags, mlockall};
    use nix::sys::resource::{Resource, setrlimit};
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    if let Err(error) = setrlimit(Resource::RLIMIT_CORE, 0, 0) {
        log::warn!(event = "hardening"; "could not disable core dumps: {error}");
    }
    if let Err(error) = nix::sys::prctl::set_dumpable(false) {
        log::warn!(event = "hardening"; "could not clear the dumpable flag: {error}");
    }
    // Every page, present and future, is locked; MCL_ONFAULT locks each as it is first
    // touched instead of faulting in every mapping whole (the executable, each thread's stack
    // reservation): locked pages are never swapped either way (docs/SECURITY.md). A kernel
    // before Linux 4.4 refuses the flag (EINVAL): then everything is locked at once.
    let every_page = MlockAllFlags::MCL_CURRENT | MlockAllFlags::MCL_FUTURE;
    let locked =
        match mlockall(every_page | MlockAllFlags::from_bits_retain(nix::libc::MCL_ONFAULT)) {
            Err(nix::errno::Errno::EINVAL) => mlockall(every_page),
            locked => locked,
        };
    if let Err(error) = locked {
        log::warn!(event = "hardening"; "could not lock memory against swapping: {error} (raise LimitMEMLOCK)");
    }
    if nix::unistd::geteuid().is_root() {
        log::warn!(event = "hardening"; "running as root; the shipped unit runs keymotherd as the keymother user");
    }
}

fn main() -> ExitCode {
    let arguments = Arguments::parse();
    let config = match &arguments.check_config {
        Some(Some(path)) => path.clone(),
        _ => arguments.config.clone(),
    };
    // --check-config also checks what only this machine can tell (the control group exists,
    // no device is two ports); see Settings::check.
    let loaded = if arguments.check_config.is_some() {
        Settings::check(&config)
    } else {
        Settings::load(&config)
    };
    let settings = match loaded {
        Ok(settings) => settings,
        Err(error) => {
            say(format_args!("keymotherd: {error}"));
            return ExitCode::from(2);
        }
    };
    if arguments.check_config.is_some() {
        // Accepted, but worth saying: e.g. factory settings that can never dispense.
        for warning in settings.warnings() {
            say(format_args!("keymotherd: warning: {warning}"));
        }
        // The CA and CRL files [pki] names are part of the settings: read and check them too.
        if let Some(pki) = &settings.pki {
            match Trust::load(pki, std::time::SystemTime::now()) {
                Ok(trust) => {
                    for warning in &trust.warnings {
                        say(format_args!("keymotherd: warning: {warning}"));
                    }
                }
                Err(error) => {
                    say(format_args!("keymotherd: {error}"));
                    return ExitCode::from(2);
                }
            }
        }
        // Like `say`, on standard output: `--check-config | head` must not panic.
        let _ = writeln!(std::io::stdout(), "{}: ok", config.display());
        return ExitCode::SUCCESS;
    }
    start_logging(settings.log_target, settings.log_level);
    harden();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            say(format_args!(
                "keymotherd: cannot start the runtime: {error}"
            ));
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(
        settings,
        shutdown_signal(),
        None,
        Arc::new(Stats::default()),
    ));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            say(format_args!("keymotherd: {error}"));
            ExitCode::FAILURE
        }
    }
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut terminate), Ok(mut interrupt)) => {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = interrupt.recv() => {}
            }
        }
        _ => std::future::pending::<()>().await,
    }
}
