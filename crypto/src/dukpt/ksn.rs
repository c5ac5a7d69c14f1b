//! Key serial numbers: the 80-bit TDES KSN (X9.24-1-2009), the 96-bit AES KSN and its 64-bit initial key ID (X9.24-3-2017).

use std::fmt;
use std::str::FromStr;

/// Why a key serial number or initial key ID could not be read or made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KsnError {
    #[error("not hexadecimal: character {position} is not 0-9 or A-F")]
    NotHex { position: usize },
    #[error("{what} is {expected} hex digits, got {found}")]
    WrongLength {
        what: &'static str,
        expected: &'static str,
        found: usize,
    },
    #[error("{what} {value:#X} does not fit in {bits} bits")]
    TooWide {
        what: &'static str,
        value: u64,
        bits: u32,
    },
}

/// Decodes exactly `N` bytes of hex; `what` names the value in errors.
fn decode_exact<const N: usize>(
    text: &str,
    what: &'static str,
    expected: &'static str,
) -> Result<[u8; N], KsnError> {
    let text = text.trim();
    if let Some(position) = text.chars().position(|c| !c.is_ascii_hexdigit()) {
        return Err(KsnError::NotHex {
            position: position + 1,
        });
    }
    let mut bytes = [0u8; N];
    if text.len() != N * 2 || hex::decode_to_slice(text, &mut bytes).is_err() {
        return Err(KsnError::WrongLength {
            what,
            expected,
            found: text.len(),
        });
    }
    Ok(bytes)
}

/// Checks that `value` fits in `bits` bits.
fn check_width(what: &'static str, value: u64, bits: u32) -> Result<(), KsnError> {
    if value >> bits == 0 {
        Ok(())
    } else {
        Err(KsnError::TooWide { what, value, bits })
    }
}

/// The least counter above `counter` with at most `max_one_bits` one-bits, if one is at most
/// `max_counter` (X9.24: a device skips counters with too many one-bits).
pub(crate) fn next_valid_counter(counter: u64, max_one_bits: u32, max_counter: u64) -> Option<u64> {
    let mut next = counter.checked_add(1)?;
    while next <= max_counter {
        if next.count_ones() <= max_one_bits {
            return Some(next);
        }
        // Adding the lowest one-bit clears it and carries: the same number of one-bits or
        // fewer, and no counter in between has fewer one-bits.
        next += next & next.wrapping_neg();
    }
    None
}

/// A TDES DUKPT key serial number (ANSI X9.24-1-2009): 80 bits, the 59-bit initial key serial
/// number (here: a 40-bit key set ID and a 19-bit device ID) followed by a 21-bit transaction
/// counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TdesKsn([u8; TdesKsn::LENGTH]);

impl TdesKsn {
    /// Bytes in a TDES KSN.
    pub const LENGTH: usize = 10;
    /// Bits of the transaction counter (the KSN's rightmost bits).
    pub const COUNTER_BITS: u32 = 21;
    /// The largest counter the 21 bits hold (it has too many one-bits to be used).
    pub const MAX_COUNTER: u32 = (1 << Self::COUNTER_BITS) - 1;
    /// Bits of the key set ID (the KSN's leftmost bits).
    pub const KEY_SET_ID_BITS: u32 = 40;
    /// Bits of the device ID, between key set ID and counter.
    pub const DEVICE_ID_BITS: u32 = 19;

    /// The KSN of these bytes.
    pub fn from_bytes(bytes: [u8; Self::LENGTH]) -> Self {
        TdesKsn(bytes)
    }

    /// The KSN of a 40-bit key set ID, a 19-bit device ID and a 21-bit counter.
    pub fn from_parts(key_set_id: u64, device_id: u32, counter: u32) -> Result<Self, KsnError> {
        check_width("the key set ID", key_set_id, Self::KEY_SET_ID_BITS)?;
        check_width("the device ID", device_id.into(), Self::DEVICE_ID_BITS)?;
        check_width(
            "the transaction counter",
            counter.into(),
            Self::COUNTER_BITS,
        )?;
        let value = u128::from(key_set_id) << 40
            | u128::from(device_id) << Self::COUNTER_BITS
            | u128::from(counter);
        let mut bytes = [0u8; Self::LENGTH];
        bytes.copy_from_slice(&value.to_be_bytes()[16 - Self::LENGTH..]);
        Ok(TdesKsn(bytes))
    }

    /// The KSN as 80 bits.
    fn value(&self) -> u128 {
        let mut wide = [0u8; 16];
        wide[16 - Self::LENGTH..].copy_from_slice(&self.0);
        u128::from_be_bytes(wide)
    }

    /// The 10 bytes.
    pub fn bytes(&self) -> [u8; Self::LENGTH] {
        self.0
    }

    /// The 21-bit transaction counter.
    pub fn counter(&self) -> u32 {
        (self.value() & u128::from(Self::MAX_COUNTER)) as u32
    }

    /// The 40-bit key set ID: the KSN's leftmost 5 bytes, naming the BDK.
    pub fn key_set_id(&self) -> u64 {
        (self.value() >> 40) as u64
    }

    /// The 19-bit device ID between key set ID and counter.
    pub fn device_id(&self) -> u32 {
        ((self.value() >> Self::COUNTER_BITS) & ((1 << Self::DEVICE_ID_BITS) - 1)) as u32
    }

    /// The initial KSN: this KSN with its counter cleared, as the initial key derivation uses it.
    pub fn initial(&self) -> TdesKsn {
        self.with_counter_unchecked(0)
    }

    /// The same device's KSN at `counter`.
    pub fn with_counter(&self, counter: u32) -> Result<TdesKsn, KsnError> {
        check_width(
            "the transaction counter",
            counter.into(),
            Self::COUNTER_BITS,
        )?;
        Ok(self.with_counter_unchecked(counter))
    }

    fn with_counter_unchecked(&self, counter: u32) -> TdesKsn {
        let mut bytes = self.0;
        let counter = counter & Self::MAX_COUNTER;
        bytes[7] = (bytes[7] & 0xE0) | (counter >> 16) as u8;
        bytes[8] = (counter >> 8) as u8;
        bytes[9] = counter as u8;
        TdesKsn(bytes)
    }

    /// The next KSN a device uses after this one: the least greater counter with at most
    /// 10 one-bits, or `None` when the counter is exhausted.
    pub fn next(&self) -> Option<TdesKsn> {
        let next = next_valid_counter(
            self.counter().into(),
            super::tdes::MAX_ONE_BITS,
            Self::MAX_COUNTER.into(),
        )?;
        Some(self.with_counter_unchecked(next as u32))
    }
}

impl fmt::Display for TdesKsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode_upper(self.0))
    }
}

impl FromStr for TdesKsn {
    type Err = KsnError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        decode_exact(text, "a TDES KSN", "20").map(TdesKsn)
    }
}

/// An AES DUKPT initial key ID (ANSI X9.24-3-2017): 64 bits, a 32-bit BDK ID followed by a
/// 32-bit derivation ID that names the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InitialKeyId([u8; InitialKeyId::LENGTH]);

impl InitialKeyId {
    /// Bytes in an initial key ID.
    pub const LENGTH: usize = 8;

    /// The initial key ID of these bytes.
    pub fn from_bytes(bytes: [u8; Self::LENGTH]) -> Self {
        InitialKeyId(bytes)
    }

    /// The initial key ID of a BDK ID and a derivation ID.
    pub fn from_parts(bdk_id: u32, derivation_id: u32) -> Self {
        let mut bytes = [0u8; Self::LENGTH];
        bytes[..4].copy_from_slice(&bdk_id.to_be_bytes());
        bytes[4..].copy_from_slice(&derivation_id.to_be_bytes());
        InitialKeyId(bytes)
    }

    /// The 8 bytes.
    pub fn bytes(&self) -> [u8; Self::LENGTH] {
        self.0
    }

    /// The 32-bit BDK ID: the leftmost 4 bytes, naming the BDK.
    pub fn bdk_id(&self) -> u32 {
        u32::from_be_bytes([self.0[0], self.0[1], self.0[2], self.0[3]])
    }

    /// The 32-bit derivation ID: the rightmost 4 bytes, naming the device.
    pub fn derivation_id(&self) -> u32 {
        u32::from_be_bytes([self.0[4], self.0[5], self.0[6], self.0[7]])
    }
}

impl fmt::Display for InitialKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode_upper(self.0))
    }
}

impl FromStr for InitialKeyId {
    type Err = KsnError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        decode_exact(text, "an initial key ID", "16").map(InitialKeyId)
    }
}

/// An AES DUKPT key serial number (ANSI X9.24-3-2017): 96 bits, the 64-bit initial key ID
/// followed by a 32-bit transaction counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AesKsn {
    key_id: InitialKeyId,
    counter: u32,
}

impl AesKsn {
    /// Bytes in an AES KSN.
    pub const LENGTH: usize = 12;

    /// The KSN of an initial key ID and a transaction counter.
    pub fn new(key_id: InitialKeyId, counter: u32) -> Self {
        AesKsn { key_id, counter }
    }

    /// The initial key ID (BDK ID and derivation ID).
    pub fn key_id(&self) -> InitialKeyId {
        self.key_id
    }

    /// The 32-bit transaction counter.
    pub fn counter(&self) -> u32 {
        self.counter
    }

    /// The 12 bytes.
    pub fn bytes(&self) -> [u8; Self::LENGTH] {
        let mut bytes = [0u8; Self::LENGTH];
        bytes[..8].copy_from_slice(&self.key_id.0);
        bytes[8..].copy_from_slice(&self.counter.to_be_bytes());
        bytes
    }

    /// The same device's KSN at `counter`.
    pub fn with_counter(&self, counter: u32) -> AesKsn {
        AesKsn::new(self.key_id, counter)
    }

    /// The next KSN a device uses after this one: the least greater counter with at most
    /// 16 one-bits, or `None` when the counter is exhausted.
    pub fn next(&self) -> Option<AesKsn> {
        let next = next_valid_counter(
            self.counter.into(),
            super::aes::MAX_ONE_BITS,
            u32::MAX.into(),
        )?;
        Some(self.with_counter(next as u32))
    }
}

impl fmt::Display for AesKsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode_upper(self.bytes()))
    }
}

impl FromStr for AesKsn {
    type Err = KsnError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bytes: [u8; Self::LENGTH] = decode_exact(text, "an AES KSN", "24")?;
        let mut key_id = [0u8; InitialKeyId::LENGTH];
        key_id.copy_from_slice(&bytes[..8]);
        let counter = u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        Ok(AesKsn::new(InitialKeyId(key_id), counter))
    }
}

/// A key serial number of either DUKPT: its length tells which (20 hex digits TDES, 24 AES).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ksn {
    /// ANSI X9.24-1-2009, 10 bytes.
    Tdes(TdesKsn),
    /// ANSI X9.24-3-2017, 12 bytes.
    Aes(AesKsn),
}

impl Ksn {
    /// The transaction counter.
    pub fn counter(&self) -> u32 {
        match self {
            Ksn::Tdes(ksn) => ksn.counter(),
            Ksn::Aes(ksn) => ksn.counter(),
        }
    }
}

impl fmt::Display for Ksn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ksn::Tdes(ksn) => ksn.fmt(f),
            Ksn::Aes(ksn) => ksn.fmt(f),
        }
    }
}

impl FromStr for Ksn {
    type Err = KsnError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let digits = text.trim().len();
        if digits == TdesKsn::LENGTH * 2 {
            text.parse().map(Ksn::Tdes)
        } else if digits == AesKsn::LENGTH * 2 {
            text.parse().map(Ksn::Aes)
        } else if let Some(position) = text.trim().chars().position(|c| !c.is_ascii_hexdigit()) {
            Err(KsnError::NotHex {
                position: position + 1,
            })
        } else {
            Err(KsnError::WrongLength {
                what: "a KSN",
                expected: "20 (TDES) or 24 (AES)",
                found: digits,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tdes_ksn_fields_and_round_trip() {
        let ksn: TdesKsn = "FFFF9876543210E00008".parse().unwrap();
        assert_eq!(ksn.counter(), 8);
        assert_eq!(ksn.key_set_id(), 0xFFFF987654);
        assert_eq!(ksn.device_id(), 0x3210E0 >> 5);
        assert_eq!(ksn.initial().to_string(), "FFFF9876543210E00000");
        assert_eq!(ksn.to_string(), "FFFF9876543210E00008");
        let rebuilt = TdesKsn::from_parts(ksn.key_set_id(), ksn.device_id(), 8).unwrap();
        assert_eq!(rebuilt, ksn);
        assert_eq!(
            "FFFF9876543210F00000".parse::<TdesKsn>().unwrap().counter(),
            0x100000
        );
    }

    #[test]
    fn next_skips_counters_with_too_many_one_bits() {
        // X9.24-1-2009 A.4.3: after EFF801 (10 one-bits) comes EFF802, then EFF804.
        let ksn: TdesKsn = "FFFF9876543210EFF802".parse().unwrap();
        assert_eq!(ksn.next().unwrap().to_string(), "FFFF9876543210EFF804");
        let last: TdesKsn = "FFFF9876543210EFFC00".parse().unwrap();
        assert_eq!(last.next().unwrap().to_string(), "FFFF9876543210F00000");
        let aes: AesKsn = "1234567890123456FFFF0000".parse().unwrap();
        assert_eq!(aes.next(), None);
        let aes: AesKsn = "12345678901234560001FFFE".parse().unwrap();
        assert_eq!(aes.next().unwrap().counter(), 0x20000);
    }

    #[test]
    fn errors_name_what_is_wrong() {
        assert_eq!(
            "FFFF9876543210E0000"
                .parse::<Ksn>()
                .unwrap_err()
                .to_string(),
            "a KSN is 20 (TDES) or 24 (AES) hex digits, got 19"
        );
        assert_eq!(
            "FFFF9876543210E0000G"
                .parse::<Ksn>()
                .unwrap_err()
                .to_string(),
            "not hexadecimal: character 20 is not 0-9 or A-F"
        );
        assert_eq!(
            TdesKsn::from_parts(0, 1 << 19, 0).unwrap_err().to_string(),
            "the device ID 0x80000 does not fit in 19 bits"
        );
    }

    #[test]
    fn aes_ksn_fields() {
        let ksn: Ksn = "123456789012345600000001".parse().unwrap();
        let Ksn::Aes(ksn) = ksn else {
            panic!("an AES KSN")
        };
        assert_eq!(ksn.key_id().bdk_id(), 0x12345678);
        assert_eq!(ksn.key_id().derivation_id(), 0x90123456);
        assert_eq!(ksn.counter(), 1);
        assert_eq!(
            ksn.key_id(),
            InitialKeyId::from_parts(0x12345678, 0x90123456)
        );
    }
}
