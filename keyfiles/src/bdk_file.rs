//! The BDK file (FORMAT.md, "BDK files"): one DUKPT base derivation key from the front end, a TR-31 block (usage B0) under the KEK with the BDK's name, identifier and this appliance's device range, sealed like a key file.

use keymother_crypto::tr31::{
    Algorithm, Exportability, Header, KeyBlockProtectionKey, KeyUsage, ModeOfUse, Version,
};
use keymother_crypto::{Kcv, KeyAlgorithm, KeyFamily, SecretKey};
use keymother_domain::{BdkId, BdkName, DeviceId, DeviceRange};

use crate::MAX_LINE_LENGTH;
use crate::header::CreatedAt;
use crate::seal::SealKey;

/// First line of a BDK file, format version 1.
pub const BDK_MAGIC: &str = "KEYMOTHER-BDKFILE/1";
/// SP 800-108 label of the BDK file's seal key: another key than the key file's.
pub(crate) const BDK_SEAL_LABEL: &[u8] = b"KEYMOTHER-BDKFILE-SEAL/1";
/// The header and block lines after the magic, in order.
const FIELDS: [&str; 9] = [
    "name",
    "algorithm",
    "bdk-id",
    "devices",
    "device-id",
    "kek-kcv",
    "created",
    "block",
    "kcv",
];
/// Lines in a BDK file: the magic, the fields, the seal.
const LINES: usize = 1 + FIELDS.len() + 1;

/// What a BDK file says about its BDK (never the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BdkFileHeader {
    pub name: BdkName,
    /// TDES-2KEY (ANSI X9.24-1 DUKPT) or an AES algorithm (X9.24-3).
    pub algorithm: KeyAlgorithm,
    pub bdk_id: BdkId,
    /// The device IDs the appliance may give out under this BDK.
    pub devices: DeviceRange,
    /// The appliance the file is for.
    pub device_id: DeviceId,
    pub created: CreatedAt,
}

/// A BDK file that passed every check: its header and the BDK. No Debug.
pub struct OpenedBdk {
    pub header: BdkFileHeader,
    pub key: SecretKey,
}

/// Why a BDK file was refused. Names the file and the line; never quotes the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {}{problem}", if *line == 0 { String::new() } else { format!("line {line}: ") })]
pub struct BdkFileError {
    pub file: String,
    /// 1-based; 0 for the file as a whole.
    pub line: usize,
    pub problem: String,
}

/// Makes a BDK file: `bdk` wrapped under `kek` (TR-31 usage B0, mode of use X, exportable
/// under a trusted key, version B under a TDES KEK and D under an AES KEK), sealed.
pub fn write_bdk_file(
    kek: &SecretKey,
    header: &BdkFileHeader,
    bdk: &SecretKey,
) -> Result<String, String> {
    if bdk.algorithm() != header.algorithm {
        return Err(format!(
            "the BDK is {}, the header says {}",
            bdk.algorithm(),
            header.algorithm
        ));
    }
    bdk.check_strength()
        .map_err(|weak| format!("the BDK: {weak}"))?;
    let version = Version::for_protection_key(kek.algorithm().family());
    let block = KeyBlockProtectionKey::new(kek)
        .wrap(&block_header(version, header.algorithm), bdk)
        .map_err(|error| error.to_string())?;
    let mut text = format!(
        "{BDK_MAGIC}\nname: {}\nalgorithm: {}\nbdk-id: {}\ndevices: {}\ndevice-id: {}\nkek-kcv: {}\ncreated: {}\nblock: {block}\nkcv: {}\n",
        header.name,
        header.algorithm,
        header.bdk_id,
        header.devices,
        header.device_id,
        kek.kcv(),
        header.created,
        bdk.kcv()
    );
    let mut seal = SealKey::derive_labelled(kek, BDK_SEAL_LABEL).start();
    seal.update(text.as_bytes());
    text.push_str(&format!("seal: {}\n", seal.finish_hex()));
    Ok(text)
}

/// The header a BDK travels under from the front end.
fn block_header(version: Version, algorithm: KeyAlgorithm) -> Header {
    let algorithm = match algorithm.family() {
        KeyFamily::Tdes => Algorithm::Tdes,
        KeyFamily::Aes => Algorithm::Aes,
    };
    Header::new(
        version,
        KeyUsage::BaseDerivationKey,
        algorithm,
        ModeOfUse::KeyDerivation,
        Exportability::Exportable,
    )
}

/// Reads and checks a BDK file for the appliance `device_id` holding `kek`, in the order of
/// FORMAT.md: the lines, the header, the device, the KEK, the seal, the block, the KCV.
pub fn open_bdk_file(
    bytes: &[u8],
    file: &str,
    kek: &SecretKey,
    device_id: &DeviceId,
) -> Result<OpenedBdk, BdkFileError> {
    let refuse = |line: usize, problem: String| BdkFileError {
        file: file.to_owned(),
        line,
        problem,
    };
    let lines = split_lines(bytes).map_err(|(line, problem)| refuse(line, problem))?;
    let values = header_values(&lines).map_err(|(line, problem)| refuse(line, problem))?;
    let (header, kek_kcv, block, kcv) =
        parse_header(&values).map_err(|(line, problem)| refuse(line, problem))?;
    if header.device_id != *device_id {
        return Err(refuse(
            6,
            format!(
                "the file is for device {}, but this appliance is {device_id}",
                header.device_id
            ),
        ));
    }
    if kek_kcv != kek.kcv() {
        return Err(refuse(
            7,
            format!(
                "the file was made under the KEK with check value {kek_kcv}, not under this appliance's KEK"
            ),
        ));
    }
    check_seal(bytes, &lines, kek).map_err(|(line, problem)| refuse(line, problem))?;
    let key = open_block(kek, &header, block).map_err(|problem| refuse(9, problem))?;
    if key.kcv() != kcv {
        return Err(refuse(
            10,
            format!("the BDK's check value is {}, not {kcv}", key.kcv()),
        ));
    }
    Ok(OpenedBdk { header, key })
}

type LineProblem = (usize, String);

/// The file's lines, each checked: printable ASCII, a line feed at the end, not too long.
fn split_lines(bytes: &[u8]) -> Result<Vec<&str>, LineProblem> {
    if !bytes.ends_with(b"\n") {
        return Err((
            0,
            "the last line has no line feed; the file may be truncated".to_owned(),
        ));
    }
    let mut lines = Vec::new();
    for (number, line) in bytes[..bytes.len() - 1]
        .split(|byte| *byte == b'\n')
        .enumerate()
    {
        let number = number + 1;
        if line.len() + 1 > MAX_LINE_LENGTH {
            return Err((
                number,
                format!("line is longer than {MAX_LINE_LENGTH} bytes"),
            ));
        }
        if let Some(column) = line.iter().position(|byte| !(b' '..=b'~').contains(byte)) {
            return Err((
                number,
                format!("byte {} is not printable ASCII", column + 1),
            ));
        }
        // Printable ASCII is UTF-8.
        lines.push(std::str::from_utf8(line).map_err(|_| (number, "not ASCII".to_owned()))?);
    }
    if lines.len() != LINES {
        return Err((
            0,
            format!("a BDK file has {LINES} lines, this one {}", lines.len()),
        ));
    }
    Ok(lines)
}

/// Each field's value, by position, after the magic line has been checked.
fn header_values<'a>(lines: &[&'a str]) -> Result<Vec<&'a str>, LineProblem> {
    if lines[0] != BDK_MAGIC {
        return Err((
            1,
            format!("this is not a keymother BDK file (expected the line \"{BDK_MAGIC}\")"),
        ));
    }
    let mut values = Vec::with_capacity(FIELDS.len());
    for (offset, field) in FIELDS.iter().enumerate() {
        let number = offset + 2;
        let value = lines[offset + 1]
            .strip_prefix(field)
            .and_then(|rest| rest.strip_prefix(": "))
            .ok_or((number, format!("expected the \"{field}\" line")))?;
        values.push(value);
    }
    Ok(values)
}

/// The typed header, the KEK's check value, the block and the BDK's check value.
fn parse_header<'a>(values: &[&'a str]) -> Result<(BdkFileHeader, Kcv, &'a str, Kcv), LineProblem> {
    let at = |index: usize, problem: String| (index + 2, format!("{}: {problem}", FIELDS[index]));
    let name: BdkName = values[0]
        .parse()
        .map_err(|error| at(0, format!("{error}")))?;
    let algorithm: KeyAlgorithm = values[1]
        .parse()
        .ok()
        .filter(|algorithm| *algorithm != KeyAlgorithm::Tdes3Key)
        .ok_or_else(|| {
            at(
                1,
                "not a BDK algorithm; expected TDES-2KEY, AES-128, AES-192 or AES-256".to_owned(),
            )
        })?;
    let family = algorithm.family();
    let bdk_id = BdkId::from_hex(family, values[2]).map_err(|error| at(2, format!("{error}")))?;
    let devices: DeviceRange = values[3]
        .parse()
        .map_err(|error| at(3, format!("{error}")))?;
    if devices.family() != family {
        return Err(at(
            3,
            format!(
                "device IDs of {} DUKPT, but the BDK is {family}",
                devices.family()
            ),
        ));
    }
    let device_id: DeviceId = values[4]
        .parse()
        .map_err(|error| at(4, format!("{error}")))?;
    let kek_kcv = upper_kcv(values[5])
        .ok_or_else(|| at(5, "not 6 or 10 upper-case hex digits".to_owned()))?;
    let created: CreatedAt = values[6].parse().map_err(|error| at(6, error))?;
    let kcv = upper_kcv(values[8])
        .filter(|kcv| kcv.family() == family)
        .ok_or_else(|| {
            at(
                8,
                format!("not the check value of a {family} key in upper-case hex"),
            )
        })?;
    let header = BdkFileHeader {
        name,
        algorithm,
        bdk_id,
        devices,
        device_id,
        created,
    };
    Ok((header, kek_kcv, values[7], kcv))
}

fn upper_kcv(text: &str) -> Option<Kcv> {
    (!text.bytes().any(|byte| byte.is_ascii_lowercase()))
        .then(|| Kcv::from_hex_any(text).ok())
        .flatten()
}

/// The seal line verifies over every byte before it.
fn check_seal(bytes: &[u8], lines: &[&str], kek: &SecretKey) -> Result<(), LineProblem> {
    let seal_line = lines[LINES - 1];
    let seal = seal_line
        .strip_prefix("seal: ")
        .and_then(|hex| {
            hex::decode(hex)
                .ok()
                .filter(|_| hex.len() == 64 && !hex.bytes().any(|b| b.is_ascii_lowercase()))
        })
        .ok_or((
            LINES,
            "expected the \"seal\" line: 64 upper-case hex digits".to_owned(),
        ))?;
    let sealed = bytes.len() - seal_line.len() - 1;
    let mut check = SealKey::derive_labelled(kek, BDK_SEAL_LABEL).start();
    check.update(&bytes[..sealed]);
    if !check.verify(&seal) {
        return Err((
            LINES,
            "the seal does not verify: the file was altered, or sealed under another KEK"
                .to_owned(),
        ));
    }
    Ok(())
}

/// The BDK from its block: it verifies under the KEK, is usage B0, mode of use X, of the
/// header's algorithm, and no stronger than the KEK.
fn open_block(kek: &SecretKey, header: &BdkFileHeader, block: &str) -> Result<SecretKey, String> {
    if header.algorithm.strength_bits() > kek.algorithm().strength_bits() {
        return Err(format!(
            "a {} BDK cannot travel under a {} KEK: the KEK must be at least as strong",
            header.algorithm,
            kek.algorithm()
        ));
    }
    let opened = KeyBlockProtectionKey::new(kek)
        .unwrap(block)
        .map_err(|error| format!("block: {error}"))?;
    if opened.header.key_usage != KeyUsage::BaseDerivationKey
        || opened.header.mode_of_use != ModeOfUse::KeyDerivation
    {
        return Err(format!(
            "block: key usage {} with mode of use {}, not a BDK (B0, mode of use X)",
            opened.header.key_usage, opened.header.mode_of_use
        ));
    }
    if opened.key.algorithm() != header.algorithm {
        return Err(format!(
            "block: the key is {}, the header says {}",
            opened.key.algorithm(),
            header.algorithm
        ));
    }
    opened
        .key
        .check_strength()
        .map_err(|weak| format!("block: {weak}"))?;
    Ok(opened.key)
}
