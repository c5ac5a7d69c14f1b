//! Test support: files from the real writer, altered one line at a time and sealed again, like a faulty front end would.

use keymother_crypto::SecretKey;
use keymother_crypto::tr31::{Header, KeyBlockProtectionKey};

use crate::header::FIELD_NAMES;
use crate::seal::SealKey;
use crate::writer::{GenerateOptions, SealedLineWriter, WriteError, generate};

/// The lines of a key file without its seal line, to alter and seal again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileLines {
    pub lines: Vec<String>,
}

/// Line number (1-based) of the first record.
pub const FIRST_RECORD_LINE: usize = 9;

impl FileLines {
    /// A file produced by [`generate`], seal removed.
    pub fn generated(kek: &SecretKey, options: &GenerateOptions) -> Result<FileLines, WriteError> {
        let (bytes, _) = generate(Vec::new(), options, kek, &mut |_| {})?;
        let text = String::from_utf8_lossy(&bytes);
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        lines.pop();
        Ok(FileLines { lines })
    }

    /// Replaces a header field's value.
    pub fn set_header(&mut self, name: &str, value: &str) {
        if let Some(position) = FIELD_NAMES.iter().position(|field| *field == name) {
            self.lines[position + 1] = format!("{name}: {value}");
        }
    }

    /// Record `number` (0-based) as a mutable line.
    pub fn record_mut(&mut self, number: usize) -> &mut String {
        &mut self.lines[FIRST_RECORD_LINE - 1 + number]
    }

    /// The fields of record `number`: index, block, check value.
    pub fn record_fields(&self, number: usize) -> Vec<String> {
        self.lines[FIRST_RECORD_LINE - 1 + number]
            .split(' ')
            .map(str::to_owned)
            .collect()
    }

    /// The file's bytes, sealed under `kek` as the real writer would.
    pub fn sealed(&self, kek: &SecretKey) -> Vec<u8> {
        let mut writer = SealedLineWriter::new(Vec::new(), &SealKey::derive(kek));
        for line in &self.lines {
            // Writing to a Vec cannot fail.
            let _ = writer.line(line);
        }
        writer.finish().unwrap_or_default()
    }
}

/// A record line for `key` under `kek` with a chosen key-block header.
pub fn record_line(kek: &SecretKey, index: &str, key: &SecretKey, header: &Header) -> String {
    let block = KeyBlockProtectionKey::new(kek)
        .wrap(header, key)
        .unwrap_or_else(|error| format!("unwrappable:{error}"));
    format!("{index} {block} {}", key.kcv())
}
