//! The `[pki]` section checked: absent, or the three CA certificates' paths and the optional CRLs', each remembering where it was written.

use std::path::PathBuf;

use super::Validator;
use crate::config::merged::{MergedPki, Sourced};
use crate::config::{ConfigError, PkiSettings, SourcedPath};

impl Validator<'_> {
    /// A path as a `SourcedPath`, which must be absolute (the daemon's working directory is
    /// nobody's business).
    fn sourced_path(&self, value: Sourced<PathBuf>, key: &str) -> Result<SourcedPath, ConfigError> {
        if !value.value.is_absolute() {
            return Err(self.error(
                &value,
                key,
                format!("{} is not an absolute path", value.value.display()),
            ));
        }
        let (file, line) = match self.sources.get(value.file) {
            Some(source) => (source.name.clone(), source.line_of(value.span.start)),
            None => ("(settings)".to_owned(), 0),
        };
        Ok(SourcedPath {
            path: value.value,
            file,
            line,
            key: key.to_owned(),
        })
    }

    /// `[pki]`: absent, or all three CAs (`TrustAnchors` takes one per role and refuses a CA
    /// shared between roles) with optional CRLs.
    pub(super) fn pki(&self, paths: MergedPki) -> Result<Option<PkiSettings>, ConfigError> {
        let MergedPki {
            device_ca,
            kdh_ca,
            operator_ca,
            device_crl,
            kdh_crl,
            operator_crl,
            operator_intermediates,
        } = paths;
        // The first value set in [pki], to point at when a CA is missing.
        let first = [
            &device_ca,
            &kdh_ca,
            &operator_ca,
            &device_crl,
            &kdh_crl,
            &operator_crl,
            &operator_intermediates,
        ]
        .into_iter()
        .flatten()
        .min_by_key(|value| (value.file, value.span.start))
        .map(|value| (value.file, value.span.start));
        let Some((first_file, first_offset)) = first else {
            return Ok(None);
        };
        let required = |value: Option<Sourced<PathBuf>>, key: &str| match value {
            Some(value) => self.sourced_path(value, key),
            None => Err(self.error_in(
                first_file,
                first_offset,
                key,
                "is required when [pki] is present: one CA certificate per role \
                 (device_ca, kdh_ca, operator_ca), each a different CA"
                    .to_owned(),
            )),
        };
        let optional = |value: Option<Sourced<PathBuf>>, key: &str| {
            value.map(|value| self.sourced_path(value, key)).transpose()
        };
        Ok(Some(PkiSettings {
            device_ca: required(device_ca, "pki.device_ca")?,
            kdh_ca: required(kdh_ca, "pki.kdh_ca")?,
            operator_ca: required(operator_ca, "pki.operator_ca")?,
            device_crl: optional(device_crl, "pki.device_crl")?,
            kdh_crl: optional(kdh_crl, "pki.kdh_crl")?,
            operator_crl: optional(operator_crl, "pki.operator_crl")?,
            operator_intermediates: optional(operator_intermediates, "pki.operator_intermediates")?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use crate::config::Settings;
    use crate::config::tests::with_pki;

    #[test]
    fn pki_paths_remember_where_they_were_set() {
        let settings = Settings::from_toml(&with_pki(), "keymotherd.toml").unwrap();
        assert!(settings.operator.require, "required by default");
        assert_eq!(settings.operator.login_window, Duration::from_secs(60));
        let pki = settings.pki.unwrap();
        assert_eq!(
            pki.operator_ca.path,
            Path::new("/etc/keymother/pki/operator-ca.pem")
        );
        assert_eq!(
            (
                pki.operator_ca.file.as_str(),
                pki.operator_ca.line,
                pki.operator_ca.key.as_str()
            ),
            ("keymotherd.toml", 20, "pki.operator_ca")
        );
        assert_eq!(pki.device_crl, None);
        let crl = pki.operator_crl.unwrap();
        assert_eq!(
            crl.error("cannot be read").to_string(),
            "keymotherd.toml:21: pki.operator_crl: /etc/keymother/pki/operator.crl: cannot be read"
        );
        // Where a path was written is not part of the settings.
        let elsewhere = Settings::from_toml(&with_pki(), "/etc/keymother/keymotherd.toml").unwrap();
        assert_eq!(
            elsewhere,
            Settings::from_toml(&with_pki(), "keymotherd.toml").unwrap()
        );
    }
}
