//! `keymother display-preview DIR`: every bench-display screen written as a PNG, to look at a layout without the panel.

use std::path::Path;

use anyhow::Context;
use keymother_daemon::events::{InjectionFailureCause, UnconfirmedDelivery};
use keymother_daemon::screen::not_confirmed_screen;
use keymother_display::{Screen, gallery, render};

use crate::arguments::argument_error;

/// Writes `<name>.png` for every screen of the gallery into `directory` (created if
/// missing), each pixel enlarged `scale` times, and prints each file's path.
pub fn run(directory: &Path, scale: u32) -> anyhow::Result<()> {
    if directory.exists() && !directory.is_dir() {
        return Err(argument_error(
            "DIR",
            format!("{} exists and is not a directory", directory.display()),
        ));
    }
    std::fs::create_dir_all(directory).map_err(|error| {
        argument_error(
            "DIR",
            format!(
                "cannot create the directory {}: {error}",
                directory.display()
            ),
        )
    })?;
    for (name, screen) in screens() {
        let path = directory.join(format!("{name}.png"));
        std::fs::write(&path, render(&screen).to_png_scaled(scale))
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("{}", path.display());
    }
    Ok(())
}

/// The gallery's screens, `error-long` drawn by the daemon's own screen for a terminal that
/// stopped answering after its key was delivered (the daemon checks the two are the same).
fn screens() -> Vec<(&'static str, Screen)> {
    gallery()
        .into_iter()
        .map(|(name, screen)| match (name, stopped_answering()) {
            ("error-long", Some(delivery)) => (name, not_confirmed_screen(&delivery)),
            _ => (name, screen),
        })
        .collect()
}

/// The example failure: key 00000279 delivered to 123L013K on bench-3, never confirmed.
fn stopped_answering() -> Option<UnconfirmedDelivery> {
    Some(UnconfirmedDelivery {
        port: "bench-3".to_owned(),
        hardware_serial: "123L013K".parse().ok()?,
        key_index: keymother_domain::KeyIndex::new(279),
        cause: InjectionFailureCause::IdleTimeout,
    })
}
