//! The field-level reader and writer every message and mode-data codec is built on, with the checks both share.

use crate::identity::{IdentityError, MAX_KEY_INDEX};
use crate::modes;

use super::{DecodeError, EncodeError, Field, FieldProblem, MIN_KEY_BLOCK_LENGTH, MessageType};

const PRINTABLE: &str = "printable ASCII 0x20-0x7E";
pub(crate) const KCV_LENGTHS: &str = "3 (TDES) or 5 (AES)";

fn is_printable(byte: u8) -> bool {
    (0x20..=0x7E).contains(&byte)
}

/// Checks a text field's length and characters (shared by encoder and decoder).
pub(crate) fn check_text(
    bytes: &[u8],
    min: usize,
    max: usize,
    allowed: &'static str,
) -> Result<(), FieldProblem> {
    if bytes.len() < min || bytes.len() > max {
        return Err(FieldProblem::Length {
            found: bytes.len(),
            allowed,
        });
    }
    if let Some(position) = bytes.iter().position(|&byte| !is_printable(byte)) {
        return Err(FieldProblem::Character {
            position: position + 1,
            byte: bytes[position],
            allowed: PRINTABLE,
        });
    }
    Ok(())
}

pub(crate) fn check_kcv_length(length: usize) -> Result<(), FieldProblem> {
    match length {
        3 | 5 => Ok(()),
        found => Err(FieldProblem::Length {
            found,
            allowed: KCV_LENGTHS,
        }),
    }
}

pub(crate) fn check_key_index(key_index: u32) -> Result<(), FieldProblem> {
    if key_index > MAX_KEY_INDEX {
        return Err(FieldProblem::OutOfRange {
            value: u64::from(key_index),
            max: u64::from(MAX_KEY_INDEX),
        });
    }
    Ok(())
}

/// How many bytes a field's length takes.
#[derive(Clone, Copy)]
pub(crate) enum LengthWidth {
    One,
    Two,
}

/// Reads fields from a payload, naming the message in every error.
pub(crate) struct Reader<'a> {
    pub(crate) message: MessageType,
    pub(crate) bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn error(&self, field: Field, problem: FieldProblem) -> DecodeError {
        DecodeError::Field {
            message: self.message,
            field,
            problem,
        }
    }

    pub(crate) fn take(&mut self, count: usize, field: Field) -> Result<&'a [u8], DecodeError> {
        if self.bytes.len() < count {
            return Err(self.error(field, FieldProblem::Truncated));
        }
        let (taken, rest) = self.bytes.split_at(count);
        self.bytes = rest;
        Ok(taken)
    }

    pub(crate) fn u8(&mut self, field: Field) -> Result<u8, DecodeError> {
        Ok(self.take(1, field)?[0])
    }

    pub(crate) fn u16(&mut self, field: Field) -> Result<u16, DecodeError> {
        let bytes = self.take(2, field)?;
        Ok(u16::from_be_bytes([bytes[0], bytes[1]]))
    }

    pub(crate) fn u32(&mut self, field: Field) -> Result<u32, DecodeError> {
        let bytes = self.take(4, field)?;
        Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    pub(crate) fn key_index(&mut self) -> Result<u32, DecodeError> {
        let key_index = self.u32(Field::KeyIndex)?;
        check_key_index(key_index).map_err(|problem| self.error(Field::KeyIndex, problem))?;
        Ok(key_index)
    }

    /// A one-byte length, checked against `min..=max`, then that many bytes.
    pub(crate) fn counted(
        &mut self,
        length_field: Field,
        field: Field,
        min: usize,
        max: usize,
        allowed: &'static str,
    ) -> Result<&'a [u8], DecodeError> {
        self.prefixed(LengthWidth::One, length_field, field, min, max, allowed)
    }

    /// A big-endian length of `width`, checked against `min..=max`, then that many bytes.
    pub(crate) fn prefixed(
        &mut self,
        width: LengthWidth,
        length_field: Field,
        field: Field,
        min: usize,
        max: usize,
        allowed: &'static str,
    ) -> Result<&'a [u8], DecodeError> {
        let length = match width {
            LengthWidth::One => usize::from(self.u8(length_field)?),
            LengthWidth::Two => usize::from(self.u16(length_field)?),
        };
        if length < min || length > max {
            return Err(self.error(
                length_field,
                FieldProblem::Length {
                    found: length,
                    allowed,
                },
            ));
        }
        self.take(length, field)
    }

    /// A one-byte length and that many printable ASCII characters.
    pub(crate) fn text(
        &mut self,
        length_field: Field,
        field: Field,
        min: usize,
        max: usize,
        allowed: &'static str,
    ) -> Result<String, DecodeError> {
        let bytes = self.counted(length_field, field, min, max, allowed)?;
        check_text(bytes, min, max, allowed).map_err(|problem| self.error(field, problem))?;
        Ok(bytes.iter().map(|&byte| char::from(byte)).collect())
    }

    /// A two-byte length in `MIN_KEY_BLOCK_LENGTH..=max` and that many printable characters.
    pub(crate) fn key_block(
        &mut self,
        max: usize,
        allowed: &'static str,
    ) -> Result<String, DecodeError> {
        let length = usize::from(self.u16(Field::KeyBlockLength)?);
        if !(MIN_KEY_BLOCK_LENGTH..=max).contains(&length) {
            return Err(self.error(
                Field::KeyBlockLength,
                FieldProblem::Length {
                    found: length,
                    allowed,
                },
            ));
        }
        let block = self.take(length, Field::KeyBlock)?;
        check_text(block, MIN_KEY_BLOCK_LENGTH, max, allowed)
            .map_err(|problem| self.error(Field::KeyBlock, problem))?;
        Ok(block.iter().map(|&byte| char::from(byte)).collect())
    }

    pub(crate) fn kcv(
        &mut self,
        length_field: Field,
        field: Field,
    ) -> Result<Vec<u8>, DecodeError> {
        let length = self.u8(length_field)?;
        check_kcv_length(usize::from(length))
            .map_err(|problem| self.error(length_field, problem))?;
        Ok(self.take(usize::from(length), field)?.to_vec())
    }

    pub(crate) fn parsed<T: std::str::FromStr<Err = IdentityError>>(
        &mut self,
        length_field: Field,
        field: Field,
        min: usize,
        max: usize,
        allowed: &'static str,
    ) -> Result<T, DecodeError> {
        let text = self.text(length_field, field, min, max, allowed)?;
        text.parse()
            .map_err(|error| self.error(field, FieldProblem::Identity(error)))
    }

    /// The rest of the payload as a mode's fields; a mode without any (tr31, mode 1; see
    /// [`modes::carries_mode_data`]) leaves the rest, and [`finish`](Self::finish) reports it as
    /// trailing bytes.
    pub(crate) fn mode_data(&mut self, mode_id: u8) -> Vec<u8> {
        if !modes::carries_mode_data(mode_id) {
            Vec::new()
        } else {
            std::mem::take(&mut self.bytes).to_vec()
        }
    }

    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        match self.bytes.len() {
            0 => Ok(()),
            count => Err(self.error(Field::Payload, FieldProblem::TrailingBytes { count })),
        }
    }
}

/// Writes fields to a payload, naming the message in every error.
pub(crate) struct Writer {
    message: MessageType,
    pub(crate) bytes: Vec<u8>,
}

impl Writer {
    pub(crate) fn new(message: MessageType) -> Self {
        Writer {
            message,
            bytes: Vec::new(),
        }
    }

    pub(crate) fn error(&self, field: Field, problem: FieldProblem) -> EncodeError {
        EncodeError::Field {
            message: self.message,
            field,
            problem,
        }
    }

    pub(crate) fn u8(&mut self, value: u8) {
        self.bytes.push(value);
    }

    pub(crate) fn u16(&mut self, value: u16) {
        self.bytes.extend_from_slice(&value.to_be_bytes());
    }

    pub(crate) fn u32(&mut self, value: u32) {
        self.bytes.extend_from_slice(&value.to_be_bytes());
    }

    pub(crate) fn key_index(&mut self, key_index: u32) -> Result<(), EncodeError> {
        check_key_index(key_index).map_err(|problem| self.error(Field::KeyIndex, problem))?;
        self.u32(key_index);
        Ok(())
    }

    /// A one-byte length (checked against `min..=max`) and the bytes.
    pub(crate) fn counted(
        &mut self,
        field: Field,
        bytes: &[u8],
        min: usize,
        max: usize,
        allowed: &'static str,
    ) -> Result<(), EncodeError> {
        self.prefixed(LengthWidth::One, field, bytes, min, max, allowed)
    }

    /// A big-endian length of `width` (checked against `min..=max`) and the bytes.
    pub(crate) fn prefixed(
        &mut self,
        width: LengthWidth,
        field: Field,
        bytes: &[u8],
        min: usize,
        max: usize,
        allowed: &'static str,
    ) -> Result<(), EncodeError> {
        let length = Some(bytes.len())
            .filter(|length| (min..=max).contains(length))
            .and_then(|length| match width {
                LengthWidth::One => u8::try_from(length).ok().map(|byte| vec![byte]),
                LengthWidth::Two => u16::try_from(length)
                    .ok()
                    .map(|value| value.to_be_bytes().to_vec()),
            })
            .ok_or_else(|| {
                self.error(
                    field,
                    FieldProblem::Length {
                        found: bytes.len(),
                        allowed,
                    },
                )
            })?;
        self.bytes.extend_from_slice(&length);
        self.bytes.extend_from_slice(bytes);
        Ok(())
    }

    pub(crate) fn text(
        &mut self,
        field: Field,
        text: &str,
        min: usize,
        max: usize,
        allowed: &'static str,
    ) -> Result<(), EncodeError> {
        check_text(text.as_bytes(), min, max, allowed)
            .map_err(|problem| self.error(field, problem))?;
        self.counted(field, text.as_bytes(), min, max, allowed)
    }

    /// A two-byte length (checked against `MIN_KEY_BLOCK_LENGTH..=max`) and the block's
    /// printable characters.
    pub(crate) fn key_block(
        &mut self,
        key_block: &str,
        max: usize,
        allowed: &'static str,
    ) -> Result<(), EncodeError> {
        let block = key_block.as_bytes();
        check_text(block, MIN_KEY_BLOCK_LENGTH, max, allowed)
            .map_err(|problem| self.error(Field::KeyBlock, problem))?;
        self.prefixed(
            LengthWidth::Two,
            Field::KeyBlock,
            block,
            MIN_KEY_BLOCK_LENGTH,
            max,
            allowed,
        )
    }

    pub(crate) fn kcv(&mut self, field: Field, kcv: &[u8]) -> Result<(), EncodeError> {
        check_kcv_length(kcv.len()).map_err(|problem| self.error(field, problem))?;
        self.counted(field, kcv, 3, 5, KCV_LENGTHS)
    }

    /// A mode's trailing fields; a mode without any (tr31, mode 1; see
    /// [`modes::carries_mode_data`]) refuses them.
    pub(crate) fn mode_data(&mut self, mode_id: u8, mode_data: &[u8]) -> Result<(), EncodeError> {
        if !modes::carries_mode_data(mode_id) && !mode_data.is_empty() {
            return Err(self.error(
                Field::ModeData,
                FieldProblem::TrailingBytes {
                    count: mode_data.len(),
                },
            ));
        }
        self.bytes.extend_from_slice(mode_data);
        Ok(())
    }
}
