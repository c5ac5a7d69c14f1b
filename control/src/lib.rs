//! keymotherd's control API: one typed request and answer per command, and the lines that carry files, shared by the daemon and the `keymother` command (docs/CONTROL.md).
//!
//! The wire is newline-delimited JSON over the Unix socket `/run/keymother/control.sock`:
//! the client writes one [`Request`] line, then (for `import`) the file as [`ClientLine::Data`]
//! lines; the daemon answers with [`ServerLine`]s: progress, file data and end lines for
//! exports, and one final [`Answer`]. Both sides use these types, so a field renamed on one
//! side is a compile error on the other, and docs/CONTROL.md is checked against them.
//!
//! A client reading a field the daemon does not send does not compile (where `serde_json`
//! indexing would have printed "?"):
//!
//! ```compile_fail
//! fn show(status: &keymother_control::StatusReport) -> &str {
//!     &status.device // the field is `device_id`
//! }
//! ```
//!
//! ```
//! fn show(status: &keymother_control::StatusReport) -> &str {
//!     &status.device_id
//! }
//! ```

mod limits;
mod request;
mod response;
mod secret;
mod wire;

pub use limits::*;
pub use request::*;
pub use response::*;
pub use secret::{ComponentHex, CustodianComponent};
pub use wire::*;
