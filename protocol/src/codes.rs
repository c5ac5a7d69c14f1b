//! The numbered codes of ERROR (appliance to terminal) and ABORT (terminal to appliance), each with its meaning.

use std::fmt;

/// The code of an ERROR message. Unknown codes are carried as they are (a newer appliance may
/// send codes an older terminal does not know; it must treat them as a failure).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ErrorCode(pub u16);

impl ErrorCode {
    /// A field of the request is not valid (the detail names it).
    pub const MALFORMED_MESSAGE: ErrorCode = ErrorCode(0x0001);
    /// The TYPE byte is not a message type of this protocol.
    pub const UNKNOWN_MESSAGE_TYPE: ErrorCode = ErrorCode(0x0002);
    /// The request is valid but not at this point of the session.
    pub const OUT_OF_ORDER_MESSAGE: ErrorCode = ErrorCode(0x0003);
    /// HELLO names a protocol version the appliance does not speak.
    pub const UNSUPPORTED_VERSION: ErrorCode = ErrorCode(0x0004);
    /// None of the modes in HELLO is one the appliance is configured for.
    pub const NO_COMMON_MODE: ErrorCode = ErrorCode(0x0005);
    /// KEY_REQUEST names a mode other than the one WELCOME chose.
    pub const MODE_NOT_NEGOTIATED: ErrorCode = ErrorCode(0x0006);
    /// No unused master key is left for this terminal.
    pub const NO_KEYS_AVAILABLE: ErrorCode = ErrorCode(0x0007);
    /// The appliance is locked, or has no transport key loaded.
    pub const NOT_READY: ErrorCode = ErrorCode(0x0008);
    /// The KCV in CONFIRM is not the delivered key's.
    pub const KCV_MISMATCH: ErrorCode = ErrorCode(0x0009);
    /// The KCV in CONFIRM is not the delivered key's, and the key is now quarantined.
    pub const KCV_MISMATCH_QUARANTINED: ErrorCode = ErrorCode(0x000A);
    /// The SMN in CONFIRM is not the hardware serial followed by the key index.
    pub const SMN_MISMATCH: ErrorCode = ErrorCode(0x000B);
    /// CONFIRM names a key this terminal was not given.
    pub const KEY_NOT_DELIVERED: ErrorCode = ErrorCode(0x000C);
    /// The SEQ of the last request came again with a different body.
    pub const SEQUENCE_REUSED: ErrorCode = ErrorCode(0x000D);
    /// The SEQ is neither the last request's (a retransmission) nor the next one (a replayed or
    /// out-of-sequence request).
    pub const SEQUENCE_OUT_OF_ORDER: ErrorCode = ErrorCode(0x000E);
    /// The frame's body is longer than 4096 bytes.
    pub const FRAME_TOO_LARGE: ErrorCode = ErrorCode(0x000F);
    /// The previous request is still being processed (stop-and-wait was not kept); transient.
    pub const BUSY: ErrorCode = ErrorCode(0x0010);
    /// Certificate mode: the terminal's KRD credential token or random number token does not
    /// parse or is not the kind expected, or its device certificate was refused (issuer,
    /// validity, key usage, role, revocation, or it names another hardware serial); nothing was
    /// reserved.
    pub const CERTIFICATE_REFUSED: ErrorCode = ErrorCode(0x0011);
    /// Certificate mode: this port has had too many key requests lately (a limit on the KDH
    /// key's signatures); nothing was reserved, try again later.
    pub const RATE_LIMITED: ErrorCode = ErrorCode(0x0012);
    /// The appliance requires each terminal to be on an open expected-device list, and this
    /// hardware serial is not; nothing was reserved, and the attempt was recorded.
    pub const DEVICE_NOT_EXPECTED: ErrorCode = ErrorCode(0x0013);
    /// This hardware serial already holds a confirmed key of the slot asked for (the master
    /// key, or a profile's DUKPT slot) and no re-injection was granted for it; nothing was
    /// reserved.
    pub const ALREADY_INJECTED: ErrorCode = ErrorCode(0x0014);
    /// This hardware serial is being injected on another port right now; nothing was
    /// reserved.
    pub const SERIAL_BUSY: ErrorCode = ErrorCode(0x0015);
    /// The terminal's HELLO capability flags leave out the TR-31 key block version every mode
    /// it offers would need (the one the appliance's transport key wraps under); no session is
    /// open and nothing was reserved.
    pub const KEY_BLOCK_VERSION_UNSUPPORTED: ErrorCode = ErrorCode(0x0016);
    /// The appliance failed internally; the request changed nothing that is not recorded.
    pub const INTERNAL_ERROR: ErrorCode = ErrorCode(0x00FF);

    /// Every code this version defines, in numeric order.
    pub const ALL: [ErrorCode; 23] = [
        ErrorCode::MALFORMED_MESSAGE,
        ErrorCode::UNKNOWN_MESSAGE_TYPE,
        ErrorCode::OUT_OF_ORDER_MESSAGE,
        ErrorCode::UNSUPPORTED_VERSION,
        ErrorCode::NO_COMMON_MODE,
        ErrorCode::MODE_NOT_NEGOTIATED,
        ErrorCode::NO_KEYS_AVAILABLE,
        ErrorCode::NOT_READY,
        ErrorCode::KCV_MISMATCH,
        ErrorCode::KCV_MISMATCH_QUARANTINED,
        ErrorCode::SMN_MISMATCH,
        ErrorCode::KEY_NOT_DELIVERED,
        ErrorCode::SEQUENCE_REUSED,
        ErrorCode::SEQUENCE_OUT_OF_ORDER,
        ErrorCode::FRAME_TOO_LARGE,
        ErrorCode::BUSY,
        ErrorCode::CERTIFICATE_REFUSED,
        ErrorCode::RATE_LIMITED,
        ErrorCode::DEVICE_NOT_EXPECTED,
        ErrorCode::ALREADY_INJECTED,
        ErrorCode::SERIAL_BUSY,
        ErrorCode::KEY_BLOCK_VERSION_UNSUPPORTED,
        ErrorCode::INTERNAL_ERROR,
    ];

    /// The code's short name (as in PROTOCOL.md), if this version defines it.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            ErrorCode::MALFORMED_MESSAGE => "MALFORMED_MESSAGE",
            ErrorCode::UNKNOWN_MESSAGE_TYPE => "UNKNOWN_MESSAGE_TYPE",
            ErrorCode::OUT_OF_ORDER_MESSAGE => "OUT_OF_ORDER_MESSAGE",
            ErrorCode::UNSUPPORTED_VERSION => "UNSUPPORTED_VERSION",
            ErrorCode::NO_COMMON_MODE => "NO_COMMON_MODE",
            ErrorCode::MODE_NOT_NEGOTIATED => "MODE_NOT_NEGOTIATED",
            ErrorCode::NO_KEYS_AVAILABLE => "NO_KEYS_AVAILABLE",
            ErrorCode::NOT_READY => "NOT_READY",
            ErrorCode::KCV_MISMATCH => "KCV_MISMATCH",
            ErrorCode::KCV_MISMATCH_QUARANTINED => "KCV_MISMATCH_QUARANTINED",
            ErrorCode::SMN_MISMATCH => "SMN_MISMATCH",
            ErrorCode::KEY_NOT_DELIVERED => "KEY_NOT_DELIVERED",
            ErrorCode::SEQUENCE_REUSED => "SEQUENCE_REUSED",
            ErrorCode::SEQUENCE_OUT_OF_ORDER => "SEQUENCE_OUT_OF_ORDER",
            ErrorCode::FRAME_TOO_LARGE => "FRAME_TOO_LARGE",
            ErrorCode::BUSY => "BUSY",
            ErrorCode::CERTIFICATE_REFUSED => "CERTIFICATE_REFUSED",
            ErrorCode::RATE_LIMITED => "RATE_LIMITED",
            ErrorCode::DEVICE_NOT_EXPECTED => "DEVICE_NOT_EXPECTED",
            ErrorCode::ALREADY_INJECTED => "ALREADY_INJECTED",
            ErrorCode::SERIAL_BUSY => "SERIAL_BUSY",
            ErrorCode::KEY_BLOCK_VERSION_UNSUPPORTED => "KEY_BLOCK_VERSION_UNSUPPORTED",
            ErrorCode::INTERNAL_ERROR => "INTERNAL_ERROR",
            _ => return None,
        })
    }

    /// What the code means, in a sentence (as in PROTOCOL.md).
    pub fn meaning(self) -> Option<&'static str> {
        Some(match self {
            ErrorCode::MALFORMED_MESSAGE => {
                "a field of the request is not valid; the detail names it"
            }
            ErrorCode::UNKNOWN_MESSAGE_TYPE => {
                "the TYPE byte is not a message type of this protocol"
            }
            ErrorCode::OUT_OF_ORDER_MESSAGE => {
                "the request is valid but not at this point of the session"
            }
            ErrorCode::UNSUPPORTED_VERSION => {
                "HELLO names a protocol version the appliance does not speak"
            }
            ErrorCode::NO_COMMON_MODE => {
                "none of the modes offered in HELLO is configured on the appliance"
            }
            ErrorCode::MODE_NOT_NEGOTIATED => {
                "KEY_REQUEST names a mode other than the one WELCOME chose"
            }
            ErrorCode::NO_KEYS_AVAILABLE => "no unused master key is left for this terminal",
            ErrorCode::NOT_READY => {
                "the appliance is locked, has no transport key loaded, no operator is logged in, or its tamper input is not watched"
            }
            ErrorCode::KCV_MISMATCH => "the KCV in CONFIRM is not the delivered key's",
            ErrorCode::KCV_MISMATCH_QUARANTINED => {
                "the KCV in CONFIRM is not the delivered key's, and the key is now quarantined"
            }
            ErrorCode::SMN_MISMATCH => {
                "the SMN in CONFIRM is not the hardware serial followed by the 8-digit key index"
            }
            ErrorCode::KEY_NOT_DELIVERED => {
                "CONFIRM names a key this terminal was not given (in this session, or ever)"
            }
            ErrorCode::SEQUENCE_REUSED => "the last request's SEQ came again with a different body",
            ErrorCode::SEQUENCE_OUT_OF_ORDER => {
                "the SEQ is neither the last request's nor the next one (a replayed or out-of-sequence request)"
            }
            ErrorCode::FRAME_TOO_LARGE => "the frame's body is longer than 4096 bytes",
            ErrorCode::BUSY => {
                "the previous request is still being processed; retransmit after the response timeout"
            }
            ErrorCode::CERTIFICATE_REFUSED => {
                "the terminal's credential token, device certificate or random number token was refused; nothing was reserved"
            }
            ErrorCode::RATE_LIMITED => {
                "too many certificate-mode key requests on this port lately; try again later"
            }
            ErrorCode::DEVICE_NOT_EXPECTED => {
                "the hardware serial is not on an open expected-device list; nothing was reserved"
            }
            ErrorCode::ALREADY_INJECTED => {
                "this hardware serial already holds a confirmed key of the slot asked for and no re-injection was granted; nothing was reserved"
            }
            ErrorCode::SERIAL_BUSY => {
                "this hardware serial is being injected on another port; nothing was reserved"
            }
            ErrorCode::KEY_BLOCK_VERSION_UNSUPPORTED => {
                "the terminal's capability flags leave out the TR-31 key block version the appliance's transport key needs; no session is open, nothing was reserved"
            }
            ErrorCode::INTERNAL_ERROR => "the appliance failed internally",
            _ => return None,
        })
    }

    /// Whether the session goes on after this error: only BUSY is transient.
    pub fn is_transient(self) -> bool {
        self == ErrorCode::BUSY
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "0x{:04X} {name}", self.0),
            None => write!(f, "0x{:04X} (unknown error code)", self.0),
        }
    }
}

/// The reason code of an ABORT. Unknown reasons are carried as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AbortReason(pub u8);

impl AbortReason {
    /// The TTK check value in WELCOME differs from the terminal's transport key's.
    pub const TTK_KCV_MISMATCH: AbortReason = AbortReason(0x01);
    /// The delivered key block did not unwrap under the terminal's transport key.
    pub const KEY_BLOCK_DOES_NOT_UNWRAP: AbortReason = AbortReason(0x02);
    /// The unwrapped key's check value differs from the delivered KCV.
    pub const KCV_MISMATCH: AbortReason = AbortReason(0x03);
    /// A response was not acceptable (malformed, or a mode or version the terminal did not offer).
    pub const UNEXPECTED_RESPONSE: AbortReason = AbortReason(0x04);
    /// Cancelled at the terminal (operator or firmware).
    pub const CANCELLED: AbortReason = AbortReason(0x05);
    /// Certificate mode: the appliance's KDH certificate was refused.
    pub const CERTIFICATE_REFUSED: AbortReason = AbortReason(0x06);
    /// Certificate mode: the key token is not authentic (not the KDH's signature, another
    /// nonce or a stale signing time, a revoked KDH, another recipient, or a header other than
    /// the key block field's).
    pub const DELIVERY_NOT_AUTHENTIC: AbortReason = AbortReason(0x07);

    /// Every reason this version defines.
    pub const ALL: [AbortReason; 7] = [
        AbortReason::TTK_KCV_MISMATCH,
        AbortReason::KEY_BLOCK_DOES_NOT_UNWRAP,
        AbortReason::KCV_MISMATCH,
        AbortReason::UNEXPECTED_RESPONSE,
        AbortReason::CANCELLED,
        AbortReason::CERTIFICATE_REFUSED,
        AbortReason::DELIVERY_NOT_AUTHENTIC,
    ];

    /// The reason's short name, if this version defines it.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            AbortReason::TTK_KCV_MISMATCH => "TTK_KCV_MISMATCH",
            AbortReason::KEY_BLOCK_DOES_NOT_UNWRAP => "KEY_BLOCK_DOES_NOT_UNWRAP",
            AbortReason::KCV_MISMATCH => "KCV_MISMATCH",
            AbortReason::UNEXPECTED_RESPONSE => "UNEXPECTED_RESPONSE",
            AbortReason::CANCELLED => "CANCELLED",
            AbortReason::CERTIFICATE_REFUSED => "CERTIFICATE_REFUSED",
            AbortReason::DELIVERY_NOT_AUTHENTIC => "DELIVERY_NOT_AUTHENTIC",
            _ => return None,
        })
    }

    /// What the reason means, in a sentence.
    pub fn meaning(self) -> Option<&'static str> {
        Some(match self {
            AbortReason::TTK_KCV_MISMATCH => "transport key check value differs",
            AbortReason::KEY_BLOCK_DOES_NOT_UNWRAP => "key block did not unwrap",
            AbortReason::KCV_MISMATCH => {
                "the installed key's check value differs from the delivered KCV"
            }
            AbortReason::UNEXPECTED_RESPONSE => "a response was malformed or not acceptable",
            AbortReason::CANCELLED => "cancelled at the terminal",
            AbortReason::CERTIFICATE_REFUSED => "the appliance's KDH certificate was refused",
            AbortReason::DELIVERY_NOT_AUTHENTIC => {
                "the certificate-mode key token is not authentic"
            }
            _ => return None,
        })
    }
}

impl fmt::Display for AbortReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.meaning() {
            Some(meaning) => write!(f, "0x{:02X} {meaning}", self.0),
            None => write!(f, "0x{:02X} (unknown abort reason)", self.0),
        }
    }
}
