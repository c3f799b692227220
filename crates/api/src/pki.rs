//! The consortium's certificates (DESIGN.md §5): a certificate authority issues node,
//! coordinator and researcher certificates; a party's **role** and **name** are read from its
//! certificate (subject organisational unit `concord-<role>` and common name), never from a
//! request field.
//!
//! [`DevCa`] is the development CA behind `concord ca init` / `concord ca issue`: ECDSA P-256
//! keys, written with owner-only permissions. A production consortium uses its own CA; only
//! the subject conventions matter.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::path::Path;
use zeroize::Zeroizing;

/// What a certificate allows its holder to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Node,
    Coordinator,
    Researcher,
}

impl Role {
    /// The subject organisational unit that carries the role.
    pub fn unit(&self) -> &'static str {
        match self {
            Role::Node => "concord-node",
            Role::Coordinator => "concord-coordinator",
            Role::Researcher => "concord-researcher",
        }
    }

    pub fn from_unit(unit: &str) -> Option<Self> {
        [Role::Node, Role::Coordinator, Role::Researcher]
            .into_iter()
            .find(|r| r.unit() == unit)
    }
}

impl std::str::FromStr for Role {
    type Err = PkiError;
    fn from_str(s: &str) -> Result<Self, PkiError> {
        match s {
            "node" => Ok(Role::Node),
            "coordinator" => Ok(Role::Coordinator),
            "researcher" => Ok(Role::Researcher),
            other => Err(PkiError::UnknownRole(other.to_owned())),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.unit()["concord-".len()..])
    }
}

/// Who a certificate says its holder is.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Identity {
    pub role: Role,
    pub name: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("unknown role {0:?} (node, coordinator or researcher)")]
    UnknownRole(String),
    #[error("certificate: {0}")]
    Certificate(String),
    #[error("certificate has no Concord role (subject OU concord-node, concord-coordinator or concord-researcher)")]
    NoRole,
    #[error("certificate has no common name")]
    NoName,
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is readable by others (mode {mode:o}): a secret must be owner-only (chmod 600 {path})")]
    Readable { path: String, mode: u32 },
}

impl From<rcgen::Error> for PkiError {
    fn from(e: rcgen::Error) -> Self {
        PkiError::Certificate(e.to_string())
    }
}

/// A certificate and its private key, PEM-encoded (the key zeroized on drop).
pub struct IssuedCertificate {
    pub certificate_pem: String,
    pub key_pem: Zeroizing<String>,
}

/// A development certificate authority.
pub struct DevCa {
    certificate_pem: String,
    key_pem: Zeroizing<String>,
}

impl DevCa {
    /// A fresh CA named `name`.
    pub fn generate(name: &str) -> Result<Self, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.distinguished_name.push(
            DnType::OrganizationName,
            "Concord consortium (development CA)",
        );
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key)?;
        Ok(Self {
            certificate_pem: cert.pem(),
            key_pem: Zeroizing::new(key.serialize_pem()),
        })
    }

    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    /// A certificate for `name` in `role`, valid for TLS as client and server on `hosts`
    /// (DNS names or IP addresses).
    pub fn issue(
        &self,
        role: Role,
        name: &str,
        hosts: &[&str],
    ) -> Result<IssuedCertificate, PkiError> {
        let ca_key = KeyPair::from_pem(&self.key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(&self.certificate_pem, ca_key)?;
        let key = KeyPair::generate()?;
        let mut params =
            CertificateParams::new(hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, role.unit());
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &issuer)?;
        Ok(IssuedCertificate {
            certificate_pem: cert.pem(),
            key_pem: Zeroizing::new(key.serialize_pem()),
        })
    }

    /// Writes `ca.pem` and `ca.key` (owner-only) into `dir`.
    pub fn write(&self, dir: &Path) -> Result<(), PkiError> {
        write_file(&dir.join("ca.pem"), self.certificate_pem.as_bytes(), false)?;
        write_file(&dir.join("ca.key"), self.key_pem.as_bytes(), true)
    }

    /// Reads a CA written by [`DevCa::write`].
    pub fn load(dir: &Path) -> Result<Self, PkiError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|source| PkiError::Io {
                path: path.display().to_string(),
                source,
            })
        };
        Ok(Self {
            certificate_pem: read("ca.pem")?,
            key_pem: Zeroizing::new(read("ca.key")?),
        })
    }
}

impl IssuedCertificate {
    /// Writes `<stem>.pem` and `<stem>.key` (owner-only) into `dir`.
    pub fn write(&self, dir: &Path, stem: &str) -> Result<(), PkiError> {
        write_file(
            &dir.join(format!("{stem}.pem")),
            self.certificate_pem.as_bytes(),
            false,
        )?;
        write_file(
            &dir.join(format!("{stem}.key")),
            self.key_pem.as_bytes(),
            true,
        )
    }
}

/// Writes a file: a secret owner-only (0600), anything else 0644 — whatever the umask, and over
/// an existing file too (its mode is set before the new contents are written).
pub fn write_file(path: &Path, contents: &[u8], secret: bool) -> Result<(), PkiError> {
    let io = |source| PkiError::Io {
        path: path.display().to_string(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    use std::io::Write;
    let mut file = options.open(path).map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = if secret { 0o600 } else { 0o644 };
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(io)?;
    }
    file.write_all(contents).map_err(io)
}

/// Refuses a secret file (a private key, a key share) that others than its owner may read.
pub fn check_private(path: &Path) -> Result<(), PkiError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|source| PkiError::Io {
                path: path.display().to_string(),
                source,
            })?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o077 != 0 {
            return Err(PkiError::Readable {
                path: path.display().to_string(),
                mode,
            });
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// The identity a DER certificate states (it must already be verified against the CA: the TLS
/// layer does that before any request is served).
pub fn identity_of(der: &[u8]) -> Result<Identity, PkiError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| PkiError::Certificate(e.to_string()))?;
    let subject = cert.subject();
    let role = subject
        .iter_organizational_unit()
        .filter_map(|a| a.as_str().ok())
        .find_map(Role::from_unit)
        .ok_or(PkiError::NoRole)?;
    let name = subject
        .iter_common_name()
        .filter_map(|a| a.as_str().ok())
        .next()
        .ok_or(PkiError::NoName)?
        .to_owned();
    Ok(Identity { role, name })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn files_get_their_mode_whatever_was_there_and_loose_secrets_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let (secret, public) = (dir.path().join("a.key"), dir.path().join("a.pem"));
        for (path, old) in [(&secret, 0o666), (&public, 0o600)] {
            std::fs::write(path, b"old").unwrap();
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(old)).unwrap();
        }
        write_file(&secret, b"new secret", true).unwrap();
        write_file(&public, b"new certificate", false).unwrap();
        assert_eq!((mode(&secret), mode(&public)), (0o600, 0o644));
        assert_eq!(std::fs::read(&secret).unwrap(), b"new secret");
        assert!(check_private(&secret).is_ok());
        let refused = check_private(&public).unwrap_err().to_string();
        assert!(
            refused.contains("readable by others (mode 644)"),
            "{refused}"
        );
    }
}
