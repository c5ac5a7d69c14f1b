//! docs/CONTROL.md and the types of keymother-control cannot disagree: every example in the document is read with these types and must come out exactly as written, every command has its examples, and the limits and error texts are stated with their values.
//!
//! The document's conventions, which this test relies on:
//!
//! - Fenced code blocks tagged `json request`, `json answer`, `json stream` and `json client`
//!   hold one JSON value each (pretty-printed or not). Any other `json ...` tag is an error
//!   here, so a mistyped tag cannot hide an example from the checks.
//! - A `json request` block is a request line. It must be accepted by [`parse_request`] and
//!   serialize back to the block's JSON, without its `version` field; a field the block leaves
//!   out (an optional one, which the parser fills with its default) is compared as that
//!   default.
//! - A `json answer` block is an answer line, `{"ok": true, "result": X}` or
//!   `{"ok": false, "error": "..."}`, and answers the nearest `json request` block before it.
//!   For `ok: true`, X is read with [`Answer::into_result`] as the result type of that
//!   request's command ([`Call::Answer`]), and serializing the typed result must give X
//!   exactly: a field documented but not in the type fails to read (the types deny unknown
//!   fields), a field in the type but not documented comes back where the document has none.
//! - `json stream` blocks are lines keymotherd sends before its answer ([`StreamLine`]);
//!   `json client` blocks are lines the client sends after its request ([`ClientLine`]). Each
//!   must read as its kind and serialize back to itself. Between one request block and the
//!   next, the file the data lines carry must match what the request, the end line, the
//!   received line and the answer say about it (size, length, SHA-256).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};

use keymother_control::{
    self as api, Answer, CONTROL_VERSION, Call, ClientLine, DATA_CHUNK, IDLE_TIMEOUT, MAX_BDK_FILE,
    MAX_CONNECTIONS, MAX_FILE_NAME, MAX_KEY_FILE, MAX_LINE, Request, RequestError, StreamLine,
    parse_request,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The document, next to this crate.
const DOCUMENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/CONTROL.md");

fn document() -> String {
    std::fs::read_to_string(DOCUMENT)
        .unwrap_or_else(|error| panic!("{DOCUMENT}: cannot read it: {error}"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Request,
    Answer,
    Stream,
    Client,
}

/// One tagged example: its kind, the line its fence opens on, and its JSON.
struct Example {
    kind: Kind,
    line: usize,
    value: Value,
}

impl Example {
    fn at(&self) -> String {
        format!("docs/CONTROL.md:{}", self.line)
    }
}

/// Every `json ...` block of `text`, in order.
fn examples(text: &str) -> Vec<Example> {
    let mut found = Vec::new();
    let mut open: Option<(String, usize, Vec<&str>)> = None;
    for (number, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        match open.take() {
            Some((info, start, lines)) if trimmed == "```" => {
                let kind = match info.as_str() {
                    "json request" => Kind::Request,
                    "json answer" => Kind::Answer,
                    "json stream" => Kind::Stream,
                    "json client" => Kind::Client,
                    other if other == "json" || other.starts_with("json ") => panic!(
                        "docs/CONTROL.md:{start}: a block tagged {other:?}: use json request, json answer, json stream or json client"
                    ),
                    _ => continue,
                };
                let body = lines.join("\n");
                let value = serde_json::from_str(&body).unwrap_or_else(|error| {
                    panic!("docs/CONTROL.md:{start}: not one JSON value: {error}")
                });
                found.push(Example {
                    kind,
                    line: start,
                    value,
                });
            }
            Some((info, start, mut lines)) => {
                lines.push(line);
                open = Some((info, start, lines));
            }
            None => {
                if let Some(info) = trimmed.strip_prefix("```") {
                    open = Some((info.trim().to_owned(), number + 1, Vec::new()));
                }
            }
        }
    }
    if let Some((_, start, _)) = open {
        panic!("docs/CONTROL.md:{start}: a code block that is never closed");
    }
    found
}

/// The typed result of `answer` as command `C` answers it, serialized again.
fn typed<C: Call>(answer: Answer) -> Result<Value, String> {
    let result = answer
        .into_result::<C>()
        .map_err(|error| error.to_string())?;
    serde_json::to_value(&result).map_err(|error| error.to_string())
}

/// `answer`'s result read as the result type of `request`'s command and serialized again.
/// No wildcard arm: a command added to [`Request`] does not compile here until it is checked.
fn retyped(request: &Request, answer: Answer) -> Result<Value, String> {
    match request {
        Request::Status(_) => typed::<api::Status>(answer),
        Request::Ceremony(_) => typed::<api::Ceremony>(answer),
        Request::Import(_) => typed::<api::Import>(answer),
        Request::Inventory(_) => typed::<api::Inventory>(answer),
        Request::SmnRows(_) => typed::<api::SmnRows>(answer),
        Request::ExportSmn(_) => typed::<api::ExportSmn>(answer),
        Request::AuditVerify(_) => typed::<api::AuditVerify>(answer),
        Request::AuditExport(_) => typed::<api::AuditExport>(answer),
        Request::Void(_) => typed::<api::Void>(answer),
        Request::Zeroize(_) => typed::<api::Zeroize>(answer),
        Request::KdhRequest(_) => typed::<api::KdhRequest>(answer),
        Request::KdhInstall(_) => typed::<api::KdhInstall>(answer),
        Request::KdhStatus(_) => typed::<api::KdhStatus>(answer),
        Request::LoginChallenge(_) => typed::<api::LoginChallenge>(answer),
        Request::Login(_) => typed::<api::Login>(answer),
        Request::Logout(_) => typed::<api::Logout>(answer),
        Request::ClockSet(_) => typed::<api::ClockSet>(answer),
        Request::BdkCeremony(_) => typed::<api::BdkCeremony>(answer),
        Request::BdkStatus(_) => typed::<api::BdkStatus>(answer),
        Request::BdkImport(_) => typed::<api::BdkImport>(answer),
        Request::ExportDukpt(_) => typed::<api::ExportDukpt>(answer),
        Request::ExpectedImport(_) => typed::<api::ExpectedImport>(answer),
        Request::ExpectedClose(_) => typed::<api::ExpectedClose>(answer),
        Request::Reconcile(_) => typed::<api::Reconcile>(answer),
        Request::ReconcileExport(_) => typed::<api::ReconcileExport>(answer),
        Request::BatchWithdraw(_) => typed::<api::BatchWithdraw>(answer),
        Request::ReinjectGrant(_) => typed::<api::ReinjectGrant>(answer),
        Request::ReinjectList(_) => typed::<api::ReinjectList>(answer),
        Request::ReinjectRevoke(_) => typed::<api::ReinjectRevoke>(answer),
        Request::Pending(_) => typed::<api::Pending>(answer),
        Request::Report(_) => typed::<api::Report>(answer),
        Request::VaultCheck(_) => typed::<api::VaultCheck>(answer),
    }
}

/// One request of every command, built by hand; [`retyped`] and this list are checked against
/// the commands serde knows ([`commands_serde_knows`]).
fn one_of_each() -> Vec<Request> {
    vec![
        api::Status {}.into(),
        api::Ceremony {
            secret: "kek".to_owned(),
            algorithm: "AES-128".to_owned(),
            components: vec![component()],
            expect_kcv: None,
            replace: false,
        }
        .into(),
        api::Import {
            file_name: "k".to_owned(),
            size: 0,
        }
        .into(),
        api::Inventory {}.into(),
        api::SmnRows {}.into(),
        api::ExportSmn {
            file_name: "s".to_owned(),
            only_new: false,
        }
        .into(),
        api::AuditVerify {}.into(),
        api::AuditExport {
            file_name: "a".to_owned(),
        }
        .into(),
        api::Void {
            key_index: Some(keymother_domain::KeyIndex::new(1).unwrap()),
            hardware_serial: None,
            reason: "r".to_owned(),
        }
        .into(),
        api::Zeroize {
            confirm_device_id: "D".to_owned(),
            reason: "r".to_owned(),
        }
        .into(),
        api::KdhRequest::default().into(),
        api::KdhInstall {
            certificate: "c".to_owned(),
        }
        .into(),
        api::KdhStatus {}.into(),
        api::LoginChallenge {}.into(),
        api::Login {
            certificate: "c".to_owned(),
            challenge: "00".repeat(32),
            signed_at: 0,
            signature: "s".to_owned(),
            intermediates: Vec::new(),
        }
        .into(),
        api::Logout {}.into(),
        api::ClockSet {
            time: "2026-12-06T10:15:00Z".to_owned(),
            name: "n".to_owned(),
            role: "custodian".to_owned(),
            backwards: false,
        }
        .into(),
        api::BdkCeremony {
            name: "PIN".parse().unwrap(),
            algorithm: "AES-128".to_owned(),
            bdk_id: "12345678".parse().unwrap(),
            devices: "90123456-9012FFFF".parse().unwrap(),
            components: vec![component()],
            expect_kcv: None,
            replace: false,
        }
        .into(),
        api::BdkStatus {}.into(),
        api::BdkImport {
            file_name: "b".to_owned(),
            size: 0,
            replace: false,
        }
        .into(),
        api::ExportDukpt {
            file_name: "d".to_owned(),
            only_new: false,
        }
        .into(),
        api::ExpectedImport {
            name: "RUN".to_owned(),
            file_name: "e".to_owned(),
            size: 0,
        }
        .into(),
        api::ExpectedClose {
            name: "RUN".to_owned(),
        }
        .into(),
        api::Reconcile::default().into(),
        api::ReconcileExport {
            name: None,
            file_name: "r".to_owned(),
        }
        .into(),
        api::BatchWithdraw {
            batch_id: "B-1".parse().unwrap(),
            reason: "r".to_owned(),
        }
        .into(),
        api::ReinjectGrant {
            hardware_serial: "123L013K".parse().unwrap(),
            slot: None,
            reason: "r".to_owned(),
        }
        .into(),
        api::ReinjectList::default().into(),
        api::ReinjectRevoke {
            grant: 1,
            reason: "r".to_owned(),
        }
        .into(),
        api::Pending::default().into(),
        api::Report::default().into(),
        api::VaultCheck {}.into(),
    ]
}

/// A custodian's component, for [`one_of_each`].
fn component() -> api::CustodianComponent {
    api::CustodianComponent {
        custodian: "Ann Lee".to_owned(),
        component: api::ComponentHex::new("00".repeat(16)),
        kcv: None,
    }
}

/// The command names the request parser accepts, from its own refusal of an unknown one
/// ("unknown variant `x`, expected one of `status`, ..."): a command added to [`Request`] is
/// in this list without anyone adding it here.
fn commands_serde_knows() -> BTreeSet<String> {
    let Err(error) = parse_request(br#"{"command":"no-such-command"}"#) else {
        panic!("an unknown command was accepted");
    };
    let words = error.to_string();
    let (_, listed) = words
        .split_once("expected one of ")
        .unwrap_or_else(|| panic!("the parser's refusal no longer lists the commands: {words}"));
    listed
        .split(", ")
        .map(|name| name.trim_matches('`').to_owned())
        .collect()
}

/// What the document says, checked: the commands with a request example, with a successful
/// answer, and the request fields its examples show per command.
#[derive(Default)]
struct Coverage {
    requests: BTreeSet<String>,
    answered: BTreeSet<String>,
    /// Per command: the fields the examples write, and the fields the request type has.
    fields_written: BTreeMap<String, BTreeSet<String>>,
    fields_typed: BTreeMap<String, BTreeSet<String>>,
}

/// The file bytes seen since the last request block, and what was said about them.
#[derive(Default)]
struct Transfer {
    uploaded: Vec<u8>,
    downloaded: Vec<u8>,
    end: Option<api::FileEnd>,
}

/// Reads a request block: accepted, serializes back to itself. Returns the request.
fn check_request(example: &Example, coverage: &mut Coverage) -> Request {
    let at = example.at();
    let line = serde_json::to_vec(&example.value).unwrap();
    let request = parse_request(&line)
        .unwrap_or_else(|error| panic!("{at}: the request is refused: {error}"));
    let mut written = example.value.clone();
    let Some(object) = written.as_object_mut() else {
        panic!("{at}: a request is an object");
    };
    if let Some(version) = object.remove("version") {
        assert_eq!(version, json!(CONTROL_VERSION), "{at}: version");
    }
    let fields: BTreeSet<String> = object.keys().cloned().collect();
    let again = serde_json::to_value(&request).unwrap();
    let command = request.command();
    assert_eq!(
        again.get("command"),
        Some(&json!(command)),
        "{at}: Request::command() is not the name serde writes"
    );
    // Fields the block leaves out are optional ones the parser filled with their defaults.
    let mut expected = written.clone();
    if let (Some(expected), Some(again)) = (expected.as_object_mut(), again.as_object()) {
        for (name, value) in again {
            expected
                .entry(name.clone())
                .or_insert_with(|| value.clone());
        }
    }
    assert_eq!(
        again, expected,
        "{at}: the {command} request does not serialize back to what the document writes"
    );
    coverage.requests.insert(command.to_owned());
    coverage
        .fields_written
        .entry(command.to_owned())
        .or_default()
        .extend(fields);
    coverage
        .fields_typed
        .entry(command.to_owned())
        .or_default()
        .extend(
            again
                .as_object()
                .into_iter()
                .flat_map(|o| o.keys().cloned()),
        );
    request
}

/// Reads an answer block as the answer to `request`.
fn check_answer(
    example: &Example,
    request: Option<&Request>,
    transfer: &Transfer,
    coverage: &mut Coverage,
) {
    let at = example.at();
    let answer: Answer = serde_json::from_value(example.value.clone())
        .unwrap_or_else(|error| panic!("{at}: not an answer line: {error}"));
    let keys: BTreeSet<&str> = example
        .value
        .as_object()
        .into_iter()
        .flat_map(|object| object.keys().map(String::as_str))
        .collect();
    if !answer.ok {
        assert_eq!(
            keys,
            BTreeSet::from(["ok", "error"]),
            "{at}: a refusal is {{\"ok\": false, \"error\": \"...\"}}"
        );
        return;
    }
    assert_eq!(
        keys,
        BTreeSet::from(["ok", "result"]),
        "{at}: a success is {{\"ok\": true, \"result\": ...}}"
    );
    let Some(request) = request else {
        panic!("{at}: a successful answer with no request block before it");
    };
    let command = request.command();
    let documented = example.value["result"].clone();
    let again = retyped(request, answer).unwrap_or_else(|error| {
        panic!("{at}: not a result of {command}: {error}");
    });
    assert_eq!(
        again, documented,
        "{at}: the {command} result does not serialize back to what the document writes \
         (a field in the type and not in the document, or the other way round?)"
    );
    check_file(&at, request, transfer, &documented);
    coverage.answered.insert(command.to_owned());
}

/// The file of a transfer against what the answer says of it.
fn check_file(at: &str, request: &Request, transfer: &Transfer, result: &Value) {
    let file = match request {
        Request::Import(api::Import { size, .. })
        | Request::ExpectedImport(api::ExpectedImport { size, .. })
            if !transfer.uploaded.is_empty() =>
        {
            assert_eq!(
                transfer.uploaded.len() as u64,
                *size,
                "{at}: the data lines do not carry the size the import request announces"
            );
            &transfer.uploaded
        }
        Request::ExportSmn(_)
        | Request::AuditExport(_)
        | Request::ExportDukpt(_)
        | Request::ReconcileExport(_)
            if transfer.end.is_some() =>
        {
            &transfer.downloaded
        }
        _ => return,
    };
    assert_eq!(
        result.get("file_sha256"),
        Some(&json!(hex::encode(Sha256::digest(file)))),
        "{at}: file_sha256 is not the SHA-256 of the file the data lines carry"
    );
}

/// Reads a daemon line (before the answer) and keeps the file bytes it carries.
fn check_stream(example: &Example, transfer: &mut Transfer) {
    let at = example.at();
    let line: StreamLine = serde_json::from_value(example.value.clone())
        .unwrap_or_else(|error| panic!("{at}: not a progress, data or end line: {error}"));
    assert_eq!(
        serde_json::to_value(&line).unwrap(),
        example.value,
        "{at}: does not serialize back to itself"
    );
    match line {
        StreamLine::Progress(progress) => {
            assert!(progress.done <= progress.total, "{at}: done > total");
        }
        StreamLine::Data(data) => {
            let bytes = api::decode_data(&data).unwrap_or_else(|error| panic!("{at}: {error}"));
            assert!(
                bytes.len() <= DATA_CHUNK,
                "{at}: more than DATA_CHUNK bytes"
            );
            transfer.downloaded.extend(bytes);
        }
        StreamLine::End(end) => {
            assert_eq!(
                end.bytes,
                transfer.downloaded.len() as u64,
                "{at}: bytes is not the length of the data before it"
            );
            assert_eq!(
                end.sha256,
                hex::encode(Sha256::digest(&transfer.downloaded)),
                "{at}: sha256 is not the SHA-256 of the data before it"
            );
            transfer.end = Some(end);
        }
    }
}

/// Reads a client line (after the request) and keeps the file bytes it carries.
fn check_client(example: &Example, transfer: &mut Transfer) {
    let at = example.at();
    let line: ClientLine = serde_json::from_value(example.value.clone())
        .unwrap_or_else(|error| panic!("{at}: not a data, received or abandon line: {error}"));
    assert_eq!(
        serde_json::to_value(&line).unwrap(),
        example.value,
        "{at}: does not serialize back to itself"
    );
    match line {
        ClientLine::Data(data) => {
            let bytes = api::decode_data(&data).unwrap_or_else(|error| panic!("{at}: {error}"));
            let line_length = api::encode_line(&ClientLine::Data(data)).len();
            assert!(line_length <= MAX_LINE, "{at}: longer than MAX_LINE");
            transfer.uploaded.extend(bytes);
        }
        ClientLine::Received(received) => {
            let Some(end) = &transfer.end else {
                panic!("{at}: a received line with no end line before it");
            };
            assert_eq!(
                received.sha256, end.sha256,
                "{at}: received is not the end line's digest"
            );
        }
        ClientLine::Abandon(abandon) => {
            assert!(
                !abandon.reason.is_empty(),
                "{at}: an abandon without reason"
            );
        }
    }
}

/// Walks the document's examples in order and checks each; what they cover.
fn check_examples(text: &str) -> Coverage {
    let mut coverage = Coverage::default();
    let mut request: Option<Request> = None;
    let mut transfer = Transfer::default();
    for example in examples(text) {
        match example.kind {
            Kind::Request => {
                request = Some(check_request(&example, &mut coverage));
                transfer = Transfer::default();
            }
            Kind::Answer => {
                check_answer(&example, request.as_ref(), &transfer, &mut coverage);
            }
            Kind::Stream => check_stream(&example, &mut transfer),
            Kind::Client => check_client(&example, &mut transfer),
        }
    }
    coverage
}

#[test]
fn every_example_reads_with_the_types_and_serializes_back_to_itself() {
    let text = document();
    let all = examples(&text);
    for kind in [Kind::Request, Kind::Answer, Kind::Stream, Kind::Client] {
        assert!(
            all.iter().any(|example| example.kind == kind),
            "docs/CONTROL.md has no {kind:?} example"
        );
    }
    check_examples(&text);
}

#[test]
fn every_command_has_a_request_and_a_successful_answer_and_every_field_an_example() {
    let known = commands_serde_knows();
    let built: BTreeSet<String> = one_of_each()
        .iter()
        .map(|request| request.command().to_owned())
        .collect();
    assert_eq!(
        built, known,
        "one_of_each() here and the commands of Request differ"
    );
    for request in one_of_each() {
        let written = serde_json::to_value(&request).unwrap();
        assert_eq!(
            written["command"],
            json!(request.command()),
            "Request::command() is not the name serde writes"
        );
    }
    let coverage = check_examples(&document());
    let missing: Vec<&String> = known.difference(&coverage.requests).collect();
    assert!(
        missing.is_empty(),
        "docs/CONTROL.md has no request example for {missing:?}"
    );
    let unanswered: Vec<&String> = known.difference(&coverage.answered).collect();
    assert!(
        unanswered.is_empty(),
        "docs/CONTROL.md has no successful answer example for {unanswered:?}"
    );
    for (command, typed) in &coverage.fields_typed {
        let written = &coverage.fields_written[command];
        let unshown: Vec<&String> = typed.difference(written).collect();
        assert!(
            unshown.is_empty(),
            "docs/CONTROL.md: no {command} request example shows the fields {unshown:?}"
        );
    }
}

/// Whether `text` has `number` as a whole number (no digit right before or after it).
fn has_number(text: &str, number: &str) -> bool {
    text.match_indices(number).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + number.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_digit()) && !after.is_some_and(|c| c.is_ascii_digit())
    })
}

#[test]
fn the_limits_are_stated_with_their_values() {
    let text = document();
    let limits = [
        ("CONTROL_VERSION", CONTROL_VERSION.to_string()),
        ("MAX_LINE", MAX_LINE.to_string()),
        ("IDLE_TIMEOUT", IDLE_TIMEOUT.as_secs().to_string()),
        ("MAX_CONNECTIONS", MAX_CONNECTIONS.to_string()),
        ("MAX_KEY_FILE", MAX_KEY_FILE.to_string()),
        ("MAX_BDK_FILE", MAX_BDK_FILE.to_string()),
        ("DATA_CHUNK", DATA_CHUNK.to_string()),
        ("MAX_FILE_NAME", MAX_FILE_NAME.to_string()),
    ];
    for (name, value) in limits {
        let quoted = format!("`{name}`");
        assert!(
            text.lines()
                .any(|line| line.contains(&quoted) && has_number(line, &value)),
            "docs/CONTROL.md has no line naming {quoted} with its value {value}"
        );
    }
    // The figures derived from them.
    let largest_content = (MAX_LINE - 1).to_string();
    let largest_data = ((MAX_LINE - 1 - r#"{"data":""}"#.len()) / 4 * 3).to_string();
    let idle = format!("{} s", IDLE_TIMEOUT.as_secs());
    for figure in [&largest_content, &largest_data] {
        assert!(
            has_number(&text, figure),
            "docs/CONTROL.md does not state {figure}"
        );
    }
    for words in [
        format!("request longer than {MAX_LINE} bytes"),
        format!("keymotherd is busy: {MAX_CONNECTIONS} control connections are in use; try again"),
        format!("line longer than {MAX_LINE} bytes"),
        format!("the client sent nothing for {idle}"),
        format!("the client did not take an answer for {idle}"),
        format!("keymotherd takes key files of at most {MAX_KEY_FILE} bytes"),
    ] {
        assert!(
            text.contains(&words),
            "docs/CONTROL.md does not say {words:?}"
        );
    }
}

#[test]
fn the_request_errors_are_quoted_as_the_parser_words_them() {
    let text = document();
    // The requests the document lists with their refusals, then the versions it describes.
    let listed: [&[u8]; 11] = [
        b"hello",
        b"",
        br#"{"command":"status""#,
        b"[]",
        b"{}",
        br#"{"command":"reboot"}"#,
        br#"{"command":"status","verbose":true}"#,
        br#"{"command":"void","key_index":7,"reason":"x","force":1}"#,
        br#"{"command":"void","key_index":7}"#,
        br#"{"command":"void","key_index":"7","reason":"x"}"#,
        br#"{"command":"import","file_name":"k","size":-1}"#,
    ];
    let versions: [&[u8]; 4] = [
        br#"{"command":"status","version":2}"#,
        br#"{"command":"status","version":1.0}"#,
        br#"{"command":"status","version":"1"}"#,
        br#"{"command":"status","version":null}"#,
    ];
    for (line, shown_too) in listed
        .into_iter()
        .map(|line| (line, true))
        .chain(versions.into_iter().map(|line| (line, false)))
    {
        let shown = String::from_utf8_lossy(line);
        let Err(error) = parse_request(line) else {
            panic!("{shown} is accepted");
        };
        let words = error.to_string();
        assert!(
            text.contains(&words),
            "docs/CONTROL.md does not quote the refusal of {shown}: {words:?}"
        );
        if shown_too && !line.is_empty() {
            assert!(
                text.contains(shown.as_ref()),
                "docs/CONTROL.md does not show the request {shown}"
            );
        }
    }
    for words in [
        RequestError::Version(2).to_string(),
        RequestError::BadData.to_string(),
    ] {
        let words = words.trim_start_matches("malformed request: ");
        assert!(
            text.contains(words),
            "docs/CONTROL.md does not say {words:?}"
        );
    }
    // A request is accepted with "version": 1 and without it, and the same.
    let with = parse_request(br#"{"version":1,"command":"status"}"#).unwrap();
    let without = parse_request(br#"{"command":"status"}"#).unwrap();
    assert_eq!(
        serde_json::to_value(&with).unwrap(),
        serde_json::to_value(&without).unwrap()
    );
}

#[test]
fn the_operator_session_table_names_every_command_once() {
    let text = document();
    let start = text
        .find("| command | needs an operator session")
        .expect("section 5's table of commands and operator sessions");
    let table = &text[start..];
    let table = &table[..table.find("\n\n").unwrap_or(table.len())];
    let listed: Vec<String> = table
        .lines()
        .skip(2)
        .filter_map(|row| row.strip_prefix("| `"))
        .filter_map(|row| row.split_once('`'))
        .map(|(name, _)| name.to_owned())
        .collect();
    let unique: BTreeSet<String> = listed.iter().cloned().collect();
    assert_eq!(
        unique.len(),
        listed.len(),
        "a command listed twice: {listed:?}"
    );
    assert_eq!(unique, commands_serde_knows());
}
