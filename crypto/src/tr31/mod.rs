//! ANSI X9.143 (TR-31) key blocks: wrap versions B and D, unwrap versions A, B, C and D, with typed headers and optional blocks.
//!
//! Wrapping pads every key as if it were the longest of its family (TDES keys to 24 bytes,
//! AES keys to 32) so the block does not reveal the key length (ANSI X9.143 clause 5), adds a
//! PB padding block when the header needs one, and refuses keys stronger than the protection
//! key and TDES keys whose parts repeat, on either side ([`crate::strength`]); unwrapping opens
//! them (published vectors use some). Unwrapping checks the MAC in constant time before anything decrypted is looked at.

mod binding;
mod error;
mod fields;
mod header;
mod optional_block;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::block_cipher::CmacPrefix;
use crate::key::{KeyAlgorithm, KeyFamily, SecretKey, fill_random};

use binding::BindingKeys;
use header::{FIXED_HEADER_LENGTH, Layout, Source};
use optional_block::push_hex;

pub use error::{BlockPart, HeaderField, Tr31Error};
pub use fields::{Algorithm, Exportability, KeyUsage, KeyVersion, ModeOfUse, Version};
pub use header::Header;
pub use optional_block::{
    AsymmetricKeyLife, BaseDerivationKeyIdentifier, Certificate, CheckValue, CheckValueAlgorithm,
    DerivationAllowed, HashAlgorithm, OptionalBlock, TimeStamp, TimeStampFormat, WrappingPedigree,
};

/// Largest key block length the four-digit length field can express.
const MAXIMUM_BLOCK_LENGTH: usize = 9999;

/// Encrypted key data up to this many bytes is decrypted on the stack (covers every TDES and
/// AES key, with length obfuscation, of every version).
const STACK_PAYLOAD: usize = 128;

/// What unwrapping yields: the authenticated header and the clear key.
pub struct Unwrapped {
    pub header: Header,
    pub key: SecretKey,
}

/// A key-block protection key (KBPK) with the keys its binding methods derive from it, computed
/// once: KBEK and KBMK of the key derivation binding (version B for TDES, D for AES) and, for
/// TDES, the key variants of versions A and C. Wrapping or unwrapping any number of blocks then
/// costs no key derivation. Key schedules are zeroized when dropped; there is deliberately no
/// `Debug` and no `Clone`.
pub struct KeyBlockProtectionKey {
    algorithm: KeyAlgorithm,
    derivation: BindingKeys,
    variant: Option<BindingKeys>,
    /// The KBPK's own check values by both methods, for KP optional blocks.
    check_values: CheckValues,
    /// Whether the KBPK's parts repeat: such a KBPK still unwraps (published vectors use
    /// some), but never wraps.
    weakness: Option<crate::strength::WeakKey>,
}

/// The longest prefixes a KC or KP block may state: 3 bytes of E(0), 5 bytes of CMAC(0).
struct CheckValues {
    legacy: [u8; 3],
    cmac: [u8; 5],
}

impl CheckValues {
    fn of(key: &SecretKey) -> CheckValues {
        let cipher = crate::block_cipher::BlockCipher::new(key);
        let mut zero_block = Zeroizing::new(vec![0u8; cipher.block_size()]);
        cipher.encrypt_block(&mut zero_block);
        let cmac = cipher.cmac(&[&vec![0u8; cipher.block_size()]]);
        let mut values = CheckValues {
            legacy: [0; 3],
            cmac: [0; 5],
        };
        values.legacy.copy_from_slice(&zero_block[..3]);
        values.cmac.copy_from_slice(&cmac[..5]);
        values
    }

    /// Does a stated check value (any prefix length the block allows) match?
    fn matches(&self, stated: &CheckValue) -> bool {
        let computed: &[u8] = match stated.algorithm {
            CheckValueAlgorithm::Legacy => &self.legacy,
            CheckValueAlgorithm::Cmac => &self.cmac,
        };
        !stated.value.is_empty()
            && stated.value.len() <= computed.len()
            && computed[..stated.value.len()] == stated.value[..]
    }
}

/// Checks the KC (wrapped key) and KP (protection key) blocks a header carries, if any.
fn check_stated_check_values(
    header: &Header,
    key: &SecretKey,
    kbpk: &CheckValues,
) -> Result<(), Tr31Error> {
    let mut key_values = None;
    for block in &header.optional_blocks {
        let (stated, values, id) = match block {
            OptionalBlock::KeyCheckValue(stated) => (
                stated,
                &*key_values.get_or_insert_with(|| CheckValues::of(key)),
                "KC",
            ),
            OptionalBlock::ProtectionKeyCheckValue(stated) => (stated, kbpk, "KP"),
            _ => continue,
        };
        if !values.matches(stated) {
            return Err(Tr31Error::StatedCheckValueMismatch { block: id });
        }
    }
    Ok(())
}

/// Where the padding after the key comes from.
enum PaddingSource<'a> {
    /// Random bytes; the key is padded as if it were the longest of its family.
    Random,
    /// Exactly these bytes (to reproduce a published block).
    Given(&'a [u8]),
}

impl KeyBlockProtectionKey {
    /// Derives the binding keys of `kbpk`.
    pub fn new(kbpk: &SecretKey) -> Self {
        let variant = match kbpk.algorithm().family() {
            KeyFamily::Tdes => Some(binding::variant_keys(kbpk)),
            KeyFamily::Aes => None,
        };
        KeyBlockProtectionKey {
            algorithm: kbpk.algorithm(),
            derivation: binding::derivation_keys(kbpk),
            variant,
            check_values: CheckValues::of(kbpk),
            weakness: kbpk.check_strength().err(),
        }
    }

    /// The protection key's algorithm.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// Wraps `key` under this KBPK with the attributes of `header` and returns the ASCII key
    /// block. The version must be B (TDES KBPK) or D (AES KBPK); the header algorithm must be
    /// the key's (T or A); any PB block of the header is replaced by one of the right length.
    /// A key or KBPK whose TDES parts repeat is refused ([`crate::strength`]).
    pub fn wrap(&self, header: &Header, key: &SecretKey) -> Result<String, Tr31Error> {
        self.wrap_with(header, key, PaddingSource::Random)
    }

    /// Like [`wrap`](Self::wrap) but with the given padding bytes after the key instead of
    /// random ones, and no key length obfuscation beyond what the padding provides: the key
    /// length field, the key and `padding` must fill whole cipher blocks. Only for reproducing
    /// published key blocks in tests (KC and KP blocks are written as given, even when
    /// wrong, and neither keys or KBPKs whose TDES parts repeat nor keys stronger than the
    /// KBPK are refused, so tests can make the blocks that unwrap, the key file readers and
    /// `keymother tr31 unwrap` must refuse or warn about); real key blocks need random padding.
    #[doc(hidden)]
    pub fn wrap_with_padding(
        &self,
        header: &Header,
        key: &SecretKey,
        padding: &[u8],
    ) -> Result<String, Tr31Error> {
        self.wrap_with(header, key, PaddingSource::Given(padding))
    }

    /// Checks and opens a key block protected by this KBPK.
    pub fn unwrap(&self, block: &str) -> Result<Unwrapped, Tr31Error> {
        self.opener().unwrap(block)
    }

    /// An opener of many blocks under this KBPK on one thread: it keeps the MAC state after
    /// the last header it saw, so blocks with the same header (every record of a key file)
    /// do not pay the header's cipher blocks again. The result is exactly
    /// [`unwrap`](Self::unwrap)'s.
    pub fn opener(&self) -> BlockOpener<'_> {
        BlockOpener {
            kbpk: self,
            header: Vec::new(),
            mac_after_header: None,
        }
    }

    fn wrap_with(
        &self,
        header: &Header,
        key: &SecretKey,
        padding: PaddingSource<'_>,
    ) -> Result<String, Tr31Error> {
        let version = header.version;
        if !version.can_wrap() {
            return Err(Tr31Error::VersionNotWrappable { version });
        }
        if self.algorithm.family() != version.protection_key_family() {
            return Err(Tr31Error::ProtectionKeyDoesNotMatchVersion {
                version,
                kbpk: self.algorithm,
            });
        }
        // Given padding reproduces published blocks exactly, weak keys included (a published
        // vector wraps a K1 = K2 key); every real wrap has random padding and is checked.
        if matches!(padding, PaddingSource::Random) {
            if let Some(weakness) = self.weakness {
                return Err(Tr31Error::WeakProtectionKey(weakness));
            }
            key.check_strength().map_err(Tr31Error::WeakKey)?;
        }
        let key_algorithm = key.algorithm();
        if header.algorithm != Algorithm::for_family(key_algorithm.family()) {
            return Err(Tr31Error::KeyDoesNotMatchAlgorithm {
                algorithm: header.algorithm,
                key: key_algorithm,
            });
        }
        if key_algorithm.strength_bits() > self.algorithm.strength_bits()
            && matches!(padding, PaddingSource::Random)
        {
            return Err(Tr31Error::ProtectionKeyWeakerThanKey {
                key: key_algorithm,
                kbpk: self.algorithm,
            });
        }
        // A KC or KP block must tell the truth: unwrap would refuse the block otherwise.
        // Given padding reproduces blocks exactly as published, wrong statements included.
        if matches!(padding, PaddingSource::Random) {
            check_stated_check_values(header, key, &self.check_values)?;
        }

        let block_size = version.block_size();
        let mut text = header_text_for_wrapping(header)?;
        let header_length = text.len();

        let key_bytes = key.expose_secret_bytes();
        let padding_length = match padding {
            PaddingSource::Random => {
                let longest = match key_algorithm.family() {
                    KeyFamily::Tdes => KeyAlgorithm::Tdes3Key.key_length(),
                    KeyFamily::Aes => KeyAlgorithm::Aes256.key_length(),
                };
                (2 + longest).div_ceil(block_size) * block_size - 2 - key_bytes.len()
            }
            PaddingSource::Given(bytes) => {
                if !(2 + key_bytes.len() + bytes.len()).is_multiple_of(block_size) {
                    return Err(Tr31Error::PaddingLength {
                        found: bytes.len(),
                        key_length: key_bytes.len(),
                        block_size,
                    });
                }
                bytes.len()
            }
        };
        let payload_length = 2 + key_bytes.len() + padding_length;
        let mac_length = version.mac_length();
        let total_length = header_length + 2 * payload_length + 2 * mac_length;
        if total_length > MAXIMUM_BLOCK_LENGTH {
            return Err(Tr31Error::BlockTooLong {
                length: total_length,
            });
        }
        text.replace_range(1..5, &format!("{total_length:04}"));

        let mut clear = Zeroizing::new(Vec::with_capacity(payload_length));
        clear.extend_from_slice(&((key_bytes.len() * 8) as u16).to_be_bytes());
        clear.extend_from_slice(key_bytes);
        match padding {
            PaddingSource::Random => {
                let start = clear.len();
                clear.resize(payload_length, 0);
                fill_random(&mut clear[start..])
                    .map_err(|error| Tr31Error::Random(error.to_string()))?;
            }
            PaddingSource::Given(bytes) => clear.extend_from_slice(bytes),
        }

        let mac = self
            .derivation
            .authentication
            .cmac(&[text.as_bytes(), &clear]);
        let mac = &mac[..mac_length];
        self.derivation.encryption.cbc_encrypt(mac, &mut clear);

        text.reserve(2 * (payload_length + mac_length));
        push_hex(&mut text, &clear);
        push_hex(&mut text, mac);
        Ok(text)
    }
}

/// Opens key blocks under one KBPK on one thread, keeping the CMAC state after the last
/// header (versions B and D MAC header || clear key data). Made by
/// [`KeyBlockProtectionKey::opener`]; no `Debug` (it holds a key schedule), no `Clone`.
pub struct BlockOpener<'a> {
    kbpk: &'a KeyBlockProtectionKey,
    /// The header whose MAC state is kept (key block headers are public: the MAC covers
    /// them in the clear).
    header: Vec<u8>,
    mac_after_header: Option<CmacPrefix>,
}

impl BlockOpener<'_> {
    /// The KBMK's CMAC state after `header_text`, computed again only when the header changes.
    fn mac_after(&mut self, header_text: &[u8]) -> &CmacPrefix {
        if self.mac_after_header.is_none() || self.header != header_text {
            self.header.clear();
            self.header.extend_from_slice(header_text);
            self.mac_after_header = None;
        }
        let authentication = &self.kbpk.derivation.authentication;
        self.mac_after_header
            .get_or_insert_with(|| authentication.cmac_after(header_text))
    }

    /// Checks and opens a key block protected by the KBPK; see [`KeyBlockProtectionKey::unwrap`].
    pub fn unwrap(&mut self, block: &str) -> Result<Unwrapped, Tr31Error> {
        let kbpk = self.kbpk;
        let bytes = header::printable_ascii(block)?;
        let layout = Layout::of(bytes)?;
        let version = layout.header.version;
        if kbpk.algorithm.family() != version.protection_key_family() {
            return Err(Tr31Error::ProtectionKeyDoesNotMatchVersion {
                version,
                kbpk: kbpk.algorithm,
            });
        }

        let mac_length = version.mac_length();
        let mut mac = [0u8; 16];
        header::decode_hex(
            bytes,
            layout.mac.clone(),
            BlockPart::Mac,
            &mut mac[..mac_length],
        )?;
        let mac = &mac[..mac_length];

        let payload_length = layout.encrypted_key.len() / 2;
        let mut stack = Zeroizing::new([0u8; STACK_PAYLOAD]);
        let mut heap = Zeroizing::new(Vec::new());
        let payload: &mut [u8] = if payload_length <= STACK_PAYLOAD {
            &mut stack[..payload_length]
        } else {
            heap.resize(payload_length, 0);
            &mut heap[..]
        };
        header::decode_hex(
            bytes,
            layout.encrypted_key.clone(),
            BlockPart::EncryptedKey,
            payload,
        )?;
        let header_text = &bytes[..layout.header_length];

        match version {
            Version::B | Version::D => {
                // Decrypt with the MAC as IV, then check the MAC over header || clear data
                // before looking at any of it.
                kbpk.derivation.encryption.cbc_decrypt(mac, payload);
                let expected = self.mac_after(header_text).finish(payload);
                if !bool::from(expected[..mac_length].ct_eq(mac)) {
                    return Err(Tr31Error::MacMismatch);
                }
            }
            Version::A | Version::C => {
                let keys =
                    kbpk.variant
                        .as_ref()
                        .ok_or(Tr31Error::ProtectionKeyDoesNotMatchVersion {
                            version,
                            kbpk: kbpk.algorithm,
                        })?;
                // The MAC covers header || encrypted data, so it is checked before decrypting.
                let mut mac_input = Vec::with_capacity(header_text.len() + payload.len());
                mac_input.extend_from_slice(header_text);
                mac_input.extend_from_slice(payload);
                let expected = keys.authentication.cbc_mac(&mac_input);
                if !bool::from(expected[..mac_length].ct_eq(mac)) {
                    return Err(Tr31Error::MacMismatch);
                }
                let iv = &header_text[..version.block_size()];
                keys.encryption.cbc_decrypt(iv, payload);
            }
        }

        let key = key_from_clear_data(layout.header.algorithm, payload)?;
        check_stated_check_values(&layout.header, &key, &kbpk.check_values)?;
        Ok(Unwrapped {
            header: layout.header,
            key,
        })
    }
}

/// Wraps `key` under `kbpk`; see [`KeyBlockProtectionKey::wrap`]. To wrap many keys under one
/// KBPK, make a [`KeyBlockProtectionKey`] once instead.
pub fn wrap(kbpk: &SecretKey, header: &Header, key: &SecretKey) -> Result<String, Tr31Error> {
    KeyBlockProtectionKey::new(kbpk).wrap(header, key)
}

/// Opens `block` with `kbpk`; see [`KeyBlockProtectionKey::unwrap`]. To open many blocks under
/// one KBPK, make a [`KeyBlockProtectionKey`] once instead.
pub fn unwrap(kbpk: &SecretKey, block: &str) -> Result<Unwrapped, Tr31Error> {
    KeyBlockProtectionKey::new(kbpk).unwrap(block)
}

/// The header text of a block being wrapped, length digits `0000`: the given optional blocks
/// except PB, then a PB block (of `0` characters) if the header length needs one. The text is
/// parsed again, so wrapping never produces a header that unwrapping would refuse.
fn header_text_for_wrapping(header: &Header) -> Result<String, Tr31Error> {
    let block_size = header.version.block_size();
    let mut blocks_text = String::new();
    let mut count = 0;
    for block in header
        .optional_blocks
        .iter()
        .filter(|block| !block.is_padding())
    {
        block.encode(&mut blocks_text);
        count += 1;
    }
    let misalignment = (FIXED_HEADER_LENGTH + blocks_text.len()) % block_size;
    if misalignment != 0 {
        let mut padding_length = block_size - misalignment;
        if padding_length < 4 {
            padding_length += block_size;
        }
        OptionalBlock::Padding("0".repeat(padding_length - 4)).encode(&mut blocks_text);
        count += 1;
    }
    if count > 99 {
        return Err(Tr31Error::TooManyOptionalBlocks { count });
    }
    let mut text = String::with_capacity(FIXED_HEADER_LENGTH + blocks_text.len() + 128);
    header.encode_fixed(&mut text, 0, count);
    text.push_str(&blocks_text);
    let bytes = header::printable_ascii(&text)?;
    header::parse(bytes, Source::Template)?;
    Ok(text)
}

/// The key from authenticated clear key data: 2-byte key length in bits, key, padding.
fn key_from_clear_data(algorithm: Algorithm, clear: &[u8]) -> Result<SecretKey, Tr31Error> {
    let family = match algorithm {
        Algorithm::Tdes => KeyFamily::Tdes,
        Algorithm::Aes => KeyFamily::Aes,
        Algorithm::Des => return Err(Tr31Error::SingleDesNotSupported),
        other => return Err(Tr31Error::AlgorithmNotSupported { algorithm: other }),
    };
    let bits = usize::from(u16::from_be_bytes([clear[0], clear[1]]));
    let available = clear.len() - 2;
    if bits == 0 || bits % 8 != 0 || bits / 8 > available {
        return Err(Tr31Error::ImpossibleKeyLength { bits, available });
    }
    let length = bits / 8;
    let not_allowed = Tr31Error::KeyLengthNotAllowed {
        algorithm,
        bytes: length,
    };
    let key_algorithm = family
        .algorithm_for_length(length)
        .map_err(|_| not_allowed.clone())?;
    SecretKey::from_bytes(key_algorithm, &clear[2..2 + length]).map_err(|_| not_allowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    static_assertions::assert_not_impl_any!(KeyBlockProtectionKey: std::fmt::Debug, Clone);
    static_assertions::assert_not_impl_any!(Unwrapped: std::fmt::Debug, Clone);
    // It holds a copy of the KBMK's key schedule in its kept MAC state.
    static_assertions::assert_not_impl_any!(BlockOpener<'static>: std::fmt::Debug, Clone);
    // One KBPK serves many threads (the benchmark unwraps a million blocks under one).
    static_assertions::assert_impl_all!(KeyBlockProtectionKey: Send, Sync);

    fn kbpk(algorithm: KeyAlgorithm) -> KeyBlockProtectionKey {
        KeyBlockProtectionKey::new(&SecretKey::generate(algorithm).unwrap())
    }

    #[test]
    fn wrapped_lengths_hide_the_key_length_within_its_family() {
        let tdes_kbpk = kbpk(KeyAlgorithm::Tdes3Key);
        let aes_kbpk = kbpk(KeyAlgorithm::Aes256);
        let b = Header::new(
            Version::B,
            KeyUsage::PinEncryption,
            Algorithm::Tdes,
            ModeOfUse::EncryptOnly,
            Exportability::Exportable,
        );
        let mut d = b.clone();
        d.version = Version::D;
        for algorithm in [KeyAlgorithm::Tdes2Key, KeyAlgorithm::Tdes3Key] {
            let key = SecretKey::generate(algorithm).unwrap();
            // 16 + 2 * 32 (2 + 24 padded to 32) + 2 * 8
            assert_eq!(tdes_kbpk.wrap(&b, &key).unwrap().len(), 96);
            // 16 + 2 * 32 (2 + 24 padded to 32) + 2 * 16
            assert_eq!(aes_kbpk.wrap(&d, &key).unwrap().len(), 112);
        }
        d.algorithm = Algorithm::Aes;
        for algorithm in [
            KeyAlgorithm::Aes128,
            KeyAlgorithm::Aes192,
            KeyAlgorithm::Aes256,
        ] {
            let key = SecretKey::generate(algorithm).unwrap();
            // 16 + 2 * 48 (2 + 32 padded to 48) + 2 * 16
            assert_eq!(aes_kbpk.wrap(&d, &key).unwrap().len(), 144);
        }
    }

    #[test]
    fn an_opener_reused_across_headers_opens_like_unwrap() {
        for (kbpk_algorithm, version) in [
            (KeyAlgorithm::Tdes3Key, Version::B),
            (KeyAlgorithm::Aes256, Version::D),
        ] {
            let protection = kbpk(kbpk_algorithm);
            let first = Header::new(
                version,
                KeyUsage::KeyEncryption,
                Algorithm::Tdes,
                ModeOfUse::EncryptDecrypt,
                Exportability::Exportable,
            );
            let mut second = first.clone();
            second.key_usage = KeyUsage::PinEncryption;
            let keys: Vec<SecretKey> = (0..6)
                .map(|_| SecretKey::generate(KeyAlgorithm::Tdes2Key).unwrap())
                .collect();
            // Headers in runs and alternating: the kept MAC state must follow the header.
            let headers = [&first, &first, &second, &first, &second, &second];
            let blocks: Vec<String> = headers
                .iter()
                .zip(&keys)
                .map(|(header, key)| protection.wrap(header, key).unwrap())
                .collect();
            let mut opener = protection.opener();
            for ((block, key), header) in blocks.iter().zip(&keys).zip(headers) {
                let opened = opener.unwrap(block).unwrap();
                assert!(opened.key.same_material_as(key));
                assert_eq!(opened.header.key_usage, header.key_usage);
                // An altered block with the same header is still refused.
                let mut altered = block.clone().into_bytes();
                let last = altered.len() - 1;
                altered[last] = if altered[last] == b'0' { b'1' } else { b'0' };
                let altered = String::from_utf8(altered).unwrap();
                assert_eq!(opener.unwrap(&altered).err(), Some(Tr31Error::MacMismatch));
                assert_eq!(
                    protection.unwrap(&altered).err(),
                    Some(Tr31Error::MacMismatch)
                );
            }
            // A block made under another KBPK fails with a kept header state too.
            let other = kbpk(kbpk_algorithm).wrap(&first, &keys[0]).unwrap();
            assert_eq!(opener.unwrap(&other).err(), Some(Tr31Error::MacMismatch));
        }
    }

    #[test]
    fn wrapping_adds_a_padding_block_and_counts_it() {
        let protection = kbpk(KeyAlgorithm::Aes128);
        let header: Header = "D0000P0TE00N0100KS1800604B120F9292800000".parse().unwrap();
        let key = SecretKey::generate(KeyAlgorithm::Tdes2Key).unwrap();
        let block = protection.wrap(&header, &key).unwrap();
        assert!(
            block.starts_with("D0144P0TE00N0200KS1800604B120F9292800000PB080000"),
            "{block}"
        );
        let unwrapped = protection.unwrap(&block).unwrap();
        assert!(unwrapped.key.same_material_as(&key));
        assert_eq!(unwrapped.header.optional_blocks.len(), 2);
        assert_eq!(
            unwrapped.header.optional_blocks[..1],
            header.optional_blocks[..]
        );
    }

    #[test]
    fn a_padding_block_in_the_template_is_replaced() {
        let protection = kbpk(KeyAlgorithm::Tdes2Key);
        // A PB that would misalign the TDES header: it is dropped and none is needed.
        let header: Header = "B0000P0TE00N0200KS1800604B120F9292800000PB05X"
            .parse()
            .unwrap();
        let key = SecretKey::generate(KeyAlgorithm::Tdes2Key).unwrap();
        let block = protection.wrap(&header, &key).unwrap();
        assert!(
            block.starts_with("B0120P0TE00N0100KS1800604B120F9292800000"),
            "{block}"
        );
    }

    #[test]
    fn clear_key_data_is_checked_after_authentication() {
        let mut clear = [0u8; 32];
        clear[..2].copy_from_slice(&128u16.to_be_bytes());
        assert!(key_from_clear_data(Algorithm::Tdes, &clear).is_ok());
        assert_eq!(
            key_from_clear_data(Algorithm::Des, &clear).err(),
            Some(Tr31Error::SingleDesNotSupported)
        );
        assert_eq!(
            key_from_clear_data(Algorithm::Hmac, &clear).err(),
            Some(Tr31Error::AlgorithmNotSupported {
                algorithm: Algorithm::Hmac
            })
        );
        for bits in [0u16, 3, 129, 8 * 31] {
            clear[..2].copy_from_slice(&bits.to_be_bytes());
            assert_eq!(
                key_from_clear_data(Algorithm::Aes, &clear).err(),
                Some(Tr31Error::ImpossibleKeyLength {
                    bits: usize::from(bits),
                    available: 30
                })
            );
        }
        clear[..2].copy_from_slice(&64u16.to_be_bytes());
        let error = key_from_clear_data(Algorithm::Tdes, &clear).err().unwrap();
        assert_eq!(
            error,
            Tr31Error::KeyLengthNotAllowed {
                algorithm: Algorithm::Tdes,
                bytes: 8
            }
        );
        assert!(
            error
                .to_string()
                .contains("single-length DES keys are refused"),
            "{error}"
        );
        clear[..2].copy_from_slice(&(8u16 * 24).to_be_bytes());
        assert!(key_from_clear_data(Algorithm::Aes, &clear).is_ok());
    }
}
