//! The control socket's wire as docs/CONTROL.md writes it, spoken by hand: uploads and downloads of files.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use base64ct::{Base64, Encoding};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Sends `request`, then `bytes` as data lines of at most `chunk` bytes; returns the lines
/// the daemon answered with (progress lines, then the answer last).
pub fn upload_lines(socket: &Path, request: &Value, bytes: &[u8], chunk: usize) -> Vec<Value> {
    let mut stream = UnixStream::connect(socket).unwrap();
    let mut out = format!("{request}\n").into_bytes();
    for piece in bytes.chunks(chunk.max(1)) {
        out.extend_from_slice(
            json!({"data": Base64::encode_string(piece)})
                .to_string()
                .as_bytes(),
        );
        out.push(b'\n');
    }
    // The daemon may refuse before it has read everything: its answer is there all the same.
    let _ = stream.write_all(&out);
    BufReader::new(stream)
        .lines()
        .map(|line| serde_json::from_str(&line.unwrap()).unwrap())
        .collect()
}

/// Imports `bytes` as the key file `name`: the daemon's final answer.
pub fn import(socket: &Path, name: &str, bytes: &[u8]) -> Value {
    let request = json!({"command": "import", "file_name": name, "size": bytes.len()});
    upload_lines(socket, &request, bytes, 32 * 1024)
        .pop()
        .unwrap()
}

/// Imports the file at `path` (read here, as a client would).
pub fn import_file(socket: &Path, path: &Path) -> Value {
    import(
        socket,
        &path.display().to_string(),
        &std::fs::read(path).unwrap(),
    )
}

/// Sends an export `request`, collects the file the daemon streams, says it was received
/// (with its digest) and returns the file and the final answer. A refused request returns
/// no bytes and the refusal.
pub fn download(socket: &Path, request: &Value) -> (Vec<u8>, Value) {
    let mut stream = UnixStream::connect(socket).unwrap();
    stream.write_all(format!("{request}\n").as_bytes()).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut file = Vec::new();
    loop {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "closed without an answer"
        );
        let line: Value = serde_json::from_str(&line).unwrap();
        if let Some(data) = line.get("data") {
            file.extend(Base64::decode_vec(data.as_str().unwrap()).unwrap());
        } else if let Some(end) = line.get("end") {
            let sha256 = hex::encode(Sha256::digest(&file));
            assert_eq!(end["sha256"], sha256.as_str());
            assert_eq!(end["bytes"], file.len());
            writeln!(stream, "{}", json!({"received": {"sha256": sha256}})).unwrap();
        } else {
            return (file, line);
        }
    }
}
