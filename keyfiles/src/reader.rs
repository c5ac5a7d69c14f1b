//! Streaming, line-numbered reading of a key file: header first, then records one at a time, then the seal.

use std::io::{BufRead, Read};

use keymother_crypto::Kcv;

use crate::MAX_LINE_LENGTH;
use crate::error::{KeyFileError, Problem};
use crate::header::{FIELD_NAMES, HeaderFields, KeyFileHeader, KeyIndex, MAGIC};
use crate::record::Record;
use crate::seal::{SealKey, Sealing};

const SEAL_PREFIX: &str = "seal: ";

/// Reads a key file in one pass, computing the seal as it goes. Memory use does not grow with
/// the number of records.
pub struct KeyFileReader<R> {
    source: R,
    name: String,
    line_number: u64,
    buffer: Vec<u8>,
    sealing: Option<Sealing>,
    header: KeyFileHeader,
    records_seen: u32,
    finished: bool,
}

/// Reads the next line into `buffer` (line feed included). `Ok(false)` at end of file.
fn read_raw_line<R: BufRead>(source: &mut R, buffer: &mut Vec<u8>) -> Result<bool, Problem> {
    buffer.clear();
    let limit = (MAX_LINE_LENGTH + 1) as u64;
    let read = source
        .by_ref()
        .take(limit)
        .read_until(b'\n', buffer)
        .map_err(|error| Problem::Io(error.to_string()))?;
    Ok(read > 0)
}

/// Checks the shape every line must have and returns it without its line feed.
fn checked_text(buffer: &[u8]) -> Result<&str, Problem> {
    let Some(content) = buffer.strip_suffix(b"\n") else {
        return Err(if buffer.len() > MAX_LINE_LENGTH {
            Problem::LineTooLong {
                limit: MAX_LINE_LENGTH,
            }
        } else {
            Problem::MissingFinalNewline
        });
    };
    if content.ends_with(b"\r") {
        return Err(Problem::CarriageReturn);
    }
    if let Some(position) = content.iter().position(|b| !(0x20..=0x7E).contains(b)) {
        return Err(Problem::NotPrintable {
            column: position + 1,
        });
    }
    // Printable ASCII is valid UTF-8.
    std::str::from_utf8(content).map_err(|_| Problem::NotPrintable { column: 1 })
}

impl<R: BufRead> KeyFileReader<R> {
    /// Reads and parses the header. `name` labels every error.
    pub fn open(
        mut source: R,
        name: impl Into<String>,
        seal_key: &SealKey,
    ) -> Result<Self, KeyFileError> {
        let name = name.into();
        let mut sealing = seal_key.start();
        let mut buffer = Vec::with_capacity(256);
        let error = |line: u64, problem: Problem| KeyFileError {
            file: name.clone(),
            line,
            problem,
        };

        let present = read_raw_line(&mut source, &mut buffer).map_err(|p| error(1, p))?;
        let magic = if present {
            checked_text(&buffer).map_err(|p| error(1, p))?
        } else {
            ""
        };
        if magic != MAGIC {
            return Err(error(1, Problem::BadMagic));
        }
        sealing.update(&buffer);

        let mut fields = HeaderFields::default();
        let mut line_number = 1;
        let mut first_problem = None;
        for (field, expected) in FIELD_NAMES.iter().enumerate() {
            line_number += 1;
            let present =
                read_raw_line(&mut source, &mut buffer).map_err(|p| error(line_number, p))?;
            if !present {
                return Err(error(line_number, Problem::MissingHeaderLine { expected }));
            }
            sealing.update(&buffer);
            let problem = match checked_text(&buffer) {
                Err(problem) => Some(problem),
                Ok(text) => match text.split_once(": ") {
                    Some((found, value)) if found == *expected => fields
                        .set(field, value)
                        .err()
                        .map(|reason| Problem::BadHeaderValue {
                            field: expected,
                            reason,
                        }),
                    _ => Some(Problem::WrongHeaderName { expected }),
                },
            };
            if let Some(problem) = problem {
                first_problem = Some(error(line_number, problem));
                break;
            }
        }

        if let Some(problem) = first_problem {
            return Err(drain_and_check_seal(
                &mut source,
                &mut buffer,
                sealing,
                line_number,
                true,
                problem,
            ));
        }
        let header = fields.finish().ok_or_else(|| {
            error(
                line_number,
                Problem::MissingHeaderLine {
                    expected: "created",
                },
            )
        })?;
        buffer.clear();
        Ok(KeyFileReader {
            source,
            name,
            line_number,
            buffer,
            sealing: Some(sealing),
            header,
            records_seen: 0,
            finished: false,
        })
    }

    /// The parsed header.
    pub fn header(&self) -> &KeyFileHeader {
        &self.header
    }

    /// The file name given to [`KeyFileReader::open`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The underlying source, once reading is done.
    pub fn into_inner(self) -> R {
        self.source
    }

    /// Records read so far.
    pub fn records_seen(&self) -> u32 {
        self.records_seen
    }

    /// An error on `line` of this file.
    pub fn error_at(&self, line: u64, problem: Problem) -> KeyFileError {
        KeyFileError {
            file: self.name.clone(),
            line,
            problem,
        }
    }

    /// The next record, or `None` once the seal line has been read, the record count
    /// checked, the seal verified and the end of the file confirmed.
    pub fn next_record(&mut self) -> Result<Option<Record>, KeyFileError> {
        if self.finished {
            return Ok(None);
        }
        self.line_number += 1;
        let line = self.line_number;
        let present = read_raw_line(&mut self.source, &mut self.buffer)
            .map_err(|p| self.error_at(line, p))?;
        if !present {
            let problem = Problem::Truncated {
                declared: self.header.record_count,
                found: self.records_seen,
            };
            return Err(self.error_at(line, problem));
        }
        let text = match checked_text(&self.buffer) {
            Ok(text) => text,
            Err(problem) => {
                let error = self.error_at(line, problem);
                return Err(self.check_seal_after_line(error));
            }
        };
        if let Some(seal) = text.strip_prefix(SEAL_PREFIX) {
            let seal = parse_seal(seal).ok_or_else(|| self.error_at(line, Problem::BadSealLine))?;
            return self.finish(line, &seal).map(|()| None);
        }
        let parsed = parse_record(text, line, self.header.algorithm.family());
        if let Some(sealing) = self.sealing.as_mut() {
            sealing.update(&self.buffer);
        }
        match parsed {
            Ok(record) if self.records_seen < self.header.record_count => {
                self.records_seen += 1;
                Ok(Some(record))
            }
            Ok(_) => {
                let error = self.error_at(
                    line,
                    Problem::TooManyRecords {
                        declared: self.header.record_count,
                    },
                );
                Err(self.check_seal_after(error))
            }
            Err(problem) => {
                let error = self.error_at(line, problem);
                Err(self.check_seal_after(error))
            }
        }
    }

    fn finish(&mut self, line: u64, seal: &[u8]) -> Result<(), KeyFileError> {
        let verified = self
            .sealing
            .take()
            .is_some_and(|sealing| sealing.verify(seal));
        if !verified {
            return Err(self.error_at(
                line,
                Problem::SealMismatch {
                    first_problem: None,
                },
            ));
        }
        if self.records_seen != self.header.record_count {
            let problem = Problem::TooFewRecords {
                declared: self.header.record_count,
                found: self.records_seen,
            };
            return Err(self.error_at(line, problem));
        }
        let mut probe = [0u8; 1];
        match self.source.read(&mut probe) {
            Ok(0) => {}
            Ok(_) => return Err(self.error_at(line + 1, Problem::TrailingData)),
            Err(error) => return Err(self.error_at(line + 1, Problem::Io(error.to_string()))),
        }
        self.finished = true;
        Ok(())
    }

    /// After a problem in the current line (whose bytes are not yet in the MAC), adds them.
    fn check_seal_after_line(&mut self, error: KeyFileError) -> KeyFileError {
        let at_line_start = self.buffer.ends_with(b"\n");
        match self.sealing.take() {
            Some(mut sealing) => {
                sealing.update(&self.buffer);
                drain_and_check_seal(
                    &mut self.source,
                    &mut self.buffer,
                    sealing,
                    self.line_number,
                    at_line_start,
                    error,
                )
            }
            None => error,
        }
    }

    /// Reads the rest of the file into the seal. If the seal fails, the file was altered
    /// (or made under another KEK) and that is the error to report, mentioning the first
    /// problem seen; otherwise `error` stands as it was.
    pub fn check_seal_after(&mut self, error: KeyFileError) -> KeyFileError {
        match self.sealing.take() {
            Some(sealing) => drain_and_check_seal(
                &mut self.source,
                &mut self.buffer,
                sealing,
                self.line_number,
                true,
                error,
            ),
            None => error,
        }
    }
}

/// Reads only the header, without checking the seal (there is no KEK to check it with):
/// for showing what a file claims before it is imported.
pub fn peek_header<R: BufRead>(source: R, name: &str) -> Result<KeyFileHeader, KeyFileError> {
    let throwaway = keymother_crypto::SecretKey::generate(keymother_crypto::KeyAlgorithm::Aes128)
        .map_err(|error| KeyFileError {
        file: name.to_owned(),
        line: 0,
        problem: Problem::Io(error.to_string()),
    })?;
    let reader = KeyFileReader::open(source, name, &SealKey::derive(&throwaway))?;
    Ok(reader.header)
}

/// Feeds everything up to the seal line into `sealing`, then decides which error to report:
/// a failing seal wins (the file was altered), naming `error` as the first problem seen.
fn drain_and_check_seal<R: BufRead>(
    source: &mut R,
    buffer: &mut Vec<u8>,
    mut sealing: Sealing,
    mut line: u64,
    mut at_line_start: bool,
    error: KeyFileError,
) -> KeyFileError {
    loop {
        match read_raw_line(source, buffer) {
            Ok(true) => {}
            Ok(false) | Err(_) => return error,
        }
        if at_line_start {
            line += 1;
        }
        let ends_line = buffer.ends_with(b"\n");
        if at_line_start && buffer.starts_with(SEAL_PREFIX.as_bytes()) {
            let seal = std::str::from_utf8(&buffer[SEAL_PREFIX.len()..])
                .ok()
                .map(|text| text.trim_end_matches('\n'))
                .and_then(parse_seal);
            return match seal {
                Some(seal) if sealing.verify(&seal) => error,
                Some(_) => KeyFileError {
                    file: error.file.clone(),
                    line,
                    problem: Problem::SealMismatch {
                        first_problem: Some(Box::new((error.line, error.problem))),
                    },
                },
                None => error,
            };
        }
        sealing.update(buffer);
        at_line_start = ends_line;
    }
}

/// The seal's bytes, if `text` is 64 upper-case hex digits.
fn parse_seal(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64
        || !text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
    {
        return None;
    }
    hex::decode(text).ok()
}

fn parse_record(
    text: &str,
    line: u64,
    family: keymother_crypto::KeyFamily,
) -> Result<Record, Problem> {
    if text.split(' ').any(str::is_empty) {
        return Err(Problem::EmptyRecordField);
    }
    let mut fields = text.split(' ');
    let (Some(index), Some(block), Some(kcv), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(Problem::RecordShape {
            fields: text.split(' ').count(),
        });
    };
    let index: KeyIndex = index.parse().map_err(|_| Problem::BadIndex)?;
    if kcv.bytes().any(|b| b.is_ascii_lowercase()) {
        return Err(Problem::BadKcv { family });
    }
    let kcv = Kcv::from_hex(family, kcv).map_err(|_| Problem::BadKcv { family })?;
    Ok(Record {
        line,
        index,
        key_block: block.to_owned(),
        kcv,
    })
}
