//! docs/PROTOCOL.md against the code: the generated tables and hex-dump examples must match byte for byte.
//!
//! The sections between `<!-- BEGIN GENERATED name -->` and `<!-- END GENERATED name -->` are
//! regenerated here from the real sessions and codecs; any drift fails the test. To rewrite
//! them after an intended change: `KEYMOTHER_REGENERATE_PROTOCOL_DOC=1 cargo test -p
//! keymother-protocol --test protocol_doc`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use keymother_protocol::{
    AbortReason, ApplianceAction, ApplianceConfig, ApplianceSession, Confirmed,
    DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_RETRIES, DEFAULT_RESPONSE_TIMEOUT, Delivery, DispenseRefusal,
    ErrorCode, Frame, FrameDecoder, Message, MessageType, Mode, Smn, TerminalAction,
    TerminalConfig, TerminalOutcome, TerminalSession,
};

#[path = "protocol_doc/profile.rs"]
mod profile;

const REGENERATE: &str = "KEYMOTHER_REGENERATE_PROTOCOL_DOC";

/// The example key block: a real TR-31 version D header (K0, AES, mode of use D, exportable
/// N) in front of an obviously fake body.
const EXAMPLE_KEY_BLOCK: &str = concat!(
    "D0144K0AD00N0000",
    "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF",
    "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF",
);
const EXAMPLE_TTK_KCV: [u8; 5] = [0x1A, 0x2B, 0x3C, 0x4D, 0x5E];
const EXAMPLE_MK_KCV: [u8; 5] = [0xAB, 0xCD, 0xEF, 0x01, 0x23];
const EXAMPLE_KEY_INDEX: u32 = 278;

fn doc_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/PROTOCOL.md")
}

fn terminal_config(ttk_kcv: &[u8]) -> TerminalConfig {
    TerminalConfig {
        hardware_serial: "123L013K".parse().unwrap(),
        model: "ACME T100".parse().unwrap(),
        modes: vec![Mode::Tr31],
        ttk_kcv: ttk_kcv.to_vec(),
        response_timeout: DEFAULT_RESPONSE_TIMEOUT,
        max_retries: DEFAULT_MAX_RETRIES,
        unconfirmed_key: None,
        unconfirmed_dukpt: Vec::new(),
        krd_credential_token: Vec::new(),
    }
}

fn appliance() -> ApplianceSession {
    ApplianceSession::new(ApplianceConfig {
        device_id: "KM-0001".into(),
        ttk_kcv: EXAMPLE_TTK_KCV.to_vec(),
        modes: vec![Mode::Tr31],
        idle_timeout: DEFAULT_IDLE_TIMEOUT,
        kdh_credential_token: Vec::new(),
        certificate_requests_per_minute: 0,
        profiles: Vec::new(),
    })
}

fn at(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

fn sent_by_terminal(actions: &[TerminalAction]) -> Vec<u8> {
    let sends: Vec<&Vec<u8>> = actions
        .iter()
        .filter_map(|action| match action {
            TerminalAction::Send(bytes) => Some(bytes),
            _ => None,
        })
        .collect();
    assert_eq!(sends.len(), 1, "{actions:?}");
    sends[0].clone()
}

fn sent_by_appliance(actions: &[ApplianceAction]) -> Vec<u8> {
    let sends: Vec<&Vec<u8>> = actions
        .iter()
        .filter_map(|action| match action {
            ApplianceAction::Send(bytes) => Some(bytes),
            _ => None,
        })
        .collect();
    assert_eq!(sends.len(), 1, "{actions:?}");
    sends[0].clone()
}

/// One example frame: a title and its bytes; a damaged frame has a note instead of a table.
struct Example {
    title: String,
    bytes: Vec<u8>,
    damage: Option<String>,
}

/// Runs the example sessions through the real code and collects their frames.
fn examples() -> Vec<Example> {
    let mut examples = Vec::new();
    let mut push = |title: &str, bytes: &[u8]| {
        examples.push(Example {
            title: title.to_owned(),
            bytes: bytes.to_vec(),
            damage: None,
        })
    };

    // A complete tr31 session.
    let mut terminal = TerminalSession::new(terminal_config(&EXAMPLE_TTK_KCV));
    let mut appliance = appliance();
    let hello = sent_by_terminal(&terminal.start(at(0)));
    push("HELLO, terminal to appliance", &hello);
    let welcome = sent_by_appliance(&appliance.handle_bytes(&hello, at(10)));
    push("WELCOME, appliance to terminal", &welcome);
    let key_request = sent_by_terminal(&terminal.handle_bytes(&welcome, at(20)));
    push("KEY_REQUEST, terminal to appliance", &key_request);
    let actions = appliance.handle_bytes(&key_request, at(30));
    assert!(matches!(
        actions.last(),
        Some(ApplianceAction::Reserve { .. })
    ));
    let delivery = Delivery {
        key_index: EXAMPLE_KEY_INDEX,
        key_block: EXAMPLE_KEY_BLOCK.to_owned(),
        kcv: EXAMPLE_MK_KCV.to_vec(),
        mode_data: Vec::new(),
    };
    let key_delivery = sent_by_appliance(&appliance.handle_reservation(Ok(delivery), at(40)));
    push("KEY_DELIVERY, appliance to terminal", &key_delivery);
    let actions = terminal.handle_bytes(&key_delivery, at(50));
    assert!(matches!(
        actions.last(),
        Some(TerminalAction::InstallKey { .. })
    ));
    let confirm =
        sent_by_terminal(&terminal.handle_key_installed(Ok(EXAMPLE_MK_KCV.to_vec()), at(60)));
    push("CONFIRM, terminal to appliance", &confirm);
    let actions = appliance.handle_bytes(&confirm, at(70));
    let smn = match actions.last() {
        Some(ApplianceAction::Confirm { smn, .. }) => smn.clone(),
        other => panic!("expected Confirm, got {other:?}"),
    };
    let confirmed = sent_by_appliance(&appliance.handle_confirmation(
        Ok(Confirmed {
            key_index: EXAMPLE_KEY_INDEX,
            smn,
        }),
        at(80),
    ));
    push("CONFIRMED, appliance to terminal", &confirmed);
    let actions = terminal.handle_bytes(&confirmed, at(90));
    assert!(matches!(
        actions.last(),
        Some(TerminalAction::Finished(TerminalOutcome::Injected { .. }))
    ));
    let tr31_key_frames = [key_delivery.clone(), confirm.clone(), confirmed.clone()];

    let (frames, damaged) = nak_and_error_examples(&hello, &key_request);
    for (title, bytes) in frames {
        push(&title, &bytes);
    }

    for (title, bytes) in abort_examples() {
        push(&title, &bytes);
    }
    for (title, bytes) in certificate_examples() {
        push(&title, &bytes);
    }

    // Profile mode (mode 3): the master key, then an AES DUKPT and a TDES DUKPT slot.
    let profile_frames = profile::examples(&tr31_key_frames);
    for (title, bytes) in &profile_frames {
        push(title, bytes);
    }

    note_damage(&mut examples, &damaged);
    examples
}

/// A damaged KEY_REQUEST and its NAK, then an ERROR; and the damaged frame.
fn nak_and_error_examples(hello: &[u8], key_request: &[u8]) -> (Vec<(String, Vec<u8>)>, Vec<u8>) {
    let mut frames = Vec::new();
    let mut push = |title: &str, bytes: &[u8]| frames.push((title.to_owned(), bytes.to_vec()));
    // A damaged frame and its NAK: the KEY_REQUEST arrives with one payload bit flipped.
    let mut appliance = self::appliance();
    appliance.handle_bytes(hello, at(0));
    let mut damaged = key_request.to_vec();
    damaged[5] ^= 0x01;
    let nak = sent_by_appliance(&appliance.handle_bytes(&damaged, at(10)));
    push(
        "KEY_REQUEST as the appliance received it, damaged",
        &damaged,
    );
    push(
        "NAK, appliance to terminal (after a KEY_REQUEST whose CRC failed)",
        &nak,
    );

    // An ERROR: the vault has no key left.
    let actions = appliance.handle_bytes(key_request, at(20));
    assert!(matches!(
        actions.last(),
        Some(ApplianceAction::Reserve { .. })
    ));
    let error = sent_by_appliance(
        &appliance.handle_reservation(Err(DispenseRefusal::NoKeysAvailable), at(30)),
    );
    push(
        "ERROR, appliance to terminal (answering KEY_REQUEST: no keys available)",
        &error,
    );
    (frames, damaged)
}

/// ABORT and ACK, as the frames of a session whose terminal holds another TTK.
fn abort_examples() -> Vec<(String, Vec<u8>)> {
    let mut frames = Vec::new();
    let mut push = |title: &str, bytes: &[u8]| frames.push((title.to_owned(), bytes.to_vec()));
    // ABORT and ACK: the terminal holds another transport key than the appliance.
    let mut terminal = TerminalSession::new(terminal_config(&[0x08, 0xD7, 0xB4]));
    let mut appliance = self::appliance();
    let hello = sent_by_terminal(&terminal.start(at(0)));
    let welcome = sent_by_appliance(&appliance.handle_bytes(&hello, at(10)));
    let abort = sent_by_terminal(&terminal.handle_bytes(&welcome, at(20)));
    push(
        "ABORT, terminal to appliance (the TTK check value in WELCOME differs)",
        &abort,
    );
    let ack = sent_by_appliance(&appliance.handle_bytes(&abort, at(30)));
    push("ACK, appliance to terminal (answering ABORT)", &ack);
    frames
}

/// The TR-34 key block header of the certificate-mode example: key 278, an AES master key
/// (docs/PROTOCOL.md 9.1).
const EXAMPLE_TR34_HEADER: &str = "D0028K0AD00N0100010C00000278";

/// A two-pass certificate-mode session up to KEY_DELIVERY.
fn certificate_examples() -> Vec<(String, Vec<u8>)> {
    let mut frames = Vec::new();
    let mut push = |title: &str, bytes: &[u8]| frames.push((title.to_owned(), bytes.to_vec()));
    // Certificate mode (mode 2). The tokens are short stand-ins so the frames stay readable;
    // real ones are DER CMS of hundreds to thousands of bytes.
    let mut config = terminal_config(&EXAMPLE_TTK_KCV);
    config.modes = vec![Mode::Certificate, Mode::Tr31];
    config.krd_credential_token = b"CT_KRD".to_vec();
    let mut terminal = TerminalSession::new(config);
    let mut appliance = ApplianceSession::new(ApplianceConfig {
        modes: vec![Mode::Certificate, Mode::Tr31],
        kdh_credential_token: b"CT_KDH".to_vec(),
        ..self::appliance().config().clone()
    });
    let hello = sent_by_terminal(&terminal.start(at(0)));
    push(
        "HELLO offering certificate mode, then tr31, terminal to appliance",
        &hello,
    );
    let welcome = sent_by_appliance(&appliance.handle_bytes(&hello, at(10)));
    push(
        "WELCOME choosing certificate mode, with the KDH credential token",
        &welcome,
    );
    let actions = terminal.handle_bytes(&welcome, at(20));
    assert!(matches!(
        actions.last(),
        Some(TerminalAction::VerifyAppliance { .. })
    ));
    let freshness = keymother_protocol::CertificateFreshness::TwoPass {
        random_number_token: b"RT_KRD".to_vec(),
    };
    let key_request = sent_by_terminal(&terminal.handle_appliance_verified(Ok(freshness), at(30)));
    push(
        "KEY_REQUEST in certificate mode, two-pass, with the random number token and the KRD credential token",
        &key_request,
    );
    let actions = appliance.handle_bytes(&key_request, at(40));
    assert!(matches!(
        actions.last(),
        Some(ApplianceAction::Reserve { .. })
    ));
    let delivery = Delivery {
        key_index: EXAMPLE_KEY_INDEX,
        key_block: EXAMPLE_TR34_HEADER.to_owned(),
        kcv: EXAMPLE_MK_KCV.to_vec(),
        mode_data: keymother_protocol::CertificateDelivery {
            key_token: b"KT_KDH".to_vec(),
        }
        .encode()
        .unwrap(),
    };
    let key_delivery = sent_by_appliance(&appliance.handle_reservation(Ok(delivery), at(50)));
    push(
        "KEY_DELIVERY in certificate mode: the key block header and the key token",
        &key_delivery,
    );
    frames
}

/// Marks the damaged KEY_REQUEST's example with what happened to it on the line.
fn note_damage(examples: &mut [Example], damaged: &[u8]) {
    let received_crc = u32::from_be_bytes([damaged[6], damaged[7], damaged[8], damaged[9]]);
    let computed_crc = keymother_protocol::crc32(&damaged[1..6]);
    for example in examples.iter_mut() {
        if example.bytes == *damaged {
            example.damage = Some(format!(
                "Example 3 with bit 0 of byte 5 (the mode) flipped on the line: the CRC received \
                 is `{received_crc:08X}`, but the CRC of the bytes received is `{computed_crc:08X}`, \
                 so the appliance drops the frame and answers NAK (example 8); the terminal sends \
                 example 3 again, unchanged."
            ));
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|byte| format!("{byte:02X}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn hex_dump(bytes: &[u8]) -> String {
    let mut out = String::new();
    for (line, chunk) in bytes.chunks(16).enumerate() {
        let ascii: String = chunk
            .iter()
            .map(|&byte| {
                if (0x20..0x7F).contains(&byte) {
                    char::from(byte)
                } else {
                    '.'
                }
            })
            .collect();
        writeln!(out, "{:04X}  {:<47}  |{ascii}|", line * 16, hex(chunk)).unwrap();
    }
    out
}

/// Walks a frame field by field for the annotation table.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
    rows: Vec<(String, Vec<u8>, String)>,
}

impl Cursor<'_> {
    fn take(&mut self, name: &str, size: usize, value: String) {
        self.rows.push((
            name.to_owned(),
            self.bytes[self.at..self.at + size].to_vec(),
            value,
        ));
        self.at += size;
    }

    /// The one-byte length at the cursor.
    fn length(&self) -> usize {
        usize::from(self.bytes[self.at])
    }

    /// A two-byte length and the field it counts.
    fn long(&mut self, name: &str, value: &str) {
        let n = usize::from(u16::from_be_bytes([
            self.bytes[self.at],
            self.bytes[self.at + 1],
        ]));
        self.take(&format!("{name} length"), 2, n.to_string());
        self.take(name, n, value.to_owned());
    }
}

fn text(slice: &[u8]) -> String {
    format!("`{}`", String::from_utf8_lossy(slice))
}

/// Field-by-field reading of a frame, derived independently of the encoder: the field sizes
/// must add up to the frame, or the test fails.
fn annotate(bytes: &[u8]) -> Vec<(String, Vec<u8>, String)> {
    let mut decoder = FrameDecoder::new(at(500));
    let events = decoder.push(bytes, at(0));
    let frame: Frame = match events.as_slice() {
        [keymother_protocol::DecodeEvent::Frame(frame)] => frame.clone(),
        other => panic!("example is not one frame: {other:?}"),
    };
    let message = Message::from_frame(&frame).unwrap();
    let kind = message.message_type();
    let mut c = Cursor {
        bytes,
        at: 0,
        rows: Vec::new(),
    };
    c.take("STX", 1, String::new());
    let length = u16::from_be_bytes([bytes[1], bytes[2]]);
    c.take("LEN", 2, format!("{length} (body length)"));
    c.take("SEQ", 1, bytes[3].to_string());
    c.take("TYPE", 1, kind.name().to_owned());
    match &message {
        Message::Hello(hello) => annotate_hello(&mut c, hello),
        Message::Welcome(welcome) => annotate_welcome(&mut c, welcome),
        Message::KeyRequest(request) => {
            let mode =
                Mode::from_id(request.mode_id).map_or(String::new(), |mode| format!(" ({mode})"));
            c.take("mode", 1, format!("{}{mode}", request.mode_id));
            if request.mode_id == Mode::Certificate.id() {
                let pass = c.bytes[c.at];
                let name = match pass {
                    1 => " (one-pass)",
                    2 => " (two-pass)",
                    _ => "",
                };
                c.take("pass", 1, format!("{pass}{name}"));
                c.long(
                    "random number token",
                    "RT_KRD, DER (a stand-in for the example)",
                );
                c.long(
                    "KRD credential token",
                    "CT_KRD, DER (a stand-in for the example)",
                );
            }
        }
        Message::KeyDelivery(delivery) => {
            c.take("key index", 4, delivery.key_index.to_string());
            let n = usize::from(u16::from_be_bytes([bytes[c.at], bytes[c.at + 1]]));
            c.take("key block length", 2, n.to_string());
            let what = if delivery.mode_data.is_empty() {
                "key block"
            } else {
                "key block header"
            };
            c.take(what, n, text(delivery.key_block.as_bytes()));
            let n = c.length();
            c.take("KCV length", 1, n.to_string());
            c.take("KCV", n, String::new());
            if !delivery.mode_data.is_empty() {
                c.long("key token", "KT_KDH, DER (a stand-in for the example)");
            }
        }
        Message::Confirm(confirm) => {
            c.take("key index", 4, confirm.key_index.to_string());
            let n = c.length();
            c.take("KCV length", 1, n.to_string());
            c.take("KCV", n, String::new());
            let n = c.length();
            c.take("SMN length", 1, n.to_string());
            c.take("SMN", n, text(confirm.smn.as_str().as_bytes()));
        }
        Message::Confirmed(confirmed) => {
            c.take("key index", 4, confirmed.key_index.to_string());
            let n = c.length();
            c.take("SMN length", 1, n.to_string());
            c.take("SMN", n, text(confirmed.smn.as_str().as_bytes()));
        }
        Message::Error(error) => {
            c.take("error code", 2, error.code.to_string());
            let n = c.length();
            c.take("detail length", 1, n.to_string());
            c.take("detail", n, text(error.detail.as_bytes()));
        }
        Message::Abort(abort) => {
            c.take("reason", 1, abort.reason.to_string());
            let n = c.length();
            c.take("detail length", 1, n.to_string());
            c.take("detail", n, text(abort.detail.as_bytes()));
        }
        Message::DukptRequest(_)
        | Message::DukptDelivery(_)
        | Message::DukptConfirm(_)
        | Message::DukptConfirmed(_) => profile::annotate_dukpt(&mut c, &message),
        Message::Ack | Message::Nak => {}
    }
    c.take(
        "CRC",
        4,
        "CRC-32/ISO-HDLC over LEN, SEQ, TYPE and payload".to_owned(),
    );
    assert_eq!(
        c.at,
        bytes.len(),
        "the annotation of {kind} does not cover the frame"
    );
    c.rows
}

fn annotate_hello(c: &mut Cursor<'_>, hello: &keymother_protocol::Hello) {
    c.take("protocol version", 1, hello.protocol_version.to_string());
    c.take("mode count", 1, hello.mode_ids.len().to_string());
    let modes: Vec<String> = hello
        .mode_ids
        .iter()
        .map(|id| match Mode::from_id(*id) {
            Some(mode) => format!("{id} ({mode})"),
            None => id.to_string(),
        })
        .collect();
    c.take("mode ids", hello.mode_ids.len(), modes.join(", "));
    let n = c.length();
    c.take("model length", 1, n.to_string());
    c.take("terminal model", n, text(hello.model.as_str().as_bytes()));
    let n = c.length();
    c.take("hardware serial length", 1, n.to_string());
    c.take(
        "hardware serial",
        n,
        text(hello.hardware_serial.as_str().as_bytes()),
    );
    c.take(
        "capability flags",
        2,
        format!("0x{:04X}", hello.capabilities.bits()),
    );
}

fn annotate_welcome(c: &mut Cursor<'_>, welcome: &keymother_protocol::Welcome) {
    c.take("protocol version", 1, welcome.protocol_version.to_string());
    let mode = Mode::from_id(welcome.mode_id).map_or(String::new(), |mode| format!(" ({mode})"));
    c.take("chosen mode", 1, format!("{}{mode}", welcome.mode_id));
    let n = c.length();
    c.take("device id length", 1, n.to_string());
    c.take("device id", n, text(welcome.device_id.as_bytes()));
    let n = c.length();
    c.take("TTK KCV length", 1, n.to_string());
    c.take("TTK KCV", n, String::new());
    if welcome.mode_id == Mode::Certificate.id() {
        c.long(
            "KDH credential token",
            "CT_KDH, DER (a stand-in for the example)",
        );
    }
    if welcome.mode_id == Mode::Profile.id() {
        profile::annotate_welcome(c, welcome);
    }
}

fn render_examples() -> String {
    let mut out = String::new();
    for (number, example) in examples().iter().enumerate() {
        writeln!(out, "#### Example {}: {}\n", number + 1, example.title).unwrap();
        writeln!(out, "```text\n{}```\n", hex_dump(&example.bytes)).unwrap();
        if let Some(note) = &example.damage {
            writeln!(out, "{note}\n").unwrap();
            continue;
        }
        writeln!(out, "| bytes | field | value |\n| --- | --- | --- |").unwrap();
        for (name, bytes, value) in annotate(&example.bytes) {
            let shown = if bytes.len() > 8 {
                format!("({} bytes)", bytes.len())
            } else {
                format!("`{}`", hex(&bytes))
            };
            writeln!(out, "| {shown} | {name} | {value} |").unwrap();
        }
        out.push('\n');
    }
    out
}

fn render_message_types() -> String {
    let mut out =
        String::from("| TYPE | name | sent by | answered by |\n| --- | --- | --- | --- |\n");
    for kind in MessageType::ALL {
        let (sender, answer) = match kind {
            MessageType::Hello => ("terminal", "WELCOME or ERROR"),
            MessageType::KeyRequest => ("terminal", "KEY_DELIVERY or ERROR"),
            MessageType::Confirm => ("terminal", "CONFIRMED or ERROR"),
            MessageType::Abort => ("terminal", "ACK or ERROR"),
            MessageType::DukptRequest => ("terminal", "DUKPT_DELIVERY or ERROR"),
            MessageType::DukptConfirm => ("terminal", "DUKPT_CONFIRMED or ERROR"),
            MessageType::Nak => ("either side", "the last frame, sent again"),
            _ => ("appliance", "(a response)"),
        };
        writeln!(
            out,
            "| `0x{:02X}` | {} | {sender} | {answer} |",
            kind.id(),
            kind.name()
        )
        .unwrap();
    }
    out
}

fn render_error_codes() -> String {
    let mut out = String::from("| code | name | meaning |\n| --- | --- | --- |\n");
    for code in ErrorCode::ALL {
        writeln!(
            out,
            "| `0x{:04X}` | {} | {} |",
            code.0,
            code.name().unwrap(),
            code.meaning().unwrap()
        )
        .unwrap();
    }
    out
}

fn render_abort_reasons() -> String {
    let mut out = String::from("| reason | name | meaning |\n| --- | --- | --- |\n");
    for reason in AbortReason::ALL {
        writeln!(
            out,
            "| `0x{:02X}` | {} | {} |",
            reason.0,
            reason.name().unwrap(),
            reason.meaning().unwrap()
        )
        .unwrap();
    }
    out
}

/// Replaces the body of each generated section; returns the new document.
fn regenerate(document: &str, sections: &[(&str, String)]) -> String {
    let mut document = document.to_owned();
    for (name, body) in sections {
        let begin = format!("<!-- BEGIN GENERATED {name} -->\n");
        let end = format!("<!-- END GENERATED {name} -->");
        let start = document
            .find(&begin)
            .unwrap_or_else(|| panic!("docs/PROTOCOL.md lacks the marker {begin:?}"))
            + begin.len();
        let stop = start
            + document[start..]
                .find(&end)
                .unwrap_or_else(|| panic!("docs/PROTOCOL.md lacks the marker {end:?}"));
        document.replace_range(start..stop, body);
    }
    document
}

#[test]
fn protocol_md_matches_the_code() {
    let path = doc_path();
    let document = std::fs::read_to_string(&path).expect("docs/PROTOCOL.md");
    let sections = [
        ("message-types", render_message_types()),
        ("error-codes", render_error_codes()),
        ("abort-reasons", render_abort_reasons()),
        ("examples", render_examples()),
    ];
    let expected = regenerate(&document, &sections);
    if std::env::var_os(REGENERATE).is_some() {
        if expected != document {
            std::fs::write(&path, &expected).expect("rewrite docs/PROTOCOL.md");
        }
        return;
    }
    if expected != document {
        let first_difference = document
            .lines()
            .zip(expected.lines())
            .enumerate()
            .find(|(_, (have, want))| have != want)
            .map(|(line, (have, want))| {
                format!("line {}:\n  doc:  {have}\n  code: {want}", line + 1)
            })
            .unwrap_or_else(|| "the documents differ in length".to_owned());
        panic!(
            "docs/PROTOCOL.md has drifted from the code ({first_difference}).\n\
             If the change is intended, rewrite the generated sections with\n  \
             {REGENERATE}=1 cargo test -p keymother-protocol --test protocol_doc"
        );
    }
}

#[test]
fn example_smn_is_the_briefs() {
    let smn = Smn::new(
        &"123L013K".parse().unwrap(),
        keymother_protocol::KeyIndex::new(EXAMPLE_KEY_INDEX).unwrap(),
    );
    assert_eq!(smn.as_str(), "123L013K00000278");
}

#[test]
fn hand_written_message_headings_carry_the_right_type_ids() {
    let document = std::fs::read_to_string(doc_path()).expect("docs/PROTOCOL.md");
    for kind in MessageType::ALL {
        let heading = format!("### {} (`0x{:02X}`)", kind.name(), kind.id());
        assert!(
            document.contains(&heading),
            "docs/PROTOCOL.md lacks {heading:?}"
        );
    }
}

/// The certificate-mode example's key block header is the TR-31 header section 9.1.3
/// describes: K0, AES, mode of use D, key version 00, exportability N, one proprietary block
/// "01" holding the key index in eight digits, and length digits counting the header alone.
#[test]
fn the_tr34_key_block_header_example_is_the_documented_tr31_header() {
    use keymother_crypto::tr31::{Algorithm, Exportability, Header, KeyUsage, ModeOfUse};
    let header: Header = EXAMPLE_TR34_HEADER.parse().unwrap();
    assert_eq!(header.key_usage, KeyUsage::KeyEncryption);
    assert_eq!(header.algorithm, Algorithm::Aes);
    assert_eq!(header.mode_of_use, ModeOfUse::DecryptOnly);
    assert_eq!(header.exportability, Exportability::NonExportable);
    assert_eq!(header.key_version.to_string(), "00");
    assert_eq!(header.optional_blocks.len(), 1);
    let block = header.optional_block("01").unwrap();
    assert_eq!(block.data_text(), format!("{EXAMPLE_KEY_INDEX:08}"));
    // `Header`'s text writes 0000 for the length; the protocol's header counts itself.
    let text = header.to_string();
    assert_eq!(text.len(), EXAMPLE_TR34_HEADER.len());
    assert_eq!(&EXAMPLE_TR34_HEADER[1..5], format!("{:04}", text.len()));
    assert_eq!(
        format!("{}{}{}", &text[..1], &EXAMPLE_TR34_HEADER[1..5], &text[5..]),
        EXAMPLE_TR34_HEADER
    );
}
