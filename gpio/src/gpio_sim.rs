//! Test support: simulated GPIO chips through the kernel's gpio-sim module, made in configfs and torn down on drop, with each line's simulated pull and value in sysfs.
//!
//! The same steps in shell (root; `N` is what the kernel assigns):
//!
//! ```sh
//! modprobe gpio-sim                     # makes /sys/kernel/config/gpio-sim
//! cd /sys/kernel/config/gpio-sim
//! mkdir bench && mkdir bench/bank0
//! echo keymother-test > bench/bank0/label
//! echo 5 > bench/bank0/num_lines
//! mkdir bench/bank0/line0 && echo GPIO17 > bench/bank0/line0/name   # and so on per line
//! echo 1 > bench/live
//! cat bench/dev_name                    # gpio-sim.N
//! cat bench/bank0/chip_name             # gpiochipM: the chip is /dev/gpiochipM
//! cat /sys/devices/platform/gpio-sim.N/gpiochipM/sim_gpio0/value        # 0 or 1
//! echo pull-down > /sys/devices/platform/gpio-sim.N/gpiochipM/sim_gpio4/pull
//! echo 0 > bench/live && rmdir bench/bank0/line* bench/bank0 bench    # tear down
//! ```

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// gpio-sim's configfs directory.
pub const CONFIGFS: &str = "/sys/kernel/config/gpio-sim";

/// Whether gpio-sim can be used here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Availability {
    Ready,
    /// It cannot be, and why: [`CONFIGFS`] does not exist and `modprobe gpio-sim` is not
    /// there or fails (no modules, not root). A test skips then, saying so.
    Skip(String),
}

/// Loads gpio-sim when [`CONFIGFS`] does not exist yet. `Err` is a real failure, not a
/// reason to skip: `modprobe gpio-sim` succeeded and still there is no [`CONFIGFS`].
pub fn availability() -> Result<Availability, String> {
    let configfs = Path::new(CONFIGFS);
    if configfs.is_dir() {
        return Ok(Availability::Ready);
    }
    let mut ran = None;
    for modprobe in ["modprobe", "/usr/sbin/modprobe", "/sbin/modprobe"] {
        match Command::new(modprobe).arg("gpio-sim").output() {
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            other => {
                ran = Some(other);
                break;
            }
        }
    }
    match ran {
        None => Ok(Availability::Skip(format!(
            "{CONFIGFS} does not exist and there is no modprobe to load gpio-sim"
        ))),
        Some(Err(error)) => Ok(Availability::Skip(format!(
            "{CONFIGFS} does not exist and modprobe cannot run: {error}"
        ))),
        Some(Ok(output)) if !output.status.success() => Ok(Availability::Skip(format!(
            "{CONFIGFS} does not exist and `modprobe gpio-sim` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))),
        Some(Ok(_)) if configfs.is_dir() => Ok(Availability::Ready),
        Some(Ok(_)) => Err(format!(
            "`modprobe gpio-sim` succeeded but {CONFIGFS} does not exist: is configfs mounted on /sys/kernel/config?"
        )),
    }
}

/// An I/O error that names the path.
fn at(path: &Path, error: io::Error) -> io::Error {
    io::Error::new(error.kind(), format!("{}: {error}", path.display()))
}

fn write(path: &Path, text: &str) -> io::Result<()> {
    std::fs::write(path, text).map_err(|error| at(path, error))
}

fn read(path: &Path) -> io::Result<String> {
    std::fs::read_to_string(path)
        .map(|text| text.trim().to_owned())
        .map_err(|error| at(path, error))
}

fn mkdir(path: &Path) -> io::Result<()> {
    std::fs::create_dir(path).map_err(|error| at(path, error))
}

/// One live simulated chip with one bank; removed when dropped.
#[derive(Debug)]
pub struct SimChip {
    /// `/sys/kernel/config/gpio-sim/<unique>`.
    device: PathBuf,
    /// Directories made in configfs, in the order made.
    made: Vec<PathBuf>,
    live: bool,
    dev_name: String,
    chip_name: String,
}

impl SimChip {
    /// Makes a chip labelled `label` with one line per name (an empty name leaves the line
    /// unnamed), brings it live and waits for its `/dev/gpiochipM`.
    pub fn create(label: &str, names: &[&str]) -> io::Result<SimChip> {
        static MADE: AtomicUsize = AtomicUsize::new(0);
        let number = MADE.fetch_add(1, Ordering::Relaxed);
        let device = Path::new(CONFIGFS).join(format!("keymother-{}-{number}", std::process::id()));
        mkdir(&device)?;
        // From here on, dropping `chip` undoes what was made.
        let mut chip = SimChip {
            device: device.clone(),
            made: vec![device.clone()],
            live: false,
            dev_name: String::new(),
            chip_name: String::new(),
        };
        let bank = device.join("bank0");
        mkdir(&bank)?;
        chip.made.push(bank.clone());
        write(&bank.join("label"), label)?;
        write(&bank.join("num_lines"), &names.len().to_string())?;
        for (offset, name) in names.iter().enumerate() {
            if name.is_empty() {
                continue;
            }
            let line = bank.join(format!("line{offset}"));
            mkdir(&line)?;
            chip.made.push(line.clone());
            write(&line.join("name"), name)?;
        }
        write(&device.join("live"), "1")?;
        chip.live = true;
        chip.dev_name = read(&device.join("dev_name"))?;
        chip.chip_name = read(&bank.join("chip_name"))?;
        // devtmpfs makes the node as the device is added; udev may still be at it.
        let node = chip.dev_path();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !node.exists() {
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{} did not appear within 5 s", node.display()),
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(chip)
    }

    /// The platform device, `gpio-sim.N`.
    pub fn dev_name(&self) -> &str {
        &self.dev_name
    }

    /// The chip, `gpiochipM`.
    pub fn chip_name(&self) -> &str {
        &self.chip_name
    }

    /// `/dev/gpiochipM`.
    pub fn dev_path(&self) -> PathBuf {
        Path::new("/dev").join(&self.chip_name)
    }

    /// `/sys/devices/platform/gpio-sim.N/gpiochipM/sim_gpio<offset>`: the line's `value`
    /// and `pull`.
    pub fn line_dir(&self, offset: u32) -> PathBuf {
        let line = format!("sim_gpio{offset}");
        let platform = Path::new("/sys/devices/platform").join(&self.dev_name);
        let candidates = [
            platform.join(&self.chip_name).join(&line),
            // Kernels before 6.0 put the groups on the platform device itself.
            platform.join(&line),
        ];
        let [current, _] = &candidates;
        candidates
            .iter()
            .find(|candidate| candidate.is_dir())
            .unwrap_or(current)
            .clone()
    }

    /// The line's level: what it is driven to as an output, or pulled to as an input.
    pub fn value(&self, offset: u32) -> io::Result<bool> {
        let path = self.line_dir(offset).join("value");
        match read(&path)?.as_str() {
            "1" => Ok(true),
            "0" => Ok(false),
            other => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {other:?} is not 0 or 1", path.display()),
            )),
        }
    }

    /// Pulls the line up or down from outside, as a switch would.
    pub fn set_pull(&self, offset: u32, up: bool) -> io::Result<()> {
        write(
            &self.line_dir(offset).join("pull"),
            if up { "pull-up" } else { "pull-down" },
        )
    }
}

impl Drop for SimChip {
    fn drop(&mut self) {
        if self.live {
            let _ = std::fs::write(self.device.join("live"), "0");
        }
        for directory in self.made.iter().rev() {
            let _ = std::fs::remove_dir(directory);
        }
    }
}
