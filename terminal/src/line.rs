//! Lines a terminal talks over: a real serial port, the master side of a pseudo-terminal, and a noisy wrapper that damages bytes like a bad cable.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

/// A byte pipe with a read timeout.
pub trait Line {
    /// Reads what arrives within `timeout`. `Ok(0)` when nothing came, including while the
    /// other end is unplugged (the session's own timeouts decide what that means).
    fn read_within(&mut self, buffer: &mut [u8], timeout: Duration) -> io::Result<usize>;
    /// Writes every byte. While the other end is unplugged the bytes are lost, as on a wire.
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()>;
}

/// The master side of a pseudo-terminal; the appliance opens the slave side as its port.
pub struct PtyLine {
    master: File,
}

impl PtyLine {
    /// Talks over the master side of a pseudo-terminal pair.
    pub fn new(master: OwnedFd) -> PtyLine {
        PtyLine {
            master: File::from(master),
        }
    }

    /// Opens a new pseudo-terminal pair, puts its slave side in raw mode, and makes `link` a
    /// symbolic link to the slave device (as a `/dev/serial/by-id/...` link names a real
    /// adapter). The appliance opens `link`; the terminal talks over the returned line.
    pub fn open_pair(link: &Path) -> io::Result<PtyLine> {
        use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
        let pair = nix::pty::openpty(None, None).map_err(io::Error::from)?;
        let slave_path = nix::unistd::ttyname(&pair.slave).map_err(io::Error::from)?;
        let mut termios = tcgetattr(&pair.slave).map_err(io::Error::from)?;
        cfmakeraw(&mut termios);
        tcsetattr(&pair.slave, SetArg::TCSANOW, &termios).map_err(io::Error::from)?;
        // Our copy of the slave side closes here; the appliance opens its own.
        drop(pair.slave);
        match std::fs::remove_file(link) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
            _ => {}
        }
        std::os::unix::fs::symlink(slave_path, link)?;
        Ok(PtyLine::new(pair.master))
    }
}

/// EIO on a pty master means no process has the slave side open: an unplugged cable.
fn unplugged(error: &io::Error) -> bool {
    error.raw_os_error() == Some(Errno::EIO as i32)
}

impl Line for PtyLine {
    fn read_within(&mut self, buffer: &mut [u8], timeout: Duration) -> io::Result<usize> {
        let milliseconds = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        let mut descriptors = [PollFd::new(self.master.as_fd(), PollFlags::POLLIN)];
        let ready =
            poll(&mut descriptors, PollTimeout::from(milliseconds)).map_err(io::Error::from)?;
        if ready == 0 {
            return Ok(0);
        }
        match self.master.read(buffer) {
            Ok(count) => Ok(count),
            Err(error) if unplugged(&error) => {
                // poll reports a hang-up at once; wait out the timeout instead of spinning.
                std::thread::sleep(timeout);
                Ok(0)
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => Ok(0),
            Err(error) => Err(error),
        }
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self.master.write_all(bytes) {
            Err(error) if unplugged(&error) => Ok(()),
            other => other,
        }
    }
}

/// A real serial port (a technician checking an appliance on the bench).
pub struct SerialLine {
    port: Box<dyn serialport::SerialPort>,
}

impl SerialLine {
    /// Opens `path` at `baud`, 8N1, no flow control.
    pub fn open(path: &str, baud: u32) -> io::Result<SerialLine> {
        let port = serialport::new(path, baud)
            .data_bits(serialport::DataBits::Eight)
            .parity(serialport::Parity::None)
            .stop_bits(serialport::StopBits::One)
            .flow_control(serialport::FlowControl::None)
            .timeout(Duration::from_millis(50))
            .open()
            .map_err(io::Error::other)?;
        Ok(SerialLine { port })
    }
}

impl Line for SerialLine {
    fn read_within(&mut self, buffer: &mut [u8], timeout: Duration) -> io::Result<usize> {
        self.port.set_timeout(timeout).map_err(io::Error::other)?;
        match self.port.read(buffer) {
            Err(error) if error.kind() == io::ErrorKind::TimedOut => Ok(0),
            other => other,
        }
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.port.write_all(bytes)?;
        self.port.flush()
    }
}

/// What a [`NoisyLine`] did to the bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Damage {
    pub dropped: u64,
    pub flipped: u64,
    pub inserted: u64,
}

/// Wraps a line and damages bytes in both directions at `rate` (a probability per byte):
/// each damaged byte is dropped, flipped, or followed by an inserted random byte. It stands
/// for a noise relay between the terminal and the appliance.
pub struct NoisyLine<L> {
    inner: L,
    rate: f64,
    random: fastrand::Rng,
    damage: Damage,
}

impl<L: Line> NoisyLine<L> {
    /// Damages bytes on `inner` at `rate`, reproducibly for a given `seed`.
    pub fn new(inner: L, rate: f64, seed: u64) -> NoisyLine<L> {
        NoisyLine {
            inner,
            rate,
            random: fastrand::Rng::with_seed(seed),
            damage: Damage::default(),
        }
    }

    /// What was done so far.
    pub fn damage(&self) -> Damage {
        self.damage
    }

    fn garble(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(bytes.len() + 4);
        for &byte in bytes {
            if self.random.f64() >= self.rate {
                out.push(byte);
                continue;
            }
            match self.random.u8(0..3) {
                0 => self.damage.dropped += 1,
                1 => {
                    out.push(byte ^ self.random.u8(1..=255));
                    self.damage.flipped += 1;
                }
                _ => {
                    out.push(byte);
                    out.push(self.random.u8(..));
                    self.damage.inserted += 1;
                }
            }
        }
        out
    }
}

impl<L: Line> Line for NoisyLine<L> {
    fn read_within(&mut self, buffer: &mut [u8], timeout: Duration) -> io::Result<usize> {
        // Read at most half a buffer so inserted bytes always fit.
        let half = (buffer.len() / 2).max(1);
        let count = self.inner.read_within(&mut buffer[..half], timeout)?;
        let garbled = self.garble(&buffer[..count]);
        buffer[..garbled.len()].copy_from_slice(&garbled);
        Ok(garbled.len())
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        let garbled = self.garble(bytes);
        self.inner.write_all(&garbled)
    }
}

/// Counts bytes in each direction, for the benchmark's bytes-on-the-wire figure.
pub struct CountingLine<L> {
    inner: L,
    /// Bytes read from the appliance.
    pub received: u64,
    /// Bytes written to the appliance.
    pub sent: u64,
}

impl<L: Line> CountingLine<L> {
    /// Counts bytes on `inner`.
    pub fn new(inner: L) -> CountingLine<L> {
        CountingLine {
            inner,
            received: 0,
            sent: 0,
        }
    }
}

impl<L: Line> Line for CountingLine<L> {
    fn read_within(&mut self, buffer: &mut [u8], timeout: Duration) -> io::Result<usize> {
        let count = self.inner.read_within(buffer, timeout)?;
        self.received += count as u64;
        Ok(count)
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.sent += bytes.len() as u64;
        self.inner.write_all(bytes)
    }
}

impl<L: Line + ?Sized> Line for &mut L {
    fn read_within(&mut self, buffer: &mut [u8], timeout: Duration) -> io::Result<usize> {
        (**self).read_within(buffer, timeout)
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        (**self).write_all(bytes)
    }
}
