//! The numbers both sides of the control socket agree on.

use std::time::Duration;

/// The control protocol's version. A request may say `"version": 1`; without it, 1 is meant.
pub const CONTROL_VERSION: u32 = 1;

/// The longest line the daemon accepts from a client, line feed included.
pub const MAX_LINE: usize = 64 * 1024;

/// The longest answer line a client should expect (a `smn-rows` answer grows with the
/// registry: about 250 bytes a row). The `keymother` command accepts lines up to this.
pub const MAX_ANSWER_LINE: usize = 1024 * 1024 * 1024;

/// The most file bytes one `data` line carries (base64 makes them 4/3 as long, well under
/// [`MAX_LINE`]).
pub const DATA_CHUNK: usize = 32 * 1024;

/// The largest key file the daemon takes (a million records are about 130 MB).
pub const MAX_KEY_FILE: u64 = 256 * 1024 * 1024;

/// The largest BDK file the daemon takes (one is under 1 KiB).
pub const MAX_BDK_FILE: u64 = 16 * 1024;

/// The longest file name a client may give for a key file or an export (it only names the
/// file in errors and the audit trail; the daemon never opens it).
pub const MAX_FILE_NAME: usize = 255;

/// How long the daemon waits for a client's next line, or for a client to take a line it
/// writes, before it closes the connection (and cancels what the connection was doing).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// How many control connections the daemon serves at once. Beyond this, a new connection
/// takes the place of the oldest one that has not yet sent its request; when every
/// connection is busy, the new one is refused with [`Answer`] `ok: false`.
pub const MAX_CONNECTIONS: usize = 64;
