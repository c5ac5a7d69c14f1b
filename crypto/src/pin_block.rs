//! PIN blocks (ISO 9564-1): format 0 under a TDES PIN key, format 4 under an AES PIN key; clear PINs zeroize and never print.

use std::fmt;

use zeroize::Zeroizing;

use crate::block_cipher::BlockCipher;
use crate::key::{KeyAlgorithm, KeyError, KeyFamily, SecretKey, fill_random};

/// A clear PIN: 4 to 12 decimal digits. Zeroized on drop; implements neither `Debug`,
/// `Display` nor `Clone`.
pub struct Pin(Zeroizing<String>);

impl Pin {
    /// The fewest digits a PIN has (ISO 9564-1).
    pub const MIN_DIGITS: usize = 4;
    /// The most digits a PIN has (ISO 9564-1).
    pub const MAX_DIGITS: usize = 12;

    /// Takes 4 to 12 digits. Errors never repeat the digits.
    pub fn new(digits: &str) -> Result<Pin, PinBlockError> {
        if let Some(position) = digits.chars().position(|c| !c.is_ascii_digit()) {
            return Err(PinBlockError::PinNotDigits {
                position: position + 1,
            });
        }
        if !(Self::MIN_DIGITS..=Self::MAX_DIGITS).contains(&digits.len()) {
            return Err(PinBlockError::PinLength(digits.len()));
        }
        Ok(Pin(Zeroizing::new(digits.to_owned())))
    }

    /// The PIN's digits. Named loudly so every use stands out in review.
    pub fn expose_digits(&self) -> &str {
        &self.0
    }
}

/// A primary account number: 12 to 19 decimal digits, check digit included.
#[derive(Clone, PartialEq, Eq)]
pub struct Pan(String);

impl Pan {
    /// The fewest digits a PAN has here.
    pub const MIN_DIGITS: usize = 12;
    /// The most digits a PAN has (ISO/IEC 7812-1).
    pub const MAX_DIGITS: usize = 19;

    /// Takes 12 to 19 digits.
    pub fn new(digits: &str) -> Result<Pan, PinBlockError> {
        if let Some(position) = digits.chars().position(|c| !c.is_ascii_digit()) {
            return Err(PinBlockError::PanNotDigits {
                position: position + 1,
            });
        }
        if !(Self::MIN_DIGITS..=Self::MAX_DIGITS).contains(&digits.len()) {
            return Err(PinBlockError::PanLength(digits.len()));
        }
        Ok(Pan(digits.to_owned()))
    }

    /// The PAN's digits.
    pub fn digits(&self) -> &str {
        &self.0
    }
}

/// The PIN block formats keymother makes and reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PinBlockFormat {
    /// ISO 9564-1 format 0 (ANSI X9.8-1): 8 bytes under a TDES key.
    Iso0,
    /// ISO 9564-1 format 4: 16 bytes under an AES key, enciphered twice around the PAN.
    Iso4,
}

impl PinBlockFormat {
    /// The format a PIN key of `family` uses.
    pub fn for_key_family(family: KeyFamily) -> PinBlockFormat {
        match family {
            KeyFamily::Tdes => PinBlockFormat::Iso0,
            KeyFamily::Aes => PinBlockFormat::Iso4,
        }
    }

    /// The family of the keys this format's blocks are encrypted under.
    pub fn key_family(self) -> KeyFamily {
        match self {
            PinBlockFormat::Iso0 => KeyFamily::Tdes,
            PinBlockFormat::Iso4 => KeyFamily::Aes,
        }
    }

    /// Bytes in a block of this format.
    pub fn length(self) -> usize {
        match self {
            PinBlockFormat::Iso0 => 8,
            PinBlockFormat::Iso4 => 16,
        }
    }

    /// The control field, the block's first digit.
    fn control(self) -> u8 {
        match self {
            PinBlockFormat::Iso0 => 0x0,
            PinBlockFormat::Iso4 => 0x4,
        }
    }

    /// The digit that fills the PIN field after the PIN.
    fn fill(self) -> u8 {
        match self {
            PinBlockFormat::Iso0 => 0xF,
            PinBlockFormat::Iso4 => 0xA,
        }
    }
}

impl fmt::Display for PinBlockFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PinBlockFormat::Iso0 => "ISO 9564 format 0",
            PinBlockFormat::Iso4 => "ISO 9564 format 4",
        })
    }
}

/// What is wrong with a decrypted PIN field; never the digits themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinFieldFault {
    /// The first digit is not the format's.
    ControlField(u8),
    /// The PIN length digit is outside 4 to 12.
    PinLength(u8),
    /// A PIN digit is not 0-9.
    PinDigit,
    /// A fill digit is not the format's.
    Fill,
}

impl fmt::Display for PinFieldFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PinFieldFault::ControlField(found) => write!(f, "its control field is {found:X}"),
            PinFieldFault::PinLength(found) => write!(f, "its PIN length is {found}"),
            PinFieldFault::PinDigit => f.write_str("a PIN digit is not 0-9"),
            PinFieldFault::Fill => f.write_str("its fill digits are wrong"),
        }
    }
}

/// Why a PIN block could not be made or read. Never carries a PIN digit or key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PinBlockError {
    #[error("a PIN is 4 to 12 digits, got {0}")]
    PinLength(usize),
    #[error("a PIN is digits 0-9 only: character {position} is not")]
    PinNotDigits { position: usize },
    #[error("a PAN is 12 to 19 digits, got {0}")]
    PanLength(usize),
    #[error("a PAN is digits 0-9 only: character {position} is not")]
    PanNotDigits { position: usize },
    #[error("{format} takes a {} PIN key, not {found}", format.key_family())]
    WrongKey {
        format: PinBlockFormat,
        found: KeyAlgorithm,
    },
    #[error("{format} PIN blocks are {} bytes ({} hex digits), got {found} bytes", format.length(), format.length() * 2)]
    WrongLength {
        format: PinBlockFormat,
        found: usize,
    },
    #[error("the decrypted block is not {format}: {fault} (wrong key, KSN or PAN?)")]
    NotThisFormat {
        format: PinBlockFormat,
        fault: PinFieldFault,
    },
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// Packs nibbles (each 0-15) two to a byte, into a buffer that zeroizes on drop.
fn pack(nibbles: &[u8]) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(
        nibbles
            .chunks(2)
            .map(|pair| pair[0] << 4 | pair.get(1).copied().unwrap_or(0))
            .collect(),
    )
}

/// The decimal digits of `text` as nibbles.
fn digit_nibbles(text: &str) -> impl Iterator<Item = u8> + '_ {
    text.bytes().map(|digit| digit - b'0')
}

/// The PIN field's first 8 bytes: control, length, PIN digits, fill digits.
fn pin_field(format: PinBlockFormat, pin: &Pin) -> Zeroizing<Vec<u8>> {
    let digits = pin.expose_digits();
    let mut nibbles = Zeroizing::new(Vec::with_capacity(16));
    nibbles.push(format.control());
    nibbles.push(digits.len() as u8);
    nibbles.extend(digit_nibbles(digits));
    nibbles.resize(16, format.fill());
    pack(&nibbles)
}

/// Reads a PIN back from the first 8 bytes of a clear PIN field, checking every digit.
fn read_pin_field(format: PinBlockFormat, field: &[u8]) -> Result<Pin, PinBlockError> {
    let fault = |fault| PinBlockError::NotThisFormat { format, fault };
    let nibbles: Zeroizing<Vec<u8>> = Zeroizing::new(
        field[..8]
            .iter()
            .flat_map(|byte| [byte >> 4, byte & 0x0F])
            .collect(),
    );
    if nibbles[0] != format.control() {
        return Err(fault(PinFieldFault::ControlField(nibbles[0])));
    }
    let length = usize::from(nibbles[1]);
    if !(Pin::MIN_DIGITS..=Pin::MAX_DIGITS).contains(&length) {
        return Err(fault(PinFieldFault::PinLength(nibbles[1])));
    }
    let (pin, fill) = nibbles[2..].split_at(length);
    if pin.iter().any(|digit| *digit > 9) {
        return Err(fault(PinFieldFault::PinDigit));
    }
    if fill.iter().any(|digit| *digit != format.fill()) {
        return Err(fault(PinFieldFault::Fill));
    }
    let mut digits = Zeroizing::new(String::with_capacity(Pin::MAX_DIGITS));
    digits.extend(pin.iter().map(|digit| char::from(b'0' + digit)));
    Ok(Pin(digits))
}

/// The format 0 PAN field: four zero digits, then the 12 rightmost PAN digits without the
/// check digit (zero-padded on the left for a 12-digit PAN).
fn format0_pan_field(pan: &Pan) -> Zeroizing<Vec<u8>> {
    let digits = pan.digits();
    let without_check = &digits[..digits.len() - 1];
    let start = without_check.len().saturating_sub(12);
    let mut nibbles = vec![0u8; 16 - (without_check.len() - start)];
    nibbles.extend(digit_nibbles(&without_check[start..]));
    pack(&nibbles)
}

/// The format 4 PAN field: PAN length minus 12, the PAN (zero-padded on the left to 12
/// digits), then zero digits to 32.
fn format4_pan_field(pan: &Pan) -> Zeroizing<Vec<u8>> {
    let digits = pan.digits();
    let mut nibbles = vec![digits.len().saturating_sub(12) as u8];
    nibbles.resize(1 + 12usize.saturating_sub(digits.len()), 0);
    nibbles.extend(digit_nibbles(digits));
    nibbles.resize(32, 0);
    pack(&nibbles)
}

fn xor_into(block: &mut [u8], mask: &[u8]) {
    for (byte, mask) in block.iter_mut().zip(mask) {
        *byte ^= mask;
    }
}

/// Refuses a PIN key of the wrong family for `format`.
fn check_key(format: PinBlockFormat, pin_key: &SecretKey) -> Result<(), PinBlockError> {
    let found = pin_key.algorithm();
    if found.family() == format.key_family() {
        Ok(())
    } else {
        Err(PinBlockError::WrongKey { format, found })
    }
}

/// The clear format 0 block: PIN field XOR PAN field.
pub fn format0_clear_block(pin: &Pin, pan: &Pan) -> Zeroizing<[u8; 8]> {
    let mut block = Zeroizing::new([0u8; 8]);
    block.copy_from_slice(&pin_field(PinBlockFormat::Iso0, pin));
    xor_into(block.as_mut_slice(), &format0_pan_field(pan));
    block
}

/// Makes a format 0 PIN block: the clear block TDES-encrypted under `pin_key`.
pub fn format0_encrypt(
    pin_key: &SecretKey,
    pin: &Pin,
    pan: &Pan,
) -> Result<[u8; 8], PinBlockError> {
    check_key(PinBlockFormat::Iso0, pin_key)?;
    let clear = format0_clear_block(pin, pan);
    let mut block = *clear;
    BlockCipher::new(pin_key).encrypt_block(&mut block);
    Ok(block)
}

/// Reads the PIN from a format 0 PIN block, checking its format and fill.
pub fn format0_decrypt(
    pin_key: &SecretKey,
    block: &[u8; 8],
    pan: &Pan,
) -> Result<Pin, PinBlockError> {
    check_key(PinBlockFormat::Iso0, pin_key)?;
    let mut clear = Zeroizing::new(*block);
    BlockCipher::new(pin_key).decrypt_block(clear.as_mut_slice());
    xor_into(clear.as_mut_slice(), &format0_pan_field(pan));
    read_pin_field(PinBlockFormat::Iso0, clear.as_slice())
}

/// Makes a format 4 PIN block with random fill in the PIN field's right half.
pub fn format4_encrypt(
    pin_key: &SecretKey,
    pin: &Pin,
    pan: &Pan,
) -> Result<[u8; 16], PinBlockError> {
    let mut random = Zeroizing::new([0u8; 8]);
    fill_random(random.as_mut_slice())?;
    format4_encrypt_with_fill(pin_key, pin, pan, &random)
}

/// Makes a format 4 PIN block with the given 8 bytes of fill (published vectors fix them;
/// everything else takes [`format4_encrypt`]): the PIN field AES-encrypted, XOR the PAN
/// field, AES-encrypted again.
pub fn format4_encrypt_with_fill(
    pin_key: &SecretKey,
    pin: &Pin,
    pan: &Pan,
    random: &[u8; 8],
) -> Result<[u8; 16], PinBlockError> {
    check_key(PinBlockFormat::Iso4, pin_key)?;
    let cipher = BlockCipher::new(pin_key);
    let mut block = Zeroizing::new([0u8; 16]);
    block[..8].copy_from_slice(&pin_field(PinBlockFormat::Iso4, pin));
    block[8..].copy_from_slice(random);
    cipher.encrypt_block(block.as_mut_slice());
    xor_into(block.as_mut_slice(), &format4_pan_field(pan));
    cipher.encrypt_block(block.as_mut_slice());
    Ok(*block)
}

/// Reads the PIN from a format 4 PIN block, checking its format and fill.
pub fn format4_decrypt(
    pin_key: &SecretKey,
    block: &[u8; 16],
    pan: &Pan,
) -> Result<Pin, PinBlockError> {
    check_key(PinBlockFormat::Iso4, pin_key)?;
    let cipher = BlockCipher::new(pin_key);
    let mut clear = Zeroizing::new(*block);
    cipher.decrypt_block(clear.as_mut_slice());
    xor_into(clear.as_mut_slice(), &format4_pan_field(pan));
    cipher.decrypt_block(clear.as_mut_slice());
    read_pin_field(PinBlockFormat::Iso4, clear.as_slice())
}

/// Reads the PIN from a PIN block in the format of the key's family (format 0 for TDES,
/// format 4 for AES), after checking the block's length.
pub fn decrypt(
    pin_key: &SecretKey,
    block: &[u8],
    pan: &Pan,
) -> Result<(Pin, PinBlockFormat), PinBlockError> {
    let format = PinBlockFormat::for_key_family(pin_key.algorithm().family());
    let wrong_length = PinBlockError::WrongLength {
        format,
        found: block.len(),
    };
    let pin = match format {
        PinBlockFormat::Iso0 => {
            format0_decrypt(pin_key, block.try_into().map_err(|_| wrong_length)?, pan)?
        }
        PinBlockFormat::Iso4 => {
            format4_decrypt(pin_key, block.try_into().map_err(|_| wrong_length)?, pan)?
        }
    };
    Ok((pin, format))
}

#[cfg(test)]
mod tests {
    use super::*;

    static_assertions::assert_not_impl_any!(Pin: std::fmt::Debug, std::fmt::Display, Clone);

    #[test]
    fn format0_clear_block_of_x9_24_1_a4() {
        let pin = Pin::new("1234").unwrap();
        let pan = Pan::new("4012345678909").unwrap();
        assert_eq!(
            hex::encode_upper(format0_clear_block(&pin, &pan).as_slice()),
            "041274EDCBA9876F"
        );
    }

    #[test]
    fn format4_pan_field_of_x9_24_3() {
        let pan = Pan::new("4111111111111111").unwrap();
        assert_eq!(
            hex::encode_upper(format4_pan_field(&pan).as_slice()),
            "44111111111111111000000000000000"
        );
        let short = Pan::new("123456789012").unwrap();
        assert_eq!(
            hex::encode_upper(format4_pan_field(&short).as_slice()),
            "01234567890120000000000000000000"
        );
    }

    #[test]
    fn errors_never_repeat_digits() {
        assert_eq!(
            Pin::new("12a4").err().unwrap().to_string(),
            "a PIN is digits 0-9 only: character 3 is not"
        );
        assert_eq!(
            Pin::new("123").err().unwrap().to_string(),
            "a PIN is 4 to 12 digits, got 3"
        );
        let key = SecretKey::from_hex(KeyAlgorithm::Aes128, &"11".repeat(16)).unwrap();
        let pan = Pan::new("4012345678909").unwrap();
        assert_eq!(
            decrypt(&key, &[0u8; 8], &pan).err().unwrap().to_string(),
            "ISO 9564 format 4 PIN blocks are 16 bytes (32 hex digits), got 8 bytes"
        );
        assert_eq!(
            format0_encrypt(&key, &Pin::new("1234").unwrap(), &pan)
                .err()
                .unwrap()
                .to_string(),
            "ISO 9564 format 0 takes a TDES PIN key, not AES-128"
        );
    }
}
