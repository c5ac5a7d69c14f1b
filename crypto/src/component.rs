//! Custodian key components: split knowledge by XOR, every component and the result identified by its check value.

use crate::kcv::Kcv;
use crate::key::{KeyAlgorithm, KeyError, KeyFamily, SecretKey};
use crate::parity;

/// Fewest components a ceremony accepts (dual control).
pub const MIN_COMPONENTS: usize = 2;
/// Most components a ceremony accepts.
pub const MAX_COMPONENTS: usize = 9;

/// One custodian's share of a key. For TDES it must have odd parity: a typo check.
pub struct Component {
    key: SecretKey,
}

impl Component {
    /// Parses a typed component; `number` (1-based) only labels errors.
    pub fn from_hex(
        algorithm: KeyAlgorithm,
        number: usize,
        text: &str,
    ) -> Result<Component, ComponentError> {
        let cleaned: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let cleaned = zeroize::Zeroizing::new(cleaned);
        let key = SecretKey::from_hex(algorithm, &cleaned)
            .map_err(|problem| ComponentError::Invalid { number, problem })?;
        if algorithm.family() == KeyFamily::Tdes {
            parity::check_odd(key.expose_secret_bytes()).map_err(|error| {
                ComponentError::Invalid {
                    number,
                    problem: KeyError::Parity(error),
                }
            })?;
        }
        key.check_strength()
            .map_err(|weak| ComponentError::Invalid {
                number,
                problem: KeyError::Weak(weak),
            })?;
        Ok(Component { key })
    }

    /// Like [`from_hex`](Self::from_hex), then checks the component's check value against the
    /// one on its custodian's form, if given: a mistyped component is caught as it is entered.
    pub fn from_hex_expecting(
        algorithm: KeyAlgorithm,
        number: usize,
        text: &str,
        expected: Option<Kcv>,
    ) -> Result<Component, ComponentError> {
        let component = Component::from_hex(algorithm, number, text)?;
        component.check_expected(number, expected)?;
        Ok(component)
    }

    /// Checks the component's check value against `expected`, if given.
    pub fn check_expected(
        &self,
        number: usize,
        expected: Option<Kcv>,
    ) -> Result<(), ComponentError> {
        match expected {
            Some(expected) if expected != self.kcv() => Err(ComponentError::ComponentKcvMismatch {
                number,
                expected,
                found: self.kcv(),
            }),
            _ => Ok(()),
        }
    }

    /// A fresh random component (odd parity for TDES).
    pub fn generate(algorithm: KeyAlgorithm) -> Result<Component, KeyError> {
        Ok(Component {
            key: SecretKey::generate(algorithm)?,
        })
    }

    /// The component's own check value, which its custodian records on the ceremony form.
    pub fn kcv(&self) -> Kcv {
        self.key.kcv()
    }

    /// The component's algorithm.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.key.algorithm()
    }

    /// The clear component as hex, for the one place that must show it: its custodian's screen.
    pub fn expose_secret_hex(&self) -> zeroize::Zeroizing<String> {
        self.key.expose_secret_hex()
    }
}

/// The outcome of a ceremony: the combined key and what may be shown about it.
pub struct Combined {
    /// The combined key, odd parity for TDES.
    pub key: SecretKey,
    /// Each component's check value, in the order entered.
    pub component_kcvs: Vec<Kcv>,
    /// Whether the XOR result's parity was adjusted to odd (always for an even number of TDES components).
    pub parity_adjusted: bool,
}

/// XOR-combines 2 to 9 components; if `expected` is given the combined check value must match.
pub fn combine(
    components: &[Component],
    expected: Option<Kcv>,
) -> Result<Combined, ComponentError> {
    if components.len() < MIN_COMPONENTS {
        return Err(ComponentError::TooFew {
            found: components.len(),
        });
    }
    if components.len() > MAX_COMPONENTS {
        return Err(ComponentError::TooMany {
            found: components.len(),
        });
    }
    let algorithm = components[0].algorithm();
    let mut combined = zeroize::Zeroizing::new(vec![0u8; algorithm.key_length()]);
    for (index, component) in components.iter().enumerate() {
        if component.algorithm() != algorithm {
            return Err(ComponentError::MixedAlgorithms {
                number: index + 1,
                expected: algorithm,
                found: component.algorithm(),
            });
        }
        if let Some(earlier) = components[..index]
            .iter()
            .position(|other| other.key.same_material_as(&component.key))
        {
            return Err(ComponentError::Repeated {
                number: index + 1,
                earlier: earlier + 1,
            });
        }
        for (byte, share) in combined.iter_mut().zip(component.key.expose_secret_bytes()) {
            *byte ^= share;
        }
    }
    let mut parity_adjusted = false;
    if algorithm.family() == KeyFamily::Tdes && parity::check_odd(&combined).is_err() {
        parity::adjust_to_odd(&mut combined);
        parity_adjusted = true;
    }
    if combined.iter().all(|byte| *byte & 0xFE == 0) {
        return Err(ComponentError::NullKey);
    }
    let key = SecretKey::from_bytes(algorithm, &combined)
        .map_err(|problem| ComponentError::Invalid { number: 0, problem })?;
    key.check_strength()
        .map_err(ComponentError::WeakCombination)?;
    let kcv = key.kcv();
    if let Some(expected) = expected {
        if expected != kcv {
            return Err(ComponentError::KcvMismatch {
                expected,
                found: kcv,
            });
        }
    }
    Ok(Combined {
        component_kcvs: components.iter().map(Component::kcv).collect(),
        key,
        parity_adjusted,
    })
}

/// Why a ceremony could not produce a key. Never carries component material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComponentError {
    /// `problem` is not a `source`: the words are in this error's own text once (a chain
    /// printed with its causes would say them twice).
    #[error("component {number}: {problem}")]
    Invalid { number: usize, problem: KeyError },
    #[error("a key needs at least {MIN_COMPONENTS} components (split knowledge), got {found}")]
    TooFew { found: usize },
    #[error("at most {MAX_COMPONENTS} components can be combined, got {found}")]
    TooMany { found: usize },
    #[error("component {number} is a {found} key but component 1 is {expected}")]
    MixedAlgorithms {
        number: usize,
        expected: KeyAlgorithm,
        found: KeyAlgorithm,
    },
    #[error("component {number} is identical to component {earlier}; they would cancel out")]
    Repeated { number: usize, earlier: usize },
    #[error("the components combine to a null key; enter them again")]
    NullKey,
    #[error("combined check value is {found}, but {expected} was expected; no key was stored")]
    KcvMismatch { expected: Kcv, found: Kcv },
    #[error(
        "component {number}'s check value is {found}, but its form says {expected}: a mistyped component?"
    )]
    ComponentKcvMismatch {
        number: usize,
        expected: Kcv,
        found: Kcv,
    },
    #[error("the combined key is weak: {0}; no key was stored")]
    WeakCombination(crate::strength::WeakKey),
}

#[cfg(test)]
mod tests {
    use super::*;

    // Components of 0123456789ABCDEFFEDCBA9876543210 (KCV 08D7B4): the first is random-looking
    // with odd parity, the second its XOR complement with odd parity.
    const FIRST: &str = "3E5B7C9102B5D6F8 1325466B8AADCEE0";
    const SECOND: &str = "3E7938F78A1F1A16ECF8FDF2FDF8FDF1";

    #[test]
    fn two_tdes_components_combine_with_parity_adjusted() {
        let components = [
            Component::from_hex(KeyAlgorithm::Tdes2Key, 1, FIRST).unwrap(),
            Component::from_hex(KeyAlgorithm::Tdes2Key, 2, SECOND).unwrap(),
        ];
        let combined = combine(&components, None).unwrap();
        // The XOR of two odd-parity bytes has even parity: adjusted back to odd.
        assert!(combined.parity_adjusted);
        assert_eq!(combined.key.kcv().to_string(), "08D7B4");
        assert_eq!(combined.component_kcvs.len(), 2);
    }

    #[test]
    fn expected_kcv_must_match() {
        let components = [
            Component::from_hex(KeyAlgorithm::Tdes2Key, 1, FIRST).unwrap(),
            Component::from_hex(KeyAlgorithm::Tdes2Key, 2, SECOND).unwrap(),
        ];
        let wrong = Kcv::from_hex(KeyFamily::Tdes, "000000").unwrap();
        let error = combine(&components, Some(wrong)).err().unwrap();
        assert_eq!(
            error.to_string(),
            "combined check value is 08D7B4, but 000000 was expected; no key was stored"
        );
        let right = Kcv::from_hex(KeyFamily::Tdes, "08D7B4").unwrap();
        assert!(combine(&components, Some(right)).is_ok());
    }

    #[test]
    fn counts_outside_two_to_nine_are_refused() {
        let one = [Component::generate(KeyAlgorithm::Aes128).unwrap()];
        assert!(matches!(
            combine(&one, None),
            Err(ComponentError::TooFew { found: 1 })
        ));
        let ten: Vec<_> = (0..10)
            .map(|_| Component::generate(KeyAlgorithm::Aes128).unwrap())
            .collect();
        assert!(matches!(
            combine(&ten, None),
            Err(ComponentError::TooMany { found: 10 })
        ));
        assert!(combine(&ten[..9], None).is_ok());
    }

    #[test]
    fn mistyped_tdes_component_is_caught_by_parity() {
        // One digit of SECOND mistyped: 0x45 -> 0x44.
        let error = Component::from_hex(
            KeyAlgorithm::Tdes2Key,
            2,
            "0123446789ABCDEFFEDCBA9876543210",
        )
        .err()
        .unwrap();
        assert_eq!(
            error.to_string(),
            "component 2: byte 3 of the key does not have odd DES parity (a mistyped digit?)"
        );
    }

    #[test]
    fn repeated_component_is_refused() {
        let components = [
            Component::from_hex(KeyAlgorithm::Tdes2Key, 1, SECOND).unwrap(),
            Component::from_hex(KeyAlgorithm::Tdes2Key, 2, SECOND).unwrap(),
        ];
        assert_eq!(
            combine(&components, None).err().unwrap(),
            ComponentError::Repeated {
                number: 2,
                earlier: 1
            }
        );
    }

    #[test]
    fn weak_components_and_weak_combinations_are_refused() {
        // A component whose halves repeat is refused as it is entered, naming the parts.
        let error = Component::from_hex(
            KeyAlgorithm::Tdes2Key,
            2,
            "0123456789ABCDEF0123456789ABCDEF",
        )
        .err()
        .unwrap();
        assert!(
            matches!(
                error,
                ComponentError::Invalid {
                    number: 2,
                    problem: KeyError::Weak(_)
                }
            ),
            "{error}"
        );
        assert!(error.to_string().contains("K1 and K2"), "{error}");
        assert!(!error.to_string().contains("0123456789ABCDEF"), "{error}");
        // Two strong components whose XOR repeats: the combination is refused.
        let first = "3E5B7C9102B5D6F81325466B8AADCEE0";
        let second = xor_hex(first, "0123456789ABCDEF0123456789ABCDEF");
        let components = [
            Component::from_hex(KeyAlgorithm::Tdes2Key, 1, first).unwrap(),
            Component::from_hex(KeyAlgorithm::Tdes2Key, 2, &odd_parity(&second)).unwrap(),
        ];
        let error = combine(&components, None).err().unwrap();
        assert!(
            matches!(error, ComponentError::WeakCombination(weak) if (weak.first, weak.second) == (1, 2)),
            "{error}"
        );
    }

    #[test]
    fn a_component_is_checked_against_its_form_as_it_is_entered() {
        let right = Component::from_hex(KeyAlgorithm::Tdes2Key, 1, FIRST)
            .unwrap()
            .kcv();
        assert!(
            Component::from_hex_expecting(KeyAlgorithm::Tdes2Key, 1, FIRST, Some(right)).is_ok()
        );
        let wrong = Kcv::from_hex(KeyFamily::Tdes, "000000").unwrap();
        let error = Component::from_hex_expecting(KeyAlgorithm::Tdes2Key, 1, FIRST, Some(wrong))
            .err()
            .unwrap();
        assert_eq!(
            error,
            ComponentError::ComponentKcvMismatch {
                number: 1,
                expected: wrong,
                found: right
            }
        );
        assert!(
            error
                .to_string()
                .starts_with("component 1's check value is "),
            "{error}"
        );
    }

    /// Sets odd parity on every byte of a hex key (the low bit only).
    fn odd_parity(text: &str) -> String {
        let mut bytes = hex::decode(text).unwrap();
        parity::adjust_to_odd(&mut bytes);
        hex::encode_upper(bytes)
    }

    #[test]
    fn mixed_algorithms_are_refused() {
        let components = [
            Component::generate(KeyAlgorithm::Aes128).unwrap(),
            Component::generate(KeyAlgorithm::Aes256).unwrap(),
        ];
        assert!(matches!(
            combine(&components, None),
            Err(ComponentError::MixedAlgorithms { number: 2, .. })
        ));
    }

    #[test]
    fn aes_components_are_not_parity_checked_and_xor_exactly() {
        let first = "00000000000000000000000000000000";
        let second = "3F419E1CB7079442AA37474C2EFBF8B8";
        let components = [
            Component::from_hex(KeyAlgorithm::Aes128, 1, &"11".repeat(16)).unwrap(),
            Component::from_hex(KeyAlgorithm::Aes128, 2, &xor_hex(&"11".repeat(16), second))
                .unwrap(),
        ];
        let combined = combine(&components, None).unwrap();
        assert!(!combined.parity_adjusted);
        assert_eq!(combined.key.kcv().to_string(), "08793E25AB");
        assert!(Component::from_hex(KeyAlgorithm::Aes128, 1, first).is_ok());
    }

    fn xor_hex(left: &str, right: &str) -> String {
        let left = hex::decode(left).unwrap();
        let right = hex::decode(right).unwrap();
        hex::encode_upper(
            left.iter()
                .zip(&right)
                .map(|(a, b)| a ^ b)
                .collect::<Vec<u8>>(),
        )
    }
}
