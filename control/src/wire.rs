//! The lines on the socket besides the request: answers, progress, file data; and reading a request line, version included.

use base64ct::{Base64, Encoding};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::limits::CONTROL_VERSION;
use crate::request::{Call, Request};

/// The daemon's last line for a request: `{"ok": true, "result": ...}` or
/// `{"ok": false, "error": "..."}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    pub ok: bool,
    /// The command's answer (see [`Call::Answer`]); present, possibly `null`, when `ok`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub result: Option<Value>,
    /// What was wrong, in words; present when not `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A field that is there, even as `null`, is `Some` (serde makes `null` into `None`).
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

impl Answer {
    /// A successful answer carrying `result`.
    pub fn success<T: Serialize>(result: &T) -> Answer {
        Answer {
            ok: true,
            // A value of these types always serializes (plain structs, maps with string keys).
            result: Some(serde_json::to_value(result).unwrap_or(Value::Null)),
            error: None,
        }
    }

    /// A refusal saying what was wrong.
    pub fn failure(message: impl std::fmt::Display) -> Answer {
        Answer {
            ok: false,
            result: None,
            error: Some(message.to_string()),
        }
    }

    /// The typed result of `C`, or the daemon's error.
    pub fn into_result<C: Call>(self) -> Result<C::Answer, AnswerError> {
        if !self.ok {
            return Err(AnswerError::Refused(self.error.unwrap_or_else(|| {
                "keymotherd refused the request without saying why".to_owned()
            })));
        }
        let result = self
            .result
            .ok_or_else(|| AnswerError::Unexpected("an ok answer without a result".to_owned()))?;
        serde_json::from_value(result).map_err(|error| AnswerError::Unexpected(error.to_string()))
    }
}

/// What a client makes of an answer that is not a result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// The daemon refused: its words.
    #[error("{0}")]
    Refused(String),
    /// The daemon's result does not have the shape this client knows (another version?).
    #[error(
        "keymotherd's answer has an unexpected shape ({0}); is keymother the same version as keymotherd?"
    )]
    Unexpected(String),
}

/// How far an import has come, in records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
}

/// The end of a file the daemon sent: its length and digest, for the client to check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEnd {
    pub bytes: u64,
    /// SHA-256 of the whole file, lower-case hex.
    pub sha256: String,
}

/// A line from the daemon before its answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum StreamLine {
    /// `{"progress": {"done": N, "total": N}}` during an import.
    Progress(Progress),
    /// `{"data": "<base64>"}`: the next bytes of an export.
    Data(String),
    /// `{"end": {"bytes": N, "sha256": "..."}}`: the export is complete.
    End(FileEnd),
}

/// Any line from the daemon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ServerLine {
    Answer(Answer),
    Stream(StreamLine),
}

/// The client's word that it has the exported file, written and flushed where it belongs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Received {
    /// SHA-256 of what it wrote, lower-case hex: must be the `end` line's.
    pub sha256: String,
}

/// The client gives up on an export (it could not write the file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Abandon {
    pub reason: String,
}

/// A line from the client after its request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum ClientLine {
    /// `{"data": "<base64>"}`: the next bytes of an import's file.
    Data(String),
    /// `{"received": {"sha256": "..."}}`: the exported file is written.
    Received(Received),
    /// `{"abandon": {"reason": "..."}}`: the exported file could not be written.
    Abandon(Abandon),
}

/// `value` as one line, line feed included.
pub fn encode_line<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing these types cannot fail: no maps with non-string keys, no custom errors.
    let mut line = serde_json::to_vec(value).unwrap_or_default();
    line.push(b'\n');
    line
}

/// Parses one line (without its line feed) as `T`.
pub fn decode_line<T: DeserializeOwned>(line: &[u8]) -> Result<T, serde_json::Error> {
    serde_json::from_slice(line)
}

/// File bytes as the text of a `data` line.
pub fn encode_data(bytes: &[u8]) -> String {
    Base64::encode_string(bytes)
}

/// The bytes a `data` line carries.
pub fn decode_data(text: &str) -> Result<Vec<u8>, RequestError> {
    Base64::decode_vec(text).map_err(|_| RequestError::BadData)
}

/// Why a line from a client was refused. The words never quote the line: it may hold a
/// component.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error(
        "unsupported control protocol version {0}: this keymotherd speaks version {CONTROL_VERSION}"
    )]
    Version(u64),
    #[error("a data line is not standard base64")]
    BadData,
}

/// Reads a request line: a JSON object with `command`, the command's fields, and optionally
/// `"version": 1`.
pub fn parse_request(line: &[u8]) -> Result<Request, RequestError> {
    let malformed = |error: serde_json::Error| RequestError::Malformed(describe(&error));
    let mut object = match serde_json::from_slice::<Value>(line).map_err(malformed)? {
        Value::Object(object) => object,
        _ => {
            return Err(RequestError::Malformed(
                "a request is a JSON object".to_owned(),
            ));
        }
    };
    match object.remove("version") {
        None => {}
        Some(Value::Number(number)) => match number.as_u64() {
            Some(version) if version == u64::from(CONTROL_VERSION) => {}
            Some(version) => return Err(RequestError::Version(version)),
            None => {
                return Err(RequestError::Malformed(
                    "version: must be a whole number".to_owned(),
                ));
            }
        },
        Some(_) => {
            return Err(RequestError::Malformed(
                "version: must be a number".to_owned(),
            ));
        }
    }
    Request::deserialize(Value::Object(object)).map_err(malformed)
}

/// serde's words for what was wrong: fields, variants, positions, and for a wrong type the
/// value found. That can quote the client's own request back to it (a component sent as a
/// string where a list belongs), so the daemon sends this only to the client that sent the
/// line and logs only [`serde_json::Error::classify`] and the position.
fn describe(error: &serde_json::Error) -> String {
    error.to_string()
}
