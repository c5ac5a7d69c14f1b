//! The key file agreed with the acquirer's front end (FORMAT.md): typed header, records, seal, streaming reader and writer.
//!
//! Reading is streaming and line-numbered so a million-record file is checked in constant
//! memory and every problem names its line.

mod bdk_file;
mod error;
mod header;
mod parallel;
mod reader;
mod record;
mod seal;
mod writer;

/// Sealed-but-faulty files for importer tests; harmless: it needs the KEK, like the real writer.
pub mod testing;

pub use bdk_file::{
    BDK_MAGIC, BdkFileError, BdkFileHeader, OpenedBdk, open_bdk_file, write_bdk_file,
};
pub use error::{KeyFileError, Problem};
pub use header::{BatchId, CreatedAt, DeviceId, Issuer, KeyFileHeader, KeyIndex, MAGIC};
pub use parallel::{Halt, Stopped, open_records_in_order, open_records_in_order_with};
pub use reader::{KeyFileReader, peek_header};
pub use record::{OpenedRecord, Record, RecordOpener, ThreadOpener};
pub use seal::SealKey;
pub use writer::{
    GenerateOptions, GeneratedFile, KeyFileWriter, SealedLineWriter, WriteError, generate,
};

/// Longest line a key file may hold, line feed included; bounds memory on hostile input.
pub const MAX_LINE_LENGTH: usize = 1024;
