//! `keymother display-preview DIR`: every bench-display screen written as a PNG, to look at a layout without the panel.

use std::path::Path;

use anyhow::Context;
use keymother_display::{gallery, render};

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
    for (name, screen) in gallery() {
        let path = directory.join(format!("{name}.png"));
        std::fs::write(&path, render(&screen).to_png_scaled(scale))
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("{}", path.display());
    }
    Ok(())
}
