//! The key block header: its fixed fields and optional blocks, parsed from templates and key blocks and written back as text.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use super::error::{BlockPart, HeaderField, Tr31Error};
use super::fields::{Algorithm, Exportability, KeyUsage, KeyVersion, ModeOfUse, Version};
use super::optional_block::{OptionalBlock, parse_hex_number};

/// Length of the fixed part of every header.
pub(crate) const FIXED_HEADER_LENGTH: usize = 16;

/// A key block header.
///
/// `optional_blocks` holds the blocks in header order. A header parsed from a key block keeps
/// its PB padding block, so that `to_string()` gives back the header text exactly (except the
/// four length digits, which `Display` always writes as `0000`). When wrapping, any PB in
/// `optional_blocks` is dropped and a fresh one (filled with `0` characters) is added if the
/// header length needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub version: Version,
    pub key_usage: KeyUsage,
    pub algorithm: Algorithm,
    pub mode_of_use: ModeOfUse,
    pub key_version: KeyVersion,
    pub exportability: Exportability,
    pub optional_blocks: Vec<OptionalBlock>,
}

impl Header {
    /// A header with key version "00" and no optional blocks.
    pub fn new(
        version: Version,
        key_usage: KeyUsage,
        algorithm: Algorithm,
        mode_of_use: ModeOfUse,
        exportability: Exportability,
    ) -> Header {
        Header {
            version,
            key_usage,
            algorithm,
            mode_of_use,
            key_version: KeyVersion::NotUsed,
            exportability,
            optional_blocks: Vec::new(),
        }
    }

    /// The first optional block with this two-character ID, if any.
    pub fn optional_block(&self, id: &str) -> Option<&OptionalBlock> {
        self.optional_blocks
            .iter()
            .find(|block| block.id().as_slice() == id.as_bytes())
    }

    /// Reads the header of a complete key block without a key: checks the block's structure
    /// (lengths, optional blocks, hex encoding) but cannot check its MAC.
    pub fn from_key_block(block: &str) -> Result<Header, Tr31Error> {
        let bytes = printable_ascii(block)?;
        let layout = Layout::of(bytes)?;
        check_hex(bytes, layout.encrypted_key.clone(), BlockPart::EncryptedKey)?;
        check_hex(bytes, layout.mac.clone(), BlockPart::Mac)?;
        Ok(layout.header)
    }

    /// Appends the 16 fixed characters with the given length and optional block count.
    pub(crate) fn encode_fixed(&self, out: &mut String, length: usize, block_count: usize) {
        out.push(self.version.code());
        out.push_str(&format!("{:04}", length.min(9999)));
        out.push_str(&self.key_usage.to_string());
        out.push(self.algorithm.code());
        out.push(self.mode_of_use.code());
        out.push_str(&self.key_version.to_string());
        out.push(self.exportability.code());
        out.push_str(&format!("{:02}", block_count.min(99)));
        out.push_str("00");
    }
}

impl fmt::Display for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = String::with_capacity(FIXED_HEADER_LENGTH);
        self.encode_fixed(&mut text, 0, self.optional_blocks.len());
        for block in &self.optional_blocks {
            block.encode(&mut text);
        }
        f.write_str(&text)
    }
}

/// Parses a header template: the 16 fixed characters (the four length digits may be any digits;
/// they are filled in when wrapping) followed by exactly the optional blocks the header declares.
impl FromStr for Header {
    type Err = Tr31Error;

    fn from_str(text: &str) -> Result<Header, Tr31Error> {
        let bytes = printable_ascii(text)?;
        Ok(parse(bytes, Source::Template)?.header)
    }
}

/// Where header text comes from, which decides what follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// A header on its own: nothing may follow the optional blocks.
    Template,
    /// The start of a key block: the length field must match the block, and the encrypted key
    /// and MAC follow the optional blocks.
    KeyBlock,
}

/// A parsed header and the number of characters it took.
pub(crate) struct ParsedHeader {
    pub(crate) header: Header,
    pub(crate) length: usize,
}

/// Where the parts of a structurally valid key block are.
pub(crate) struct Layout {
    pub(crate) header: Header,
    pub(crate) header_length: usize,
    pub(crate) encrypted_key: Range<usize>,
    pub(crate) mac: Range<usize>,
}

impl Layout {
    /// Parses the header of a key block and checks every length in it.
    pub(crate) fn of(bytes: &[u8]) -> Result<Layout, Tr31Error> {
        let parsed = parse(bytes, Source::KeyBlock)?;
        let version = parsed.header.version;
        let block_size = version.block_size();
        if parsed.length % block_size != 0 {
            return Err(Tr31Error::HeaderNotAligned {
                version,
                length: parsed.length,
                block_size,
            });
        }
        let mac_characters = 2 * version.mac_length();
        let needed = parsed.length + 2 * block_size + mac_characters;
        if bytes.len() < needed {
            return Err(Tr31Error::TooShort {
                version,
                length: bytes.len(),
                header_length: parsed.length,
                needed,
            });
        }
        let mac_start = bytes.len() - mac_characters;
        let encrypted_characters = mac_start - parsed.length;
        if !encrypted_characters.is_multiple_of(2 * block_size) {
            return Err(Tr31Error::EncryptedLength {
                version,
                found: encrypted_characters,
            });
        }
        Ok(Layout {
            header: parsed.header,
            header_length: parsed.length,
            encrypted_key: parsed.length..mac_start,
            mac: mac_start..bytes.len(),
        })
    }
}

/// The text as bytes, if every character is printable ASCII (as ANSI X9.143 requires).
pub(crate) fn printable_ascii(text: &str) -> Result<&[u8], Tr31Error> {
    let bytes = text.as_bytes();
    match bytes.iter().position(|byte| !(0x20..=0x7E).contains(byte)) {
        None => Ok(bytes),
        Some(index) => {
            // Every byte before `index` is ASCII, so `index` is also the character index.
            let code = text[index..].chars().next().map_or(0, u32::from);
            Err(Tr31Error::NotPrintableAscii {
                position: index + 1,
                code,
            })
        }
    }
}

/// Marks a byte that is no upper-case hex digit in [`HEX_VALUE`].
const NOT_HEX: u8 = 0xF0;

/// The value of each upper-case hex digit; [`NOT_HEX`] for every other byte.
const HEX_VALUE: [u8; 256] = {
    let mut table = [NOT_HEX; 256];
    let mut digit = 0;
    while digit < 16 {
        let character = if digit < 10 {
            b'0' + digit
        } else {
            b'A' + digit - 10
        };
        table[character as usize] = digit;
        digit += 1;
    }
    table
};

/// Decodes upper-case hex from `bytes[range]` into `out` (half as long as the range). A
/// table look-up per digit and one test at the end (an import decodes a hundred million
/// digits); only a bad digit is then looked for, to name its position. On an error `out`
/// holds no meaning.
pub(crate) fn decode_hex(
    bytes: &[u8],
    range: Range<usize>,
    part: BlockPart,
    out: &mut [u8],
) -> Result<(), Tr31Error> {
    let mut seen = 0u8;
    for (pair, target) in bytes[range.clone()].chunks_exact(2).zip(out.iter_mut()) {
        let high = HEX_VALUE[usize::from(pair[0])];
        let low = HEX_VALUE[usize::from(pair[1])];
        seen |= high | low;
        *target = (high << 4) | (low & 0x0F);
    }
    if seen & NOT_HEX == 0 {
        return Ok(());
    }
    let decoded = out.len() * 2;
    check_hex(bytes, range.start..range.start + decoded, part)?;
    // Not reached: a byte the table marks is no hex digit, which check_hex reports.
    Err(Tr31Error::InvalidHex {
        position: range.start + 1,
        part,
    })
}

fn check_hex(bytes: &[u8], range: Range<usize>, part: BlockPart) -> Result<(), Tr31Error> {
    let start = range.start;
    for (index, byte) in bytes[range].iter().enumerate() {
        hex_digit(*byte, start + index, part)?;
    }
    Ok(())
}

fn hex_digit(byte: u8, offset: usize, part: BlockPart) -> Result<u8, Tr31Error> {
    match byte {
        b'0'..=b'9' => Ok(byte - b'0'),
        b'A'..=b'F' => Ok(byte - b'A' + 10),
        _ => Err(Tr31Error::InvalidHex {
            position: offset + 1,
            part,
        }),
    }
}

fn field_bytes(bytes: &[u8], field: HeaderField) -> &[u8] {
    let (first, last) = field.positions();
    &bytes[first - 1..last]
}

fn invalid(field: HeaderField) -> Tr31Error {
    Tr31Error::InvalidHeaderField { field }
}

fn decimal(digits: &[u8]) -> Option<usize> {
    digits.iter().try_fold(0usize, |value, byte| {
        byte.is_ascii_digit()
            .then(|| value * 10 + usize::from(byte - b'0'))
    })
}

/// Parses the fixed header and the optional blocks it declares.
pub(crate) fn parse(bytes: &[u8], source: Source) -> Result<ParsedHeader, Tr31Error> {
    if bytes.len() < FIXED_HEADER_LENGTH {
        return Err(Tr31Error::Truncated {
            found: bytes.len(),
            needed: FIXED_HEADER_LENGTH,
            what: "the fixed part of the header",
        });
    }
    let version = Version::from_code(bytes[0]).ok_or_else(|| invalid(HeaderField::Version))?;
    let declared_length = decimal(field_bytes(bytes, HeaderField::BlockLength))
        .ok_or_else(|| invalid(HeaderField::BlockLength))?;
    if source == Source::KeyBlock {
        if declared_length > bytes.len() {
            return Err(Tr31Error::LengthFieldBeyondBlock {
                declared: declared_length,
                actual: bytes.len(),
            });
        }
        if declared_length < bytes.len() {
            return Err(Tr31Error::LengthFieldMismatch {
                declared: declared_length,
                actual: bytes.len(),
            });
        }
    }
    let key_usage =
        KeyUsage::from_code([bytes[5], bytes[6]]).ok_or_else(|| invalid(HeaderField::KeyUsage))?;
    let algorithm =
        Algorithm::from_code(bytes[7]).ok_or_else(|| invalid(HeaderField::Algorithm))?;
    let mode_of_use =
        ModeOfUse::from_code(bytes[8]).ok_or_else(|| invalid(HeaderField::ModeOfUse))?;
    let key_version = KeyVersion::from_code([bytes[9], bytes[10]])
        .ok_or_else(|| invalid(HeaderField::KeyVersion))?;
    let exportability =
        Exportability::from_code(bytes[11]).ok_or_else(|| invalid(HeaderField::Exportability))?;
    let block_count = decimal(field_bytes(bytes, HeaderField::OptionalBlockCount))
        .ok_or_else(|| invalid(HeaderField::OptionalBlockCount))?;
    if bytes[14] != b'0' {
        return Err(invalid(HeaderField::KeyContext));
    }
    if bytes[15] != b'0' {
        return Err(invalid(HeaderField::Reserved));
    }

    let mut header = Header {
        version,
        key_usage,
        algorithm,
        mode_of_use,
        key_version,
        exportability,
        optional_blocks: Vec::with_capacity(block_count),
    };
    let mut position = FIXED_HEADER_LENGTH;
    let mut padding_position = None;
    for index in 0..block_count {
        if let Some(padding) = padding_position {
            return Err(Tr31Error::PaddingBlockNotLast { position: padding });
        }
        let (block, length) = parse_optional_block(bytes, position, block_count, index)?;
        let id = block.id();
        if header
            .optional_blocks
            .iter()
            .any(|earlier| earlier.id() == id)
        {
            return Err(Tr31Error::DuplicateOptionalBlock {
                id: String::from_utf8_lossy(&id).into_owned(),
                position: position + 1,
            });
        }
        if block.is_padding() {
            padding_position = Some(position + 1);
        }
        header.optional_blocks.push(block);
        position += length;
    }
    if source == Source::Template && position != bytes.len() {
        return Err(Tr31Error::TextAfterHeader {
            position: position + 1,
        });
    }
    Ok(ParsedHeader {
        header,
        length: position,
    })
}

/// Parses the optional block starting at `start`; returns it and its length in characters.
fn parse_optional_block(
    bytes: &[u8],
    start: usize,
    declared: usize,
    index: usize,
) -> Result<(OptionalBlock, usize), Tr31Error> {
    let cut_off = || Tr31Error::OptionalBlockCutOff {
        declared,
        index,
        position: start + 1,
    };
    let remaining = bytes.len() - start;
    if remaining < 4 {
        return Err(cut_off());
    }
    let id = [bytes[start], bytes[start + 1]];
    let problem = |problem: String| Tr31Error::InvalidOptionalBlock {
        id: OptionalBlock::is_known_id(id).then(|| String::from_utf8_lossy(&id).into_owned()),
        position: start + 1,
        problem,
    };
    if !id.iter().all(u8::is_ascii_alphanumeric) {
        return Err(problem("the block ID must be two letters or digits".into()));
    }
    let length_text = &bytes[start + 2..start + 4];
    let (length, data_offset) = if length_text == b"00" {
        extended_length(bytes, start).map_err(problem)?
    } else {
        let length = hex_text(length_text).ok_or_else(|| {
            problem(
                "its length (characters 3-4 of the block) is not two upper-case hex digits".into(),
            )
        })?;
        (length, 4)
    };
    if length < data_offset {
        return Err(problem(format!(
            "its length {length} is shorter than its own ID and length field ({data_offset} characters)"
        )));
    }
    if length > remaining {
        return Err(problem(format!(
            "its length {length} runs past the end of the key block ({remaining} characters remain)"
        )));
    }
    // The whole text was checked to be printable ASCII, so this cannot fail.
    let data = std::str::from_utf8(&bytes[start + data_offset..start + length]).unwrap_or_default();
    let block = OptionalBlock::parse(id, data).map_err(problem)?;
    Ok((block, length))
}

fn hex_text(digits: &[u8]) -> Option<usize> {
    std::str::from_utf8(digits).ok().and_then(parse_hex_number)
}

/// Reads the extended length form: "00", the length of the length in bytes (two hex digits),
/// then the length in hex. ANSI X9.143's published examples (and psec, paysec) give the length
/// of the length in bytes ("02" then four hex digits); some implementations (older openemv/tr31
/// releases, moov-io/tr31) write it as a number of hex digits ("04" then four hex digits). Both
/// are read: the byte reading is tried first, and the digit reading only when the byte reading
/// cannot be a valid length; no block fitting in a key block is valid under both.
fn extended_length(bytes: &[u8], start: usize) -> Result<(usize, usize), String> {
    let remaining = bytes.len() - start;
    if remaining < 6 {
        return Err("its extended length is cut off after \"00\"".into());
    }
    let count_text = &bytes[start + 4..start + 6];
    let count = hex_text(count_text).ok_or_else(|| {
        "the length of its extended length (characters 5-6 of the block) is not two upper-case \
         hex digits"
            .to_owned()
    })?;
    if count == 0 || count > 4 {
        return Err(format!(
            "the length of its extended length is {count} bytes; expected 1 to 4 (usually 02)"
        ));
    }
    let read = |digits: usize| -> Option<(usize, usize)> {
        let offset = 6 + digits;
        let text = bytes.get(start + 6..start + offset)?;
        let length = hex_text(text)?;
        (length >= offset && length <= remaining).then_some((length, offset))
    };
    read(2 * count).or_else(|| read(count)).ok_or_else(|| {
        format!(
            "its extended length ({count} bytes) is not a valid length within the {remaining} \
             remaining characters"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The table-driven decode says what a digit-by-digit reading says: the bytes of
        /// upper-case hex, or the position (1-based, in the block) of the first other byte.
        #[test]
        fn decode_hex_agrees_with_reading_digit_by_digit(
            text in proptest::collection::vec(
                prop_oneof![
                    8 => proptest::sample::select(b"0123456789ABCDEF".to_vec()),
                    1 => any::<u8>(),
                ],
                0..40,
            ),
            offset in 0usize..8,
        ) {
            let mut bytes = vec![b'0'; offset];
            bytes.extend_from_slice(&text);
            let even = text.len() / 2 * 2;
            let mut out = vec![0u8; even / 2];
            let decoded = decode_hex(&bytes, offset..offset + even, BlockPart::Mac, &mut out);
            let first_bad = text[..even]
                .iter()
                .position(|byte| !byte.is_ascii_digit() && !(b'A'..=b'F').contains(byte));
            match first_bad {
                None => {
                    prop_assert_eq!(decoded, Ok(()));
                    let expected = (0..even / 2)
                        .map(|index| {
                            let pair = std::str::from_utf8(&text[2 * index..2 * index + 2]).unwrap();
                            u8::from_str_radix(pair, 16).unwrap()
                        })
                        .collect::<Vec<_>>();
                    prop_assert_eq!(out, expected);
                }
                Some(index) => prop_assert_eq!(
                    decoded,
                    Err(Tr31Error::InvalidHex { position: offset + index + 1, part: BlockPart::Mac })
                ),
            }
        }
    }
}
