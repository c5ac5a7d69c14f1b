//! The reference terminal: what a PIN pad does on the other end of the line, as a library for tests and a bench tool.
//!
//! It drives the protocol's sans-IO `TerminalSession` over a [`Line`] (a real serial port, a
//! pseudo-terminal, or a noisy wrapper of either) and keeps keys in a software key store
//! standing in for a PIN pad's secure memory.

pub mod certificate;
pub mod dukpt_keys;
pub mod key_store;
pub mod line;
pub mod modes;
pub mod run;
pub mod store_file;

pub use certificate::{CertificateIdentity, IdentityError};
pub use key_store::SoftwareKeyStore;
pub use line::{CountingLine, Damage, Line, NoisyLine, PtyLine, SerialLine};
pub use modes::Delivered;
pub use run::{Injection, inject};
pub use store_file::StoreFileError;
