//! Hex text of values that are not secret (check values): errors name the position, never the text.

/// Why hex text could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HexError {
    #[error("not hexadecimal: character {position} is not 0-9 or A-F")]
    NotHex { position: usize },
    #[error("odd number of hex digits ({0}); every byte takes two")]
    OddLength(usize),
}

/// Decodes hex (either case, no separators).
pub(crate) fn decode(text: &str) -> Result<Vec<u8>, HexError> {
    if let Some(position) = text
        .chars()
        .position(|character| !character.is_ascii_hexdigit())
    {
        return Err(HexError::NotHex {
            position: position + 1,
        });
    }
    hex::decode(text).map_err(|_| HexError::OddLength(text.len()))
}
