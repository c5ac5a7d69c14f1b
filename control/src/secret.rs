//! A custodian's component as it travels in a `ceremony` request: wiped on drop, never printed.

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// One key component in hex, as a custodian typed it. It has no `Debug` and no `Display`,
/// and its text is wiped when it is dropped.
#[derive(Clone, Serialize, Deserialize, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
#[serde(transparent)]
pub struct ComponentHex(String);

impl ComponentHex {
    /// Takes the text (it is wiped with this value).
    pub fn new(text: String) -> ComponentHex {
        ComponentHex(text)
    }

    /// The hex text, for parsing into a component.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}
