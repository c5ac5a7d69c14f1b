//! Framing: `STX | LEN | SEQ TYPE PAYLOAD | CRC-32`, the encoder, and a resynchronising decoder that reports every rejected frame.
//!
//! The decoder is sans-IO: bytes go in with the time they arrived, events come out. It keeps at
//! most one partial frame (bounded by [`MAX_FRAME_LENGTH`]) and never gives up on the line: on an
//! impossible length or a CRC mismatch it drops only the STX byte it tried and scans again from
//! the next byte, so a real frame hidden behind noise is still found.

use std::fmt;
use std::time::Duration;

use crc::{CRC_32_ISO_HDLC, Crc, Digest};

/// Start of every frame (ASCII STX).
pub const STX: u8 = 0x02;
/// The smallest body: SEQ and TYPE with an empty payload.
pub const MIN_BODY_LENGTH: usize = 2;
/// The largest body a receiver accepts (SEQ, TYPE and up to 4094 payload bytes).
pub const MAX_BODY_LENGTH: usize = 4096;
/// The largest payload that fits in a frame.
pub const MAX_PAYLOAD_LENGTH: usize = MAX_BODY_LENGTH - MIN_BODY_LENGTH;
/// Bytes a frame adds around its body: STX, two length bytes, four CRC bytes.
pub const FRAME_OVERHEAD: usize = 7;
/// The longest frame on the wire.
pub const MAX_FRAME_LENGTH: usize = MAX_BODY_LENGTH + FRAME_OVERHEAD;

/// STX and the two length bytes.
const HEADER_LENGTH: usize = 3;
/// The CRC after the body.
const CRC_LENGTH: usize = 4;
/// Oversize frames followed at once to tell a real too-large frame from noise.
const MAX_OVERSIZE_TRACKERS: usize = 4;

/// CRC-32/ISO-HDLC (the CRC of Ethernet, zlib and PNG): polynomial 0x04C11DB7, init 0xFFFFFFFF,
/// input and output reflected, xorout 0xFFFFFFFF, check value 0xCBF43926.
static CRC_32: Crc<u32> = Crc::<u32>::new(&CRC_32_ISO_HDLC);

/// The frame CRC of `bytes` (CRC-32/ISO-HDLC).
pub fn crc32(bytes: &[u8]) -> u32 {
    CRC_32.checksum(bytes)
}

/// One frame: its sequence number, message type and payload (the message's fields).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Frame {
    pub seq: u8,
    pub message_type: u8,
    pub payload: Vec<u8>,
}

/// Why a frame cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error(
        "the frame body would be {body_length} bytes; at most {MAX_BODY_LENGTH} fit in a frame"
    )]
    TooLarge { body_length: usize },
}

impl Frame {
    pub fn new(seq: u8, message_type: u8, payload: Vec<u8>) -> Self {
        Frame {
            seq,
            message_type,
            payload,
        }
    }

    /// Length of the body (the LEN field): SEQ, TYPE and the payload.
    pub fn body_length(&self) -> usize {
        MIN_BODY_LENGTH + self.payload.len()
    }

    /// The bytes on the wire: STX, LEN (big-endian), SEQ, TYPE, payload, CRC (big-endian) over
    /// LEN and the body.
    pub fn encode(&self) -> Result<Vec<u8>, FrameError> {
        let body_length = self.body_length();
        let too_large = FrameError::TooLarge { body_length };
        if body_length > MAX_BODY_LENGTH {
            return Err(too_large);
        }
        let length = u16::try_from(body_length).map_err(|_| too_large)?;
        let mut bytes = Vec::with_capacity(body_length + FRAME_OVERHEAD);
        bytes.push(STX);
        bytes.extend_from_slice(&length.to_be_bytes());
        bytes.push(self.seq);
        bytes.push(self.message_type);
        bytes.extend_from_slice(&self.payload);
        let crc = crc32(&bytes[1..]);
        bytes.extend_from_slice(&crc.to_be_bytes());
        Ok(bytes)
    }
}

/// What the decoder found in the bytes it was given, in line order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeEvent {
    /// A frame whose CRC checked out.
    Frame(Frame),
    /// Bytes that did not make a frame.
    Rejected(FrameRejection),
    /// A frame longer than [`MAX_BODY_LENGTH`] whose CRC checked out: the peer really sent an
    /// oversize frame (noise does not pass a CRC-32), so it can be told so. Reported after the
    /// [`FrameRejection::Oversize`] of the same STX, once its last byte has arrived.
    FrameTooLarge {
        seq: u8,
        message_type: u8,
        length: u16,
    },
}

/// Why bytes were dropped. Except for garbage, each names the STX byte that was tried and dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameRejection {
    /// Bytes that were not the start of any frame were skipped.
    GarbageSkipped { count: usize },
    /// LEN was 0 or 1: no room for SEQ and TYPE.
    LengthTooShort { length: u16 },
    /// LEN was above [`MAX_BODY_LENGTH`].
    Oversize { length: u16 },
    /// The CRC did not match: the frame was damaged on the line (or the STX was noise).
    BadCrc {
        length: u16,
        received: u32,
        computed: u32,
    },
    /// Bytes stopped arriving in the middle of a frame for the inter-byte timeout; the partial
    /// frame (`pending` bytes from its STX) was dropped and the bytes after its STX scanned again.
    InterByteTimeout { pending: usize },
}

impl FrameRejection {
    /// A frame damaged on the line: the kind of rejection answered with NAK.
    pub fn is_bad_crc(&self) -> bool {
        matches!(self, FrameRejection::BadCrc { .. })
    }
}

impl fmt::Display for FrameRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameRejection::GarbageSkipped { count } => {
                write!(f, "skipped {count} byte(s) that start no frame")
            }
            FrameRejection::LengthTooShort { length } => {
                write!(f, "impossible length {length} (minimum {MIN_BODY_LENGTH})")
            }
            FrameRejection::Oversize { length } => {
                write!(f, "oversize length {length} (maximum {MAX_BODY_LENGTH})")
            }
            FrameRejection::BadCrc {
                length,
                received,
                computed,
            } => write!(
                f,
                "bad CRC on a body of {length} bytes: received {received:08X}, computed {computed:08X}"
            ),
            FrameRejection::InterByteTimeout { pending } => write!(
                f,
                "inter-byte timeout: dropped a partial frame of {pending} byte(s)"
            ),
        }
    }
}

/// Follows the bytes after an oversize LEN without keeping them, to check its CRC at the end.
struct OversizeTracker {
    length: u16,
    /// Body bytes seen so far.
    seen: usize,
    seq: u8,
    message_type: u8,
    digest: Digest<'static, u32>,
    /// The CRC bytes seen so far.
    received_crc: Vec<u8>,
}

impl OversizeTracker {
    fn new(length: u16) -> Self {
        let mut digest = CRC_32.digest();
        digest.update(&length.to_be_bytes());
        OversizeTracker {
            length,
            seen: 0,
            seq: 0,
            message_type: 0,
            digest,
            received_crc: Vec::with_capacity(CRC_LENGTH),
        }
    }

    /// Feeds the next bytes of the line; true once the frame's last CRC byte has been seen.
    fn feed(&mut self, mut bytes: &[u8]) -> bool {
        let body_length = usize::from(self.length);
        if self.seen < body_length {
            let take = bytes.len().min(body_length - self.seen);
            let (body, rest) = bytes.split_at(take);
            for (offset, &byte) in body.iter().enumerate() {
                match self.seen + offset {
                    0 => self.seq = byte,
                    1 => self.message_type = byte,
                    _ => break,
                }
            }
            self.digest.update(body);
            self.seen += take;
            bytes = rest;
        }
        let missing = CRC_LENGTH - self.received_crc.len();
        let take = bytes.len().min(missing);
        self.received_crc.extend_from_slice(&bytes[..take]);
        self.received_crc.len() == CRC_LENGTH
    }

    /// The event for a completed tracker, if its CRC matched.
    fn finish(self) -> Option<DecodeEvent> {
        let received = u32::from_be_bytes(self.received_crc.as_slice().try_into().ok()?);
        (self.digest.finalize() == received).then_some(DecodeEvent::FrameTooLarge {
            seq: self.seq,
            message_type: self.message_type,
            length: self.length,
        })
    }
}

/// Turns a byte stream into frames, resynchronising after noise; one per serial line.
pub struct FrameDecoder {
    /// Bytes not yet resolved; when not empty, starts with the STX of a partial frame.
    buffer: Vec<u8>,
    inter_byte_timeout: Duration,
    last_byte_at: Duration,
    trackers: Vec<OversizeTracker>,
}

impl FrameDecoder {
    /// A decoder that drops a partial frame when no byte arrives for `inter_byte_timeout`.
    pub fn new(inter_byte_timeout: Duration) -> Self {
        FrameDecoder {
            buffer: Vec::new(),
            inter_byte_timeout,
            last_byte_at: Duration::ZERO,
            trackers: Vec::new(),
        }
    }

    /// The inter-byte timeout this decoder applies.
    pub fn inter_byte_timeout(&self) -> Duration {
        self.inter_byte_timeout
    }

    /// Bytes held for a partial frame (never more than [`MAX_FRAME_LENGTH`] after a call returns).
    pub fn pending_len(&self) -> usize {
        self.buffer.len()
    }

    /// When [`tick`](Self::tick) will drop the partial frame, if there is one.
    pub fn deadline(&self) -> Option<Duration> {
        (!self.buffer.is_empty() || !self.trackers.is_empty())
            .then(|| self.last_byte_at.saturating_add(self.inter_byte_timeout))
    }

    /// Takes bytes that arrived at `now` and returns what they completed. A partial frame left
    /// over from before an inter-byte timeout is dropped first, even without a tick.
    pub fn push(&mut self, bytes: &[u8], now: Duration) -> Vec<DecodeEvent> {
        let mut events = Vec::new();
        self.expire(now, &mut events);
        if bytes.is_empty() {
            return events;
        }
        self.last_byte_at = now;
        self.feed_trackers(bytes, &mut events);
        self.buffer.extend_from_slice(bytes);
        self.scan(false, &mut events);
        events
    }

    /// Applies the inter-byte timeout at `now`.
    pub fn tick(&mut self, now: Duration) -> Vec<DecodeEvent> {
        let mut events = Vec::new();
        self.expire(now, &mut events);
        events
    }

    fn expire(&mut self, now: Duration, events: &mut Vec<DecodeEvent>) {
        let Some(deadline) = self.deadline() else {
            return;
        };
        if now < deadline {
            return;
        }
        self.trackers.clear();
        if self.buffer.is_empty() {
            return;
        }
        events.push(DecodeEvent::Rejected(FrameRejection::InterByteTimeout {
            pending: self.buffer.len(),
        }));
        // Drop the stale STX; frames complete inside the rest are still found, partial ones
        // are dropped as garbage since no more bytes are coming for them.
        self.buffer.remove(0);
        self.scan(true, events);
    }

    fn feed_trackers(&mut self, bytes: &[u8], events: &mut Vec<DecodeEvent>) {
        let mut index = 0;
        while index < self.trackers.len() {
            if self.trackers[index].feed(bytes) {
                let tracker = self.trackers.swap_remove(index);
                events.extend(tracker.finish());
            } else {
                index += 1;
            }
        }
    }

    /// Resolves every candidate frame in the buffer that can be resolved. With `flushing`, a
    /// candidate that lacks bytes is dropped (its STX counts as garbage) instead of waited for.
    fn scan(&mut self, flushing: bool, events: &mut Vec<DecodeEvent>) {
        let mut start = 0;
        let mut garbage = 0;
        loop {
            let rest = &self.buffer[start..];
            let skip = rest
                .iter()
                .position(|&byte| byte == STX)
                .unwrap_or(rest.len());
            garbage += skip;
            start += skip;
            let candidate = &self.buffer[start..];
            if candidate.is_empty() {
                break;
            }
            if candidate.len() < HEADER_LENGTH {
                if flushing {
                    garbage += 1;
                    start += 1;
                    continue;
                }
                break;
            }
            let length = u16::from_be_bytes([candidate[1], candidate[2]]);
            let body_length = usize::from(length);
            if body_length < MIN_BODY_LENGTH {
                flush_garbage(&mut garbage, events);
                events.push(DecodeEvent::Rejected(FrameRejection::LengthTooShort {
                    length,
                }));
                start += 1;
                continue;
            }
            if body_length > MAX_BODY_LENGTH {
                flush_garbage(&mut garbage, events);
                events.push(DecodeEvent::Rejected(FrameRejection::Oversize { length }));
                if !flushing && self.trackers.len() < MAX_OVERSIZE_TRACKERS {
                    let mut tracker = OversizeTracker::new(length);
                    if tracker.feed(&candidate[HEADER_LENGTH..]) {
                        events.extend(tracker.finish());
                    } else {
                        self.trackers.push(tracker);
                    }
                }
                start += 1;
                continue;
            }
            let total = HEADER_LENGTH + body_length + CRC_LENGTH;
            if candidate.len() < total {
                if flushing {
                    garbage += 1;
                    start += 1;
                    continue;
                }
                break;
            }
            let crc_at = HEADER_LENGTH + body_length;
            let computed = crc32(&candidate[1..crc_at]);
            let received = u32::from_be_bytes([
                candidate[crc_at],
                candidate[crc_at + 1],
                candidate[crc_at + 2],
                candidate[crc_at + 3],
            ]);
            flush_garbage(&mut garbage, events);
            if computed != received {
                events.push(DecodeEvent::Rejected(FrameRejection::BadCrc {
                    length,
                    received,
                    computed,
                }));
                start += 1;
                continue;
            }
            events.push(DecodeEvent::Frame(Frame {
                seq: candidate[HEADER_LENGTH],
                message_type: candidate[HEADER_LENGTH + 1],
                payload: candidate[HEADER_LENGTH + MIN_BODY_LENGTH..crc_at].to_vec(),
            }));
            start += total;
        }
        flush_garbage(&mut garbage, events);
        self.buffer.drain(..start);
    }
}

fn flush_garbage(garbage: &mut usize, events: &mut Vec<DecodeEvent>) {
    if *garbage > 0 {
        events.push(DecodeEvent::Rejected(FrameRejection::GarbageSkipped {
            count: *garbage,
        }));
        *garbage = 0;
    }
}
