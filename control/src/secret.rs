//! A custodian's component as it travels in a `ceremony` or `bdk-ceremony` request, with the custodian's name: wiped on drop, never printed.

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

/// One custodian's part of a ceremony: their name, their component, and the component's
/// check value from their form, which keymotherd checks (a mistyped component is named).
/// No `Debug`: it holds the component.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CustodianComponent {
    /// The custodian's name, as the audit trail records it.
    pub custodian: String,
    /// The component in hex.
    pub component: ComponentHex,
    /// The component's check value from the custodian's form; refused if it differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kcv: Option<String>,
}
