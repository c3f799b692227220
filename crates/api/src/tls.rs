//! Mutual TLS for every Concord connection (rustls through tonic), and the caller's identity
//! from its verified certificate.
//!
//! Servers require a client certificate issued by the consortium CA (a handshake without one,
//! or with one from another CA, fails before any request); handlers then check the caller's
//! role with [`require_role`].

use crate::pki::{identity_of, Identity, Role};
use std::path::PathBuf;
use tonic::transport::{Certificate, ClientTlsConfig, Identity as TlsIdentity, ServerTlsConfig};
use tonic::{Request, Status};

/// The largest message Concord accepts; bigger messages are refused by the transport. What
/// grows with a query — contributions, aggregates, shares — is streamed a ciphertext or share
/// per message (`crate::chunks`: a ciphertext of the largest set is 3.7 MB at the top
/// level), so the bound is set by the largest single key share: a round-one relinearization-key
/// share of an `N = 32,768` set (three digits of two polynomials over twelve 50-bit moduli,
/// 14.7 MB), which a deployment of more than 16 institutions exchanges at setup for its overlap
/// queries. Twice that, so a set with a fourth digit still fits.
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024 * 1024;

/// The `[tls]` table of a node's or coordinator's configuration file.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub certificate: PathBuf,
    pub key: PathBuf,
}

/// The three PEM documents of a party: the CA, its certificate, its private key.
#[derive(Clone)]
pub struct TlsPems {
    pub ca: String,
    pub certificate: String,
    pub key: zeroize::Zeroizing<String>,
}

impl TlsFiles {
    /// Paths relative to `base` (the configuration file's directory) made absolute.
    pub fn resolve(&mut self, base: &std::path::Path) {
        for p in [&mut self.ca, &mut self.certificate, &mut self.key] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }

    /// Reads the three files; refuses a private key that others than its owner may read.
    pub fn read(&self) -> Result<TlsPems, std::io::Error> {
        let read = |p: &PathBuf| {
            std::fs::read_to_string(p)
                .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", p.display())))
        };
        let pems = TlsPems {
            ca: read(&self.ca)?,
            certificate: read(&self.certificate)?,
            key: zeroize::Zeroizing::new(read(&self.key)?),
        };
        crate::pki::check_private(&self.key).map_err(|e| {
            std::io::Error::new(std::io::ErrorKind::PermissionDenied, e.to_string())
        })?;
        Ok(pems)
    }
}

/// Server side: this party's certificate, and the CA whose certificates it accepts from clients.
pub fn server_config(ca_pem: &str, certificate_pem: &str, key_pem: &str) -> ServerTlsConfig {
    ServerTlsConfig::new()
        .identity(TlsIdentity::from_pem(certificate_pem, key_pem))
        .client_ca_root(Certificate::from_pem(ca_pem))
}

/// Client side: this party's certificate, the CA it trusts, and the server's name as its
/// certificate states it.
pub fn client_config(
    ca_pem: &str,
    certificate_pem: &str,
    key_pem: &str,
    server_name: &str,
) -> ClientTlsConfig {
    ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .identity(TlsIdentity::from_pem(certificate_pem, key_pem))
        .domain_name(server_name)
}

/// The caller's identity, from the certificate it presented in the TLS handshake.
pub fn caller<T>(request: &Request<T>) -> Result<Identity, Status> {
    let certs = request.peer_certs().ok_or_else(|| {
        Status::unauthenticated("no client certificate: Concord requires mutual TLS")
    })?;
    let leaf = certs
        .first()
        .ok_or_else(|| Status::unauthenticated("empty client certificate chain"))?;
    identity_of(leaf.as_ref()).map_err(|e| Status::unauthenticated(e.to_string()))
}

/// The caller's identity, if its certificate grants `role`; otherwise `PERMISSION_DENIED`.
pub fn require_role<T>(request: &Request<T>, role: Role) -> Result<Identity, Status> {
    let who = caller(request)?;
    if who.role != role {
        return Err(Status::permission_denied(format!(
            "{} {:?} may not call this: it is for the {role} role",
            who.role, who.name
        )));
    }
    Ok(who)
}
