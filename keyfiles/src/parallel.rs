//! Opening records on worker threads while the reader and the store stay on the caller's thread, in file order.
//!
//! Unwrapping a TR-31 version B block costs about ten TDES block operations; a million of
//! them take seconds on one core. The reader (which feeds the seal) and the store (the
//! database transaction) must see records in file order, so chunks of records go round-robin
//! to the workers and their results are collected in the same round-robin order. Each worker
//! has at most four chunks in flight, so no channel ever blocks and memory stays bounded.

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

struct Worker {
    records: SyncSender<Vec<Record>>,
    results: Receiver<Vec<Opened>>,
}

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
    R: BufRead,
{
    let worker_count = std::thread::available_parallelism()
        .map(std::num::NonZeroUsize::get)
        .unwrap_or(1)
        .clamp(1, 8);
    let outcome = std::thread::scope(|scope| {
        let workers: Vec<Worker> = (0..worker_count)
            .map(|_| {
                let (records, inbox) = sync_channel::<Vec<Record>>(IN_FLIGHT_PER_WORKER);
                let (outbox, results) = sync_channel::<Vec<Opened>>(IN_FLIGHT_PER_WORKER);
                scope.spawn(move || {
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
                Worker { records, results }
            })
            .collect();
        let outcome = pump(reader, &workers, store);
        // Dropping the senders ends the workers; the scope joins them.
        drop(workers);
        outcome
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

fn pump<R: BufRead, E>(
    reader: &mut KeyFileReader<R>,
    workers: &[Worker],
    store: &mut dyn FnMut(Record) -> Result<(), Halt<E>>,
) -> Result<(), Pumped<E>> {
    let capacity = workers.len() * IN_FLIGHT_PER_WORKER;
    let (mut sent, mut received) = (0usize, 0usize);
    let mut reader_error: Option<KeyFileError> = None;
    let mut reading = true;
    loop {
        while reading && sent - received < capacity {
            let mut chunk = Vec::with_capacity(CHUNK);
            while chunk.len() < CHUNK {
                match reader.next_record() {
                    Ok(Some(record)) => chunk.push(record),
                    Ok(None) => {
                        reading = false;
                        break;
                    }
                    Err(error) => {
                        reader_error = Some(error);
                        reading = false;
                        break;
                    }
                }
            }
            if chunk.is_empty() {
                break;
            }
            if workers[sent % workers.len()].records.send(chunk).is_err() {
                break;
            }
            sent += 1;
        }
        if received == sent {
            return match reader_error {
                Some(error) => Err(Pumped::File(error)),
                None => Ok(()),
            };
        }
        let Ok(results) = workers[received % workers.len()].results.recv() else {
            // A worker died (it panicked): refuse rather than guess.
            return Err(Pumped::Problem {
                line: 0,
                problem: Problem::Io("a verification thread stopped unexpectedly".to_owned()),
            });
        };
        received += 1;
        for result in results {
            let halt = match result {
                Ok(record) => match store(record) {
                    Ok(()) => continue,
                    Err(Halt::Other(error)) => return Err(Pumped::Other(error)),
                    Err(Halt::Problem { line, problem }) => (line, problem),
                },
                Err(problem) => problem,
            };
            return Err(earliest(halt, reader_error));
        }
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
