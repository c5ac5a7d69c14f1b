//! The client of keymotherd's control socket: typed requests and answers (keymother-control), files streamed from and to this process's own files.
//!
//! The daemon opens no path the client names: `import` reads the key file here, as the
//! operator's user, and streams its bytes; exports stream back and are written here, never
//! over an existing file unless forced, and never into a keymother data directory.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use keymother_control::{
    self as api, Call, ClientLine, DATA_CHUNK, Received, ServerLine, StreamLine,
};
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

/// Where keymotherd listens unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/keymother/control.sock";

fn connect(socket: &Path) -> anyhow::Result<UnixStream> {
    UnixStream::connect(socket).with_context(|| {
        format!(
            "cannot reach keymotherd at {} (is it running, and are you in its operators' group?)",
            socket.display()
        )
    })
}

/// Writes the request line, wiping the copy it made (a ceremony's carries components).
fn send_request(stream: &mut UnixStream, request: impl Into<api::Request>) -> std::io::Result<()> {
    let request: api::Request = request.into();
    let mut line = api::encode_line(&request);
    drop(request);
    let sent = stream.write_all(&line);
    line.zeroize();
    sent
}

/// What to do with an import's progress lines.
pub type OnProgress<'a> = Option<&'a mut dyn FnMut(api::Progress)>;

/// Reads the daemon's lines: progress to `on_progress`, export data into `download`, until
/// the answer, which it returns typed.
fn read_answer<C: Call>(
    stream: &UnixStream,
    mut on_progress: OnProgress<'_>,
    mut download: Option<&mut Download>,
) -> anyhow::Result<C::Answer> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = (&mut reader)
            .take(api::MAX_ANSWER_LINE as u64)
            .read_until(b'\n', &mut line)?;
        if read == 0 {
            anyhow::bail!("keymotherd closed the connection without answering");
        }
        let parsed: ServerLine = api::decode_line(&line)
            .context("keymotherd answered something this keymother does not understand")?;
        match parsed {
            ServerLine::Answer(answer) => return Ok(answer.into_result::<C>()?),
            ServerLine::Stream(StreamLine::Progress(progress)) => {
                if let Some(on_progress) = on_progress.as_deref_mut() {
                    on_progress(progress);
                }
            }
            ServerLine::Stream(StreamLine::Data(data)) => match download.as_deref_mut() {
                Some(download) => download.write(&api::decode_data(&data)?)?,
                None => anyhow::bail!("keymotherd sent a file nobody asked for"),
            },
            ServerLine::Stream(StreamLine::End(end)) => match download.as_deref_mut() {
                Some(download) => {
                    let reply = download.finish(&end);
                    let mut writer = stream;
                    writer.write_all(&api::encode_line(&reply))?;
                }
                None => anyhow::bail!("keymotherd sent a file nobody asked for"),
            },
        }
    }
}

/// Sends `request` and returns its answer.
pub fn call<C: Call>(socket: &Path, request: C) -> anyhow::Result<C::Answer> {
    debug_assert_eq!(C::TRANSFER, api::Transfer::None);
    let mut stream = connect(socket)?;
    send_request(&mut stream, request)?;
    read_answer::<C>(&stream, None, None)
}

/// Opens the file to send: a regular file only (a FIFO or a device would never end), read
/// as this process's user.
pub fn open_regular(path: &Path) -> anyhow::Result<(File, u64)> {
    let name = path.display();
    // Non-blocking, so that opening a FIFO returns at once instead of waiting for a writer.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(path)
        .with_context(|| format!("{name}: cannot open it"))?;
    let metadata = file
        .metadata()
        .with_context(|| format!("{name}: cannot read it"))?;
    let kind = metadata.file_type();
    let what = if kind.is_fifo() {
        Some("a FIFO")
    } else if kind.is_dir() {
        Some("a directory")
    } else if kind.is_char_device() || kind.is_block_device() {
        Some("a device")
    } else if kind.is_socket() {
        Some("a socket")
    } else {
        None
    };
    if let Some(what) = what {
        anyhow::bail!("{name}: not a regular file ({what}); give the key file itself");
    }
    Ok((file, metadata.len()))
}

/// Sends `request` followed by the `size` bytes of `file`, handing the daemon's progress to
/// `on_progress`, and returns its answer. Interrupting this process cancels the import in
/// the daemon.
pub fn upload<C: Call>(
    socket: &Path,
    request: C,
    file: &mut File,
    name: &str,
    size: u64,
    mut on_progress: OnProgress<'_>,
) -> anyhow::Result<C::Answer> {
    let mut stream = connect(socket)?;
    let sent = send_request(&mut stream, request)
        .map_err(SendError::Socket)
        .and_then(|()| send_file(&mut stream, file, size));
    match sent {
        Ok(()) => read_answer::<C>(&stream, on_progress.take(), None),
        // The daemon may have refused and closed before it took the whole file: its answer
        // says why; without one, the sending failed.
        Err(SendError::Socket(error)) => read_answer::<C>(&stream, on_progress.take(), None)
            .and_then(|_| Err(error.into()))
            .with_context(|| format!("{name}: the file could not be sent to keymotherd")),
        Err(SendError::File(error)) => Err(anyhow::anyhow!("{name}: cannot read it: {error}")),
    }
}

/// Why a file was not sent whole.
enum SendError {
    File(std::io::Error),
    Socket(std::io::Error),
}

impl From<std::io::Error> for SendError {
    fn from(error: std::io::Error) -> SendError {
        SendError::Socket(error)
    }
}

fn send_file(stream: &mut UnixStream, file: &mut File, size: u64) -> Result<(), SendError> {
    let mut buffer = vec![0u8; DATA_CHUNK];
    let mut sent = 0u64;
    while sent < size {
        let want = usize::try_from((size - sent).min(DATA_CHUNK as u64)).unwrap_or(DATA_CHUNK);
        let read = match file.read(&mut buffer[..want]) {
            Ok(0) => {
                return Err(SendError::File(std::io::Error::other(
                    "it became shorter while it was read",
                )));
            }
            Ok(read) => read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(SendError::File(error)),
        };
        let mut line = api::encode_line(&ClientLine::Data(api::encode_data(&buffer[..read])));
        let written = stream.write_all(&line);
        line.zeroize();
        written?;
        sent += read as u64;
    }
    buffer.zeroize();
    Ok(())
}

/// An export being written: a temporary file beside the destination, put in place only
/// once complete and checked.
struct Download {
    destination: PathBuf,
    temporary: PathBuf,
    file: Option<File>,
    digest: Sha256,
    bytes: u64,
    force: bool,
    /// Why it failed, once it has.
    failed: Option<String>,
}

impl Download {
    fn write(&mut self, data: &[u8]) -> anyhow::Result<()> {
        self.bytes += data.len() as u64;
        self.digest.update(data);
        if let (Some(file), None) = (self.file.as_mut(), &self.failed) {
            if let Err(error) = file.write_all(data) {
                self.failed = Some(format!("writing: {error}"));
            }
        }
        Ok(())
    }

    /// The end line came: flush, check, put in place; what to tell the daemon.
    fn finish(&mut self, end: &api::FileEnd) -> ClientLine {
        let sha256 = hex::encode(self.digest.clone().finalize());
        if self.failed.is_none() && (end.bytes != self.bytes || end.sha256 != sha256) {
            self.failed = Some("the data received does not match its end line".to_owned());
        }
        if self.failed.is_none() {
            if let Err(error) = self.install() {
                self.failed = Some(error);
            }
        }
        match &self.failed {
            None => ClientLine::Received(Received { sha256 }),
            Some(reason) => {
                let _ = std::fs::remove_file(&self.temporary);
                ClientLine::Abandon(api::Abandon {
                    reason: reason.clone(),
                })
            }
        }
    }

    /// Flushes the temporary file and renames it onto the destination (refusing an
    /// existing one unless forced), then flushes the directory.
    fn install(&mut self) -> Result<(), String> {
        let file = self.file.take().ok_or("the file was not opened")?;
        file.sync_all()
            .map_err(|error| format!("flushing: {error}"))?;
        drop(file);
        rename_into_place(&self.temporary, &self.destination, self.force)?;
        if let Some(directory) = self.destination.parent() {
            let directory = if directory.as_os_str().is_empty() {
                Path::new(".")
            } else {
                directory
            };
            File::open(directory)
                .and_then(|directory| directory.sync_all())
                .map_err(|error| format!("flushing its directory: {error}"))?;
        }
        Ok(())
    }
}

impl Drop for Download {
    fn drop(&mut self) {
        // Still there when the export did not complete.
        if self.file.is_some() || self.failed.is_some() {
            let _ = std::fs::remove_file(&self.temporary);
        }
    }
}

/// Renames without replacing (RENAME_NOREPLACE), unless `force`.
fn rename_into_place(from: &Path, to: &Path, force: bool) -> Result<(), String> {
    use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
    if force {
        return std::fs::rename(from, to).map_err(|error| format!("renaming: {error}"));
    }
    match renameat2(AT_FDCWD, from, AT_FDCWD, to, RenameFlags::RENAME_NOREPLACE) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EEXIST) => Err(exists_message(to)),
        // A file system without RENAME_NOREPLACE: check, then rename.
        Err(nix::errno::Errno::EINVAL) if !to.exists() => {
            std::fs::rename(from, to).map_err(|error| format!("renaming: {error}"))
        }
        Err(nix::errno::Errno::EINVAL) => Err(exists_message(to)),
        Err(error) => Err(format!("renaming: {error}")),
    }
}

fn exists_message(path: &Path) -> String {
    format!(
        "{} exists; give another file, or --force to replace it",
        path.display()
    )
}

/// Refuses a destination that exists (unless `force`) or that lies in a keymother data
/// directory (a vault's own files are never replaced, forced or not).
pub fn check_destination(destination: &Path, force: bool) -> anyhow::Result<()> {
    let directory = match destination.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    if directory.join("vault.sqlite").exists() || directory.join("owner.lock").exists() {
        anyhow::bail!(
            "{}: that directory holds a keymother vault; exports never go there",
            destination.display()
        );
    }
    if destination.is_dir() {
        anyhow::bail!(
            "{}: is a directory; give a file name",
            destination.display()
        );
    }
    if !force && std::fs::symlink_metadata(destination).is_ok() {
        anyhow::bail!("{}", exists_message(destination));
    }
    Ok(())
}

/// Sends `request`, writes the file the daemon streams back to `destination`, tells the
/// daemon it has it, and returns the answer. Nothing is left behind on failure.
pub fn download<C: Call>(
    socket: &Path,
    request: C,
    destination: &Path,
    force: bool,
) -> anyhow::Result<C::Answer> {
    check_destination(destination, force)?;
    let file_name = destination
        .file_name()
        .ok_or_else(|| anyhow::anyhow!("{}: names no file", destination.display()))?;
    let temporary = destination.with_file_name(format!(
        ".{}.{}.partial",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)
        .with_context(|| format!("{}: cannot write there", destination.display()))?;
    let mut download = Download {
        destination: destination.to_path_buf(),
        temporary,
        file: Some(file),
        digest: Sha256::new(),
        bytes: 0,
        force,
        failed: None,
    };
    let mut stream = connect(socket)?;
    send_request(&mut stream, request)?;
    let answer = read_answer::<C>(&stream, None, Some(&mut download));
    match (&download.failed, answer) {
        (Some(reason), Ok(_)) | (Some(reason), Err(_)) => {
            anyhow::bail!("{}: {reason}", destination.display())
        }
        (None, answer) => answer,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn an_answer_far_longer_than_a_request_line_is_read_whole() {
        let (client, mut daemon) = UnixStream::pair().unwrap();
        let row = api::SmnRow {
            smn: "123L013K00000278".parse().unwrap(),
            hardware_serial: "123L013K".parse().unwrap(),
            key_index: keymother_domain::KeyIndex::new(278).unwrap(),
            kcv: "0A1B2C".parse().unwrap(),
            batch_id: "B-0001".parse().unwrap(),
            port: "bench-1".to_owned(),
            terminal_model: "REF-PINPAD".to_owned(),
            injected_at: "2026-12-06T09:30:00Z".to_owned(),
            operator: Some("Ann Operator".to_owned()),
            replaces: None,
            replaced_by: None,
            reinjection_grant: None,
            reinjection_reason: None,
        };
        let rows = vec![row; 2_000];
        let line = api::encode_line(&api::Answer::success(&rows));
        assert!(line.len() > 4 * api::MAX_LINE);
        let writer = std::thread::spawn(move || daemon.write_all(&line).unwrap());
        let read = read_answer::<api::SmnRows>(&client, None, None).unwrap();
        writer.join().unwrap();
        assert_eq!(read, rows);
    }
}
