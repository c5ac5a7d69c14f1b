//! DER and PEM plumbing: PEM decoded to DER, the signed bytes of a DER SEQUENCE, parse errors, length-prefixed fields and serial numbers in hex.

use std::fmt;

use x509_cert::serial_number::SerialNumber;

use crate::PkiError;

/// Appends a 4-byte big-endian length and the bytes. Lengths above u32::MAX are written as
/// u32::MAX; callers never sign or accept such fields (a device id, a key block, a CRL of
/// 4 GiB), so the saturation cannot make two different contents equal in practice.
pub(crate) fn put_field(out: &mut Vec<u8>, field: &[u8]) {
    let length = u32::try_from(field.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(field);
}

/// A serial number as upper-case hex without separators.
pub(crate) fn serial_hex(serial: &SerialNumber) -> String {
    let mut text = String::with_capacity(serial.as_bytes().len() * 2);
    for byte in serial.as_bytes() {
        text.push_str(&format!("{byte:02X}"));
    }
    text
}

/// A [`PkiError::Parse`] for `what` with the decoder's message.
pub(crate) fn parse_error(what: &'static str, e: impl fmt::Display) -> PkiError {
    PkiError::Parse {
        what,
        detail: e.to_string(),
    }
}

/// DER as is; PEM with the expected label decoded.
pub(crate) fn to_der(
    bytes: &[u8],
    label: &'static str,
    what: &'static str,
) -> Result<Vec<u8>, PkiError> {
    let trimmed = bytes.trim_ascii_start();
    if trimmed.starts_with(b"-----BEGIN") {
        let (found, der) = pem_rfc7468_decode(trimmed).map_err(|e| parse_error(what, e))?;
        if found != label {
            return Err(parse_error(what, crate::bundle::not_labelled(label)));
        }
        Ok(der)
    } else {
        Ok(bytes.to_vec())
    }
}

fn pem_rfc7468_decode(pem: &[u8]) -> Result<(String, Vec<u8>), der::Error> {
    let (label, doc) = der::Document::from_pem(
        std::str::from_utf8(pem).map_err(|_| der::Error::from(der::ErrorKind::Failed))?,
    )?;
    Ok((label.to_string(), doc.as_bytes().to_vec()))
}

/// The exact bytes of the first element (the to-be-signed part) of a DER SEQUENCE, so the
/// signature is checked over what was signed, not over a re-encoding.
pub(crate) fn first_element(der: &[u8]) -> Option<&[u8]> {
    fn header(b: &[u8]) -> Option<(usize, usize)> {
        // (header length, content length) of a constructed SEQUENCE
        if *b.first()? != 0x30 {
            return None;
        }
        let first = *b.get(1)? as usize;
        if first < 0x80 {
            return Some((2, first));
        }
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *b.get(2 + i)? as usize;
        }
        Some((2 + n, len))
    }
    let (outer_h, _) = header(der)?;
    let inner = der.get(outer_h..)?;
    let (h, len) = header(inner)?;
    inner.get(..h.checked_add(len)?)
}
