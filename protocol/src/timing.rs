//! Default timeouts and retry limit of the link (PROTOCOL.md, "Timeouts").

use std::time::Duration;

/// A partial frame is dropped when no byte of it arrives for this long.
pub const DEFAULT_INTER_BYTE_TIMEOUT: Duration = Duration::from_millis(500);
/// The terminal retransmits a request that has had no valid response for this long.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(3);
/// Retransmissions of one request before the terminal gives up (so at most 4 transmissions).
pub const DEFAULT_MAX_RETRIES: u32 = 3;
/// The appliance ends a terminal session with no valid frame for this long (keymotherd's
/// `[dispensing] idle_timeout_seconds` unless set).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
