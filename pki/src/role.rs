//! What a certificate is for ([`Role`]), and which end of a validity period was crossed ([`Subject`]).

use std::fmt;

use x509_cert::ext::pkix::KeyUsage;

/// What a certificate is for. Each role has its own CA in [`TrustAnchors`](crate::TrustAnchors).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// A POS terminal's device certificate, issued by the terminal manufacturer's CA.
    TerminalDevice,
    /// The appliance's key distribution host certificate (TR-34 KDH).
    KeyDistributionHost,
    /// An operator's certificate.
    Operator,
}

impl Role {
    /// All roles, in a fixed order.
    pub const ALL: [Role; 3] = [
        Role::TerminalDevice,
        Role::KeyDistributionHost,
        Role::Operator,
    ];

    /// The keyUsage bit a leaf of this role must have.
    pub fn required_key_usage(self) -> &'static str {
        match self {
            Role::TerminalDevice => "keyEncipherment",
            Role::KeyDistributionHost | Role::Operator => "digitalSignature",
        }
    }

    pub(crate) fn has_required_key_usage(self, usage: &KeyUsage) -> bool {
        match self {
            Role::TerminalDevice => usage.key_encipherment(),
            Role::KeyDistributionHost | Role::Operator => usage.digital_signature(),
        }
    }
}

impl Role {
    /// The article that goes before the role's name in a sentence ("an operator", "a KDH").
    pub fn article(self) -> &'static str {
        match self {
            Role::Operator => "an",
            Role::TerminalDevice | Role::KeyDistributionHost => "a",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::TerminalDevice => "terminal device",
            Role::KeyDistributionHost => "key distribution host (KDH)",
            Role::Operator => "operator",
        })
    }
}

/// Which of a validity period's ends was crossed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subject {
    /// The leaf certificate.
    Leaf,
    /// The role's CA certificate.
    Ca,
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Subject::Leaf => "certificate",
            Subject::Ca => "CA certificate",
        })
    }
}
