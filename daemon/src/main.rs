//! keymotherd: the appliance daemon. Owns the vault and every secret; serves the serial ports.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use keymother_daemon::{Settings, Stats, run};

#[derive(Parser)]
#[command(name = "keymotherd", version, about = "keymother appliance daemon")]
struct Arguments {
    /// The settings file.
    #[arg(long, default_value = "/etc/keymother/keymotherd.toml")]
    config: PathBuf,
    /// Check the settings file and exit (non-zero on any error).
    #[arg(long)]
    check_config: bool,
}

/// Plain stderr logging until issue 4 brings the journal.
struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Info
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            eprintln!("keymotherd {} {}", record.level(), record.args());
        }
    }

    fn flush(&self) {}
}

static LOGGER: StderrLogger = StderrLogger;

fn main() -> ExitCode {
    let arguments = Arguments::parse();
    let _ = log::set_logger(&LOGGER).map(|()| log::set_max_level(log::LevelFilter::Info));
    let settings = match Settings::load(&arguments.config) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("keymotherd: {error}");
            return ExitCode::from(2);
        }
    };
    if arguments.check_config {
        println!("{}: ok", arguments.config.display());
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("keymotherd: cannot start the runtime: {error}");
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
            eprintln!("keymotherd: {error}");
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
