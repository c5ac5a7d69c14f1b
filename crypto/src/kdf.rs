//! Key derivation in counter mode with CMAC as the PRF (NIST SP 800-108r1 §4.1): TR-31 versions B and D derive their keys with it, so their published vectors check it.

use zeroize::Zeroizing;

use crate::block_cipher::BlockCipher;
use crate::key::SecretKey;

/// Derives `output_length` bytes: the concatenation of CMAC(key, i || fixed_input) for
/// i = 1, 2, ... with an 8-bit counter placed before the fixed input (r = 8).
///
/// `fixed_input` is the caller's label, separator, context and length encoding, exactly as
/// the caller's specification lays it out. At most 255 blocks can be derived.
pub fn counter_mode_cmac(
    key: &SecretKey,
    fixed_input: &[u8],
    output_length: usize,
) -> Zeroizing<Vec<u8>> {
    let cipher = BlockCipher::new(key);
    let mut output = Zeroizing::new(Vec::with_capacity(output_length + cipher.block_size()));
    let mut counter: u8 = 1;
    while output.len() < output_length {
        let block = Zeroizing::new(cipher.cmac(&[&[counter], fixed_input]));
        output.extend_from_slice(&block);
        counter = counter.wrapping_add(1);
    }
    output.truncate(output_length);
    output
}

/// The fixed input of SP 800-108 as keymother uses it for its own derivations:
/// `label || 0x00 || context || [L]16` with L the output length in bits.
pub fn labelled_fixed_input(label: &[u8], context: &[u8], output_length: usize) -> Vec<u8> {
    let bits = u16::try_from(output_length * 8).unwrap_or(u16::MAX);
    let mut fixed = Vec::with_capacity(label.len() + context.len() + 3);
    fixed.extend_from_slice(label);
    fixed.push(0x00);
    fixed.extend_from_slice(context);
    fixed.extend_from_slice(&bits.to_be_bytes());
    fixed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::KeyAlgorithm;

    #[test]
    fn output_is_the_requested_length_and_depends_on_label() {
        let key = SecretKey::from_hex(KeyAlgorithm::Tdes2Key, "0123456789ABCDEFFEDCBA9876543210")
            .unwrap();
        let first = counter_mode_cmac(&key, &labelled_fixed_input(b"A", b"", 32), 32);
        let second = counter_mode_cmac(&key, &labelled_fixed_input(b"B", b"", 32), 32);
        assert_eq!(first.len(), 32);
        assert_ne!(first.as_slice(), second.as_slice());
        // Blocks differ from one another because the counter is in the input.
        assert_ne!(first[..8], first[8..16]);
    }
}
