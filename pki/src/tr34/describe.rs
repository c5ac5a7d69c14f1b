//! [`Token::describe`]: (label, value) lines explaining a token for `keymother tr34 inspect`, never any secret.

use std::time::SystemTime;

use der::Decode;
use x509_cert::Certificate;
use x509_cert::crl::CertificateList;

use super::asn1::{ID_CONTENT_TYPE, ID_DATA, ID_SIGNING_TIME, Reader, oid_name};
use super::envelope::{Envelope, Recipient, check_oaep_parameters};
use super::signed_data::{SignedData, Signer, Value, attribute_name};
use super::token::Token;

type Lines = Vec<(String, String)>;

impl Token {
    /// (label, value) lines explaining the token: which token and wire form; the signer
    /// (issuer DN and serial); the recipients; the certificates (subject, serial); the CRLs
    /// (issuer, this/next update, revoked serials); each signed attribute (nonce in hex,
    /// signing time, key block header, digest); the content- and key-encryption algorithms.
    pub fn describe(&self) -> Vec<(String, String)> {
        let mut lines: Lines = vec![
            ("token".into(), self.kind.to_string()),
            ("wire form".into(), self.form.to_string()),
        ];
        if let Some(signed) = &self.signed {
            describe_signed(&mut lines, signed, "");
        } else if let Some(nonce) = &self.nonce {
            lines.push(("random number".into(), hex::encode_upper(nonce)));
        }
        match &self.envelope {
            Some(Ok(envelope)) => describe_envelope(&mut lines, envelope),
            Some(Err(e)) => lines.push(("enveloped data".into(), format!("does not parse: {e}"))),
            None => {}
        }
        match &self.inner {
            Some(Ok(inner)) => describe_signed(&mut lines, inner, "inner "),
            Some(Err(e)) => lines.push(("inner SignedData".into(), format!("does not parse: {e}"))),
            None => {}
        }
        for identifier in &self.identifiers {
            lines.push(("identifies".into(), identifier.describe()));
        }
        lines
    }
}

fn describe_signed(lines: &mut Lines, signed: &SignedData, prefix: &str) {
    let label = |text: &str| format!("{prefix}{text}");
    lines.push((label("content type"), oid_name(&signed.content_type)));
    if let Some(content) = &signed.content {
        lines.push((label("content"), format!("{} bytes", content.bytes.len())));
    }
    for certificate in &signed.certificates {
        lines.push((label("certificate"), describe_certificate(certificate)));
    }
    if signed.other_certificates > 0 {
        let count = signed.other_certificates;
        lines.push((
            label("certificate"),
            format!("{count} in a format other than X.509"),
        ));
    }
    for crl in &signed.crls {
        lines.push((label("CRL"), describe_crl(crl)));
    }
    if signed.signers.is_empty() {
        lines.push((label("signer"), "none (not signed)".into()));
    }
    for signer in &signed.signers {
        describe_signer(lines, signer, prefix);
    }
}

fn describe_signer(lines: &mut Lines, signer: &Signer, prefix: &str) {
    let label = |text: &str| format!("{prefix}{text}");
    lines.push((label("signer"), signer.sid.describe()));
    lines.push((
        label("digest algorithm"),
        oid_name(&signer.digest_algorithm.oid),
    ));
    lines.push((
        label("signature algorithm"),
        oid_name(&signer.signature_algorithm.oid),
    ));
    let Some(attributes) = &signer.signed_attributes else {
        lines.push((label("signed attributes"), "none".into()));
        return;
    };
    for attribute in &attributes.attributes {
        let name = match attribute_name(&attribute.oid) {
            Some(name) => name.to_string(),
            None => attribute.oid.to_string(),
        };
        let values: Vec<String> = attribute
            .values
            .iter()
            .map(|value| describe_value(&attribute.oid, value))
            .collect();
        lines.push((
            label(&format!("signed attribute {name}")),
            values.join("; "),
        ));
    }
}

fn describe_value(oid: &const_oid::ObjectIdentifier, value: &Value) -> String {
    match *oid {
        ID_CONTENT_TYPE => Reader::new(&value.raw, value.offset)
            .read_any("contentType")
            .and_then(|t| t.oid("contentType"))
            .map_or_else(|e| e.to_string(), |oid| oid_name(&oid)),
        ID_SIGNING_TIME => x509_cert::time::Time::from_der(&value.raw).map_or_else(
            |e| format!("unreadable time: {e}"),
            |t| time_text(t.to_system_time()),
        ),
        ID_DATA => String::from_utf8_lossy(&value.contents).into_owned(),
        _ => hex::encode_upper(&value.contents),
    }
}

fn describe_envelope(lines: &mut Lines, envelope: &Envelope) {
    for recipient in &envelope.recipients {
        match recipient {
            Recipient::KeyTransport {
                rid,
                algorithm,
                encrypted_key,
            } => {
                lines.push(("recipient".into(), rid.describe()));
                let parameters = match check_oaep_parameters(algorithm) {
                    Ok(()) => "SHA-256, MGF1-SHA-256, empty label".to_string(),
                    Err(e) => e.to_string(),
                };
                lines.push((
                    "key encryption algorithm".into(),
                    format!("{} ({parameters})", oid_name(&algorithm.oid)),
                ));
                lines.push((
                    "encrypted key".into(),
                    format!("{} bytes", encrypted_key.len()),
                ));
            }
            Recipient::Other { description } => {
                lines.push(("recipient".into(), format!("{description} (not supported)")));
            }
        }
    }
    lines.push((
        "encrypted content type".into(),
        oid_name(&envelope.content_type),
    ));
    lines.push((
        "content encryption algorithm".into(),
        format!(
            "{}, IV {}",
            oid_name(&envelope.content_algorithm.oid),
            hex::encode_upper(&envelope.iv)
        ),
    ));
    lines.push((
        "encrypted content".into(),
        format!("{} bytes", envelope.encrypted_content.len()),
    ));
}

fn describe_certificate(der: &[u8]) -> String {
    match Certificate::from_der(der) {
        Ok(certificate) => {
            let tbs = certificate.tbs_certificate();
            format!(
                "subject {}, serial {}, issuer {}, valid {} to {}",
                tbs.subject(),
                hex::encode_upper(tbs.serial_number().as_bytes()),
                tbs.issuer(),
                tbs.validity().not_before,
                tbs.validity().not_after
            )
        }
        Err(e) => format!("does not parse ({e})"),
    }
}

fn describe_crl(der: &[u8]) -> String {
    match <CertificateList>::from_der(der) {
        Ok(crl) => {
            let tbs = &crl.tbs_cert_list;
            let revoked: Vec<String> = tbs
                .revoked_certificates
                .iter()
                .flatten()
                .map(|entry| hex::encode_upper(entry.serial_number.as_bytes()))
                .collect();
            format!(
                "issuer {}, thisUpdate {}, nextUpdate {}, revoked serials: {}",
                tbs.issuer,
                tbs.this_update,
                tbs.next_update
                    .map_or_else(|| "none".to_string(), |t| t.to_string()),
                if revoked.is_empty() {
                    "none".to_string()
                } else {
                    revoked.join(", ")
                }
            )
        }
        Err(e) => format!("does not parse ({e})"),
    }
}

fn time_text(time: SystemTime) -> String {
    der::DateTime::from_system_time(time)
        .map_or_else(|_| "(out of range)".into(), |t| t.to_string())
}
