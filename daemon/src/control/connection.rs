//! One control connection: bounded lines in and out, each within the idle timeout.

use std::time::Duration;

use keymother_control::{IDLE_TIMEOUT, MAX_LINE};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use zeroize::Zeroize;

/// How much of a refused client's input is read and dropped before closing.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;
/// How long that may take.
const DRAIN_TIME: Duration = Duration::from_secs(1);

/// Why a connection cannot go on.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectionError {
    #[error("the client sent nothing for {} s", .0.as_secs())]
    Idle(Duration),
    #[error("the client did not take an answer for {} s", .0.as_secs())]
    Stalled(Duration),
    #[error("line longer than {MAX_LINE} bytes")]
    TooLong,
    #[error("the client closed the connection")]
    Closed,
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The two halves of a client's socket.
pub(crate) struct Connection {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Connection {
    pub(crate) fn new(reader: OwnedReadHalf, writer: OwnedWriteHalf) -> Connection {
        Connection {
            reader: BufReader::with_capacity(MAX_LINE, reader),
            writer,
        }
    }

    /// The next line, without its line feed, into `line` (cleared first; wiped when a line
    /// turns out too long). Waits at most [`IDLE_TIMEOUT`] for each piece of it.
    pub(crate) async fn read_line(&mut self, line: &mut Vec<u8>) -> Result<(), ConnectionError> {
        line.clear();
        loop {
            let available = match tokio::time::timeout(IDLE_TIMEOUT, self.reader.fill_buf()).await {
                Err(_) => return Err(ConnectionError::Idle(IDLE_TIMEOUT)),
                Ok(result) => result?,
            };
            if available.is_empty() {
                return Err(ConnectionError::Closed);
            }
            let (taken, complete) = match available.iter().position(|&byte| byte == b'\n') {
                Some(end) => (end + 1, true),
                None => (available.len(), false),
            };
            let content = if complete { taken - 1 } else { taken };
            if line.len() + content >= MAX_LINE {
                line.zeroize();
                return Err(ConnectionError::TooLong);
            }
            line.extend_from_slice(&available[..content]);
            self.reader.consume(taken);
            if complete {
                return Ok(());
            }
        }
    }

    /// Waits until the client sends something (read and dropped: nothing more is expected
    /// from it) or closes its side: `true` when it closed (or the socket failed).
    /// Cancel-safe.
    pub(crate) async fn closed_or_spoke(&mut self) -> bool {
        let mut buffer = [0u8; 512];
        !matches!(self.reader.read(&mut buffer).await, Ok(read) if read > 0)
    }

    /// Writes `line` (with its line feed), waiting at most [`IDLE_TIMEOUT`] for the client
    /// to take it.
    pub(crate) async fn write_line(&mut self, line: &[u8]) -> Result<(), ConnectionError> {
        match tokio::time::timeout(IDLE_TIMEOUT, self.writer.write_all(line)).await {
            Err(_) => Err(ConnectionError::Stalled(IDLE_TIMEOUT)),
            Ok(result) => Ok(result?),
        }
    }

    /// Ends the connection after the last answer: no more writing, then whatever the client
    /// still sends is read and dropped (at most [`DRAIN_LIMIT`] bytes, for at most
    /// [`DRAIN_TIME`]), so that closing does not reset the connection before the client has
    /// read the answer (a Unix socket closed with unread data resets its peer).
    pub(crate) async fn finish(mut self) {
        let _ = self.writer.shutdown().await;
        let drain = async {
            let mut dropped = 0usize;
            let mut buffer = [0u8; 8192];
            while dropped < DRAIN_LIMIT {
                match self.reader.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(read) => dropped += read,
                }
            }
        };
        let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
    }

    /// Writes `value` as one line.
    pub(crate) async fn send<T: serde::Serialize>(
        &mut self,
        value: &T,
    ) -> Result<(), ConnectionError> {
        self.write_line(&keymother_control::encode_line(value))
            .await
    }
}
