//! Time checks: the instant checked against as an X.509 date, and a certificate's validity period at that instant.

use std::time::SystemTime;

use x509_cert::Certificate;

use crate::{PkiError, Subject};

/// `now` as an X.509 date (for messages); [`PkiError::BadNow`] when X.509 cannot express it.
pub(crate) fn x509_now(now: SystemTime) -> Result<der::DateTime, PkiError> {
    der::DateTime::from_system_time(now).map_err(|_| PkiError::BadNow)
}

/// Refuses `certificate` (the leaf or the CA, as `subject` says) outside its validity period.
pub(crate) fn check_validity(
    subject: Subject,
    certificate: &Certificate,
    now: SystemTime,
    now_dt: &der::DateTime,
) -> Result<(), PkiError> {
    let v = certificate.tbs_certificate().validity();
    if v.not_before.to_system_time() > now {
        return Err(PkiError::NotYetValid {
            subject,
            not_before: v.not_before.to_string(),
            now: now_dt.to_string(),
        });
    }
    if v.not_after.to_system_time() < now {
        return Err(PkiError::Expired {
            subject,
            not_after: v.not_after.to_string(),
            now: now_dt.to_string(),
        });
    }
    Ok(())
}
