//! A simulated serial line: latency, chunking, byte noise (drop, flip, insert) and a per-write filter.

use std::collections::VecDeque;
use std::time::Duration;

use keymother_protocol::MessageType;

use super::{frames_in, ms};

/// Byte noise applied to a line: each byte is dropped, flipped or preceded by a random byte
/// with the given probability (per million).
#[derive(Debug, Clone, Copy)]
pub struct Noise {
    pub drop_ppm: u32,
    pub flip_ppm: u32,
    pub insert_ppm: u32,
}

/// A small deterministic random generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, bound: u32) -> u32 {
        (self.next_u64() % u64::from(bound)) as u32
    }

    pub fn byte(&mut self) -> u8 {
        self.next_u64() as u8
    }
}

pub type Filter = Box<dyn FnMut(&[u8]) -> Vec<Vec<u8>>>;

/// One direction of a serial line: bytes written at a time arrive after the latency, in order,
/// possibly split into chunks, possibly damaged.
pub struct Line {
    pub in_flight: VecDeque<(Duration, Vec<u8>)>,
    pub latency: Duration,
    pub noise: Option<Noise>,
    pub rng: Rng,
    /// Sees each write whole; returns the writes that actually go on the line (none to drop it,
    /// two to duplicate it, a changed one to corrupt it).
    pub filter: Option<Filter>,
    pub bytes_damaged: u64,
}

impl Line {
    pub fn new(seed: u64) -> Self {
        Line {
            in_flight: VecDeque::new(),
            latency: ms(5),
            noise: None,
            rng: Rng::new(seed),
            filter: None,
            bytes_damaged: 0,
        }
    }

    pub fn write(&mut self, bytes: Vec<u8>, now: Duration) {
        let writes = match self.filter.as_mut() {
            Some(filter) => filter(&bytes),
            None => vec![bytes],
        };
        for bytes in writes {
            let bytes = self.damage(bytes);
            let mut at = now + self.latency;
            if let Some(&(last, _)) = self.in_flight.back() {
                at = at.max(last);
            }
            if self.noise.is_some() {
                // Split into chunks a millisecond apart, as a UART driver would hand them over.
                let mut rest = bytes.as_slice();
                while !rest.is_empty() {
                    let size = (1 + self.rng.below(40) as usize).min(rest.len());
                    let (chunk, tail) = rest.split_at(size);
                    self.in_flight.push_back((at, chunk.to_vec()));
                    at += ms(1);
                    rest = tail;
                }
            } else {
                self.in_flight.push_back((at, bytes));
            }
        }
    }

    fn damage(&mut self, bytes: Vec<u8>) -> Vec<u8> {
        let Some(noise) = self.noise else {
            return bytes;
        };
        let mut out = Vec::with_capacity(bytes.len());
        for byte in bytes {
            if self.rng.below(1_000_000) < noise.insert_ppm {
                out.push(self.rng.byte());
                self.bytes_damaged += 1;
            }
            if self.rng.below(1_000_000) < noise.drop_ppm {
                self.bytes_damaged += 1;
                continue;
            }
            if self.rng.below(1_000_000) < noise.flip_ppm {
                out.push(byte ^ (1 + self.rng.below(255) as u8));
                self.bytes_damaged += 1;
            } else {
                out.push(byte);
            }
        }
        out
    }

    pub fn next_time(&self) -> Option<Duration> {
        self.in_flight.front().map(|(at, _)| *at)
    }

    pub fn take_due(&mut self, now: Duration) -> Vec<Vec<u8>> {
        let mut due = Vec::new();
        while self.in_flight.front().is_some_and(|(at, _)| *at <= now) {
            if let Some((_, bytes)) = self.in_flight.pop_front() {
                due.push(bytes);
            }
        }
        due
    }
}

/// The message type of the one frame in a write.
pub fn message_type_of(bytes: &[u8]) -> MessageType {
    MessageType::from_id(frames_in(bytes)[0].message_type).expect("known type")
}

/// A filter that drops the first write of `kind`.
pub fn drop_first(kind: MessageType) -> Filter {
    let mut dropped = false;
    Box::new(move |bytes: &[u8]| {
        if !dropped && message_type_of(bytes) == kind {
            dropped = true;
            return vec![];
        }
        vec![bytes.to_vec()]
    })
}

/// A filter that flips one byte of the first write of `kind`.
pub fn corrupt_first(kind: MessageType, position: usize) -> Filter {
    let mut done = false;
    Box::new(move |bytes: &[u8]| {
        let mut bytes = bytes.to_vec();
        if !done && message_type_of(&bytes) == kind {
            done = true;
            bytes[position] ^= 0x40;
        }
        vec![bytes]
    })
}
