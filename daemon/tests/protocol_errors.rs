//! Bad frames and bad requests over a real port: each gets a clear answer and a log entry, no key goes astray, and the other ports keep injecting.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use keymother_daemon::DaemonEvent;
use keymother_protocol::{
    Capabilities, Confirm, DecodeEvent, ErrorCode, Frame, FrameDecoder, Hello, KeyRequest, Message,
    Mode, PROTOCOL_VERSION, Smn, crc32,
};
use keymother_terminal::{Line, PtyLine, inject};
use keymother_vault::KeyState;
use support::{Appliance, InProcessDaemon};

/// A terminal that speaks raw frames, to say what a well-behaved one never would.
struct RawTerminal {
    line: PtyLine,
    decoder: FrameDecoder,
    started: Instant,
}

impl RawTerminal {
    fn new(line: PtyLine) -> RawTerminal {
        RawTerminal {
            line,
            decoder: FrameDecoder::new(Duration::from_millis(200)),
            started: Instant::now(),
        }
    }

    fn send_bytes(&mut self, bytes: &[u8]) {
        self.line.write_all(bytes).unwrap();
    }

    fn send(&mut self, seq: u8, message: &Message) {
        let bytes = message.encode_frame(seq).unwrap();
        self.send_bytes(&bytes);
    }

    /// The next frame from the appliance, decoded.
    fn receive(&mut self) -> (u8, Message) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut buffer = [0u8; 4096];
        loop {
            assert!(Instant::now() < deadline, "no answer from the appliance");
            let count = self
                .line
                .read_within(&mut buffer, Duration::from_millis(20))
                .unwrap();
            let now = self.started.elapsed();
            for event in self.decoder.push(&buffer[..count], now) {
                if let DecodeEvent::Frame(frame) = event {
                    return (frame.seq, Message::from_frame(&frame).unwrap());
                }
            }
        }
    }

    fn expect_error(&mut self, code: ErrorCode) -> String {
        match self.receive() {
            (_, Message::Error(error)) if error.code == code => error.detail,
            other => panic!("expected error {code:?}, got {other:?}"),
        }
    }

    /// HELLO then KEY_REQUEST; returns the delivered key index and its KCV.
    fn hello_and_request(&mut self, serial: &str, appliance: &Appliance) -> (u32, Vec<u8>) {
        let hello = Message::Hello(Hello {
            protocol_version: PROTOCOL_VERSION,
            mode_ids: vec![Mode::Tr31.id()],
            model: "RAW".parse().unwrap(),
            hardware_serial: serial.parse().unwrap(),
            capabilities: Capabilities::NONE,
        });
        self.send(10, &hello);
        let (_, welcome) = self.receive();
        let Message::Welcome(welcome) = welcome else {
            panic!("expected WELCOME, got {welcome:?}")
        };
        assert_eq!(
            welcome.ttk_kcv,
            appliance.key_store().transport_key_kcv().as_bytes()
        );
        self.send(
            11,
            &Message::KeyRequest(KeyRequest {
                mode_id: Mode::Tr31.id(),
                mode_data: Vec::new(),
            }),
        );
        match self.receive() {
            (11, Message::KeyDelivery(delivery)) => (delivery.key_index, delivery.kcv),
            other => panic!("expected KEY_DELIVERY, got {other:?}"),
        }
    }
}

fn hello_frame(serial: &str) -> Vec<u8> {
    Message::Hello(Hello {
        protocol_version: PROTOCOL_VERSION,
        mode_ids: vec![Mode::Tr31.id()],
        model: "RAW".parse().unwrap(),
        hardware_serial: serial.parse().unwrap(),
        capabilities: Capabilities::NONE,
    })
    .encode_frame(1)
    .unwrap()
}

/// Meanwhile, on another port, a normal terminal injects as if nothing happened.
fn other_port_still_injects(line: &mut PtyLine, appliance: &Appliance, serial: &str) -> u32 {
    let mut store = appliance.key_store();
    match inject(line, appliance.terminal(serial), &mut store)
        .unwrap()
        .outcome
    {
        keymother_protocol::TerminalOutcome::Injected { key_index, .. } => key_index,
        keymother_protocol::TerminalOutcome::Failed { reason } => {
            panic!("the other port failed: {reason}")
        }
        other => panic!("tr31 only here: {other:?}"),
    }
}

/// Whether the daemon logged a session event whose text contains `words`.
fn logged(daemon: &InProcessDaemon, words: &str) -> bool {
    daemon
        .saw(|event| matches!(event, DaemonEvent::Session { detail, .. } if detail.contains(words)))
}

#[test]
fn damaged_and_oversize_frames_are_answered_and_logged() {
    let appliance = Appliance::provisioned(10);
    let (mut lines, settings) = appliance.ports(2);
    let daemon = InProcessDaemon::start(settings);
    let mut good = lines.pop().unwrap();
    let mut raw = RawTerminal::new(lines.pop().unwrap());

    // Bad CRC: NAK, so the terminal sends the frame again at once.
    let mut frame = hello_frame("BADCRC01");
    let last = frame.len() - 1;
    frame[last] ^= 0x40;
    raw.send_bytes(&frame);
    assert_eq!(raw.receive().1, Message::Nak);
    assert!(logged(&daemon, "bad CRC on a"), "a bad CRC was not logged");

    // Oversize length with a valid CRC: the sender is told, not just ignored.
    let body_length: u16 = 5000;
    let mut oversize = vec![0x02];
    oversize.extend_from_slice(&body_length.to_be_bytes());
    oversize.extend(std::iter::repeat_n(0x41, usize::from(body_length)));
    let crc = crc32(&oversize[1..]);
    oversize.extend_from_slice(&crc.to_be_bytes());
    raw.send_bytes(&oversize);
    let detail = raw.expect_error(ErrorCode::FRAME_TOO_LARGE);
    assert!(!detail.is_empty());
    assert!(logged(&daemon, "oversize length 5000"));
    assert!(logged(&daemon, "ERROR 0x000F FRAME_TOO_LARGE sent"));

    assert!(other_port_still_injects(&mut good, &appliance, "GOOD0001") > 0);
    // Nothing was reserved for the raw terminal.
    let assignments = appliance.vault().key_assignments().unwrap();
    assert_eq!(assignments.len(), 1);
    assert_eq!(assignments[0].1, "GOOD0001");
}

#[test]
fn unknown_and_out_of_order_messages_are_refused() {
    let appliance = Appliance::provisioned(10);
    let (mut lines, settings) = appliance.ports(2);
    let daemon = InProcessDaemon::start(settings);
    let mut good = lines.pop().unwrap();
    let mut raw = RawTerminal::new(lines.pop().unwrap());

    // KEY_REQUEST before HELLO.
    raw.send(
        5,
        &Message::KeyRequest(KeyRequest {
            mode_id: Mode::Tr31.id(),
            mode_data: Vec::new(),
        }),
    );
    raw.expect_error(ErrorCode::OUT_OF_ORDER_MESSAGE);
    assert!(logged(&daemon, "ERROR 0x0003 OUT_OF_ORDER_MESSAGE sent"));

    // A message type the protocol does not have.
    raw.send_bytes(&Frame::new(6, 0x5A, vec![1, 2, 3]).encode().unwrap());
    raw.expect_error(ErrorCode::UNKNOWN_MESSAGE_TYPE);

    // CONFIRM for a key never delivered, in a fresh session.
    raw.send_bytes(&hello_frame("RAW00001"));
    assert!(matches!(raw.receive().1, Message::Welcome(_)));
    let serial = "RAW00001".parse().unwrap();
    raw.send(
        2,
        &Message::Confirm(Confirm {
            key_index: 3,
            kcv: vec![1, 2, 3],
            smn: Smn::new(&serial, keymother_protocol::KeyIndex::new(3).unwrap()),
        }),
    );
    raw.expect_error(ErrorCode::KEY_NOT_DELIVERED);

    assert!(other_port_still_injects(&mut good, &appliance, "GOOD0002") > 0);
    assert_eq!(appliance.vault().key_assignments().unwrap().len(), 1);
}

#[test]
fn a_wrong_kcv_is_refused_then_quarantines_and_nobody_else_gets_the_key() {
    let appliance = Appliance::provisioned(10);
    let (mut lines, settings) = appliance.ports(2);
    let daemon = InProcessDaemon::start(settings);
    let mut good = lines.pop().unwrap();
    let mut raw = RawTerminal::new(lines.pop().unwrap());
    let (index, kcv) = raw.hello_and_request("WRONGKCV", &appliance);
    let serial = "WRONGKCV".parse().unwrap();
    let smn = Smn::new(&serial, keymother_protocol::KeyIndex::new(index).unwrap());
    let mut wrong = kcv.clone();
    wrong[0] ^= 0xFF;
    let confirm = |kcv: Vec<u8>| {
        Message::Confirm(Confirm {
            key_index: index,
            kcv,
            smn: smn.clone(),
        })
    };
    raw.send(12, &confirm(wrong.clone()));
    raw.expect_error(ErrorCode::KCV_MISMATCH);
    assert!(logged(&daemon, "ERROR 0x0009 KCV_MISMATCH sent"));

    let other = other_port_still_injects(&mut good, &appliance, "GOOD0003");
    assert_ne!(
        other, index,
        "a key delivered to one terminal went to another"
    );

    raw.send(13, &confirm(wrong.clone()));
    raw.expect_error(ErrorCode::KCV_MISMATCH);
    raw.send(14, &confirm(wrong));
    raw.expect_error(ErrorCode::KCV_MISMATCH_QUARANTINED);
    let inventory = appliance.vault().inventory().unwrap();
    assert_eq!(inventory.count(KeyState::Quarantined), 1);
    assert!(
        appliance
            .vault()
            .smn_rows()
            .unwrap()
            .iter()
            .all(|row| row.key_index != index)
    );
}

#[test]
fn a_replayed_request_is_refused_and_a_retransmission_changes_nothing() {
    let appliance = Appliance::provisioned(10);
    let (mut lines, settings) = appliance.ports(1);
    let _daemon = InProcessDaemon::start(settings);
    let mut raw = RawTerminal::new(lines.pop().unwrap());
    let (index, kcv) = raw.hello_and_request("REPLAY01", &appliance);
    let serial = "REPLAY01".parse().unwrap();
    let confirm = Message::Confirm(Confirm {
        key_index: index,
        kcv,
        smn: Smn::new(&serial, keymother_protocol::KeyIndex::new(index).unwrap()),
    });
    raw.send(12, &confirm);
    assert!(matches!(raw.receive(), (12, Message::Confirmed(_))));

    // The same CONFIRM again (its CONFIRMED was lost): the same answer, nothing new recorded.
    raw.send(12, &confirm);
    assert!(matches!(raw.receive(), (12, Message::Confirmed(_))));
    assert_eq!(appliance.vault().smn_rows().unwrap().len(), 1);

    // An old KEY_REQUEST replayed: refused, no second key.
    raw.send(
        11,
        &Message::KeyRequest(KeyRequest {
            mode_id: Mode::Tr31.id(),
            mode_data: Vec::new(),
        }),
    );
    raw.expect_error(ErrorCode::SEQUENCE_OUT_OF_ORDER);
    // The last SEQ with a different body: refused too.
    raw.send(
        12,
        &Message::KeyRequest(KeyRequest {
            mode_id: Mode::Tr31.id(),
            mode_data: Vec::new(),
        }),
    );
    raw.expect_error(ErrorCode::SEQUENCE_REUSED);
    assert_eq!(appliance.vault().key_assignments().unwrap().len(), 1);
}
