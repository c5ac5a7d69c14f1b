//! Export files on removable media: written atomically (temporary file, fsync, rename, fsync of the directory) and read back line by line with errors that name the line.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use hmac::Mac;
use sha2::{Digest, Sha256};

use crate::VaultError;

/// Which step of writing an export failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteStage {
    /// Creating the temporary file next to the target (missing or read-only directory).
    CreateTemporary,
    /// Writing the content (a full disk).
    Write,
    /// Flushing the temporary file to the medium.
    Sync,
    /// Renaming the temporary file onto the target (a directory in the way).
    Rename,
    /// Syncing the directory so the rename survives a pulled stick or a power cut.
    SyncDirectory,
}

impl fmt::Display for WriteStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WriteStage::CreateTemporary => "creating a temporary file in its directory",
            WriteStage::Write => "writing",
            WriteStage::Sync => "flushing to the medium",
            WriteStage::Rename => "renaming the temporary file onto it",
            WriteStage::SyncDirectory => "syncing its directory after the rename",
        })
    }
}

/// An export was not written; nothing was marked exported and no audit row was written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("could not write {path} ({stage}): {source}; nothing was marked exported")]
    File {
        path: PathBuf,
        stage: WriteStage,
        source: io::Error,
    },
    #[error("{0} names no file to write")]
    NotAFile(PathBuf),
    #[error("the SMN row {smn} cannot go into an export file: {problem}")]
    UnfitRow { smn: String, problem: String },
    /// A DUKPT registry row, named by its initial KSN (TDES) or initial key ID (AES).
    #[error("the DUKPT registry row of {initial_ksn} cannot go into an export file: {problem}")]
    UnfitDukptRow {
        initial_ksn: String,
        problem: String,
    },
    #[error(transparent)]
    Vault(#[from] VaultError),
}

impl ExportError {
    pub(crate) fn writing(path: &Path, source: io::Error) -> ExportError {
        ExportError::File {
            path: path.to_path_buf(),
            stage: WriteStage::Write,
            source,
        }
    }
}

impl From<rusqlite::Error> for ExportError {
    fn from(error: rusqlite::Error) -> Self {
        ExportError::Vault(VaultError::Database(error))
    }
}

/// Writes the lines of a sealed export while feeding its seal (an HMAC over every line but
/// the seal line) and the whole file's digest.
pub(crate) struct SealedLines<'a> {
    pub(crate) out: &'a mut dyn Write,
    pub(crate) seal: hmac::Hmac<Sha256>,
    pub(crate) digest: Sha256,
    /// Names the destination in write errors.
    pub(crate) path: &'a Path,
}

impl SealedLines<'_> {
    /// A line the seal covers.
    pub(crate) fn sealed(&mut self, line: &str) -> Result<(), ExportError> {
        self.seal.update(line.as_bytes());
        self.seal.update(b"\n");
        self.plain(line)
    }

    /// A line outside the seal (the seal line itself).
    pub(crate) fn plain(&mut self, line: &str) -> Result<(), ExportError> {
        self.digest.update(line.as_bytes());
        self.digest.update(b"\n");
        self.out
            .write_all(line.as_bytes())
            .and_then(|()| self.out.write_all(b"\n"))
            .map_err(|source| ExportError::writing(self.path, source))
    }
}

/// Distinguishes temporary files of exports running at the same time in one process.
static TEMPORARY_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `path` atomically: `write` fills a temporary file in the same directory, which is
/// synced, renamed onto `path`, and the directory synced. On any failure the temporary file
/// is removed and `path` is untouched (or, if only the final directory sync failed, holds
/// the complete new file); the error names `path` and the step.
pub(crate) fn write_atomically<T>(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<T, ExportError>,
) -> Result<T, ExportError> {
    let file_name = path
        .file_name()
        .ok_or_else(|| ExportError::NotAFile(path.to_path_buf()))?;
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let failed = |stage: WriteStage| {
        move |source: io::Error| ExportError::File {
            path: path.to_path_buf(),
            stage,
            source,
        }
    };
    let temporary = directory.join(format!(
        ".{}.{}-{}.tmp",
        file_name.to_string_lossy(),
        std::process::id(),
        TEMPORARY_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(failed(WriteStage::CreateTemporary))?;
    let written = (|| {
        let mut buffered = BufWriter::with_capacity(1 << 16, file);
        let value = write(&mut buffered)?;
        let file = buffered
            .into_inner()
            .map_err(|error| failed(WriteStage::Write)(error.into_error()))?;
        file.sync_all().map_err(failed(WriteStage::Sync))?;
        drop(file);
        fs::rename(&temporary, path).map_err(failed(WriteStage::Rename))?;
        Ok(value)
    })();
    match written {
        Ok(value) => {
            File::open(&directory)
                .and_then(|directory| directory.sync_all())
                .map_err(failed(WriteStage::SyncDirectory))?;
            Ok(value)
        }
        Err(error) => {
            // Best effort: the temporary file may not exist any more (or never got a byte).
            let _ = fs::remove_file(&temporary);
            Err(error)
        }
    }
}

/// An export file was refused. `line` is 1-based; 0 means the file as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct ExportFileError {
    /// The file's name as given by the caller.
    pub file: String,
    pub line: u64,
    pub problem: String,
}

impl ExportFileError {
    fn describe(&self) -> String {
        if self.line == 0 {
            format!("{}: {}", self.file, self.problem)
        } else {
            format!("{}: line {}: {}", self.file, self.line, self.problem)
        }
    }
}

/// One line of an export file: printable ASCII, ended by a line feed.
pub(crate) struct Line {
    number: u64,
    text: String,
}

impl Line {
    pub(crate) fn number(&self) -> u64 {
        self.number
    }

    /// The line without its line feed.
    pub(crate) fn text(&self) -> &str {
        &self.text
    }
}

/// Reads an export file line by line, bounding line length.
pub(crate) struct LineReader<R> {
    inner: R,
    file: String,
    limit: usize,
    number: u64,
}

impl<R: BufRead> LineReader<R> {
    pub(crate) fn new(inner: R, file: &str, limit: usize) -> LineReader<R> {
        LineReader {
            inner,
            file: file.to_owned(),
            limit,
            number: 0,
        }
    }

    /// An error on `line` of this file.
    pub(crate) fn error(&self, line: u64, problem: String) -> ExportFileError {
        ExportFileError {
            file: self.file.clone(),
            line,
            problem,
        }
    }

    /// The number of the last line read.
    pub(crate) fn number(&self) -> u64 {
        self.number
    }

    /// The next line, or `None` at the end of the file.
    pub(crate) fn next_line(&mut self) -> Result<Option<Line>, ExportFileError> {
        let mut bytes = Vec::new();
        let read = (&mut self.inner)
            .take(self.limit as u64)
            .read_until(b'\n', &mut bytes)
            .map_err(|error| {
                self.error(self.number + 1, format!("could not read the file: {error}"))
            })?;
        if read == 0 {
            return Ok(None);
        }
        self.number += 1;
        if bytes.pop() != Some(b'\n') {
            return Err(self.error(
                self.number,
                if read >= self.limit {
                    format!("line is longer than {} bytes", self.limit)
                } else {
                    "the last line has no line feed; the file may be truncated".to_owned()
                },
            ));
        }
        if let Some(column) = bytes.iter().position(|byte| !(0x20..=0x7E).contains(byte)) {
            return Err(self.error(
                self.number,
                if bytes[column] == b'\r' {
                    "line ends with a carriage return; export files use line feeds only".to_owned()
                } else {
                    format!("byte {} is not printable ASCII", column + 1)
                },
            ));
        }
        let text = String::from_utf8(bytes)
            .map_err(|_| self.error(self.number, "not ASCII".to_owned()))?;
        Ok(Some(Line {
            number: self.number,
            text,
        }))
    }

    /// The next line, which must start with `prefix`: its number and the rest of it.
    pub(crate) fn header_line(&mut self, prefix: &str) -> Result<(u64, String), ExportFileError> {
        let Some(line) = self.next_line()? else {
            return Err(self.error(
                self.number + 1,
                format!("the file ends inside the header; expected a line starting {prefix:?}"),
            ));
        };
        match line.text().strip_prefix(prefix) {
            Some(rest) => Ok((line.number(), rest.to_owned())),
            None => Err(self.error(
                line.number(),
                format!(
                    "expected a line starting {prefix:?}, found {:?}",
                    line.text()
                ),
            )),
        }
    }
}
