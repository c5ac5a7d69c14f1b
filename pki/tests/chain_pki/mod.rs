//! A site PKI made by the `openssl` command at run time: a self-signed root, intermediate CAs and operator certificates, with RSA, P-256 and P-384 keys, extensions as a site sets them, and CRLs (shared by pki/tests/chain.rs and daemon/tests/operator_chain.rs).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// keyUsage and basicConstraints of a root CA.
pub const ROOT_EXT: &str = "basicConstraints=critical,CA:true\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n";
/// Of an intermediate CA without constraints.
pub const CA_EXT: &str = "basicConstraints=critical,CA:true\nkeyUsage=critical,keyCertSign,cRLSign\n\
     subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n";
/// Of an operator certificate.
pub const OPERATOR_EXT: &str = "basicConstraints=critical,CA:false\n\
     keyUsage=critical,digitalSignature\nauthorityKeyIdentifier=keyid\n";

/// The key algorithms the tests use.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Rsa,
    P256,
    P384,
}

/// A directory of openssl-made keys (`NAME.key`, PKCS#8 PEM), certificates (`NAME.pem`) and
/// CRLs (`NAME.crl`).
pub struct Pki {
    dir: tempfile::TempDir,
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}

impl Pki {
    pub fn new() -> Pki {
        Pki {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs openssl in the directory; panics with its output when it fails (openssl is one
    /// of the image's packages: nothing is skipped without it).
    pub fn openssl(&self, args: &[&str]) -> Vec<u8> {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(self.dir())
            .output()
            .expect("the openssl command (Debian package openssl) must be installed");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// A new key `NAME.key`.
    pub fn key(&self, name: &str, kind: Kind) {
        let out = format!("{name}.key");
        match kind {
            Kind::Rsa => self.openssl(&[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                &out,
            ]),
            Kind::P256 => self.openssl(&[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                &out,
            ]),
            Kind::P384 => self.openssl(&[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-384",
                "-out",
                &out,
            ]),
        };
    }

    /// A self-signed root `NAME.pem` with a new key.
    pub fn root(&self, name: &str, kind: Kind, subject: &str) {
        self.root_with(name, kind, subject, ROOT_EXT);
    }

    /// A self-signed root as [`Pki::root`], with the extensions `ext` (openssl
    /// extension-file lines) instead of [`ROOT_EXT`].
    pub fn root_with(&self, name: &str, kind: Kind, subject: &str, ext: &str) {
        self.key(name, kind);
        std::fs::write(self.path(&format!("{name}.ext")), ext).unwrap();
        self.request(name, subject);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-signkey",
            &format!("{name}.key"),
            "-extfile",
            &format!("{name}.ext"),
            "-days",
            "3650",
            "-set_serial",
            "1",
            "-sha256",
            "-out",
            &format!("{name}.pem"),
        ]);
    }

    /// `NAME.pem`, with a new key of `kind`, issued by `issuer` with the extensions `ext`
    /// (openssl extension-file lines), valid for `days`, serial `serial`, signed with `digest`
    /// ("sha256", "sha384").
    #[allow(clippy::too_many_arguments)]
    pub fn issue(
        &self,
        name: &str,
        kind: Kind,
        issuer: &str,
        subject: &str,
        ext: &str,
        days: u32,
        serial: u32,
        digest: &str,
    ) {
        self.key(name, kind);
        std::fs::write(self.path(&format!("{name}.ext")), ext).unwrap();
        self.request(name, subject);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{issuer}.pem"),
            "-CAkey",
            &format!("{issuer}.key"),
            "-extfile",
            &format!("{name}.ext"),
            "-days",
            &days.to_string(),
            "-set_serial",
            &serial.to_string(),
            &format!("-{digest}"),
            "-out",
            &format!("{name}.pem"),
        ]);
    }

    fn request(&self, name: &str, subject: &str) {
        self.openssl(&[
            "req",
            "-new",
            "-key",
            &format!("{name}.key"),
            "-subj",
            subject,
            "-out",
            &format!("{name}.csr"),
        ]);
    }

    /// `ISSUER.crl` (DER), a v2 CRL issued by `issuer`, listing `revoked` (certificate names).
    pub fn crl(&self, issuer: &str, revoked: &[&str]) -> Vec<u8> {
        self.crl_of_version(issuer, revoked, 2)
    }

    /// `ISSUER.crl` (DER) as [`Pki::crl`], of `version` 1 (no version field, no extensions:
    /// `openssl ca -gencrl` without a CRL number) or 2 (a cRLNumber extension).
    pub fn crl_of_version(&self, issuer: &str, revoked: &[&str], version: u8) -> Vec<u8> {
        let db = format!("{issuer}.index");
        std::fs::write(self.path(&db), "").unwrap();
        let number = if version == 2 {
            std::fs::write(self.path(&format!("{issuer}.crlnumber")), "01\n").unwrap();
            format!("crlnumber={issuer}.crlnumber\n")
        } else {
            String::new()
        };
        std::fs::write(
            self.path(&format!("{issuer}.cnf")),
            format!(
                "[ca]\ndefault_ca=d\n[d]\ndatabase={db}\n{number}\
                 default_md=sha256\ndefault_crl_days=30\n"
            ),
        )
        .unwrap();
        let cnf = format!("{issuer}.cnf");
        let (key, cert) = (format!("{issuer}.key"), format!("{issuer}.pem"));
        for name in revoked {
            self.openssl(&[
                "ca",
                "-config",
                &cnf,
                "-keyfile",
                &key,
                "-cert",
                &cert,
                "-revoke",
                &format!("{name}.pem"),
            ]);
        }
        self.openssl(&[
            "ca",
            "-config",
            &cnf,
            "-keyfile",
            &key,
            "-cert",
            &cert,
            "-gencrl",
            "-out",
            &format!("{issuer}.crl.pem"),
        ]);
        self.openssl(&[
            "crl",
            "-in",
            &format!("{issuer}.crl.pem"),
            "-outform",
            "DER",
            "-out",
            &format!("{issuer}.crl"),
        ]);
        self.read(&format!("{issuer}.crl"))
    }

    /// An instant just after everything made so far (openssl dates certificates from the
    /// second it makes them), for verifying.
    pub fn now() -> std::time::SystemTime {
        std::time::SystemTime::now() + std::time::Duration::from_secs(60)
    }

    pub fn read(&self, file: &str) -> Vec<u8> {
        std::fs::read(self.path(file)).unwrap()
    }

    /// `NAME.pem` as read.
    pub fn pem(&self, name: &str) -> Vec<u8> {
        self.read(&format!("{name}.pem"))
    }

    /// `NAME.pem` as DER.
    pub fn der(&self, name: &str) -> Vec<u8> {
        self.openssl(&["x509", "-in", &format!("{name}.pem"), "-outform", "DER"])
    }

    /// The PEM files of `names`, one after the other (a bundle).
    pub fn bundle(&self, names: &[&str]) -> Vec<u8> {
        names.iter().flat_map(|name| self.pem(name)).collect()
    }

    /// The standard three levels: `root` (RSA) → `ops-ca` (intermediate, key `ca_kind`) →
    /// `ann` (operator, key `leaf_kind`), each signed with SHA-256.
    pub fn three_levels(ca_kind: Kind, leaf_kind: Kind) -> Pki {
        let pki = Pki::new();
        pki.root("root", Kind::Rsa, "/O=Site/CN=Site Root CA");
        pki.issue(
            "ops-ca",
            ca_kind,
            "root",
            "/O=Site/CN=Ops Issuing CA",
            CA_EXT,
            1825,
            2,
            "sha256",
        );
        pki.issue(
            "ann",
            leaf_kind,
            "ops-ca",
            "/O=Site/CN=Ann Operator",
            OPERATOR_EXT,
            365,
            3,
            "sha256",
        );
        pki
    }
}
