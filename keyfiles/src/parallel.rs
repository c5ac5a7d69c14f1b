//! Opening records on worker threads, with the reader on one more thread and the store on the caller's, in file order.
//!
//! Unwrapping a TR-31 version B block costs about ten TDES block operations; a million of
//! them take seconds on one core. The reader (which feeds the seal) and the store (the
//! database transaction) must see records in file order, so chunks of records go round-robin
//! to the workers and their results are collected in the same round-robin order. Each worker
//! has at most four chunks in flight, so memory stays bounded. The reader, with the seal and
//! the file digest it computes, runs on a thread of its own, so the caller's thread (which
//! writes the database) does nothing else.

use std::io::BufRead;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use crate::error::{KeyFileError, Problem};
use crate::reader::KeyFileReader;
use crate::record::{Record, RecordOpener};

/// Records per chunk sent to a worker.
const CHUNK: usize = 512;
/// Chunks in flight per worker. With two workers that is 4,096 records: more than the
/// vault writes in one staged chunk (2,048), so the workers keep opening records while the
/// caller's thread inserts a chunk. Two chunks each left them idle during the inserts: a
/// 1,000,000-key import took 2.94 s against 2.38-2.42 s with four (docs/BENCHMARKS.md).
const IN_FLIGHT_PER_WORKER: usize = 4;

/// Why the store stopped the import.
pub enum Halt<E> {
    /// Something wrong with the file at `line` (say, an index already in the inventory):
    /// reported like every other file problem, seal checked.
    Problem { line: u64, problem: Problem },
    /// Something wrong with the store itself.
    Other(E),
}

/// How [`open_records_in_order`] ended early.
pub enum Stopped<E> {
    /// The file was refused: names the file, the line and the problem.
    File(KeyFileError),
    /// The store failed.
    Other(E),
}

type Opened = Result<Record, (u64, Problem)>;

/// Reads every record, opens each on a worker thread (decrypt, check usage, parity and
/// check value; the clear key is dropped there at once) and hands the checked records to
/// `store` in file order. Stops at the first problem in file order; a file problem is
/// reported after reading on to check the seal, as [`KeyFileReader::check_seal_after`] does.
pub fn open_records_in_order<R, E>(
    reader: &mut KeyFileReader<R>,
    opener: &RecordOpener,
    store: &mut dyn FnMut(Record) -> Result<(), Halt<E>>,
) -> Result<(), Stopped<E>>
where
    R: BufRead + Send,
{
    open_records_in_order_with(reader, opener, || {}, store)
}

/// [`open_records_in_order`], running `worker_start` first on each worker thread (say, to
/// lower its priority).
pub fn open_records_in_order_with<R, E>(
    reader: &mut KeyFileReader<R>,
    opener: &RecordOpener,
    worker_start: fn(),
    store: &mut dyn FnMut(Record) -> Result<(), Halt<E>>,
) -> Result<(), Stopped<E>>
where
    R: BufRead + Send,
{
    let worker_count = std::thread::available_parallelism()
        .map(std::num::NonZeroUsize::get)
        .unwrap_or(1)
        .clamp(1, 8);
    let outcome = std::thread::scope(|scope| {
        let (inboxes, results): (Vec<_>, Vec<_>) = (0..worker_count)
            .map(|_| {
                let (records, inbox) = sync_channel::<Vec<Record>>(IN_FLIGHT_PER_WORKER);
                let (outbox, results) = sync_channel::<Vec<Opened>>(IN_FLIGHT_PER_WORKER);
                scope.spawn(move || {
                    worker_start();
                    // One per thread: it keeps the MAC state after the records' header.
                    let mut opener = opener.on_one_thread();
                    for chunk in inbox {
                        let opened = chunk
                            .into_iter()
                            .map(|record| {
                                let line = record.line;
                                opener
                                    .open(record)
                                    .map(|opened| opened.record)
                                    .map_err(|problem| (line, problem))
                            })
                            .collect();
                        if outbox.send(opened).is_err() {
                            break;
                        }
                    }
                });
                (records, results)
            })
            .unzip();
        // The reader (and the seal and digest it computes) on a thread of its own, so that
        // the caller's thread does nothing but store.
        let reading_from = &mut *reader;
        let reading = scope.spawn(move || read_chunks(reading_from, inboxes));
        let stored = collect(&results, store);
        // Dropping the receivers stops the workers, whose end stops the reader.
        drop(results);
        let read = reading.join();
        finish(stored, read)
    });
    match outcome {
        Ok(()) => Ok(()),
        Err(Pumped::Problem { line, problem }) => {
            let error = reader.error_at(line, problem);
            Err(Stopped::File(reader.check_seal_after(error)))
        }
        Err(Pumped::File(error)) => Err(Stopped::File(error)),
        Err(Pumped::Other(error)) => Err(Stopped::Other(error)),
    }
}

enum Pumped<E> {
    Problem { line: u64, problem: Problem },
    File(KeyFileError),
    Other(E),
}

/// What the reader thread did: the chunks it sent, and the file problem it stopped at.
struct Read {
    chunks_sent: usize,
    error: Option<KeyFileError>,
}

/// Reads every record into chunks and hands them round-robin to the workers' inboxes,
/// until the end of the file, a problem, or a worker gone (the caller stopped).
fn read_chunks<R: BufRead>(
    reader: &mut KeyFileReader<R>,
    inboxes: Vec<SyncSender<Vec<Record>>>,
) -> Read {
    let mut chunks_sent = 0usize;
    loop {
        let mut chunk = Vec::with_capacity(CHUNK);
        let mut error = None;
        let mut ended = false;
        while chunk.len() < CHUNK {
            match reader.next_record() {
                Ok(Some(record)) => chunk.push(record),
                Ok(None) => {
                    ended = true;
                    break;
                }
                Err(problem) => {
                    error = Some(problem);
                    ended = true;
                    break;
                }
            }
        }
        if !chunk.is_empty() {
            if inboxes[chunks_sent % inboxes.len()].send(chunk).is_err() {
                return Read { chunks_sent, error };
            }
            chunks_sent += 1;
        }
        if ended {
            return Read { chunks_sent, error };
        }
    }
}

/// What the caller's thread did: stored every chunk the workers returned, in file order, or
/// stopped at a problem.
enum Stored<E> {
    All { chunks: usize },
    Halted((u64, Problem)),
    Failed(E),
}

/// Takes the workers' results in the order the chunks were handed out and stores each
/// record, until the workers have no more.
fn collect<E>(
    results: &[Receiver<Vec<Opened>>],
    store: &mut dyn FnMut(Record) -> Result<(), Halt<E>>,
) -> Stored<E> {
    let mut chunks = 0usize;
    while let Ok(opened) = results[chunks % results.len()].recv() {
        chunks += 1;
        for result in opened {
            match result {
                Ok(record) => match store(record) {
                    Ok(()) => {}
                    Err(Halt::Other(error)) => return Stored::Failed(error),
                    Err(Halt::Problem { line, problem }) => {
                        return Stored::Halted((line, problem));
                    }
                },
                Err(problem) => return Stored::Halted(problem),
            }
        }
    }
    Stored::All { chunks }
}

/// The outcome of reading, opening and storing, from what the store and the reader did.
fn finish<E>(stored: Stored<E>, read: std::thread::Result<Read>) -> Result<(), Pumped<E>> {
    // A thread that died (it panicked): refuse rather than guess.
    let died = || Pumped::Problem {
        line: 0,
        problem: Problem::Io("a verification thread stopped unexpectedly".to_owned()),
    };
    let Ok(read) = read else {
        return Err(died());
    };
    match stored {
        Stored::Failed(error) => Err(Pumped::Other(error)),
        Stored::Halted(problem) => Err(earliest(problem, read.error)),
        // Fewer results than chunks sent: a worker died.
        Stored::All { chunks } if chunks < read.chunks_sent => Err(died()),
        Stored::All { .. } => match read.error {
            Some(error) => Err(Pumped::File(error)),
            None => Ok(()),
        },
    }
}

/// A record problem found while the reader had already failed further on: the record's
/// problem comes first in the file, but if the reader found the seal broken, that stays
/// the headline (the file was altered) with the record's problem as the first symptom.
fn earliest<E>((line, problem): (u64, Problem), reader_error: Option<KeyFileError>) -> Pumped<E> {
    match reader_error {
        Some(KeyFileError {
            file,
            line: seal_line,
            problem: Problem::SealMismatch { .. },
        }) => Pumped::File(KeyFileError {
            file,
            line: seal_line,
            problem: Problem::SealMismatch {
                first_problem: Some(Box::new((line, problem))),
            },
        }),
        _ => Pumped::Problem { line, problem },
    }
}
