//! The crypto core of keymother: secret keys, check values, DES parity, custodian components, key strength, TR-31 key blocks, DUKPT and PIN blocks.
//!
//! Everything here is free of I/O. Primitives come from RustCrypto (`des`, `aes`, `cmac`,
//! `cbc`); this crate only composes them the way the payment standards prescribe.

pub mod block_cipher;
pub mod component;
pub mod dukpt;
pub mod kcv;
pub mod kdf;
pub mod key;
pub mod parity;
pub mod pin_block;
pub mod strength;
pub mod tr31;

pub use kcv::Kcv;
pub use key::{AlgorithmError, KeyAlgorithm, KeyError, KeyFamily, SecretKey};
pub use strength::{WeakKey, check_strength};
