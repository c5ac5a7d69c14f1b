//! `keymother display-preview DIR`: one PNG per bench-display screen, the directory made if missing, clear refusals, and the README's copies up to date.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

use keymother_display::{Framebuffer, gallery, render};

/// The files the command writes, as the README documents them.
const DOCUMENTED: [&str; 13] = [
    "booting.png",
    "locked-no-keys.png",
    "locked-no-operator.png",
    "locked-tampered.png",
    "locked-zeroized.png",
    "ready.png",
    "ready-no-login.png",
    "injecting.png",
    "injected.png",
    "error.png",
    "error-long.png",
    "low-inventory.png",
    "tamper.png",
];

fn keymother(arguments: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keymother"))
        .args(arguments)
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn files_in(directory: &Path) -> BTreeSet<String> {
    std::fs::read_dir(directory)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// Pixel rows and size of a PNG.
fn decode(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
        .read_info()
        .unwrap();
    let mut data = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut data).unwrap();
    data.truncate(info.buffer_size());
    (info.width, info.height, data)
}

#[test]
fn writes_every_screen_into_a_new_directory() {
    let temporary = tempfile::tempdir().unwrap();
    let directory = temporary.path().join("not/yet/there");
    let output = keymother(&["display-preview", directory.to_str().unwrap()]);
    assert!(output.status.success(), "stderr: {}", stderr(&output));
    let documented: BTreeSet<String> = DOCUMENTED.iter().map(|name| (*name).to_owned()).collect();
    assert_eq!(files_in(&directory), documented);
    let printed = String::from_utf8(output.stdout).unwrap();
    assert_eq!(printed.lines().count(), DOCUMENTED.len(), "{printed}");
    for (name, screen) in gallery() {
        let file = directory.join(format!("{name}.png"));
        assert!(printed.contains(&file.display().to_string()), "{printed}");
        let frame = Framebuffer::from_png(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(frame, render(&screen), "{name}");
    }
}

#[test]
fn overwrites_an_existing_directory_and_scales() {
    let temporary = tempfile::tempdir().unwrap();
    std::fs::write(temporary.path().join("tamper.png"), b"old").unwrap();
    let output = keymother(&[
        "display-preview",
        "--scale",
        "2",
        temporary.path().to_str().unwrap(),
    ]);
    assert!(output.status.success(), "stderr: {}", stderr(&output));
    let (width, height, _) = decode(&std::fs::read(temporary.path().join("tamper.png")).unwrap());
    assert_eq!((width, height), (256, 128));
}

#[test]
fn refuses_a_file_in_place_of_the_directory() {
    let temporary = tempfile::tempdir().unwrap();
    let file = temporary.path().join("screens");
    std::fs::write(&file, b"").unwrap();
    let output = keymother(&["display-preview", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "stderr: {}", stderr(&output));
    assert_eq!(
        stderr(&output),
        format!(
            "keymother: DIR: {} exists and is not a directory\n",
            file.display()
        )
    );

    let below_a_file = file.join("inside");
    let output = keymother(&["display-preview", below_a_file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "stderr: {}", stderr(&output));
    assert!(
        stderr(&output).starts_with(&format!(
            "keymother: DIR: cannot create the directory {}: ",
            below_a_file.display()
        )),
        "{}",
        stderr(&output)
    );
}

#[test]
fn refuses_a_scale_out_of_range() {
    let temporary = tempfile::tempdir().unwrap();
    for scale in ["0", "17", "big"] {
        let output = keymother(&[
            "display-preview",
            "--scale",
            scale,
            temporary.path().to_str().unwrap(),
        ]);
        assert_eq!(output.status.code(), Some(2), "scale {scale}");
        assert!(stderr(&output).contains("--scale"), "{}", stderr(&output));
    }
    assert!(files_in(temporary.path()).is_empty());
}

/// The README shows docs/display/*.png: they must be what the command makes now.
#[test]
fn the_readme_images_are_up_to_date() {
    let documentation = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/display");
    let temporary = tempfile::tempdir().unwrap();
    let output = keymother(&[
        "display-preview",
        "--scale",
        "2",
        temporary.path().to_str().unwrap(),
    ]);
    assert!(output.status.success(), "stderr: {}", stderr(&output));
    assert_eq!(files_in(&documentation), files_in(temporary.path()));
    for name in DOCUMENTED {
        let committed = decode(&std::fs::read(documentation.join(name)).unwrap());
        let current = decode(&std::fs::read(temporary.path().join(name)).unwrap());
        assert!(
            committed == current,
            "docs/display/{name} is out of date: run `cargo run -- display-preview --scale 2 docs/display`"
        );
    }
}
