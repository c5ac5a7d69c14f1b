//! PEM bundles: several PEM blocks in one file (a leaf and its intermediate CAs, or several CRLs), each decoded on its own so that a bad block is named by its number.
//!
//! A file holding a `-----BEGIN ` line anywhere is PEM: text before, between and after its
//! blocks (the `subject=`/`issuer=` and `Bag Attributes` lines `openssl` writes) is ignored,
//! as RFC 7468 section 5.2 allows; a file without one is a single DER object. A bundle holds at most [`MAX_BUNDLE_BLOCKS`] blocks. Errors name the
//! block by number (1 for the first) and never quote the file's content.

use der::Decode;
use x509_cert::Certificate;

use crate::PkiError;

/// The most blocks a bundle may hold: far more than any certificate path keymother accepts
/// (see [`MAX_INTERMEDIATES`](crate::MAX_INTERMEDIATES)), few enough to bound the work a
/// hostile file can cause.
pub const MAX_BUNDLE_BLOCKS: usize = 16;

const BEGIN: &[u8] = b"-----BEGIN ";
const END: &[u8] = b"-----END ";

/// The DER of every block labelled `label` in `bytes`, in order, text outside the blocks
/// ignored. `bytes` without any `-----BEGIN ` line is one DER object (returned alone). `what` names the bundle in errors ("certificate bundle", ...).
///
/// Refused ([`PkiError::BadBundleBlock`]): a block with another label, a block whose
/// Base64 or armour is broken, a block that is not a parseable object of `label` (checked
/// for `CERTIFICATE`), a `BEGIN` line without its `END` line, more than
/// [`MAX_BUNDLE_BLOCKS`] blocks, or no block at all.
pub fn pem_bundle(bytes: &[u8], label: &str, what: &str) -> Result<Vec<Vec<u8>>, PkiError> {
    let bad = |block: usize, detail: String| PkiError::BadBundleBlock {
        what: what.to_string(),
        block,
        detail,
    };
    if find(bytes, BEGIN).is_none() {
        // No PEM block anywhere: one DER object.
        if bytes.trim_ascii_start().is_empty() {
            return Err(PkiError::EmptyBundle {
                what: what.to_string(),
            });
        }
        check_object(bytes, label).map_err(|detail| bad(1, detail))?;
        return Ok(vec![bytes.to_vec()]);
    }
    let mut blocks = Vec::new();
    let mut rest = bytes;
    while let Some(start) = find(rest, BEGIN) {
        let number = blocks.len() + 1;
        if number > MAX_BUNDLE_BLOCKS {
            return Err(bad(
                number,
                format!("a bundle may hold at most {MAX_BUNDLE_BLOCKS} PEM blocks"),
            ));
        }
        let from_begin = &rest[start..];
        let end = find(from_begin, END)
            .ok_or_else(|| bad(number, "its -----END line is missing".into()))?;
        // The END line runs to the next line break (or the end of the file).
        let after_end = &from_begin[end..];
        let line_end = after_end
            .iter()
            .position(|&b| b == b'\n')
            .map_or(after_end.len(), |p| p + 1);
        let block = &from_begin[..end + line_end];
        let (found, der) =
            der::pem::decode_vec(block).map_err(|e| bad(number, format!("malformed PEM ({e})")))?;
        if found != label {
            return Err(bad(number, not_labelled(label)));
        }
        check_object(&der, label).map_err(|detail| bad(number, detail))?;
        blocks.push(der);
        rest = &from_begin[end + line_end..];
    }
    if blocks.is_empty() {
        return Err(PkiError::EmptyBundle {
            what: what.to_string(),
        });
    }
    Ok(blocks)
}

/// Why a PEM block of another label is refused: the label expected, never the one found (it
/// is the file's text).
pub(crate) fn not_labelled(label: &str) -> String {
    format!("it is not labelled {label} (-----BEGIN {label}-----)")
}

/// Whether `der` parses as what `label` says (certificates and CRLs are checked).
fn check_object(der: &[u8], label: &str) -> Result<(), String> {
    match label {
        "CERTIFICATE" => <Certificate as Decode<'_>>::from_der(der)
            .map(drop)
            .map_err(|e| format!("not a certificate ({e})")),
        "X509 CRL" => crate::crl::decode_crl(der)
            .map(drop)
            .map_err(|e| format!("not a CRL ({e})")),
        _ => Ok(()),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_unterminated_bundles_are_refused() {
        assert!(matches!(
            pem_bundle(b"  \n", "CERTIFICATE", "bundle"),
            Err(PkiError::EmptyBundle { .. })
        ));
        let err = pem_bundle(
            b"-----BEGIN CERTIFICATE-----\nMAA=\n",
            "CERTIFICATE",
            "bundle",
        )
        .unwrap_err();
        assert!(
            matches!(&err, PkiError::BadBundleBlock { block: 1, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("END line is missing"), "{err}");
    }
}
