//! DES parity: the policy is "odd parity, checked where people type keys, set where keys are made".
//!
//! DES ignores the low bit of every key byte, so parity never changes a cipher result or a
//! check value. It is still worth having: a mistyped hex digit changes the parity of its byte
//! in every case where one or three bits flip, so requiring odd parity on typed components
//! catches most typos before they reach a ceremony.
//!
//! * Components typed by custodians and master keys arriving in key files: **rejected** unless
//!   every byte has odd parity (the error names the byte).
//! * The XOR of an even number of odd-parity components has even parity, so the combined
//!   key is **adjusted** to odd parity (documented, visible in the ceremony output).
//! * Keys the appliance generates have odd parity.
//! * The TR-31 layer and the check-value calculator accept any parity: they are tools for
//!   looking at keys, and the published TR-31 test keys are not parity-adjusted.

/// A byte without odd parity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("byte {byte} of the key does not have odd DES parity (a mistyped digit?)")]
pub struct ParityError {
    /// 1-based position of the first offending byte.
    pub byte: usize,
}

/// Does `byte` have an odd number of set bits?
pub fn is_odd(byte: u8) -> bool {
    byte.count_ones() % 2 == 1
}

/// Checks that every byte has odd parity.
pub fn check_odd(key: &[u8]) -> Result<(), ParityError> {
    match key.iter().position(|byte| !is_odd(*byte)) {
        Some(index) => Err(ParityError { byte: index + 1 }),
        None => Ok(()),
    }
}

/// Sets the low bit of each byte so that the byte has odd parity.
pub fn adjust_to_odd(key: &mut [u8]) {
    for byte in key.iter_mut() {
        if !is_odd(*byte) {
            *byte ^= 0x01;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_odd_key_passes() {
        check_odd(&hex::decode("0123456789ABCDEFFEDCBA9876543210").unwrap()).unwrap();
    }

    #[test]
    fn even_byte_is_named() {
        let key = hex::decode("01234567").unwrap();
        check_odd(&key).unwrap();
        let key = hex::decode("01224567").unwrap();
        assert_eq!(check_odd(&key), Err(ParityError { byte: 2 }));
    }

    proptest! {
        #[test]
        fn adjusting_gives_odd_parity_and_only_touches_low_bits(mut key in proptest::collection::vec(any::<u8>(), 16)) {
            let before = key.clone();
            adjust_to_odd(&mut key);
            prop_assert!(check_odd(&key).is_ok());
            for (old, new) in before.iter().zip(&key) {
                prop_assert_eq!(old & 0xFE, new & 0xFE);
            }
        }

        #[test]
        fn single_bit_typo_is_caught(bit in 0usize..128) {
            let mut key = hex::decode("0123456789ABCDEFFEDCBA9876543210").unwrap();
            key[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(check_odd(&key).is_err());
        }
    }
}
